"""Map ONNX nodes onto toolbox layers (Conv -> Conv2d, Gemm -> Dense, ...) where equivalent.

A mapper gets the node's op type, attributes, inputs (constant tensors, or None for inputs that
come from other layers) and the batch size of its first input, and returns a toolbox layer plus
the weights to copy into it after it is built, or None when the node does not fit the layer
exactly (it then becomes an :class:`OnnxOperator`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

from deeptoolbox import layers as L

Mapped = tuple[nn.Module, dict[str, torch.Tensor]] | None
Mapper = Callable[[dict, list, list[tuple[int, ...] | None]], Mapped]

MAPPERS: dict[str, Mapper] = {}


def mapper(*names: str) -> Callable[[Mapper], Mapper]:
    """Register a function that maps ONNX op types ``names`` to toolbox layers."""

    def decorate(function: Mapper) -> Mapper:
        for name in names:
            MAPPERS[name] = function
        return function

    return decorate


def mapped_operators() -> dict[str, str]:
    """ONNX op type -> the toolbox layer it becomes when its options fit that layer.

    Example:
        >>> mapped_operators()["Conv"]
        'Conv2d / Conv3d'
    """
    return dict(_TARGETS)


_TARGETS = {
    "Conv": "Conv2d / Conv3d", "Gemm": "Dense", "MatMul": "Dense", "Relu": "ReLU", "Sigmoid": "Sigmoid",
    "Tanh": "Tanh", "LeakyRelu": "LeakyReLU", "Elu": "ELU", "BatchNormalization": "BatchNorm",
    "MaxPool": "MaxPool2d", "AveragePool": "AvgPool2d", "Flatten": "Flatten",
    "Add": "Addition", "Mul": "Multiplication", "Concat": "Concatenation", "Softmax": "Softmax",
    "Dropout": "Dropout", "ReduceMean": "GlobalAvgPool", "ReduceMax": "GlobalMaxPool",
    "Clip": "ClippedReLU", "PRelu": "PReLU", "Softplus": "Softplus", "HardSwish": "HardSwish",
    "HardSigmoid": "HardSigmoid", "Mish": "Mish", "InstanceNormalization": "InstanceNorm",
    "LayerNormalization": "LayerNorm",
    "LRN": "CrossChannelNorm", "DepthToSpace": "DepthToSpace", "SpaceToDepth": "SpaceToDepth",
    "Gather": "Indexing1d",
    "ConvTranspose": "TransposedConv2d / TransposedConv3d", "Resize": "Resize2d / Resize3d",
    "Slice": "Crop2d", "Gelu": "GELU", "GroupNormalization": "GroupNorm",
}  # fmt: skip


def _runtime(inputs: list, count: int) -> bool:
    """True when the first ``count`` inputs come from layers and the rest are constants."""
    return all(x is None for x in inputs[:count]) and all(
        isinstance(x, torch.Tensor) for x in inputs[count:]
    )


def _float(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().float()


@mapper("Relu", "Sigmoid", "Tanh")
def _activation(attrs: dict, inputs: list, shapes: list) -> Mapped:
    kind = {"Relu": L.ReLU, "Sigmoid": L.Sigmoid, "Tanh": L.Tanh}[attrs["_op"]]
    return kind(), {}


@mapper("LeakyRelu")
def _leaky(attrs: dict, inputs: list, shapes: list) -> Mapped:
    return L.LeakyReLU(float(attrs.get("alpha", 0.01))), {}


@mapper("Elu")
def _elu(attrs: dict, inputs: list, shapes: list) -> Mapped:
    alpha = float(attrs.get("alpha", 1.0))
    return (L.ELU(alpha), {}) if alpha > 0 else None


@mapper("Conv")
def _conv(attrs: dict, inputs: list, shapes: list) -> Mapped:
    """A 2-D / 3-D Conv with symmetric padding -> Conv2d / Conv3d."""
    if len(inputs) < 2 or not _runtime(inputs, 1) or inputs[1].dim() not in (4, 5):
        return None
    weight, d = inputs[1], inputs[1].dim() - 2
    pads = [int(p) for p in attrs.get("pads", [0] * 2 * d)]
    auto = attrs.get("auto_pad", "NOTSET")
    if len(shapes[0]) != d + 2 or auto not in ("NOTSET", "VALID") or pads[:d] != pads[d:]:
        return None
    bias = inputs[2] if len(inputs) > 2 else None
    layer = (L.Conv2d if d == 2 else L.Conv3d)(
        weight.shape[0],
        tuple(weight.shape[2:]),
        stride=tuple(attrs.get("strides", [1] * d)),
        padding=tuple(pads[:d]) if auto == "NOTSET" else (0,) * d,
        dilation=tuple(attrs.get("dilations", [1] * d)),
        groups=int(attrs.get("group", 1)),
        bias=bias is not None,
    )
    weights = {"weight": _float(weight)}
    if bias is not None:
        weights["bias"] = _float(bias)
    return layer, weights


@mapper("Gemm")
def _gemm(attrs: dict, inputs: list, shapes: list) -> Mapped:
    if not _runtime(inputs, 1) or attrs.get("transA", 0) or len(shapes[0]) != 2:
        return None
    if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
        return None
    weight = inputs[1] if attrs.get("transB", 0) else inputs[1].t()
    bias = inputs[2] if len(inputs) > 2 else None
    if bias is not None and (
        bias.dim() > 1 and bias.shape[0] != 1 or bias.numel() != weight.shape[0]
    ):
        return None
    weights = {"weight": _float(weight)}
    if bias is not None:
        weights["bias"] = _float(bias.reshape(-1))
    return L.Dense(weight.shape[0], bias=bias is not None), weights


@mapper("MatMul")
def _matmul(attrs: dict, inputs: list, shapes: list) -> Mapped:
    if not _runtime(inputs, 1) or inputs[1].dim() != 2 or len(shapes[0]) not in (2, 3):
        return None
    return L.Dense(inputs[1].shape[1], bias=False), {"weight": _float(inputs[1].t())}


@mapper("BatchNormalization")
def _batch_norm(attrs: dict, inputs: list, shapes: list) -> Mapped:
    if not _runtime(inputs, 1) or len(inputs) != 5 or len(shapes[0]) != 4:
        return None
    if attrs.get("training_mode", 0) or attrs["_outputs"] != 1:
        return None
    scale, bias, mean, var = inputs[1:5]
    layer = L.BatchNorm(epsilon=float(attrs.get("epsilon", 1e-5)))
    momentum = 1 - float(attrs.get("momentum", 0.9))
    if 0 < momentum <= 1:
        layer.momentum = momentum
    weights = {"weight": scale, "bias": bias, "running_mean": mean, "running_var": var}
    return layer, {k: _float(v) for k, v in weights.items()}


def _pool_fits(attrs: dict, shapes: list) -> bool:
    kernel = attrs.get("kernel_shape", [])
    d = len(kernel)
    pads = list(attrs.get("pads", [0] * 2 * d))
    return (
        d in (2, 3)
        and len(shapes[0]) == d + 2
        and attrs.get("auto_pad", "NOTSET") in ("NOTSET", "VALID")
        and not attrs.get("ceil_mode", 0)
        and list(attrs.get("dilations", [1] * d)) == [1] * d
        and pads[:d] == pads[d:]
        and all(p <= k // 2 for p, k in zip(pads[:d], kernel, strict=True))
        and attrs["_outputs"] == 1
    )


@mapper("MaxPool", "AveragePool")
def _pool(attrs: dict, inputs: list, shapes: list) -> Mapped:
    if not _runtime(inputs, 1) or not _pool_fits(attrs, shapes):
        return None
    d = len(attrs["kernel_shape"])
    pads = list(attrs.get("pads", [0] * 2 * d))[:d]
    if attrs["_op"] == "AveragePool" and any(pads):
        return None  # the toolbox's average pools count padding; ONNX by default does not
    kinds = {("MaxPool", 2): L.MaxPool2d, ("AveragePool", 2): L.AvgPool2d,
             ("MaxPool", 3): L.MaxPool3d, ("AveragePool", 3): L.AvgPool3d}  # fmt: skip
    kind = kinds[(attrs["_op"], d)]
    kernel = tuple(attrs["kernel_shape"])
    return kind(kernel, stride=tuple(attrs.get("strides", [1] * d)), padding=tuple(pads)), {}


@mapper("Flatten")
def _flatten(attrs: dict, inputs: list, shapes: list) -> Mapped:
    if not _runtime(inputs, 1) or attrs.get("axis", 1) != 1 or len(shapes[0]) < 2:
        return None
    return L.Flatten(), {}


@mapper("Add", "Mul")
def _elementwise(attrs: dict, inputs: list, shapes: list) -> Mapped:
    if not _runtime(inputs, len(inputs)) or len(set(shapes)) != 1 or len(inputs) != 2:
        return None
    return (L.Addition(2) if attrs["_op"] == "Add" else L.Multiplication(2)), {}


@mapper("Concat")
def _concat(attrs: dict, inputs: list, shapes: list) -> Mapped:
    if not _runtime(inputs, len(inputs)) or len(inputs) < 2:
        return None
    rank = len(shapes[0])
    channel = rank - 1 if rank <= 3 else 1
    if rank < 2 or attrs["axis"] % rank != channel:
        return None
    return L.Concatenation(len(inputs)), {}


@mapper("Softmax")
def _softmax(attrs: dict, inputs: list, shapes: list) -> Mapped:
    rank = len(shapes[0])
    if not _runtime(inputs, 1) or rank not in (2, 3) or attrs.get("axis", -1) % rank != rank - 1:
        return None
    return L.Softmax(), {}


@mapper("Dropout")
def _dropout(attrs: dict, inputs: list, shapes: list) -> Mapped:
    if inputs[0] is not None or attrs["_outputs"] != 1:
        return None
    ratio = inputs[1] if len(inputs) > 1 and isinstance(inputs[1], torch.Tensor) else None
    probability = float(ratio) if ratio is not None else float(attrs.get("ratio", 0.5))
    return (L.Dropout(probability), {}) if 0 <= probability < 1 else None


@mapper("ReduceMean", "ReduceMax")
def _global_pool(attrs: dict, inputs: list, shapes: list) -> Mapped:
    """A reduction over all time steps of (N, T, C) or all positions of (N, C, H, W[, D]),
    without kept dimensions: the toolbox's global pooling."""
    rank = len(shapes[0])
    axes = inputs[1] if len(inputs) > 1 and isinstance(inputs[1], torch.Tensor) else None
    axes = axes.reshape(-1).tolist() if axes is not None else attrs.get("axes")
    if inputs[0] is not None or axes is None or attrs.get("keepdims", 1) or not attrs["_float"]:
        return None
    if rank not in (3, 4, 5):
        return None
    wanted = [1] if rank == 3 else list(range(2, rank))
    if sorted(int(a) % rank for a in axes) != wanted or len(set(axes)) != len(axes):
        return None
    return (L.GlobalAvgPool() if attrs["_op"] == "ReduceMean" else L.GlobalMaxPool()), {}


