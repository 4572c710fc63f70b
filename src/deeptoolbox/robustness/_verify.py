"""Robustness verification: prove that no input in a box changes the class, or find one.

For each observation the margins ``logit[target] - logit[j]`` (j != target) are bounded over its
input box (``x ± epsilon``, or explicit lower and upper bounds); when every margin's lower
bound is positive the observation is *verified*. An attack runs first, so observations with a
counterexample are *violated* (the counterexample is returned). With
``branch_and_bound=True`` unproven boxes are split along their widest input dimension until
they are all proven, a sampled point violates the property, or the time runs out.

Observations are verified in groups that fit the memory budget; each group gets the time
limit of its observations, checked between layers and chunks of the bound computation, so an
observation that runs out of time is answered "unproven" on time (from the bounds computed so
far, which stay sound), never late.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from deeptoolbox._deprecation import renamed_arguments
from deeptoolbox.errors import OptionError
from deeptoolbox.robustness._attacks import box_attack
from deeptoolbox.robustness._bounds import (
    OPTIMIZE_SLOPES,
    box_group_size,
    lower_bound_of,
    make_budget,
    prepare_box,
)
from deeptoolbox.robustness._branch import split_and_bound
from deeptoolbox.robustness._budget import Budget, Deadline, Progress, answer_margin
from deeptoolbox.robustness._graph import to_graph
from deeptoolbox.robustness._labels import class_indices
from deeptoolbox.robustness._relu_branch import relu_split_and_bound

__all__ = ["VerificationResult", "verify_robustness", "split_and_bound", "margin_spec"]

STATUSES = ("verified", "violated", "unproven")
ATTACK_SHARE = 0.25  # of a group's time limit that the attack may use
INPUT_SPLIT_LIMIT = 16  # inputs up to which branch and bound splits the box, else ReLUs


@dataclass
class VerificationResult:
    """Per-observation outcome of :func:`verify_robustness`.

    Attributes:
        status: "verified", "violated" or "unproven" for each observation.
        counterexamples: an input that changes the class where "violated", NaN elsewhere.
        margin_lower_bounds: lower bound of logit[label] - max other logit over the box
            (from bounds over the whole box; positive means verified; -inf where a
            counterexample was found before bounding).
        seconds: time spent on each observation.
        notes: what was given up to stay within the time limit or the memory budget (for
            instance "time limit: CROWN stopped at node 'conv_3' ..."); empty when nothing was.

    Example:
        >>> import torch
        >>> r = VerificationResult(["verified", "violated"], torch.zeros(2, 1),
        ...                        torch.tensor([0.1, -0.2]), [0.0, 0.0])
        >>> r.counts, r.notes
        ({'verified': 1, 'violated': 1, 'unproven': 0}, [])
    """

    status: list[str]
    counterexamples: torch.Tensor
    margin_lower_bounds: torch.Tensor
    seconds: list[float]
    notes: list[str] = field(default_factory=list)

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


def _check_options(epsilon, method) -> None:
    if epsilon is not None and (
        isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or epsilon < 0
    ):
        raise OptionError(
            f"verify_robustness: `epsilon` must be a number >= 0. Received: epsilon={epsilon!r}."
        )
    if method not in ("ibp", "crown"):
        raise OptionError(
            f"verify_robustness: `method` must be 'ibp' or 'crown'. Received: method={method!r}."
        )


def _floating_like(x, other) -> bool:
    """True when ``other`` is a floating-point array the size of ``x`` (an upper bound)."""
    if other is None or isinstance(other, str | int | float):
        return False
    try:
        a, b = torch.as_tensor(x), torch.as_tensor(other)
    except (TypeError, ValueError, RuntimeError):
        return False
    return b.is_floating_point() and a.dim() >= 1 and tuple(a.shape) == tuple(b.shape)


def _boxes(net, x, target, epsilon, lower, upper, input_range):
    """(lower, upper, a point of each box, labels, epsilon or None) from either call form."""
    where = "verify_robustness"
    if lower is not None or upper is not None:
        if lower is None or upper is None or x is not None:
            raise OptionError(
                f"{where}: give `lower` and `upper` together (and no `x`), as in "
                "verify_robustness(net, lower=lo, upper=hi, target=y), or use "
                "verify_robustness(net, x, target, epsilon)."
            )
    elif _floating_like(x, target):  # verify_robustness(net, lower, upper, target)
        lower, upper, target, epsilon = x, target, epsilon, None
    if lower is not None:
        if epsilon is not None:
            raise OptionError(
                f"{where}: `epsilon` is for the form verify_robustness(net, x, target, epsilon); "
                "with lower and upper bounds, the box is given. Received both."
            )
        lo, hi = prepare_box(net, lower, upper, where)
        point = (lo + hi) / 2
    else:
        if epsilon is None:
            raise OptionError(
                f"{where}: give `epsilon` (verify_robustness(net, x, target, epsilon)) or input "
                "bounds (verify_robustness(net, lower, upper, target))."
            )
        point, _ = prepare_box(net, x, x, where)
        lo, hi = point - epsilon, point + epsilon
    if input_range is not None:
        lo, hi = lo.clamp(*input_range), hi.clamp(*input_range)
        point = point.clamp(*input_range)
    if target is None:
        raise OptionError(
            f"{where}: `target` (formerly `label`) is missing: give the class of each observation."
        )
    return lo, hi, point, target, epsilon


@renamed_arguments({"label": "target", "time_limit": "timeout"})
def verify_robustness(
    net: torch.nn.Module,
    x=None,
    target=None,
    epsilon: float | None = None,
    *,
    lower=None,
    upper=None,
    input_range: tuple[float, float] | None = None,
    method: str = "crown",
    optimize_slopes: bool = OPTIMIZE_SLOPES,
    attack: bool = True,
    branch_and_bound: bool = False,
    timeout: float | None = 10.0,
    max_memory: int | str | None = None,
    verbose: bool | None = None,
) -> VerificationResult:
    """Prove that no input in a box around each observation changes its class.

    Two forms: ``verify_robustness(net, x, target, epsilon)`` (the box ``x ± epsilon`` in the
    L-inf norm) and ``verify_robustness(net, lower, upper, target)`` (any box, as MATLAB's
    ``verifyNetworkRobustness(net, XLower, XUpper, label)``; also as keywords ``lower=``,
    ``upper=``), clipped to ``input_range``. ``target`` holds the true class of each
    observation: class indices or names from ``net.classes``. Each observation gets "verified" (proven for the whole box), "violated"
    (a counterexample was found and is returned) or "unproven". A final softmax is removed:
    margins are taken on the logits. ``attack=True`` runs PGD first; ``branch_and_bound=True``
    splits the input box of unproven observations (worth it for low-dimensional inputs);
    ``optimize_slopes=True`` optimizes CROWN's ReLU slopes (alpha-CROWN: tighter, slower;
    default False, as in :func:`estimate_output_bounds`): first for the margins alone, then,
    for the observations that does not prove, for the bounds of every layer too (within 20%
    of the time left, as in :func:`estimate_output_bounds`); the margins are never looser
    than with the first step alone.

    ``timeout`` (seconds per observation, default 10, None for none) covers the attack,
    the bounds and branch and bound; observations verified together share their limits, and
    one that runs out is answered "unproven" within the limit plus a small margin (``notes``
    says so). ``max_memory`` (bytes or ``"2GB"``; default 40% of the free memory) bounds the
    working memory, observations and neurons being bounded in chunks that fit. ``verbose``
    prints progress on stderr (None: only when the run lasts more than a few seconds).
    Deprecated names (they still work, with a DeprecationWarning): ``label`` for ``target``,
    ``time_limit`` for ``timeout``.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(2)])
        >>> with torch.no_grad():
        ...     _ = net.layer("dense_1").weight.copy_(torch.eye(2))
        >>> verify_robustness(net, torch.tensor([[1.0, 0.0]]), [0], 0.1).status
        ['verified']
        >>> lower, upper = torch.tensor([[0.9, 0.0]]), torch.tensor([[1.0, 0.5]])
        >>> verify_robustness(net, lower, upper, [0]).status
        ['verified']
    """
    started = time.monotonic()
    _check_options(None, method)
    graph = to_graph(net).without_softmax()
    graph.check_supported()
    lo, hi, point, target, epsilon = _boxes(net, x, target, epsilon, lower, upper, input_range)
    _check_options(epsilon, method)
    budget = make_budget("verify_robustness", max_memory, timeout, lo.device, start=started)
    labels = class_indices("verify_robustness", net, target, lo.shape[0], lo.device)
    options = _Options(method, optimize_slopes, attack, branch_and_bound, timeout,
                       Progress("verify_robustness", verbose), started)  # fmt: skip
    was_training = net.training
    net.eval()
    try:
        return _verify(graph, lo, hi, point, labels, budget, options)
    finally:
        net.train(was_training)


@dataclass
class _Options:
    method: str
    optimize: bool
    attack: bool
    branch_and_bound: bool
    time_limit: float | None
    progress: Progress
    started: float = 0.0  # time.monotonic() when the call began: the limits count from it
    first_logits: torch.Tensor | None = None  # of the first observation, computed once
    forward_seconds: float = 0.0  # one forward pass of one observation

    def deadline(self, done: int) -> Deadline:
        """When the first ``done`` observations must be answered (less a margin)."""
        if self.time_limit is None:
            return Deadline(None)
        limit = self.time_limit * done
        return Deadline(limit - answer_margin(limit), self.started)


@dataclass
class _State:
    status: list[str]
    counter: torch.Tensor
    margins: torch.Tensor
    seconds: list[float]
    roots: dict = field(default_factory=dict)  # observation -> its box's node bounds

    def detail(self, done: int) -> str:
        counts = {s: self.status[:done].count(s) for s in STATUSES}
        return ", ".join(f"{v} {k}" for k, v in counts.items())


def _verify(graph, lo, hi, point, labels, budget: Budget, options: _Options):
    n = lo.shape[0]
    begin = time.monotonic()
    with torch.no_grad():  # one forward pass gives every node's size and the first logits
        values = graph.run(point[:1])
    options.forward_seconds = time.monotonic() - begin
    graph.shapes.setdefault(tuple(point.shape[1:]), [tuple(v.shape[1:]) for v in values])
    k = values[-1].shape[1]
    options.first_logits = values[-1]
    if bool(((labels < 0) | (labels >= k)).any()):
        raise OptionError(
            f"verify_robustness: `target` (formerly `label`) must hold {n} class indices in "
            f"[0, {k - 1}]. "
            f"Received: {labels.tolist()}."
        )
    state = _State(["unproven"] * n, torch.full_like(point, float("nan")),
                   torch.full((n,), -math.inf, dtype=lo.dtype, device=lo.device),
                   [0.0] * n)  # fmt: skip
    spec = margin_spec(labels, k, lo.dtype)
    group = box_group_size(graph, lo, budget, options.optimize)
    for start in range(0, n, group):
        members = range(start, min(n, start + group))
        _verify_group(graph, lo, hi, point, labels, spec, list(members), budget, options, state)
        options.progress.update(members[-1] + 1, n, state.detail(members[-1] + 1))
    options.progress.update(n, n, state.detail(n), final=True)
    return VerificationResult(state.status, state.counter.detach(), state.margins.detach(),
                              state.seconds, list(budget.notes))  # fmt: skip


def _verify_group(graph, lo, hi, point, labels, spec, members, budget, options, state):
    begin = time.monotonic()
    size = len(members)
    deadline = options.deadline(members[-1] + 1)  # setup and earlier groups count too
    index = torch.tensor(members, device=lo.device)
    with torch.no_grad():
        logits = options.first_logits if members == [0] else graph(point[index])
        wrong = logits.argmax(1) != labels[index]
    # one step between two deadline checks costs up to about two forward passes (the interval
    # pass through the largest layer): keep that back too, so that the answer is not late
    deadline.at -= 2 * max(time.monotonic() - begin, options.forward_seconds * size)
    limit = None if not deadline.finite else max(deadline.at - begin, 0.0)
    state.counter[index[wrong]] = point[index[wrong]]
    if options.attack and bool((hi[index] > lo[index]).any()) and not bool(wrong.all()):
        share = Deadline(None if limit is None else ATTACK_SHARE * limit, begin)
        found, points = box_attack(graph, lo[index], hi[index], labels[index], steps=20,
                                   deadline=share)  # fmt: skip
        hit = found & ~wrong
        state.counter[index[hit]] = points[hit]
        wrong = wrong | hit
    for i in index[wrong].tolist():
        state.status[i] = "violated"
    open_ = index[~wrong]
    if open_.numel():
        group_budget = Budget(budget.max_memory, deadline, budget.notes)
        kept: list = []
        margins = lower_bound_of(graph, lo[open_], hi[open_], spec[open_], options.method,
                                 options.optimize, budget=group_budget,
                                 positive_is_enough=True, intermediate=options.optimize,
                                 outputs_first=True,
                                 keep=kept if options.branch_and_bound else None)  # fmt: skip
        state.margins[open_] = margins.amin(1)
        if kept:  # branch and bound starts from these bounds
            for row, i in enumerate(open_.tolist()):
                state.roots[i] = [(a[row : row + 1], b[row : row + 1]) for a, b in kept]
        for i, m in zip(open_.tolist(), margins, strict=True):
            if bool((m > 0).all()):
                state.status[i] = "verified"
    shared = (time.monotonic() - begin) / size
    for i in members:
        state.seconds[i] = shared
    if options.branch_and_bound:
        _split_unproven(graph, lo, hi, spec, members, deadline, budget, options, state)


def _split_unproven(graph, lo, hi, spec, members, deadline, budget, options, state):
    pending = [i for i in members if state.status[i] == "unproven"]
    for position, i in enumerate(pending):
        begin = time.monotonic()
        share = (deadline.at - begin) / (len(pending) - position)
        if lo[i].numel() <= INPUT_SPLIT_LIMIT or options.method != "crown":
            outcome, point = split_and_bound(graph, lo[i], hi[i], spec[i], deadline=begin + share,
                                             method=options.method, budget=budget,
                                             root=state.roots.get(i))  # fmt: skip
        else:
            outcome, point = relu_split_and_bound(graph, lo[i], hi[i], spec[i], budget=budget,
                                                  deadline=begin + share,
                                                  root=state.roots.get(i))  # fmt: skip
        state.status[i] = outcome
        if point is not None:
            state.counter[i] = point
        state.seconds[i] += time.monotonic() - begin
    if pending and deadline.passed and "unproven" in [state.status[i] for i in pending]:
        budget.note("time limit: branch and bound stopped before deciding every observation")
