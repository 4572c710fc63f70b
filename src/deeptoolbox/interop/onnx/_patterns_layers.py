"""Graph patterns of layers export_onnx writes as small node groups: the token layers of
vision transformers (PatchEmbedding, EmbeddingConcatenation), 1-D pooling and ScaleOffset.

export_onnx writes a ``PatchEmbedding`` on images and volumes as ``Conv`` (stride = kernel, no
padding, one group) ``-> Reshape`` to (N, filters, tokens) ``-> Transpose(0, 2, 1)``, which
only that layer computes; on sequences as ``Transpose -> Conv -> Transpose``, the node group
of a ``Conv1d`` whose stride is its kernel, so there the file's metadata
(``deeptoolbox.layer_classes``, see :mod:`._metadata`) says which of the two layers it was.
An ``EmbeddingConcatenation`` is ``Concat(Expand(token, (N, 1, 1)), x)`` along time, with a
constant token. Each match becomes a :class:`Fused` layer, which the import checks against
the original nodes on its samples (see :mod:`._patterns`). A ``ScaleOffset`` is ``Mul`` by a
constant then ``Add`` of one; as any file may hold such nodes (and those right after an input
are its normalization, see :mod:`._normalization`), they become a ScaleOffset only where the
metadata names one. ``MaxPool1d`` / ``AvgPool1d`` on (N, T, C) are ``Transpose(0, 2, 1) ->
MaxPool / AveragePool (1-D kernel) -> Transpose(0, 2, 1)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch

from deeptoolbox import layers as L
from deeptoolbox.interop.onnx._graph import Fused, Graph, is_transpose, layer_name, node_attributes

__all__ = ["match_patches", "match_class_token", "match_scale_offset", "match_pool1d"]

Recorded = Mapping[str, dict[str, Any]]


def _patch_conv(graph: Graph, node) -> tuple | None:
    """(weight, bias or None, kernel) of a Conv node that cuts its input into patches (stride
    = kernel, no padding, no dilation, one group, constant weights), else None."""
    weight = graph.constant(node.input[1]) if len(node.input) > 1 else None
    has_bias = len(node.input) > 2 and bool(node.input[2])
    bias = graph.constant(node.input[2]) if has_bias else None
    if weight is None or weight.dim() < 3 or (has_bias and bias is None):
        return None
    attrs = node_attributes(node)
    kernel = tuple(int(k) for k in weight.shape[2:])
    spatial = len(kernel)
    if (
        tuple(attrs.get("strides", [1] * spatial)) != kernel
        or any(attrs.get("pads", [0] * 2 * spatial))
        or attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID")
        or any(d != 1 for d in attrs.get("dilations", [1] * spatial))
        or attrs.get("group", 1) != 1
        or tuple(attrs.get("kernel_shape", kernel)) != kernel
    ):
        return None
    return weight, bias, kernel


def _fused_patches(node, found: tuple, recorded: dict, source: str, end, replaced: list):
    weight, bias, kernel = found
    filters = int(weight.shape[0])
    weights = {"weight": weight.detach().clone().float()}
    weights["bias"] = (bias.detach().clone().float() if bias is not None
                       else weight.new_zeros(filters).float())  # fmt: skip
    patch: int | tuple[int, ...] = kernel[0] if len(set(kernel)) == 1 else kernel
    size = recorded.get("patch_size")  # as the layer was written: 2 or (2, 2)
    if isinstance(size, list) and tuple(size) == kernel:
        patch = kernel
    rank = len(kernel) + 2 if len(kernel) > 1 else 3  # batch included
    return Fused(layer_name(node, "patchembedding"), [source], [end.output[0]],
                 L.PatchEmbedding(patch, filters), weights, replaced, ranks=(rank,))  # fmt: skip


def _recorded(classes: Recorded, node) -> dict[str, Any]:
    return classes.get(layer_name(node, ""), {})


def match_patches(graph: Graph, node, classes: Recorded) -> Iterator[Fused]:
    """``Conv -> Reshape (N, F, T) -> Transpose(0, 2, 1)`` on images / volumes, or
    ``Transpose -> Conv -> Transpose`` that the metadata names a PatchEmbedding ->
    :class:`PatchEmbedding`."""
    found = _patch_conv(graph, node)
    if found is None:
        return
    filters, spatial = int(found[0].shape[0]), len(found[2])
    after = graph.only_consumer(node.output[0])
    if spatial == 1:  # sequences: the Conv1d group, told apart by the metadata only
        before = graph.producer.get(node.input[0])
        if (
            _recorded(classes, node).get("class") == "PatchEmbedding"
            and is_transpose(before, [0, 2, 1])
            and is_transpose(after, [0, 2, 1])
        ):
            yield _fused_patches(node, found, _recorded(classes, node), before.input[0], after,
                                 [node, after])  # fmt: skip
        return
    if after is None or after.op_type != "Reshape":
        return
    target = graph.constant(after.input[1]) if len(after.input) > 1 else None
    if target is None or target.dim() != 1 or target.numel() != 3:
        return
    batch, channels, _ = (int(t) for t in target.tolist())
    kept = batch == 0 and not node_attributes(after).get("allowzero", 0)  # 0: the batch kept
    last = graph.only_consumer(after.output[0])
    if not (batch == -1 or kept) or channels != filters or not is_transpose(last, [0, 2, 1]):
        return
    yield _fused_patches(node, found, _recorded(classes, node), node.input[0], last,
                         [node, after, last])  # fmt: skip


def match_class_token(graph: Graph, node) -> Iterator[Fused]:
    """``Concat(Expand(token, shape), x)`` along the time axis of (N, T, C) sequences, with a
    constant token of C values -> :class:`EmbeddingConcatenation`."""
    if len(node.input) != 2 or node_attributes(node).get("axis") not in (1, -2):
        return
    expand = graph.made_by(node.input[0], "Expand")
    token = graph.constant(expand.input[0]) if expand is not None else None
    if token is None or not token.is_floating_point() or token.dim() < 1:
        return
    if any(d != 1 for d in token.shape[:-1]) or graph.only_consumer(expand.output[0]) is None:
        return
    weights = {"weight": token.detach().reshape(-1).clone().float()}
    yield Fused(layer_name(node, "embeddingconcatenation"), [node.input[1]], [node.output[0]],
                L.EmbeddingConcatenation(), weights, [expand, node], ranks=(3,))  # fmt: skip


def _constant_operand(graph: Graph, node) -> tuple[str, torch.Tensor] | None:
    """(variable input, floating constant) of a two-input node with one constant, else None."""
    if len(node.input) != 2:
        return None
    for variable, other in (node.input, node.input[::-1]):
        value = graph.constant(other)
        if value is not None and graph.constant(variable) is None and value.is_floating_point():
            return variable, value
    return None


def match_scale_offset(graph: Graph, node, classes: Recorded) -> Iterator[Fused]:
    """``Mul(x, scale) -> Add(offset)`` (or one of the two) with constants, where the metadata
    names the layer a ScaleOffset -> :class:`ScaleOffset`."""
    recorded = _recorded(classes, node)
    first = _constant_operand(graph, node)
    if recorded.get("class") != "ScaleOffset" or first is None:
        return
    source, value = first
    scale, offset, replaced, end = value, torch.zeros(()), [node], node
    after = graph.only_consumer(node.output[0]) if node.op_type == "Mul" else None
    second = _constant_operand(graph, after) if after is not None else None
    if node.op_type == "Add":
        scale, offset = torch.ones(()), value
    elif after is not None and after.op_type == "Add" and second is not None:
        offset, replaced, end = second[1], [node, after], after
    elif node.op_type != "Mul":
        return
    shape = torch.broadcast_shapes(scale.shape, offset.shape)
    layer = L.ScaleOffset(tuple(shape), trainable=bool(recorded.get("trainable", False)))
    weights = {"scale": scale.float().expand(shape).clone(),
               "offset": offset.float().expand(shape).clone()}  # fmt: skip
    yield Fused(layer_name(node, "scaleoffset"), [source], [end.output[0]], layer, weights,
                replaced)  # fmt: skip


def match_pool1d(graph: Graph, node) -> Iterator[Fused]:
    """``Transpose(0, 2, 1) -> MaxPool / AveragePool (1-D kernel) -> Transpose(0, 2, 1)`` ->
    :class:`MaxPool1d` / :class:`AvgPool1d` (symmetric padding of at most half the window;
    an average pool only without padding or counting it, as the toolbox's does)."""
    attrs = node_attributes(node)
    kernel = [int(k) for k in attrs.get("kernel_shape", [])]
    before = graph.producer.get(node.input[0])
    after = graph.only_consumer(node.output[0])
    if (
        len(kernel) != 1
        or any(node.output[1:])
        or not (is_transpose(before, [0, 2, 1]) and is_transpose(after, [0, 2, 1]))
    ):
        return
    pads = (
        [0, 0] if attrs.get("auto_pad") == "VALID" else [int(p) for p in attrs.get("pads", [0, 0])]
    )
    average = node.op_type == "AveragePool"
    if (
        attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID")
        or attrs.get("ceil_mode", 0)
        or list(attrs.get("dilations", [1])) != [1]
        or pads[0] != pads[1]
        or pads[0] > kernel[0] // 2
        or (average and pads[0] and not attrs.get("count_include_pad", 0))
    ):
        return
    kind = L.AvgPool1d if average else L.MaxPool1d
    layer = kind(kernel[0], stride=int(attrs.get("strides", kernel)[0]), padding=pads[0])
    yield Fused(layer_name(node, kind.__name__.lower()), [before.input[0]], [after.output[0]],
                layer, {}, [node, after], ranks=(3,))  # fmt: skip
