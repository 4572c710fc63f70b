"""Backward rules of CROWN for the affine layers and max pooling, on dense forms and patches.

:func:`make_op` turns a layer into an op whose ``backward(form)`` returns the forms on the
layer's inputs and the constant term (B, R). Convolutions, average pooling and max pooling
keep patches as patches (a transposed convolution of the coefficients) and switch to the
dense form once a window would be as large as the image; layers without a patch rule
(Dense, Flatten, Reshape, transposed convolutions, ...) take the dense form.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from deeptoolbox import layers as L
from deeptoolbox.layers._conv import same_padding
from deeptoolbox.robustness._graph import ScaleShift
from deeptoolbox.robustness._linear import (
    Diagonal,
    Form,
    Window,
    channels_first,
    densify,
    mask,
    node_layout,
    windows,
)

__all__ = ["make_op", "ConvOp", "MaxPoolOp", "DiagonalOp"]

DENSE_AT = 1.0  # patches turn dense once their window covers this fraction of the image
MATRIX_ELEMENTS = 1 << 22  # patches go through a convolution as one matrix up to this size
MATRIX_WORK = 3.0  # ... and while the matrix costs at most this many times the convolution


def _transpose_conv(dims: int):
    return (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[dims - 1]


def _spatial(shape: tuple[int, ...], channels_last: bool) -> tuple[int, ...]:
    return tuple(shape[:-1] if channels_last else shape[1:])


def after_transpose(
    form: Form, out: torch.Tensor, stride, pad_before, in_shape, channels_last: bool
) -> Form:
    """Place the transposed-convolution result ``out`` (B, R, C, *E) on the layer's input.

    ``out`` covers input positions starting at ``-pad_before`` (dense) or the row's window
    start times the stride minus ``pad_before`` (patches).
    """
    spatial = _spatial(in_shape, channels_last)
    if not form.is_patches:
        pads: list[int] = []
        for axis in reversed(range(len(spatial))):
            extent = out.shape[3 + axis]
            pads += [-pad_before[axis], spatial[axis] + pad_before[axis] - extent]
        out = F.pad(out, pads)  # negative pads crop
        return Form(node_layout(out, channels_last, lead=2))
    window = form.window
    assert window is not None
    grown = Window(
        tuple(out.shape[3:]),
        tuple(w * s for w, s in zip(window.stride, stride, strict=True)),
        tuple(p * s + b for p, s, b in zip(window.pad, stride, pad_before, strict=True)),
    )
    result = replace(form, values=out, window=grown, channels_last=channels_last)
    if math.prod(grown.size) >= DENSE_AT * math.prod(spatial):
        return densify(result, in_shape)
    return result.with_values(out * mask(result, spatial))


def _as_channels_first(form: Form, channels_last: bool) -> torch.Tensor:
    """The values with channels before the spatial axes (patches always are)."""
    return form.values if form.is_patches else channels_first(form.values, channels_last, 2)


class ConvOp:
    """A zero-padded convolution (also average pooling, as a depthwise convolution)."""

    def __init__(self, weight, bias, stride, dilation, groups, pad_before, channels_last,
                 in_shape, out_shape) -> None:  # fmt: skip
        self.weight, self.bias = weight, bias
        self.stride, self.dilation, self.groups = tuple(stride), tuple(dilation), groups
        self.pad_before, self.channels_last = tuple(pad_before), channels_last
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)

        self._matrices: dict[tuple[int, ...], tuple[torch.Tensor, tuple[int, ...]]] = {}
        self.matrix_limit = MATRIX_ELEMENTS  # elements; lowered to fit a memory budget

    def backward(self, form: Form):
        v = _as_channels_first(form, self.channels_last)
        batch, rows = v.shape[:2]
        constant = 0.0
        if self.bias is not None:
            constant = v.flatten(3).sum(-1) @ self.bias
        matrix = self._matrix(tuple(v.shape[3:])) if form.is_patches else None
        if matrix is not None:  # small windows: one matrix product beats a convolution
            weights, extent = matrix
            out = (v.reshape(batch * rows, -1) @ weights).reshape(batch, rows, -1, *extent)
        else:
            out = self._transpose(v.reshape(batch * rows, *v.shape[2:]))
            out = out.reshape(batch, rows, *out.shape[1:])
        forms = [after_transpose(form, out, self.stride, self.pad_before, self.in_shape,
                                 self.channels_last)]  # fmt: skip
        return forms, constant

    def _transpose(self, v: torch.Tensor) -> torch.Tensor:
        dims = len(self.stride)
        if dims == 2 and v.shape[0] > 1:  # markedly faster on CPU for batches of images
            v = v.contiguous(memory_format=torch.channels_last)
        out = _transpose_conv(dims)(v, self.weight, None, self.stride, 0, 0, self.groups,
                                    self.dilation)  # fmt: skip
        return out.contiguous()

    def _matrix(self, size: tuple[int, ...]):
        """The transposed convolution of a window of ``size`` as a matrix, if small enough."""
        if size not in self._matrices:
            channels = self.weight.shape[0]
            extent = tuple(
                (n - 1) * s + d * (k - 1) + 1
                for n, s, d, k in zip(size, self.stride, self.dilation, self.weight.shape[2:],
                                      strict=True)
            )  # fmt: skip
            inputs = self.weight.shape[1] * self.groups
            count = channels * math.prod(size) * inputs * math.prod(extent)
            # a matrix product runs ~10x faster per multiply than a transposed convolution on
            # CPU, but multiplies all of the window where the convolution touches the kernel
            ratio = self.groups * math.prod(extent) / math.prod(self.weight.shape[2:])
            matrix = None
            if count <= self.matrix_limit and ratio <= MATRIX_WORK:
                basis = torch.eye(channels * math.prod(size), dtype=self.weight.dtype,
                                  device=self.weight.device)  # fmt: skip
                images = self._transpose(basis.reshape(-1, channels, *size))
                matrix = (images.reshape(basis.shape[0], -1), extent)
            self._matrices[size] = matrix
        return self._matrices[size]


class MaxPoolOp:
    """Max pooling: y >= x at the window's largest lower bound; y <= that x when it dominates
    the window (its lower bound above every other upper bound), else y <= the largest upper bound.
    """

    def __init__(self, kernel, stride, pad_before, channels_last, in_shape, out_shape,
                 global_pool: bool = False) -> None:  # fmt: skip
        self.kernel, self.stride, self.pad_before = tuple(kernel), tuple(stride), tuple(pad_before)
        self.channels_last, self.global_pool = channels_last, global_pool
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        self._cache: tuple | None = None

    def selection(self, lo: torch.Tensor, hi: torch.Tensor):
        """Index in the window of the chosen input, whether it dominates, the largest upper."""
        if self._cache is not None and self._cache[0] is lo:
            return self._cache[1]
        spatial = _spatial(self.in_shape, self.channels_last)
        if self.global_pool:
            out_spatial = (1,) * len(spatial)
        else:
            out_spatial = _spatial(self.out_shape, self.channels_last)

        def cut(t):
            t = channels_first(t, self.channels_last)
            pads: list[int] = []
            for a in reversed(range(len(spatial))):
                need = (out_spatial[a] - 1) * self.stride[a] + self.kernel[a]
                pads += [self.pad_before[a], max(0, need - spatial[a] - self.pad_before[a])]
            t = F.pad(t, pads, value=float("-inf")) if any(pads) else t
            for a in range(len(spatial)):
                t = t.unfold(2 + a, self.kernel[a], self.stride[a])
            index = tuple(slice(0, n) for n in out_spatial)
            return t[(slice(None), slice(None), *index)].flatten(2 + len(spatial))

        low, high = cut(lo), cut(hi)
        chosen_low, chosen = low.max(-1)
        if high.shape[-1] > 1:
            top, where = high.topk(2, dim=-1)
            other = torch.where(where[..., 0] == chosen, top[..., 1], top[..., 0])
        else:
            top, other = high, torch.full_like(chosen_low, float("-inf"))
        result = (chosen, chosen_low >= other, top[..., 0])
        self._cache = (lo, result)
        return result

    def backward(self, form: Form, lo: torch.Tensor, hi: torch.Tensor):
        chosen, dominant, largest = self.selection(lo, hi)
        dims = len(self.kernel)
        if self.global_pool:
            v = form.values.reshape(*form.values.shape, *([1] * dims))
        else:
            v = _as_channels_first(form, self.channels_last)
        if form.is_patches:
            flat = replace(form, channels_last=False)
            chosen = windows(chosen.to(v.dtype), flat).long()
            dominant = windows(dominant.to(v.dtype), flat) > 0
            largest = windows(largest, flat)
        else:
            chosen, dominant, largest = chosen[:, None], dominant[:, None], largest[:, None]
        negative = v.clamp(max=0)
        constant = (negative * largest * ~dominant).flatten(2).sum(-1)
        kept = torch.where(dominant, v, v.clamp(min=0))
        size = math.prod(self.kernel)
        spread = kept.unsqueeze(-1) * F.one_hot(chosen, size).to(v.dtype)
        batch, rows, channels = spread.shape[:3]
        spread = spread.movedim(-1, 3).reshape(batch * rows, channels * size, *spread.shape[3:-1])
        identity = torch.eye(size, dtype=v.dtype, device=v.device).reshape(size, 1, *self.kernel)
        out = _transpose_conv(dims)(
            spread, identity.repeat(channels, *([1] * (dims + 1))), None, self.stride,
            groups=channels,
        )  # fmt: skip
        out = out.reshape(batch, rows, *out.shape[1:])
        start = form if not self.global_pool else Form(v)
        return [after_transpose(start, out, self.stride, self.pad_before, self.in_shape,
                                self.channels_last)], constant  # fmt: skip


class DiagonalOp:
    """An element-wise affine layer y = s * x + t (BatchNorm in inference, input
    normalization, Dropout in inference, Identity)."""

    def __init__(self, module: nn.Module, in_shape, reference: torch.Tensor) -> None:
        with torch.no_grad():
            zeros = torch.zeros(1, *in_shape, dtype=reference.dtype, device=reference.device)
            self.shift = module(zeros)
            self.scale = module(torch.ones_like(zeros)) - self.shift
        self.diagonal = Diagonal(self.scale, None, self.shift, None)

    preserves_layout = True

    def backward(self, form: Form):
        forward, constant = self.diagonal.backward(form)
        return [forward], constant


class LinearOp:
    """Dense / torch Linear (on the last axis, or on the flattened input)."""

    def __init__(self, module: nn.Module, in_shape) -> None:
        self.module, self.in_shape = module, tuple(in_shape)

    def backward(self, form: Form):
        v = densify(form, self.in_shape).values
        batch, rows = v.shape[:2]
        if getattr(self.module, "flatten_input", False):
            v = v.flatten(2)
        grad = (v @ self.module.weight).reshape(batch, rows, *self.in_shape)
        bias = self.module.bias
        constant = 0.0 if bias is None else (v @ bias).reshape(batch, rows, -1).sum(-1)
        return [Form(grad)], constant


class ReshapeOp:
    def __init__(self, in_shape, out_shape) -> None:
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)

    def backward(self, form: Form):
        v = densify(form, self.out_shape).values
        return [Form(v.reshape(*v.shape[:2], *self.in_shape))], 0.0


class AddOp:
    preserves_layout = True

    def __init__(self, count: int) -> None:
        self.count = count

    def backward(self, form: Form):
        return [form] * self.count, 0.0


class ConcatOp:
    """Concatenation along ``axis`` of the node (no batch axis)."""

    preserves_layout = True

    def __init__(self, axis: int, in_shapes, out_shape) -> None:
        self.axis, self.out_shape = axis, tuple(out_shape)
        self.sizes = [s[axis] for s in in_shapes]

    def backward(self, form: Form):
        if form.is_patches:
            channel_axis = len(self.out_shape) - 1 if form.channels_last else 0
            if self.axis == channel_axis:
                parts = form.values.split(self.sizes, dim=2)
                return [form.with_values(p) for p in parts], 0.0
            form = densify(form, self.out_shape)
        parts = form.values.split(self.sizes, dim=2 + self.axis)
        return [Form(p) for p in parts], 0.0


class TransposedConvOp:
    """The toolbox's TransposedConv2d: its backward is a strided convolution."""

    def __init__(self, module: L.TransposedConv2d, in_shape, out_shape) -> None:
        self.module, self.in_shape, self.out_shape = module, tuple(in_shape), tuple(out_shape)

    def backward(self, form: Form):
        m = self.module
        v = densify(form, self.out_shape).values
        batch, rows = v.shape[:2]
        constant = 0.0 if m.bias is None else v.flatten(3).sum(-1) @ m.bias
        flat = F.pad(v.reshape(batch * rows, *v.shape[2:]), (0, m.trim[1], 0, m.trim[0]))
        grad = F.conv2d(flat, m.weight, None, m.stride, m.padding)
        grad = grad[..., : self.in_shape[1], : self.in_shape[2]]
        pads = (0, self.in_shape[2] - grad.shape[-1], 0, self.in_shape[1] - grad.shape[-2])
        grad = F.pad(grad, pads) if any(pads) else grad
        return [Form(grad.reshape(batch, rows, *self.in_shape))], constant


