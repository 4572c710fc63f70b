"""verify_vnnlib: answer a VNN-LIB property on an ONNX network ("sat", "unsat", "unknown").

The search for a counterexample (random points plus projected gradient descent in the input
box) runs first; then each input box is bounded with CROWN and split (input branch and bound)
until proven, a counterexample is found or the time runs out. Every counterexample is checked
by running the ONNX file itself through onnxruntime before "sat" is answered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from deeptoolbox._atomic import atomic_open
from deeptoolbox.errors import (
    ModelImportError,
    NetworkFileError,
    OptionError,
    UnsupportedLayerError,
)
from deeptoolbox.robustness._bounds import lower_bound_of, make_budget
from deeptoolbox.robustness._branch import split_and_bound
from deeptoolbox.robustness._budget import Progress, answer_margin
from deeptoolbox.robustness._graph import to_graph
from deeptoolbox.robustness._relu_branch import relu_split_and_bound
from deeptoolbox.robustness._vnnlib_parse import InputRegion, read_vnnlib

__all__ = ["VnnlibResult", "verify_vnnlib"]

INPUT_SPLIT_LIMIT = 16  # inputs up to which the box is split; beyond, ReLU phases are split
SEARCH_SHARE = 0.25  # of the time left that the counterexample search may use


@dataclass
class VnnlibResult:
    """Answer to a VNN-LIB property.

    Attributes:
        status: "sat" (a counterexample exists), "unsat" (proven), "unknown" or "timeout".
        counterexample: flat input values X_0, X_1, ... of the counterexample (sat only).
        outputs: flat output values Y_0, Y_1, ... at the counterexample, from onnxruntime.
        seconds: time taken.
        notes: what was given up to stay within the time or memory budget (empty if nothing).

    Example:
        >>> import numpy as np
        >>> print(VnnlibResult("sat", np.array([0.5]), np.array([1.0]), 0.1).to_vnncomp())
        sat
        ((X_0 0.5)
         (Y_0 1.0))
    """

    status: str
    counterexample: np.ndarray | None
    outputs: np.ndarray | None
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_vnncomp(self) -> str:
        """The result in VNN-COMP's format: the status, then the assignment when sat."""
        if self.status != "sat" or self.counterexample is None or self.outputs is None:
            return self.status
        pairs = [f"(X_{i} {float(v)!r})" for i, v in enumerate(self.counterexample)]
        pairs += [f"(Y_{i} {float(v)!r})" for i, v in enumerate(self.outputs)]
        return "sat\n(" + "\n ".join(pairs) + ")"

    def write(self, path: str | Path) -> None:
        """Write :meth:`to_vnncomp` to ``path`` (through a temporary file, then renamed)."""
        with atomic_open(path, "w") as stream:
            stream.write(self.to_vnncomp() + "\n")


def _load_model(path: Path) -> tuple[torch.nn.Module, tuple[int, ...]]:
    """The network of ``path`` from ``import_onnx``, checked against onnxruntime.

    Raises ModelImportError (the file cannot be imported, or the import does not compute what
    onnxruntime computes) and UnsupportedLayerError naming the layer that cannot be bounded.
    """
    from deeptoolbox.interop import import_onnx

    net = import_onnx(path)
    to_graph(net).check_supported()  # names the first layer output bounds cannot handle
    if len(net.input_names) != 1:
        raise ModelImportError(
            f"verify_vnnlib: '{path.name}' has {len(net.input_names)} inputs "
            f"({', '.join(net.input_names)}); VNN-LIB properties are over one input."
        )
    shape = tuple(net.layer(net.input_names[0]).shape)
    if None in shape:
        raise ModelImportError(
            f"verify_vnnlib: input '{net.input_names[0]}' of '{path.name}' has a free size "
            f"{shape}; VNN-LIB properties need a fixed input size."
        )
    difference = _difference_from_onnxruntime(net, shape, path)
    if difference > 1e-4:
        raise ModelImportError(
            f"verify_vnnlib: the network imported from '{path.name}' differs from onnxruntime "
            f"by {difference:.3g} (allowed: 1e-4) on a random input, so its bounds would not "
            "be bounds of the file. Hint: report the file; import_onnx(path, "
            "example_inputs=...) shows the same check."
        )
    return net.eval(), shape  # type: ignore[return-value]


