"""Branch and bound on ReLU activations: split unstable neurons' phases until decided.

Splitting the input box only pays for low-dimensional inputs; for images and other wide
inputs the bounds are loose because of the ReLUs whose pre-activation interval contains 0
(unstable neurons). A *domain* here is the input box restricted to the inputs where chosen
neurons are active (``z >= 0``) or inactive (``z <= 0``); on a domain those neurons are exact
linear maps, so CROWN's bounds get tighter, and the split constraints enter the bound through
optimized Lagrange multipliers (beta-CROWN, Wang et al., 2021). Domains are bounded in batches (the intervals of
split neurons are clipped to their phase, see ``Propagator.splits``; a domain whose clipped
interval is empty has no input and is proven at once). The neuron to split is chosen by a
BaBSR-style score (Bunel et al., 2020): the loosening that its upper relaxation's intercept
``-l u / (u - l)`` brings into the bound of the property, weighted by the coefficient the
backward pass met at that neuron. The two domains of a split cover the parent, so the
search is sound: "verified" means every domain was proven.
"""

from __future__ import annotations

import math
import time

import torch

from deeptoolbox.errors import OutOfTime
from deeptoolbox.robustness._bounds import box_group_size
from deeptoolbox.robustness._budget import Budget, Deadline, Progress, default_max_memory
from deeptoolbox.robustness._crown import PIECEWISE, Propagator, node_shapes
from deeptoolbox.robustness._graph import Graph, to_graph  # noqa: F401 (doctest)

__all__ = ["relu_split_and_bound"]


def relu_split_and_bound(
    graph: Graph,
    lo: torch.Tensor,
    hi: torch.Tensor,
    spec: torch.Tensor,
    *,
    offset: torch.Tensor | None = None,
    groups: torch.Tensor | None = None,
    deadline: float,
    batch: int = 64,
    max_domains: int = 100_000,
    optimize: bool = True,
    steps: int = 8,
    budget: Budget | None = None,
    progress: Progress | None = None,
    root: list | None = None,
    stats: dict | None = None,
):
    """Branch and bound on ReLU phases for one box against unsafe output regions.

    Arguments as :func:`split_and_bound` (``spec`` (S, K) rows, ``offset``, ``groups`` of rows
    that form one unsafe region, ``deadline`` a ``time.monotonic()`` time). ``batch`` domains
    are bounded together; ``optimize`` (default) optimizes ReLU slopes and the split
    constraints' multipliers (alpha- and beta-CROWN) for ``steps`` steps on each batch.
    Returns ``("verified", None)`` when no input of the box reaches a region, else
    ``("unproven", None)`` (time or domains ran out, or a domain has no unstable neuron left).
    ``root`` (one ``(lower, upper)`` per node, batch 1: the box's own bounds, such as
    alpha-CROWN's from :func:`lower_bound_of` ``keep=``) is intersected with every domain's
    bounds, so branching starts from them: fewer unstable neurons, tighter relaxations.
    ``stats`` (a dict) receives ``"domains"``, the number of domains bounded.

    Example:
        >>> import time, torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 1))
        >>> with torch.no_grad():  # |x| as relu(x) + relu(-x)
        ...     _ = net[0].weight.copy_(torch.tensor([[1.0], [-1.0]])), net[0].bias.zero_()
        ...     _ = net[2].weight.fill_(1.0), net[2].bias.zero_()
        >>> g = to_graph(net)  # prove |x| >= -0.1 on [-1, 1]: row y + 0.1 > 0
        >>> relu_split_and_bound(g, -torch.ones(1), torch.ones(1), torch.tensor([[1.0]]),
        ...                      offset=torch.tensor([0.1]), deadline=time.monotonic() + 5)
        ('verified', None)
    """
    rows = spec.shape[0]
    offset = spec.new_zeros(rows) if offset is None else offset
    groups = torch.arange(rows, device=spec.device) if groups is None else groups
    count = int(groups.max()) + 1
    split_nodes = _split_nodes(graph)
    if not split_nodes:
        return "unproven", None
    shapes = node_shapes(graph, lo[None])
    queue = {i: torch.zeros(1, math.prod(shapes[i]), dtype=torch.int8) for i in split_nodes}
    memory = default_max_memory(lo.device) if budget is None else budget.max_memory
    notes = [] if budget is None else budget.notes
    bounding = Budget(memory, Deadline(deadline - time.monotonic()), notes)
    take_at_most = max(1, min(batch, box_group_size(graph, lo[None].expand(batch, *lo.shape),
                                                    bounding, optimize)))  # fmt: skip
    processed = 0
    while _size(queue):
        if time.monotonic() > deadline or processed > max_domains:
            return "unproven", None
        if progress is not None:
            progress.update(processed, processed + _size(queue), "ReLU domains bounded")
        take = min(take_at_most, _size(queue))
        chunk = {i: q[-take:] for i, q in queue.items()}  # depth first: newest domains
        queue = {i: q[:-take] for i, q in queue.items()}
        processed += take
        if stats is not None:
            stats["domains"] = processed
        outcome = _bound_domains(graph, lo, hi, spec, offset, groups, count, chunk, bounding,
                                 optimize, steps, root)  # fmt: skip
        if outcome is None:
            return "unproven", None
        open_, choice = outcome
        if not bool(open_.any()):
            continue
        if bool((choice[0][open_] < 0).any()):
            return "unproven", None  # a domain with nothing left to split
        queue = _push_children(queue, chunk, open_, choice)
    return "verified", None


