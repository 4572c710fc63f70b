"""Graph patterns that import as one toolbox layer: a pass over the ONNX nodes before the build.

Exporters write some toolbox layers as groups of nodes: a ``Conv1d`` on (N, T, C) sequences is
``Transpose -> Conv -> Transpose``; a batch-first ``LSTM`` is ``Transpose -> LSTM -> Squeeze /
Transpose / Reshape`` with zero initial states computed from the input's shape; a global
pooling with a flat (N, C) result is ``GlobalAveragePool -> Flatten``; a ``Linear`` applied to
each step of a sequence is ``MatMul -> Add``; other exporters write GELU, Swish, HardSwish,
GroupNorm and Flatten as small formulas (:mod:`._patterns_foreign`). :func:`fuse_patterns`
finds such groups and replaces each with a :class:`Fused` item (one toolbox layer plus the
weights to load), only when the layer computes exactly what the group computes. The nodes
that only fed the group (the transposes, the zero-state arithmetic) are dropped. The import
then checks each fused layer against the original nodes on its sample inputs and falls back
to those nodes (operator layers) if they disagree or the layer cannot be built.

Recurrent patterns live in :mod:`._patterns_rnn`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

from deeptoolbox import layers as L
from deeptoolbox.interop.onnx._graph import (
    Fused,
    Graph,
    is_transpose,
    layer_name,
    node_attributes,
)
from deeptoolbox.interop.onnx._patterns_foreign import FOREIGN_MATCHERS, FOREIGN_TARGETS
from deeptoolbox.interop.onnx._patterns_layers import (
    match_class_token,
    match_patches,
    match_pool1d,
    match_scale_offset,
)
from deeptoolbox.interop.onnx._patterns_rnn import RECURRENT_OPS, match_recurrent
from deeptoolbox.interop.onnx._patterns_upsample import UPSAMPLE_MATCHERS
from deeptoolbox.interop.onnx._recorded import recorded_layer

PATTERN_TARGETS = {
    "MatMul": "Dense",
    "LSTM": "LSTM",
    "GRU": "GRU",
    "RNN": "SimpleRNN",
    "Conv": "Conv1d / PatchEmbedding",
    "Concat": "EmbeddingConcatenation",
    "Mul": "ScaleOffset",
    "MaxPool": "MaxPool1d",
    "AveragePool": "AvgPool1d",
    "Add": "ScaleOffset",
    "GlobalAveragePool": "GlobalAvgPool",
    "GlobalMaxPool": "GlobalMaxPool",
    "ConvTranspose": "TransposedConv1d",
    "Resize": "Resize2d / Resize3d",
    "ScatterElements": "MaxUnpooling2d",
    "MaxUnpool": "MaxUnpooling2d",
    **FOREIGN_TARGETS,
}
"""ONNX op type -> the toolbox layer a pattern around it becomes (see the module docstring)."""


# -- the pass ----------------------------------------------------------------------------------

Matcher = Callable[[Graph, Any], Iterator[Fused]]


def fuse_patterns(
    nodes: list,
    constants: dict[str, torch.Tensor],
    outputs: list[str],
    known: set[str],
    classes: Mapping[str, dict[str, Any]] | None = None,
) -> list:
    """Replace node groups that match a toolbox layer with :class:`Fused` items.

    ``nodes`` are the graph's nodes left after constant folding, in graph order; ``known`` the
    names available before any node runs (graph inputs, initializers, folded constants);
    ``classes`` the layer classes export_onnx recorded for node groups the graph alone does
    not tell apart (``{"patches": {"class": "PatchEmbedding"}}``).
    Returns the new item list, with nodes that no longer feed a graph output removed; constants
    the rewrite needs are added to ``constants``.

    Example:
        >>> fuse_patterns([], {}, [], set())
        []
    """
    recorded = dict(classes or {})

    def conv(graph: Graph, node) -> Iterator[Fused]:
        yield from match_patches(graph, node, recorded)
        yield from _match_conv1d(graph, node)

    def affine(graph: Graph, node) -> Iterator[Fused]:
        return match_scale_offset(graph, node, recorded)

    matchers: dict[str, Matcher] = {"MatMul": _match_linear,
                                    "LSTM": match_recurrent, "GRU": match_recurrent, "RNN": match_recurrent,
                                    "Conv": conv, "Concat": match_class_token,
                                    "Mul": affine, "Add": affine, "MaxPool": match_pool1d,
                                    "AveragePool": match_pool1d,
                                    "GlobalAveragePool": _match_pool,
                                    "GlobalMaxPool": _match_pool, "ReduceMean": _match_pool,
                                    "ReduceMax": _match_pool, **UPSAMPLE_MATCHERS,
                                    **FOREIGN_MATCHERS}  # fmt: skip
    items = _prune(_pick_states(list(nodes), constants, outputs), outputs)
    known = known | set(constants)  # with the indices _pick_states added
    graph = Graph(items, constants, outputs)
    for name, entry in recorded.items():  # layers export_onnx recorded (see ._recorded)
        fused = recorded_layer(graph, name, entry)
        rewritten = None if fused is None else _apply(items, fused, outputs, known)
        if rewritten is not None:
            items, graph = rewritten, Graph(rewritten, constants, outputs)
    items, splits = _split_transposes(items, constants, outputs)
    graph = Graph(items, constants, outputs)
    for core in [n for n in items if n.op_type in matchers and n.domain in ("", "ai.onnx")]:
        if not any(core is item for item in items):
            continue
        for fused in matchers[core.op_type](graph, core):
            rewritten = _apply(items, fused, outputs, known)
            if rewritten is not None:
                items = rewritten
                graph = Graph(items, constants, outputs)
                break
    return _rejoin(items, splits)


# Exporters' optimizers merge consecutive transposes: Conv1d -> LSTM becomes Conv -> Transpose
# (2, 0, 1) -> LSTM. Such a transpose is split into the two the patterns know (here (0, 2, 1)
# then (1, 0, 2)); pairs that no pattern used are joined again afterwards.
_TO_SEQUENCE, _TO_TIME_MAJOR = [0, 2, 1], [1, 0, 2]


def _split_transposes(items: list, constants: dict, outputs: list[str]) -> tuple[list, dict]:
    from onnx import helper

    graph = Graph(items, constants, outputs)
    result, splits = [], {}
    for item in items:
        perm = list(node_attributes(item).get("perm", [])) if item.op_type == "Transpose" else []
        halves = _halves(graph, item, perm) if sorted(perm) == [0, 1, 2] else None
        # recurrent -> recurrent, time-major: add a batch-first pair; 1-D convolution or
        # pooling -> another, channels-first (the exporter cancelled the transposes): add a pair
        added = _TO_TIME_MAJOR if _stacked(graph, item) else None
        if (
            added is None
            and _channels_first_1d(graph, item)
            and _channels_first_1d(graph, graph.producer.get(item.input[0]))
        ):
            added = _TO_SEQUENCE
        if added is not None:
            source, halves = item.input[0], (added, added)
            target = f"{source}__dtb_{'time_major' if added == _TO_TIME_MAJOR else 'channels'}"
            copy = type(item)()
            copy.CopyFrom(item)
            copy.input[0] = target
            outputs_, restore = [target], (item, copy)
        elif halves is not None:
            source, outputs_, restore = item.input[0], list(item.output), (item, None)
        else:
            result.append(item)
            continue
        middle = f"{source}__dtb_split"
        first = helper.make_node("Transpose", [source], [middle], perm=halves[0],
                                 name=f"{item.name}__dtb_split1")  # fmt: skip
        second = helper.make_node("Transpose", [middle], outputs_, perm=halves[1],
                                  name=item.name if restore[1] is None else "")  # fmt: skip
        result += [first, second] if restore[1] is None else [first, second, restore[1]]
        splits[id(first)] = (first, second, *restore)
    return result, splits


def _pick_states(items: list, constants: dict, outputs: list[str]) -> list:
    """``Gather(Concat(Y_h of layer 1, Y_h of layer 2...), i)`` -> ``Gather(Y_h of layer k, j)``:
    stacked torch layers join their final states before ``h[-1]`` picks the last one."""
    from onnx import helper

    graph = Graph(items, constants, outputs)
    result = []
    for item in items:
        index = graph.constant(item.input[1]) if item.op_type == "Gather" else None
        joined = graph.made_by(item.input[0], "Concat") if index is not None else None
        attrs = node_attributes(joined) if joined is not None else {}
        counts = [_directions(graph, name) for name in joined.input] if joined else []
        if (
            joined is None
            or index.dim() != 0
            or node_attributes(item).get("axis", 0) != 0
            or attrs.get("axis") != 0
            or None in counts
        ):
            result.append(item)
            continue
        position = int(index) % sum(counts)  # type: ignore[arg-type]
        piece = next(k for k in range(len(counts)) if position < sum(counts[: k + 1]))
        local = f"{item.output[0]}__dtb_index"
        constants[local] = torch.tensor(position - sum(counts[:piece]))
        result.append(helper.make_node("Gather", [joined.input[piece], local], list(item.output),
                                       name=item.name, axis=0))  # fmt: skip
    return result


def _directions(graph: Graph, name: str) -> int | None:
    """The number of directions of a recurrent node whose final state ``name`` is, else None."""
    node = graph.producer.get(name)
    if node is None or node.op_type not in RECURRENT_OPS or list(node.output[1:2]) != [name]:
        return None
    weight = graph.constant(node.input[1])
    return None if weight is None or node_attributes(node).get("layout", 0) else weight.shape[0]


def _stacked(graph: Graph, node) -> bool:
    """True for a time-major LSTM / GRU fed by another one's output (stacked torch layers)."""
    if node.op_type not in RECURRENT_OPS or node_attributes(node).get("layout", 0):
        return False
    producer = graph.producer.get(node.input[0])
    return (
        producer is not None
        and producer.op_type != "Transpose"
        and (_from_recurrent(graph, producer))
    )


