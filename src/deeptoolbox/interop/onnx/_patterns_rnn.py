"""ONNX LSTM / GRU / RNN nodes with the layout operators around them -> toolbox LSTM / GRU /
SimpleRNN layers.

A node fits when torch's LSTM / GRU computes exactly what it asks: default activations, no
``clip``, no ``input_forget``, direction ``forward`` or ``bidirectional``, no sequence lengths,
zero (or absent) initial states and peepholes, for GRU ``linear_before_reset=1``, for RNN the
default ``Tanh``. Its input
must be batch-first: ``layout=1``, or ``layout=0`` fed by ``Transpose(perm=[1, 0, 2])``.

The outputs are followed through data-movement operators (Transpose, Reshape, Squeeze,
Unsqueeze, Flatten, Gather, Concat, Identity), tracking which of the node's axes (time T,
direction D, batch N, hidden H) each result holds, in which order: a *view*. Reshape targets
computed from ``Shape`` at run time are evaluated symbolically (sizes as monomials in T and N),
so the reasoning holds for every batch size and sequence length. The group becomes one layer
when a view equals the toolbox layer's output: (N, T, D*H) for ``output_mode="sequence"``;
``Y[:, -1]`` (N, D*H) for ``"last"`` (MATLAB's last step); the final states ``Y_h`` for
``"final_state"`` (``"last"`` when there is one direction).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from deeptoolbox import layers as L
from deeptoolbox.interop.onnx._graph import Fused, Graph, layer_name, node_attributes

Mono = tuple[int, int, int]  # coefficient, power of T, power of N: exact for every T and N
ONE: Mono = (1, 0, 0)
RECURRENT_OPS = ("LSTM", "GRU", "RNN")
_DEFAULT_ACTIVATIONS = {"LSTM": ["sigmoid", "tanh", "tanh"], "GRU": ["sigmoid", "tanh"],
                        "RNN": ["tanh"]}  # fmt: skip
# ONNX iofc -> torch ifgo; zrh -> rzh; one gate
_GATE_ORDER = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2], "RNN": [0]}
_LAYERS = {"LSTM": L.LSTM, "GRU": L.GRU, "RNN": L.SimpleRNN}
_VIEW_OPS = ("Transpose", "Squeeze", "Unsqueeze", "Reshape", "Flatten", "Identity", "Gather",
             "Concat")  # fmt: skip


def _mul(a: Mono, b: Mono) -> Mono:
    return (a[0] * b[0], a[1] + b[1], a[2] + b[2])


def _div(a: Mono, b: Mono) -> Mono | None:
    if b[0] == 0 or a[0] % b[0] or a[1] < b[1] or a[2] < b[2]:
        return None
    return (a[0] // b[0], a[1] - b[1], a[2] - b[2])


@dataclass(frozen=True)
class View:
    """A tensor holding the recurrent node's output ``source`` rearranged: each dimension is a
    group of the node's axes (row-major order); ``fixed`` axes were indexed away.

    Example:
        >>> View("Y", (("N",), ("T",), ("D", "H"))).groups[2]  # (N, T, D*H), batch first
        ('D', 'H')
    """

    source: str
    groups: tuple[tuple[str, ...], ...]
    fixed: tuple[tuple[str, int], ...] = ()


class _Rnn:
    """Reasoning about one recurrent node: sizes of its axes and the views of its outputs."""

    def __init__(self, graph: Graph, directions: int, hidden: int) -> None:
        self.graph = graph
        self.sizes = {"T": (1, 1, 0), "N": (1, 0, 1), "D": (directions, 0, 0),
                      "H": (hidden, 0, 0)}  # fmt: skip
        self.views: dict[str, View] = {}
        self.memo: dict[str, tuple[list[Mono], bool] | None] = {}

    def size(self, group: tuple[str, ...]) -> Mono:
        total = ONE
        for axis in group:
            total = _mul(total, self.sizes[axis])
        return total

    def normal(self, view: View) -> View:
        """Drop axes of size one: they do not change where any element is."""
        groups = tuple(tuple(a for a in g if self.sizes[a] != ONE) for g in view.groups)
        fixed = tuple(sorted((a, i) for a, i in view.fixed if self.sizes[a] != ONE))
        return View(view.source, groups, fixed)

    # -- symbolic shape vectors (Shape -> Slice / Gather / Concat / Mul ... -> Reshape) --------

    def sym(self, name: str) -> tuple[list[Mono], bool] | None:
        """A 1-D (or scalar) integer tensor as monomials, when it is exact for every T and N."""
        if name not in self.memo:
            self.memo[name] = None
            self.memo[name] = self._sym(name)
        return self.memo[name]

    def _sym(self, name: str) -> tuple[list[Mono], bool] | None:
        value = self.graph.constant(name)
        if value is not None:
            if value.dtype.is_floating_point or value.dim() > 1:
                return None
            return [(int(v), 0, 0) for v in value.reshape(-1).tolist()], value.dim() == 0
        node = self.graph.producer.get(name)
        if node is None or isinstance(node, Fused):
            return None
        attrs = node_attributes(node)
        if node.op_type == "Shape":
            view = self.views.get(node.input[0])
            if view is None:
                return None
            dims = [self.size(g) for g in view.groups]
            return dims[attrs.get("start", 0) : attrs.get("end", len(dims))], False
        args = [self.sym(n) if n else None for n in node.input]
        return _sym_op(node.op_type, attrs, args, self.graph, node)

    # -- views ---------------------------------------------------------------------------------

    def step(self, node) -> View | None:
        """The view of ``node``'s first output, or None when it is not a data movement."""
        if node.op_type == "Concat":
            return self._concat(node)
        view = self.views[node.input[0]]
        groups, rank = list(view.groups), len(view.groups)
        attrs = node_attributes(node)
        if node.op_type == "Identity":
            return view
        if node.op_type == "Transpose":
            perm = list(attrs.get("perm", range(rank)[::-1]))
            if sorted(perm) != list(range(rank)):
                return None
            return View(view.source, tuple(groups[p] for p in perm), view.fixed)
        if node.op_type == "Flatten":
            axis = attrs.get("axis", 1)
            axis = axis + rank if axis < 0 else axis
            first = tuple(a for g in groups[:axis] for a in g)
            return View(view.source, (first, tuple(a for g in groups[axis:] for a in g)),
                        view.fixed)  # fmt: skip
        if node.op_type in ("Squeeze", "Unsqueeze"):
            axes = self._axes(node, attrs)
            if axes is None:
                return None
            return self._squeeze(view, axes) if node.op_type == "Squeeze" else (
                self._unsqueeze(view, axes))  # fmt: skip
        if node.op_type == "Gather":
            return self._gather(view, node, attrs)
        return self._reshape(view, node, attrs)

    def _axes(self, node, attrs: dict) -> list[int] | None:
        if len(node.input) > 1 and node.input[1]:
            axes = self.graph.constant(node.input[1])
            return None if axes is None else [int(a) for a in axes.reshape(-1).tolist()]
        return list(attrs["axes"]) if "axes" in attrs else None

    def _squeeze(self, view: View, axes: list[int]) -> View | None:
        rank = len(view.groups)
        drop = {a % rank for a in axes if -rank <= a < rank}
        if len(drop) != len(axes) or any(self.size(view.groups[a]) != ONE for a in drop):
            return None
        groups = tuple(g for i, g in enumerate(view.groups) if i not in drop)
        return View(view.source, groups, view.fixed)

    def _unsqueeze(self, view: View, axes: list[int]) -> View | None:
        rank = len(view.groups) + len(axes)
        at = sorted({a % rank for a in axes if -rank <= a < rank})
        if len(at) != len(axes):
            return None
        groups, rest = [], list(view.groups)
        for i in range(rank):
            groups.append(() if i in at else rest.pop(0))
        return View(view.source, tuple(groups), view.fixed)

    def _gather(self, view: View, node, attrs: dict) -> View | None:
        index = self.graph.constant(node.input[1])
        rank = len(view.groups)
        axis = attrs.get("axis", 0)
        if index is None or index.numel() != 1 or index.dim() > 1 or not -rank <= axis < rank:
            return None
        axis, i = axis % rank, int(index.reshape(-1)[0])
        group = tuple(a for a in view.groups[axis] if self.sizes[a] != ONE)
        fixed = dict(view.fixed)
        if not group:
            if i not in (0, -1):
                return None
        elif group == ("D",) and -self.sizes["D"][0] <= i < self.sizes["D"][0]:
            fixed["D"] = i % self.sizes["D"][0]
        elif group == ("T",) and i == -1:
            fixed["T"] = -1
        else:
            return None
        groups = list(view.groups)
        if index.dim() == 0:
            del groups[axis]
        else:
            groups[axis] = ()
        return View(view.source, tuple(groups), tuple(sorted(fixed.items())))

    def _concat(self, node) -> View | None:
        if not all(n in self.views for n in node.input):
            return None
        pieces = [self.views[n] for n in node.input]
        first, directions = pieces[0], self.sizes["D"][0]
        rank = len(first.groups)
        axis = node_attributes(node).get("axis", 0)
        if len(pieces) != directions or directions < 2 or not -rank <= axis < rank:
            return None
        rest = tuple((a, i) for a, i in first.fixed if a != "D")
        for d, piece in enumerate(pieces):
            if piece.source != first.source or piece.groups != first.groups:
                return None
            if sorted(piece.fixed) != sorted((*rest, ("D", d))):
                return None
        groups = list(first.groups)
        groups[axis % rank] = ("D", *groups[axis % rank])
        return View(first.source, tuple(groups), rest)

    def _reshape(self, view: View, node, attrs: dict) -> View | None:
        target = self.sym(node.input[1]) if len(node.input) > 1 else None
        if target is None or target[1]:
            return None
        dims = list(target[0])
        for i, d in enumerate(dims):
            if d == (0, 0, 0):
                if attrs.get("allowzero", 0) or i >= len(view.groups):
                    return None
                dims[i] = self.size(view.groups[i])
        total = self.size(tuple(a for g in view.groups for a in g))
        if (-1, 0, 0) in dims:
            known = ONE
            for d in dims:
                known = known if d == (-1, 0, 0) else _mul(known, d)
            inferred = _div(total, known)
            if dims.count((-1, 0, 0)) > 1 or inferred is None:
                return None
            dims = [inferred if d == (-1, 0, 0) else d for d in dims]
        return self._split(view, dims)

    def _split(self, view: View, dims: list[Mono]) -> View | None:
        """Cut the axes, in row-major order, into consecutive groups of the target sizes."""
        axes = [a for g in view.groups for a in g if self.sizes[a] != ONE]
        groups = []
        for d in dims:
            group, total = [], ONE
            while total != d and axes:
                group.append(axes.pop(0))
                total = _mul(total, self.sizes[group[-1]])
            if total != d:
                return None
            groups.append(tuple(group))
        return None if axes else View(view.source, tuple(groups), view.fixed)


