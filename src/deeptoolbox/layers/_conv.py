"""Convolution layers: 1-D on sequences (N, T, C), 2-D on images, 3-D on volumes, and their
transposed (upsampling) counterparts.

Padding is ``0`` by default (none, as in MATLAB, Keras and PyTorch), ``"valid"`` (the same: no
padding), ``"same"`` (output length ceil(input / stride), padding split evenly with the extra
element at the end, as in MATLAB and TensorFlow), ``"causal"`` (Conv1d only: dilation x
(kernel - 1) zeros before the first step and none after, so no output step sees a later input
step, as MATLAB's and Keras's causal padding) or explicit ints. Networks saved before the
default changed (``network.json`` format version 1) are read with their old default, ``"same"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deeptoolbox.errors import OptionError, SizeMismatchError
from deeptoolbox.layers._base import (
    Layer,
    Shape,
    as_tuple,
    check_choice,
    check_positive_int,
    format_shape,
    register_layer,
    require_rank,
)
from deeptoolbox.layers._init import (
    BIAS_INITIALIZERS,
    WEIGHT_INITIALIZERS,
    initialize_bias,
    initialize_weight,
)

Padding = str | int | Sequence[int]


def same_padding(length: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """Return (before, after) padding giving an output of length ceil(length / stride).

    Example:
        >>> same_padding(8, 3, 2, 1)
        (0, 1)
    """
    extent = (kernel - 1) * dilation + 1
    total = max((math.ceil(length / stride) - 1) * stride + extent - length, 0)
    return total // 2, total - total // 2


def sliding_output(
    length: int | None, kernel: int, stride: int, dilation: int, pad: int
) -> int | None:
    """Output length of a sliding window (convolution or pooling) with symmetric padding."""
    if length is None:
        return None
    return (length + 2 * pad - (kernel - 1) * dilation - 1) // stride + 1


def parse_padding(
    layer: str, padding: Padding, dims: int, *, causal: bool = False
) -> str | tuple[int, ...]:
    """Validate a padding option: 'same', 'valid' (and 'causal' if allowed), an int or ``dims``
    ints."""
    if isinstance(padding, str):
        allowed = ("same", "valid", "causal") if causal else ("same", "valid")
        return check_choice(layer, "padding", padding, allowed)
    return as_tuple(layer, "padding", padding, dims, minimum=0)


def pad_same(x: torch.Tensor, spatial_first: int, kernel, stride, dilation, value: float = 0.0):
    """Pad the spatial axes of ``x`` (starting at ``spatial_first``) for 'same' output sizes."""
    pads: list[int] = []
    for axis in reversed(range(len(kernel))):
        before, after = same_padding(
            x.shape[spatial_first + axis], kernel[axis], stride[axis], dilation[axis]
        )
        pads += [before, after]
    return F.pad(x, pads, value=value) if any(pads) else x


class _TorchNames:
    """torch.nn.ConvNd's attribute names on a toolbox convolution."""

    padding_mode = "zeros"
    filters: int
    groups: int
    spatial_dims: int

    @property
    def out_channels(self) -> int:
        """Output channels (torch's name for ``filters``)."""
        return self.filters

    @property
    def output_padding(self) -> tuple[int, ...]:
        """Always zeros (torch's ConvTranspose option)."""
        return (0,) * self.spatial_dims