class MeanOp:
    """Global average pooling: each output is the mean of one channel over time or space."""

    def __init__(self, in_shape) -> None:
        self.in_shape = tuple(in_shape)
        self.channels_last = len(in_shape) == 2  # toolbox sequences (T, C)

    def backward(self, form: Form):
        v = form.values  # (B, R, C)
        count = math.prod(self.in_shape) // v.shape[-1]
        if self.channels_last:
            grad = (v / count).unsqueeze(2).expand(*v.shape[:2], self.in_shape[0], v.shape[-1])
        else:
            grad = (v / count).reshape(*v.shape, *([1] * (len(self.in_shape) - 1)))
            grad = grad.expand(*v.shape[:2], *self.in_shape)
        return [Form(grad.contiguous())], 0.0


class GenericOp:
    """Any other affine layer: its transpose through autograd (dense). (torch.func.vjp is
    not used: its first call imports torch._dynamo, seconds a time limit cannot interrupt.)"""

    def __init__(self, module: nn.Module, in_shapes, out_shape, reference) -> None:
        self.module, self.in_shapes, self.out_shape = module, list(in_shapes), tuple(out_shape)
        with torch.no_grad():
            zeros = [
                torch.zeros(1, *s, dtype=reference.dtype, device=reference.device)
                for s in in_shapes
            ]
            self.offset = module(*zeros)

    def backward(self, form: Form):
        v = densify(form, self.out_shape).values
        batch, rows = v.shape[:2]
        zeros = [
            torch.zeros(batch * rows, *s, dtype=v.dtype, device=v.device, requires_grad=True)
            for s in self.in_shapes
        ]
        with torch.enable_grad():
            out = self.module(*zeros)
            grads = torch.autograd.grad(
                out,
                zeros,
                v.reshape(batch * rows, *self.out_shape),
                create_graph=v.requires_grad,
                allow_unused=True,
                materialize_grads=True,  # an input only read for its size
            )
        constant = (v * self.offset.unsqueeze(1)).flatten(2).sum(-1)
        return [Form(g.reshape(batch, rows, *g.shape[1:])) for g in grads], constant


