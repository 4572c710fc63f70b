"""Fully connected layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deeptoolbox.layers._base import (
    Layer,
    Shape,
    check_choice,
    check_positive_int,
    known,
    product,
    register_layer,
)
from deeptoolbox.layers._init import (
    BIAS_INITIALIZERS,
    WEIGHT_INITIALIZERS,
    initialize_bias,
    initialize_weight,
)


@register_layer
class Dense(Layer, nn.Linear):
    """Fully connected layer (MATLAB's fullyConnectedLayer): ``y = x W^T + b``.

    On features (N, C) it maps C to ``units``; on sequences (N, T, C) it acts on every time
    step; on images and volumes it flattens each observation first, as MATLAB does. The
    input size is inferred; ``weight`` is (units, inputs) like ``torch.nn.Linear``. It is a
    ``torch.nn.Linear`` (``isinstance`` holds, so PyTorch initialization loops reach it) with
    its attributes: ``in_features`` (None until the input size is known), ``out_features``.

    Example:
        >>> import torch
        >>> layer = Dense(10)
        >>> layer.build([(1, 8, 8)])
        >>> layer(torch.zeros(5, 1, 8, 8)).shape
        torch.Size([5, 10])
    """

    def __init__(
        self,
        units: int,
        *,
        bias: bool = True,
        weights_initializer: str = "glorot",
        bias_initializer: str = "zeros",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.units = check_positive_int("Dense", "units", units, "Dense(10)")
        self.bias_enabled = bool(bias)
        self.weights_initializer = check_choice(
            "Dense", "weights_initializer", weights_initializer, WEIGHT_INITIALIZERS
        )
        self.bias_initializer = check_choice(
            "Dense", "bias_initializer", bias_initializer, BIAS_INITIALIZERS
        )
        self.flatten_input = False

    @property
    def in_features(self) -> int | None:  # type: ignore[override]
        """Input features (torch.nn.Linear's name); None until the layer is built."""
        weight = self._parameters.get("weight")
        return None if weight is None else int(weight.shape[1])

    @property
    def out_features(self) -> int:  # type: ignore[override]
        """Output features (torch.nn.Linear's name for ``units``)."""
        return self.units

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        if len(shape) == 2:
            known(self, shape, [1], "number of channels")
            return (shape[0], self.units)
        known(self, shape, range(len(shape)), "input size")
        return (self.units,)

    def build(self, input_shapes: list[Shape]) -> None:
        self.output_shape(input_shapes)
        (shape,) = input_shapes
        self.flatten_input = len(shape) >= 3
        in_features = int(shape[-1]) if len(shape) <= 2 else product(shape)  # type: ignore[arg-type]
        self.weight = nn.Parameter(torch.empty(self.units, in_features))
        initialize_weight("Dense", self.weight, self.weights_initializer)
        if self.bias_enabled:
            self.bias = nn.Parameter(torch.empty(self.units))
            initialize_bias("Dense", self.bias, self.bias_initializer)
        else:
            self.bias = None
        super().build(input_shapes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.flatten_input:
            x = x.flatten(1)
        return F.linear(x, self.weight, self.bias)
