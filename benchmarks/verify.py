"""Verification benchmark: verify_vnnlib on rebuilt ACAS Xu-style and MNIST-style networks.

The networks are rebuilt here, with weights trained briefly on generated data (nothing is
downloaded):

- **ACAS Xu-style**: 5 inputs (range, two angles, two speeds in their raw units), 6 hidden
  layers of 50 ReLUs, 5 output scores (COC, weak left, weak right, strong left, strong right;
  the lowest is the advisory), trained on a synthetic advisory table. The ONNX files are
  written the way the public ones are: input normalization as constant ``Sub``/``Div`` nodes,
  ``MatMul`` + ``Add`` layers, opset 8, IR version 3, initializers listed as graph inputs.
  Properties follow the public ``prop_1`` ... ``prop_10`` (VNN-COMP 2021) in form: a box of
  the five inputs and an unsafe output condition (COC score too high, COC maximal, COC
  minimal, an advisory not minimal), written here in our own text and boxes.
- **MNIST-style**: fully connected 784-256xL-10 networks (L = 2 and 4) trained on
  scikit-learn's digits upsampled to 28x28, with L-inf properties (the class changes within
  ``epsilon`` of a test image).

Known answers come from outside the verifier: "sat" where an independent search (dense
random sampling, a planted point, or PGD with restarts written here) finds a counterexample,
"unsat" where an independent interval computation over a uniform split of the box (numpy,
written here) proves it, or by construction (a threshold above that proven bound). Other
instances count for "decided %" but cannot be wrong. The script prints, per family, the
decided share, the time per instance, the answers later than the timeout and the wrong answers
(a "sat" whose counterexample onnxruntime does not confirm, an "unsat" where a counterexample
is known, a "sat" where unsat is proven). With ``--lirpa`` it also bounds the MNIST instances
with auto_LiRPA's alpha-CROWN (the anchor copy in ``../shared/anchors/auto_LiRPA``; its
pure-Python needs ``appdirs`` and ``graphviz`` from ``--lirpa-deps``) to compare what bounds
alone decide.

Run: ``.venv/bin/python benchmarks/verify.py [--timeout 10] [--threads 1] [--lirpa] [--milp]``
(``--milp``: ``verify_vnnlib(..., milp=True)``).
Recorded figures live in docs/performance.md.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from deeptoolbox.robustness import verify_vnnlib

ACAS_LOW = np.array([0.0, -math.pi, -math.pi, 100.0, 0.0])
ACAS_HIGH = np.array([60760.0, math.pi, math.pi, 1200.0, 1200.0])
ACAS_MEAN = np.array([19791.091, 0.0, 0.0, 650.0, 600.0])
ACAS_RANGE = np.array([60261.0, 6.28318530718, 6.28318530718, 1100.0, 1200.0])


# -- networks ---------------------------------------------------------------------------------


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _acas_scores(raw: np.ndarray) -> np.ndarray:
    """A synthetic advisory table: costs of COC, WL, WR, SL, SR (lowest wins)."""
    rho, theta, psi, v_own, v_int = raw.T
    closing = (v_own + v_int * np.cos(psi)) / 1200.0
    danger = np.exp(-rho / 15000.0) * (0.5 + 0.5 * np.cos(theta)) * (0.5 + closing)
    side = np.sin(theta)
    return np.stack([
        2.0 * danger,
        0.3 + danger * (1.0 + side),
        0.3 + danger * (1.0 - side),
        0.6 + 0.5 * danger * (1.0 + side) + 0.2 * (1 - danger),
        0.6 + 0.5 * danger * (1.0 - side) + 0.2 * (1 - danger),
    ], axis=1)  # fmt: skip


def train_acas(seed: int, steps: int) -> nn.Sequential:
    rng = np.random.default_rng(seed)
    raw = rng.uniform(ACAS_LOW, ACAS_HIGH, size=(20000, 5))
    x = torch.tensor((raw - ACAS_MEAN) / ACAS_RANGE, dtype=torch.float32)
    y = torch.tensor(_acas_scores(raw), dtype=torch.float32)
    torch.manual_seed(seed)
    net = _mlp([5] + [50] * 6 + [5])
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(steps):
        index = torch.randint(0, x.shape[0], (256,))
        loss = nn.functional.mse_loss(net(x[index]), y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval()


def digits_28() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images / 16.0, dtype=torch.float32)[:, None]
    x = nn.functional.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    return x.reshape(-1, 784).clamp(0, 1), torch.tensor(data.target)


def train_mnist(depth: int, x: torch.Tensor, y: torch.Tensor, epochs: int) -> nn.Sequential:
    torch.manual_seed(depth)
    net = _mlp([784] + [256] * depth + [10])
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(epochs):
        order = torch.randperm(x.shape[0])
        for start in range(0, x.shape[0], 128):
            index = order[start : start + 128]
            loss = nn.functional.cross_entropy(net(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return net.eval()


# -- ONNX files -------------------------------------------------------------------------------


def _linear_nodes(net: nn.Sequential, first: str) -> tuple[list, dict]:
    nodes, inits, current = [], {}, first
    linears = [m for m in net if isinstance(m, nn.Linear)]
    for i, layer in enumerate(linears):
        inits[f"W{i}"] = layer.weight.detach().numpy().T
        inits[f"B{i}"] = layer.bias.detach().numpy()
        out = "output" if i == len(linears) - 1 else f"r{i}"
        nodes.append(helper.make_node("MatMul", [current, f"W{i}"], [f"m{i}"]))
        nodes.append(helper.make_node("Add", [f"m{i}", f"B{i}"], [f"a{i}" if out != "output"
                                                                  else out]))  # fmt: skip
        if out != "output":
            nodes.append(helper.make_node("Relu", [f"a{i}"], [out]))
        current = out
    return nodes, inits


def save_onnx(net: nn.Sequential, path: Path, inputs: int, outputs: int, *, acas: bool) -> Path:
    """ACAS Xu-style: Sub/Div normalization, opset 8, IR 3, initializers among the inputs."""
    nodes, inits = _linear_nodes(net, "normalized" if acas else "input")
    if acas:
        inits = {"mean": ACAS_MEAN, "range": ACAS_RANGE, **inits}
        nodes = [helper.make_node("Sub", ["input", "mean"], ["centered"]),
                 helper.make_node("Div", ["centered", "range"], ["normalized"])] + nodes  # fmt: skip
    tensors = [
        numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits.items()
    ]
    graph_inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, inputs])]
    if acas:
        graph_inputs += [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.dims))
                         for t in tensors]  # fmt: skip
    graph = helper.make_graph(nodes, path.stem, graph_inputs,
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT,
                                                             [1, outputs])], tensors)  # fmt: skip
    opset = 8 if acas else 13
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 3 if acas else model.ir_version
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


# -- properties -------------------------------------------------------------------------------


def _box_lines(low: np.ndarray, high: np.ndarray, outputs: int) -> list[str]:
    lines = [f"(declare-const X_{i} Real)" for i in range(low.size)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(outputs)]
    for i, (a, b) in enumerate(zip(low.tolist(), high.tolist(), strict=True)):
        lines += [f"(assert (>= X_{i} {a!r}))", f"(assert (<= X_{i} {b!r}))"]
    return lines


def _raw_box(fractions) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.array([f[0] for f in fractions]), np.array([f[1] for f in fractions])
    span = ACAS_HIGH - ACAS_LOW
    return ACAS_LOW + lo * span, ACAS_LOW + hi * span


# (name, box as fractions of each input's range, unsafe condition as spec rows: each region a
# list of rows c with "c @ y <= 0" for all rows; regions are alternatives)
def _not_min(j: int) -> list[list[np.ndarray]]:
    return [[np.eye(5)[k] - np.eye(5)[j]] for k in range(5) if k != j]  # Y_k <= Y_j


ACAS_PROPERTIES = [
    ("prop_1_style", [(0.9, 1.0), (0, 1), (0, 1), (0.95, 1.0), (0.0, 0.05)], "coc_high"),
    (
        "prop_2_style",
        [(0.9, 1.0), (0, 1), (0, 1), (0.95, 1.0), (0.0, 0.05)],
        [[np.eye(5)[k] - np.eye(5)[0] for k in range(1, 5)]],
    ),  # COC maximal
    (
        "prop_3_style",
        [(0.03, 0.06), (0.45, 0.55), (0.98, 1.0), (0.8, 1.0), (0.8, 1.0)],
        [[np.eye(5)[0] - np.eye(5)[k] for k in range(1, 5)]],
    ),  # COC minimal
    (
        "prop_4_style",
        [(0.03, 0.06), (0.45, 0.55), (0.5, 0.5), (0.8, 1.0), (0.7, 0.9)],
        [[np.eye(5)[0] - np.eye(5)[k] for k in range(1, 5)]],
    ),
    (
        "prop_5_style",
        [(0.01, 0.02), (0.6, 0.65), (0.0, 0.02), (0.0, 0.1), (0.0, 0.1)],
        _not_min(4),
    ),  # strong right should be minimal
    ("prop_6_style", [(0.2, 1.0), (0.55, 0.6), (0.0, 0.02), (0.0, 0.1), (0.0, 0.1)], _not_min(0)),
    (
        "prop_7_style",
        [(0.0, 1.0), (0.0, 1.0), (0.0, 1.0), (0.0, 0.1), (0.9, 1.0)],
        [
            [np.eye(5)[3] - np.eye(5)[k] for k in (0, 1, 2)],
            [np.eye(5)[4] - np.eye(5)[k] for k in (0, 1, 2)],
        ],
    ),  # fmt: skip
    ("prop_8_style", [(0.0, 0.5), (0.0, 0.25), (0.0, 0.1), (0.5, 1.0), (0.5, 1.0)], _not_min(1)),
    ("prop_9_style", [(0.03, 0.05), (0.45, 0.5), (0.0, 0.02), (0.0, 0.1), (0.0, 0.1)], _not_min(3)),
    ("prop_10_style", [(0.6, 1.0), (0.5, 0.55), (0.0, 0.02), (0.85, 1.0), (0.9, 1.0)], _not_min(0)),
]


def _condition_lines(regions) -> list[str]:
    def row_text(c) -> str:
        pos = [f"Y_{j}" for j in range(c.size) if c[j] > 0]
        neg = [f"Y_{j}" for j in range(c.size) if c[j] < 0]
        return f"(<= {pos[0]} {neg[0]})"  # rows are e_a - e_b: Y_a <= Y_b

    clauses = ["(and " + " ".join(row_text(c) for c in rows) + ")" for rows in regions]
    return [f"(assert (or {' '.join(clauses)}))"]


def write_property(path: Path, low, high, outputs, regions=None, threshold=None) -> Path:
    lines = _box_lines(np.asarray(low), np.asarray(high), outputs)
    if threshold is not None:
        lines.append(f"(assert (>= Y_0 {threshold!r}))")
    else:
        lines += _condition_lines(regions)
    path.write_text("\n".join(lines) + "\n")
    return path


# -- independent references ---------------------------------------------------------------------


def _weights(net: nn.Sequential):
    return [(m.weight.detach().double().numpy(), m.bias.detach().double().numpy())
            for m in net if isinstance(m, nn.Linear)]  # fmt: skip


def interval_outputs(net, lo: np.ndarray, hi: np.ndarray, normalize: bool):
    """Interval bounds of the outputs for boxes (N, d): plain numpy, independent of the
    toolbox's engine."""
    if normalize:
        lo, hi = (lo - ACAS_MEAN) / ACAS_RANGE, (hi - ACAS_MEAN) / ACAS_RANGE
    layers = _weights(net)
    for k, (w, b) in enumerate(layers):
        center, radius = (lo + hi) / 2, (hi - lo) / 2
        mid, spread = center @ w.T + b, radius @ np.abs(w).T
        lo, hi = mid - spread, mid + spread
        if k < len(layers) - 1:
            lo, hi = np.maximum(lo, 0), np.maximum(hi, 0)
    return lo, hi