class _Convolution(_TorchNames, Layer):
    """Shared logic of the N-d convolutions (channel-first tensors)."""

    spatial_dims = 2
    channels_last = False  # Conv1d works on (N, T, C)
    transposed = False

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int],
        *,
        stride: int | Sequence[int] = 1,
        padding: Padding = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool = True,
        weights_initializer: str = "glorot",
        bias_initializer: str = "zeros",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        kind, d = type(self).__name__, self.spatial_dims
        self.filters = check_positive_int(kind, "filters", filters, f"{kind}(16, 3)")
        self.kernel_size = as_tuple(kind, "kernel_size", kernel_size, d)
        self.stride = as_tuple(kind, "stride", stride, d)
        self.dilation = as_tuple(kind, "dilation", dilation, d)
        causal = d == 1 and not self.transposed
        self.padding = parse_padding(kind, padding, d, causal=causal)
        self.groups = check_positive_int(kind, "groups", groups, f"{kind}(16, 3, groups=2)")
        if self.filters % self.groups:
            raise OptionError(
                f"{kind}: `filters` ({filters}) must be divisible by `groups` ({groups})."
            )
        self.bias_enabled = bool(bias)
        self.weights_initializer = check_choice(
            kind, "weights_initializer", weights_initializer, WEIGHT_INITIALIZERS
        )
        self.bias_initializer = check_choice(
            kind, "bias_initializer", bias_initializer, BIAS_INITIALIZERS
        )
        self._conv = getattr(F, f"conv{d}d")
        # torch's padding="same" needs stride 1 and warns on uneven padding: pad ourselves then
        uneven = any(
            (k - 1) * dl % 2 for k, dl in zip(self.kernel_size, self.dilation, strict=True)
        )
        self._dynamic_same = self.padding == "same" and (uneven or any(s > 1 for s in self.stride))
        if self.padding in ("valid", "causal"):  # causal: padded in forward
            self._torch_padding: str | tuple[int, ...] = (0,) * d
        elif self.padding == "same":
            self._torch_padding = (0,) * d if self._dynamic_same else "same"
        else:
            self._torch_padding = self.padding

    @property
    def in_channels(self) -> int | None:
        """Input channels (torch's name); None until the layer is built."""
        weight = self._parameters.get("weight")
        return None if weight is None else int(weight.shape[1]) * self.groups

    def causal_padding(self) -> tuple[int, int]:
        """(before, after) steps of zeros for ``padding="causal"``: dilation x (kernel - 1), 0."""
        return (self.dilation[0] * (self.kernel_size[0] - 1), 0)

    def _split(self, shape: Shape) -> tuple[int | None, list[int | None]]:
        if self.channels_last:
            return shape[-1], list(shape[:-1])
        return shape[0], list(shape[1:])

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        kind = type(self).__name__
        what = {1: "sequences (T, C)", 2: "images (C, H, W)", 3: "volumes (C, D, H, W)"}
        require_rank(self, shape, [self.spatial_dims + 1], what[self.spatial_dims])
        channels, lengths = self._split(shape)
        if channels is None or channels % self.groups:
            raise SizeMismatchError(
                f"{kind}: input channels ({channels}) must be divisible by groups ({self.groups})."
            )
        out: list[int | None] = []
        for axis, length in enumerate(lengths):
            k, s, dl = self.kernel_size[axis], self.stride[axis], self.dilation[axis]
            if self.padding in ("same", "causal"):  # causal: ceil(T / s) too
                size = None if length is None else math.ceil(length / s)
            else:
                pad = 0 if self.padding == "valid" else self.padding[axis]
                size = sliding_output(length, k, s, dl, pad)
            if size is not None and size < 1:
                raise SizeMismatchError(
                    f"{kind}: kernel {self.kernel_size} does not fit an input of size "
                    f"{format_shape(shape)} with padding {self.padding!r}."
                )
            out.append(size)
        return (*out, self.filters) if self.channels_last else (self.filters, *out)

    def build(self, input_shapes: list[Shape]) -> None:
        self.output_shape(input_shapes)
        channels, _ = self._split(input_shapes[0])
        self.weight = nn.Parameter(
            torch.empty(self.filters, int(channels) // self.groups, *self.kernel_size)
        )
        initialize_weight(type(self).__name__, self.weight, self.weights_initializer)
        if self.bias_enabled:
            self.bias = nn.Parameter(torch.empty(self.filters))
            initialize_bias(type(self).__name__, self.bias, self.bias_initializer)
        else:
            self.bias = None
        super().build(input_shapes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.transpose(1, 2)
        if self._dynamic_same:
            x = pad_same(x, 2, self.kernel_size, self.stride, self.dilation)
        elif self.padding == "causal":
            x = F.pad(x, self.causal_padding())
        y = self._conv(
            x, self.weight, self.bias, self.stride, self._torch_padding, self.dilation, self.groups
        )
        return y.transpose(1, 2) if self.channels_last else y


@register_layer
class Conv1d(_Convolution, nn.Conv1d):
    """1-D convolution over time on sequences: (N, T, C) in, (N, T', filters) out.

    A ``torch.nn.Conv1d`` for ``isinstance`` and attribute names (``in_channels``,
    ``out_channels``, ``kernel_size``, ``stride``, ``padding``...), with the same weight
    layout, but on (N, T, C) batches: time second, channels last.

    Example:
        >>> import torch
        >>> layer = Conv1d(8, 5)  # no padding: 40 - 5 + 1 = 36 steps
        >>> layer.build([(None, 3)])
        >>> layer(torch.zeros(2, 40, 3)).shape
        torch.Size([2, 36, 8])
        >>> Conv1d(8, 5, padding="same").output_shape([(40, 3)])
        (40, 8)
        >>> Conv1d(8, 3, padding="causal", dilation=2).causal_padding()  # step t sees <= t
        (4, 0)
    """

    spatial_dims = 1
    channels_last = True


@register_layer
class Conv2d(_Convolution, nn.Conv2d):
    """2-D convolution on images: (N, C, H, W) in, (N, filters, H', W') out.

    A ``torch.nn.Conv2d`` for ``isinstance`` and attribute names (``in_channels``,
    ``out_channels``, ``kernel_size``, ``stride``, ``padding``...).

    Example:
        >>> import torch
        >>> layer = Conv2d(16, 3, stride=2, padding="same")
        >>> layer.build([(3, 32, 32)])
        >>> layer(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 16, 16, 16])
        >>> Conv2d(1, 4).output_shape([(1, 4, 4)])  # no padding by default, as in MATLAB
        (1, 1, 1)
    """

    spatial_dims = 2


@register_layer
class Conv3d(_Convolution, nn.Conv3d):
    """3-D convolution on volumes: (N, C, D, H, W) in, (N, filters, D', H', W') out.

    A ``torch.nn.Conv3d`` for ``isinstance`` and attribute names.

    Example:
        >>> Conv3d(4, 3).output_shape([(1, 8, 8, 8)])
        (4, 6, 6, 6)
    """

    spatial_dims = 3


class _TransposedConvolution(_TorchNames, Layer):
    """Shared logic of the N-d transposed convolutions (upsampling), MATLAB's
    transposedConv1dLayer / transposedConv2dLayer / transposedConv3dLayer.

    ``cropping="same"`` crops (k - s) in total on each axis, the odd extra at the end: the exact
    transpose of the convolution's ``padding="same"``, as in Keras and ONNX's SAME_UPPER.
    """

    spatial_dims = 2
    channels_last = False
    transposed = True
    groups = 1

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int],
        *,
        stride: int | Sequence[int] = 1,
        cropping: str | int | Sequence[int] = 0,
        bias: bool = True,
        weights_initializer: str = "glorot",
        bias_initializer: str = "zeros",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        kind, d = type(self).__name__, self.spatial_dims
        self.filters = check_positive_int(kind, "filters", filters, f"{kind}(16, 4)")
        self.kernel_size = as_tuple(kind, "kernel_size", kernel_size, d)
        self.stride = as_tuple(kind, "stride", stride, d)
        self.bias_enabled = bool(bias)
        self.weights_initializer = check_choice(
            kind, "weights_initializer", weights_initializer, WEIGHT_INITIALIZERS
        )
        self.bias_initializer = check_choice(
            kind, "bias_initializer", bias_initializer, BIAS_INITIALIZERS
        )
        self.trim = (0,) * d
        if cropping == "same":
            pairs = list(zip(self.kernel_size, self.stride, strict=True))
            for k, s in pairs:
                if k < s:
                    raise OptionError(
                        f"{kind}: cropping='same' needs kernel_size >= stride; received "
                        f"kernel_size={self.kernel_size}, stride={self.stride}."
                    )
            self.padding = tuple((k - s) // 2 for k, s in pairs)
            self.trim = tuple((k - s) % 2 for k, s in pairs)
        else:
            self.padding = as_tuple(kind, "cropping", cropping, d, minimum=0)
        self.cropping = cropping

    @property
    def dilation(self) -> tuple[int, ...]:
        """Always ones (torch's ConvTranspose option)."""
        return (1,) * self.spatial_dims

    @property
    def in_channels(self) -> int | None:
        """Input channels (torch's name); None until the layer is built."""
        weight = self._parameters.get("weight")
        return None if weight is None else int(weight.shape[0])

    def _split(self, shape: Shape) -> tuple[int | None, list[int | None]]:
        if self.channels_last:
            return shape[-1], list(shape[:-1])
        return shape[0], list(shape[1:])

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        what = {1: "sequences (T, C)", 2: "images (C, H, W)", 3: "volumes (C, D, H, W)"}
        require_rank(self, shape, [self.spatial_dims + 1], what[self.spatial_dims])
        _, lengths = self._split(shape)
        sizes: list[int | None] = []
        for axis, length in enumerate(lengths):
            if length is None:
                sizes.append(None)
                continue
            k, s = self.kernel_size[axis], self.stride[axis]
            size = (length - 1) * s - 2 * self.padding[axis] + k - self.trim[axis]
            if size < 1:
                raise SizeMismatchError(
                    f"{type(self).__name__}: cropping {self.cropping!r} leaves no output for an "
                    f"input of size {format_shape(shape)}."
                )
            sizes.append(size)
        return (*sizes, self.filters) if self.channels_last else (self.filters, *sizes)

    def build(self, input_shapes: list[Shape]) -> None:
        self.output_shape(input_shapes)
        kind = type(self).__name__
        channels, _ = self._split(input_shapes[0])
        weight = torch.empty(int(channels), self.filters, *self.kernel_size)  # type: ignore[arg-type]
        self.weight = nn.Parameter(weight)
        initialize_weight(kind, self.weight, self.weights_initializer)
        if self.bias_enabled:
            self.bias = nn.Parameter(torch.empty(self.filters))
            initialize_bias(kind, self.bias, self.bias_initializer)
        else:
            self.bias = None
        super().build(input_shapes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.transpose(1, 2)
        conv = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[self.spatial_dims - 1]
        y = conv(x, self.weight, self.bias, self.stride, self.padding)
        if any(self.trim):
            y = y[(..., *(slice(0, -t if t else None) for t in self.trim))]
        return y.transpose(1, 2) if self.channels_last else y


@register_layer
class TransposedConv1d(_TransposedConvolution, nn.ConvTranspose1d):
    """1-D transposed convolution over time on sequences: (N, T, C) in, (N, T', filters) out
    (MATLAB's transposedConv1dLayer).

    ``cropping="same"`` gives T' = T * stride; an int crops that many steps from each end.
    ``weight`` is (C, filters, k) like ``torch.nn.ConvTranspose1d``, which it is for
    ``isinstance`` and attribute names, but on (N, T, C) batches like :class:`Conv1d`.

    Example:
        >>> import torch
        >>> layer = TransposedConv1d(4, 3, stride=2, cropping="same")
        >>> layer.build([(None, 8)])
        >>> layer(torch.zeros(2, 10, 8)).shape
        torch.Size([2, 20, 4])
        >>> TransposedConv1d(4, 3).output_shape([(10, 8)])  # no cropping: (10 - 1) + 3
        (12, 4)
    """

    spatial_dims = 1
    channels_last = True


@register_layer
class TransposedConv2d(_TransposedConvolution, nn.ConvTranspose2d):
    """2-D transposed convolution (upsampling), as in MATLAB's transposedConv2dLayer.

    ``cropping="same"`` gives an output of size input * stride (the exact transpose of
    ``Conv2d(padding="same")``: an odd crop takes the extra row/column at the bottom/right);
    an int crops that many pixels from each side. ``weight`` is (in_channels, filters, kh, kw) like
    ``torch.nn.ConvTranspose2d``, which it is for ``isinstance`` and attribute names
    (``padding`` is the crop on each side).

    Example:
        >>> import torch
        >>> layer = TransposedConv2d(8, 4, stride=2, cropping="same")
        >>> layer.build([(16, 7, 7)])
        >>> layer(torch.zeros(1, 16, 7, 7)).shape
        torch.Size([1, 8, 14, 14])
    """

    spatial_dims = 2


@register_layer
class TransposedConv3d(_TransposedConvolution, nn.ConvTranspose3d):
    """3-D transposed convolution on volumes: (N, C, D, H, W) in, (N, filters, D', H', W') out
    (MATLAB's transposedConv3dLayer).

    ``cropping`` as for :class:`TransposedConv2d`; ``weight`` is (C, filters, kd, kh, kw) like
    ``torch.nn.ConvTranspose3d``.

    Example:
        >>> TransposedConv3d(2, 2, stride=2).output_shape([(4, 3, 5, 5)])
        (2, 6, 10, 10)
        >>> TransposedConv3d(2, 3, stride=2, cropping="same").output_shape([(4, 3, 5, 5)])
        (2, 6, 10, 10)
    """

    spatial_dims = 3
