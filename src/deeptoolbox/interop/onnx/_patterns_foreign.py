"""Graph patterns of other exporters (torch.onnx, tf2onnx, onnxscript...) for layers ONNX has
no single operator for, matched without any deeptoolbox metadata.

- ``GELU``: ``x * 0.5 * (1 + Erf(x / sqrt(2)))`` with the products in any order (torch's
  ``Div -> Erf -> Add -> Mul -> Mul``, TensorFlow's ``Mul(0.5, x) * (1 + Erf(x * 1/sqrt(2)))``);
- ``Swish``: ``x * Sigmoid(x)`` (torch's SiLU, Keras's swish);
- ``HardSwish``: ``x * HardSigmoid(x)`` with alpha = 1/6, beta = 1/2 (older opsets, tf2onnx);
- ``GroupNorm``: ``Reshape(x, (N, G, -1)) -> InstanceNormalization -> Reshape(Shape(x)) ->
  [Mul -> Add]`` by per-channel constants (torch's group_norm), on images and volumes;
- ``Flatten``: ``Reshape`` of (N, ...) to ``(N, -1)``, the target a constant ``[0, -1]`` /
  ``[-1, K]`` or computed from the input's own shape (``Shape -> Gather(0) -> Unsqueeze ->
  Concat(-1)``, torch's ``x.view(x.size(0), -1)``).

Only the exact form matches: an operand that is not the same tensor (``x * Sigmoid(y)``), or
a constant other than the formula's (``Erf(x / 1.5)``), leaves the nodes as operators. Each
match becomes a :class:`Fused` layer, which the import also checks against the original
nodes on its samples (see :mod:`._patterns`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from deeptoolbox import layers as L
from deeptoolbox.interop.onnx._graph import Fused, Graph, layer_name, node_attributes

__all__ = ["FOREIGN_MATCHERS", "FOREIGN_TARGETS", "flatten_target"]

_RELATIVE = 1e-6  # how close a formula's constant must be (float32 rounding of sqrt(2)...)


def _scalar(graph: Graph, name: str) -> float | None:
    """The value of a one-element floating constant, else None."""
    value = graph.constant(name)
    if value is None or value.numel() != 1 or not value.is_floating_point():
        return None
    return float(value.reshape(()))


def _near(value: float | None, wanted: float) -> bool:
    return value is not None and abs(value - wanted) <= _RELATIVE * abs(wanted)


def _other(node, name: str) -> str | None:
    """The other input of a two-input node one of whose inputs is ``name``."""
    if len(node.input) != 2 or name not in node.input:
        return None
    return node.input[1] if node.input[0] == name else node.input[0]


# -- GELU: x * 0.5 * (1 + erf(x / sqrt 2)) ------------------------------------------------------


def _erf_argument(graph: Graph, node) -> str | None:
    """x of ``Erf(x / sqrt(2))`` (``Div`` by sqrt 2 or ``Mul`` by 1/sqrt 2), else None."""
    scaled = graph.producer.get(node.input[0])
    if scaled is None or isinstance(scaled, Fused) or scaled.op_type not in ("Div", "Mul"):
        return None
    if scaled.op_type == "Div":
        x, divisor = scaled.input[0], scaled.input[1]
        ok = _near(_scalar(graph, divisor), math.sqrt(2)) and graph.constant(x) is None
        return x if ok else None
    for x, factor in (scaled.input, scaled.input[::-1]):
        if graph.constant(x) is None and _near(_scalar(graph, factor), 1 / math.sqrt(2)):
            return x
    return None


def _product_leaves(graph: Graph, node, inner: set[int], depth: int = 0) -> list[str]:
    """The factors of the product tree of ``Mul`` nodes ending in ``node``; the Mul nodes of
    the tree (each operand Mul read by the tree only, at most two levels) go into ``inner``."""
    inner.add(id(node))
    leaves: list[str] = []
    for operand in node.input:
        producer = graph.producer.get(operand)
        if (
            depth < 1
            and producer is not None
            and not isinstance(producer, Fused)
            and producer.op_type == "Mul"
            and graph.only_consumer(operand) is node
        ):
            leaves += _product_leaves(graph, producer, inner, depth + 1)
        else:
            leaves.append(operand)
    return leaves


def match_gelu(graph: Graph, node) -> Iterator[Fused]:
    """``x * 0.5 * (1 + Erf(x / sqrt 2))``, products in any order -> :class:`GELU`."""
    x = _erf_argument(graph, node)
    plus = graph.only_consumer(node.output[0])
    if x is None or plus is None or plus.op_type != "Add":
        return
    one = _other(plus, node.output[0])
    if not _near(_scalar(graph, one) if one else None, 1.0):
        return
    # the last Mul of the product: follow single consumers from the Add (at most 2 Muls)
    end, current = None, plus.output[0]
    for _ in range(2):
        user = graph.only_consumer(current)
        if user is None or user.op_type != "Mul":
            break
        end, current = user, user.output[0]
        inner: set[int] = set()
        leaves = _product_leaves(graph, end, inner)
        halves = [leaf for leaf in leaves if _near(_scalar(graph, leaf), 0.5)]
        rest = [leaf for leaf in leaves if leaf not in halves]
        if len(leaves) == 3 and len(halves) == 1 and sorted(rest) == sorted([x, plus.output[0]]):
            muls = [item for item in graph.items if id(item) in inner]
            scaled = graph.producer[node.input[0]]
            yield Fused(layer_name(end, "gelu"), [x], [end.output[0]], L.GELU(), {},
                        [scaled, node, plus, *muls])  # fmt: skip
            return


# -- Swish and HardSwish: x * Sigmoid(x), x * HardSigmoid(x) --------------------------------------


def _times_input(graph: Graph, node):
    """The ``Mul(x, node(x))`` that is the only reader of ``node``'s output, else None."""
    user = graph.only_consumer(node.output[0])
    if user is None or user.op_type != "Mul" or _other(user, node.output[0]) != node.input[0]:
        return None
    return user


