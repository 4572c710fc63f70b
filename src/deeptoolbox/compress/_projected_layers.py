"""Projected layers: a learned projection onto ``components`` directions, then a smaller layer.

``ProjectedDense(units, components)`` computes ``W (P x) + b`` with ``P`` of size
(components, inputs) and ``W`` of size (units, components), so it holds
``components * (inputs + units) + units`` learnables instead of ``units * (inputs + 1)``
(MATLAB's projected fully connected layer). The convolutions project their input channels
(a 1 x 1 convolution) before a convolution with ``components`` input channels; LSTM and GRU
project both their input and their hidden state (MATLAB's ``lstmProjectedLayer`` and
``gruProjectedLayer``). :func:`~deeptoolbox.compress.project` makes them from a trained
network; :func:`~deeptoolbox.compress.unpack_projected` multiplies them back.

Each is an affine map (Dense, convolutions) or a recurrent layer, saves and loads like any
registered layer and exports to ONNX. The projection lives in a submodule (``projection``)
whose parameter is called ``weight``, so interval bounds treat both factors soundly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deeptoolbox.layers import Conv1d, Conv2d, Dense
from deeptoolbox.layers._base import (
    Layer,
    Shape,
    check_choice,
    check_positive_int,
    known,
    product,
    register_layer,
    require_rank,
)


class Projection(nn.Module):
    """A bias-free linear map on the channel axis: ``weight`` is (components, channels)."""

    def __init__(self, components: int, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(components, channels))
        nn.init.orthogonal_(self.weight)

    def forward(self, x: torch.Tensor, channel_axis: int = -1) -> torch.Tensor:
        if channel_axis == -1:
            return F.linear(x, self.weight)
        return torch.einsum("kc,nc...->nk...", self.weight, x)


def _check_components(kind: str, value: object) -> int:
    return check_positive_int(kind, "components", value, f"{kind}(..., components=8)")


@register_layer
class ProjectedDense(Layer):
    """A fully connected layer whose input is first projected onto ``components`` directions.

    Example:
        >>> import torch
        >>> layer = ProjectedDense(10, 4)
        >>> layer.build([(64,)])
        >>> layer(torch.zeros(2, 64)).shape, sum(p.numel() for p in layer.parameters())
        (torch.Size([2, 10]), 306)
    """

    is_affine = True

    def __init__(
        self, units: int, components: int, *, bias: bool = True, name: str | None = None
    ) -> None:
        super().__init__(name=name)
        self.units = check_positive_int("ProjectedDense", "units", units, "ProjectedDense(10, 4)")
        self.components = _check_components("ProjectedDense", components)
        self.bias_enabled = bool(bias)
        self.flatten_input = False

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        return Dense(self.units).output_shape(input_shapes)

    def build(self, input_shapes: list[Shape]) -> None:
        self.output_shape(input_shapes)
        (shape,) = input_shapes
        self.flatten_input = len(shape) >= 3
        inputs = int(shape[-1]) if len(shape) <= 2 else product(shape)  # type: ignore[arg-type]
        self.projection = Projection(self.components, inputs)
        self.weight = nn.Parameter(torch.empty(self.units, self.components))
        nn.init.xavier_uniform_(self.weight)
        self.bias = nn.Parameter(torch.zeros(self.units)) if self.bias_enabled else None
        super().build(input_shapes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.flatten_input:
            x = x.flatten(1)
        return F.linear(self.projection(x), self.weight, self.bias)


class _ProjectedConvolution(Layer):
    base: type = Conv2d
    is_affine = True

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int],
        components: int,
        *,
        stride: int | Sequence[int] = 1,
        padding: str | int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        bias: bool = True,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        kind = type(self).__name__
        self.components = _check_components(kind, components)
        self.filters = filters
        self.kernel_size = kernel_size
        self.conv = self.base(
            filters, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=bias
        )

    def _projected_shape(self, shape: Shape) -> Shape:
        if self.base is Conv1d:
            return (*shape[:-1], self.components)
        return (self.components, *shape[1:])

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        require_rank(self, shape, [self.conv.spatial_dims + 1], "its convolution's input")
        return self.conv.output_shape([self._projected_shape(shape)])

    def build(self, input_shapes: list[Shape]) -> None:
        self.output_shape(input_shapes)
        (shape,) = input_shapes
        channels = int(shape[-1] if self.base is Conv1d else shape[0])  # type: ignore[arg-type]
        self.projection = Projection(self.components, channels)
        self.conv.build([self._projected_shape(shape)])
        super().build(input_shapes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        axis = -1 if self.base is Conv1d else 1
        return self.conv(self.projection(x, axis))


@register_layer
class ProjectedConv1d(_ProjectedConvolution):
    """A 1-D convolution on sequences (N, T, C) whose input channels are projected first.

    Example:
        >>> import torch
        >>> layer = ProjectedConv1d(8, 3, 2, padding=1)
        >>> layer.build([(None, 6)])
        >>> layer(torch.zeros(2, 10, 6)).shape
        torch.Size([2, 10, 8])
    """

    base = Conv1d


@register_layer
class ProjectedConv2d(_ProjectedConvolution):
    """A 2-D convolution whose input channels are projected onto ``components`` first.

    Example:
        >>> import torch
        >>> layer = ProjectedConv2d(16, 3, 4, padding=1)
        >>> layer.build([(32, 8, 8)])
        >>> layer(torch.zeros(1, 32, 8, 8)).shape
        torch.Size([1, 16, 8, 8])
    """

    base = Conv2d


class _ProjectedRecurrent(Layer):
    cell = "lstm"

    def __init__(
        self,
        hidden_size: int,
        input_components: int,
        hidden_components: int,
        *,
        output_mode: str = "sequence",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        kind = type(self).__name__
        example = f"{kind}(64, 8, 16)"
        self.hidden_size = check_positive_int(kind, "hidden_size", hidden_size, example)
        self.input_components = check_positive_int(kind, "input_components", input_components,
                                                   example)  # fmt: skip
        self.hidden_components = check_positive_int(kind, "hidden_components", hidden_components,
                                                    example)  # fmt: skip
        self.output_mode = check_choice(kind, "output_mode", output_mode, ("sequence", "last"))
        self.gates = 4 if self.cell == "lstm" else 3

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        require_rank(self, shape, [2], "sequences (T, C)")
        known(self, shape, [1], "number of channels")
        hidden = self.hidden_size
        return (shape[0], hidden) if self.output_mode == "sequence" else (hidden,)

    def build(self, input_shapes: list[Shape]) -> None:
        self.output_shape(input_shapes)
        channels, hidden = int(input_shapes[0][1]), self.hidden_size  # type: ignore[arg-type]
        rows = self.gates * hidden
        self.input_projection = Projection(self.input_components, channels)
        self.hidden_projection = Projection(self.hidden_components, hidden)
        cell = nn.LSTM if self.cell == "lstm" else nn.GRU
        self.rnn = cell(self.input_components, hidden, batch_first=True)
        del self.rnn.weight_hh_l0  # computed: recurrent_weight @ hidden_projection.weight
        self.recurrent_weight = nn.Parameter(torch.empty(rows, self.hidden_components))
        nn.init.xavier_uniform_(self.recurrent_weight)
        super().build(input_shapes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        recurrent = self.recurrent_weight @ self.hidden_projection.weight
        try:
            output, state = torch.func.functional_call(
                self.rnn, {"weight_hh_l0": recurrent}, (self.input_projection(x),), strict=False
            )
        finally:  # drop the computed weight from the RNN's cached list (copies, pickles)
            self.rnn._init_flat_weights()
        if self.output_mode == "sequence":
            return output
        return (state[0] if self.cell == "lstm" else state)[-1]


@register_layer
class ProjectedLSTM(_ProjectedRecurrent):
    """An LSTM whose input and hidden state are projected (MATLAB's ``lstmProjectedLayer``):
    the input weights act on ``input_components`` directions of the input, the recurrent
    weights on ``hidden_components`` directions of the hidden state.

    Example:
        >>> import torch
        >>> layer = ProjectedLSTM(16, 3, 4, output_mode="last")
        >>> layer.build([(None, 8)])
        >>> layer(torch.zeros(2, 5, 8)).shape
        torch.Size([2, 16])
    """

    cell = "lstm"


@register_layer
class ProjectedGRU(_ProjectedRecurrent):
    """A GRU whose input and hidden state are projected (MATLAB's ``gruProjectedLayer``).

    Example:
        >>> import torch
        >>> layer = ProjectedGRU(12, 3, 4)
        >>> layer.build([(None, 8)])
        >>> layer(torch.zeros(2, 5, 8)).shape
        torch.Size([2, 5, 12])
    """

    cell = "gru"


PROJECTED = (ProjectedDense, ProjectedConv1d, ProjectedConv2d, ProjectedLSTM, ProjectedGRU)