def _halves(graph: Graph, node, perm: list[int]) -> tuple[list[int], list[int]] | None:
    """(first, second) permutations with transpose(transpose(x, first), second) equal to
    transpose(x, perm), where one of them is what a pattern next to ``node`` needs."""
    producer = graph.producer.get(node.input[0])
    users = graph.consumers.get(node.output[0], [])
    if _is_conv1d(graph, producer) or _from_recurrent(graph, producer):
        first = _TO_SEQUENCE if _is_conv1d(graph, producer) else _TO_TIME_MAJOR
        pair = first, [first[p] for p in perm]  # both are their own inverses
    elif any(_is_conv1d(graph, u) or u.op_type in RECURRENT_OPS for u in users):
        second = _TO_SEQUENCE if any(_is_conv1d(graph, u) for u in users) else _TO_TIME_MAJOR
        pair = [perm[second[j]] for j in range(3)], second
    else:
        return None
    return None if perm in pair or [0, 1, 2] in pair else pair


def _channels_first_1d(graph: Graph, node) -> bool:
    """True for a 1-D Conv, ConvTranspose, MaxPool or AveragePool node (on (N, C, T))."""
    if node is None or isinstance(node, Fused):
        return False
    if node.op_type in ("MaxPool", "AveragePool"):
        return len(node_attributes(node).get("kernel_shape", [])) == 1
    if node.op_type not in ("Conv", "ConvTranspose") or len(node.input) < 2:
        return False
    weight = graph.constant(node.input[1])
    return weight is not None and weight.dim() == 3