def match_swish(graph: Graph, node) -> Iterator[Fused]:
    """``Mul(x, Sigmoid(x))`` (either order) -> :class:`Swish`."""
    product = _times_input(graph, node)
    if product is not None and graph.constant(node.input[0]) is None:
        yield Fused(layer_name(product, "swish"), [node.input[0]], [product.output[0]],
                    L.Swish(), {}, [node, product])  # fmt: skip


def match_hard_swish(graph: Graph, node) -> Iterator[Fused]:
    """``Mul(x, HardSigmoid(x, alpha=1/6, beta=1/2))`` -> :class:`HardSwish`."""
    attrs = node_attributes(node)
    product = _times_input(graph, node)
    if (
        product is None
        or not _near(float(attrs.get("alpha", 0.2)), 1 / 6)
        or not _near(float(attrs.get("beta", 0.5)), 0.5)
    ):
        return
    yield Fused(layer_name(product, "hardswish"), [node.input[0]], [product.output[0]],
                L.HardSwish(), {}, [node, product])  # fmt: skip


# -- shape arithmetic: the target of a Reshape in terms of its input's dimensions ---------------

_Terms = tuple[list, bool]  # (entries: int or ("dim", axis) of the input, is it a scalar?)


def _shape_terms(graph: Graph, name: str, source: str, depth: int = 0) -> _Terms | None:
    """The value ``name`` as a list of constants and dimensions of ``source`` (its start
    axis open-ended as ``("from", axis)`` for ``Shape`` without an end), or None."""
    value = graph.constant(name)
    if value is not None:
        if value.is_floating_point() or value.dim() > 1:
            return None
        return [int(v) for v in value.reshape(-1).tolist()], value.dim() == 0
    node = graph.producer.get(name)
    if node is None or isinstance(node, Fused) or depth > 8:
        return None
    attrs = node_attributes(node)
    if node.op_type == "Shape":
        start, end = int(attrs.get("start", 0)), attrs.get("end")
        if node.input[0] != source or start < 0 or (end is not None and int(end) < start):
            return None  # a negative axis needs the rank, which the pattern pass does not know
        if end is not None:
            return [("dim", axis) for axis in range(start, int(end))], False
        return [("from", start)], False
    parts = [_shape_terms(graph, n, source, depth + 1) if n else None for n in node.input]
    if node.op_type in ("Cast", "Identity"):
        return parts[0]
    if node.op_type == "Gather":
        index = graph.constant(node.input[1])
        if parts[0] is None or index is None or attrs.get("axis", 0) != 0 or index.dim() > 1:
            return None
        picked = [_pick(parts[0][0], int(i)) for i in index.reshape(-1).tolist()]
        return None if None in picked else (picked, index.dim() == 0)
    if node.op_type == "Slice":
        return _slice_terms(graph, node, parts[0])
    if node.op_type == "Unsqueeze":
        axes = graph.constant(node.input[1]) if len(node.input) > 1 else None
        axes = axes.reshape(-1).tolist() if axes is not None else attrs.get("axes")
        ok = parts[0] is not None and parts[0][1] and list(axes or []) in ([0], [-1])
        return (parts[0][0], False) if ok else None
    if node.op_type == "Concat":
        if attrs.get("axis") not in (0, -1) or any(p is None or p[1] for p in parts):
            return None
        joined = [term for part in parts for term in part[0]]
        if any(isinstance(t, tuple) and t[0] == "from" for t in joined[:-1]):
            return None
        return joined, False
    return None