def _sym_op(op: str, attrs: dict, args: list, graph: Graph, node) -> tuple[list, bool] | None:
    """Symbolic Slice / Gather / Concat / Unsqueeze / Squeeze / Reshape / Mul / Cast / Identity."""
    if not args or args[0] is None:
        return None
    data, scalar = args[0]
    if op in ("Cast", "Identity"):
        return args[0]
    if op in ("Unsqueeze", "Reshape") and len(data) == 1:
        return data, False
    if op == "Squeeze" and len(data) == 1:
        return data, True
    if op == "Concat" and all(a is not None and not a[1] for a in args):
        return [d for a in args for d in a[0]], False
    if op == "Mul" and len(args) == 2 and args[1] is not None:
        other, other_scalar = args[1]
        if len(data) == len(other) or 1 in (len(data), len(other)):
            width = max(len(data), len(other))
            pairs = zip(data * width if len(data) == 1 else data,
                        other * width if len(other) == 1 else other, strict=False)  # fmt: skip
            return [_mul(a, b) for a, b in pairs], scalar and other_scalar
    constants = [graph.constant(n) for n in node.input[1:]]
    if op == "Gather" and not scalar and constants and constants[0] is not None:
        index = constants[0]
        picked = [data[int(i)] for i in index.reshape(-1).tolist() if -len(data) <= i < len(data)]
        if attrs.get("axis", 0) == 0 and len(picked) == index.numel():
            return picked, index.dim() == 0
    if op == "Slice" and not scalar and len(constants) >= 2 and None not in constants[:2]:
        extra = [c.reshape(-1).tolist() if c is not None else None for c in constants[2:4]]
        if (extra and extra[0] not in (None, [0], [-1])) or (len(extra) > 1 and extra[1] not in
                                                             (None, [1])):  # fmt: skip
            return None
        start, end = int(constants[0].reshape(-1)[0]), int(constants[1].reshape(-1)[0])
        return data[start:end], False
    return None


