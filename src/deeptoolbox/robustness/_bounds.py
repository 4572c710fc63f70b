"""Sound output bounds over input boxes: interval bound propagation (IBP) and CROWN.

CROWN (Zhang et al., 2018, "Efficient Neural Network Robustness Certification with General
Activation Functions") propagates linear bounds backwards through the graph: each activation is
replaced by a linear lower and upper bound valid on its pre-activation interval; affine layers
are passed through exactly (their transpose is taken with ``torch.func.vjp``, so every affine
layer works without a hand-written rule). Pre-activation intervals are themselves computed with
CROWN and intersected with IBP, so CROWN is never looser than IBP. With
``optimize_slopes=True`` the lower slopes of unstable ReLUs are optimized by gradient ascent on
the bounds (alpha-CROWN, Xu et al., 2021); every slope in [0, 1] is sound, and the best bound
seen for each output is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.func import vjp

from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError
from deeptoolbox.robustness._graph import Graph, to_graph
from deeptoolbox.robustness._relax import (
    affine_interval,
    default_lower_slope,
    leaky_slope,
    relax,
    softmax_interval,
)

__all__ = ["OutputBounds", "estimate_output_bounds"]

_LINEAR = (L.Dense, torch.nn.Linear)
_RESHAPES = (L.Flatten, L.Reshape, torch.nn.Flatten)
_ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh")
_MAX_ELEMENTS = 1 << 24  # size of one backward pass's coefficient tensors


@dataclass
class OutputBounds:
    """Guaranteed lower and upper bounds of every network output over a batch of input boxes.

    Example:
        >>> import torch
        >>> b = OutputBounds(torch.zeros(1, 2), torch.ones(1, 2), "ibp")
        >>> b.width.tolist(), b.contains(torch.full((1, 2), 0.5)).tolist()
        ([[1.0, 1.0]], [True])
    """

    lower: torch.Tensor
    upper: torch.Tensor
    method: str

    @property
    def width(self) -> torch.Tensor:
        """``upper - lower``."""
        return self.upper - self.lower

    def contains(self, outputs: torch.Tensor, tolerance: float = 0.0) -> torch.Tensor:
        """Per box, True when every output of ``outputs`` (same size) lies within the bounds."""
        inside = (outputs >= self.lower - tolerance) & (outputs <= self.upper + tolerance)
        return inside.flatten(1).all(dim=1)


class _Propagator:
    """Bounds for one graph and one batch of boxes."""

    def __init__(self, graph: Graph, lo: torch.Tensor, hi: torch.Tensor, method: str) -> None:
        self.graph, self.lo, self.hi, self.method = graph, lo, hi, method
        self.nodes = graph.nodes
        with torch.no_grad():
            values = graph.run(lo[:1])
        self.shapes = [tuple(v.shape[1:]) for v in values]
        consumers = {s for n in self.nodes if n.kind in (*_ACTIVATIONS, "max") for s in n.sources}
        self.needs_crown = consumers
        self.bounds: list[tuple[torch.Tensor, torch.Tensor]] = []

    # -- forward pass: intervals of every node ------------------------------------------------
    def intervals(self, last: int) -> None:
        """Fill ``self.bounds`` for nodes 0..last (tightened with CROWN where it matters)."""
        for i in range(len(self.bounds), last + 1):
            node = self.nodes[i]
            ins = [self._interval(s) for s in node.sources]
            with torch.no_grad():
                lo, hi = self._forward_interval(node, ins)
            if self.method == "crown" and i in self.needs_crown and node.kind == "affine":
                lo, hi = self._crown_node(i, lo, hi)
            self.bounds.append((lo, hi))

    def _interval(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.lo, self.hi) if index < 0 else self.bounds[index]

    @staticmethod
    def _forward_interval(node, ins):
        lows, highs = [i[0] for i in ins], [i[1] for i in ins]
        if node.kind == "affine":
            return affine_interval(node.module, lows, highs)
        if node.kind == "softmax":
            return softmax_interval(node.module, lows[0], highs[0])
        return node.module(lows[0]), node.module(highs[0])  # monotone layers

    def _crown_node(self, index: int, lo: torch.Tensor, hi: torch.Tensor):
        size = int(torch.Size(self.shapes[index]).numel())
        if self._stable(index, lo, hi):
            return lo, hi
        batch = self.lo.shape[0]
        largest = max(int(torch.Size(s).numel()) for s in self.shapes[: index + 1])
        chunk = max(1, _MAX_ELEMENTS // max(1, batch * max(largest, self.lo[0].numel())))
        lowers, uppers = [], []
        eye = torch.eye(size, dtype=lo.dtype, device=lo.device)
        for start in range(0, size, chunk):
            rows = eye[start : start + chunk]
            spec = torch.cat([rows, -rows]).expand(batch, -1, -1)
            with torch.no_grad():
                bound = self.backward(index, spec.reshape(batch, -1, *self.shapes[index]))
            n = rows.shape[0]
            lowers.append(bound[:, :n])
            uppers.append(-bound[:, n:])
        crown_lo = torch.cat(lowers, 1).reshape(lo.shape)
        crown_hi = torch.cat(uppers, 1).reshape(hi.shape)
        return torch.maximum(lo, crown_lo), torch.minimum(hi, crown_hi)

    def _stable(self, index: int, lo: torch.Tensor, hi: torch.Tensor) -> bool:
        kinds = {n.kind for n in self.nodes if index in n.sources}
        if kinds <= {"relu", "leaky_relu"}:
            return bool(((lo >= 0) | (hi <= 0)).all())
        return False

    # -- backward pass: linear bounds of spec @ node ----------------------------------------------
    def backward(self, start: int, spec: torch.Tensor, alphas: dict | None = None) -> torch.Tensor:
        """Lower bound of ``sum(spec * node_start)`` per box and row: spec is (B, S, *shape)."""
        batch, rows = spec.shape[:2]
        pending: dict[int, torch.Tensor] = {start: spec}
        bias = torch.zeros(batch, rows, dtype=spec.dtype, device=spec.device)
        on_input = torch.zeros(
            batch, rows, *self.lo.shape[1:], dtype=spec.dtype, device=spec.device
        )
        for i in range(start, -1, -1):
            if i not in pending:
                continue
            a = pending.pop(i)
            node = self.nodes[i]
            if node.kind == "affine":
                grads, constant = self._through_affine(i, a)
                bias = bias + constant
                for source, grad in zip(node.sources, grads, strict=True):
                    if source < 0:
                        on_input = on_input + grad
                    else:
                        pending[source] = pending[source] + grad if source in pending else grad
            elif node.kind in _ACTIVATIONS:
                source = node.sources[0]
                lo, hi = self._interval(source)
                alpha = None if alphas is None else alphas.get(i)
                sl, bl, su, bu = relax(
                    node.kind, node.module, lo.unsqueeze(1), hi.unsqueeze(1), alpha
                )
                pos, neg = a.clamp(min=0), a.clamp(max=0)
                bias = bias + (pos * bl + neg * bu).flatten(2).sum(-1)
                grad = pos * sl + neg * su
                if source < 0:
                    on_input = on_input + grad
                else:
                    pending[source] = pending[source] + grad if source in pending else grad
            else:  # max pooling (and anything bounded by intervals): concretize here
                lo, hi = self.bounds[i]
                pos, neg = a.clamp(min=0), a.clamp(max=0)
                bias = bias + (pos * lo.unsqueeze(1) + neg * hi.unsqueeze(1)).flatten(2).sum(-1)
        pos, neg = on_input.clamp(min=0), on_input.clamp(max=0)
        x_lo, x_hi = self.lo.unsqueeze(1), self.hi.unsqueeze(1)
        return bias + (pos * x_lo + neg * x_hi).flatten(2).sum(-1)

    def _through_affine(self, index: int, a: torch.Tensor):
        """Coefficients on the node's inputs (``a`` times the linear part) and ``a @ f(0)``."""
        node = self.nodes[index]
        batch, rows = a.shape[:2]
        module = node.module
        if isinstance(module, _LINEAR):
            grad = a @ module.weight
            if getattr(module, "flatten_input", False):
                grad = grad.reshape(batch, rows, *self._shape(node.sources[0]))
            constant = (
                0.0 if module.bias is None else (a @ module.bias).reshape(batch, rows, -1).sum(-1)
            )
            return [grad], constant
        if isinstance(module, _RESHAPES):
            return [a.reshape(batch, rows, *self._shape(node.sources[0]))], 0.0
        zeros = [
            torch.zeros(batch * rows, *self._shape(s), dtype=a.dtype, device=a.device)
            for s in node.sources
        ]
        constant, pullback = vjp(module, *zeros)
        grads = pullback(a.reshape(batch * rows, *a.shape[2:]))
        grads = [g.reshape(batch, rows, *g.shape[1:]) for g in grads]
        constant = constant.reshape(batch, rows, *a.shape[2:])[:1, :1].detach()
        return grads, (a * constant).flatten(2).sum(-1)

    def _shape(self, index: int) -> tuple[int, ...]:
        return tuple(self.lo.shape[1:]) if index < 0 else self.shapes[index]

    # -- final bounds -------------------------------------------------------------------------
    def linear_lower(self, spec: torch.Tensor, optimize: bool, iterations: int) -> torch.Tensor:
        """Lower bound of spec @ output (output = last node), never looser than IBP."""
        last = len(self.nodes) - 1
        self.intervals(last)
        lo, hi = self.bounds[last]
        flat = spec.flatten(2)
        ibp = (flat.clamp(min=0) * lo.flatten(1).unsqueeze(1)).sum(-1) + (
            flat.clamp(max=0) * hi.flatten(1).unsqueeze(1)
        ).sum(-1)
        if self.method == "ibp":
            return ibp
        with torch.no_grad():
            best = torch.maximum(ibp, self.backward(last, spec))
        if optimize:
            best = torch.maximum(best, self._optimized(last, spec, iterations))
        return best

    def _optimized(self, last: int, spec: torch.Tensor, iterations: int) -> torch.Tensor:
        alphas = {}
        rows = spec.shape[1]
        for i, node in enumerate(self.nodes[: last + 1]):
            if node.kind in ("relu", "leaky_relu"):
                lo, hi = self._interval(node.sources[0])
                start = default_lower_slope(node.kind, node.module, lo, hi).unsqueeze(1)
                alphas[i] = start.expand(-1, rows, *start.shape[2:]).clone().requires_grad_()
        if not alphas:
            return self.backward(last, spec).detach()
        floors = {i: _slope_floor(self.nodes[i]) for i in alphas}
        optimizer = torch.optim.Adam(alphas.values(), lr=0.1)
        best = torch.full(spec.shape[:2], float("-inf"), dtype=spec.dtype, device=spec.device)
        with torch.enable_grad():
            for _ in range(iterations):
                bound = self.backward(last, spec, alphas)
                best = torch.maximum(best, bound.detach())
                # gradients for the slopes only: the network's own .grad stays untouched
                grads = torch.autograd.grad(-bound.sum(), list(alphas.values()), allow_unused=True)
                for alpha, grad in zip(alphas.values(), grads, strict=True):
                    alpha.grad = torch.zeros_like(alpha) if grad is None else grad
                optimizer.step()
                with torch.no_grad():
                    for i, alpha in alphas.items():
                        alpha.clamp_(floors[i], 1.0)
        return best


