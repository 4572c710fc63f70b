"""The bound engine: interval bounds of every node, tightened by CROWN where relaxations need it.

For each node that feeds a ReLU (or another relaxed layer), the linear lower and upper bounds
of its neurons are carried backwards to the input (:meth:`Propagator.backward`), in patches
while the receptive field is smaller than the image and as dense coefficients after. Only the
neurons whose relaxation depends on their bounds are bounded (for a ReLU: those whose interval
contains 0), in chunks sized from the memory budget; a node whose smallest chunk would not fit
keeps its interval bounds and the budget's notes say so. When the deadline passes, the
remaining nodes keep their interval bounds (always sound), and the notes say so too.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import torch

from deeptoolbox import layers as L
from deeptoolbox.errors import OutOfTime
from deeptoolbox.robustness._budget import Budget, element_size
from deeptoolbox.robustness._graph import Graph
from deeptoolbox.robustness._linear import (
    Allowance,
    Diagonal,
    Form,
    Window,
    add_forms,
    box_cut,
    concretize,
)
from deeptoolbox.robustness._ops import (
    ConvOp,
    DiagonalOp,
    MaxPoolOp,
    ReshapeOp,
    make_op,
)
from deeptoolbox.robustness._relax import (
    affine_interval,
    default_lower_slope,
    leaky_slope,
    relax,
    softmax_interval,
)

__all__ = ["Propagator", "node_shapes", "bytes_per_box"]

ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh")
PIECEWISE = ("relu", "leaky_relu")
STEP_COPIES = 4  # working copies of a backward step, as a multiple of its largest form
SAFETY = 1.25  # margin on measured memory per row
ALPHA_SHARE = 0.2  # of the time left that optimizing intermediate layers' slopes may use
STALL = 4  # optimization steps without improvement after which a layer's optimization stops


def node_shapes(graph: Graph, lo: torch.Tensor) -> list[tuple[int, ...]]:
    """Size (without batch) of every node's output (kept on the graph per input size)."""
    key = tuple(lo.shape[1:])
    if key not in graph.shapes:
        with torch.no_grad():
            graph.shapes[key] = [tuple(v.shape[1:]) for v in graph.run(lo[:1])]
    return graph.shapes[key]


def bytes_per_box(shapes, input_numel: int, elsize: int, optimize: bool) -> float:
    """Memory one input box needs at least: its stored bounds plus one row of work."""
    sizes = [math.prod(s) for s in shapes] + [input_numel]
    stored = 6 * sum(sizes)
    work = 2 * STEP_COPIES * max(sizes)
    if optimize:
        work += 8 * sum(sizes)
    return float(elsize * (stored + work))


def _input_layout(graph: Graph) -> bool | None:
    module = graph.module
    first = module.layer(module.input_names[0]) if hasattr(module, "input_names") else None
    if isinstance(first, L.ImageInput | L.VolumeInput):
        return False
    if isinstance(first, L.SequenceInput):
        return True
    return None


