"""Loss functions for train(): numerically stable, masked for padded sequences.

Classification losses work on logits. For a Network that ends in Softmax (or Sigmoid for
"binary-crossentropy"), train() reads the output before that layer
(``Network.forward_logits``, through :func:`loss_forward`), so the loss uses ``log_softmax``
/ ``binary_cross_entropy_with_logits`` and never takes the log of a rounded probability.
The network itself is left as it is: ``net(x)`` keeps giving probabilities.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from deeptoolbox.data._reading import class_axis
from deeptoolbox.errors import InputSizeError, OptionError
from deeptoolbox.layers._activation import Sigmoid, Softmax
from deeptoolbox.network._network import Network

__all__ = [
    "LOSS_NAMES",
    "Loss",
    "loss_function",
    "loss_forward",
    "logits_mode",
    "logits_like",
    "class_axis",
    "step_mask",
    "class_weighted_mean",
    "checked_class_weights",
    "ModelLoss",
    "model_losses_mode",
]

LOSS_NAMES = ("crossentropy", "binary-crossentropy", "mse", "mae", "huber")
_PADDED = -100  # the class index of padded time steps (PyTorch's ignore_index)


def step_mask(mask: torch.Tensor | None, outputs: Any) -> torch.Tensor | None:
    """The (N, T) padding mask when ``outputs`` are per time step (N, T, ...), else None.

    A padded sequence batch carries a mask of its time steps; it applies to a network's
    outputs only when they have that time axis (sequence-to-sequence). A sequence-to-label
    network gives one output per sequence, which no padding step touches.

    Example:
        >>> import torch
        >>> mask = torch.ones(4, 7, dtype=torch.bool)
        >>> step_mask(mask, torch.zeros(4, 7, 3)) is mask, step_mask(mask, torch.zeros(4, 3))
        (True, None)
    """
    if mask is None or not isinstance(outputs, torch.Tensor) or outputs.dim() < 3:
        return None
    return mask if tuple(outputs.shape[:2]) == tuple(mask.shape[:2]) else None


def _final_layer(net: torch.nn.Module, kind: type) -> torch.nn.Module | None:
    if isinstance(net, Network) and len(net.output_names) == 1:
        layer = net.layer(net.output_names[0])
        return layer if isinstance(layer, kind) else None
    return None


def _skipped_layer(net: torch.nn.Module, loss: Loss) -> torch.nn.Module | None:
    """The final layer a loss on logits does without: Softmax for crossentropy, Sigmoid for
    binary-crossentropy (a Network with one output only; plain modules run as they are)."""
    kind = {"crossentropy": Softmax, "binary-crossentropy": Sigmoid}.get(logits_like(loss))
    return _final_layer(net, kind) if kind is not None else None


def logits_like(loss: Loss) -> str:
    """The built-in loss whose kind of network outputs ``loss`` reads: its own name, or for a
    loss defined elsewhere on class scores (a segmentation Dice loss...) its ``logits_like``
    attribute, "crossentropy" (logits of classes) or "binary-crossentropy".

    Example:
        >>> logits_like(Loss("mse"))
        'mse'
    """
    return getattr(loss, "logits_like", None) or loss.name


class _Logits(torch.nn.Module):
    """``net.forward_logits`` as a module, so DDP and torch.compile can wrap it."""

    def __init__(self, net: Network) -> None:
        super().__init__()
        self.net = net

    def forward(self, *inputs: torch.Tensor) -> Any:
        return self.net.forward_logits(*inputs)


def loss_forward(net: torch.nn.Module, loss: Loss) -> torch.nn.Module:
    """The module whose outputs ``loss`` reads: ``net``, or its logits when the loss works on
    logits and ``net`` is a Network ending in Softmax (crossentropy) or Sigmoid
    (binary-crossentropy). Nothing in ``net`` is changed.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(3), L.Softmax()])
        >>> logits = loss_forward(net, loss_function("crossentropy"))(torch.ones(1, 2))
        >>> bool(torch.allclose(logits.softmax(-1), net(torch.ones(1, 2))))
        True
        >>> loss_forward(net, loss_function("mse")) is net
        True
    """
    return net if _skipped_layer(net, loss) is None else _Logits(net)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


@contextlib.contextmanager
def logits_mode(net: torch.nn.Module, loss: Loss) -> Iterator[bool]:
    """Within the block, ``net`` skips its final Softmax/Sigmoid when ``loss`` wants logits.

    Yields True when a layer is skipped. train() does not use this (it calls
    :func:`loss_forward`); it serves code that has to run ``net(x)`` itself on logits.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(3), L.Softmax()])
        >>> with logits_mode(net, loss_function("crossentropy")) as skipped:
        ...     raw = net(torch.ones(1, 2))
        >>> skipped, bool(torch.allclose(raw.softmax(-1), net(torch.ones(1, 2))))
        (True, True)
    """
    layer = _skipped_layer(net, loss)
    if layer is None:
        yield False
        return
    layer.forward = _identity  # instance attribute: also used by Network's direct-call path
    try:
        yield True
    finally:
        del layer.forward


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None, weights=None) -> torch.Tensor:
    """Mean of per-element losses over the real (unmasked) elements."""
    if mask is None:
        if weights is not None:
            return values.sum() / weights.sum().clamp_min(1e-12)
        return values.mean()
    mask = mask.to(values.device)
    while mask.dim() < values.dim():
        mask = mask.unsqueeze(-1)
    mask = mask.expand_as(values).to(values.dtype)
    if weights is not None:
        return (values * mask).sum() / (weights * mask).sum().clamp_min(1e-12)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def checked_class_weights(
    weights: torch.Tensor | None, classes: int, device: Any, who: str = "loss_function"
) -> torch.Tensor | None:
    """``weights`` on ``device``, after checking there is one per class score (None: None).

    Example:
        >>> import torch
        >>> checked_class_weights(torch.ones(3), 3, "cpu").tolist()
        [1.0, 1.0, 1.0]
    """
    if weights is None:
        return None
    if len(weights) != classes:
        raise OptionError(
            f"{who}: `class_weights` has {len(weights)} values but the network gives {classes} "
            "class scores."
        )
    return weights.to(device)


def class_weighted_mean(
    values: torch.Tensor,
    targets: torch.Tensor,
    class_weights: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The reduction of ``F.cross_entropy(weight=..., ignore_index=-100)`` for any per-element
    loss: each value times the weight of its true class (1 without ``class_weights``),
    summed, over the sum of those weights; targets equal to -100 (padded time steps, ignored
    pixels) and elements outside ``mask`` count neither above nor below.

    Example:
        >>> import torch
        >>> values, targets = torch.tensor([1.0, 2.0, 9.0]), torch.tensor([0, 1, -100])
        >>> float(class_weighted_mean(values, targets)), float(
        ...     class_weighted_mean(values, targets, torch.tensor([1.0, 3.0])))
        (1.5, 1.75)
    """
    valid = (targets != _PADDED).to(values.dtype)
    weights = valid if class_weights is None else class_weights[targets.clamp_min(0)] * valid
    return _masked_mean(values * weights, mask, weights)