def _split_nodes(graph: Graph) -> list[int]:
    """Indices of the nodes that feed a ReLU (or leaky ReLU): the neurons that can be split."""
    found = []
    for node in graph.nodes:
        source = node.sources[0] if node.sources else -1
        if node.kind in PIECEWISE and source >= 0 and source not in found:
            found.append(source)
    return found


def _size(queue: dict) -> int:
    return next(iter(queue.values())).shape[0]


def _bound_domains(graph, lo, hi, spec, offset, groups, count, chunk, budget, optimize, steps,
                   root=None):  # fmt: skip
    """(open domains, (node, neuron) to split for each) or None when out of time."""
    take = _size(chunk)
    b_lo = lo.unsqueeze(0).expand(take, *lo.shape).contiguous()
    b_hi = hi.unsqueeze(0).expand(take, *hi.shape).contiguous()
    splits = {i: phases.to(lo.device) for i, phases in chunk.items()}
    try:
        prop = Propagator(graph, b_lo, b_hi, "crown", budget, splits=splits, record=True,
                          known=root)  # fmt: skip
        rows = spec.reshape(1, spec.shape[0], *prop.shapes[-1])
        bounds = prop.linear_lower(rows, optimize, steps)
    except OutOfTime:
        return None
    if prop.out_of_time or len(prop.bounds) < len(prop.nodes):
        return None
    values = bounds + offset
    proven = torch.zeros(take, count, device=lo.device).index_add_(1, groups, (values > 0).float())
    open_ = ~(proven > 0).all(1)
    return open_, _choose(prop, splits, values, groups, count)


def _choose(prop: Propagator, splits: dict, values: torch.Tensor, groups, count):
    """For each domain, the (node, neuron) with the best BaBSR-style score (-1, -1: none)."""
    weights = _row_weights(values, groups, count)
    consumer = {n.sources[0]: j for j, n in enumerate(prop.nodes)
                if n.kind in PIECEWISE and n.sources}  # fmt: skip
    best = values.new_full((values.shape[0],), -math.inf)
    node = torch.full((values.shape[0],), -1, dtype=torch.long)
    neuron = torch.full((values.shape[0],), -1, dtype=torch.long)
    for i, phases in splits.items():
        lo, hi = (t.flatten(1) for t in prop.bounds[i])
        free = (lo < 0) & (hi > 0) & (phases == 0)
        intercept = (-lo * hi / (hi - lo).clamp_min(1e-12)).clamp_min(0)
        coefficient = prop.coefficients.get(consumer[i])
        if coefficient is not None and coefficient.shape[1] == weights.shape[1]:
            a = (coefficient.flatten(2) * weights[:, :, None]).sum(1)
            score = (-a).clamp_min(0) * intercept + 1e-3 * a.abs() * intercept
        else:
            score = 1e-6 * intercept
        score = torch.where(free, score + 1e-9 * (hi - lo), -math.inf).cpu()
        value, index = score.max(1)
        better = value > best
        best = torch.where(better, value, best.cpu())
        node[better], neuron[better] = i, index[better]
    node[~torch.isfinite(best)] = -1
    return node, neuron


def _row_weights(values: torch.Tensor, groups: torch.Tensor, count: int) -> torch.Tensor:
    """1 for the best (largest lower bound) row of each region not proven yet, else 0."""
    weights = torch.zeros_like(values)
    for g in range(count):
        members = (groups == g).nonzero().flatten()
        part = values[:, members]
        unproven = ~(part > 0).any(1)
        pick = members[part.argmax(1)]
        weights[unproven, pick[unproven]] = 1.0
    return weights


def _push_children(queue: dict, chunk: dict, open_: torch.Tensor, choice) -> dict:
    node, neuron = choice
    parents = open_.nonzero().flatten().cpu()
    for i, phases in chunk.items():
        kept = phases[parents]
        active, inactive = kept.clone(), kept.clone()
        here = (node[parents] == i).nonzero().flatten()
        active[here, neuron[parents][here]] = 1
        inactive[here, neuron[parents][here]] = -1
        queue[i] = torch.cat([queue[i], inactive, active])
    return queue
