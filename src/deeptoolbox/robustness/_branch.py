"""Input-splitting branch and bound: split a box along its widest input until decided.

Best for low-dimensional inputs (tabular data, controllers): each box is bounded with CROWN;
boxes that are not proven are split in two, until every piece is proven, the center of a piece
violates the property, or the time or the number of boxes runs out.
"""

from __future__ import annotations

import time

import torch

from deeptoolbox.robustness._bounds import lower_bound_of
from deeptoolbox.robustness._budget import Budget, Deadline, Progress, default_max_memory
from deeptoolbox.robustness._graph import Graph, to_graph  # noqa: F401 (doctest)

__all__ = ["split_and_bound"]


def split_and_bound(
    graph: Graph,
    lo: torch.Tensor,
    hi: torch.Tensor,
    spec: torch.Tensor,
    *,
    offset: torch.Tensor | None = None,
    groups: torch.Tensor | None = None,
    deadline: float,
    method: str = "crown",
    batch: int = 128,
    max_boxes: int = 200_000,
    budget: Budget | None = None,
    progress: Progress | None = None,
    root: list | None = None,
):
    """Input-splitting branch and bound for one box against unsafe output regions.

    Row ``r`` of ``spec`` (S, K) with ``offset`` (S,) is the function ``spec[r] @ y + offset[r]``
    of the logits ``y``; ``groups`` (S,) assigns rows to unsafe regions, each region being the
    set where all of its rows are <= 0 (default: each row its own region). Returns
    ``("verified", None)`` when no input in the box reaches a region, ``("violated", point)``
    with an input that does, or ``("unproven", None)`` when time or the box budget runs out.
    ``deadline`` is a ``time.monotonic()`` time; ``budget`` gives the memory budget (its own
    deadline is replaced by ``deadline``) and collects notes; ``progress`` reports boxes.
    ``root`` (one ``(lower, upper)`` per node, batch 1: bounds over the whole box, such as
    alpha-CROWN's) is intersected with every piece's bounds, which hold on each piece too.

    Example:
        >>> import time, torch
        >>> g = to_graph(torch.nn.Sequential(torch.nn.Identity()))
        >>> split_and_bound(g, torch.zeros(1), torch.ones(1), torch.tensor([[1.0]]),
        ...                 offset=torch.tensor([0.5]), deadline=time.monotonic() + 5)
        ('verified', None)
    """
    rows = spec.shape[0]
    offset = torch.zeros(rows, dtype=spec.dtype, device=spec.device) if offset is None else offset
    groups = torch.arange(rows, device=spec.device) if groups is None else groups
    count = int(groups.max()) + 1
    sizes = torch.zeros(count, device=spec.device).index_add_(
        0, groups, torch.ones(rows, device=spec.device)
    )
    queue_lo, queue_hi = lo.unsqueeze(0), hi.unsqueeze(0)
    memory = default_max_memory(lo.device) if budget is None else budget.max_memory
    notes = [] if budget is None else budget.notes
    bounding = Budget(memory, Deadline(deadline - time.monotonic()), notes)
    processed = 0
    while queue_lo.shape[0]:
        if time.monotonic() > deadline or processed > max_boxes:
            return "unproven", None
        if progress is not None:
            progress.update(processed, processed + queue_lo.shape[0], "boxes split and bounded")
        b_lo, b_hi = queue_lo[:batch], queue_hi[:batch]
        queue_lo, queue_hi = queue_lo[batch:], queue_hi[batch:]
        processed += b_lo.shape[0]
        centers = (b_lo + b_hi) / 2
        with torch.no_grad():
            values = graph(centers).flatten(1) @ spec.T + offset
        reached = _per_group((values <= 0).float(), groups, count) == sizes
        if bool(reached.any()):
            return "violated", centers[reached.any(dim=1).nonzero()[0, 0]]
        bounds = lower_bound_of(graph, b_lo, b_hi, spec[None], method, budget=bounding,
                                known=root)  # fmt: skip
        safe = (_per_group((bounds + offset > 0).float(), groups, count) > 0).all(dim=1)
        open_ = ~safe
        if not bool(open_.any()):
            continue
        left_hi, right_lo = _split(b_lo[open_], b_hi[open_])
        queue_lo = torch.cat([queue_lo, b_lo[open_], right_lo])
        queue_hi = torch.cat([queue_hi, left_hi, b_hi[open_]])
    return "verified", None


def _per_group(flags: torch.Tensor, groups: torch.Tensor, count: int) -> torch.Tensor:
    out = torch.zeros(flags.shape[0], count, dtype=flags.dtype, device=flags.device)
    return out.index_add_(1, groups, flags)


def _split(lo: torch.Tensor, hi: torch.Tensor):
    """Split each box in two along its widest dimension: returns (left upper, right lower)."""
    flat_lo, flat_hi = lo.flatten(1), hi.flatten(1)
    axis = (flat_hi - flat_lo).argmax(dim=1, keepdim=True)
    middle = (flat_lo.gather(1, axis) + flat_hi.gather(1, axis)) / 2
    left_hi = flat_hi.scatter(1, axis, middle).reshape(hi.shape)
    right_lo = flat_lo.scatter(1, axis, middle).reshape(lo.shape)
    return left_hi, right_lo