# -- building ops from layers ---------------------------------------------------------------
def _toolbox_pads(module, in_shape, kernel, stride, dilation) -> tuple[int, ...]:
    spatial = _spatial(in_shape, module.channels_last)
    if module.padding == "valid":
        return (0,) * len(spatial)
    if module.padding == "causal":  # Conv1d: all the padding before the first step
        return (module.causal_padding()[0],)
    if module.padding == "same":
        return tuple(
            same_padding(n, k, s, d)[0]
            for n, k, s, d in zip(spatial, kernel, stride, dilation, strict=True)
        )
    return tuple(module.padding)


def _torch_pads(module, dims: int) -> tuple[int, ...] | None:
    padding = module.padding
    if padding == "valid":
        return (0,) * dims
    if padding == "same":
        return tuple(d * (k - 1) // 2 for d, k in zip(module.dilation, module.kernel_size,
                                                         strict=True))  # fmt: skip
    return (padding,) * dims if isinstance(padding, int) else tuple(padding)


def _conv_op(module, in_shape, out_shape) -> ConvOp | None:
    if isinstance(module, L.Conv1d | L.Conv2d | L.Conv3d):
        pads = _toolbox_pads(module, in_shape, module.kernel_size, module.stride, module.dilation)
        return ConvOp(module.weight, module.bias, module.stride, module.dilation, module.groups,
                      pads, module.channels_last, in_shape, out_shape)  # fmt: skip
    if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d) and module.padding_mode == "zeros":
        dims = len(module.kernel_size)
        return ConvOp(module.weight, module.bias, module.stride, module.dilation, module.groups,
                      _torch_pads(module, dims), False, in_shape, out_shape)  # fmt: skip
    return None


