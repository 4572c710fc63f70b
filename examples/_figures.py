"""A grid of pictures with column titles, saved as PNG: the figures the examples write."""

from __future__ import annotations

from pathlib import Path

import torch


def image_grid(path: Path, rows: list[list[torch.Tensor]], titles: list[str]) -> Path:
    """Save ``rows`` of (C, H, W) pictures (uint8, or float in [0, 1]; C = 1 drawn in gray)
    as one figure, ``titles`` over the columns. Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(
        len(rows), len(titles), figsize=(1.8 * len(titles), 1.8 * len(rows)), squeeze=False
    )
    for r, row in enumerate(rows):
        for c, picture in enumerate(row):
            picture = picture.float() / 255 if picture.dtype == torch.uint8 else picture
            shown = picture.clamp(0, 1).permute(1, 2, 0).numpy()
            gray = shown.shape[-1] == 1
            axes[r, c].imshow(shown[..., 0] if gray else shown, cmap="gray" if gray else None,
                              vmin=0, vmax=1, interpolation="nearest")  # fmt: skip
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(titles[c], fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path