@mapper("Softplus", "HardSwish", "Mish")
def _smooth_activation(attrs: dict, inputs: list, shapes: list) -> Mapped:
    if not _runtime(inputs, 1) or not attrs["_float"]:
        return None
    return {"Softplus": L.Softplus, "HardSwish": L.HardSwish, "Mish": L.Mish}[attrs["_op"]](), {}


@mapper("Gelu")
def _gelu(attrs: dict, inputs: list, shapes: list) -> Mapped:
    approximation = str(attrs.get("approximate", "none"))
    if not _runtime(inputs, 1) or not attrs["_float"] or approximation not in ("none", "tanh"):
        return None
    return L.GELU(approximation), {}


@mapper("GroupNormalization")
def _group_norm(attrs: dict, inputs: list, shapes: list) -> Mapped:
    """GroupNormalization of images or volumes with constant scale and bias (per channel,
    opset 21, or per group, opset 18) -> GroupNorm."""
    from deeptoolbox.interop.onnx._ops import group_scales

    if not _runtime(inputs, 1) or len(inputs) != 3 or len(shapes[0]) not in (4, 5):
        return None
    channels, groups = shapes[0][1], int(attrs.get("num_groups", 0))
    epsilon = float(attrs.get("epsilon", 1e-5))
    if not attrs["_float"] or groups < 1 or channels % groups or epsilon <= 0:
        return None
    scale, bias = group_scales(inputs[1], inputs[2], channels, groups)
    if scale.numel() != channels or bias.numel() != channels:
        return None
    return L.GroupNorm(groups, epsilon=epsilon), {"weight": _float(scale), "bias": _float(bias)}


