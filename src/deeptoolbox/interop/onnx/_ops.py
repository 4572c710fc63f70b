"""ONNX operators implemented with torch functions (opset 13+ semantics; older files are upgraded).

Each operator is a function ``(inputs, attributes) -> tensor or tuple of tensors``, where
``inputs`` lists the node's inputs (None for an omitted optional input) and ``attributes`` is
a dict of plain values. :data:`OPERATORS` maps the ONNX op types of this module to their
functions; the registry of every supported op is :mod:`._registry`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from deeptoolbox.errors import ModelImportError
from deeptoolbox.interop.onnx._opset import Inputs, Operator, Tensor, registrar
from deeptoolbox.interop.onnx._opset import axes_of as _axes
from deeptoolbox.interop.onnx._opset import torch_pad as _torch_pad

OPERATORS: dict[str, Operator] = {}
operator = registrar(OPERATORS)


# -- element-wise -----------------------------------------------------------------------------

_UNARY = {
    "Relu": torch.relu, "Sigmoid": torch.sigmoid, "Tanh": torch.tanh, "Erf": torch.erf,
    "Sqrt": torch.sqrt, "Exp": torch.exp, "Log": torch.log, "Abs": torch.abs, "Neg": torch.neg,
    "Floor": torch.floor, "Ceil": torch.ceil, "Reciprocal": torch.reciprocal, "Sin": torch.sin,
    "Cos": torch.cos, "Not": torch.logical_not, "IsNaN": torch.isnan, "Sign": torch.sign,
    "Softsign": F.softsign, "Round": torch.round, "Tan": torch.tan, "Atan": torch.atan,
}  # fmt: skip
_BINARY = {
    "Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Equal": torch.eq,
    "Less": torch.lt, "Greater": torch.gt, "LessOrEqual": torch.le, "GreaterOrEqual": torch.ge,
    "And": torch.logical_and, "Or": torch.logical_or, "Xor": torch.logical_xor,
}  # fmt: skip


def _unary(function):
    return lambda inputs, attrs: function(inputs[0])


_UNSIGNED = (torch.uint16, torch.uint32, torch.uint64)


def _binary(function):
    def run(inputs: Inputs, attrs: dict) -> Tensor:
        a, b = inputs[0], inputs[1]
        if a.dtype in _UNSIGNED:  # torch has few kernels for these: compute in int64
            return function(a.long(), b.long()).to(a.dtype)
        return function(a, b)

    return run


for _name, _function in _UNARY.items():
    operator(_name)(_unary(_function))
for _name, _function in _BINARY.items():
    operator(_name)(_binary(_function))


@operator("Div")
def _div(inputs: Inputs, attrs: dict) -> Tensor:
    a, b = inputs[0], inputs[1]
    if not a.is_floating_point():
        return torch.div(a.long(), b.long(), rounding_mode="trunc").to(a.dtype)
    return a / b


@operator("Pow")
def _pow(inputs: Inputs, attrs: dict) -> Tensor:
    return torch.pow(inputs[0], inputs[1].to(inputs[0].dtype)).to(inputs[0].dtype)


def _fold(function, mean: bool = False):
    def run(inputs: Inputs, attrs: dict) -> Tensor:
        result = inputs[0]
        for other in inputs[1:]:
            result = function(result, other)
        return result / len(inputs) if mean else result

    return run


OPERATORS.update(
    Max=_fold(torch.maximum),
    Min=_fold(torch.minimum),
    Sum=_fold(torch.add),
    Mean=_fold(torch.add, mean=True),
)


@operator("LeakyRelu")
def _leaky_relu(inputs: Inputs, attrs: dict) -> Tensor:
    return F.leaky_relu(inputs[0], attrs.get("alpha", 0.01))


@operator("Elu")
def _elu(inputs: Inputs, attrs: dict) -> Tensor:
    return F.elu(inputs[0], attrs.get("alpha", 1.0))


@operator("Selu")
def _selu(inputs: Inputs, attrs: dict) -> Tensor:
    alpha, gamma = (
        attrs.get("alpha", 1.67326319217681884765625),
        attrs.get("gamma", 1.05070102214813232421875),
    )
    x = inputs[0]
    return gamma * torch.where(x > 0, x, alpha * (torch.exp(x) - 1))


@operator("HardSigmoid")
def _hard_sigmoid(inputs: Inputs, attrs: dict) -> Tensor:
    return torch.clamp(attrs.get("alpha", 0.2) * inputs[0] + attrs.get("beta", 0.5), 0, 1)


@operator("HardSwish")
def _hard_swish(inputs: Inputs, attrs: dict) -> Tensor:
    return F.hardswish(inputs[0])


@operator("Softplus")
def _softplus(inputs: Inputs, attrs: dict) -> Tensor:
    return F.softplus(inputs[0])


@operator("Mish")
def _mish(inputs: Inputs, attrs: dict) -> Tensor:
    return F.mish(inputs[0])


@operator("PRelu")
def _prelu(inputs: Inputs, attrs: dict) -> Tensor:
    x, slope = inputs[0], inputs[1]
    return torch.where(x >= 0, x, x * slope)


@operator("Gelu")
def _gelu(inputs: Inputs, attrs: dict) -> Tensor:
    return F.gelu(inputs[0], approximate=attrs.get("approximate", "none"))


@operator("Clip")
def _clip(inputs: Inputs, attrs: dict) -> Tensor:
    x = inputs[0]
    low = inputs[1] if len(inputs) > 1 and inputs[1] is not None else attrs.get("min")
    high = inputs[2] if len(inputs) > 2 and inputs[2] is not None else attrs.get("max")
    if low is not None:
        x = torch.maximum(x, torch.as_tensor(low, dtype=x.dtype))
    if high is not None:
        x = torch.minimum(x, torch.as_tensor(high, dtype=x.dtype))
    return x


def _softmax_of(log: bool):
    def run(inputs: Inputs, attrs: dict) -> Tensor:
        x, axis = inputs[0], attrs.get("axis", -1)
        return torch.log_softmax(x, axis) if log else torch.softmax(x, axis)

    return run


OPERATORS.update(Softmax=_softmax_of(False), LogSoftmax=_softmax_of(True))


@operator("Where")
def _where(inputs: Inputs, attrs: dict) -> Tensor:
    return torch.where(inputs[0].bool(), inputs[1], inputs[2])


@operator("Identity")
def _identity(inputs: Inputs, attrs: dict) -> Tensor:
    return inputs[0]


@operator("Dropout")
def _dropout(inputs: Inputs, attrs: dict) -> tuple[Tensor, Tensor]:
    """Inference dropout: the input unchanged, and a mask of ones."""
    training = len(inputs) > 2 and inputs[2] is not None and bool(inputs[2])
    ratio = float(inputs[1]) if len(inputs) > 1 and inputs[1] is not None else 0.5
    if training and ratio > 0:
        raise ModelImportError(
            "ONNX Dropout with training_mode=True is random and is not reproduced; imported "
            "networks run dropout in inference mode. Set training_mode to False in the file."
        )
    return inputs[0], torch.ones_like(inputs[0], dtype=torch.bool)


_DTYPES = {
    1: torch.float32, 2: torch.uint8, 3: torch.int8, 5: torch.int16, 6: torch.int32,
    7: torch.int64, 9: torch.bool, 10: torch.float16, 11: torch.float64, 16: torch.bfloat16,
    4: torch.uint16, 12: torch.uint32, 13: torch.uint64,
}  # fmt: skip


def onnx_dtype(code: int) -> torch.dtype:
    """The torch dtype of an ONNX TensorProto data type code (KeyError if unsupported)."""
    return _DTYPES[code]


@operator("Cast")
def _cast(inputs: Inputs, attrs: dict) -> Tensor:
    return inputs[0].to(onnx_dtype(attrs["to"]))


@operator("CastLike")
def _cast_like(inputs: Inputs, attrs: dict) -> Tensor:
    return inputs[0].to(inputs[1].dtype)


# -- linear algebra and convolution -------------------------------------------------------------


@operator("MatMul")
def _matmul(inputs: Inputs, attrs: dict) -> Tensor:
    return torch.matmul(inputs[0], inputs[1])


@operator("Einsum")
def _einsum(inputs: Inputs, attrs: dict) -> Tensor:
    equation = attrs["equation"]
    return torch.einsum(equation.decode() if isinstance(equation, bytes) else equation, *inputs)


@operator("Gemm")
def _gemm(inputs: Inputs, attrs: dict) -> Tensor:
    a, b = inputs[0], inputs[1]
    a = a.t() if attrs.get("transA", 0) else a
    b = b.t() if attrs.get("transB", 0) else b
    y = attrs.get("alpha", 1.0) * (a @ b)
    if len(inputs) > 2 and inputs[2] is not None:
        y = y + attrs.get("beta", 1.0) * inputs[2]
    return y


def _explicit_pads(x: Tensor, attrs: dict, kernel: list[int], strides, dilations) -> list[int]:
    """ONNX pads (begin..., end...) for the spatial axes, resolving auto_pad."""
    dims = len(kernel)
    mode = attrs.get("auto_pad", "NOTSET")
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        pads_begin, pads_end = [], []
        for axis in range(dims):
            length = x.shape[2 + axis]
            extent = (kernel[axis] - 1) * dilations[axis] + 1
            total = max(
                (math.ceil(length / strides[axis]) - 1) * strides[axis] + extent - length, 0
            )
            small, large = total // 2, total - total // 2
            pads_begin.append(small if mode == "SAME_UPPER" else large)
            pads_end.append(large if mode == "SAME_UPPER" else small)
        return pads_begin + pads_end
    if mode == "VALID":
        return [0] * (2 * dims)
    return list(attrs.get("pads", [0] * (2 * dims)))


def _conv_parts(inputs: Inputs, attrs: dict):
    """Conv / ConvTranspose operands and geometry: x, weight, bias, kernel, strides, dilations."""
    x, weight = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    dims = weight.dim() - 2
    kernel = list(attrs.get("kernel_shape", weight.shape[2:]))
    strides = list(attrs.get("strides", [1] * dims))
    dilations = list(attrs.get("dilations", [1] * dims))
    return x, weight, bias, kernel, strides, dilations


@operator("Conv")
def _conv(inputs: Inputs, attrs: dict) -> Tensor:
    x, weight, bias, kernel, strides, dilations = _conv_parts(inputs, attrs)
    pads = _explicit_pads(x, attrs, kernel, strides, dilations)
    if any(pads):
        x = F.pad(x, _torch_pad(pads))
    conv = (F.conv1d, F.conv2d, F.conv3d)[len(kernel) - 1]
    return conv(x, weight, bias, strides, 0, dilations, attrs.get("group", 1))


def _transpose_pads(full: list[int], wanted: list[int], auto_pad: str) -> list[int]:
    """ONNX pads (begin..., end...) that turn the full transposed output into ``wanted``.

    The spec's rule: total = full - wanted; SAME_UPPER puts total // 2 at the beginning, every
    other auto_pad the larger half. A negative pad (an output larger than the full one) extends
    the output with zeros (plus bias), as in the ONNX reference.
    """
    totals = [f - w for f, w in zip(full, wanted, strict=True)]
    begin = [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in totals]
    return begin + [t - b for t, b in zip(totals, begin, strict=True)]


@operator("ConvTranspose")
def _conv_transpose(inputs: Inputs, attrs: dict) -> Tensor:
    x, weight, bias, kernel, strides, dilations = _conv_parts(inputs, attrs)
    dims = len(kernel)
    extra = list(attrs.get("output_padding", [0] * dims))
    conv = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[dims - 1]
    y = conv(x, weight, None, strides, 0, [0] * dims, attrs.get("group", 1), dilations)
    full = [y.shape[2 + a] + extra[a] for a in range(dims)]
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if "output_shape" in attrs:
        pads = _transpose_pads(full, list(attrs["output_shape"])[-dims:], auto_pad)
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = _transpose_pads(full, [x.shape[2 + a] * strides[a] for a in range(dims)], auto_pad)
    else:
        pads = list(attrs.get("pads", [0] * (2 * dims)))
    grow = [max(-p, 0) for p in pads]
    grow = grow[:dims] + [g + e for g, e in zip(grow[dims:], extra, strict=True)]
    if any(grow):
        y = F.pad(y, _torch_pad(grow))
    crop = [max(p, 0) for p in pads]
    index = [slice(None), slice(None)] + [
        slice(crop[a], y.shape[2 + a] - crop[a + dims]) for a in range(dims)
    ]
    y = y[tuple(index)]
    if bias is not None:
        y = y + bias.reshape(1, -1, *([1] * dims))
    return y


# -- pooling ------------------------------------------------------------------------------------


def _pool_setup(x: Tensor, attrs: dict, fill: float):
    kernel = list(attrs["kernel_shape"])
    dims = len(kernel)
    strides = list(attrs.get("strides", [1] * dims))
    dilations = list(attrs.get("dilations", [1] * dims))
    pads = _explicit_pads(x, attrs, kernel, strides, dilations)
    if attrs.get("ceil_mode", 0):
        for axis in range(dims):  # extend the end so ceil-mode windows fit, if they start inside
            length = x.shape[2 + axis] + pads[axis] + pads[axis + dims]
            extent = (kernel[axis] - 1) * dilations[axis] + 1
            out = math.ceil((length - extent) / strides[axis]) + 1
            if (out - 1) * strides[axis] >= x.shape[2 + axis] + pads[axis]:
                out -= 1
            pads[axis + dims] += max((out - 1) * strides[axis] + extent - length, 0)
    return kernel, strides, dilations, pads


@operator("MaxPool")
def _max_pool(inputs: Inputs, attrs: dict) -> Tensor | tuple[Tensor, Tensor]:
    x = inputs[0]
    kernel, strides, dilations, pads = _pool_setup(x, attrs, float("-inf"))
    dims = len(kernel)
    padded = F.pad(x, _torch_pad(pads), value=float("-inf")) if any(pads) else x
    pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[dims - 1]
    if attrs.get("_outputs", 1) == 1:
        return pool(padded, kernel, strides, 0, dilations)
    y, index = pool(padded, kernel, strides, 0, dilations, return_indices=True)
    spatial = list(x.shape[2:])
    coordinates = torch.unravel_index(index, tuple(padded.shape[2:]))
    coordinates = [c - pads[a] for a, c in enumerate(coordinates)]
    if attrs.get("storage_order", 0):
        coordinates, spatial = coordinates[::-1], spatial[::-1]
    flat = torch.zeros_like(index)
    for c, size in zip(coordinates, spatial, strict=True):
        flat = flat * size + c
    n, channels = x.shape[0], x.shape[1]
    base = torch.arange(n * channels).reshape(n, channels, *([1] * dims)) * math.prod(spatial)
    return y, flat + base


def _window_sum(x: Tensor, kernel, strides, dilations) -> Tensor:
    """Sum over pooling windows (any dilation), as a depthwise convolution with ones."""
    dims = len(kernel)
    n, channels = x.shape[0], x.shape[1]
    flat = x.reshape(n * channels, 1, *x.shape[2:])
    conv = (F.conv1d, F.conv2d, F.conv3d)[dims - 1]
    ones = torch.ones(1, 1, *kernel, dtype=x.dtype)
    y = conv(flat, ones, None, strides, 0, dilations)
    return y.reshape(n, channels, *y.shape[2:])


@operator("AveragePool")
def _average_pool(inputs: Inputs, attrs: dict) -> Tensor:
    x = inputs[0]
    original = list(attrs.get("pads", []))
    kernel, strides, dilations, pads = _pool_setup(x, attrs, 0.0)
    include = attrs.get("count_include_pad", 0)
    ones = torch.ones_like(x[:1, :1])
    if any(pads):
        explicit = original or _explicit_pads(x, attrs, kernel, strides, dilations)
        x = F.pad(x, _torch_pad(pads))
        if include:  # padding counts, the ceil-mode overhang does not
            ones = F.pad(ones, _torch_pad(explicit), value=1.0)
            extra = [p - e for p, e in zip(pads, explicit, strict=True)]
            ones = F.pad(ones, _torch_pad(extra))
        else:
            ones = F.pad(ones, _torch_pad(pads))
    total = _window_sum(x, kernel, strides, dilations)
    return total / _window_sum(ones, kernel, strides, dilations)


@operator("GlobalAveragePool")
def _global_average_pool(inputs: Inputs, attrs: dict) -> Tensor:
    x = inputs[0]
    return x.mean(dim=tuple(range(2, x.dim())), keepdim=True)


@operator("GlobalMaxPool")
def _global_max_pool(inputs: Inputs, attrs: dict) -> Tensor:
    x = inputs[0]
    return x.amax(dim=tuple(range(2, x.dim())), keepdim=True)


@operator("MaxUnpool")
def _max_unpool(inputs: Inputs, attrs: dict) -> Tensor:
    """Zeros of the output size with each value of X at its index (MaxPool's flat indices
    over the whole N x C x spatial tensor)."""
    x, index = inputs[0], inputs[1]
    shape = inputs[2] if len(inputs) > 2 else None
    kernel = list(attrs["kernel_shape"])
    dims = len(kernel)
    strides = list(attrs.get("strides", [1] * dims))
    pads = list(attrs.get("pads", [0] * 2 * dims))
    if shape is not None:
        size = [int(v) for v in shape.reshape(-1).tolist()]
    else:
        spatial = [(x.shape[2 + a] - 1) * strides[a] + kernel[a] - pads[a] - pads[a + dims]
                   for a in range(dims)]  # fmt: skip
        size = [x.shape[0], x.shape[1], *spatial]
    flat = x.new_zeros(math.prod(size))
    return flat.scatter(0, index.reshape(-1).long(), x.reshape(-1)).reshape(size)


# -- normalization ------------------------------------------------------------------------------


def _channel_view(t: Tensor, rank: int) -> Tensor:
    return t.reshape(1, -1, *([1] * (rank - 2)))


@operator("BatchNormalization")
def _batch_norm(inputs: Inputs, attrs: dict) -> Tensor:
    x, scale, bias, mean, var = inputs[:5]
    epsilon = attrs.get("epsilon", 1e-5)
    rank = x.dim()
    running = None
    if attrs.get("training_mode", 0):
        dims = [0, *range(2, rank)]
        batch_mean, batch_var = x.mean(dim=dims), x.var(dim=dims, unbiased=False)
        momentum = attrs.get("momentum", 0.9)
        running = (mean * momentum + batch_mean * (1 - momentum),
                   var * momentum + batch_var * (1 - momentum))  # fmt: skip
        mean, var = batch_mean, batch_var
    y = (x - _channel_view(mean, rank)) / torch.sqrt(_channel_view(var, rank) + epsilon)
    y = y * _channel_view(scale, rank) + _channel_view(bias, rank)
    return y if running is None else (y, *running)


@operator("InstanceNormalization")
def _instance_norm(inputs: Inputs, attrs: dict) -> Tensor:
    x, scale, bias = inputs[:3]
    return F.instance_norm(x, weight=scale, bias=bias, eps=attrs.get("epsilon", 1e-5))


def group_scales(scale: Tensor, bias: Tensor, channels: int, groups: int) -> tuple:
    """GroupNormalization's scale and bias per channel: opset 21 gives one per channel, opset
    18 one per group (each channel of a group takes its group's).

    Example:
        >>> group_scales(torch.tensor([1.0, 2.0]), torch.zeros(2), 4, 2)[0].tolist()
        [1.0, 1.0, 2.0, 2.0]
    """
    scale, bias = scale.reshape(-1), bias.reshape(-1)
    if scale.numel() != channels and scale.numel() == groups and channels % groups == 0:
        scale = scale.repeat_interleave(channels // groups)
        bias = bias.repeat_interleave(channels // groups)
    return scale, bias


@operator("GroupNormalization")
def _group_norm(inputs: Inputs, attrs: dict) -> Tensor:
    x, scale, bias = inputs[:3]
    groups = int(attrs["num_groups"])
    scale, bias = group_scales(scale, bias, x.shape[1], groups)
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()  # stash_type: float
    y = F.group_norm(work, groups, scale.to(work.dtype), bias.to(work.dtype),
                     eps=attrs.get("epsilon", 1e-5))  # fmt: skip
    return y.to(x.dtype)


@operator("LRN")
def _lrn(inputs: Inputs, attrs: dict) -> Tensor:
    from deeptoolbox.layers._norm import local_response_norm

    return local_response_norm(
        inputs[0], int(attrs["size"]), attrs.get("alpha", 1e-4), attrs.get("beta", 0.75),
        attrs.get("bias", 1.0),
    )  # fmt: skip


@operator("LayerNormalization")
def _layer_norm(inputs: Inputs, attrs: dict) -> Tensor:
    x, scale = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    axis = attrs.get("axis", -1) % x.dim()
    dims = tuple(range(axis, x.dim()))
    work = x.double() if x.dtype == torch.float64 else x.float()
    mean = work.mean(dim=dims, keepdim=True)
    var = ((work - mean) ** 2).mean(dim=dims, keepdim=True)
    inverse = 1 / torch.sqrt(var + attrs.get("epsilon", 1e-5))
    y = ((work - mean) * inverse).to(x.dtype) * scale
    y = y + bias if bias is not None else y
    return y, mean.float(), inverse.float()


# -- reductions ---------------------------------------------------------------------------------


def _lowest(dtype: torch.dtype) -> bool | int | float:
    if dtype == torch.bool:
        return False
    return float("-inf") if dtype.is_floating_point else torch.iinfo(dtype).min


def _highest(dtype: torch.dtype) -> bool | int | float:
    if dtype == torch.bool:
        return True
    return float("inf") if dtype.is_floating_point else torch.iinfo(dtype).max


def _reduce(
    function: Callable[[Tensor, tuple[int, ...], bool], Tensor],
    empty: Callable[[torch.dtype], bool | int | float] | None = None,
):
    """An ONNX Reduce* op from ``function(x, dims, keepdims)``; ``empty(dtype)`` gives the
    result over an empty set where torch has none (max and min: the dtype's extreme value)."""

    def run(inputs: Inputs, attrs: dict) -> Tensor:
        x, axes = inputs[0], _axes(inputs, attrs, 1)
        keep = bool(attrs.get("keepdims", 1))
        if not axes:
            if attrs.get("noop_with_empty_axes", 0):
                return x
            axes = list(range(x.dim()))
        dims = tuple(sorted(a % x.dim() for a in axes))
        if x.numel() == 0 and empty is not None:
            shape = [1 if i in dims else d for i, d in enumerate(x.shape)]
            y = torch.full(shape, empty(x.dtype), dtype=x.dtype)
            return y if keep else y.reshape([d for i, d in enumerate(x.shape) if i not in dims])
        return function(x, dims, keep)

    return run


def _product(x: Tensor, dims: tuple[int, ...], keep: bool) -> Tensor:
    for axis in sorted(dims, reverse=True):
        x = torch.prod(x, dim=axis, keepdim=keep)
    return x


OPERATORS.update(
    ReduceMean=_reduce(lambda x, d, k: torch.mean(x, dim=d, keepdim=k)),
    ReduceSum=_reduce(lambda x, d, k: torch.sum(x, dim=d, keepdim=k)),
    ReduceMax=_reduce(lambda x, d, k: torch.amax(x, dim=d, keepdim=k), empty=_lowest),
    ReduceMin=_reduce(lambda x, d, k: torch.amin(x, dim=d, keepdim=k), empty=_highest),
    ReduceProd=_reduce(_product),
    ReduceL2=_reduce(lambda x, d, k: torch.sqrt(torch.sum(x * x, dim=d, keepdim=k))),
    ReduceSumSquare=_reduce(lambda x, d, k: torch.sum(x * x, dim=d, keepdim=k)),
)


def _arg_of(function):
    def run(inputs: Inputs, attrs: dict) -> Tensor:
        x, axis = inputs[0], attrs.get("axis", 0)
        keep = bool(attrs.get("keepdims", 1))
        if attrs.get("select_last_index", 0):
            flipped = function(x.flip(axis), dim=axis, keepdim=keep)
            return x.shape[axis] - 1 - flipped
        return function(x, dim=axis, keepdim=keep)

    return run


OPERATORS.update(ArgMax=_arg_of(torch.argmax), ArgMin=_arg_of(torch.argmin))
