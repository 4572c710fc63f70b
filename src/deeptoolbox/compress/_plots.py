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
    for ax in axes.flat[len(rows) :]:
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


def plot_report(report, path: str | os.PathLike) -> Path:
    """Bars: learnables, file size, MACs and latency of the original and the compressed model."""
    from deeptoolbox.training._progress import _atomic_png

    first, second = report.models[0], report.models[1]
    panels = [("learnables", first.learnables, second.learnables),
              ("file size (KiB)", first.size_bytes / 1024, second.size_bytes / 1024)]  # fmt: skip
    if first.macs and second.macs:
        panels.append(("MACs / observation", first.macs, second.macs))
    if first.metric is not None and second.metric is not None:
        panels.append((report.metric, first.metric, second.metric))
    latency = sorted({(e, b) for _, e, b in report.latency})
    figure, axes = _figure(1, len(panels) + 1, (3.0 * (len(panels) + 1), 3.0))
    colors = ["#4477aa", "#ee6677"]
    for ax, (title, before, after) in zip(axes.flat, panels, strict=False):
        ax.bar([first.label, second.label], [before, after], color=colors)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
    ax = axes.flat[len(panels)]
    positions = np.arange(len(latency))
    for offset, (model, color) in enumerate(zip(report.models[:2], colors, strict=True)):
        values = [report.latency.get((model.label, e, b), np.nan) * 1e3 for e, b in latency]
        ax.bar(positions + (offset - 0.5) * 0.4, values, 0.4, color=color, label=model.label)
    ax.set_xticks(positions, [f"{e}\nbatch {b}" for e, b in latency], fontsize=7)
    ax.set_yscale("log")
    ax.set_title("latency (ms, median)", fontsize=9)
    ax.legend(fontsize=7)
    figure.suptitle("Compression report", fontsize=10)
    return _atomic_png(figure, path)