@mapper("HardSigmoid")
def _hard_sigmoid(attrs: dict, inputs: list, shapes: list) -> Mapped:
    if not _runtime(inputs, 1) or not attrs["_float"]:
        return None
    return L.HardSigmoid(float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))), {}


@mapper("Clip")
def _clip(attrs: dict, inputs: list, shapes: list) -> Mapped:
    """``Clip(x, 0, c)`` with a constant c > 0: a clipped ReLU."""
    if inputs[0] is not None or len(inputs) != 3 or not attrs["_float"]:
        return None
    low, high = inputs[1], inputs[2]
    if not (isinstance(low, torch.Tensor) and isinstance(high, torch.Tensor)):
        return None
    if low.numel() != 1 or high.numel() != 1 or float(low) != 0.0:
        return None
    ceiling = float(high)
    return (L.ClippedReLU(ceiling), {}) if 0 < ceiling < float("inf") else None


@mapper("PRelu")
def _prelu(attrs: dict, inputs: list, shapes: list) -> Mapped:
    """A slope shared by all values, or one per channel laid out to broadcast on axis 1."""
    if not _runtime(inputs, 1) or len(inputs) != 2 or not attrs["_float"]:
        return None
    slope, rank = inputs[1], len(shapes[0])
    if rank not in (2, 4, 5) or slope.dim() > rank:
        return None
    if slope.numel() == 1:
        return L.PReLU(channel_wise=False), {"alpha": _float(slope.reshape(1))}
    per_channel = (shapes[0][1],) + (1,) * (rank - 2)
    dims = list(slope.shape)
    while len(dims) > rank - 1 and dims[0] == 1:  # a leading batch axis of one
        dims.pop(0)
    if tuple(dims) != per_channel:
        return None
    return L.PReLU(), {"alpha": _float(slope.reshape(-1))}


