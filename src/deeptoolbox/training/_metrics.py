"""Metrics reported during training and by evaluate(): names or callables.

Classification metrics take class scores (any monotone scores: logits or probabilities) and
targets given as class indices or one-hot rows; precision, recall and F-score are macro
averages over classes, computed from the confusion matrix. AUC uses torchmetrics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from deeptoolbox.errors import OptionError
from deeptoolbox.training._losses import class_axis

__all__ = ["compute_metrics", "metric_name", "confusion_matrix"]


def metric_name(metric: str | Callable[..., Any]) -> str:
    """The column name of a metric: its own name or the callable's ``__name__``."""
    return metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")


def _flatten(scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None, binary: bool):
    """Scores as (M, C) and targets as (M,) class indices over real (unmasked) elements."""
    if binary:
        scores = scores.reshape(-1, 1)
        scores = torch.cat([-scores, scores], dim=1)  # logit of class 1 vs 0
        targets = (targets.reshape(-1) > 0.5).long()
    else:
        axis = class_axis(scores)
        scores = scores.movedim(axis, -1)
        classes = scores.shape[-1]
        if targets.is_floating_point() and targets.dim() == scores.dim():
            targets = targets.movedim(axis, -1).argmax(-1)
        targets = targets.reshape(-1).long()
        scores = scores.reshape(-1, classes)
    if mask is not None:
        keep = mask.reshape(-1).to(scores.device).bool()
        scores, targets = scores[keep], targets[keep]
    return scores, targets.to(scores.device)


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
    from torchmetrics.functional.classification import multiclass_auroc

    classes = scores.shape[1]
    if classes == 2:
        from torchmetrics.functional.classification import binary_auroc

        return float(binary_auroc(scores[:, 1] - scores[:, 0], targets))
    return float(multiclass_auroc(scores.float(), targets, num_classes=classes))


def _classification(name: str, scores, targets, mask, binary: bool) -> float:
    scores, targets = _flatten(scores.float(), targets, mask, binary)
    if name == "auc":
        return _auc(scores, targets)
    predicted = scores.argmax(-1)
    if name == "accuracy":
        return float((predicted == targets).double().mean()) if len(targets) else 0.0
    return _macro(confusion_matrix(predicted, targets, scores.shape[1]), name)


def _regression(name: str, outputs, targets, mask) -> float:
    error = outputs.float() - targets.float().reshape(outputs.shape)
    if mask is not None:
        keep = mask.to(error.device).bool()
        while keep.dim() < error.dim():
            keep = keep.unsqueeze(-1)
        error = error[keep.expand_as(error)]
    if name == "rmse":
        return float(error.pow(2).mean().sqrt())
    return float(error.abs().mean())


def compute_metrics(
    metrics: Sequence[str | Callable[..., Any]],
    outputs: torch.Tensor,
    targets: torch.Tensor | None,
    mask: torch.Tensor | None = None,
    *,
    task: str = "multiclass",
) -> dict[str, float]:
    """Evaluate metrics on outputs and targets; ``task``: multiclass, binary or regression.

    Example:
        >>> import torch
        >>> scores = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
        >>> compute_metrics(["accuracy", "recall"], scores, torch.tensor([0, 1, 1]))
        {'accuracy': 0.6666666666666666, 'recall': 0.75}
    """
    values: dict[str, float] = {}
    if targets is None:
        return values
    for metric in metrics:
        if callable(metric):
            value = metric(outputs, targets)
            values[metric_name(metric)] = float(value)
        elif metric in ("rmse", "mae"):
            values[metric] = _regression(metric, outputs, targets, mask)
        elif task == "regression":
            raise OptionError(
                f"train: metric {metric!r} is for classification, but the loss is a regression "
                "loss. Use 'rmse' or 'mae', or a callable."
            )
        else:
            values[metric] = _classification(metric, outputs, targets, mask, task == "binary")
    return values
