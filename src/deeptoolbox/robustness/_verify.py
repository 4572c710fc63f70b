"""Robustness verification: prove that no input within epsilon changes the class, or find one.

For each observation the margins ``logit[label] - logit[j]`` (j != label) are bounded over the
input box; when every margin's lower bound is positive the observation is *verified*. An attack
runs first, so observations with a counterexample are *violated* (the counterexample is
returned). With ``branch_and_bound=True`` unproven boxes are split along their widest input
dimension until they are all proven, a sampled point violates the property, or the time limit
per observation runs out (best for low-dimensional inputs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from deeptoolbox.errors import OptionError
from deeptoolbox.robustness._attacks import find_adversarial
from deeptoolbox.robustness._bounds import lower_bound_of, prepare_box
from deeptoolbox.robustness._graph import Graph, to_graph

__all__ = ["VerificationResult", "verify_robustness", "split_and_bound"]

STATUSES = ("verified", "violated", "unproven")


@dataclass
class VerificationResult:
    """Per-observation outcome of :func:`verify_robustness`.

    Attributes:
        status: "verified", "violated" or "unproven" for each observation.
        counterexamples: an input that changes the class where "violated", NaN elsewhere.
        margin_lower_bounds: lower bound of logit[label] - max other logit over the box
            (from bounds over the whole box; positive means verified).
        seconds: time spent on each observation.

    Example:
        >>> import torch
        >>> r = VerificationResult(["verified", "violated"], torch.zeros(2, 1),
        ...                        torch.tensor([0.1, -0.2]), [0.0, 0.0])
        >>> r.counts
        {'verified': 1, 'violated': 1, 'unproven': 0}
    """

    status: list[str]
    counterexamples: torch.Tensor
    margin_lower_bounds: torch.Tensor
    seconds: list[float]

    @property
    def counts(self) -> dict[str, int]:
        """How many observations got each status."""
        return {s: self.status.count(s) for s in STATUSES}


def margin_spec(labels: torch.Tensor, num_classes: int, dtype) -> torch.Tensor:
    """(N, K-1, K) rows e_label - e_j for every j != label.

    Example:
        >>> margin_spec(torch.tensor([1]), 3, torch.float32).tolist()
        [[[-1.0, 1.0, 0.0], [0.0, 1.0, -1.0]]]
    """
    eye = torch.eye(num_classes, dtype=dtype, device=labels.device)
    rows = []
    for label in labels.tolist():
        others = [j for j in range(num_classes) if j != label]
        rows.append(eye[label].unsqueeze(0) - eye[others])
    return torch.stack(rows)


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
):
    """Input-splitting branch and bound for one box against unsafe output regions.

    Row ``r`` of ``spec`` (S, K) with ``offset`` (S,) is the function ``spec[r] @ y + offset[r]``
    of the logits ``y``; ``groups`` (S,) assigns rows to unsafe regions, each region being the
    set where all of its rows are <= 0 (default: each row its own region). Returns
    ``("verified", None)`` when no input in the box reaches a region, ``("violated", point)``
    with an input that does, or ``("unproven", None)`` when time or the box budget runs out.

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
    processed = 0
    while queue_lo.shape[0]:
        if time.monotonic() > deadline or processed > max_boxes:
            return "unproven", None
        b_lo, b_hi = queue_lo[:batch], queue_hi[:batch]
        queue_lo, queue_hi = queue_lo[batch:], queue_hi[batch:]
        processed += b_lo.shape[0]
        centers = (b_lo + b_hi) / 2
        with torch.no_grad():
            values = graph(centers).flatten(1) @ spec.T + offset
        reached = _per_group((values <= 0).float(), groups, count) == sizes
        if bool(reached.any()):
            return "violated", centers[reached.any(dim=1).nonzero()[0, 0]]
        bounds = lower_bound_of(graph, b_lo, b_hi, spec.expand(b_lo.shape[0], -1, -1), method)
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


def _check_options(epsilon, time_limit, method) -> None:
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or epsilon < 0:
        raise OptionError(
            f"verify_robustness: `epsilon` must be a number >= 0. Received: epsilon={epsilon!r}."
        )
    if time_limit is not None and (not isinstance(time_limit, int | float) or time_limit <= 0):
        raise OptionError(
            "verify_robustness: `time_limit` must be a positive number of seconds or None. "
            f"Received: time_limit={time_limit!r}."
        )
    if method not in ("ibp", "crown"):
        raise OptionError(
            f"verify_robustness: `method` must be 'ibp' or 'crown'. Received: method={method!r}."
        )


