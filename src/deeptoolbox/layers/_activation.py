"""Activation layers and dropout. None of them has learnable parameters."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deeptoolbox.errors import OptionError
from deeptoolbox.layers._base import Layer, check_choice, check_probability, register_layer


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
