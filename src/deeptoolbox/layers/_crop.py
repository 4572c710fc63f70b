"""Cropping layers: Crop1d on sequences (N, T, C), Crop2d on images, Crop3d on volumes.

Two forms, as MATLAB's ``crop2dLayer`` / ``crop3dLayer`` and Keras's ``Cropping1D/2D/3D``:

- fixed amounts (``cropping=``): that many steps / rows / columns / slices are removed from
  each side (one input port, ``in``);
- crop to a reference (``cropping=None``): the first input (port ``in``) is cropped to the
  spatial size of the second (port ``ref``), centred (``offset="center"``, MATLAB's
  ``"centercrop"``) or from a given zero-based corner (``offset=(top, left)``; MATLAB's
  one-based ``Location=[X Y]`` is ``offset=(Y - 1, X - 1)``). Only the reference's size is read.

Cropping is linear, so output bounds and verification pass through it exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from deeptoolbox.errors import OptionError, SizeMismatchError
from deeptoolbox.layers._base import Layer, Shape, format_shape, register_layer, require_rank

Cropping = int | Sequence[int] | Sequence[Sequence[int]] | None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _pairs(kind: str, cropping: Cropping, dims: int) -> tuple[tuple[int, int], ...] | None:
    """Normalize ``cropping`` to one (before, after) pair per spatial axis."""
    if cropping is None:
        return None
    if _is_int(cropping):
        return ((int(cropping),) * 2,) * dims  # type: ignore[return-value]
    items = list(cropping) if isinstance(cropping, Sequence) else None  # type: ignore[arg-type]
    if dims == 1 and items is not None and len(items) == 2 and all(map(_is_int, items)):
        return ((int(items[0]), int(items[1])),)
    pairs = []
    for item in items if items is not None and len(items) == dims else [None]:
        if _is_int(item):
            pairs.append((int(item), int(item)))  # type: ignore[arg-type]
        elif isinstance(item, Sequence) and len(item) == 2 and all(map(_is_int, item)):
            pairs.append((int(item[0]), int(item[1])))
        else:
            example = "Crop1d((1, 2))" if dims == 1 else f"{kind}({((1, 1),) * dims})"
            raise OptionError(
                f"{kind}: `cropping` must be an int >= 0, or {dims} such ints or (before, after) "
                f"pairs, one per spatial axis, or None to crop to a reference input. Received: "
                f"cropping={cropping!r}. Example: {example}."
            )
    return tuple(pairs)


class _Crop(Layer):
    spatial_dims = 2
    is_affine = True  # linear: bounds pass through it (deeptoolbox.robustness)
    channels_last = False  # Crop1d works on (N, T, C)

    def __init__(
        self,
        cropping: Cropping = None,
        *,
        offset: str | Sequence[int] = "center",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        kind, dims = type(self).__name__, self.spatial_dims
        self.cropping = _pairs(kind, cropping, dims)
        if offset != "center":
            valid = isinstance(offset, Sequence) and len(offset) == dims
            if not valid or not all(map(_is_int, offset)):
                raise OptionError(
                    f"{kind}: `offset` must be 'center' or {dims} ints >= 0 (the zero-based "
                    f"first kept index on each spatial axis). Received: offset={offset!r}."
                )
            if self.cropping is not None:
                raise OptionError(
                    f"{kind}: `offset` applies to the crop-to-reference form only "
                    f"(cropping=None). Received: cropping={cropping!r}, offset={offset!r}."
                )
            offset = tuple(int(v) for v in offset)
        self.offset = offset
        if self.cropping is None:
            self.input_names = ("in", "ref")

    @property
    def _first_spatial(self) -> int:
        return 0 if self.channels_last else 1

    def _spatial(self, shape: Shape) -> list[int | None]:
        first = self._first_spatial
        return list(shape[first : first + self.spatial_dims])

    def _with_spatial(self, shape: Shape, spatial: list[int | None]) -> Shape:
        first = self._first_spatial
        return (*shape[:first], *spatial, *shape[first + self.spatial_dims :])

    def _check(self, shape: Shape, port: str) -> None:
        what = {1: "sequences (T, C)", 2: "images (C, H, W)", 3: "volumes (C, D, H, W)"}
        require_rank(self, shape, [self.spatial_dims + 1], f"{what[self.spatial_dims]} on '{port}'")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        shape = input_shapes[0]
        self._check(shape, "in")
        lengths = self._spatial(shape)
        if self.cropping is not None:
            out = [
                None if n is None else n - before - after
                for n, (before, after) in zip(lengths, self.cropping, strict=True)
            ]
            if any(n is not None and n < 1 for n in out):
                raise SizeMismatchError(
                    f"{type(self).__name__}: cropping {self.cropping} leaves nothing of an input "
                    f"of size {format_shape(shape)}."
                )
            return self._with_spatial(shape, out)
        reference = input_shapes[1]
        self._check(reference, "ref")
        out = self._spatial(reference)
        starts = self.offset if self.offset != "center" else [0] * self.spatial_dims
        for n, m, start in zip(lengths, out, starts, strict=True):
            if n is not None and m is not None and start + m > n:
                raise SizeMismatchError(
                    f"{type(self).__name__}: the reference size {format_shape(reference)} (offset "
                    f"{self.offset!r}) does not fit inside the input of size {format_shape(shape)}; "
                    "the reference must be no larger than the input on each spatial axis."
                )
        return self._with_spatial(shape, out)

    def forward(self, x: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        first = self._first_spatial + 1  # batch axis included
        for axis in range(self.spatial_dims):
            dim, length = first + axis, x.shape[first + axis]
            if self.cropping is not None:
                before, after = self.cropping[axis]
                size = length - before - after
            else:
                if ref is None:
                    raise SizeMismatchError(
                        f"{type(self).__name__} crops to a reference: call it with (x, ref)."
                    )
                size = ref.shape[dim]
                before = (length - size) // 2 if self.offset == "center" else self.offset[axis]
            x = x.narrow(dim, before, size)
        return x


@register_layer
class Crop1d(_Crop):
    """Crop steps from sequences (N, T, C): fixed amounts, or to a reference's length.

    Keras's ``Cropping1D``. ``cropping=(before, after)`` (or one int for both ends) removes
    steps from the start and end; ``cropping=None`` makes a two-input layer (ports ``in`` and
    ``ref``) that crops ``in`` to ``ref``'s length, centred or from ``offset=(start,)``.

    Example:
        >>> import torch
        >>> Crop1d((1, 2)).output_shape([(10, 3)])
        (7, 3)
        >>> Crop1d()(torch.arange(6.0).reshape(1, 6, 1), torch.zeros(1, 2, 1)).flatten()
        tensor([2., 3.])
    """

    spatial_dims = 1
    channels_last = True


@register_layer
class Crop2d(_Crop):
    """Crop images (N, C, H, W): fixed amounts, or to a reference image's size.

    MATLAB's ``crop2dLayer`` (crop to the reference input ``ref``, ``offset="center"`` or a
    zero-based ``(top, left)``) and Keras's ``Cropping2D`` (``cropping=((top, bottom),
    (left, right))``, ``(rows, columns)`` for both sides, or one int for all).

    Example:
        >>> import torch
        >>> Crop2d(((1, 0), (2, 2))).output_shape([(3, 8, 8)])
        (3, 7, 4)
        >>> layer = Crop2d(offset=(0, 1))  # two inputs: crop 'in' to the size of 'ref'
        >>> layer(torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 4, 5)).shape
        torch.Size([1, 3, 4, 5])
    """

    spatial_dims = 2


@register_layer
class Crop3d(_Crop):
    """Crop volumes (N, C, D, H, W): fixed amounts, or to a reference volume's size.

    MATLAB's ``crop3dLayer`` and Keras's ``Cropping3D``; options as :class:`Crop2d`, with
    ``(depth, rows, columns)`` axes.

    Example:
        >>> Crop3d(1).output_shape([(2, 4, 6, 6)])
        (2, 2, 4, 4)
        >>> Crop3d().output_shape([(2, 8, 8, 8), (1, 4, 4, 4)])
        (2, 4, 4, 4)
    """

    spatial_dims = 3