def _is_conv1d(graph: Graph, node) -> bool:
    if node is None or node.op_type != "Conv" or len(node.input) < 2:
        return False
    weight = graph.constant(node.input[1])
    return weight is not None and weight.dim() == 3


def _from_recurrent(graph: Graph, node, depth: int = 0) -> bool:
    """True when ``node`` rearranges a recurrent node's output (a few data movements away)."""
    if node is None or isinstance(node, Fused) or depth > 4:
        return False
    if node.op_type in RECURRENT_OPS:
        return True
    moves = ("Transpose", "Reshape", "Squeeze", "Identity")
    return node.op_type in moves and _from_recurrent(
        graph, graph.producer.get(node.input[0]), depth + 1
    )


def _rejoin(items: list, splits: dict) -> list:
    """Put back the transposes that were split, or added, for nothing."""
    present = {id(item) for item in items}
    replace: dict[int, Any] = {}
    for first, second, original, copy in splits.values():
        if id(first) not in present or id(second) not in present:
            continue
        last = copy if copy is not None else second
        if _users(items, first) != [id(second)] or (
            copy is not None and (id(copy) not in present or _users(items, second) != [id(copy)])
        ):
            continue
        present -= {id(second), id(last)}
        replace[id(first)] = original
    return [replace.get(id(item), item) for item in items if id(item) in present]


