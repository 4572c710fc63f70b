"""Metrics reported during training and by evaluate(): names or callables.

Classification metrics take class scores (logits: any network output read as logits, as the
losses do) and targets given as class indices or one-hot rows. Precision, recall and F-score
are macro averages over the classes present in the targets, computed from the confusion
matrix; AUC is the macro average of one-vs-rest AUCs of the softmax probabilities over the
classes that have both positive and negative observations (torchmetrics' binary AUROC).
Padded time steps are left out of per-step outputs; a per-sequence output has no padding.

A network with several outputs (a tuple or a dict) is scored on its first output (the first
tuple element, the first dict value) against the first target; callables get everything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from deeptoolbox.errors import OptionError
from deeptoolbox.training._losses import class_axis, step_mask

__all__ = [
    "METRIC_NAMES",
    "TRAINING_METRIC_NAMES",
    "check_metrics",
    "compute_metrics",
    "metric_name",
    "confusion_matrix",
    "primary",
    "real_steps",
]

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "fscore", "auc", "crossentropy")
REGRESSION_METRICS = ("rmse", "mse", "mae")
TRAINING_METRIC_NAMES = CLASSIFICATION_METRICS + REGRESSION_METRICS
METRIC_NAMES = (*TRAINING_METRIC_NAMES, "loss")  # "loss": evaluate()'s loss, as a metric


def metric_name(metric: str | Callable[..., Any]) -> str:
    """The column name of a metric: its own name or the callable's ``__name__``."""
    return metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")


def check_metrics(where: str, metrics: Any, known: Sequence[str] = METRIC_NAMES) -> tuple:
    """``metrics`` as a tuple, each a known name or a callable; else an OptionError.

    Example:
        >>> check_metrics("evaluate", "accuracy")
        ('accuracy',)
        >>> try:
        ...     check_metrics("evaluate", ["acc"])
        ... except ValueError as err:
        ...     print(str(err)[:50])
        evaluate: unknown metric 'acc'. Known metrics: 'ac
    """
    if isinstance(metrics, str) or callable(metrics):
        metrics = (metrics,)
    if not isinstance(metrics, Sequence):
        raise OptionError(
            f"{where}: `metrics` must be a list of metric names or callables. Received: "
            f"{metrics!r}."
        )
    for metric in metrics:
        if not callable(metric) and metric not in known:
            hint = " ('loss' is already a column of the table.)" if metric == "loss" else ""
            raise OptionError(
                f"{where}: unknown metric {metric!r}. Known metrics: "
                f"{', '.join(map(repr, known))}, or a callable f(outputs, targets).{hint}"
            )
    return tuple(metrics)


def primary(value: Any) -> Any:
    """The output (or target) the named metrics read: the first of a tuple or dict."""
    if isinstance(value, tuple | list) and value:
        return primary(value[0])
    if isinstance(value, dict) and value:
        return primary(next(iter(value.values())))
    return value


def real_steps(outputs: Any, targets: Any, mask: torch.Tensor | None) -> tuple[Any, Any]:
    """Per-step outputs and targets with padded steps left out, as (M, ...) rows.

    Example:
        >>> import torch
        >>> mask = torch.tensor([[True, True, False]])
        >>> out, tgt = real_steps(torch.zeros(1, 3, 2), torch.tensor([[0, 1, -100]]), mask)
        >>> out.shape, tgt.tolist()
        (torch.Size([2, 2]), [0, 1])
    """
    keep = step_mask(mask, outputs)
    if keep is None:
        return outputs, targets
    keep = keep.to(outputs.device).bool()
    if isinstance(targets, torch.Tensor) and tuple(targets.shape[:2]) == tuple(keep.shape):
        targets = targets.to(outputs.device)[keep]
    return outputs[keep], targets


def _class_rows(scores: torch.Tensor, targets: torch.Tensor, binary: bool):
    """Scores as (M, C) and targets as (M,) class indices."""
    if binary:
        scores = scores.reshape(-1, 1)
        scores = torch.cat([-scores, scores], dim=1)  # logit of class 1 vs 0
        return scores, (targets.reshape(-1) > 0.5).long().to(scores.device)
    axis = class_axis(scores)
    scores = scores.movedim(axis, -1)
    classes = scores.shape[-1]
    if targets.is_floating_point() and targets.dim() == scores.dim():
        targets = targets.movedim(axis, -1).argmax(-1)
    return scores.reshape(-1, classes), targets.reshape(-1).long().to(scores.device)


