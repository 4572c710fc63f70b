"""evaluate() (MATLAB's testnet) and confusion_chart() (MATLAB's confusionchart)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from deeptoolbox.errors import InputSizeError
from deeptoolbox.inference import predict
from deeptoolbox.network._network import Network
from deeptoolbox.training._confusion import ConfusionChart, confusion_chart
from deeptoolbox.training._data import make_source
from deeptoolbox.training._losses import logits_mode, loss_function
from deeptoolbox.training._metrics import compute_metrics

__all__ = ["evaluate", "confusion_chart", "ConfusionChart"]  # the chart: _confusion.py


def _gather(net: torch.nn.Module, data: Any, batch_size: int, loss) -> tuple:
    num_inputs = len(net.input_names) if isinstance(net, Network) else 1
    source = make_source(data, num_inputs, "evaluate: `data`").configure(batch_size, "never", 0)
    outputs, targets, masks = [], [], []
    with logits_mode(net, loss):
        for batch, _ in source.epoch(0):
            if batch.target is None:
                raise InputSizeError("evaluate: `data` must include targets to compare with.")
            inputs = batch.inputs if len(batch.inputs) > 1 else batch.inputs[0]
            outputs.append(predict(net, inputs if len(batch.inputs) == 1 else tuple(inputs),
                                   batch_size=batch_size))  # fmt: skip
            targets.append(torch.as_tensor(batch.target))
            masks.append(batch.mask)
    mask = None if masks[0] is None else torch.cat(masks)
    return torch.cat(outputs), torch.cat(targets), mask


def evaluate(
    net: torch.nn.Module,
    data: Any,
    metrics: Sequence[str | Callable[..., Any]] = ("accuracy",),
    *,
    loss: str | Callable[..., Any] | None = None,
    batch_size: int = 128,
) -> dict[str, float]:
    """Compute metrics (and the loss, when given) of ``net`` on labelled ``data``.

    ``data`` takes the same forms as in :func:`train`. Classification metrics (accuracy,
    precision, recall, fscore, auc) read class scores; rmse and mae compare outputs with targets.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(2), L.Softmax()])
        >>> x = torch.randn(20, 2); y = torch.randint(0, 2, (20,))
        >>> sorted(evaluate(net, (x, y), ["accuracy", "fscore"], loss="crossentropy"))
        ['accuracy', 'fscore', 'loss']
    """
    if isinstance(metrics, str) or callable(metrics):
        metrics = (metrics,)
    loss_object = loss_function(loss if loss is not None else "crossentropy")
    names = [m for m in metrics if isinstance(m, str)]
    regression = bool(names) and all(m in ("rmse", "mae") for m in names)
    task = "regression" if regression else "multiclass"
    if loss_object.name in ("mse", "mae", "huber"):
        task = "regression"
    elif loss_object.name == "binary-crossentropy":
        task = "binary"
    outputs, targets, mask = _gather(net, data, batch_size, loss_object)
    values = compute_metrics(metrics, outputs, targets, mask, task=task)
    if loss is not None:
        values["loss"] = float(loss_object(outputs, targets, mask))
    return values