def _session(path: Path):
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run_onnx(session, x: np.ndarray) -> np.ndarray:
    feed = session.get_inputs()[0]
    dims = [d if isinstance(d, int) and d > 0 else 1 for d in feed.shape]
    return np.asarray(session.run(None, {feed.name: x.astype(np.float32).reshape(dims)})[0])


def _difference_from_onnxruntime(net, shape, path: Path) -> float:
    x = np.random.default_rng(0).uniform(-1, 1, size=(1, *shape)).astype(np.float32)
    with torch.no_grad():
        ours = net.eval()(torch.as_tensor(x)).numpy().reshape(-1)
    theirs = _run_onnx(_session(path), x).reshape(-1)
    if ours.shape != theirs.shape:
        return float("inf")
    scale = 1.0 + np.abs(theirs)
    return float(np.max(np.abs(ours - theirs) / scale))


def _reaches(values: np.ndarray, region: InputRegion) -> bool:
    """True when the outputs meet every constraint of some unsafe output region."""
    rows = region.spec @ values.astype(np.float64) + region.offset
    return any(bool((rows[region.groups == g] <= 0).all()) for g in range(region.num_regions))


def _float32_box(region: InputRegion, inner: bool):
    """The box in float32, rounded inward (for search) or outward (for sound bounds)."""
    lo, hi = region.lower.astype(np.float32), region.upper.astype(np.float32)
    low_side, high_side = (np.inf, -np.inf) if inner else (-np.inf, np.inf)
    lo = np.where(
        (lo < region.lower) if inner else (lo > region.lower), np.nextafter(lo, low_side), lo
    )
    hi = np.where(
        (hi > region.upper) if inner else (hi < region.upper), np.nextafter(hi, high_side), hi
    )
    return lo.astype(np.float32), hi.astype(np.float32)


def _objective(y: torch.Tensor, spec, offset, groups, count) -> torch.Tensor:
    """min over regions of max over its rows: <= 0 exactly where some region is reached."""
    rows = y.flatten(1) @ spec.T + offset
    start = torch.full((y.shape[0], count), float("-inf"), dtype=rows.dtype)
    per_group = start.scatter_reduce(1, groups.expand(y.shape[0], -1), rows, "amax")
    return per_group.amin(dim=1)


def _search(
    net,
    shape,
    region: InputRegion,
    deadline: float,
    points: int = 32,
    steps: int = 40,
    restarts: int = 6,
):
    """Projected gradient descent toward an unsafe region from random points (and the box
    centre), restarted from fresh random points until ``restarts`` rounds are done, a point
    clearly inside a region is found or ``deadline`` passes; the best point found."""
    lo, hi = (torch.as_tensor(v).reshape(1, *shape) for v in _float32_box(region, inner=True))
    target = (torch.as_tensor(region.spec, dtype=torch.float32),
              torch.as_tensor(region.offset, dtype=torch.float32),
              torch.as_tensor(region.groups), region.num_regions)  # fmt: skip
    best_x, best = ((lo + hi) / 2)[0], float("inf")
    for round_ in range(restarts):
        if time.monotonic() > deadline:
            break
        generator = torch.Generator().manual_seed(round_)
        x = lo + (hi - lo) * torch.rand((points, *shape), generator=generator)
        if round_ == 0:
            x[0] = (lo + hi)[0] / 2
        point, value = _descend(net, x, lo, hi, target, deadline, steps)
        if value < best:
            best_x, best = point, value
        if best < -1e-5:  # clearly inside an unsafe region: stop searching
            break
    return best_x, best


def _descend(net, x, lo, hi, target, deadline: float, steps: int):
    """Signed-gradient steps (shrinking) on the region objective; the best point seen."""
    best_x, best = x[0].clone(), float("inf")
    for step in range(steps):
        if time.monotonic() > deadline:
            break
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            value = _objective(net(x), *target)
            (grad,) = torch.autograd.grad(value.sum(), x)
        value = value.detach()
        i = int(value.argmin())
        if float(value[i]) < best:
            best, best_x = float(value[i]), x[i].detach().clone()
        if best < -1e-5:
            break
        size = (hi - lo) * 0.1 * (1 - step / steps) + 1e-12
        x = torch.maximum(torch.minimum(x.detach() - size * grad.sign(), hi), lo)
    return best_x, best