@mapper("InstanceNormalization")
def _instance_norm(attrs: dict, inputs: list, shapes: list) -> Mapped:
    if not _runtime(inputs, 1) or len(inputs) != 3 or len(shapes[0]) not in (4, 5):
        return None
    epsilon = float(attrs.get("epsilon", 1e-5))
    if not attrs["_float"] or epsilon <= 0:
        return None
    return L.InstanceNorm(epsilon=epsilon), {"weight": _float(inputs[1]), "bias": _float(inputs[2])}


@mapper("LayerNormalization")
def _layer_norm(attrs: dict, inputs: list, shapes: list) -> Mapped:
    """LayerNormalization over the last axis of features (N, C) or sequences (N, T, C), with
    a constant scale (and bias) of C values -> LayerNorm."""
    rank = len(shapes[0])
    if not _runtime(inputs, 1) or len(inputs) not in (2, 3) or rank not in (2, 3):
        return None
    epsilon = float(attrs.get("epsilon", 1e-5))
    channels = shapes[0][-1]
    if attrs.get("axis", -1) % rank != rank - 1 or attrs["_outputs"] != 1 or epsilon <= 0:
        return None
    scale = inputs[1]
    bias = inputs[2] if len(inputs) > 2 and inputs[2] is not None else torch.zeros_like(scale)
    if not attrs["_float"] or any(t.numel() != channels for t in (scale, bias)):
        return None
    return L.LayerNorm(epsilon=epsilon), {"weight": _float(scale).reshape(-1),
                                          "bias": _float(bias).reshape(-1)}  # fmt: skip


