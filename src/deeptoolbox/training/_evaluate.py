"""evaluate() (MATLAB's testnet) and confusion_chart() (MATLAB's confusionchart)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from deeptoolbox.errors import InputSizeError
from deeptoolbox.inference import (
    _join,
    check_sequence_options,
    predict,
    reading_without_augmentation,
)
from deeptoolbox.training._confusion import ConfusionChart, confusion_chart
from deeptoolbox.training._data import data_source
from deeptoolbox.training._losses import Loss, _CallableLoss, logits_mode, loss_function
from deeptoolbox.training._metrics import (
    REGRESSION_METRICS,
    check_metrics,
    compute_metrics,
    primary,
    real_steps,
)

__all__ = ["evaluate", "confusion_chart", "ConfusionChart"]  # the chart: _confusion.py


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
    if loss is not None:  # a callable loss sees every output; a built-in one the first
        own = isinstance(loss_object, _CallableLoss)
        scored = (outputs, targets) if own else (primary(outputs), primary(targets))
        values["loss"] = float(loss_object(*scored))
    return values