def _slope_floor(node) -> float:
    return 0.0 if node.kind == "relu" else leaky_slope(node.module)


def _check_method(method: str) -> str:
    if method not in ("ibp", "crown"):
        raise OptionError(
            f"estimate_output_bounds: `method` must be 'ibp' or 'crown'. Received: method={method!r}."
        )
    return method


def prepare_box(
    net: torch.nn.Module, lower, upper, where: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a box and move it to the network's device and dtype, with a batch dimension."""
    from deeptoolbox.robustness._graph import device_of, dtype_of

    device, dtype = device_of(net), dtype_of(net)
    lo = torch.as_tensor(lower, dtype=dtype).to(device)
    hi = torch.as_tensor(upper, dtype=dtype).to(device)
    if lo.shape != hi.shape:
        raise OptionError(
            f"{where}: `lower` and `upper` must have the same size. Received: {tuple(lo.shape)} "
            f"and {tuple(hi.shape)}."
        )
    if bool((lo > hi).any()) or not bool(torch.isfinite(lo).all() and torch.isfinite(hi).all()):
        raise OptionError(
            f"{where}: every `lower` must be finite and <= `upper`; found "
            f"{int((lo > hi).sum())} entries with lower > upper and "
            f"{int((~torch.isfinite(lo)).sum() + (~torch.isfinite(hi)).sum())} non-finite."
        )
    input_shape = _declared_input_shape(net)
    if input_shape is not None and len(input_shape) == lo.dim():
        lo, hi = lo.unsqueeze(0), hi.unsqueeze(0)
    return lo, hi


def _declared_input_shape(net: torch.nn.Module):
    names = getattr(net, "input_names", None)
    if names and hasattr(net, "layer"):
        return net.layer(names[0]).shape
    return None


def estimate_output_bounds(
    net: torch.nn.Module,
    lower: torch.Tensor,
    upper: torch.Tensor,
    *,
    method: str = "crown",
    optimize_slopes: bool = False,
    iterations: int = 20,
) -> OutputBounds:
    """Guaranteed bounds of every output of ``net`` for inputs anywhere in a box.

    ``lower`` and ``upper`` are a batch of input boxes shaped like the network's input (a single
    box without batch dimension works too). ``method="ibp"`` propagates intervals (fast, loose);
    ``"crown"`` propagates linear bounds backwards (tighter, never looser than IBP);
    ``optimize_slopes=True`` also optimizes the ReLU lower slopes for ``iterations`` steps.
    Works on Networks (or ``nn.Sequential``) of Dense, convolution, BatchNorm, pooling,
    activation, Flatten, Reshape, Addition and Concatenation layers; a final Softmax is bounded
    too. Other layers raise :class:`UnsupportedLayerError` naming them.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(8), L.ReLU(), L.Dense(2)])
        >>> b = estimate_output_bounds(net, -torch.ones(1, 2), torch.ones(1, 2))
        >>> bool((b.lower <= net(torch.zeros(1, 2))).all()), b.lower.shape
        (True, torch.Size([1, 2]))
    """
    _check_method(method)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise OptionError(
            f"estimate_output_bounds: `iterations` must be a positive int. Received: {iterations!r}."
        )
    graph = to_graph(net)
    graph.check_supported()
    lo, hi = prepare_box(net, lower, upper, "estimate_output_bounds")
    was_training = net.training
    net.eval()
    try:
        return _output_bounds(graph, lo, hi, method, optimize_slopes, iterations)
    finally:
        net.train(was_training)


def _output_bounds(graph, lo, hi, method, optimize, iterations) -> OutputBounds:
    core = graph.without_softmax()
    propagator = _Propagator(core, lo, hi, method)
    shape = propagator.shapes[-1]
    size = int(torch.Size(shape).numel())
    eye = torch.eye(size, dtype=lo.dtype, device=lo.device)
    spec = torch.cat([eye, -eye]).expand(lo.shape[0], -1, -1).reshape(lo.shape[0], 2 * size, *shape)
    bound = propagator.linear_lower(spec, optimize, iterations).detach()
    low = bound[:, :size].reshape(-1, *shape)
    high = (-bound[:, size:]).reshape(-1, *shape)
    if graph.ends_in_softmax:
        low, high = softmax_interval(graph.nodes[-1].module, low, high)
    return OutputBounds(low, high, method)


def lower_bound_of(
    graph: Graph,
    lo: torch.Tensor,
    hi: torch.Tensor,
    spec: torch.Tensor,
    method: str,
    optimize: bool = False,
    iterations: int = 20,
) -> torch.Tensor:
    """Lower bounds of ``spec @ logits`` per box: spec is (B, S, num_outputs)."""
    propagator = _Propagator(graph, lo, hi, method)
    spec = spec.reshape(spec.shape[0], spec.shape[1], *propagator.shapes[-1])
    return propagator.linear_lower(spec, optimize, iterations).detach()
