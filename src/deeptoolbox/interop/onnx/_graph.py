"""The ONNX node list as the pattern pass rewrites it: :class:`Graph` look-ups, :class:`Fused`
(one toolbox layer standing for a group of nodes), node attributes and layer names. Shared by
:mod:`._patterns` and :mod:`._patterns_rnn`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from deeptoolbox.interop.onnx._opset import as_tensor


@dataclass(eq=False)
class Fused:
    """One toolbox layer standing for a group of ONNX nodes (duck-types an ONNX node).

    ``input`` / ``output`` are the value names the layer reads and writes; ``fallback`` is
    filled by :func:`fuse_patterns` with every node the replacement removed, in graph order, so
    the import can build those instead; ``ranks`` are the allowed ranks (batch included) of
    the input, checked on the samples.

    Example:
        >>> from deeptoolbox import layers as L
        >>> fused = Fused("gap", ["x"], ["y"], L.GlobalAvgPool(), {}, [], ranks=(4, 5))
        >>> fused.input, fused.op_type
        (['x'], 'fused')
    """

    name: str
    input: list[str]
    output: list[str]
    layer: nn.Module
    weights: dict[str, torch.Tensor]
    replaced: list[Any]
    ranks: tuple[int, ...] = ()
    fallback: list[Any] = field(default_factory=list)
    op_type: str = "fused"
    domain: str = "deeptoolbox.fused"


def node_attributes(node) -> dict[str, Any]:
    """An ONNX node's attributes as Python values (tensors as torch tensors, text as str).

    Example:
        >>> from onnx import helper
        >>> node_attributes(helper.make_node("LSTM", ["x"], ["y"], direction="reverse"))
        {'direction': 'reverse'}
    """
    from onnx import helper, numpy_helper

    result: dict[str, Any] = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        if hasattr(value, "dims") and hasattr(value, "data_type"):
            value = as_tensor(numpy_helper.to_array(value))
        elif isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, list):
            value = [v.decode() if isinstance(v, bytes) else v for v in value]
        result[attribute.name] = value
    return result


class Graph:
    """The node list under rewriting, with producer / consumer look-ups and folded constants.

    Example:
        >>> from onnx import helper
        >>> node = helper.make_node("ConstantOfShape", ["shape"], ["zeros"])
        >>> graph = Graph([node], {}, ["zeros"])
        >>> graph.producer["zeros"].op_type, graph.is_zero("zeros")
        ('ConstantOfShape', True)
    """

    def __init__(self, items: list, constants: dict[str, torch.Tensor], outputs: list[str]):
        self.items = items
        self.constants = constants
        self.outputs = outputs
        self.producer: dict[str, Any] = {}
        self.consumers: dict[str, list] = {}
        for item in items:
            for name in item.output:
                self.producer[name] = item
            for name in item.input:
                self.consumers.setdefault(name, []).append(item)

    def constant(self, name: str) -> torch.Tensor | None:
        return self.constants.get(name) if name else None

    def made_by(self, name: str, op_type: str):
        """The node of type ``op_type`` that produces ``name``, or None."""
        item = self.producer.get(name)
        return item if item is not None and item.op_type == op_type else None

    def only_consumer(self, name: str):
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 and name not in self.outputs else None

    def is_zero(self, name: str, depth: int = 0) -> bool:
        """True when ``name`` is all zeros whatever the inputs: a zero constant, or zeros made
        by ConstantOfShape / Expand and carried through data-movement operators."""
        value = self.constant(name)
        if value is not None:
            return not bool(value.any())
        item = self.producer.get(name)
        if item is None or depth > 16 or isinstance(item, Fused):
            return False
        if item.op_type == "ConstantOfShape":
            fill = node_attributes(item).get("value")
            return fill is None or not bool(fill.any())
        moves = ("Expand", "Slice", "Reshape", "Unsqueeze", "Squeeze", "Transpose", "Identity",
                 "Cast", "Tile", "Flatten", "Gather")  # fmt: skip
        return item.op_type in moves and self.is_zero(item.input[0], depth + 1)


def is_transpose(node, perm: list[int]) -> bool:
    """True when ``node`` is a Transpose with permutation ``perm``."""
    return (
        node is not None
        and node.op_type == "Transpose"
        and list(node_attributes(node).get("perm", [])) == perm
    )


def layer_name(node, fallback: str) -> str:
    """A layer name from an exporter's node name: ``/encoder/rnn/LSTM`` -> ``encoder``,
    ``lstm/LSTM`` -> ``lstm``, ``conv`` -> ``conv``; ``fallback`` for unnamed nodes.

    Example:
        >>> from onnx import helper
        >>> layer_name(helper.make_node("LSTM", [], [], name="/encoder/rnn/LSTM"), "lstm")
        'encoder'
        >>> layer_name(helper.make_node("LSTM", [], [], name="node_LSTM_3"), "lstm")
        'lstm'
    """
    parts = [p for p in (node.name or "").split("/") if p]
    if len(parts) > 1 and parts[-1].split("_")[0] == node.op_type:
        parts = parts[:-1]
    if len(parts) > 1 and parts[-1] == "rnn":  # a toolbox LSTM/GRU's inner torch module
        parts = parts[:-1]
    name = "_".join(parts)
    if not name or name.startswith("node_") or name.replace("n", "", 1).isdigit():
        return fallback
    return name