# -- the matcher -------------------------------------------------------------------------------


def _fits(graph: Graph, node, attrs: dict) -> tuple[torch.Tensor, ...] | None:
    """(W, R, B) when torch's layer computes exactly what the node asks, else None."""
    op = node.op_type
    inputs = list(node.input) + [""] * (8 - len(node.input))
    w, r = graph.constant(inputs[1]), graph.constant(inputs[2])
    b = graph.constant(inputs[3]) if inputs[3] else None
    if w is None or r is None or w.dim() != 3 or (inputs[3] and b is None):
        return None
    directions, gates = w.shape[0], len(_GATE_ORDER[op])
    hidden = attrs.get("hidden_size", r.shape[-1])
    names = [a.lower() for a in attrs.get("activations", _DEFAULT_ACTIVATIONS[op] * directions)]
    if (
        names != _DEFAULT_ACTIVATIONS[op] * directions
        or attrs.get("clip") is not None
        or attrs.get("input_forget", 0)
        or "activation_alpha" in attrs
        or "activation_beta" in attrs
        or attrs.get("direction", "forward") not in ("forward", "bidirectional")
        or (attrs.get("direction", "forward") == "bidirectional") != (directions == 2)
        or (op == "GRU" and attrs.get("linear_before_reset", 0) != 1)
        or inputs[4]  # sequence_lens
        or any(inputs[i] and not graph.is_zero(inputs[i]) for i in (5, 6, 7))
        or tuple(r.shape) != (directions, gates * hidden, hidden)
        or w.shape[1] != gates * hidden
        or (b is not None and tuple(b.shape) != (directions, 2 * gates * hidden))
    ):
        return None
    if b is None:
        b = torch.zeros(directions, 2 * gates * hidden)
    return w, r, b


