"""Sound output bounds over input boxes: interval bound propagation (IBP) and CROWN.

CROWN (Zhang et al., 2018, "Efficient Neural Network Robustness Certification with General
Activation Functions") propagates linear bounds backwards through the graph: each activation is
replaced by a linear lower and upper bound valid on its pre-activation interval; affine layers
are passed through exactly (convolutions as transposed convolutions of the coefficients, kept
as patches while they cover less than the image; see ``_crown`` and ``_ops``). Pre-activation
intervals are themselves computed with CROWN, for the neurons whose relaxation needs them, and
intersected with IBP, so CROWN is never looser than IBP. With ``optimize_slopes=True`` the
lower slopes of unstable ReLUs are optimized by gradient ascent on the bounds (alpha-CROWN,
Xu et al., 2021), for the bounds of every intermediate layer (greedily, layer by layer) and
of the outputs; every slope in [0, 1] is sound, and the best bound seen for each neuron is
kept. The work is planned within a memory budget and stops at a deadline (``_budget``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from deeptoolbox._deprecation import renamed_arguments
from deeptoolbox.data._adapter import input_tensor
from deeptoolbox.errors import OptionError
from deeptoolbox.robustness._budget import (
    Budget,
    Deadline,
    Progress,
    default_max_memory,
    element_size,
    parse_memory,
)
from deeptoolbox.robustness._crown import Propagator, bytes_per_box, node_shapes
from deeptoolbox.robustness._graph import Graph, to_graph
from deeptoolbox.robustness._relax import softmax_interval

__all__ = ["OutputBounds", "estimate_output_bounds", "make_budget", "lower_bound_of"]

OPTIMIZE_SLOPES = False  # the default of estimate_output_bounds and verify_robustness alike


@dataclass
class OutputBounds:
    """Guaranteed lower and upper bounds of every network output over a batch of input boxes.

    ``notes`` lists what the engine had to give up to stay within the memory budget or the
    time limit (for instance "node 'conv_3' kept interval (IBP) bounds"); the bounds are
    sound either way, only looser.

    Example:
        >>> import torch
        >>> b = OutputBounds(torch.zeros(1, 2), torch.ones(1, 2), "ibp")
        >>> b.width.tolist(), b.contains(torch.full((1, 2), 0.5)).tolist()
        ([[1.0, 1.0]], [True])
    """

    lower: torch.Tensor
    upper: torch.Tensor
    method: str
    notes: list[str] = field(default_factory=list)

    @property
    def width(self) -> torch.Tensor:
        """``upper - lower``."""
        return self.upper - self.lower

    def contains(self, outputs: torch.Tensor, tolerance: float = 0.0) -> torch.Tensor:
        """Per box, True when every output of ``outputs`` (same size) lies within the bounds."""
        inside = (outputs >= self.lower - tolerance) & (outputs <= self.upper + tolerance)
        return inside.flatten(1).all(dim=1)


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
    names = ("x", "x") if lower is upper else ("lower", "upper")  # the x ± epsilon form
    lower = input_tensor(lower, f"{where}: `{names[0]}`")  # any form the toolbox reads
    upper = input_tensor(upper, f"{where}: `{names[1]}`")
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


def make_budget(
    where: str, max_memory, time_limit, device: torch.device, *, start: float | None = None
) -> Budget:
    """A :class:`Budget` from user options (``max_memory`` None: 40% of the free memory)."""
    if time_limit is not None and (
        isinstance(time_limit, bool) or not isinstance(time_limit, int | float) or time_limit <= 0
    ):
        raise OptionError(
            f"{where}: `timeout` (formerly `time_limit`) must be a positive number of seconds "
            f"or None. Received: timeout={time_limit!r}."
        )
    memory = parse_memory(max_memory, where)
    memory = default_max_memory(device) if memory is None else memory
    return Budget(memory, Deadline(time_limit, start))


@renamed_arguments({"time_limit": "timeout", "iterations": "steps"})
def estimate_output_bounds(
    net: torch.nn.Module,
    lower: torch.Tensor,
    upper: torch.Tensor,
    *,
    method: str = "crown",
    optimize_slopes: bool = OPTIMIZE_SLOPES,
    steps: int = 20,
    max_memory: int | str | None = None,
    timeout: float | None = None,
    verbose: bool | None = None,
) -> OutputBounds:
    """Guaranteed bounds of every output of ``net`` for inputs anywhere in a box.

    ``lower`` and ``upper`` are a batch of input boxes shaped like the network's input (a single
    box without batch dimension works too). ``method="ibp"`` propagates intervals (fast, loose);
    ``"crown"`` propagates linear bounds backwards (tighter, never looser than IBP);
    ``optimize_slopes=True`` also optimizes the ReLU lower slopes for ``steps`` gradient steps
    (default False, as in :func:`verify_robustness`).
    Works on Networks (or ``nn.Sequential``) of Dense, convolution, BatchNorm, pooling,
    activation, Flatten, Reshape, Addition and Concatenation layers; a final Softmax is bounded
    too. Other layers raise :class:`UnsupportedLayerError` naming them.

    ``max_memory`` (bytes, or a size such as ``"2GB"``; default 40% of the memory free on the
    network's device) caps the working memory: boxes and neurons are bounded in chunks that
    fit, and layers that would not fit even alone keep their interval bounds. ``timeout``
    (seconds for the whole call, default none) stops CROWN when reached; the remaining layers get interval
    bounds. Both are reported in ``notes`` of the result; the bounds are sound either way.
    ``verbose`` prints progress on stderr (None: only for runs longer than a few seconds).
    Deprecated names (they still work, with a DeprecationWarning): ``time_limit`` for
    ``timeout``, ``iterations`` for ``steps``.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(8), L.ReLU(), L.Dense(2)])
        >>> b = estimate_output_bounds(net, -torch.ones(1, 2), torch.ones(1, 2))
        >>> bool((b.lower <= net(torch.zeros(1, 2))).all()), b.lower.shape, b.notes
        (True, torch.Size([1, 2]), [])
    """
    started = time.monotonic()
    _check_method(method)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise OptionError(
            f"estimate_output_bounds: `steps` must be a positive int. Received: steps={steps!r}."
        )
    graph = to_graph(net)
    graph.check_supported()
    lo, hi = prepare_box(net, lower, upper, "estimate_output_bounds")
    budget = make_budget("estimate_output_bounds", max_memory, timeout, lo.device,
                         start=started)  # fmt: skip
    budget.progress = Progress("estimate_output_bounds", verbose)
    was_training = net.training
    net.eval()
    try:
        return _output_bounds(graph, lo, hi, method, optimize_slopes, steps, budget)
    finally:
        net.train(was_training)


def _output_bounds(graph, lo, hi, method, optimize, iterations, budget) -> OutputBounds:
    core = graph.without_softmax()
    shape = node_shapes(core, lo)[-1]
    size = math.prod(shape)
    eye = torch.eye(size, dtype=lo.dtype, device=lo.device)
    spec = torch.cat([eye, -eye]).reshape(1, 2 * size, *shape)
    bound = lower_bound_of(core, lo, hi, spec, method, optimize, iterations, budget,
                           intermediate=True)  # fmt: skip
    low = bound[:, :size].reshape(-1, *shape)
    high = (-bound[:, size:]).reshape(-1, *shape)
    if graph.ends_in_softmax:
        low, high = softmax_interval(graph.nodes[-1].module, low, high)
    return OutputBounds(low, high, method, list(budget.notes))


def box_group_size(graph: Graph, lo: torch.Tensor, budget: Budget, optimize: bool) -> int:
    """How many boxes to bound together so that their stored bounds and work fit the budget."""
    shapes = node_shapes(graph, lo)
    per_box = bytes_per_box(shapes, lo[0].numel(), element_size(lo.dtype), optimize)
    return int(max(1, min(lo.shape[0], budget.max_memory // per_box)))


def lower_bound_of(
    graph: Graph,
    lo: torch.Tensor,
    hi: torch.Tensor,
    spec: torch.Tensor,
    method: str,
    optimize: bool = False,
    iterations: int = 20,
    budget: Budget | None = None,
    positive_is_enough: bool = False,
    intermediate: bool = False,
    known: list | None = None,
    keep: list | None = None,
    outputs_first: bool = False,
) -> torch.Tensor:
    """Lower bounds of ``spec @ logits`` per box: spec is (B or 1, S, *output_shape).

    Boxes are bounded in groups that fit ``budget`` (default: 40% of the free memory, no
    deadline); what was given up is added to ``budget.notes``. With ``positive_is_enough``,
    slopes are not optimized for a group whose CROWN bounds are all positive already. With
    ``optimize`` and ``intermediate``, the slopes are optimized for the bounds of every
    intermediate layer too (alpha-CROWN, greedily layer by layer), not only for the result
    (with ``outputs_first``, after optimizing the result's slopes alone, for the groups that
    this does not prove; the result is then never looser than that first step's).
    ``known`` (one ``(lower, upper)`` per node, batch B or 1 for a box holding every box, as
    branch and bound's root) are sound bounds intersected with the new ones. ``keep`` (an
    empty list) receives the bounds of every node (batch B) when all were computed.
    """
    budget = Budget(default_max_memory(lo.device)) if budget is None else budget
    group = box_group_size(graph, lo, budget, optimize)
    parts, kept = [], []
    for start in range(0, lo.shape[0], group):
        box = slice(start, start + group)
        rows = spec if spec.shape[0] == 1 else spec[box]
        steps = iterations if optimize and intermediate and method == "crown" else 0
        given = _known_for(known, box)
        propagator = Propagator(graph, lo[box], hi[box], method, budget, known=given)
        if budget.progress is not None:
            report = budget.progress

            end = min(lo.shape[0], start + group)
            where = "" if group >= lo.shape[0] else f", boxes {start + 1}-{end}"

            def on_layer(done, total, report=report, where=where):
                report.update(done, total, "layers" + where)

            propagator.on_layer = on_layer
        rows = rows.reshape(rows.shape[0], rows.shape[1], *propagator.shapes[-1])
        if not steps:
            bound = propagator.linear_lower(rows, optimize, iterations, positive_is_enough)
            parts.append(bound.detach())
            kept.append(propagator.bounds)
            continue
        # alpha-CROWN on every layer, on top of plain CROWN (whose bounds it intersects, so
        # that no layer and no output is looser than plain CROWN); not when CROWN suffices.
        # With outputs_first, the cheaper outputs-only alpha-CROWN comes first: what it
        # proves costs no more, and the result is never looser than it
        bound = propagator.linear_lower(rows, outputs_first, iterations,
                                        positive_is_enough).detach()  # fmt: skip
        kept.append(propagator.bounds)
        if (positive_is_enough and bool((bound > 0).all())) or propagator.out_of_time:
            parts.append(bound)
            continue
        complete = len(propagator.bounds) == len(propagator.nodes)
        optimized = Propagator(graph, lo[box], hi[box], method, budget, alpha_steps=steps,
                               known=propagator.bounds if complete else given)  # fmt: skip
        optimized.on_layer = propagator.on_layer
        better = optimized.linear_lower(rows, optimize, iterations, positive_is_enough)
        parts.append(torch.maximum(bound, better.detach()))
        if len(optimized.bounds) == len(optimized.nodes):
            kept[-1] = optimized.bounds
    if keep is not None and all(len(k) == len(graph.nodes) for k in kept):
        keep.extend(
            tuple(torch.cat([k[i][side].detach() for k in kept]) for side in (0, 1))
            for i in range(len(graph.nodes))
        )
    return torch.cat(parts)


def _known_for(known: list | None, box: slice) -> list | None:
    """The known bounds of one group of boxes (those of batch 1 hold for every box)."""
    if known is None:
        return None
    return [(l_ if l_.shape[0] == 1 else l_[box], h if h.shape[0] == 1 else h[box])
            for l_, h in known]  # fmt: skip