def _users(items: list, node) -> list[int]:
    return [id(u) for u in items if node.output[0] in u.input]


def _prune(items: list, outputs: list[str]) -> list:
    """Drop nodes none of whose outputs reach a graph output."""
    needed = set(outputs)
    kept = []
    for item in reversed(items):
        if any(name in needed for name in item.output):
            kept.append(item)
            needed.update(name for name in item.input if name)
    return kept[::-1]


def _apply(items: list, fused: Fused, outputs: list[str], known: set[str]) -> list | None:
    """Put ``fused`` in place of its nodes; None when a remaining node still needs one of them."""
    replaced = {id(node) for node in fused.replaced}
    position = max(i for i, item in enumerate(items) if id(item) in replaced)
    rewritten = [
        fused if i == position else item
        for i, item in enumerate(items)
        if i == position or id(item) not in replaced
    ]
    rewritten = _prune(rewritten, outputs)
    available = set(known)
    for item in rewritten:
        if any(name and name not in available for name in item.input):
            return None
        available.update(item.output)
    if not any(item is fused for item in rewritten) or any(n not in available for n in outputs):
        return None
    kept = {id(item) for item in rewritten}
    fused.fallback = [item for item in items if id(item) not in kept]
    return rewritten


# -- a linear layer on features or on each step of a sequence ----------------------------------


def _match_linear(graph: Graph, node) -> Iterator[Fused]:
    """``MatMul(x, W) -> Add(b)`` with constant ``W`` (C, U) and ``b`` (U,) -> :class:`Dense`
    with a bias (Gemm covers 2-D inputs; exporters write this pair for 3-D ones)."""
    weight = graph.constant(node.input[1]) if len(node.input) > 1 else None
    after = graph.only_consumer(node.output[0])
    if weight is None or weight.dim() != 2 or after is None or after.op_type != "Add":
        return
    others = [name for name in after.input if name != node.output[0]]
    bias = graph.constant(others[0]) if len(others) == 1 else None
    units = int(weight.shape[1])
    if bias is None or bias.numel() != units or bias.dim() < 1 or bias.shape[-1] != units:
        return
    if not (weight.is_floating_point() and bias.is_floating_point()):
        return
    weights = {"weight": weight.detach().t().clone().float(),
               "bias": bias.detach().reshape(-1).clone().float()}  # fmt: skip
    yield Fused(layer_name(node, "fc"), [node.input[0]], [after.output[0]], L.Dense(units),
                weights, [node, after], ranks=(2, 3))  # fmt: skip


# -- 1-D convolution on (N, T, C) --------------------------------------------------------------


def _match_conv1d(graph: Graph, node) -> Iterator[Fused]:
    """``Transpose(0, 2, 1) -> Conv (1-D kernel) -> Transpose(0, 2, 1)`` -> :class:`Conv1d`."""
    weight = graph.constant(node.input[1]) if len(node.input) > 1 else None
    bias = graph.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    before = graph.producer.get(node.input[0])
    after = graph.only_consumer(node.output[0])
    if weight is None or weight.dim() != 3 or (len(node.input) > 2 and node.input[2] and
                                               bias is None):  # fmt: skip
        return
    if not (is_transpose(before, [0, 2, 1]) and is_transpose(after, [0, 2, 1])):
        return
    attrs = node_attributes(node)
    kernel = int(weight.shape[2])
    stride = int(attrs.get("strides", [1])[0])
    dilation = int(attrs.get("dilations", [1])[0])
    padding = _conv1d_padding(attrs, kernel, stride, dilation)
    if padding is None or list(attrs.get("kernel_shape", [kernel])) != [kernel]:
        return
    layer = L.Conv1d(int(weight.shape[0]), kernel, stride=stride, padding=padding,
                     dilation=dilation, groups=int(attrs.get("group", 1)),
                     bias=bias is not None)  # fmt: skip
    weights = {"weight": weight.detach().clone().float()}
    if bias is not None:
        weights["bias"] = bias.detach().clone().float()
    yield Fused(layer_name(node, "conv1d"), [before.input[0]], [after.output[0]], layer,
                weights, [node, after], ranks=(3,))  # fmt: skip