def _weights(op: str, w: torch.Tensor, r: torch.Tensor, b: torch.Tensor) -> dict:
    order, half = _GATE_ORDER[op], b.shape[1] // 2

    def torch_order(t: torch.Tensor) -> torch.Tensor:
        chunks = t.detach().float().chunk(len(order), 0)
        return torch.cat([chunks[i] for i in order]).clone()

    weights = {}
    for d, suffix in enumerate(["", "_reverse"][: w.shape[0]]):
        weights[f"rnn.weight_ih_l0{suffix}"] = torch_order(w[d])
        weights[f"rnn.weight_hh_l0{suffix}"] = torch_order(r[d])
        weights[f"rnn.bias_ih_l0{suffix}"] = torch_order(b[d, :half])
        weights[f"rnn.bias_hh_l0{suffix}"] = torch_order(b[d, half:])
    return weights


def _output_mode(rnn: _Rnn, view: View) -> str | None:
    """The output mode ("sequence", "last" or "final_state") whose output ``view`` is exactly,
    else None. ``Y_h`` is each direction's final state ("final_state"; the same as "last" for
    one direction), ``Y`` at the last step is MATLAB's "last"."""
    view = rnn.normal(view)
    sequence = rnn.normal(View("Y", (("N",), ("T",), ("D", "H")))).groups
    last = rnn.normal(View("Y_h", (("N",), ("D", "H")))).groups
    one_way = rnn.sizes["D"] == ONE
    if view.source == "Y" and not view.fixed and view.groups == sequence:
        return "sequence"
    if view.source == "Y_h" and not view.fixed and view.groups == last:
        return "last" if one_way else "final_state"
    if view.source == "Y" and view.fixed == (("T", -1),) and view.groups == last:
        return "last"
    return None


