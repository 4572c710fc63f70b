"""The picture grid of the observations most likely mislabelled (``LabelIssues.plot``)."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch

from deeptoolbox.errors import DataError

__all__ = ["issue_grid"]


def _picture(images: Any, index: int) -> np.ndarray:
    """Observation ``index`` of a datastore or (N, C, H, W) array as an (H, W[, 3]) array."""
    item = images[index]
    item = item[0] if isinstance(item, tuple | list) else item
    array = np.asarray(item.detach().cpu() if isinstance(item, torch.Tensor) else item, float)
    if array.ndim == 1:  # flattened square images (e.g. digits as 64 features)
        side = math.isqrt(array.size)
        if side * side != array.size:
            raise DataError(
                f"LabelIssues.plot: observation {index} is a vector of {array.size} values, "
                "not an image. Give the images the indices refer to."
            )
        return array.reshape(side, side)
    if array.ndim != 3:
        raise DataError(
            f"LabelIssues.plot: observation {index} has shape {array.shape}; expected an image "
            "(C, H, W)."
        )
    return array[0] if array.shape[0] == 1 else np.moveaxis(array[:3], 0, -1)


def issue_grid(issues: Any, images: Any, path: str | os.PathLike | None, k: int) -> Any:
    """Draw the ``k`` worst of ``issues`` (a LabelIssues) from ``images``."""
    import matplotlib.pyplot as plt

    chosen = issues.top(k)
    columns = min(8, max(1, len(chosen)))
    rows = max(1, math.ceil(len(chosen) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(1.7 * columns, 0.4 + 2.1 * rows),
                                squeeze=False)  # fmt: skip
    for slot, axis in enumerate(axes.flat):
        axis.set_xticks([])
        axis.set_yticks([])
        if slot >= len(chosen):
            axis.set_axis_off()
            continue
        i = chosen[slot]
        picture = _picture(images, i)
        lo, hi = float(np.nanmin(picture)), float(np.nanmax(picture))
        shown = (picture - lo) / (hi - lo) if hi > lo else np.zeros_like(picture)
        axis.imshow(shown, cmap="gray" if shown.ndim == 2 else None, interpolation="nearest")
        color = "#c0392b" if issues.is_issue[i] else "#7f8c8d"
        axis.set_title(f"{issues.given[i]} → {issues.suggested[i]}\np = {issues.quality[i]:.2g}",
                       fontsize=8, color=color)  # fmt: skip
    figure.suptitle("most likely mislabelled: given → suggested (p: probability of the given label)",
                    fontsize=9)  # fmt: skip
    figure.tight_layout()
    if path is not None:
        from deeptoolbox._atomic import atomic_path

        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=80)
    return figure