@mapper("LRN")
def _lrn(attrs: dict, inputs: list, shapes: list) -> Mapped:
    if not _runtime(inputs, 1) or len(shapes[0]) not in (4, 5) or not attrs["_float"]:
        return None
    options = {k: float(attrs.get(o, d)) for k, o, d in
               (("alpha", "alpha", 1e-4), ("beta", "beta", 0.75), ("k", "bias", 1.0))}  # fmt: skip
    size = int(attrs.get("size", 0))
    if size < 1 or min(options.values()) <= 0:
        return None
    return L.CrossChannelNorm(size, **options), {}


@mapper("DepthToSpace", "SpaceToDepth")
def _block_rearrange(attrs: dict, inputs: list, shapes: list) -> Mapped:
    block = int(attrs.get("blocksize", 0))
    if not _runtime(inputs, 1) or len(shapes[0]) != 4 or block < 1:
        return None
    if attrs["_op"] == "SpaceToDepth":
        return L.SpaceToDepth(block), {}
    mode = str(attrs.get("mode", "DCR")).lower()
    return (L.DepthToSpace(block, mode=mode), {}) if mode in ("dcr", "crd") else None


@mapper("Gather")
def _gather(attrs: dict, inputs: list, shapes: list) -> Mapped:
    """One constant step of a sequence (N, T, C): ``Gather(x, i, axis=1)``, a scalar i."""
    if len(inputs) != 2 or not _runtime(inputs, 1) or len(shapes[0]) != 3:
        return None
    index = inputs[1]
    if int(attrs.get("axis", 0)) != 1 or index.dim() != 0 or index.is_floating_point():
        return None
    return L.Indexing1d(int(index)), {}


@mapper("ConvTranspose")
def _conv_transpose(attrs: dict, inputs: list, shapes: list) -> Mapped:
    """A 2-D / 3-D ConvTranspose without groups, dilation or output padding; ``SAME_UPPER``
    (and ``SAME_LOWER`` with even crops) is ``cropping="same"``."""
    from deeptoolbox.interop.onnx._patterns_upsample import transposed_cropping

    if len(inputs) < 2 or not _runtime(inputs, 1) or inputs[1].dim() not in (4, 5):
        return None
    weight, d = inputs[1], inputs[1].dim() - 2
    kernel = tuple(int(k) for k in weight.shape[2:])
    stride = tuple(int(s) for s in attrs.get("strides", [1] * d))
    auto = attrs.get("auto_pad", "NOTSET")
    plain = {**attrs, "auto_pad": "NOTSET"} if auto.startswith("SAME") else attrs
    if len(shapes[0]) != d + 2 or not _transposed_geometry(plain, kernel):
        return None
    if auto == "SAME_UPPER" or (auto == "SAME_LOWER" and all((k - s) % 2 == 0 for k, s in
                                                             zip(kernel, stride, strict=True))):  # fmt: skip
        cropping = "same" if all(k >= s for k, s in zip(kernel, stride, strict=True)) else None
    elif auto in ("NOTSET", "VALID"):
        pads = [0] * 2 * d if auto == "VALID" else [int(p) for p in attrs.get("pads", [0] * 2 * d)]
        cropping = transposed_cropping(pads[:d], pads[d:], kernel, stride)
    else:
        cropping = None
    if cropping is None:
        return None
    bias = inputs[2] if len(inputs) > 2 else None
    kind = L.TransposedConv2d if d == 2 else L.TransposedConv3d
    layer = kind(weight.shape[1], kernel, stride=stride, cropping=cropping, bias=bias is not None)
    weights = {"weight": _float(weight)}
    if bias is not None:
        weights["bias"] = _float(bias)
    return layer, weights