def _conv1d_padding(attrs: dict, kernel: int, stride: int, dilation: int):
    """The toolbox padding equal to the node's for every input length, or None."""
    auto = attrs.get("auto_pad", "NOTSET")
    extent = (kernel - 1) * dilation
    if auto == "VALID":
        return "valid"
    if auto == "SAME_UPPER" or (auto == "SAME_LOWER" and stride == 1 and extent % 2 == 0):
        return "same"  # the toolbox puts an odd padding's extra element at the end, as SAME_UPPER
    if auto != "NOTSET":
        return None
    pads = [int(p) for p in attrs.get("pads", [0, 0])]
    if pads[0] == pads[1]:
        return (pads[0],)
    if stride == 1 and sum(pads) == extent and pads[0] == extent // 2:
        return "same"
    return None


# -- global pooling with a flat (N, C) result --------------------------------------------------


def _match_pool(graph: Graph, node) -> Iterator[Fused]:
    """``GlobalAveragePool / GlobalMaxPool`` (or ``ReduceMean / ReduceMax`` over all positions,
    keeping dimensions) ``-> Flatten / Squeeze / Reshape to (N, C)`` on images or volumes ->
    :class:`GlobalAvgPool` / :class:`GlobalMaxPool`."""
    after = graph.only_consumer(node.output[0])
    ranks = _flat_ranks(graph, after) if after is not None else ()
    if node.op_type.startswith("Reduce"):
        ranks = tuple(r for r in ranks if r in _reduced_ranks(graph, node))
    if not ranks:
        return
    average = node.op_type in ("GlobalAveragePool", "ReduceMean")
    kind = L.GlobalAvgPool if average else L.GlobalMaxPool
    fallback = "gap" if average else "gmp"
    yield Fused(layer_name(node, fallback), [node.input[0]], [after.output[0]], kind(), {},
                [node, after], ranks=ranks)  # fmt: skip


def _reduced_ranks(graph: Graph, node) -> tuple[int, ...]:
    """The input ranks for which a Reduce node averages / maximizes over all positions
    (every axis after the channels), keeping dimensions."""
    attrs = node_attributes(node)
    axes = graph.constant(node.input[1]) if len(node.input) > 1 and node.input[1] else None
    axes = axes.reshape(-1).tolist() if axes is not None else attrs.get("axes")
    if not attrs.get("keepdims", 1) or not axes:
        return ()
    return {(2, 3): (4,), (-2, -1): (4,), (2, 3, 4): (5,), (-3, -2, -1): (5,)}.get(
        tuple(sorted(int(a) for a in axes)), ()
    )


def _flat_ranks(graph: Graph, node) -> tuple[int, ...]:
    """The input ranks (batch included) for which ``node`` turns the pooled (N, C, 1, 1[, 1])
    tensor into (N, C); empty when it does not."""
    attrs = node_attributes(node)
    if node.op_type == "Flatten":
        return (4, 5) if attrs.get("axis", 1) == 1 else ()
    if node.op_type == "Squeeze":
        axes = graph.constant(node.input[1]) if len(node.input) > 1 else None
        axes = sorted(
            int(a) for a in (axes.tolist() if axes is not None else attrs.get("axes", []))
        )
        return {(2, 3): (4,), (-2, -1): (4,), (2, 3, 4): (5,), (-3, -2, -1): (5,)}.get(
            tuple(axes), ()
        )
    if node.op_type == "Reshape" and len(node.input) > 1 and not attrs.get("allowzero"):
        target = graph.constant(node.input[1])
        return (4, 5) if target is not None and target.tolist() == [0, -1] else ()
    return ()
