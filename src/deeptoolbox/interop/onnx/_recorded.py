"""Layers that export as node groups ONNX has no single operator for, recorded so that
import_onnx gives them back as the same toolbox layers.

A ``GELU`` exports as ``Div -> Erf -> Add -> Mul -> Mul``, a ``GroupNorm`` as ``Reshape ->
InstanceNormalization -> Reshape -> Mul -> Add``, an ``Embedding`` as ``Gather``, a
``DepthToSpace`` as ``Reshape -> Transpose -> Reshape``... Read alone, such a file imports as
exact operator layers, which compute the same but are not the layer the user wrote
(``analyze`` rows, C generation, verification rules and editing all see operators). So
export_onnx records, under ``deeptoolbox.layer_classes``, each such layer's saved record
(type and constructor options, as ``network.json`` holds them) and, for each of its weights,
the graph value that holds the same numbers (``{"weight": ["layers.emb.weight", "same"]}``;
``"transposed"`` for a 2-D weight stored transposed). import_onnx collects the nodes named
after the layer (``gn``, ``gn/Mul``...; with unnamed helpers such as ``Shape`` of its own
input), rebuilds the layer from its record and weights, and keeps it only where it computes
what those nodes compute on the import's samples; otherwise the nodes stay operators.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from deeptoolbox.interop.onnx._graph import Fused, Graph, is_transpose, layer_name
from deeptoolbox.network import Network, layer_from_record, layer_record

__all__ = ["REGROUPED_LAYERS", "recorded_layers", "recorded_layer"]

REGROUPED_LAYERS = frozenset({
    "GELU", "Swish", "Softplus", "Flatten", "Reshape", "GroupNorm", "AxisLayerNorm",
    "CrossChannelNorm", "DepthToSpace", "SpaceToDepth", "Embedding", "PositionEmbedding",
    "SinusoidalPositionEncoding", "Crop1d", "Crop2d", "Crop3d", "FunctionLayer", "Indexing1d",
    "SelfAttention", "Attention", "CrossAttention", "MaskedSteps", "PaddingMask",
    "MergeDirections", "HardSigmoid", "PReLU", "Softmax", "AdaptiveAvgPool1d",
    "AvgPoolExcludingPadding", "AvgPool2d", "AvgPool3d", "MaxPool1d", "MaxPool3d", "Conv1d",
    "Conv2d", "Dense", "Concatenation", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
    "MaxUnpooling2d",
    "ProjectedDense", "ProjectedConv1d", "ProjectedConv2d", "ProjectedLSTM", "ProjectedGRU",
})  # fmt: skip
"""Layer types written as node groups that import_onnx would otherwise read as operators
(some only with some options: :data:`RECORDED_WHEN` says which)."""

_PADDED = ("same", "causal")  # written as Pad (or shape arithmetic) -> Conv / pooling
RECORDED_WHEN = {
    "Conv1d": lambda layer: layer.padding in _PADDED,
    "Conv2d": lambda layer: layer.padding in _PADDED,
    "AvgPool2d": lambda layer: layer.padding in _PADDED,
    "MaxPool1d": lambda layer: layer.padding in _PADDED,
    "MaxPool3d": lambda layer: layer.padding in _PADDED,
    "MaxUnpooling2d": lambda layer: layer.padding in _PADDED,  # Pad -> MaxPool ... -> Slice
    "Dense": lambda layer: bool(getattr(layer, "flatten_input", False)),  # Flatten -> Gemm
}
"""Types recorded only for some options (the others map onto the layer by their nodes)."""

CHANNELS_LAST_OUTPUT = frozenset({"Conv1d"})
"""Recorded types on (N, T, C) sequences written channels-first inside (``Transpose -> Conv ->
Transpose``): a group of theirs counts only when it ends in that last ``Transpose(0, 2, 1)``.
Exporters' optimizers merge it with a following layer's transpose (``Conv1d -> LSTM`` becomes
``Conv -> Transpose(2, 0, 1) -> LSTM``, the transpose named after the LSTM); such nodes are
left to the ``Conv1d`` pattern of :mod:`._patterns`, which splits the merged transpose."""


# -- export ---------------------------------------------------------------------------------------
def _graph_values(model) -> dict[str, np.ndarray]:
    """The constant values of a written graph: initializers and Constant nodes' tensors."""
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output:
            for attribute in node.attribute:
                if attribute.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attribute.t)
    return values


def _holder(weight: np.ndarray, values: dict[str, np.ndarray]) -> list[str] | None:
    """[value name, "same" | "transposed"] of a graph value holding ``weight``'s numbers."""
    for name, value in values.items():
        if value.size != weight.size or value.dtype != weight.dtype:
            continue
        if np.array_equal(value.reshape(weight.shape), weight):
            return [name, "same"]
        if weight.ndim == 2 and np.array_equal(value.reshape(weight.T.shape), weight.T):
            return [name, "transposed"]
    return None


def recorded_layers(net: nn.Module, model) -> dict[str, dict[str, Any]]:
    """``{layer: {"class", "record", "weights"}}`` for the layers of ``net`` in
    :data:`REGROUPED_LAYERS` (weights only when every one is found in the graph)."""
    if not isinstance(net, Network):
        return {}
    layers = {n: m for n, m in net.layers.items() if _regrouped(m)}
    if not layers:
        return {}
    values = _graph_values(model)
    recorded = {}
    for name, layer in layers.items():
        entry: dict[str, Any] = {"class": type(layer).__name__, "record": layer_record(name, layer)}
        sources = net.sources(name)
        if len(sources) > 1 and None not in sources.values():
            entry["sources"] = list(sources.values())  # the layers feeding its ports, in order
        state = {k: v.detach().cpu().numpy() for k, v in layer.state_dict().items()}
        holders = {k: _holder(v, values) for k, v in state.items()}
        if all(h is not None for h in holders.values()):
            entry["weights"] = holders
        recorded[name] = entry
    return recorded