def _pick(terms: list, index: int):
    """Entry ``index`` of a term list (``("from", a)`` stands for axes a, a+1, ...)."""
    if index < 0:
        return None
    for position, term in enumerate(terms):
        if isinstance(term, tuple) and term[0] == "from":
            return ("dim", term[1] + index - position)
        if position == index:
            return term
    return None


def _slice_terms(graph: Graph, node, part: _Terms | None) -> _Terms | None:
    """``Slice`` of a 1-D term list with constant starts / ends, axis 0, step 1."""
    bounds = [graph.constant(n) if n else None for n in node.input[1:5]]
    if part is None or part[1] or len(bounds) < 2 or bounds[0] is None or bounds[1] is None:
        return None
    axes = bounds[2] if len(bounds) > 2 else None
    steps = bounds[3] if len(bounds) > 3 else None
    if axes is not None and axes.reshape(-1).tolist() not in ([0], [-1]):
        return None
    if steps is not None and steps.reshape(-1).tolist() != [1]:
        return None
    start, end = int(bounds[0].reshape(-1)[0]), int(bounds[1].reshape(-1)[0])
    if start < 0 or end <= start or end > 64:
        return None  # an open end (INT64_MAX) or a negative bound needs the rank
    picked = [_pick(part[0], i) for i in range(start, end)]
    return None if None in picked else (picked, False)


def flatten_target(graph: Graph, node) -> bool:
    """True when Reshape ``node`` gives (N, everything else) of its input (N, ...).

    Example:
        >>> from onnx import helper
        >>> node = helper.make_node("Reshape", ["x", "t"], ["y"])
        >>> flatten_target(Graph([node], {"t": torch.tensor([0, -1])}, ["y"]), node)
        True
    """
    if len(node.input) < 2:
        return False
    allowzero = node_attributes(node).get("allowzero", 0)
    found = _shape_terms(graph, node.input[1], node.input[0])
    if found is None or found[1] or len(found[0]) != 2:
        return False
    first, second = found[0]
    batch = first == ("dim", 0) or (first == 0 and not allowzero)
    return (batch and second == -1) or (first == -1 and isinstance(second, int) and second > 0)


def match_flatten(graph: Graph, node) -> Iterator[Fused]:
    """``Reshape`` to (N, -1) (constant or from the input's own shape) -> :class:`Flatten`."""
    if graph.constant(node.input[0]) is None and flatten_target(graph, node):
        yield Fused(layer_name(node, "flatten"), [node.input[0]], [node.output[0]], L.Flatten(),
                    {}, [node], ranks=(2, 3, 4, 5))  # fmt: skip


# -- GroupNorm: Reshape -> InstanceNormalization -> Reshape -> Mul -> Add -----------------------


def _per_channel(value: torch.Tensor | None) -> tuple[torch.Tensor, int] | None:
    """(its C values, the input rank it scales channels of) for a constant laid out
    (C, 1, 1) / (1, C, 1, 1) (images) or (C, 1, 1, 1) / (1, C, 1, 1, 1) (volumes), else None."""
    if value is None or not value.is_floating_point() or value.dim() not in (3, 4, 5):
        return None
    dims = list(value.shape)
    if len(dims) == 5 or (len(dims) == 4 and dims[0] == 1 and dims[2:] == [1, 1]
                          and dims[1] != 1):  # fmt: skip
        dims = dims[1:]  # a leading batch axis of one
    if any(d != 1 for d in dims[1:]):
        return None
    return value.reshape(-1), len(dims) + 1