class Propagator:
    """Bounds for one graph and one batch of input boxes, within a :class:`Budget`."""

    def __init__(self, graph: Graph, lo: torch.Tensor, hi: torch.Tensor, method: str,
                 budget: Budget, *, patches: bool = True, splits: dict | None = None,
                 record: bool = False, alpha_steps: int = 0,
                 known: list | None = None) -> None:  # fmt: skip
        self.graph, self.lo, self.hi, self.method, self.budget = graph, lo, hi, method, budget
        self.patches = patches  # False: dense coefficients everywhere (a reference path)
        # branch and bound on activations: node index -> (B, numel) phases of its neurons,
        # +1 restricts the box's inputs to those where the neuron is >= 0, -1 to <= 0
        self.splits = splits or {}
        self.infeasible = torch.zeros(lo.shape[0], dtype=torch.bool, device=lo.device)
        self.record = record  # keep the coefficients met at each activation (dense forms)
        # alpha-CROWN on intermediate layers: steps of slope optimization for each layer's
        # bounds (0: plain CROWN there); the time they may take is set when bounding starts
        self.alpha_steps = alpha_steps
        self._alpha_until: float | None = None
        self.alpha_gain: dict[int, float] = {}  # node -> mean width removed by optimization
        # sound bounds known already for the same boxes (plain CROWN's), or for one box that
        # holds them all (batch 1: the root box of branch and bound), intersected with the
        # bounds of each tightened node: tighter earlier bounds do not always make a later
        # CROWN bound tighter (the relaxations change), the intersection is never looser
        self.known = known
        self.coefficients: dict[int, torch.Tensor] = {}
        self._betas: dict[int, torch.Tensor] | None = None  # while optimizing, with splits
        self._as_plain = {-1}  # nodes whose intervals are their plain (IBP) intervals
        self.nodes = graph.nodes
        self.shapes = node_shapes(graph, lo)
        self.ops = {
            i: make_op(n.module, n.kind, [self.shape(s) for s in n.sources], self.shapes[i], lo)
            for i, n in enumerate(self.nodes)
            if n.kind in ("affine", "max")
        }
        self.elsize = element_size(lo.dtype)
        # windows kept between chunks, and matrices kept for small windows, share a quarter
        # of the work budget
        self.allowance = Allowance(budget.work // (4 * self.elsize))
        for op in self.ops.values():
            if isinstance(op, ConvOp):
                op.matrix_limit = min(op.matrix_limit, budget.work // (8 * self.elsize))
            elif isinstance(op, DiagonalOp):
                op.diagonal.allowance = self.allowance
        self.consumers: dict[int, set[str]] = {i: set() for i in range(-1, len(self.nodes))}
        for node in self.nodes:
            for source in node.sources:
                self.consumers[source].add(node.kind)
        self.bounds: list[tuple[torch.Tensor, torch.Tensor]] = []
        sizes = [math.prod(s) for s in self.shapes] + [lo[0].numel()]
        self.stored = 6.0 * lo.shape[0] * sum(sizes) * self.elsize
        self.reserved = self.stored + self.allowance.limit * self.elsize
        self.out_of_time = False
        self._plain: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._relaxations: dict[int, Diagonal] = {}
        self._box: dict = {}
        self._layouts: dict[int, bool | None] = {-1: _input_layout(graph)}
        self._row_bytes: dict[int, float] = {}
        self._peak = 0
        self.on_layer = None  # optional callback(done, total)
        self.steps = {"patches": 0, "dense": 0}  # backward steps taken in each form

    def shape(self, index: int) -> tuple[int, ...]:
        return tuple(self.lo.shape[1:]) if index < 0 else self.shapes[index]

    def interval(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.lo, self.hi) if index < 0 else self.bounds[index]

    # -- forward pass: intervals of every node ------------------------------------------------
    def intervals(self, last: int) -> None:
        """Fill ``self.bounds`` for nodes 0..last (tightened with CROWN where it matters).

        Once out of time, the nodes left take their plain interval bounds (computed first
        when there is a deadline), so that the answer comes at once.
        """
        if self.alpha_steps and self._alpha_until is None:
            left = self.budget.deadline.left()
            self._alpha_until = time.monotonic() + ALPHA_SHARE * left
        for i in range(len(self.bounds), last + 1):
            if not self.out_of_time and self._plain is not None and self.budget.deadline.passed:
                self._ran_out(i)
            if self.out_of_time and self._plain is not None:
                self.bounds.append(self._plain[i])
                continue
            if self.method == "ibp":
                self.budget.deadline.check()
            node = self.nodes[i]
            if self._plain is not None and all(s in self._as_plain for s in node.sources):
                lo, hi = self._plain[i]  # its inputs were not tightened: the same intervals
            else:
                ins = [self.interval(s) for s in node.sources]
                with torch.no_grad():
                    lo, hi = _forward_interval(node, ins)
            tightened = self._wants_crown(i) or i in self.splits
            if self._wants_crown(i):
                # known bounds first: neurons they make stable need no CROWN rows
                lo, hi = self._intersect_known(i, lo, hi)
                with torch.no_grad():
                    lo, hi = self._tighten(i, lo, hi)
                lo, hi = self._intersect_known(i, lo, hi)
            if i in self.splits:
                lo, hi = self._restrict(i, lo, hi)
            if not tightened:
                self._as_plain.add(i)
            self.bounds.append((lo, hi))
            if self.on_layer is not None:
                self.on_layer(i + 1, last + 1)

    def _restrict(self, i: int, lo: torch.Tensor, hi: torch.Tensor):
        """Clip node i's intervals to the phases its split neurons are restricted to; a box
        whose restriction is empty (a neuron split >= 0 whose upper bound is < 0, or the
        reverse) has no input left and is marked infeasible."""
        phase = self.splits[i].reshape(lo.shape)
        active, inactive = phase > 0, phase < 0
        empty = (active & (hi < 0)) | (inactive & (lo > 0))
        self.infeasible |= empty.flatten(1).any(1)
        lo = torch.where(active, lo.clamp_min(0), torch.where(inactive, lo.clamp_max(0), lo))
        hi = torch.where(inactive, hi.clamp_max(0), torch.where(active, hi.clamp_min(0), hi))
        return lo, hi

    def plain_intervals(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Interval (IBP) bounds of every node, from the input box alone (computed once)."""
        if self._plain is None:
            bounds: list[tuple[torch.Tensor, torch.Tensor]] = []
            for node in self.nodes:
                self.budget.deadline.check()
                ins = [(self.lo, self.hi) if s < 0 else bounds[s] for s in node.sources]
                with torch.no_grad():
                    bounds.append(_forward_interval(node, ins))
            self._plain = bounds
        return self._plain

    def _wants_crown(self, i: int) -> bool:
        relaxed = self.consumers[i] & {*ACTIVATIONS, "max"}
        node = self.nodes[i]
        return (
            self.method == "crown" and node.kind == "affine" and bool(relaxed)
            and not self.out_of_time and not self._interval_is_exact(i)
        )  # fmt: skip

    def _interval_is_exact(self, i: int) -> bool:
        """True when node i sees the input box through one affine layer at most, the others
        being element-wise maps and reshapes: each of its intervals is then exact (the range
        of one affine function of the box, mapped element-wise) and CROWN cannot improve it."""
        general, j = 0, i
        while j >= 0:
            node, op = self.nodes[j], self.ops.get(j)
            if node.kind != "affine" or len(node.sources) != 1:
                return False
            if not isinstance(op, DiagonalOp | ReshapeOp):
                general += 1
            if general > 1:
                return False
            j = node.sources[0]
        return True

    def _needed(self, i: int, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        """Flat indices of the neurons of node i whose relaxation depends on their bounds."""
        if self.consumers[i] & {*ACTIVATIONS, "max"} <= set(PIECEWISE):
            unstable = ((lo < 0) & (hi > 0)).flatten(1).any(0)
            return unstable.nonzero().flatten()
        return torch.arange(lo[0].numel(), device=lo.device)

    def _tighten(self, i: int, lo: torch.Tensor, hi: torch.Tensor):
        needed = self._needed(i, lo, hi)
        lows, highs = lo.flatten(1).clone(), hi.flatten(1).clone()
        batch, start = lo.shape[0], 0
        try:
            while start < needed.numel():
                self.budget.deadline.check()
                per_row = self._row_bytes.get(i, self._conservative_row_bytes(i))
                count = self.budget.rows_that_fit(batch * per_row, self.reserved) // 2
                if count < 1:
                    self.budget.note(
                        f"memory budget: layer {self._describe(i)} kept interval (IBP) bounds "
                        f"for {needed.numel() - start} neurons (CROWN would need about "
                        f"{_size(2 * batch * per_row + self.reserved)})"
                    )
                    break
                index = needed[start : start + count]
                k = index.numel()
                self._peak = 0
                bound = self.backward(i, self._identity_form(i, index))
                lows[:, index] = torch.maximum(lows[:, index], bound[:, :k])
                highs[:, index] = torch.minimum(highs[:, index], -bound[:, k:])
                measured = max(self._peak - self._kept(), 0) * self.elsize / (2 * k * batch)
                self._row_bytes[i] = max(measured * SAFETY, 64.0)
                start += k
            if self.alpha_steps:
                self._forget_windows()
                known = self._intersect_known(i, lows, highs)
                lows.copy_(known[0].flatten(1)), highs.copy_(known[1].flatten(1))
                self._alpha_tighten(i, lows, highs)
        except OutOfTime:
            self._ran_out(i)
        finally:
            self._forget_windows()
        return lows.reshape(lo.shape), highs.reshape(hi.shape)

    def _intersect_known(self, i: int, lo: torch.Tensor, hi: torch.Tensor):
        if self.known is None or i >= len(self.known):
            return lo, hi
        k_lo, k_hi = self.known[i]  # batch 1 (bounds of a box holding every one) or B
        k_lo, k_hi = k_lo.reshape(-1, *lo.shape[1:]), k_hi.reshape(-1, *hi.shape[1:])
        return torch.maximum(lo, k_lo), torch.minimum(hi, k_hi)

    def _alpha_tighten(self, i: int, lows: torch.Tensor, highs: torch.Tensor) -> None:
        """alpha-CROWN for node i: optimize the lower slopes of the unstable ReLUs before it,
        separately for each bound of each neuron still unstable (``lows``/``highs``, (B, n),
        tightened in place). Every slope in [floor, 1] is sound and the best bound seen is
        kept, so the result is never looser than CROWN's. The layers share what is left of
        ``ALPHA_SHARE`` of the time (evenly among the layers still to come), and a layer stops
        after ``STALL`` steps without improvement: a small network pays a few steps only."""
        relus = [j for j in range(i) if self.nodes[j].kind in PIECEWISE]
        unstable = ((lows < 0) & (highs > 0)).any(0).nonzero().flatten()
        if not relus or not unstable.numel() or self._alpha_until is None:
            return
        coming = sum(1 for j in range(i, len(self.nodes)) if self._wants_crown(j))
        stop = time.monotonic() + (self._alpha_until - time.monotonic()) / max(coming, 1)
        if time.monotonic() >= stop:
            return
        sizes = [math.prod(s) for s in self.shapes]
        batch, shape = self.lo.shape[0], self.shapes[i]
        shared = self.patches and self.layout(i) is not None  # image-like: patches, shared
        if shared:  # the slopes do not grow with the rows; the rows' work is CROWN's, kept
            per_row = 3 * self._row_bytes.get(i, self._conservative_row_bytes(i))
        else:
            per_row = self.elsize * (6 * sum(sizes[j] for j in relus) + 8 * sum(sizes[: i + 1]))
        count = self.budget.rows_that_fit(batch * per_row, self.reserved) // 2
        if count < 1:
            self.budget.note(f"memory budget: slopes for layer {self._describe(i)} not optimized")
            return
        before = (highs - lows)[:, unstable].sum()
        for start in range(0, unstable.numel(), count):
            index = unstable[start : start + count]
            k = index.numel()
            if shared:
                bound = self._optimize_shared(i, index, relus, stop)
                lows[:, index] = torch.maximum(lows[:, index], bound[:, :k])
                highs[:, index] = torch.minimum(highs[:, index], -bound[:, k:])
                if time.monotonic() >= stop:
                    break
                continue
            spec = self.lo.new_zeros(1, 2 * k, math.prod(shape))
            rows = torch.arange(2 * k, device=index.device)
            spec[0, rows, index.repeat(2)] = torch.cat([torch.ones(k), -torch.ones(k)]).to(spec)
            spec = spec.reshape(1, 2 * k, *shape)
            bound = self._optimize_chunk(i, spec, relus, self.alpha_steps, stop, STALL)
            lows[:, index] = torch.maximum(lows[:, index], bound[:, :k])
            highs[:, index] = torch.minimum(highs[:, index], -bound[:, k:])
            if time.monotonic() >= stop:
                break
        after = (highs - lows)[:, unstable].sum()
        self.alpha_gain[i] = float(before - after) / (batch * unstable.numel())

    def _optimize_shared(self, i: int, index: torch.Tensor, relus, stop: float) -> torch.Tensor:
        """alpha-CROWN for the neurons ``index`` of an image-like node i, in patches: one set
        of slopes (one per ReLU neuron, as CROWN's own) for all the lower bounds, one for all
        the upper bounds, instead of one per bound and neuron on dense coefficients. Fewer
        degrees of freedom, but each step costs about one CROWN pass: (B, 2k) bounds."""
        form, k = self._identity_form(i, index), index.numel()
        sides = [replace(form, values=form.values[:, part], positions=form.positions[part])
                 for part in (slice(0, k), slice(k, 2 * k))]  # fmt: skip
        alphas, floors = [{}, {}], {j: _slope_floor(self.nodes[j]) for j in relus}
        for j in relus:
            lo, hi = self.interval(self.nodes[j].sources[0])
            start = default_lower_slope(self.nodes[j].kind, self.nodes[j].module, lo, hi)
            for side in alphas:
                side[j] = start.clone().requires_grad_()
        params = [a for side in alphas for a in side.values()]
        adam = _Adam(params, lr=0.1)
        best = self.lo.new_full((self.lo.shape[0], 2 * k), -math.inf)
        stalled = 0
        with torch.enable_grad():
            for step in range(self.alpha_steps):
                if step and (time.monotonic() >= stop or stalled >= STALL):
                    break
                bound = torch.cat([self.backward(i, f, a) for f, a in zip(sides, alphas,
                                                                         strict=True)], 1)  # fmt: skip
                gain = (bound.detach() - best).clamp_min(0).nan_to_num(posinf=1.0).mean()
                scale = 1e-3 * (1 + best.abs().nan_to_num(posinf=0.0).mean())
                stalled = 0 if bool(gain > scale) else stalled + 1
                best = torch.maximum(best, bound.detach())
                grads = torch.autograd.grad(-bound.sum(), params, allow_unused=True)
                adam.step(grads)
                with torch.no_grad():
                    for side in alphas:
                        for j, alpha in side.items():
                            alpha.clamp_(floors[j], 1.0)
                self._forget_windows()
        return best

    def _kept(self) -> int:
        """Elements held in windows kept between chunks."""
        kept = sum(d.kept for d in self._relaxations.values())
        kept += sum(op.diagonal.kept for op in self.ops.values() if isinstance(op, DiagonalOp))
        return kept + sum(cut.kept for cut in self._box.values())

    def _forget_windows(self) -> None:
        for diagonal in self._relaxations.values():
            diagonal.clear()
        for op in self.ops.values():
            if isinstance(op, DiagonalOp):
                op.diagonal.clear()
        for cut in self._box.values():
            cut.clear()

    def _describe(self, i: int) -> str:
        node = self.nodes[i]
        return f"'{node.name}' ({type(node.module).__name__})"

    def _ran_out(self, i: int) -> None:
        self.out_of_time = True
        self.budget.note(
            f"time limit: CROWN stopped at layer {self._describe(i)}; it and the layers after "
            "it have interval (IBP) bounds"
        )

    def _conservative_row_bytes(self, i: int) -> float:
        largest = max([math.prod(s) for s in self.shapes[: i + 1]] + [self.lo[0].numel()])
        return float(2 * STEP_COPIES * largest * self.elsize)

    def layout(self, i: int) -> bool | None:
        """None when node i is not image-like; else whether it is laid out channels-last."""
        if i in self._layouts:
            return self._layouts[i]
        node, op = self.nodes[i], self.ops.get(i)
        if node.kind in ACTIVATIONS or getattr(op, "preserves_layout", False):
            result = self.layout(node.sources[0])
        elif isinstance(op, ConvOp) or (isinstance(op, MaxPoolOp) and not op.global_pool):
            result = op.channels_last
        else:
            result = None
        rank = len(self.shapes[i])
        if result is not None and (rank < 2 or (result and rank != 2)):
            result = None
        self._layouts[i] = result
        return result

    def _identity_form(self, i: int, index: torch.Tensor) -> Form:
        """Rows +e_n (lower bounds) then -e_n (upper bounds) for the neurons ``index``."""
        shape, k = self.shapes[i], index.numel()
        sign = torch.cat([torch.ones(k), -torch.ones(k)]).to(self.lo)
        rows = torch.arange(2 * k, device=index.device)
        last = self.layout(i) if self.patches else None
        if last is None:
            values = self.lo.new_zeros(1, 2 * k, math.prod(shape))
            values[0, rows, index.repeat(2)] = sign
            return Form(values.reshape(1, 2 * k, *shape))
        coords = _unravel(index, shape)
        channel = coords[-1] if last else coords[0]
        spatial = coords[:-1] if last else coords[1:]
        channels, dims = (shape[-1] if last else shape[0]), len(shape) - 1
        values = self.lo.new_zeros(1, 2 * k, channels, *([1] * dims))
        values[(0, rows, channel.repeat(2), *([0] * dims))] = sign
        positions = torch.stack(spatial, 1).repeat(2, 1)
        # every chunk of this node shares one window geometry (windows are kept between them)
        reach = tuple(n - 1 for n in (shape[:-1] if last else shape[1:]))
        window = Window((1,) * dims, (1,) * dims, (0,) * dims)
        return Form(values, window, positions, bool(last), reach)

    # -- backward pass: lower bounds of linear functions of a node ---------------------------
    def backward(self, start: int, form: Form, alphas: dict | None = None) -> torch.Tensor:
        """Lower bound over the input box of every row of ``form`` (on node ``start``): (B, R)."""
        pending: dict[int, Form] = {start: form}
        constant = self.lo.new_zeros(self.lo.shape[0], form.rows)
        for j in range(start, -1, -1):
            f = pending.pop(j, None)
            if f is None:
                continue
            self.budget.deadline.check()
            self.steps["patches" if f.is_patches else "dense"] += 1
            node = self.nodes[j]
            if self._betas is not None and j in self._betas and not f.is_patches:
                f = self._with_split_multipliers(j, f)
            if node.kind == "affine":
                outs, c = self.ops[j].backward(f)
            elif node.kind in ACTIVATIONS:
                outs, c = self._through_activation(j, f, alphas)
            else:
                outs, c = self._through_max(j, f)
            constant = constant + c
            for source, g in zip(node.sources, outs, strict=False):
                shape = self.shape(source)
                pending[source] = add_forms(pending[source], g, shape) if source in pending else g
            live = sum(p.numel for p in pending.values()) + self._kept()
            largest = max([f.numel] + [g.numel for g in outs])
            self._peak = max(self._peak, live + f.numel + STEP_COPIES * largest)
            del f, outs
        on_input = pending.pop(-1, None)
        if on_input is not None:
            box = None
            if on_input.is_patches:
                last = on_input.channels_last
                if last not in self._box:
                    self._box[last] = box_cut(self.lo, self.hi, last, self.allowance)
                box = self._box[last]
            constant = constant + concretize(on_input, self.lo, self.hi, box)
        return constant

    def _with_split_multipliers(self, j: int, form: Form) -> Form:
        """Add ``-beta * phase`` to the coefficients on node j (beta-CROWN, Wang et al. 2021).

        On a domain every split neuron has ``phase * z >= 0``, so for any ``beta >= 0`` the
        bound of ``c @ y - sum(beta * phase * z)`` is also a lower bound of ``c @ y`` there;
        optimizing beta brings the split constraints into the final bound.
        """
        beta = self._betas[j]
        phase = self.splits[j].to(beta.dtype).unsqueeze(1)  # (B, 1, n)
        values = form.values
        term = -(beta * phase).reshape(beta.shape[0], beta.shape[1], *values.shape[2:])
        return form.with_values(values + term)

    def _through_activation(self, j: int, form: Form, alphas: dict | None):
        node = self.nodes[j]
        if self.record and not form.is_patches:
            self.coefficients[j] = form.values.detach()
        alpha = None if alphas is None else alphas.get(j)
        if alpha is not None and alpha.dim() == self.interval(node.sources[0])[0].dim():
            # one slope per neuron shared by every row (patches or dense)
            lo, hi = self.interval(node.sources[0])
            sl, bl, su, bu = relax(node.kind, node.module, lo, hi, alpha)
            bl = None if node.kind in PIECEWISE else bl
            return _single(Diagonal.from_bounds(sl, bl, su, bu).backward(form))
        if alpha is not None and not form.is_patches:
            lo, hi = self.interval(node.sources[0])
            sl, bl, su, bu = relax(node.kind, node.module, lo.unsqueeze(1), hi.unsqueeze(1), alpha)
            if node.kind in PIECEWISE:
                bl = None
            return _single(Diagonal.from_bounds(sl, bl, su, bu, per_row=True).backward(form))
        return _single(self._relaxation(j).backward(form))

    def _relaxation(self, j: int):
        if j not in self._relaxations:
            node = self.nodes[j]
            lo, hi = self.interval(node.sources[0])
            sl, bl, su, bu = relax(node.kind, node.module, lo, hi)
            bl = None if node.kind in PIECEWISE else bl
            self._relaxations[j] = Diagonal.from_bounds(sl, bl, su, bu)
            self._relaxations[j].allowance = self.allowance
        return self._relaxations[j]

    def _through_max(self, j: int, form: Form):
        op = self.ops.get(j)
        if isinstance(op, MaxPoolOp):
            return op.backward(form, *self.interval(self.nodes[j].sources[0]))
        lo, hi = self.bounds[j]
        return [], concretize(form, lo, hi)

    # -- final bounds -------------------------------------------------------------------------
    def linear_lower(self, spec: torch.Tensor, optimize: bool, iterations: int,
                     positive_is_enough: bool = False) -> torch.Tensor:  # fmt: skip
        """Lower bound of spec @ output (output = last node), never looser than IBP.

        ``spec`` is (B or 1, S, *output_shape). With ``positive_is_enough``, slopes are only
        optimized when some CROWN bound is not positive.
        """
        last = len(self.nodes) - 1
        unknown = spec.new_full((self.lo.shape[0], spec.shape[1]), -math.inf)
        try:
            if self.method == "crown" and (positive_is_enough or self.budget.deadline.finite):
                plain = concretize(Form(spec), *self.plain_intervals()[last])
                if positive_is_enough and bool((plain > 0).all()):
                    return plain  # proven by intervals alone
            self.intervals(last)
        except OutOfTime:
            self.budget.note("time limit: not even interval bounds could be finished in time")
            return unknown
        lo, hi = self.bounds[last]
        best = concretize(Form(spec), lo, hi)
        if self.method == "ibp" or self.out_of_time:
            return best.masked_fill(self.infeasible[:, None], math.inf)
        try:
            with torch.no_grad():
                best = torch.maximum(best, self._crown_rows(last, spec))
        except OutOfTime:
            self._ran_out(last)
            return best.masked_fill(self.infeasible[:, None], math.inf)
        if optimize and not (positive_is_enough and bool((best > 0).all())):
            best = torch.maximum(best, self._optimized(last, spec, iterations))
        return best.masked_fill(self.infeasible[:, None], math.inf)

    def _crown_rows(self, last: int, spec: torch.Tensor) -> torch.Tensor:
        batch, rows = self.lo.shape[0], spec.shape[1]
        parts, start = [], 0
        while start < rows:
            per_row = self._row_bytes.get(last, self._conservative_row_bytes(last))
            count = self.budget.rows_that_fit(batch * per_row, self.reserved)
            if count < 1:
                self.budget.note(
                    f"memory budget: output layer {self._describe(last)} kept interval (IBP) bounds"
                )
                parts.append(spec.new_full((batch, rows - start), -math.inf))
                break
            self._peak = 0
            chunk = spec[:, start : start + count]
            parts.append(self.backward(last, Form(chunk)))
            self._row_bytes[last] = max(
                max(self._peak - self._kept(), 0) * self.elsize * SAFETY / (chunk.shape[1] * batch),
                64.0,
            )
            start += chunk.shape[1]
        return torch.cat(parts, 1)

    def _optimized(self, last: int, spec: torch.Tensor, iterations: int) -> torch.Tensor:
        batch, rows = self.lo.shape[0], spec.shape[1]
        relus = [i for i, n in enumerate(self.nodes[: last + 1]) if n.kind in PIECEWISE]
        worst = spec.new_full((batch, rows), -math.inf)
        if not relus:
            return worst
        sizes = [math.prod(s) for s in self.shapes]
        per_row = self.elsize * (6 * sum(sizes[i] for i in relus) + 8 * sum(sizes))
        count = self.budget.rows_that_fit(batch * per_row, self.reserved)
        if count < 1:
            self.budget.note("memory budget: slopes not optimized (CROWN bounds kept)")
            return worst
        parts = []
        for start in range(0, rows, count):
            chunk = spec[:, start : start + count]
            try:
                parts.append(self._optimize_chunk(last, chunk, relus, iterations))
            except OutOfTime:
                self.budget.note("time limit: slope optimization stopped early")
                parts.append(worst[:, start:])
                break
        return torch.cat(parts, 1)[:, :rows]

    def _optimize_chunk(self, last, spec, relus, iterations, stop=math.inf,
                        patience=None) -> torch.Tensor:  # fmt: skip
        rows = spec.shape[1]
        alphas = {}
        for i in relus:
            node = self.nodes[i]
            lo, hi = self.interval(node.sources[0])
            start = default_lower_slope(node.kind, node.module, lo, hi).unsqueeze(1)
            alphas[i] = start.expand(-1, rows, *start.shape[2:]).clone().requires_grad_()
        floors = {i: _slope_floor(self.nodes[i]) for i in alphas}
        betas = {i: torch.zeros(self.lo.shape[0], rows, phases.shape[1], dtype=self.lo.dtype,
                                device=self.lo.device, requires_grad=True)
                 for i, phases in self.splits.items() if bool((phases != 0).any())}  # fmt: skip
        self._betas = betas or None
        try:
            return self._optimize_steps(last, spec, alphas, floors, betas, iterations, stop,
                                        patience)  # fmt: skip
        finally:
            self._betas = None

    def _optimize_steps(self, last, spec, alphas, floors, betas, iterations,
                        stop=math.inf, patience=None) -> torch.Tensor:  # fmt: skip
        """Best bound over ``iterations`` Adam steps on the slopes (and multipliers). The
        steps also end when ``stop`` (a ``time.monotonic()`` time) passes, and with
        ``patience`` after that many steps that barely improve the bounds (the best bound
        seen is returned either way)."""
        rows = spec.shape[1]
        params = list(alphas.values()) + list(betas.values())
        adam = _Adam(params, lr=0.1)
        best = spec.new_full((self.lo.shape[0], rows), -math.inf)
        stalled = 0
        with torch.enable_grad():
            for step in range(iterations):
                if step and (time.monotonic() >= stop or (patience and stalled >= patience)):
                    break
                try:
                    bound = self.backward(last, Form(spec), alphas)
                except OutOfTime:
                    if bool(torch.isfinite(best).any()):
                        self.budget.note("time limit: slope optimization stopped early")
                        return best
                    raise
                gain = (bound.detach() - best).clamp_min(0).nan_to_num(posinf=1.0).mean()
                scale = 1e-3 * (1 + best.abs().nan_to_num(posinf=0.0).mean())
                stalled = 0 if bool(gain > scale) else stalled + 1
                best = torch.maximum(best, bound.detach())
                # gradients for the slopes only: the network's own .grad stays untouched
                grads = torch.autograd.grad(-bound.sum(), params, allow_unused=True)
                adam.step(grads)
                with torch.no_grad():
                    for i, alpha in alphas.items():
                        alpha.clamp_(floors[i], 1.0)
                    for beta in betas.values():
                        beta.clamp_(min=0.0)
        return best


class _Adam:
    """Adam (Kingma and Ba, 2015) for the slopes. torch.optim.Adam is not used: its first
    step imports torch._dynamo, which takes seconds that a time limit cannot interrupt."""

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        self.params, self.lr, self.betas, self.eps, self.steps = params, lr, betas, eps, 0
        self.moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]

    @torch.no_grad()
    def step(self, grads) -> None:
        self.steps += 1
        b1, b2 = self.betas
        for p, g, (m, v) in zip(self.params, grads, self.moments, strict=True):
            if g is None:
                continue
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            size = self.lr / (1 - b1**self.steps)
            denominator = (v / (1 - b2**self.steps)).sqrt_().add_(self.eps)
            p.addcdiv_(m, denominator, value=-size)


def _unravel(index: torch.Tensor, shape) -> list[torch.Tensor]:
    """Coordinates of flat indices (torch.unravel_index imports sympy: seconds, once)."""
    coords = []
    for size in reversed(shape):
        coords.append(index % size)
        index = index // size
    return coords[::-1]


def _single(result):
    form, constant = result
    return [form], constant


def _slope_floor(node) -> float:
    return 0.0 if node.kind == "relu" else leaky_slope(node.module)


def _size(value: float) -> str:
    if value >= 2**30:
        return f"{value / 2**30:.1f} GB"
    return f"{value / 2**20:.1f} MB" if value >= 2**20 else f"{value / 2**10:.0f} KB"


def _forward_interval(node, ins):
    lows, highs = [i[0] for i in ins], [i[1] for i in ins]
    if node.kind == "affine":
        return affine_interval(node.module, lows, highs)
    if node.kind == "softmax":
        return softmax_interval(node.module, lows[0], highs[0])
    return node.module(lows[0]), node.module(highs[0])  # monotone layers