def verify_robustness(
    net: torch.nn.Module,
    x: torch.Tensor,
    label,
    epsilon: float,
    *,
    input_range: tuple[float, float] | None = None,
    method: str = "crown",
    optimize_slopes: bool = True,
    attack: bool = True,
    branch_and_bound: bool = False,
    time_limit: float | None = 10.0,
) -> VerificationResult:
    """Prove that no L-inf perturbation up to ``epsilon`` changes the class of each observation.

    Each observation of ``x`` gets "verified" (proven for the whole box ``x ± epsilon``,
    clipped to ``input_range``), "violated" (a counterexample was found and is returned) or
    "unproven". A final softmax is removed: margins are taken on the logits. ``attack=True``
    runs PGD first; ``branch_and_bound=True`` splits the input box of unproven observations
    until ``time_limit`` seconds per observation (worth it for low-dimensional inputs).

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(2)])
        >>> with torch.no_grad():
        ...     _ = net.layer("dense_1").weight.copy_(torch.eye(2))
        >>> verify_robustness(net, torch.tensor([[1.0, 0.0]]), [0], 0.1).status
        ['verified']
    """
    _check_options(epsilon, time_limit, method)
    graph = to_graph(net).without_softmax()
    graph.check_supported()
    lo, hi = prepare_box(net, x, x, "verify_robustness")
    x0 = lo
    lo, hi = lo - epsilon, hi + epsilon
    if input_range is not None:
        lo, hi = lo.clamp(*input_range), hi.clamp(*input_range)
    labels = torch.as_tensor(label, device=x0.device).long().reshape(-1)
    if labels.numel() == 1 and x0.shape[0] > 1:
        labels = labels.expand(x0.shape[0])
    was_training = net.training
    net.eval()
    try:
        return _verify(net, graph, x0, lo, hi, labels, epsilon, input_range, method,
                       optimize_slopes, attack, branch_and_bound, time_limit)  # fmt: skip
    finally:
        net.train(was_training)


def _verify(net, graph, x0, lo, hi, labels, epsilon, input_range, method, optimize, attack,
            branch_and_bound, time_limit) -> VerificationResult:  # fmt: skip
    n = x0.shape[0]
    started = time.monotonic()
    with torch.no_grad():
        logits = graph(x0)
    k = logits.shape[1]
    if labels.numel() != n or bool(((labels < 0) | (labels >= k)).any()):
        raise OptionError(
            f"verify_robustness: `label` must hold {n} class indices in [0, {k - 1}]. "
            f"Received: {labels.tolist()}."
        )
    status = ["unproven"] * n
    counter = torch.full_like(x0, float("nan"))
    wrong = logits.argmax(1) != labels
    counter[wrong] = x0[wrong]
    if attack and epsilon > 0:
        found = find_adversarial(net, x0, labels, epsilon, method="pgd", steps=20,
                                 input_range=input_range)  # fmt: skip
        hit = found.success & ~wrong
        counter[hit] = found.inputs[hit]
        wrong = wrong | hit
    for i in wrong.nonzero().flatten().tolist():
        status[i] = "violated"
    spec = margin_spec(labels, k, x0.dtype)
    margins = lower_bound_of(graph, lo, hi, spec, method, optimize)
    shared = (time.monotonic() - started) / n
    seconds = [shared] * n
    for i in range(n):
        if status[i] == "violated":
            continue
        if bool((margins[i] > 0).all()):
            status[i] = "verified"
        elif branch_and_bound:
            begin = time.monotonic()
            deadline = begin + (time_limit if time_limit is not None else float("inf"))
            outcome, point = split_and_bound(graph, lo[i], hi[i], spec[i], deadline=deadline,
                                             method=method)  # fmt: skip
            status[i] = outcome
            if point is not None:
                counter[i] = point
            seconds[i] += time.monotonic() - begin
    return VerificationResult(status, counter.detach(), margins.amin(1).detach(), seconds)
