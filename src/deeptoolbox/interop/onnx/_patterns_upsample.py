"""Graph patterns of the upsampling layers: transposed convolutions, resizing, max unpooling.

Exporters write a ``TransposedConv1d`` on (N, T, C) sequences as ``Transpose -> ConvTranspose
-> Transpose``, and an odd ``cropping="same"`` as ``ConvTranspose -> Slice`` (the extra
element cropped at the end); a ``Resize3d(output_size=...)`` as ``Resize`` with sizes
``Concat(Shape(x)[0:2], sizes)``; a ``MaxUnpooling2d`` as the max pooling's indices feeding a
``ScatterElements`` (or a standard ``MaxUnpool`` node). Each match becomes a :class:`Fused`
layer, which the import checks against the original nodes on its samples (see
:mod:`._patterns`).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError
from deeptoolbox.interop.onnx._graph import (
    Fused,
    Graph,
    is_transpose,
    layer_name,
    node_attributes,
)

__all__ = ["transposed_cropping", "resize_layer", "UPSAMPLE_MATCHERS"]


def transposed_cropping(
    begin: list[int], end: list[int], kernel: tuple[int, ...], stride: tuple[int, ...]
) -> str | tuple[int, ...] | None:
    """The toolbox ``cropping`` that crops ``begin`` / ``end`` elements of each axis of the
    full transposed-convolution output, or None when none does.

    Example:
        >>> transposed_cropping([0, 0], [1, 1], (3, 3), (2, 2))
        'same'
        >>> transposed_cropping([1], [1], (4,), (2,))
        (1,)
    """
    if min(begin + end, default=0) < 0:
        return None
    if begin == end:
        return tuple(begin)
    same = all(
        k >= s and b == (k - s) // 2 and e == k - s - b
        for b, e, k, s in zip(begin, end, kernel, stride, strict=True)
    )
    return "same" if same else None


def _transposed_geometry(attrs: dict, weight: torch.Tensor):
    """(kernel, stride, pads) of a plain ConvTranspose node, or None for options the toolbox's
    layers do not have (groups, dilation, output padding or shape, automatic padding)."""
    d = weight.dim() - 2
    kernel = tuple(int(k) for k in weight.shape[2:])
    if (
        attrs.get("group", 1) != 1
        or list(attrs.get("dilations", [1] * d)) != [1] * d
        or any(attrs.get("output_padding", [0] * d))
        or "output_shape" in attrs
        or attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID")
        or tuple(attrs.get("kernel_shape", kernel)) != kernel
    ):
        return None
    stride = tuple(int(s) for s in attrs.get("strides", [1] * d))
    pads = [int(p) for p in attrs.get("pads", [0] * 2 * d)]
    return kernel, stride, pads


def _end_trim(graph: Graph, node, rank: int) -> dict[int, int] | None:
    """{spatial axis: elements} a Slice cuts off the end of spatial axes, or None."""
    if node is None or node.op_type != "Slice" or len(node.input) < 4:
        return None
    parts = [graph.constant(name) for name in node.input[1:5]]
    if any(p is None for p in parts[:3]):
        return None
    starts, ends, axes = (p.reshape(-1).tolist() for p in parts[:3])
    steps = parts[3].reshape(-1).tolist() if len(parts) > 3 and parts[3] is not None else None
    if steps is not None and any(s != 1 for s in steps) or any(s != 0 for s in starts):
        return None
    trim = {}
    for axis, stop in zip(axes, ends, strict=True):
        axis = int(axis) % rank
        if axis < 2 or stop >= 0:
            return None
        trim[axis - 2] = -int(stop)
    return trim


def _match_transposed_conv(graph: Graph, node) -> Iterator[Fused]:
    """``[Transpose] -> ConvTranspose -> Slice... -> [Transpose]`` -> a transposed conv layer."""
    weight = graph.constant(node.input[1]) if len(node.input) > 1 else None
    bias = graph.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if weight is None or weight.dim() not in (3, 4, 5) or (len(node.input) > 2 and node.input[2]
                                                            and bias is None):  # fmt: skip
        return
    geometry = _transposed_geometry(node_attributes(node), weight)
    if geometry is None:
        return
    kernel, stride, pads = geometry
    d, start, replaced = weight.dim() - 2, node.input[0], [node]
    if d == 1:
        before = graph.producer.get(node.input[0])
        if not is_transpose(before, [0, 2, 1]):
            return
        start = before.input[0]
    trims, after = [0] * d, graph.only_consumer(node.output[0])
    while (trim := _end_trim(graph, after, d + 2)) is not None:
        for axis, count in trim.items():
            trims[axis] += count
        replaced.append(after)
        after = graph.only_consumer(after.output[0])
    if d == 1 and not is_transpose(after, [0, 2, 1]):
        return
    if d == 1:
        replaced.append(after)
    elif len(replaced) == 1:
        return  # a lone ConvTranspose: the node mapper handles it
    ends = [p + t for p, t in zip(pads[d:], trims, strict=True)]
    cropping = transposed_cropping(pads[:d], ends, kernel, stride)
    if cropping is None:
        return
    kind = (L.TransposedConv1d, L.TransposedConv2d, L.TransposedConv3d)[d - 1]
    layer = kind(int(weight.shape[1]), kernel, stride=stride, cropping=cropping,
                 bias=bias is not None)  # fmt: skip
    weights = {"weight": weight.detach().clone().float()}
    if bias is not None:
        weights["bias"] = bias.detach().clone().float()
    yield Fused(layer_name(node, "upconv"), [start], [replaced[-1].output[0]], layer, weights,
                replaced, ranks=(d + 2,))  # fmt: skip


# -- Resize ------------------------------------------------------------------------------------


def resize_layer(
    attrs: dict, rank: int, scales: torch.Tensor | None, sizes: list[int] | None
) -> L.Layer | None:
    """The Resize2d / Resize3d equal to an ONNX ``Resize`` of a rank-4/5 tensor with constant
    ``scales`` or spatial ``sizes``, or None (torch's nearest: asymmetric + floor; linear:
    half-pixel).

    Example:
        >>> resize_layer({"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
        ...               "nearest_mode": "floor"}, 5, torch.tensor([1.0, 1, 2, 2, 2]), None)
        Resize3d(scale=(2.0, 2.0, 2.0))
    """
    if rank not in (4, 5) or attrs.get("antialias", 0) or "axes" in attrs:
        return None
    mode = attrs.get("mode", "nearest")
    transform = attrs.get("coordinate_transformation_mode", "half_pixel")
    if mode == "nearest" and transform == "asymmetric" and attrs.get("nearest_mode") == "floor":
        method = "nearest"
    elif mode == "linear" and transform in ("half_pixel", "pytorch_half_pixel"):
        method = "bilinear" if rank == 4 else "trilinear"
        if transform == "pytorch_half_pixel" and (sizes is None or min(sizes) < 2):
            return None  # pytorch_half_pixel differs from half_pixel for outputs of length 1
    else:
        return None
    if attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        return None
    kind = L.Resize2d if rank == 4 else L.Resize3d
    if sizes is not None:
        return kind(output_size=tuple(int(s) for s in sizes), method=method)
    if scales is None or scales.numel() != rank or scales[:2].tolist() != [1.0, 1.0]:
        return None
    spatial = scales[2:].tolist()
    if min(spatial) <= 0:
        return None
    return kind(scale=tuple(float(s) for s in spatial), method=method)


def _shape_prefix(graph: Graph, name: str, source: str) -> bool:
    """True when ``name`` is ``Shape(source)[0:2]`` (batch and channels): a Shape node with
    start 0 and end 2, or a Slice of the whole shape from 0 to 2 on axis 0."""
    node = graph.made_by(name, "Shape")
    attrs = node_attributes(node) if node is not None else {}
    if node is not None and attrs.get("end") is not None:
        return node.input[0] == source and attrs.get("start", 0) == 0 and attrs["end"] == 2
    cut = graph.made_by(name, "Slice")
    whole = graph.made_by(cut.input[0], "Shape") if cut is not None else None
    if whole is None or whole.input[0] != source or node_attributes(whole) or len(cut.input) < 3:
        return False
    bounds = [graph.constant(n) for n in cut.input[1:5]]
    if any(b is None for b in bounds[:2]):
        return False
    values = [b.reshape(-1).tolist() for b in bounds if b is not None]
    return (
        values[:2] == [[0], [2]]
        and all(v == [0] for v in values[2:3])
        and (len(values) < 4 or values[3] == [1])
    )


def _match_resize(graph: Graph, node) -> Iterator[Fused]:
    """``Resize(x, sizes=Concat(Shape(x)[0:2], constant spatial sizes))`` -> Resize2d/3d."""
    if len(node.input) < 4 or not node.input[3]:
        return
    joined = graph.made_by(node.input[3], "Concat")
    if joined is None or len(joined.input) != 2 or not _shape_prefix(graph, joined.input[0],
                                                                     node.input[0]):  # fmt: skip
        return
    spatial = graph.constant(joined.input[1])
    if spatial is None or spatial.numel() not in (2, 3):
        return
    layer = resize_layer(node_attributes(node), spatial.numel() + 2, None,
                         spatial.reshape(-1).tolist())  # fmt: skip
    if layer is not None:
        yield Fused(layer_name(node, "resize"), [node.input[0]], [node.output[0]], layer, {},
                    [node], ranks=(spatial.numel() + 2,))  # fmt: skip


# -- max unpooling -----------------------------------------------------------------------------


def _indices_pool(graph: Graph, name: str, depth: int = 0):
    """The 2-D MaxPool whose indices output ``name`` is computed from (a few nodes up)."""
    node = graph.producer.get(name)
    if node is None or isinstance(node, Fused) or depth > 4:
        return None
    if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1] == name:
        kernel = list(node_attributes(node).get("kernel_shape", []))
        return node if len(kernel) == 2 and kernel != [1, 1] else None
    for source in node.input:
        found = _indices_pool(graph, source, depth + 1) if source else None
        if found is not None:
            return found
    return None


def _unpooling(pool) -> L.MaxUnpooling2d | None:
    attrs = node_attributes(pool)
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if (
        attrs.get("auto_pad", "NOTSET") != "NOTSET"
        or attrs.get("ceil_mode", 0)
        or pads[:2] != pads[2:]
    ):
        return None
    if list(attrs.get("dilations", [1, 1])) != [1, 1] or attrs.get("storage_order", 0):
        return None
    try:
        return L.MaxUnpooling2d(tuple(attrs["kernel_shape"]), stride=tuple(attrs.get("strides", [1, 1])),
                                padding=tuple(pads[:2]))  # fmt: skip
    except OptionError:
        return None


def _match_unpool(graph: Graph, node) -> Iterator[Fused]:
    """``MaxUnpool(values, MaxPool(x).indices)``, or ``Reshape(ScatterElements(zeros, indices
    from MaxPool(x), Reshape(values)))`` as torch writes it -> MaxUnpooling2d(values, x)."""
    pool = _indices_pool(graph, node.input[1]) if len(node.input) > 1 else None
    layer = _unpooling(pool) if pool is not None else None
    if layer is None:
        return
    values, replaced = node.input[0], [node]
    if node.op_type == "ScatterElements":
        after = graph.only_consumer(node.output[0])
        flat = graph.producer.get(node.input[2])
        if after is None or after.op_type != "Reshape" or not graph.is_zero(node.input[0]):
            return
        values = flat.input[0] if flat is not None and flat.op_type == "Reshape" else node.input[2]
        replaced.append(after)
    yield Fused(layer_name(node, "unpool"), [values, pool.input[0]], [replaced[-1].output[0]],
                layer, {}, replaced, ranks=(4,))  # fmt: skip


UPSAMPLE_MATCHERS = {
    "ConvTranspose": _match_transposed_conv,
    "Resize": _match_resize,
    "ScatterElements": _match_unpool,
    "MaxUnpool": _match_unpool,
}
"""ONNX op type -> the matcher of the patterns around it (used by fuse_patterns)."""