class Loss:
    """A named training loss: ``loss(outputs, targets, mask=None) -> scalar``.

    Built by :func:`loss_function`; outputs of classification losses are logits.

    Example:
        >>> import torch
        >>> loss = Loss("mse")
        >>> float(loss(torch.ones(2, 3), torch.zeros(2, 3)))
        1.0
    """

    def __init__(
        self,
        name: str,
        *,
        class_weights: Sequence[float] | torch.Tensor | None = None,
        huber_delta: float = 1.0,
    ) -> None:
        if name not in LOSS_NAMES:
            raise OptionError(
                f"train: `loss` must be one of {', '.join(map(repr, LOSS_NAMES))}, 'model' (the "
                f"model's own losses) or a callable. Received: loss={name!r}."
            )
        if class_weights is not None and name != "crossentropy":
            raise OptionError(
                f"loss_function: `class_weights` only applies to 'crossentropy'. Received it "
                f"for {name!r}."
            )
        self.name = name
        self.class_weights = (
            None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        )
        self.huber_delta = float(huber_delta)

    def __repr__(self) -> str:
        return f"Loss({self.name!r})"

    def __call__(self, outputs: Any, targets: Any, mask: torch.Tensor | None = None):
        if isinstance(outputs, tuple | list | dict):
            named = f" ({', '.join(map(repr, outputs))})" if isinstance(outputs, dict) else ""
            raise OptionError(
                f"train: the network has {len(outputs)} outputs{named}; the built-in loss "
                f"{self.name!r} needs one. Pass a callable loss(outputs, targets)."
            )
        if targets is None:
            raise InputSizeError(
                f"train: the {self.name!r} loss needs targets, but the data gave only inputs. "
                "Pass (inputs, targets) or batches (input, ..., target)."
            )
        mask = step_mask(mask, outputs)
        outputs = outputs.float()
        if self.name == "crossentropy":
            return self._crossentropy(outputs, targets, mask)
        targets = self._same_shape(targets, outputs)
        if self.name == "binary-crossentropy":
            values = F.binary_cross_entropy_with_logits(outputs, targets, reduction="none")
        elif self.name == "mse":
            values = F.mse_loss(outputs, targets, reduction="none")
        elif self.name == "mae":
            values = F.l1_loss(outputs, targets, reduction="none")
        else:
            values = F.huber_loss(outputs, targets, reduction="none", delta=self.huber_delta)
        return _masked_mean(values, mask)

    def _same_shape(self, targets: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        """Targets as the outputs' shape and dtype, or an error that says why they do not fit."""
        if targets.numel() != outputs.numel():
            hint, classes = "", outputs.shape[1] if outputs.dim() > 1 else 1
            if not targets.is_floating_point() and targets.numel() * classes == outputs.numel():
                hint = (
                    " The targets look like class indices (one per observation or pixel): use "
                    "loss='crossentropy', or give targets with one value per output."
                )
            raise InputSizeError(
                f"train: the {self.name!r} loss compares outputs and targets value by value, but "
                f"the network's outputs are {tuple(outputs.shape)} and the targets "
                f"{tuple(targets.shape)} ({targets.numel()} values for {outputs.numel()}).{hint}"
            )
        return targets.to(outputs.dtype).reshape(outputs.shape)

    def _crossentropy(self, logits, targets, mask):
        axis = class_axis(logits)
        classes = logits.shape[axis]
        if axis == -1 and logits.dim() > 2:  # (N, T, C) -> (N, C, T) as F.cross_entropy wants
            logits = logits.movedim(-1, 1)
        weight = checked_class_weights(self.class_weights, classes, logits.device)
        if targets.is_floating_point():  # one-hot or probabilities, same shape as outputs
            if axis == -1 and targets.dim() > 2:
                targets = targets.movedim(-1, 1)
            values = F.cross_entropy(logits, targets.to(logits.dtype), weight, reduction="none")
            return _masked_mean(values, mask)
        targets = targets.long().reshape(logits.shape[:1] + logits.shape[2:])
        real = targets[targets != _PADDED] if targets.device.type == "cpu" else None
        if (
            real is not None
            and real.numel()
            and (int(real.min()) < 0 or int(real.max()) >= classes)
        ):
            raise InputSizeError(
                f"train: class indices must be in 0..{classes - 1} for a network with {classes} "
                f"outputs. Received indices from {int(real.min())} to {int(real.max())}."
            )
        values = F.cross_entropy(logits, targets, reduction="none")  # 0 at -100
        return class_weighted_mean(values, targets, weight, mask)


class _CallableLoss(Loss):
    def __init__(self, function: Callable[..., torch.Tensor]) -> None:
        self.name = getattr(function, "__name__", "custom")
        self.function = function
        try:
            parameters = inspect.signature(function).parameters
            self.takes_mask = "mask" in parameters
        except (TypeError, ValueError):
            self.takes_mask = False

    def __call__(self, outputs, targets, mask=None):
        if self.takes_mask:
            return self.function(outputs, targets, mask=mask)
        return self.function(outputs, targets)


class ModelLoss(Loss):
    """``loss="model"``: the model computes its own losses (torchvision's detection models,
    :class:`deeptoolbox.vision.ObjectDetector`). train() calls ``model(*inputs, targets)``
    in train mode; the model returns a dict of named losses (or one scalar), whose sum is
    the training loss.

    Example:
        >>> import torch
        >>> float(ModelLoss()({"classification": torch.tensor(1.0), "box": torch.tensor(0.5)}, None))
        1.5
    """

    takes_targets = True  # the engine passes the targets to the model's forward

    def __init__(self) -> None:
        self.name = "model"
        self.class_weights = None
        self.huber_delta = 1.0

    def __call__(self, outputs: Any, targets: Any, mask: torch.Tensor | None = None):
        if isinstance(outputs, torch.Tensor) and outputs.dim() == 0:
            return outputs
        if (
            isinstance(outputs, dict)
            and outputs
            and all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in outputs.values())
        ):
            return sum(outputs.values())
        found = (
            f"a dict with keys {sorted(outputs)}" if isinstance(outputs, dict)
            else type(outputs).__name__
        )  # fmt: skip
        raise OptionError(
            "train: loss='model' needs a model whose forward(inputs..., targets) returns a dict "
            "of scalar losses (or one scalar loss) in train mode, as torchvision's detection "
            f"models do. Received: {found}. Pass a loss such as 'crossentropy' or a callable "
            "loss(outputs, targets) for a model that returns predictions."
        )