def proven_by_splitting(net, low, high, regions, pieces: int = 6) -> bool:
    """True when intervals over a uniform split of the box (``pieces`` per varying input,
    refined once where needed) show that no input reaches any region."""
    axes = [np.linspace(a, b, pieces + 1) if b > a else np.array([a, b])
            for a, b in zip(low, high, strict=True)]  # fmt: skip
    grids = np.meshgrid(*[np.arange(len(a) - 1) for a in axes], indexing="ij")
    index = np.stack([g.reshape(-1) for g in grids], 1)
    lo = np.stack([axes[d][index[:, d]] for d in range(len(axes))], 1)
    hi = np.stack([axes[d][index[:, d] + 1] for d in range(len(axes))], 1)
    for _ in range(3):
        y_lo, y_hi = interval_outputs(net, lo, hi, normalize=True)
        open_ = ~_safe(y_lo, y_hi, regions)
        if not open_.any():
            return True
        if open_.sum() > 200_000:
            return False
        lo, hi = _halve(lo[open_], hi[open_])
    return False


def _safe(y_lo, y_hi, regions) -> np.ndarray:
    """Per box: every region has a row c (c = e_a - e_b) with c @ y > 0 everywhere."""
    safe = np.ones(y_lo.shape[0], dtype=bool)
    for rows in regions:
        region_safe = np.zeros_like(safe)
        for c in rows:
            a, b = int(np.argmax(c)), int(np.argmin(c))
            region_safe |= y_lo[:, a] - y_hi[:, b] > 0
        safe &= region_safe
    return safe


