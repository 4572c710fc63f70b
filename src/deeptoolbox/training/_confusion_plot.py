"""Drawing a ConfusionChart: the matrix, with MATLAB-style row and column summaries.

Diagonal cells (right predictions) are blue, the others red, darker for larger values; the
row summary (right) and column summary (below) show each class's right and wrong shares.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_BLUE = np.array([0.0, 0.30, 0.62])
_RED = np.array([0.80, 0.18, 0.14])
_WHITE = np.ones(3)


def _colour(base: np.ndarray, strength: float) -> np.ndarray:
    strength = 0.0 if np.isnan(strength) else float(np.clip(strength, 0.0, 1.0))
    return _WHITE + (base - _WHITE) * (0.12 + 0.88 * strength) if strength > 0 else _WHITE


def _text(value: float, percent: bool) -> str:
    if np.isnan(value):
        return ""
    if percent:
        return f"{100 * value:.1f}%"
    return f"{int(round(value))}"


def _cells(axes: Any, values: np.ndarray, strengths: np.ndarray, right: np.ndarray,
           percent: bool, fontsize: float) -> None:  # fmt: skip
    """Draw a grid of coloured cells: blue where ``right`` is True, red elsewhere."""
    rows, columns = values.shape
    picture = np.ones((rows, columns, 3))
    for (row, column), value in np.ndenumerate(values):
        base = _BLUE if right[row, column] else _RED
        picture[row, column] = _colour(base, strengths[row, column])
        dark = not np.isnan(strengths[row, column]) and strengths[row, column] > 0.45
        axes.text(column, row, _text(value, percent), ha="center", va="center",
                  color="white" if dark else "black", fontsize=fontsize)  # fmt: skip
    axes.imshow(picture, aspect="auto", interpolation="nearest")
    axes.set_xticks(np.arange(columns + 1) - 0.5, minor=True)
    axes.set_yticks(np.arange(rows + 1) - 0.5, minor=True)
    axes.grid(which="minor", color="white", linewidth=1.5)
    axes.tick_params(which="minor", length=0)


def _matrix_strengths(chart: Any, shown: np.ndarray) -> np.ndarray:
    if chart.normalize == "none":
        peak = shown.max() if shown.size and shown.max() > 0 else 1.0
        return shown / peak
    return shown


def _summary_strengths(values: np.ndarray, mode: str, totals: np.ndarray) -> np.ndarray:
    if mode == "absolute":
        with np.errstate(invalid="ignore", divide="ignore"):
            return values / np.where(totals > 0, totals, np.nan)[:, None]
    return values


def draw_confusion_chart(chart: Any) -> Any:
    """A matplotlib Figure of ``chart`` (not attached to pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(chart.classes)
    rows_summary, columns_summary = chart.row_summary_values(), chart.column_summary_values()
    cell = 0.55 if n <= 12 else 0.4
    extra_w = 2 * cell + 0.4 if rows_summary is not None else 0.0
    extra_h = 2 * cell + 0.4 if columns_summary is not None else 0.0
    figure = Figure(figsize=(max(4.0, n * cell + 2.2) + extra_w, max(3.5, n * cell + 1.8) + extra_h),
                    dpi=100)  # fmt: skip
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(
        2, 2, width_ratios=[n, 2.4 if rows_summary is not None else 0.001],
        height_ratios=[n, 2.4 if columns_summary is not None else 0.001], wspace=0.08, hspace=0.08,
    )  # fmt: skip
    axes = figure.add_subplot(grid[0, 0])
    shown = chart.normalized()
    right = np.eye(n, dtype=bool)
    fontsize = 9 if n <= 8 else 7 if n <= 15 else 5
    _cells(axes, shown, _matrix_strengths(chart, shown), right, chart.normalize != "none",
           fontsize)  # fmt: skip
    axes.set_yticks(range(n), chart.classes)
    axes.set_ylabel("True class")
    rotation = 45 if n > 6 else 0
    if columns_summary is None:
        axes.set_xticks(range(n), chart.classes, rotation=rotation)
        axes.set_xlabel("Predicted class")
    else:
        axes.set_xticks(range(n), [""] * n)
        axes.tick_params(axis="x", length=0)
        _column_summary(figure.add_subplot(grid[1, 0]), chart, columns_summary, rotation, fontsize)
    if rows_summary is not None:
        _row_summary(figure.add_subplot(grid[0, 1]), chart, rows_summary, fontsize)
    note = {"none": "", "row": " — row-normalized", "column": " — column-normalized",
            "all": " — total-normalized"}[chart.normalize]  # fmt: skip
    figure.suptitle(f"{chart.title} (accuracy {chart.accuracy:.1%}){note}", fontsize=10)
    figure.subplots_adjust(left=0.16, right=0.97, bottom=0.14, top=0.9)
    return figure


def _row_summary(axes: Any, chart: Any, values: np.ndarray, fontsize: float) -> None:
    totals = chart.matrix.sum(axis=1)
    right = np.zeros(values.shape, dtype=bool)
    right[:, 0] = True
    strengths = _summary_strengths(values, chart.row_summary, totals)
    _cells(axes, values, strengths, right, chart.row_summary != "absolute", fontsize)
    axes.set_yticks(range(len(chart.classes)), [""] * len(chart.classes))
    axes.tick_params(axis="y", length=0)
    axes.set_xticks([0, 1], ["right", "wrong"], fontsize=8)
    axes.set_xlabel("per true class", fontsize=8)


def _column_summary(axes: Any, chart: Any, values: np.ndarray, rotation: int,
                    fontsize: float) -> None:  # fmt: skip
    totals = chart.matrix.sum(axis=0)
    right = np.zeros(values.shape, dtype=bool)
    right[:, 0] = True
    strengths = _summary_strengths(values, chart.column_summary, totals)
    _cells(axes, values.T, strengths.T, right.T, chart.column_summary != "absolute", fontsize)
    axes.set_xticks(range(len(chart.classes)), chart.classes, rotation=rotation)
    axes.set_yticks([0, 1], ["right", "wrong"], fontsize=8)
    axes.set_ylabel("per predicted\nclass", fontsize=8)
    axes.set_xlabel("Predicted class")