def _regrouped(layer: nn.Module) -> bool:
    kind = type(layer).__name__
    if kind not in REGROUPED_LAYERS:
        return False
    when = RECORDED_WHEN.get(kind)
    try:
        return when is None or bool(when(layer))
    except AttributeError:
        return False


# -- import ---------------------------------------------------------------------------------------
def _group(graph: Graph, items: list, name: str) -> list:
    """The nodes named after layer ``name``, with the helpers only they use: unnamed nodes
    (``node_Shape_0``) and nodes that read only what the group reads (``Shape`` of its input)."""
    group = [item for item in items if not isinstance(item, Fused) and layer_name(item, "") == name]
    members = {id(item) for item in group}
    changed = True
    while changed and group:
        changed = False
        consumed = {value for item in group for value in item.input if value}
        for value in list(consumed):
            producer = graph.producer.get(value)
            if producer is None or id(producer) in members or isinstance(producer, Fused):
                continue
            users = [u for out in producer.output for u in graph.consumers.get(out, [])]
            inputs = [v for v in producer.input if v and v not in graph.constants]
            unnamed = layer_name(producer, "") == ""  # node_Shape_0: the exporter's helper
            if (
                users
                and all(id(u) in members for u in users)
                and not any(out in graph.outputs for out in producer.output)
                and (unnamed or all(v in consumed for v in inputs))
            ):
                group.append(producer)
                members.add(id(producer))
                changed = True
    order = {id(item): i for i, item in enumerate(items)}
    return sorted(group, key=lambda item: order[id(item)])


def _size_only(graph: Graph, value: str, depth: int = 0) -> bool:
    """True when ``value`` is computed from tensor sizes only (``Shape`` and arithmetic on
    it): exporters compute a free length from the network's input, not the layer's."""
    producer = graph.producer.get(value)
    if producer is None or isinstance(producer, Fused) or depth > 16:
        return False
    if producer.op_type in ("Shape", "Size"):
        return True
    inputs = [v for v in producer.input if v and v not in graph.constants]
    return bool(inputs) and all(_size_only(graph, v, depth + 1) for v in inputs)


def _ends(graph: Graph, group: list) -> tuple[list[str], list[str]]:
    """The runtime values the group reads from outside (sizes read through ``Shape`` left
    out: the rebuilt layer takes them from its input), and the values it gives outside."""
    members = {id(item) for item in group}
    made = {value for item in group for value in item.output}
    inputs = []
    for item in group:
        for value in item.input:
            if (
                value
                and value not in made
                and value not in graph.constants
                and value not in inputs
                and item.op_type not in ("Shape", "Size")
                and not _size_only(graph, value)
            ):
                inputs.append(value)
    outputs = [
        value
        for value in made
        if value in graph.outputs
        or any(id(u) not in members for u in graph.consumers.get(value, []))
    ]
    return inputs, outputs


def _weights(entry: dict[str, Any], constants: Mapping[str, torch.Tensor]) -> dict | None:
    weights = {}
    for key, holder in (entry.get("weights") or {}).items():
        if not (isinstance(holder, list) and len(holder) == 2 and holder[0] in constants):
            return None
        value = constants[holder[0]]
        weights[key] = value.t() if holder[1] == "transposed" and value.dim() == 2 else value
    return weights


def _by_port(graph: Graph, inputs: list[str], sources: Any) -> list[str]:
    """The group's input values in the order of the layer's ports, from the layers export_onnx
    recorded as feeding them (a value's source: the graph input, or the layer its producing
    node is named after); empty when they do not match one to one."""
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        return []
    by_source: dict[str, str] = {}
    for value in inputs:
        producer = graph.producer.get(value)
        if producer is None:
            source = value  # a graph input: named after its input layer
        elif isinstance(producer, Fused):
            source = producer.name
        else:
            source = layer_name(producer, "")
        if not source or by_source.setdefault(source, value) != value:
            return []
    if set(by_source) != set(sources):
        return []
    return [by_source[source] for source in sources]


def recorded_layer(graph: Graph, name: str, entry: Mapping[str, Any]) -> Fused | None:
    """A :class:`Fused` for recorded layer ``name`` when its nodes form a group with one output
    and one input, or several that match the recorded sources of its ports, the layer rebuilt
    from its record (see the module docstring); else None."""
    if entry.get("class") not in REGROUPED_LAYERS or not isinstance(entry.get("record"), dict):
        return None
    group = _group(graph, graph.items, name)
    if not group:
        return None
    inputs, outputs = _ends(graph, group)
    weights = _weights(entry, graph.constants)
    if len(inputs) > 1 or "sources" in entry:
        inputs = _by_port(graph, inputs, entry.get("sources"))
    if not inputs or len(outputs) != 1 or weights is None:
        return None
    if entry["class"] in CHANNELS_LAST_OUTPUT and not is_transpose(
        graph.producer.get(outputs[0]), [0, 2, 1]
    ):
        return None
    try:
        _, layer = layer_from_record(entry["record"], f"the layer record of '{name}'")
    except Exception:  # a record this version cannot rebuild: the nodes stay operators
        return None
    return Fused(name, inputs, outputs, layer, weights, group)
