"""Activation layers and dropout. Only PReLU has learnable parameters."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deeptoolbox.errors import OptionError
from deeptoolbox.layers._base import (
    Layer,
    Shape,
    check_choice,
    check_probability,
    known,
    register_layer,
    require_rank,
)


def _check_number(layer: str, option: str, value: object, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or (positive and value <= 0):
        kind = "a positive number" if positive else "a number"
        raise OptionError(f"{layer}: `{option}` must be {kind}. Received: {option}={value!r}.")
    return float(value)


@register_layer
class ReLU(Layer):
    """Rectified linear unit: max(x, 0).

    Example:
        >>> import torch
        >>> ReLU()(torch.tensor([-1.0, 2.0])).tolist()
        [0.0, 2.0]
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x)


@register_layer
class LeakyReLU(Layer):
    """Leaky ReLU: x for x > 0, ``scale`` * x otherwise (MATLAB's leakyReluLayer).

    Example:
        >>> import torch
        >>> LeakyReLU(0.1)(torch.tensor([-1.0, 2.0])).tolist()
        [-0.10000000149011612, 2.0]
    """

    def __init__(self, scale: float = 0.01, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.scale = _check_number("LeakyReLU", "scale", scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, self.scale)


@register_layer
class ELU(Layer):
    """Exponential linear unit with parameter ``alpha``.

    Example:
        >>> import torch
        >>> round(ELU()(torch.tensor([-1.0])).item(), 4)
        -0.6321
    """

    def __init__(self, alpha: float = 1.0, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.alpha = _check_number("ELU", "alpha", alpha, positive=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.elu(x, self.alpha)


@register_layer
class GELU(Layer):
    """Gaussian error linear unit; ``approximation`` is ``"none"`` or ``"tanh"``.

    Example:
        >>> import torch
        >>> round(GELU()(torch.tensor([1.0])).item(), 4)
        0.8413
    """

    def __init__(self, approximation: str = "none", *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.approximation = check_choice("GELU", "approximation", approximation, ("none", "tanh"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate=self.approximation)


@register_layer
class Sigmoid(Layer):
    """Logistic sigmoid: 1 / (1 + exp(-x)).

    Example:
        >>> import torch
        >>> Sigmoid()(torch.tensor([0.0])).tolist()
        [0.5]
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)


@register_layer
class Tanh(Layer):
    """Hyperbolic tangent.

    Example:
        >>> import torch
        >>> Tanh()(torch.tensor([0.0])).tolist()
        [0.0]
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)


@register_layer
class Swish(Layer):
    """Swish (SiLU): x * sigmoid(x).

    Example:
        >>> import torch
        >>> Swish()(torch.tensor([0.0])).tolist()
        [0.0]
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x)


@register_layer
class Softmax(Layer):
    """Softmax over the channel axis: last for features and sequences, second for images.

    classify() reads this layer's output as class scores (without applying softmax again).

    Example:
        >>> import torch
        >>> Softmax()(torch.zeros(1, 4)).tolist()
        [[0.25, 0.25, 0.25, 0.25]]
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=-1 if x.dim() <= 3 else 1)


@register_layer
class Dropout(Layer):
    """Sets inputs to zero with ``probability`` during training and rescales the rest.

    Example:
        >>> import torch
        >>> layer = Dropout(0.5).eval()
        >>> layer(torch.ones(3)).tolist()
        [1.0, 1.0, 1.0]
    """

    def __init__(self, probability: float = 0.5, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.probability = check_probability("Dropout", "probability", probability)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.probability, self.training)


_DEPTH_MODES = ("row", "batch")


@register_layer
class StochasticDepth(Layer):
    """Drops a residual branch at random in training (``torchvision.ops.StochasticDepth``).

    In training, ``mode="row"`` zeroes each observation of the batch with probability
    ``probability`` and ``mode="batch"`` the whole batch at once; what is kept is divided by
    ``1 - probability``. In evaluation the layer passes its input through. Given the same
    random state it draws exactly what ``torchvision.ops.stochastic_depth`` draws: it is what
    :func:`from_torch` maps torchvision's stochastic depth onto (EfficientNet, ConvNeXt...).

    Example:
        >>> layer = StochasticDepth(0.5, "row")
        >>> layer.eval()(torch.ones(2, 3)).tolist()
        [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
        >>> sorted(set(layer.train()(torch.ones(64, 1)).flatten().tolist()))
        [0.0, 2.0]
    """

    def __init__(
        self, probability: float = 0.5, mode: str = "row", *, name: str | None = None
    ) -> None:
        super().__init__(name=name)
        number = isinstance(probability, int | float) and not isinstance(probability, bool)
        if not number or not 0 <= probability <= 1:
            raise OptionError(
                "StochasticDepth: `probability` must be a number in [0, 1]. "
                f"Received: probability={probability!r}."
            )
        if mode not in _DEPTH_MODES:
            raise OptionError(
                f"StochasticDepth: `mode` must be one of {', '.join(map(repr, _DEPTH_MODES))}. "
                f"Received: mode={mode!r}."
            )
        self.probability = float(probability)
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.probability == 0.0:
            return x
        survival = 1.0 - self.probability
        size = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise


@register_layer
class ClippedReLU(Layer):
    """Clipped ReLU: min(max(x, 0), ``ceiling``) (MATLAB's clippedReluLayer(ceiling)).

    ``ClippedReLU(6.0)`` is ReLU6. Exports to ONNX as ``Clip(x, 0, ceiling)``.

    Example:
        >>> import torch
        >>> ClippedReLU(6.0)(torch.tensor([-1.0, 3.0, 9.0])).tolist()
        [0.0, 3.0, 6.0]
    """

    def __init__(self, ceiling: float, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.ceiling = _check_number("ClippedReLU", "ceiling", ceiling, positive=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardtanh(x, 0.0, self.ceiling)


@register_layer
class PReLU(Layer):
    """Parametric ReLU: x for x > 0, alpha · x otherwise, alpha learned (MATLAB's preluLayer).

    One alpha per channel (``channel_wise=True``, the channel axis as in DESIGN.md: last for
    features and sequences, second for images and volumes) or one shared alpha
    (``channel_wise=False``); ``alpha`` is the initial value. The learnable is ``alpha``.

    Example:
        >>> import torch
        >>> layer = PReLU(0.25)
        >>> layer.build([(2,)])
        >>> layer(torch.tensor([[-4.0, 2.0]])).tolist()
        [[-1.0, 2.0]]
    """

    def __init__(
        self, alpha: float = 0.25, *, channel_wise: bool = True, name: str | None = None
    ) -> None:
        super().__init__(name=name)
        self.initial_alpha = _check_number("PReLU", "alpha", alpha)
        if not isinstance(channel_wise, bool):
            raise OptionError(
                f"PReLU: `channel_wise` must be True or False. Received: "
                f"channel_wise={channel_wise!r}."
            )
        self.channel_wise = channel_wise

    def build(self, input_shapes: list[Shape]) -> None:
        (shape,) = input_shapes
        rank = require_rank(self, shape, [1, 2, 3, 4], "features, sequences, images or volumes")
        axis = rank - 1 if rank <= 2 else 0
        count = 1
        if self.channel_wise:
            known(self, shape, [axis], "number of channels")
            count = int(shape[axis])  # type: ignore[arg-type]
        self.alpha = nn.Parameter(torch.full((count,), self.initial_alpha))
        super().build(input_shapes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:  # sequences (N, T, C): channels last
            return torch.where(x > 0, x, x * self.alpha)
        return F.prelu(x, self.alpha)


@register_layer
class Softplus(Layer):
    """Softplus: log(1 + exp(x)), a smooth ReLU (MATLAB's softplusLayer).

    Example:
        >>> import torch
        >>> round(Softplus()(torch.tensor([0.0])).item(), 4)
        0.6931
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softplus(x)


@register_layer
class HardSwish(Layer):
    """Hard swish: x · min(max(x + 3, 0), 6) / 6, as in MobileNetV3 (ONNX ``HardSwish``).

    Example:
        >>> import torch
        >>> HardSwish()(torch.tensor([-4.0, 0.0, 3.0])).tolist()
        [-0.0, 0.0, 3.0]
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardswish(x)


@register_layer
class HardSigmoid(Layer):
    """Hard sigmoid: min(max(``alpha`` · x + ``beta``, 0), 1) (ONNX ``HardSigmoid``).

    The defaults (alpha = 1/6, beta = 0.5) are PyTorch's and Keras 3's; Keras 2 and ONNX's
    own defaults are alpha = 0.2.

    Example:
        >>> import torch
        >>> HardSigmoid()(torch.tensor([-3.0, 0.0, 3.0])).tolist()
        [0.0, 0.5, 1.0]
    """

    def __init__(self, alpha: float = 1 / 6, beta: float = 0.5, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.alpha = _check_number("HardSigmoid", "alpha", alpha)
        self.beta = _check_number("HardSigmoid", "beta", beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.alpha == 1 / 6 and self.beta == 0.5:
            return F.hardsigmoid(x)  # exports as one ONNX HardSigmoid node
        return torch.clamp(x * self.alpha + self.beta, 0.0, 1.0)


@register_layer
class Mish(Layer):
    """Mish: x · tanh(softplus(x)) (ONNX ``Mish``, Keras ``mish``).

    Example:
        >>> import torch
        >>> round(Mish()(torch.tensor([1.0])).item(), 4)
        0.8651
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.mish(x)


@register_layer
class SpatialDropout(Layer):
    """Drops whole channels: in training each channel of each observation is set to zero with
    ``probability`` (over all its positions or time steps) and the rest are rescaled by
    1 / (1 - probability); identity in inference (MATLAB's spatialDropoutLayer).

    Example:
        >>> import torch
        >>> layer = SpatialDropout(0.5).train()
        >>> y = layer(torch.ones(1, 8, 3, 3))
        >>> sorted({float(v) for v in y.amax(dim=(2, 3)).flatten()} - {0.0})
        [2.0]
        >>> bool((layer.eval()(torch.ones(1, 8, 3, 3)) == 1).all())
        True
    """

    def __init__(self, probability: float = 0.5, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.probability = check_probability("SpatialDropout", "probability", probability)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.probability == 0:
            return x
        if x.dim() == 3:  # sequences (N, T, C): a channel is dropped at every time step
            size = (x.shape[0], 1, x.shape[2])
        else:
            size = (x.shape[0], x.shape[1]) + (1,) * (x.dim() - 2)
        keep = torch.rand(size, device=x.device) >= self.probability
        return x * keep.to(x.dtype) / (1 - self.probability)