@contextlib.contextmanager
def model_losses_mode(net: torch.nn.Module) -> Iterator[None]:
    """Within the block ``net`` computes its losses (train mode) without changing itself:
    batch-norm layers use their running statistics and dropout is off. For the validation
    loss of ``loss="model"``; the mode of every module is restored afterwards.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.BatchNorm1d(2)).eval()
        >>> with model_losses_mode(net):
        ...     modes = (net.training, net[0].training)
        >>> modes, net.training
        ((True, False), False)
    """
    modes = {m: m.training for m in net.modules()}
    norms = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.Dropout, torch.nn.Dropout2d)
    try:
        net.train()
        for module in net.modules():
            if isinstance(module, norms):
                module.eval()
        yield
    finally:
        for module, mode in modes.items():
            module.training = mode


def loss_function(
    loss: str | Callable[..., torch.Tensor] | Loss,
    *,
    class_weights: Sequence[float] | torch.Tensor | None = None,
    huber_delta: float = 1.0,
) -> Loss:
    """Build a loss for :func:`train` from a name or a callable.

    ``class_weights`` (one per class) weight the cross-entropy of each observation by the
    weight of its true class. ``"model"`` is the model's own losses (:class:`ModelLoss`:
    ``model(*inputs, targets)`` returns a dict of them in train mode). A callable is called as ``loss(outputs, targets)``, or with
    ``mask=`` too when it accepts that keyword.

    Example:
        >>> import torch
        >>> loss = loss_function("crossentropy", class_weights=[1.0, 3.0])
        >>> round(float(loss(torch.zeros(2, 2), torch.tensor([0, 1]))), 4)
        0.6931
    """
    if isinstance(loss, Loss):
        return loss
    if loss == "model":
        return ModelLoss()
    if isinstance(loss, str):
        return Loss(loss, class_weights=class_weights, huber_delta=huber_delta)
    if callable(loss):
        return _CallableLoss(loss)
    raise OptionError(
        f"train: `loss` must be one of {', '.join(map(repr, LOSS_NAMES))} or a callable. "
        f"Received: {type(loss).__name__}."
    )
