"""Pictures of output bounds: the guaranteed interval of each output next to sampled outputs."""

from __future__ import annotations

import torch

from deeptoolbox.robustness._bounds import OutputBounds

__all__ = ["plot_output_bounds"]


def plot_output_bounds(
    bounds: OutputBounds | list[OutputBounds],
    samples: torch.Tensor | None = None,
    *,
    index: int = 0,
    ax=None,
):
    """Draw the bounds of every output of box ``index``, with sampled outputs as dots.

    ``bounds`` may be a list (for example IBP and CROWN) to compare methods side by side;
    ``samples`` (S, N, *outputs) or (S, *outputs) are outputs of points sampled in the box.
    Returns the matplotlib figure.

    Example:
        >>> import torch
        >>> b = OutputBounds(-torch.ones(1, 3), torch.ones(1, 3), "crown")
        >>> fig = plot_output_bounds(b, torch.rand(20, 1, 3) - 0.5)
        >>> fig.axes[0].get_xlabel()
        'output'
    """
    import matplotlib.pyplot as plt

    every = bounds if isinstance(bounds, list) else [bounds]
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 3.5))
    else:
        fig = ax.figure
    count = every[0].lower[index].numel()
    positions = torch.arange(count, dtype=torch.float32)
    width = 0.8 / len(every)
    for k, b in enumerate(every):
        low = b.lower[index].flatten().detach().cpu()
        high = b.upper[index].flatten().detach().cpu()
        offset = (k - (len(every) - 1) / 2) * width
        ax.bar(positions + offset, (high - low), bottom=low, width=width * 0.9, alpha=0.35,
               label=f"{b.method} bounds")  # fmt: skip
    if samples is not None:
        values = samples[:, index] if samples.dim() > every[0].lower.dim() - 1 + 1 else samples
        values = values.reshape(values.shape[0], -1).detach().cpu()
        jitter = (torch.rand(values.shape) - 0.5) * 0.3
        ax.scatter((positions + jitter).flatten(), values.flatten(), s=3, color="black",
                   label="sampled outputs")  # fmt: skip
    ax.set_xlabel("output")
    ax.set_ylabel("value")
    ax.set_xticks(positions.tolist())
    ax.legend()
    fig.tight_layout()
    return fig
