"""Pooling layers: max and average pooling over time (sequences) or space (images, volumes),
and global pooling."""

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
from deeptoolbox.layers._conv import Padding, pad_same, parse_padding, sliding_output


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

    Example:
        >>> GlobalAvgPool().output_shape([(64, 7, 7)])
        (64,)
    """

    reduce = "mean"


@register_layer
class GlobalMaxPool(_GlobalPooling):
    """Maximum over all time steps or spatial positions: (N, C, H, W) or (N, T, C) -> (N, C).

    Example:
        >>> GlobalMaxPool().output_shape([(None, 32)])
        (32,)
    """

    reduce = "max"