def _affine_after(graph: Graph, name: str) -> tuple | None:
    """(scale, offset, ranks, nodes, end) of ``Mul`` by a per-channel constant then ``Add``
    of one (either may be absent) after value ``name``; None when a constant is not per
    channel or the two do not agree on the rank."""
    found: dict[str, tuple[torch.Tensor, int]] = {}
    nodes, end = [], name
    for op in ("Mul", "Add"):
        user = graph.only_consumer(end)
        if user is None or user.op_type != op or not _other(user, end):
            continue
        found[op] = _per_channel(graph.constant(_other(user, end)))
        if found[op] is None:
            return None
        nodes, end = [*nodes, user], user.output[0]
    ranks = {rank for _, rank in found.values()}
    if len(ranks) > 1:
        return None
    scale, offset = (found[op][0] if op in found else None for op in ("Mul", "Add"))
    return scale, offset, tuple(ranks) or (4, 5), nodes, end


def match_group_norm(graph: Graph, node) -> Iterator[Fused]:
    """``Reshape(x, (N, G, -1)) -> InstanceNormalization -> Reshape(Shape(x)) [-> Mul -> Add]``
    -> :class:`GroupNorm` (G groups; per-group scales of the instance normalization folded in)."""
    if len(node.input) != 3:
        return
    before = graph.made_by(node.input[0], "Reshape")
    inner_scale, inner_bias = graph.constant(node.input[1]), graph.constant(node.input[2])
    if before is None or inner_scale is None or inner_bias is None or len(before.input) < 2:
        return
    x, groups = before.input[0], inner_scale.numel()
    target = _shape_terms(graph, before.input[1], x)
    if target is None or len(target[0]) != 3 or target[1] or inner_bias.numel() != groups:
        return
    batch, split, rest = target[0]
    zero = not node_attributes(before).get("allowzero", 0)
    if not ((batch == 0 and zero) or batch == ("dim", 0)) or split != groups or rest != -1:
        return
    after = graph.only_consumer(node.output[0])
    shape = graph.made_by(after.input[1], "Shape") if after is not None and len(after.input) > 1 \
        else None  # fmt: skip
    if after is None or after.op_type != "Reshape" or graph.only_consumer(before.output[0]) is None:
        return
    if shape is None or shape.input[0] != x or node_attributes(shape).get("start", 0) or \
            "end" in node_attributes(shape):  # fmt: skip
        return
    found = _affine_after(graph, after.output[0])
    if found is None:
        return
    scale, offset, ranks, nodes, end = found
    channels = next((t.numel() for t in (scale, offset) if t is not None), None)
    if channels is None:  # no affine: only unit scales and zero offsets are representable
        if bool((inner_scale != 1).any()) or bool(inner_bias.any()):
            return
        weights = {}
    else:
        if channels % groups or any(
            t is not None and t.numel() != channels for t in (scale, offset)
        ):
            return
        scale = torch.ones(channels) if scale is None else scale.float()
        offset = torch.zeros(channels) if offset is None else offset.float()
        per = channels // groups
        s = inner_scale.float().reshape(-1).repeat_interleave(per)
        b = inner_bias.float().reshape(-1).repeat_interleave(per)
        weights = {"weight": scale * s, "bias": scale * b + offset}
    epsilon = float(node_attributes(node).get("epsilon", 1e-5))
    if epsilon <= 0:
        return
    yield Fused(layer_name(node, "groupnorm"), [x], [end], L.GroupNorm(groups, epsilon=epsilon),
                weights, [before, node, after, *nodes], ranks=ranks)  # fmt: skip


FOREIGN_MATCHERS = {
    "Erf": match_gelu,
    "Sigmoid": match_swish,
    "HardSigmoid": match_hard_swish,
    "InstanceNormalization": match_group_norm,
    "Reshape": match_flatten,
}
"""ONNX op type -> the matcher of the foreign pattern around it (see the module docstring)."""

FOREIGN_TARGETS = {
    "Erf": "GELU",
    "Sigmoid": "Swish",
    "HardSigmoid": "HardSwish",
    "InstanceNormalization": "GroupNorm",
    "Reshape": "Flatten",
}
"""ONNX op type -> the toolbox layer its foreign pattern becomes."""