def _halve(lo, hi):
    axis = np.argmax((hi - lo) / (ACAS_HIGH - ACAS_LOW), 1)
    mid = (lo[np.arange(len(lo)), axis] + hi[np.arange(len(lo)), axis]) / 2
    left_hi, right_lo = hi.copy(), lo.copy()
    left_hi[np.arange(len(lo)), axis] = mid
    right_lo[np.arange(len(lo)), axis] = mid
    return np.concatenate([lo, right_lo]), np.concatenate([left_hi, hi])


def sampled_counterexample(net, low, high, regions, count: int = 20000, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(low, high, size=(count, len(low)))
    with torch.no_grad():
        y = net(torch.tensor((x - ACAS_MEAN) / ACAS_RANGE, dtype=torch.float32)).double().numpy()
    return bool((~_safe(y, y, regions)).any())


def pgd_counterexample(net, image, label, epsilon, restarts: int = 5, steps: int = 50) -> bool:
    lo, hi = (image - epsilon).clamp(0, 1), (image + epsilon).clamp(0, 1)
    generator = torch.Generator().manual_seed(0)
    for _ in range(restarts):
        x = lo + (hi - lo) * torch.rand(lo.shape, generator=generator)
        for _step in range(steps):
            x.requires_grad_(True)
            logits = net(x[None])[0]
            others = logits.clone()
            others[label] = -math.inf
            margin = logits[label] - others.max()
            if float(margin.detach()) < 0:
                return True
            (grad,) = torch.autograd.grad(margin, x)
            size = 2.5 * epsilon / steps
            x = torch.minimum(torch.maximum(x.detach() - size * grad.sign(), lo), hi)
    return False


# -- running ------------------------------------------------------------------------------------


def check_answer(result, model: Path, prop_regions, truth: str | None, *, threshold=None) -> bool:
    """True when the answer is wrong."""
    if result.status == "sat":
        session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        y = session.run(None, {"input": result.counterexample[None].astype(np.float32)})[0][0]
        if threshold is not None:
            confirmed = float(y[0]) >= threshold
        else:
            confirmed = not bool(_safe(y[None].astype(np.float64), y[None].astype(np.float64),
                                       prop_regions)[0])  # fmt: skip
        return not confirmed or truth == "unsat"
    return result.status == "unsat" and truth == "sat"


def acas_instances(folder: Path, seeds, steps):
    for seed in seeds:
        net = train_acas(seed, steps)
        model = save_onnx(net, folder / f"acas_like_{seed}.onnx", 5, 5, acas=True)
        for name, fractions, condition in ACAS_PROPERTIES:
            low, high = _raw_box(fractions)
            if condition == "coc_high":
                yield from _threshold_instances(folder, net, model, seed, name, low, high)
                continue
            path = write_property(folder / f"{name}_{seed}.vnnlib", low, high, 5, condition)
            truth = ("sat" if sampled_counterexample(net, low, high, condition)
                     else "unsat" if proven_by_splitting(net, low, high, condition) else None)  # fmt: skip
            yield f"acas_like_{seed} {name}", model, path, condition, truth, None


def _threshold_instances(folder, net, model, seed, name, low, high):
    """prop_1 style (COC score >= c): c planted below a sampled value (sat) and above the
    independent interval bound (unsat by construction)."""
    rng = np.random.default_rng(seed)
    point = rng.uniform(low, high)
    with torch.no_grad():
        value = float(net(torch.tensor((point - ACAS_MEAN) / ACAS_RANGE,
                                       dtype=torch.float32)[None])[0, 0])  # fmt: skip
    bound = _split_upper(net, low, high)
    for suffix, threshold, truth in (
        ("sat", value - 1e-3, "sat"),
        ("unsat", bound + 1e-3, "unsat"),
    ):
        path = write_property(folder / f"{name}_{suffix}_{seed}.vnnlib", low, high, 5,
                              threshold=threshold)  # fmt: skip
        yield f"acas_like_{seed} {name}_{suffix}", model, path, None, truth, threshold


def _split_upper(net, low, high, pieces: int = 6) -> float:
    axes = [np.linspace(a, b, pieces + 1) for a, b in zip(low, high, strict=True)]
    grids = np.meshgrid(*[np.arange(pieces)] * 5, indexing="ij")
    index = np.stack([g.reshape(-1) for g in grids], 1)
    lo = np.stack([axes[d][index[:, d]] for d in range(5)], 1)
    hi = np.stack([axes[d][index[:, d] + 1] for d in range(5)], 1)
    return float(interval_outputs(net, lo, hi, normalize=True)[1][:, 0].max())


def mnist_instances(folder: Path, depths, images, epsilons, epochs):
    x, y = digits_28()
    train, test = slice(0, 1500), slice(1500, None)
    for depth in depths:
        net = train_mnist(depth, x[train], y[train], epochs)
        model = save_onnx(net, folder / f"mnist_like_{depth}x256.onnx", 784, 10, acas=False)
        picked = 0
        for image, label in zip(x[test], y[test].tolist(), strict=True):
            if picked == images:
                break
            if int(net(image[None]).argmax()) != label:
                continue
            picked += 1
            for eps in epsilons:
                low, high = (image - eps).clamp(0, 1).numpy(), (image + eps).clamp(0, 1).numpy()
                regions = [[np.eye(10)[label] - np.eye(10)[j]] for j in range(10) if j != label]
                path = write_property(folder / f"mnist_{depth}_{picked}_{eps}.vnnlib", low, high,
                                      10, regions)  # fmt: skip
                truth = "sat" if pgd_counterexample(net, image, label, eps) else None
                if truth is None:
                    lo_y, hi_y = interval_outputs(net, low[None].astype(np.float64),
                                                  high[None].astype(np.float64), False)  # fmt: skip
                    truth = "unsat" if bool(_safe(lo_y, hi_y, regions)[0]) else None
                yield (f"mnist_like_{depth}x256 image {picked} eps {eps}", model, path, regions,
                       truth, None, net, image, label, eps)  # fmt: skip


def run_family(title, instances, timeout: float, rows: list, milp: bool = False):
    times, statuses, wrong, late, known = [], [], 0, 0, {"sat": 0, "unsat": 0, None: 0}
    extras = []
    for name, model, prop, regions, truth, threshold, *extra in instances:
        result = verify_vnnlib(model, prop, timeout=timeout, verbose=False, milp=milp)
        bad = check_answer(result, model, regions, truth, threshold=threshold)
        wrong += bad
        late += result.seconds > timeout
        known[truth] += 1
        times.append(result.seconds)
        statuses.append(result.status)
        extras.append((extra, result.status))
        flag = "  WRONG" if bad else ""
        print(f"  {name}: {result.status} in {result.seconds:.2f} s (known: {truth}){flag}")
    decided = sum(s in ("sat", "unsat") for s in statuses)
    rows.append((title, len(statuses), known, decided, statuses.count("sat"),
                 statuses.count("unsat"), statistics.mean(times), statistics.median(times),
                 max(times), late, wrong))  # fmt: skip
    return extras


def lirpa_compare(extras, lirpa: Path, deps: Path | None) -> str:
    """How many MNIST instances auto_LiRPA's alpha-CROWN bounds alone prove (and ours)."""
    for folder in (deps, lirpa):
        if folder is not None and str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    try:
        from auto_LiRPA import BoundedModule, BoundedTensor, PerturbationLpNorm
    except ImportError as err:
        return f"auto_LiRPA could not be imported ({err}); not compared"
    from deeptoolbox.robustness._bounds import lower_bound_of
    from deeptoolbox.robustness._graph import to_graph
    from deeptoolbox.robustness._verify import margin_spec

    theirs = ours = total = 0
    their_time = our_time = 0.0
    for (net, image, label, eps), _ in extras:
        lo, hi = (image - eps).clamp(0, 1)[None], (image + eps).clamp(0, 1)[None]
        spec = margin_spec(torch.tensor([label]), 10, torch.float32)
        bounded = BoundedModule(net, torch.zeros(1, 784), verbose=False)
        ptb = PerturbationLpNorm(norm=math.inf, x_L=lo, x_U=hi)
        start = time.perf_counter()
        low, _ = bounded.compute_bounds(x=(BoundedTensor(image[None], ptb),), C=spec,
                                        method="alpha-CROWN", bound_upper=False)  # fmt: skip
        their_time += time.perf_counter() - start
        start = time.perf_counter()
        mine = lower_bound_of(to_graph(net), lo, hi, spec, "crown", optimize=True)
        our_time += time.perf_counter() - start
        theirs += bool((low > 0).all())
        ours += bool((mine > 0).all())
        total += 1
    return (
        f"bounds alone (alpha-CROWN, default settings): auto_LiRPA proves {theirs}/{total} "
        f"in {their_time:.1f} s, deeptoolbox {ours}/{total} in {our_time:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--acas-nets", type=int, default=2)
    parser.add_argument("--acas-steps", type=int, default=1500)
    parser.add_argument("--mnist-images", type=int, default=4)
    parser.add_argument("--epsilons", type=str, default="0.005,0.01,0.02,0.05")
    parser.add_argument("--lirpa", action="store_true")
    parser.add_argument("--milp", action="store_true", help="verify_vnnlib(milp=True)")
    here = Path(__file__).resolve().parent.parent
    anchors = [p / "shared" / "anchors" / "auto_LiRPA" for p in (here.parent, here.parent.parent)]
    anchor = next((p for p in anchors if p.is_dir()), anchors[0])
    parser.add_argument("--lirpa-path", type=Path, default=anchor)
    parser.add_argument("--lirpa-deps", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows: list = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"ACAS Xu-style (5 inputs, 6x50 ReLU, opset 8), timeout {args.timeout:g} s:")
        run_family("ACAS Xu-style", acas_instances(folder, range(args.acas_nets), args.acas_steps),
                   args.timeout, rows, args.milp)  # fmt: skip
        epsilons = [float(e) for e in args.epsilons.split(",")]
        print(f"MNIST-style (784 inputs, 256-wide ReLU layers), timeout {args.timeout:g} s:")
        extras = run_family("MNIST-style 784-256xL-10",
                            mnist_instances(folder, (2, 4), args.mnist_images, epsilons, 3),
                            args.timeout, rows, args.milp)  # fmt: skip
    print()
    print(
        "| family | instances | known sat / unsat / open | decided | sat | unsat | "
        "mean s | median s | max s | late | wrong |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for title, n, known, decided, sat, unsat, mean, median, most, late, wrong in rows:
        print(
            f"| {title} | {n} | {known['sat']} / {known['unsat']} / {known[None]} | "
            f"{decided} ({100 * decided / n:.0f}%) | {sat} | {unsat} | {mean:.2f} | "
            f"{median:.2f} | {most:.2f} | {late} | {wrong} |"
        )
    if args.lirpa:
        print(lirpa_compare(extras, args.lirpa_path, args.lirpa_deps))


if __name__ == "__main__":
    main()