def _average_op(module, in_shape, out_shape, reference) -> ConvOp | None:
    if isinstance(module, L.AvgPool1d | L.AvgPool2d):
        kernel, stride, last = module.pool_size, module.stride, module.channels_last
        pads = _toolbox_pads(module, in_shape, kernel, stride, (1,) * len(kernel))
    elif isinstance(module, nn.AvgPool1d | nn.AvgPool2d):
        if module.ceil_mode or not module.count_include_pad or module.divisor_override:
            return None
        dims = 1 if isinstance(module, nn.AvgPool1d) else 2
        kernel, stride, last = _tuple(module.kernel_size, dims), _tuple(module.stride, dims), False
        pads = _tuple(module.padding, dims)
    else:
        return None
    channels = in_shape[-1] if last else in_shape[0]
    weight = torch.full((channels, 1, *kernel), 1.0 / math.prod(kernel), dtype=reference.dtype,
                        device=reference.device)  # fmt: skip
    return ConvOp(weight, None, stride, (1,) * len(kernel), channels, pads, last, in_shape,
                  out_shape)  # fmt: skip


def _tuple(value, dims: int) -> tuple[int, ...]:
    return (value,) * dims if isinstance(value, int) else tuple(value)


def _max_op(module, in_shape, out_shape) -> MaxPoolOp | None:
    if isinstance(module, L.GlobalMaxPool):
        last = len(in_shape) == 2
        spatial = _spatial(in_shape, last)
        return MaxPoolOp(spatial, (1,) * len(spatial), (0,) * len(spatial), last, in_shape,
                         out_shape, global_pool=True)  # fmt: skip
    if isinstance(module, L.MaxPool1d | L.MaxPool2d):
        kernel, stride = module.pool_size, module.stride
        pads = _toolbox_pads(module, in_shape, kernel, stride, (1,) * len(kernel))
        return MaxPoolOp(kernel, stride, pads, module.channels_last, in_shape, out_shape)
    if isinstance(module, nn.MaxPool1d | nn.MaxPool2d):
        dims = 1 if isinstance(module, nn.MaxPool1d) else 2
        if module.ceil_mode or _tuple(module.dilation, dims) != (1,) * dims:
            return None
        kernel = _tuple(module.kernel_size, dims)
        stride = _tuple(module.stride if module.stride is not None else kernel, dims)
        return MaxPoolOp(kernel, stride, _tuple(module.padding, dims), False, in_shape, out_shape)
    return None