def verify_vnnlib(
    onnx_path: str | Path,
    vnnlib_path: str | Path,
    timeout: float = 60.0,
    *,
    method: str = "crown",
    max_memory: int | str | None = None,
    verbose: bool | None = None,
    milp: bool = False,
) -> VnnlibResult:
    """Check a VNN-LIB property on an ONNX network: "sat", "unsat", "unknown" or "timeout".

    "sat" comes with a counterexample that meets the property when the ONNX model is run with
    onnxruntime; "unsat" is a proof (sound bounds over every input box, split as needed).
    ``timeout`` (seconds) is checked inside the bound computation too, so the answer comes
    within it plus a small margin; ``max_memory`` (bytes or ``"2GB"``, default 40% of the
    free memory) bounds the working memory; ``verbose`` prints progress on stderr (None:
    only for runs longer than a few seconds). ``notes`` says what the limits cost.
    Each box is bounded with alpha-CROWN (slopes optimized on every layer) before branching.
    ``milp=True`` (networks of affine layers and ReLUs) then solves the boxes left open as
    mixed-integer programs (:func:`milp_reaches`, HiGHS) before branch and bound: a complete
    check for small networks, which decides what the bounds leave unknown when it has time.

    Example:
        >>> import tempfile, os, torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(1, 1))
        >>> with torch.no_grad():
        ...     _ = model[0].weight.fill_(2.0), model[0].bias.zero_()
        >>> prop = '''(declare-const X_0 Real)
        ... (declare-const Y_0 Real)
        ... (assert (>= X_0 0))
        ... (assert (<= X_0 1))
        ... (assert (>= Y_0 3))'''
        >>> with tempfile.TemporaryDirectory() as d:
        ...     torch.onnx.export(model, (torch.zeros(1, 1),), f"{d}/m.onnx", dynamo=False)
        ...     _ = open(f"{d}/p.vnnlib", "w").write(prop)
        ...     verify_vnnlib(f"{d}/m.onnx", f"{d}/p.vnnlib", timeout=10).status
        'unsat'
    """
    started = time.monotonic()
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise OptionError(
            f"verify_vnnlib: `timeout` must be a positive number of seconds. Received: {timeout!r}."
        )
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise NetworkFileError(f"verify_vnnlib: ONNX file not found: '{onnx_path}'.")
    deadline = started + float(timeout) - answer_margin(float(timeout))
    budget = make_budget("verify_vnnlib", max_memory, float(timeout), torch.device("cpu"),
                         start=started)  # fmt: skip
    progress = Progress("verify_vnnlib", verbose)
    net, shape = _load_model(onnx_path)
    graph = to_graph(net)
    if graph.ends_in_softmax:
        raise UnsupportedLayerError(
            f"verify_vnnlib: '{onnx_path.name}' ends in Softmax; properties on probabilities are "
            "not supported (remove the Softmax from the model: properties on logits are)."
        )
    graph.check_supported()
    forward = time.monotonic()
    with torch.no_grad():
        outputs = int(net(torch.zeros(1, *shape)).numel())
    deadline -= 2 * (time.monotonic() - forward)  # the longest step between two time checks
    regions = read_vnnlib(vnnlib_path, int(np.prod(shape)), outputs)
    session = _session(onnx_path)
    budget.deadline.at = deadline
    if time.monotonic() > deadline:  # loading alone took the time
        budget.note("time limit: reached while loading the network")
        return VnnlibResult("timeout", None, None, time.monotonic() - started, list(budget.notes))
    status = _decide(net, graph, shape, regions, session, deadline, method, budget, progress,
                     milp)  # fmt: skip
    progress.update(1, 1, "sat" if isinstance(status, tuple) else status, final=True)
    notes = list(budget.notes)
    if isinstance(status, tuple):
        x, y = status
        return VnnlibResult("sat", x, y, time.monotonic() - started, notes)
    return VnnlibResult(status, None, None, time.monotonic() - started, notes)