def confusion_matrix(predicted: torch.Tensor, targets: torch.Tensor, classes: int) -> torch.Tensor:
    """Counts (true class, predicted class) as a (classes, classes) integer matrix.

    Example:
        >>> import torch
        >>> confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), 2).tolist()
        [[1, 1], [0, 1]]
    """
    flat = targets.long() * classes + predicted.long()
    return torch.bincount(flat, minlength=classes * classes).reshape(classes, classes)


def _macro(matrix: torch.Tensor, which: str) -> float:
    matrix = matrix.double()
    true_positive = matrix.diag()
    predicted = matrix.sum(0)
    actual = matrix.sum(1)
    present = actual > 0
    precision = torch.where(predicted > 0, true_positive / predicted.clamp_min(1), 0.0)
    recall = torch.where(actual > 0, true_positive / actual.clamp_min(1), 0.0)
    if which == "precision":
        values = precision
    elif which == "recall":
        values = recall
    else:
        total = (precision + recall).clamp_min(1e-12)
        values = 2 * precision * recall / total
    return float(values[present].mean()) if present.any() else 0.0


def _auc(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Macro one-vs-rest AUC of the softmax probabilities over classes with both kinds."""
    from torchmetrics.functional.classification import binary_auroc

    probabilities = scores.softmax(-1)
    values = []
    for c in range(scores.shape[1]):
        positive = targets == c
        if positive.any() and not positive.all():
            values.append(float(binary_auroc(probabilities[:, c], positive.long())))
    return sum(values) / len(values) if values else float("nan")


def _classification(name: str, scores: torch.Tensor, targets: torch.Tensor, binary: bool) -> float:
    scores, targets = _class_rows(scores.float(), targets, binary)
    if name == "auc":
        return _auc(scores, targets)
    if name == "crossentropy":
        return float(F.cross_entropy(scores, targets)) if len(targets) else 0.0
    predicted = scores.argmax(-1)
    if name == "accuracy":
        return float((predicted == targets).double().mean()) if len(targets) else 0.0
    return _macro(confusion_matrix(predicted, targets, scores.shape[1]), name)


def _regression(name: str, outputs: torch.Tensor, targets: torch.Tensor) -> float:
    error = outputs.float() - targets.to(outputs.device).float().reshape(outputs.shape)
    if name == "mae":
        return float(error.abs().mean())
    mse = error.pow(2).mean()
    return float(mse.sqrt() if name == "rmse" else mse)


def _named(name: str, outputs, targets, task: str, loss) -> float:
    if name == "loss":
        if loss is None:
            raise OptionError("compute_metrics: the metric 'loss' needs `loss=`.")
        return float(loss(outputs, targets))
    if name in REGRESSION_METRICS:
        return _regression(name, outputs, targets)
    if task == "regression":
        raise OptionError(
            f"metric {metric_name(name)!r} is for classification, but the loss is a regression "
            f"loss. Use {', '.join(map(repr, REGRESSION_METRICS))}, or a callable."
        )
    return _classification(name, outputs, targets, task == "binary")


def compute_metrics(
    metrics: Sequence[str | Callable[..., Any]],
    outputs: Any,
    targets: Any,
    mask: torch.Tensor | None = None,
    *,
    task: str = "multiclass",
    loss: Callable[..., torch.Tensor] | None = None,
) -> dict[str, float]:
    """Evaluate metrics on outputs and targets; ``task``: multiclass, binary or regression.

    ``loss`` computes the metric "loss". Unknown names raise an OptionError.

    Example:
        >>> import torch
        >>> scores = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
        >>> compute_metrics(["accuracy", "recall"], scores, torch.tensor([0, 1, 1]))
        {'accuracy': 0.6666666666666666, 'recall': 0.75}
    """
    values: dict[str, float] = {}
    if targets is None:
        return values
    metrics = check_metrics("metrics", metrics)
    first_output, first_target = real_steps(primary(outputs), primary(targets), mask)
    for metric in metrics:
        if callable(metric):
            values[metric_name(metric)] = float(metric(outputs, targets))
        else:
            values[metric] = _named(metric, first_output, first_target, task, loss)
    return values