def _transposed_geometry(attrs: dict, kernel: tuple[int, ...]) -> bool:
    d = len(kernel)
    return (
        attrs.get("group", 1) == 1
        and list(attrs.get("dilations", [1] * d)) == [1] * d
        and not any(attrs.get("output_padding", [0] * d))
        and "output_shape" not in attrs
        and tuple(attrs.get("kernel_shape", kernel)) == kernel
    )


@mapper("Resize")
def _resize(attrs: dict, inputs: list, shapes: list) -> Mapped:
    """Resize of images or volumes by constant scales or to constant sizes, in torch's
    coordinate rules (see _onnx_patterns_upsample.resize_layer)."""
    from deeptoolbox.interop.onnx._patterns_upsample import resize_layer

    rank = len(shapes[0])
    extra = inputs[1:] + [None] * (4 - len(inputs))
    if inputs[0] is not None or not attrs["_float"] or (extra[0] is not None and extra[0].numel()):
        return None
    scales, sizes = extra[1], extra[2]
    if scales is not None and scales.numel() == 0:
        scales = None
    if sizes is not None:
        if sizes.numel() != rank or tuple(sizes[:2].tolist()) != tuple(shapes[0][:2]):
            return None
        sizes = sizes[2:].tolist()
    layer = resize_layer(attrs, rank, scales, sizes)
    return (layer, {}) if layer is not None else None


@mapper("Slice")
def _slice(attrs: dict, inputs: list, shapes: list) -> Mapped:
    """A constant step-1 Slice of the spatial axes only: Crop1d / Crop2d / Crop3d."""
    shape = shapes[0]
    if not _runtime(inputs, 1) or len(inputs) < 3 or len(shape) not in (3, 4, 5):
        return None
    starts, ends = (inputs[i].flatten().tolist() for i in (1, 2))
    axes = inputs[3].flatten().tolist() if len(inputs) > 3 else list(range(len(starts)))
    steps = inputs[4].flatten().tolist() if len(inputs) > 4 else [1] * len(starts)
    rank = len(shape)
    spatial = [1] if rank == 3 else list(range(2, rank))  # (N, T, C) or (N, C, spatial...)
    crop = {axis: [0, 0] for axis in spatial}
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        axis %= rank
        length = shape[axis]
        start = min(max(start + length if start < 0 else start, 0), length)
        end = min(max(end + length if end < 0 else end, 0), length)
        if axis not in crop or step != 1 or end <= start:
            return None
        crop[axis] = [start, length - end]
    layer = {3: L.Crop1d, 4: L.Crop2d, 5: L.Crop3d}[rank]
    return layer(tuple(tuple(crop[a]) for a in spatial)), {}


def map_node(
    op_type: str, attrs: dict, inputs: list, shapes: list, outputs: int, *, floating: bool = True
) -> Mapped:
    """Return (toolbox layer, weights) for a node, or None to use an operator layer.

    ``shapes`` are the full sample shapes (batch included) of the node's layer inputs;
    ``floating`` tells whether those inputs are floating-point tensors.
    """
    function = MAPPERS.get(op_type)
    if function is None or not shapes or any(s is None for s in shapes):
        return None
    options = {**attrs, "_op": op_type, "_outputs": outputs, "_float": floating}
    return function(options, inputs, shapes)


def load_weights(layer: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Copy imported weights into a built toolbox layer (``rnn.weight_ih_l0``: dotted paths)."""
    with torch.no_grad():
        for key, value in weights.items():
            target = functools.reduce(getattr, key.split("."), layer)
            target.copy_(value.reshape(target.shape))
