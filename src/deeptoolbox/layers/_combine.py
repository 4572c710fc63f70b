"""Layers that combine several inputs: Addition, Multiplication, Concatenation.

Their input ports are named ``in1``, ``in2``, ... and connected with
``net.connect("source", "layer/in2")``.
"""

from __future__ import annotations

import torch

from deeptoolbox.errors import OptionError, SizeMismatchError
from deeptoolbox.layers._base import (
    Layer,
    Shape,
    check_positive_int,
    format_shape,
    register_layer,
)


class _MultiInput(Layer):
    def __init__(self, num_inputs: int = 2, *, name: str | None = None) -> None:
        super().__init__(name=name)
        kind = type(self).__name__
        check_positive_int(kind, "num_inputs", num_inputs, f"{kind}(3)")
        if num_inputs < 2:
            raise OptionError(f"{kind}: `num_inputs` must be at least 2. Received: {num_inputs}.")
        self.num_inputs = num_inputs
        self.input_names = tuple(f"in{i}" for i in range(1, num_inputs + 1))

    def _mismatch(self, input_shapes: list[Shape], why: str) -> SizeMismatchError:
        sizes = ", ".join(
            f"{port} {format_shape(s)}"
            for port, s in zip(self.input_names, input_shapes, strict=True)
        )
        return SizeMismatchError(f"{type(self).__name__}: {why}; received {sizes}")


class _Elementwise(_MultiInput):
    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        first = input_shapes[0]
        for shape in input_shapes[1:]:
            same = len(shape) == len(first) and all(
                a is None or b is None or a == b for a, b in zip(shape, first, strict=True)
            )
            if not same:
                raise self._mismatch(input_shapes, "all inputs must have the same size")
        return first


@register_layer
class Addition(_Elementwise):
    """Element-wise sum of ``num_inputs`` inputs of equal size (residual connections).

    Example:
        >>> import torch
        >>> Addition()(torch.ones(1, 2), torch.ones(1, 2)).tolist()
        [[2.0, 2.0]]
    """

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        result = inputs[0] + inputs[1]
        for x in inputs[2:]:
            result = result + x
        return result


@register_layer
class Multiplication(_Elementwise):
    """Element-wise product of ``num_inputs`` inputs of equal size (gating).

    Example:
        >>> import torch
        >>> Multiplication()(torch.full((1, 2), 3.0), torch.full((1, 2), 2.0)).tolist()
        [[6.0, 6.0]]
    """

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        result = inputs[0] * inputs[1]
        for x in inputs[2:]:
            result = result * x
        return result


@register_layer
class ModeSwitch(Layer):
    """Passes on its ``training`` input in training and its ``evaluation`` input in evaluation.

    :func:`from_torch` puts one where the two sides of an ``if self.training:`` branch meet:
    the layers of each side run only in their own mode (the others give nothing), and the
    switch hands on the value of the current mode. Both inputs have the same size.

    Example:
        >>> switch = ModeSwitch()
        >>> switch.train()(torch.ones(1, 2), None).tolist(), switch.eval()(None, torch.zeros(1, 2)).tolist()
        ([[1.0, 1.0]], [[0.0, 0.0]])
    """

    input_names = ("training", "evaluation")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        in_training, in_evaluation = input_shapes
        if tuple(in_training) != tuple(in_evaluation):
            raise SizeMismatchError(
                f"ModeSwitch: the training side gives size {format_shape(in_training)} but the "
                f"evaluation side {format_shape(in_evaluation)}; both must be the same."
            )
        return tuple(in_evaluation)

    def forward(
        self, in_training: torch.Tensor | None, in_evaluation: torch.Tensor | None
    ) -> torch.Tensor:
        return in_training if self.training else in_evaluation  # type: ignore[return-value]


@register_layer
class Concatenation(_MultiInput):
    """Concatenate inputs along the channel axis (U-Net skips, multi-branch blocks).

    ``axis="channel"`` joins channels (last axis of features/sequences, first of images);
    ``axis="time"`` joins sequences in time; an int picks an axis of the size without batch.

    Example:
        >>> Concatenation().output_shape([(16, 8, 8), (32, 8, 8)])
        (48, 8, 8)
    """

    def __init__(
        self, num_inputs: int = 2, *, axis: str | int = "channel", name: str | None = None
    ) -> None:
        super().__init__(num_inputs, name=name)
        if axis not in ("channel", "time") and (
            isinstance(axis, bool) or not isinstance(axis, int)
        ):
            raise OptionError(
                "Concatenation: `axis` must be 'channel', 'time' or an int. "
                f"Received: axis={axis!r}."
            )
        self.axis = axis
        self._dim = 1

    def _shape_axis(self, rank: int) -> int:
        if self.axis == "channel":
            return rank - 1 if rank <= 2 else 0
        if self.axis == "time":
            if rank != 2:
                raise SizeMismatchError("Concatenation: axis='time' needs sequences (T, C).")
            return 0
        if not -rank <= self.axis < rank:
            raise SizeMismatchError(
                f"Concatenation: axis {self.axis} is outside inputs of rank {rank}."
            )
        return self.axis % rank

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        rank = len(input_shapes[0])
        if any(len(s) != rank for s in input_shapes):
            raise self._mismatch(input_shapes, "inputs must have the same number of dimensions")
        axis = self._shape_axis(rank)
        for shape in input_shapes[1:]:
            for d in range(rank):
                a, b = shape[d], input_shapes[0][d]
                if d != axis and a is not None and b is not None and a != b:
                    raise self._mismatch(input_shapes, f"sizes must agree except on axis {axis}")
        lengths = [s[axis] for s in input_shapes]
        total = None if any(v is None for v in lengths) else sum(lengths)  # type: ignore[arg-type]
        return tuple(total if d == axis else input_shapes[0][d] for d in range(rank))

    def build(self, input_shapes: list[Shape]) -> None:
        super().build(input_shapes)
        self._dim = self._shape_axis(len(input_shapes[0])) + 1

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if not self.is_built:  # used on its own: the channel axis follows the data's rank
            return torch.cat(inputs, dim=self._shape_axis(inputs[0].dim() - 1) + 1)
        return torch.cat(inputs, dim=self._dim)
