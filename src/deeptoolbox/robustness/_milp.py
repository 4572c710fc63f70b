"""A complete check for small ReLU networks: mixed-integer linear programming (MILP).

Each affine node is an equality ``z = W a + b`` (its matrix read off the layer by evaluating
it on a basis, in float64), each ReLU ``a = max(z, 0)`` with pre-activation bounds ``[l, u]``
is exact: stable neurons are linear, an unstable one gets a binary ``d`` and the big-M
constraints ``a >= z``, ``a >= 0``, ``a <= z - l (1 - d)``, ``a <= u d`` (Tjeng et al., 2019;
a LeakyReLU of slope ``s`` likewise, ``a >= s z`` and ``a <= s z + (1 - s) u d``). A max
pooling output ``y`` is at least every input of its window and equals the one its binaries
select (``y <= x_i + (U - l_i)(1 - d_i)``, ``sum d = 1``).
The bounds ``l, u`` come from CROWN (alpha-CROWN when asked), so the big-M values are as small
as the bound engine can make them. For each unsafe output region (all of its rows
``spec @ y + offset <= 0``) HiGHS (``scipy.optimize.milp``) minimizes ``t`` subject to
``t >= row`` for every row: a solution with ``t <= 0`` is a counterexample, a proven minimum
(dual bound) above 0 means no input reaches that region. The solver works in floating point
with its own tolerances, so "verified" is complete up to about 1e-6 on the outputs; every
counterexample is returned for the caller to check on the network itself.
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch

from deeptoolbox.errors import OptionError, UnsupportedLayerError
from deeptoolbox.robustness._budget import Budget, Deadline, default_max_memory
from deeptoolbox.robustness._crown import Propagator
from deeptoolbox.robustness._graph import Graph, to_graph
from deeptoolbox.robustness._relax import leaky_slope

__all__ = ["milp_reaches"]

PROOF_MARGIN = 1e-6  # a region's minimum must exceed this to count as unreachable


def milp_reaches(
    net: torch.nn.Module | Graph,
    lower,
    upper,
    spec,
    offset=None,
    groups=None,
    *,
    timeout: float | None = 60.0,
    optimize_slopes: bool = True,
) -> tuple[str, torch.Tensor | None]:
    """Whether some input of the box ``[lower, upper]`` reaches an unsafe output region (MILP).

    ``spec`` (S, outputs) and ``offset`` (S,) are the rows ``spec @ y + offset``; ``groups``
    (S,) assigns each row to a region, reached when all of its rows are ``<= 0`` (default:
    each row its own region). Returns ``("violated", x)`` with an input that reaches a region
    (as the solver found it: check it on the network), ``("verified", None)`` when no input
    does, ``("unproven", None)`` when ``timeout`` seconds ran out first. Works on networks of
    affine layers (Dense, convolutions, BatchNorm, normalization, Flatten, Reshape, Addition,
    Concatenation, average pooling), ReLUs, LeakyReLUs and max pooling; the size of the MILP grows with the number of
    unstable ReLUs, so it is meant for small networks (hundreds of unstable neurons).

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 1))
        >>> with torch.no_grad():  # |x| as relu(x) + relu(-x)
        ...     _ = net[0].weight.copy_(torch.tensor([[1.0], [-1.0]])), net[0].bias.zero_()
        ...     _ = net[2].weight.fill_(1.0), net[2].bias.zero_()
        >>> milp_reaches(net, -torch.ones(1), torch.ones(1), [[1.0]], [0.1])  # |x| <= -0.1?
        ('verified', None)
        >>> status, x = milp_reaches(net, -torch.ones(1), torch.ones(1), [[-1.0]], [0.5])
        >>> status, bool(x.abs() >= 0.5)  # |x| >= 0.5 is reached
        ('violated', True)
    """
    started = time.monotonic()
    if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
        raise OptionError(
            f"milp_reaches: `timeout` must be a positive number of seconds or None. "
            f"Received: timeout={timeout!r}."
        )
    graph = net if isinstance(net, Graph) else to_graph(net)
    graph = graph.without_softmax()
    _check_layers(graph)
    lo = torch.as_tensor(lower, dtype=torch.float32).flatten()
    hi = torch.as_tensor(upper, dtype=torch.float32).flatten()
    spec = np.asarray(spec, dtype=np.float64)
    spec = spec[None] if spec.ndim == 1 else spec
    offset = np.zeros(spec.shape[0]) if offset is None else np.asarray(offset, dtype=np.float64)
    groups = np.arange(spec.shape[0]) if groups is None else np.asarray(groups).astype(int)
    if offset.shape != (spec.shape[0],) or groups.shape != (spec.shape[0],):
        raise OptionError(
            f"milp_reaches: `offset` and `groups` need one value per row of `spec` "
            f"({spec.shape[0]}). Received: {offset.shape} and {groups.shape}."
        )
    shape = _input_shape(graph, lo)
    box_lo, box_hi = lo.reshape(1, *shape), hi.reshape(1, *shape)
    deadline = math.inf if timeout is None else started + float(timeout)
    bounds = _node_bounds(graph, box_lo, box_hi, optimize_slopes, deadline)
    program = _Program(graph, box_lo, box_hi, bounds)
    if program.outputs != spec.shape[1]:
        raise OptionError(
            f"milp_reaches: `spec` has {spec.shape[1]} columns but the network has "
            f"{program.outputs} outputs."
        )
    status = "verified"
    for g in range(int(groups.max()) + 1):
        rows = groups == g
        left = deadline - time.monotonic()
        if left <= 0:
            return "unproven", None
        outcome, x = program.minimize_max(spec[rows], offset[rows], left)
        if outcome == "violated":
            return "violated", torch.as_tensor(x, dtype=torch.float32).reshape(shape)
        if outcome == "unproven":
            status = "unproven"
    return status, None


def _input_shape(graph: Graph, lo: torch.Tensor) -> tuple[int, ...]:
    module = graph.module
    if hasattr(module, "input_names") and hasattr(module, "layer"):
        declared = module.layer(module.input_names[0]).shape
        if declared is not None and math.prod(declared) == lo.numel():
            return tuple(declared)
    first = graph.nodes[0].module
    if isinstance(first, torch.nn.Linear):
        return (first.in_features,)
    return (lo.numel(),)


def _check_layers(graph: Graph) -> None:
    for node in graph.nodes:
        if node.kind not in ("affine", "relu", "leaky_relu", "max"):
            raise UnsupportedLayerError(
                f"milp_reaches: layer '{node.name}' ({type(node.module).__name__}, kind "
                f"{node.kind!r}) has no exact MILP encoding here; supported: affine layers "
                "(BatchNorm, Flatten and Reshape included), ReLU, LeakyReLU and max pooling."
            )


def _node_bounds(graph, lo, hi, optimize, deadline):
    """Sound intervals of every node over the box: CROWN, alpha-CROWN when ``optimize``."""
    left = None if deadline == math.inf else max(deadline - time.monotonic(), 1e-3)
    budget = Budget(default_max_memory(lo.device), Deadline(left))
    plain = Propagator(graph, lo, hi, "crown", budget)
    plain.intervals(len(graph.nodes) - 1)
    if not optimize:
        return plain.bounds
    better = Propagator(graph, lo, hi, "crown", budget, alpha_steps=20, known=plain.bounds)
    better.intervals(len(graph.nodes) - 1)
    return better.bounds


class _Program:
    """The MILP of a graph over one box: variables, equalities and big-M constraints."""

    def __init__(self, graph: Graph, lo, hi, bounds) -> None:
        from scipy import sparse

        self.sparse = sparse
        self.lower: list[np.ndarray] = [lo.double().flatten().numpy()]
        self.upper: list[np.ndarray] = [hi.double().flatten().numpy()]
        self.integer: list[np.ndarray] = [np.zeros(lo.numel())]
        self.rows: list = []  # (matrix over all variables so far, lower, upper)
        self.count = lo.numel()
        where = {-1: (0, lo.numel())}  # node -> (first variable, size)
        shapes = {-1: tuple(lo.shape[1:])}
        with torch.no_grad():
            values = graph.run(lo)
        for i, node in enumerate(graph.nodes):
            shapes[i] = tuple(values[i].shape[1:])
            n_lo = bounds[i][0].double().flatten().numpy()
            n_hi = bounds[i][1].double().flatten().numpy()
            source = node.sources[0] if node.sources else -1
            if node.kind == "affine":
                where[i] = self._affine(node, [where[s] for s in node.sources],
                                        [shapes[s] for s in node.sources], n_lo, n_hi)  # fmt: skip
            elif node.kind == "max":
                where[i] = self._max(node.module, where[source], shapes[source],
                                     bounds[source], n_lo, n_hi)  # fmt: skip
            else:
                slope = 0.0 if node.kind == "relu" else leaky_slope(node.module)
                where[i] = self._relu(where[source], bounds[source], n_lo, n_hi, slope)
        self.output = where[len(graph.nodes) - 1]
        self.outputs = self.output[1]

    def _new(self, size: int, lo, hi, integer: bool = False) -> int:
        first = self.count
        self.lower.append(np.asarray(lo, dtype=np.float64))
        self.upper.append(np.asarray(hi, dtype=np.float64))
        self.integer.append(np.full(size, 1.0 if integer else 0.0))
        self.count += size
        return first

    def _constrain(self, columns: list[tuple[int, np.ndarray]], lower, upper) -> None:
        """Rows ``lower <= sum_k A_k v[first_k : first_k + width_k] <= upper``."""
        self.rows.append((columns, np.asarray(lower, np.float64), np.asarray(upper, np.float64)))

    def _affine(self, node, sources, shapes, n_lo, n_hi):
        module = copy.deepcopy(node.module).double().eval()
        size = n_lo.size
        first = self._new(size, n_lo - 1e-6 * (1 + np.abs(n_lo)), n_hi + 1e-6 * (1 + np.abs(n_hi)))
        zeros = [torch.zeros(1, *s, dtype=torch.float64) for s in shapes]
        with torch.no_grad():
            bias = module(*zeros).flatten().numpy()
        columns = [(first, -np.eye(size))]
        for k, ((start, width), shape) in enumerate(zip(sources, shapes, strict=True)):
            basis = torch.eye(width, dtype=torch.float64).reshape(width, *shape)
            args = [basis if j == k else z.expand(width, *z.shape[1:]) for j, z in
                    enumerate(zeros)]  # fmt: skip
            with torch.no_grad():
                matrix = (module(*args).reshape(width, size).numpy() - bias).T
            matrix[np.abs(matrix) < 1e-12] = 0.0
            columns.append((start, matrix))
        self._constrain(columns, -bias, -bias)  # W a - z = -b
        return first, size

    def _relu(self, source, pre, n_lo, n_hi, slope: float = 0.0):
        """a = max(z, s z) (s = ``slope`` in [0, 1]: ReLU for 0, leaky ReLU otherwise)."""
        start, size = source
        l_ = pre[0].double().flatten().numpy()
        u_ = pre[1].double().flatten().numpy()
        first = self._new(size, n_lo - 1e-6 * (1 + np.abs(n_lo)),
                          n_hi + 1e-6 * (1 + np.abs(n_hi)))  # fmt: skip
        eye = np.eye(size)
        active, inactive = l_ >= 0, u_ <= 0
        unstable = ~active & ~inactive
        # a >= z for every neuron, a = z where active; a >= s z, a = s z where inactive
        self._constrain([(first, eye), (start, -eye)], np.zeros(size),
                        np.where(active, 0.0, np.inf))  # fmt: skip
        self._constrain([(first, eye), (start, -slope * eye)], np.zeros(size),
                        np.where(inactive, 0.0, np.inf))  # fmt: skip
        index = np.flatnonzero(unstable)
        if index.size:
            binaries = self._new(index.size, np.zeros(index.size), np.ones(index.size), True)
            rows = np.eye(size)[index]
            # d = 1: z >= 0 and a = z; d = 0: z <= 0 and a = s z (Tjeng et al., 2019):
            # a - z + (s - 1) l d <= (s - 1) l   (a <= z + (1 - s)(-l)(1 - d))
            # a - s z - (1 - s) u d <= 0         (a <= s z + (1 - s) u d)
            m_low, m_high = (slope - 1.0) * l_[index], (1.0 - slope) * u_[index]
            self._constrain([(first, rows), (start, -rows), (binaries, np.diag(m_low))],
                            -np.inf, m_low)  # fmt: skip
            self._constrain([(first, rows), (start, -slope * rows), (binaries, -np.diag(m_high))],
                            -np.inf, np.zeros(index.size))  # fmt: skip
        return first, size

    def _max(self, module, source, shape, pre, n_lo, n_hi):
        """y = max of each pooling window: y >= x_i for every candidate i of the window, and
        y <= x_i + (U - l_i)(1 - d_i) with one binary d_i per candidate, sum d = 1 (an input
        whose upper bound is below another's lower bound is never the max and is left out)."""
        start, size = source
        l_ = pre[0].double().flatten().numpy()
        u_ = pre[1].double().flatten().numpy()
        with torch.no_grad():  # input p lies in window o where a one-hot input gives o = 1
            basis = torch.eye(size, dtype=torch.float64).reshape(size, *shape)
            member = copy.deepcopy(module).double().eval()(basis).reshape(size, -1).numpy() > 0.5
        outputs = member.shape[1]
        first = self._new(outputs, n_lo - 1e-6 * (1 + np.abs(n_lo)),
                          n_hi + 1e-6 * (1 + np.abs(n_hi)))  # fmt: skip
        for o in range(outputs):
            window = np.flatnonzero(member[:, o])
            best = window[np.argmax(l_[window])]
            keep = window[(u_[window] >= l_[best]) | (window == best)]
            y = (first + o, np.ones((len(keep), 1)))
            picks = np.zeros((len(keep), size))
            picks[np.arange(len(keep)), keep] = 1.0
            if len(keep) == 1:  # it dominates its window: y = x
                self._constrain([y, (start, -picks)], 0.0, 0.0)
                continue
            self._constrain([y, (start, -picks)], np.zeros(len(keep)), np.inf)  # y >= x_i
            binaries = self._new(len(keep), np.zeros(len(keep)), np.ones(len(keep)), True)
            spread = u_[keep].max() - l_[keep]
            self._constrain([y, (start, -picks), (binaries, np.diag(spread))], -np.inf, spread)
            self._constrain([(binaries, np.ones((1, len(keep))))], 1.0, 1.0)  # one is the max
        return first, outputs

    def minimize_max(self, spec, offset, seconds: float):
        """Minimize t >= spec @ y + offset: ("violated", x), ("verified", _), ("unproven", _)."""
        from scipy.optimize import Bounds, LinearConstraint, milp

        sparse = self.sparse
        total = self.count + 1  # t last
        blocks, lowers, uppers = [], [], []
        for columns, lower, upper in self.rows:
            height = columns[0][1].shape[0]
            blocks.append(_block(sparse, columns, height, total))
            lowers.append(np.broadcast_to(lower, height))
            uppers.append(np.broadcast_to(upper, height))
        out, k = self.output
        rows = spec.shape[0]
        columns = [(out, spec), (total - 1, -np.ones((rows, 1)))]
        blocks.append(_block(sparse, columns, rows, total))  # spec @ y - t <= -offset
        lowers.append(np.full(spec.shape[0], -np.inf))
        uppers.append(-offset)
        constraint = LinearConstraint(sparse.vstack(blocks).tocsr(), np.concatenate(lowers),
                                      np.concatenate(uppers))  # fmt: skip
        cost = np.zeros(total)
        cost[-1] = 1.0
        lower = np.concatenate([*self.lower, [-np.inf]])
        upper = np.concatenate([*self.upper, [np.inf]])
        integer = np.concatenate([*self.integer, [0.0]])
        result = milp(cost, constraints=constraint, integrality=integer,
                      bounds=Bounds(lower, upper),
                      options={"time_limit": max(seconds, 0.01), "mip_rel_gap": 1e-9})  # fmt: skip
        if result.x is not None and result.x[-1] <= 0:
            return "violated", result.x[: self.lower[0].size]
        dual = getattr(result, "mip_dual_bound", None)
        if result.status == 2:  # infeasible: no input at all (cannot happen for a box)
            return "verified", None
        if dual is None:  # older scipy: only a proven optimum counts
            dual = result.x[-1] if result.status == 0 and result.x is not None else -np.inf
        if dual > PROOF_MARGIN:
            return "verified", None
        return "unproven", None


def _block(sparse, columns, height: int, total: int):
    """A sparse (height, total) matrix from dense parts placed at their first columns."""
    rows, cols, vals = [], [], []
    for start, part in columns:
        r, c = np.nonzero(part)
        rows.append(r)
        cols.append(c + start)
        vals.append(part[r, c])
    shape = (height, total)
    data = (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols)))
    return sparse.coo_matrix(data, shape=shape).tocsr()