_DIAGONAL = (L.BatchNorm, L.InputLayer, L.Dropout, nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout,
             nn.Identity, ScaleShift)  # fmt: skip
_LINEAR = (L.Dense, nn.Linear)
_RESHAPES = (L.Flatten, L.Reshape, nn.Flatten, nn.Unflatten)


def make_op(module: nn.Module, kind: str, in_shapes, out_shape, reference: torch.Tensor):
    """The backward rule of a layer of kind "affine" or "max" (None: bound max by intervals)."""
    if kind == "max":
        return _max_op(module, in_shapes[0], out_shape)
    conv = _conv_op(module, in_shapes[0], out_shape) or _average_op(
        module, in_shapes[0], out_shape, reference
    )
    if conv is not None:
        return conv
    if isinstance(module, _DIAGONAL):
        return DiagonalOp(module, in_shapes[0], reference)
    if isinstance(module, _LINEAR):
        return LinearOp(module, in_shapes[0])
    if isinstance(module, _RESHAPES):
        return ReshapeOp(in_shapes[0], out_shape)
    if isinstance(module, L.Addition):
        return AddOp(len(in_shapes))
    if isinstance(module, L.Concatenation):
        return ConcatOp(module._dim - 1, in_shapes, out_shape)
    if isinstance(module, L.TransposedConv2d):
        return TransposedConvOp(module, in_shapes[0], out_shape)
    if isinstance(module, L.GlobalAvgPool):
        return MeanOp(in_shapes[0])
    return GenericOp(module, in_shapes, out_shape, reference)
