"""Layers that change the size of data: Flatten, Reshape, Resize2d, Resize3d, DepthToSpace,
SpaceToDepth."""

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
    check_choice,
    format_shape,
    known,
    product,
    register_layer,
    require_rank,
)


@register_layer
class Flatten(Layer):
    """Flatten each observation to a feature vector: (N, C, H, W) -> (N, C*H*W).

    Example:
        >>> Flatten().output_shape([(16, 4, 4)])
        (256,)
    """

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        known(self, shape, range(len(shape)), "size")
        return (product(shape),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


@register_layer
class Reshape(Layer):
    """Reshape each observation to ``target_shape`` (batch dimension excluded; one -1 allowed).

    Example:
        >>> Reshape((64, 4, 4)).output_shape([(1024,)])
        (64, 4, 4)
    """

    def __init__(self, target_shape: Sequence[int], *, name: str | None = None) -> None:
        super().__init__(name=name)
        valid = (
            isinstance(target_shape, Sequence)
            and len(target_shape) >= 1
            and all(isinstance(d, int) and not isinstance(d, bool) for d in target_shape)
            and all(d >= 1 or d == -1 for d in target_shape)
            and list(target_shape).count(-1) <= 1
        )
        if not valid:
            raise OptionError(
                "Reshape: `target_shape` must be a sequence of positive ints with at most one -1. "
                f"Received: target_shape={target_shape!r}. Example: Reshape((64, 4, 4))."
            )
        self.target_shape = tuple(target_shape)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        known(self, shape, range(len(shape)), "size")
        total = product(shape)
        fixed = math.prod(d for d in self.target_shape if d != -1)
        if (-1 in self.target_shape and total % fixed) or (
            -1 not in self.target_shape and total != fixed
        ):
            raise SizeMismatchError(
                f"Reshape: cannot reshape an input of size {format_shape(shape)} ({total} values) "
                f"to {self.target_shape}."
            )
        return tuple(total // fixed if d == -1 else d for d in self.target_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.target_shape)


class _Resize(Layer):
    """Shared logic of Resize2d and Resize3d: a ``scale`` factor or an ``output_size``."""

    spatial_dims = 2
    methods: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        scale: float | Sequence[float] | None = None,
        output_size: int | Sequence[int] | None = None,
        method: str = "nearest",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        kind, d = type(self).__name__, self.spatial_dims
        if (scale is None) == (output_size is None):
            raise OptionError(
                f"{kind}: give exactly one of `scale` or `output_size`. Received: "
                f"scale={scale!r}, output_size={output_size!r}. Example: {kind}(scale=2)."
            )
        self.method = check_choice(kind, "method", method, self.methods)
        self.output_size = (
            None if output_size is None else as_tuple(kind, "output_size", output_size, d)
        )
        self.scale = None
        if scale is not None:
            scales = (scale,) * d if isinstance(scale, int | float) else tuple(scale)
            if len(scales) != d or not all(
                isinstance(s, int | float) and not isinstance(s, bool) and s > 0 for s in scales
            ):
                count = {2: "two", 3: "three"}[d]
                raise OptionError(
                    f"{kind}: `scale` must be a positive number or {count}. "
                    f"Received: scale={scale!r}."
                )
            self.scale = tuple(float(s) for s in scales)
        self._align = False if self.method != "nearest" else None

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        what = {2: "images (C, H, W)", 3: "volumes (C, D, H, W)"}[self.spatial_dims]
        require_rank(self, shape, [self.spatial_dims + 1], what)
        if self.output_size is not None:
            return (shape[0], *self.output_size)
        return (shape[0], *(math.floor(d * s) for d, s in zip(shape[1:], self.scale, strict=True)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.output_size is not None:
            return F.interpolate(
                x, size=self.output_size, mode=self.method, align_corners=self._align
            )
        return F.interpolate(
            x, scale_factor=self.scale, mode=self.method, align_corners=self._align
        )


@register_layer
class Resize2d(_Resize):
    """Resize images by a ``scale`` factor or to an ``output_size`` (H, W).

    ``method`` is ``"nearest"``, ``"bilinear"`` or ``"bicubic"``.

    Example:
        >>> Resize2d(scale=2).output_shape([(3, 16, 16)])
        (3, 32, 32)
    """

    spatial_dims, methods = 2, ("nearest", "bilinear", "bicubic")


@register_layer
class Resize3d(_Resize):
    """Resize volumes by a ``scale`` factor or to an ``output_size`` (D, H, W)
    (MATLAB's resize3dLayer).

    ``method`` is ``"nearest"`` (torch's: source index floor(i / scale), MATLAB's
    ``GeometricTransformMode="asymmetric"``, ``NearestRoundingMode="floor"``) or
    ``"trilinear"`` (half-pixel centres, MATLAB's default ``"half-pixel"``).

    Example:
        >>> import torch
        >>> layer = Resize3d(scale=(1, 2, 2), method="trilinear")
        >>> layer.output_shape([(3, 4, 8, 8)])
        (3, 4, 16, 16)
        >>> Resize3d(output_size=(2, 3, 4))(torch.ones(1, 3, 4, 5, 6)).shape
        torch.Size([1, 3, 2, 3, 4])
    """

    spatial_dims, methods = 3, ("nearest", "trilinear")


def depth_to_space(x: torch.Tensor, block: tuple[int, int], mode: str = "dcr") -> torch.Tensor:
    """ONNX ``DepthToSpace`` on (N, C, H, W): ``"dcr"`` reads channels as (block rows,
    block columns, C'), ``"crd"`` as (C', block rows, block columns) (torch's pixel_shuffle)."""
    (n, c, h, w), (bh, bw) = x.shape, block
    out = c // (bh * bw)
    if mode == "dcr":
        y = x.reshape(n, bh, bw, out, h, w).permute(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape(n, out, bh, bw, h, w).permute(0, 1, 4, 2, 5, 3)
    return y.reshape(n, out, h * bh, w * bw)


def space_to_depth(x: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    """ONNX ``SpaceToDepth`` on (N, C, H, W): the inverse of ``depth_to_space(..., "dcr")``."""
    (n, c, h, w), (bh, bw) = x.shape, block
    y = x.reshape(n, c, h // bh, bh, w // bw, bw).permute(0, 3, 5, 1, 2, 4)
    return y.reshape(n, c * bh * bw, h // bh, w // bw)


class _BlockRearrange(Layer):
    def __init__(self, block_size: int | Sequence[int], *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.block_size = as_tuple(type(self).__name__, "block_size", block_size, 2)

    def _image(self, input_shapes: list[Shape]) -> tuple[int, int, int]:
        (shape,) = input_shapes
        require_rank(self, shape, [3], "images (C, H, W)")
        known(self, shape, [0, 1, 2], "image size")
        return tuple(int(d) for d in shape)  # type: ignore[return-value]

    def _refuse(self, shape: Shape, what: str) -> None:
        raise SizeMismatchError(
            f"{type(self).__name__}: {what} of the input {format_shape(shape)} must be a "
            f"multiple of block_size={self.block_size}."
        )


@register_layer
class DepthToSpace(_BlockRearrange):
    """Moves channels into blocks of space: (C, H, W) -> (C / (bh·bw), H·bh, W·bw)
    (MATLAB's depthToSpace2dLayer; ONNX ``DepthToSpace``).

    ``mode`` ``"dcr"`` (default, MATLAB's and ONNX's) reads the channels as (block row, block
    column, channel); ``"crd"`` as (channel, block row, block column), torch's pixel_shuffle.

    Example:
        >>> import torch
        >>> layer = DepthToSpace(2)
        >>> layer.output_shape([(8, 3, 3)])
        (2, 6, 6)
        >>> layer(torch.arange(4.0).reshape(1, 4, 1, 1)).flatten().tolist()
        [0.0, 1.0, 2.0, 3.0]
    """

    def __init__(
        self, block_size: int | Sequence[int], *, mode: str = "dcr", name: str | None = None
    ) -> None:
        super().__init__(block_size, name=name)
        self.mode = check_choice("DepthToSpace", "mode", mode, ("dcr", "crd"))

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        c, h, w = self._image(input_shapes)
        bh, bw = self.block_size
        if c % (bh * bw):
            self._refuse(input_shapes[0], "the channel count divided by bh·bw")
        return (c // (bh * bw), h * bh, w * bw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depth_to_space(x, self.block_size, self.mode)


@register_layer
class SpaceToDepth(_BlockRearrange):
    """Moves blocks of space into channels: (C, H, W) -> (C·bh·bw, H / bh, W / bw)
    (MATLAB's spaceToDepthLayer; ONNX ``SpaceToDepth``, the inverse of DepthToSpace "dcr").

    Example:
        >>> import torch
        >>> layer = SpaceToDepth(2)
        >>> layer.output_shape([(3, 8, 6)])
        (12, 4, 3)
        >>> x = torch.randn(1, 3, 8, 6)
        >>> bool((DepthToSpace(2)(layer(x)) == x).all())
        True
    """

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        c, h, w = self._image(input_shapes)
        bh, bw = self.block_size
        if h % bh or w % bw:
            self._refuse(input_shapes[0], "the height and width")
        return (c * bh * bw, h // bh, w // bw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return space_to_depth(x, self.block_size)
