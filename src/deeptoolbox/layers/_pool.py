"""Pooling layers: max and average pooling over time (sequences) or space (images, volumes),
global and adaptive average pooling, and max unpooling."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from deeptoolbox.errors import OptionError, SizeMismatchError
from deeptoolbox.layers._base import (
    Layer,
    Shape,
    as_tuple,
    format_shape,
    register_layer,
    require_rank,
)
from deeptoolbox.layers._conv import (
    Padding,
    pad_same,
    parse_padding,
    same_padding,
    sliding_output,
)


class _Pooling(Layer):
    """Shared logic of the windowed pooling layers."""

    spatial_dims = 2
    channels_last = False
    mode = "max"

    def __init__(
        self,
        pool_size: int | Sequence[int],
        *,
        stride: int | Sequence[int] | None = None,
        padding: Padding = 0,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        kind, d = type(self).__name__, self.spatial_dims
        self.pool_size = as_tuple(kind, "pool_size", pool_size, d)
        self.stride = self.pool_size if stride is None else as_tuple(kind, "stride", stride, d)
        padding = 0 if padding == "valid" else padding
        self.padding = parse_padding(kind, padding, d)
        if not isinstance(self.padding, str):
            for pad, size in zip(self.padding, self.pool_size, strict=True):
                if pad > size // 2:
                    raise OptionError(
                        f"{kind}: `padding` must be at most half the pool size; received "
                        f"padding={padding!r} with pool_size={self.pool_size}."
                    )
        self._fill = float("-inf") if self.mode == "max" else 0.0

    @property
    def _pool(self):
        # looked up, not stored: F.max_pool*d are local functions that cannot be pickled
        return getattr(F, f"{self.mode}_pool{self.spatial_dims}d")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        what = {1: "sequences (T, C)", 2: "images (C, H, W)", 3: "volumes (C, D, H, W)"}
        what = what[self.spatial_dims]
        require_rank(self, shape, [self.spatial_dims + 1], what)
        lengths = shape[:-1] if self.channels_last else shape[1:]
        sizes: list[int | None] = []
        for axis, length in enumerate(lengths):
            k, s = self.pool_size[axis], self.stride[axis]
            if self.padding == "same":
                size = None if length is None else math.ceil(length / s)
            else:
                size = sliding_output(length, k, s, 1, self.padding[axis])
            if size is not None and size < 1:
                raise SizeMismatchError(
                    f"{type(self).__name__}: pool size {self.pool_size} is larger than the input "
                    f"{format_shape(shape)}."
                )
            sizes.append(size)
        return (*sizes, shape[-1]) if self.channels_last else (shape[0], *sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.transpose(1, 2)
        if self.padding == "same":
            x = pad_same(x, 2, self.pool_size, self.stride, (1,) * self.spatial_dims, self._fill)
            y = self._pool(x, self.pool_size, self.stride)
        else:
            y = self._pool(x, self.pool_size, self.stride, self.padding)
        return y.transpose(1, 2) if self.channels_last else y


@register_layer
class MaxPool1d(_Pooling):
    """Max pooling over time on sequences (N, T, C).

    Example:
        >>> MaxPool1d(2).output_shape([(100, 8)])
        (50, 8)
    """

    spatial_dims, channels_last, mode = 1, True, "max"


@register_layer
class AvgPool1d(_Pooling):
    """Average pooling over time on sequences (N, T, C).

    Example:
        >>> AvgPool1d(4, stride=2).output_shape([(None, 8)])
        (None, 8)
    """

    spatial_dims, channels_last, mode = 1, True, "avg"


@register_layer
class MaxPool2d(_Pooling):
    """Max pooling over height and width of images (N, C, H, W).

    Example:
        >>> MaxPool2d(2).output_shape([(16, 28, 28)])
        (16, 14, 14)
    """

    spatial_dims, channels_last, mode = 2, False, "max"


@register_layer
class AvgPool2d(_Pooling):
    """Average pooling over height and width of images (N, C, H, W).

    Example:
        >>> AvgPool2d(2, padding="same").output_shape([(16, 7, 7)])
        (16, 4, 4)
    """

    spatial_dims, channels_last, mode = 2, False, "avg"


@register_layer
class MaxPool3d(_Pooling):
    """Max pooling over depth, height and width of volumes (N, C, D, H, W)
    (MATLAB's maxPooling3dLayer).

    Example:
        >>> MaxPool3d(2).output_shape([(4, 8, 8, 6)])
        (4, 4, 4, 3)
    """

    spatial_dims, channels_last, mode = 3, False, "max"


@register_layer
class AvgPool3d(_Pooling):
    """Average pooling over depth, height and width of volumes (N, C, D, H, W); padding counts
    as zeros (MATLAB's averagePooling3dLayer).

    Example:
        >>> AvgPool3d((1, 2, 2), padding="same").output_shape([(4, 3, 7, 7)])
        (4, 3, 4, 4)
    """

    spatial_dims, channels_last, mode = 3, False, "avg"


@register_layer
class AvgPoolExcludingPadding(Layer):
    """Average pooling with "same" output sizes whose averages leave the padding out.

    Keras's (and TensorFlow's) ``AveragePooling1D/2D/3D(padding="same")``: each output is the
    mean of the input values its window covers, so border outputs average fewer values.
    One spatial axis works on sequences (N, T, C), two on images (N, C, H, W), three on
    volumes (N, C, D, H, W).

    Example:
        >>> layer = AvgPoolExcludingPadding([3], stride=[1])
        >>> layer(torch.tensor([[[3.0], [6.0], [9.0]]])).flatten().tolist()
        [4.5, 6.0, 7.5]
    """

    def __init__(
        self,
        pool_size: Sequence[int],
        *,
        stride: Sequence[int] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        dims = len(pool_size) if isinstance(pool_size, Sequence) else 0
        if dims not in (1, 2, 3):
            raise OptionError(
                "AvgPoolExcludingPadding: `pool_size` must list 1 (sequences), 2 (images) or 3 "
                f"(volumes) sizes. Received: pool_size={pool_size!r}."
            )
        kind = "AvgPoolExcludingPadding"
        self.pool_size = as_tuple(kind, "pool_size", tuple(pool_size), dims)
        self.stride = as_tuple(kind, "stride", tuple(stride or pool_size), dims)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        dims = len(self.pool_size)
        what = {1: "sequences (T, C)", 2: "images (C, H, W)", 3: "volumes (C, D, H, W)"}
        require_rank(self, shape, [dims + 1], what[dims])
        lengths = shape[:1] if dims == 1 else shape[1:]
        sizes = [
            None if n is None else math.ceil(n / s)
            for n, s in zip(lengths, self.stride, strict=True)
        ]
        return (*sizes, shape[1]) if dims == 1 else (shape[0], *sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        one_dim = len(self.pool_size) == 1
        if one_dim:
            x = x.transpose(1, 2)
        ones = torch.ones_like(x[:1, :1])
        pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[len(self.pool_size)]
        dilation = (1,) * len(self.pool_size)

        def pooled(t: torch.Tensor) -> torch.Tensor:
            return pool(pad_same(t, 2, self.pool_size, self.stride, dilation), self.pool_size,
                        self.stride)  # fmt: skip

        y = pooled(x) / pooled(ones)
        return y.transpose(1, 2) if one_dim else y


class _GlobalPooling(Layer):
    reduce = "mean"

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        rank = require_rank(self, shape, [2, 3, 4], "sequences, images or volumes")
        return (shape[-1],) if rank == 2 else (shape[0],)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = (1,) if x.dim() == 3 else tuple(range(2, x.dim()))
        if self.reduce == "mean":
            return x.mean(dim=dims)
        return x.amax(dim=dims)


@register_layer
class GlobalAvgPool(_GlobalPooling):
    """Average over all time steps or spatial positions: (N, C, H, W) or (N, T, C) -> (N, C).

    With ``has_padding_mask=True`` the layer takes sequences (N, T, C) and gets a second input
    port, ``mask``: (N, T) or (N, T, 1), nonzero for real steps (a
    :class:`~deeptoolbox.layers.PaddingMask` makes one). It then averages the real steps only
    (Keras's ``GlobalAveragePooling1D`` after a padding mask); a sequence with no real step
    gives NaN, as in Keras.

    Example:
        >>> GlobalAvgPool().output_shape([(64, 7, 7)])
        (64,)
        >>> x = torch.tensor([[[1.0], [3.0], [9.0]]])
        >>> GlobalAvgPool(has_padding_mask=True)(x, torch.tensor([[1, 1, 0]])).tolist()
        [[2.0]]
    """

    reduce = "mean"

    def __init__(self, *, has_padding_mask: bool = False, name: str | None = None) -> None:
        super().__init__(name=name)
        self.has_padding_mask = bool(has_padding_mask)
        if self.has_padding_mask:
            self.input_names = ("in", "mask")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        if not self.has_padding_mask:
            return super().output_shape(input_shapes)
        shape, mask = input_shapes
        require_rank(self, shape, [2], "sequences (T, C) with a padding mask")
        if len(mask) not in (1, 2) or (len(mask) == 2 and mask[1] != 1):
            raise SizeMismatchError(
                f"GlobalAvgPool: the mask input must be (T,) or (T, 1); received "
                f"{format_shape(mask)}."
            )
        return (shape[1],)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            return super().forward(x)
        keep = (mask.reshape(x.shape[0], -1) != 0).unsqueeze(-1)
        total = torch.where(keep, x, torch.zeros_like(x)).sum(1)
        return total / keep.to(x.dtype).sum(1)


@register_layer
class GlobalMaxPool(_GlobalPooling):
    """Maximum over all time steps or spatial positions: (N, C, H, W) or (N, T, C) -> (N, C).

    Example:
        >>> GlobalMaxPool().output_shape([(None, 32)])
        (32,)
    """

    reduce = "max"


class _AdaptiveAvgPooling(Layer):
    """Average pooling to a fixed output size: window ``i`` of an axis of length n covers
    positions floor(i * n / m) to ceil((i + 1) * n / m) - 1 for m outputs (torch's rule)."""

    spatial_dims = 2
    channels_last = False

    def __init__(self, output_size: int | Sequence[int], *, name: str | None = None) -> None:
        super().__init__(name=name)
        kind = type(self).__name__
        self.output_size = as_tuple(kind, "output_size", output_size, self.spatial_dims)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        what = {1: "sequences (T, C)", 2: "images (C, H, W)", 3: "volumes (C, D, H, W)"}
        require_rank(self, shape, [self.spatial_dims + 1], what[self.spatial_dims])
        lengths = shape[:-1] if self.channels_last else shape[1:]
        for length, size in zip(lengths, self.output_size, strict=True):
            if length is not None and length < size:
                raise SizeMismatchError(
                    f"{type(self).__name__}: output_size {self.output_size} is larger than the "
                    f"input {format_shape(shape)}; every output needs at least one input position."
                )
        if self.channels_last:
            return (*self.output_size, shape[-1])
        return (shape[0], *self.output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.transpose(1, 2)
        lengths = x.shape[2:]
        uneven = [
            isinstance(n, int) and n % m != 0
            for n, m in zip(lengths, self.output_size, strict=True)
        ]
        if any(uneven):  # windows of different sizes: a matrix per axis (ONNX: MatMul)
            for axis, (n, m) in enumerate(zip(lengths, self.output_size, strict=True)):
                if n != m:
                    matrix = adaptive_matrix(n, m, x.dtype, x.device)
                    x = (x.movedim(2 + axis, -1) @ matrix.T).movedim(-1, 2 + axis)
            y = x
        else:  # equal windows (ONNX: AveragePool) or a free length
            pool = (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)
            y = pool[self.spatial_dims - 1](x, self.output_size)
        return y.transpose(1, 2) if self.channels_last else y


def adaptive_matrix(length: int, size: int, dtype=None, device=None) -> torch.Tensor:
    """(size, length) matrix averaging the adaptive-pooling windows of one axis.

    Example:
        >>> adaptive_matrix(3, 2).tolist()
        [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]]
    """
    matrix = torch.zeros(size, length, dtype=dtype, device=device)
    for i in range(size):
        start, end = (i * length) // size, -((-(i + 1) * length) // size)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


@register_layer
class AdaptiveAvgPool1d(_AdaptiveAvgPooling):
    """Average pooling of sequences (N, T, C) to ``output_size`` steps, whatever T is.

    Example:
        >>> AdaptiveAvgPool1d(4).output_shape([(None, 8)])
        (4, 8)
    """

    spatial_dims, channels_last = 1, True


@register_layer
class AdaptiveAvgPool2d(_AdaptiveAvgPooling):
    """Average pooling of images (N, C, H, W) to ``output_size`` (h, w)
    (MATLAB's adaptiveAveragePooling2dLayer).

    Example:
        >>> import torch
        >>> layer = AdaptiveAvgPool2d((2, 3))
        >>> layer.output_shape([(16, 7, 9)])
        (16, 2, 3)
        >>> layer(torch.ones(1, 16, 7, 9)).shape
        torch.Size([1, 16, 2, 3])
    """

    spatial_dims = 2


@register_layer
class AdaptiveAvgPool3d(_AdaptiveAvgPooling):
    """Average pooling of volumes (N, C, D, H, W) to ``output_size`` (d, h, w).

    Example:
        >>> AdaptiveAvgPool3d(2).output_shape([(4, 5, 6, 7)])
        (4, 2, 2, 2)
    """

    spatial_dims = 3


@register_layer
class MaxUnpooling2d(Layer):
    """Puts values back where a :class:`MaxPool2d` found its maxima, zeros elsewhere
    (MATLAB's maxUnpooling2dLayer).

    Two inputs: ``in``, the values to unpool, of the pooled size, and ``reference``, the input of
    the matching max pooling (its size is the output size). The positions are those of the
    maxima of ``reference`` under a max pooling with the same ``pool_size``, ``stride`` and
    ``padding`` (give the pooling layer's), so the ``reference`` port stands for MATLAB's
    ``indices`` and ``size`` inputs together. With overlapping windows a position two windows
    picked keeps one of their values (as torch's ``max_unpool2d`` and ONNX's ``MaxUnpool``).

    Example:
        >>> import torch
        >>> from deeptoolbox import Network
        >>> from deeptoolbox import layers as L
        >>> net = Network([L.ImageInput((1, 4, 4), name="x"), L.MaxPool2d(2, name="pool"),
        ...                L.ReLU(name="relu"), L.MaxUnpooling2d(2, name="unpool")])
        >>> _ = net.connect("x", "unpool/reference")
        >>> net.output_shape()
        (1, 4, 4)
        >>> y = net(torch.arange(16.0).reshape(1, 1, 4, 4))
        >>> y[0, 0].tolist()[1]
        [0.0, 5.0, 0.0, 7.0]
    """

    input_names = ("in", "reference")

    def __init__(
        self,
        pool_size: int | Sequence[int],
        *,
        stride: int | Sequence[int] | None = None,
        padding: Padding = 0,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        pooling = MaxPool2d(pool_size, stride=stride, padding=padding)  # validates the options
        self.pool_size, self.stride, self.padding = (
            pooling.pool_size,
            pooling.stride,
            pooling.padding,
        )

    def _pooling(self) -> MaxPool2d:
        return MaxPool2d(self.pool_size, stride=self.stride, padding=self.padding)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        values, reference = input_shapes
        require_rank(self, values, [3], "pooled images (C, h, w) on its 'in' input")
        require_rank(self, reference, [3], "images (C, H, W) on its 'reference' input")
        pooled = self._pooling().output_shape([reference])
        if tuple(values) != tuple(pooled):
            raise SizeMismatchError(
                f"MaxUnpooling2d: its 'in' input has size {format_shape(values)}, but pooling "
                f"the 'reference' input {format_shape(reference)} with pool_size="
                f"{self.pool_size}, stride={self.stride}, padding={self.padding!r} gives "
                f"{format_shape(pooled)}. Connect the input of the matching MaxPool2d to "
                "'reference' and give MaxUnpooling2d that layer's options."
            )
        return tuple(reference)

    def forward(self, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        height, width = reference.shape[-2:]
        pads, start = self.padding, (0, 0)
        if pads == "same":  # pad as the pooling did, unpool onto the padded plane, crop
            reference = pad_same(reference, 2, self.pool_size, self.stride, (1, 1), float("-inf"))
            pads = (0, 0)
            start = tuple(
                same_padding(n, k, s, 1)[0]
                for n, k, s in zip((height, width), self.pool_size, self.stride, strict=True)
            )
        with torch.no_grad():
            _, indices = F.max_pool2d(
                reference, self.pool_size, self.stride, pads, return_indices=True
            )
        # torch's max_unpool2d as a scatter, which ONNX writes as one ScatterElements node
        n, c, plane = x.shape[0], x.shape[1], reference.shape[-2:]
        flat = x.new_zeros(n, c, plane[0] * plane[1])
        y = flat.scatter(2, indices.flatten(2), x.flatten(2)).reshape(n, c, plane[0], plane[1])
        if self.padding == "same":
            y = y[..., start[0] : start[0] + height, start[1] : start[1] + width]
        return y