def _milp_region(graph, lo, hi, spec, offset, groups, seconds, budget):
    """milp_reaches on one box; ("unproven", None) with a note when the network has layers
    that MILP does not encode."""
    from deeptoolbox.robustness._milp import milp_reaches

    try:
        return milp_reaches(graph, lo, hi, spec.numpy(), offset.numpy(), groups.numpy(),
                            timeout=max(seconds, 0.05))  # fmt: skip
    except UnsupportedLayerError as error:
        budget.note(f"MILP skipped: {error}")
        return "unproven", None


def _confirm(session, point: torch.Tensor, region: InputRegion):
    x = point.detach().numpy().astype(np.float32).reshape(-1)
    inside = bool(((x >= region.lower) & (x <= region.upper)).all())
    y = _run_onnx(session, x).reshape(-1)
    return (x, y) if inside and _reaches(y, region) else None


def _decide(net, graph, shape, regions, session, deadline, method, budget, progress, milp=False):
    """Bound each box first (cheap proofs), search the rest, then (MILP when asked) split
    until decided."""
    open_regions = []
    for region in regions:
        lo, hi = (torch.as_tensor(v).reshape(shape) for v in _float32_box(region, inner=False))
        spec = torch.as_tensor(region.spec, dtype=torch.float32)
        offset = torch.as_tensor(region.offset, dtype=torch.float32)
        groups = torch.as_tensor(region.groups)
        root: list = []  # every node's (alpha-)CROWN bounds: branch and bound starts there
        bounds = lower_bound_of(graph, lo[None], hi[None], spec[None], method,
                                optimize=method == "crown", budget=budget,
                                positive_is_enough=True, intermediate=True,
                                keep=root)  # fmt: skip
        bounds = bounds[0] + offset
        safe = torch.zeros(region.num_regions).index_add_(0, groups, (bounds > 0).float()) > 0
        if not bool(safe.all()):
            open_regions.append((region, lo, hi, spec, offset, groups, root or None))
    for position, (region, *_) in enumerate(open_regions):
        share = SEARCH_SHARE * (deadline - time.monotonic()) / (len(open_regions) - position)
        point, value = _search(net, shape, region, time.monotonic() + share)
        found = _confirm(session, point, region) if value <= 0 else None
        if found is not None:
            return found
    status = "unsat"
    for position, (region, lo, hi, spec, offset, groups, root) in enumerate(open_regions):
        share = (deadline - time.monotonic()) / (len(open_regions) - position)
        if milp:
            started = time.monotonic()
            outcome, point = _milp_region(graph, lo, hi, spec, offset, groups, share, budget)
            if outcome == "verified":
                continue
            if outcome == "violated":
                inner = [
                    torch.as_tensor(v).reshape(shape) for v in _float32_box(region, inner=True)
                ]
                found = _confirm(session, point.clamp(*inner), region)
                if found is not None:
                    return found
                budget.note("MILP: a solution found did not meet the property in onnxruntime")
            share -= time.monotonic() - started
            if share <= 0:
                status = "timeout" if time.monotonic() > deadline else "unknown"
                continue
        if lo.numel() <= INPUT_SPLIT_LIMIT or method != "crown":
            outcome, point = split_and_bound(graph, lo, hi, spec, offset=offset, groups=groups,
                                             deadline=time.monotonic() + share, method=method,
                                             budget=budget, progress=progress,
                                             root=root)  # fmt: skip
        else:
            outcome, point = relu_split_and_bound(graph, lo, hi, spec, offset=offset,
                                                  groups=groups, budget=budget, progress=progress,
                                                  deadline=time.monotonic() + share,
                                                  root=root)  # fmt: skip
        if outcome == "violated":
            inner = [torch.as_tensor(v).reshape(shape) for v in _float32_box(region, inner=True)]
            found = _confirm(session, point.clamp(*inner), region)
            if found is not None:
                return found
            outcome = "unproven"
        if outcome == "unproven":
            status = "timeout" if time.monotonic() > deadline else "unknown"
    return status
