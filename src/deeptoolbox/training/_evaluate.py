"""evaluate() (MATLAB's testnet) and confusion_chart() (MATLAB's confusionchart)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeptoolbox.errors import InputSizeError, OptionError
from deeptoolbox.inference import (
    _join,
    check_sequence_options,
    predict,
    reading_without_augmentation,
)
from deeptoolbox.training._data import data_source
from deeptoolbox.training._losses import Loss, logits_mode, loss_function
from deeptoolbox.training._metrics import (
    REGRESSION_METRICS,
    check_metrics,
    compute_metrics,
    confusion_matrix,
    real_steps,
)
from deeptoolbox.training._progress import _atomic_png

__all__ = ["evaluate", "confusion_chart", "ConfusionChart"]


def _gather(net: torch.nn.Module, source, batch_size: int, loss: Loss) -> tuple[Any, Any]:
    """Outputs and targets over the data (padded time steps of per-step outputs left out)."""
    outputs, targets, sizes = [], [], []
    with logits_mode(net, loss), reading_without_augmentation(source.payload):
        for batch, _ in source.epoch(0):
            if batch.target is None:
                raise InputSizeError("evaluate: `data` must include targets to compare with.")
            batches = [{"inputs": tuple(batch.inputs), "mask": batch.mask}]  # one batch
            output = predict(net, batches, batch_size=batch_size)
            output, target = real_steps(output, torch.as_tensor(batch.target), batch.mask)
            outputs.append(output)
            targets.append(target)
            sizes.append(batch.size)
    if all(isinstance(o, torch.Tensor) for o in outputs):
        return torch.cat(outputs), torch.cat(targets)
    return _join(outputs, sizes), _join(targets, sizes)


def _task_and_loss(metrics: tuple, loss: Any) -> tuple[str, Loss]:
    names = [m for m in metrics if isinstance(m, str) and m != "loss"]
    regression = bool(names) and all(m in REGRESSION_METRICS for m in names)
    loss_object = loss_function(
        loss if loss is not None else "mse" if regression else "crossentropy"
    )
    if loss_object.name in ("mse", "mae", "huber"):
        return "regression", loss_object
    if loss_object.name == "binary-crossentropy":
        return "binary", loss_object
    return ("regression" if regression else "multiclass"), loss_object


def evaluate(
    net: torch.nn.Module,
    data: Any,
    metrics: Sequence[str | Callable[..., Any]] = ("accuracy",),
    *,
    loss: str | Callable[..., Any] | None = None,
    batch_size: int = 128,
    sequence_length: str | int | None = None,
    sequence_padding_direction: str | None = None,
    sequence_padding_value: float | None = None,
) -> dict[str, float]:
    """Compute metrics (and the loss, when given) of ``net`` on labelled ``data`` (MATLAB's
    ``testnet``).

    ``data`` takes the same forms as in :func:`train`; datastores are read without
    augmentation, so two calls give the same numbers, and class-index targets are matched to
    ``net.classes`` by name. Metrics: "accuracy", "precision", "recall", "fscore" (macro
    over the classes present), "auc" (macro one-vs-rest), "crossentropy" (read class scores);
    "rmse", "mse", "mae" (compare outputs with targets); "loss" (``loss``, by default
    crossentropy, or mse for regression metrics); or callables ``f(outputs, targets)``. An
    unknown name raises an OptionError listing the known ones. A network with several
    outputs is scored on its first. Sequence options as in :func:`predict`.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(2), L.Softmax()])
        >>> x = torch.randn(20, 2); y = torch.randint(0, 2, (20,))
        >>> sorted(evaluate(net, (x, y), ["accuracy", "fscore"], loss="crossentropy"))
        ['accuracy', 'fscore', 'loss']
    """
    metrics = check_metrics("evaluate", metrics)
    padding = check_sequence_options(
        "evaluate", sequence_length, sequence_padding_direction, sequence_padding_value
    )
    task, loss_object = _task_and_loss(metrics, loss)
    source = data_source(net, data, padding, "evaluate: `data`").configure(batch_size, "never", 0)
    outputs, targets = _gather(net, source, batch_size, loss_object)
    values = compute_metrics(metrics, outputs, targets, task=task, loss=loss_object)
    if loss is not None:
        values["loss"] = float(loss_object(outputs, targets))
    return values


@dataclass
class ConfusionChart:
    """A confusion matrix with its class names; :meth:`save` draws it to a PNG.

    Example:
        >>> chart = ConfusionChart(np.array([[3, 1], [0, 4]]), ["cat", "dog"])
        >>> chart.accuracy
        0.875
    """

    matrix: np.ndarray
    classes: list[str]
    title: str = "Confusion matrix"

    @property
    def accuracy(self) -> float:
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total) if total else 0.0

    def save(self, path: str | os.PathLike) -> Path:
        """Draw the chart (counts, row-normalized recall and column precision) to a PNG."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        n = len(self.classes)
        size = max(4.0, 0.5 * n + 2)
        figure = Figure(figsize=(size + 1, size), dpi=100)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        axes.imshow(self.matrix, cmap="Blues")
        peak = self.matrix.max() if self.matrix.size else 0
        for (row, column), count in np.ndenumerate(self.matrix):
            color = "white" if count > peak / 2 else "black"
            axes.text(column, row, str(count), ha="center", va="center", color=color, fontsize=8)
        axes.set_xticks(range(n), self.classes, rotation=45 if n > 6 else 0)
        axes.set_yticks(range(n), self.classes)
        axes.set_xlabel("Predicted class")
        axes.set_ylabel("True class")
        axes.set_title(f"{self.title} (accuracy {self.accuracy:.1%})")
        figure.tight_layout()
        return _atomic_png(figure, path)


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
) -> ConfusionChart:
    """Build the confusion matrix of true vs predicted labels; write a PNG when ``path`` is given.

    Labels are class names or indices. ``classes`` fixes the order (default: sorted labels).

    Example:
        >>> chart = confusion_chart(["a", "b", "b"], ["a", "b", "a"])
        >>> chart.matrix.tolist(), chart.classes
        ([[1, 0], [1, 1]], ['a', 'b'])
    """
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
    chart = ConfusionChart(confusion_matrix(p, t, len(names)).numpy(), names, title)
    if path is not None:
        chart.save(path)
    return chart
