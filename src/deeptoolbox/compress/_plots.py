"""Pictures of the compression tools: range histograms and the compression report."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np


def _figure(rows: int, columns: int, size: tuple[float, float]):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    return figure, axes


def plot_ranges(calibration, path: str | os.PathLike, *, layers=None) -> Path:
    """Each layer's output histogram (log counts) with the calibrated range shaded."""
    from deeptoolbox.training._progress import _atomic_png

    rows = [r for r in calibration if layers is None or r.layer in layers]
    columns = min(4, max(1, len(rows)))
    lines = max(1, math.ceil(len(rows) / columns))
    figure, axes = _figure(lines, columns, (3.2 * columns, 2.4 * lines))
    for ax in axes.flat[len(rows):]:
        ax.set_visible(False)
    for ax, row in zip(axes.flat, rows, strict=False):
        stats = calibration.statistics.get(row.tensor)
        if stats is not None and stats.counts is not None:
            centers = (stats.edges[:-1] + stats.edges[1:]) / 2
            ax.fill_between(centers, np.log10(1 + stats.counts), step="mid", color="#4477aa")
        ax.axvspan(row.low, row.high, color="#ee6677", alpha=0.2, label="int8 range")
        ax.set_title(f"{row.layer}  [{row.low:.3g}, {row.high:.3g}]", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_ylabel("log10(1 + count)", fontsize=7)
    figure.suptitle(f"Dynamic ranges ({calibration.method} calibration)", fontsize=10)
    return _atomic_png(figure, path)