def match_recurrent(graph: Graph, node) -> Iterator[Fused]:
    """Candidate :class:`Fused` toolbox LSTM / GRU / SimpleRNN layers for an ONNX LSTM / GRU /
    RNN node, the
    group covering the most operators first.

    Example:
        >>> from onnx import helper
        >>> nodes = [  # batch-first GRU (N, T, 1, H) -> Squeeze(2) -> (N, T, H)
        ...     helper.make_node("GRU", ["x", "W", "R"], ["y"], layout=1, hidden_size=2,
        ...                      linear_before_reset=1),
        ...     helper.make_node("Squeeze", ["y", "axes"], ["out"])]
        >>> weights = {"W": torch.zeros(1, 6, 3), "R": torch.zeros(1, 6, 2),
        ...            "axes": torch.tensor([2])}
        >>> [fused.layer for fused in match_recurrent(Graph(nodes, weights, ["out"]), nodes[0])]
        [GRU(hidden_size=2)]
    """
    attrs = node_attributes(node)
    fit = _fits(graph, node, attrs)
    if fit is None:
        return
    w, r, b = fit
    layout = attrs.get("layout", 0)
    source = node.input[0]
    if not layout:
        before = graph.producer.get(source)
        if before is None or before.op_type != "Transpose":
            return
        if list(node_attributes(before).get("perm", [])) != [1, 0, 2]:
            return
        source = before.input[0]
    rnn = _Rnn(graph, w.shape[0], r.shape[-1])
    starts = {"Y": ("T", "D", "N", "H"), "Y_h": ("D", "N", "H")}
    if layout:
        starts = {"Y": ("N", "T", "D", "H"), "Y_h": ("N", "D", "H")}
    for name, kind in zip(node.output[:2], starts, strict=False):
        if name:
            rnn.views[name] = View(kind, tuple((a,) for a in starts[kind]))
    made = _follow(rnn, node)
    kind = _LAYERS[node.op_type]
    for name in reversed(made):
        mode = _output_mode(rnn, rnn.views[name])
        if mode is None:
            continue
        layer = kind(int(r.shape[-1]), output_mode=mode, bidirectional=w.shape[0] == 2)
        replaced = [node, *_chain(rnn, graph, name)]
        yield Fused(layer_name(node, node.op_type.lower()), [source], [name], layer,
                    _weights(node.op_type, w, r, b), replaced, ranks=(3,))  # fmt: skip


def _follow(rnn: _Rnn, node) -> list[str]:
    """Views of every value downstream of ``node`` reached by data movements, in graph order."""
    made = [name for name in node.output[:2] if name]
    start = next(i for i, item in enumerate(rnn.graph.items) if item is node)
    for item in rnn.graph.items[start + 1 :]:
        if isinstance(item, Fused) or item.op_type not in _VIEW_OPS or not item.output:
            continue
        data = list(item.input) if item.op_type == "Concat" else item.input[:1]
        if not data or not all(n in rnn.views for n in data):
            continue
        view = rnn.step(item)
        if view is not None:
            rnn.views[item.output[0]] = view
            made.append(item.output[0])
    return made


def _chain(rnn: _Rnn, graph: Graph, name: str) -> list:
    """The data-movement nodes between the recurrent node and ``name``."""
    found, stack = [], [name]
    while stack:
        item = graph.producer.get(stack.pop())
        if item is None or item.op_type in RECURRENT_OPS or any(item is f for f in found):
            continue
        found.append(item)
        data = list(item.input) if item.op_type == "Concat" else item.input[:1]
        stack.extend(n for n in data if n in rnn.views)
    return found
