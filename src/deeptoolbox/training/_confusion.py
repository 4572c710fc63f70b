"""confusion_chart() (MATLAB's confusionchart): the matrix, its normalizations and summaries.

The chart shows counts or, with ``normalize``, percentages of each true class (rows), each
predicted class (columns) or of all observations, like MATLAB's ``Normalization`` option.
``row_summary`` adds, right of the matrix, each true class's share of correct and incorrect
predictions (recall and false negative rate, MATLAB's ``RowSummary``); ``column_summary``
adds, below it, each predicted class's share of correct and incorrect predictions (precision
and false discovery rate, MATLAB's ``ColumnSummary``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeptoolbox.errors import InputSizeError, OptionError
from deeptoolbox.training._metrics import confusion_matrix

__all__ = ["ConfusionChart", "confusion_chart"]

NORMALIZATIONS = {
    "none": "none", "absolute": "none", "row": "row", "row-normalized": "row",
    "column": "column", "column-normalized": "column", "all": "all", "total-normalized": "all",
}  # fmt: skip


def _normalization(value: Any) -> str:
    if value not in NORMALIZATIONS:
        raise OptionError(
            "confusion_chart: `normalize` must be 'none', 'row', 'column' or 'all' (MATLAB's "
            "'absolute', 'row-normalized', 'column-normalized', 'total-normalized' also "
            f"work). Received: normalize={value!r}."
        )
    return NORMALIZATIONS[value]


def _summary(option: str, value: Any, own: str) -> str:
    allowed = ("off", "absolute", own, "total-normalized")
    if value not in allowed:
        raise OptionError(
            f"confusion_chart: `{option}` must be one of {list(allowed)} (MATLAB's "
            f"{option.title().replace('_', '')} values). Received: {option}={value!r}."
        )
    return value


def _shares(counts: np.ndarray, totals: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / np.where(totals > 0, totals, 1), np.nan)


@dataclass
class ConfusionChart:
    """A confusion matrix with its class names; :meth:`save` draws it to a PNG.

    ``normalize``, ``row_summary`` and ``column_summary`` choose what the picture shows (see
    :func:`confusion_chart`); ``matrix`` always holds the counts (true class in rows).

    Example:
        >>> chart = ConfusionChart(np.array([[3, 1], [0, 4]]), ["cat", "dog"])
        >>> chart.accuracy, chart.recall.tolist(), chart.precision.tolist()
        (0.875, [0.75, 1.0], [1.0, 0.8])
    """

    matrix: np.ndarray
    classes: list[str]
    title: str = "Confusion matrix"
    normalize: str = "none"
    row_summary: str = "off"
    column_summary: str = "off"

    def __post_init__(self) -> None:
        self.matrix = np.asarray(self.matrix)
        self.normalize = _normalization(self.normalize)
        self.row_summary = _summary("row_summary", self.row_summary, "row-normalized")
        self.column_summary = _summary("column_summary", self.column_summary, "column-normalized")

    @property
    def accuracy(self) -> float:
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total) if total else 0.0

    @property
    def recall(self) -> np.ndarray:
        """Per true class, the share predicted right (NaN for a class with no observations)."""
        return _shares(np.diag(self.matrix), self.matrix.sum(axis=1))

    @property
    def precision(self) -> np.ndarray:
        """Per predicted class, the share that is right (NaN for a class never predicted)."""
        return _shares(np.diag(self.matrix), self.matrix.sum(axis=0))

    def normalized(self) -> np.ndarray:
        """The matrix as the chart shows it: counts, or fractions per row / column / of all.

        Example:
            >>> ConfusionChart(np.array([[3, 1], [0, 4]]), ["a", "b"], normalize="row"
            ...                ).normalized().tolist()
            [[0.75, 0.25], [0.0, 1.0]]
        """
        counts = self.matrix.astype(float)
        if self.normalize == "row":
            return _shares(counts, counts.sum(axis=1, keepdims=True))
        if self.normalize == "column":
            return _shares(counts, counts.sum(axis=0, keepdims=True))
        if self.normalize == "all":
            return _shares(counts, np.asarray(counts.sum()))
        return counts

    def row_summary_values(self) -> np.ndarray | None:
        """(n, 2): per true class, correct and incorrect predictions as ``row_summary`` asks."""
        return self._summary_values(self.row_summary, self.matrix.sum(axis=1))

    def column_summary_values(self) -> np.ndarray | None:
        """(n, 2): per predicted class, correct and incorrect ones as ``column_summary`` asks."""
        return self._summary_values(self.column_summary, self.matrix.sum(axis=0))

    def _summary_values(self, mode: str, totals: np.ndarray) -> np.ndarray | None:
        if mode == "off":
            return None
        correct = np.diag(self.matrix).astype(float)
        values = np.stack([correct, totals - correct], axis=1)
        if mode == "absolute":
            return values
        if mode == "total-normalized":
            return _shares(values, np.asarray(self.matrix.sum()))
        return _shares(values, totals[:, None].astype(float))

    def save(self, path: str | os.PathLike) -> Path:
        """Draw the chart (matrix, and the summaries asked for) to a PNG; returns the path."""
        from deeptoolbox.training._confusion_plot import draw_confusion_chart
        from deeptoolbox.training._progress import _atomic_png

        return _atomic_png(draw_confusion_chart(self), path)


def _labels(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.cpu().numpy()
    return np.asarray(values).reshape(-1)


def confusion_chart(
    true_labels: Any,
    predicted_labels: Any,
    *,
    classes: Sequence[str] | None = None,
    path: str | os.PathLike | None = None,
    title: str = "Confusion matrix",
    normalize: str = "none",
    row_summary: str = "off",
    column_summary: str = "off",
) -> ConfusionChart:
    """Build the confusion matrix of true vs predicted labels; write a PNG when ``path`` is given.

    Labels are class names or indices. ``classes`` fixes the order (default: sorted labels).

    Args:
        normalize: what the cells show: "none" (counts), "row" (share of each true class),
            "column" (share of each predicted class) or "all" (share of all observations);
            MATLAB's ``Normalization`` values "absolute", "row-normalized",
            "column-normalized" and "total-normalized" work too.
        row_summary: MATLAB's ``RowSummary``: "off", "row-normalized" (per true class, the
            percentage predicted right, i.e. the recall, and wrong), "absolute" (counts) or
            "total-normalized" (percentages of all observations).
        column_summary: MATLAB's ``ColumnSummary``: "off", "column-normalized" (per predicted
            class, the percentage right, i.e. the precision, and wrong), "absolute" or
            "total-normalized".

    Example:
        >>> chart = confusion_chart(["a", "b", "b"], ["a", "b", "a"], normalize="row",
        ...                         row_summary="row-normalized")
        >>> chart.matrix.tolist(), chart.classes, chart.normalized()[1].tolist()
        ([[1, 0], [1, 1]], ['a', 'b'], [0.5, 0.5])
        >>> chart.row_summary_values().tolist()
        [[1.0, 0.0], [0.5, 0.5]]
    """
    _normalization(normalize)  # bad options fail before any label is looked at
    _summary("row_summary", row_summary, "row-normalized")
    _summary("column_summary", column_summary, "column-normalized")
    true, predicted = _labels(true_labels), _labels(predicted_labels)
    if len(true) != len(predicted):
        raise InputSizeError(
            f"confusion_chart: `true_labels` has {len(true)} labels but `predicted_labels` has "
            f"{len(predicted)}."
        )
    names = [str(c) for c in (classes if classes is not None else
                              sorted(set(true.tolist()) | set(predicted.tolist())))]  # fmt: skip
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted({str(v) for v in [*true, *predicted]} - set(index))
    if unknown:
        raise OptionError(
            f"confusion_chart: labels {unknown[:5]} are not in `classes` ({names[:10]})."
        )
    t = torch.tensor([index[str(v)] for v in true])
    p = torch.tensor([index[str(v)] for v in predicted])
    matrix = confusion_matrix(p, t, len(names)).numpy()
    chart = ConfusionChart(matrix, names, title, normalize, row_summary, column_summary)
    if path is not None:
        chart.save(path)
    return chart
