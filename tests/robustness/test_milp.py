"""milp_reaches and verify_vnnlib(milp=True): a complete check, against brute force.

The reference maximum of a one-hidden-layer network over a box is exact: the network is
linear on each activation pattern, so its maximum is the largest of one linear program per
pattern (2^8 here, scipy.optimize.linprog), independent of the MILP encoding.
"""

import itertools
import time

import numpy as np
import pytest
import torch
from scipy.optimize import linprog
from torch import nn

from deeptoolbox.cli import main
from deeptoolbox.errors import OptionError, UnsupportedLayerError
from deeptoolbox.robustness import milp_reaches, verify_vnnlib
from deeptoolbox.robustness._bounds import lower_bound_of
from deeptoolbox.robustness._graph import to_graph


def _tiny(seed=0, hidden=8):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, 2)).eval()


def _exact_max(net, row, lo, hi) -> float:
    """max over the box of row @ net(x), by one LP per activation pattern."""
    w1, b1 = net[0].weight.detach().double().numpy(), net[0].bias.detach().double().numpy()
    w2, b2 = net[2].weight.detach().double().numpy(), net[2].bias.detach().double().numpy()
    c = np.asarray(row, dtype=np.float64) @ w2  # row @ y = c @ relu(h) + row @ b2
    best = -np.inf
    for pattern in itertools.product((0.0, 1.0), repeat=w1.shape[0]):
        p = np.array(pattern)
        sign = 1 - 2 * p  # active: h >= 0 -> -h <= 0; inactive: h <= 0
        a_ub, b_ub = sign[:, None] * w1, -sign * b1
        objective = -((c * p) @ w1)
        result = linprog(objective, A_ub=a_ub, b_ub=b_ub, bounds=list(zip(lo, hi, strict=True)))
        if result.status == 0:
            best = max(best, -result.fun + (c * p) @ b1 + row @ b2)
    return float(best)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_milp_agrees_with_brute_force(seed):
    net = _tiny(seed)
    lo, hi = np.array([-1.0, -0.5]), np.array([1.0, 1.5])
    row = np.array([1.0, -1.0])  # y0 - y1
    top = _exact_max(net, row, lo, hi)
    grid = torch.cartesian_prod(torch.linspace(-1, 1, 201), torch.linspace(-0.5, 1.5, 201))
    with torch.no_grad():
        assert float((net(grid) @ torch.tensor(row, dtype=torch.float32)).max()) <= top + 1e-4
    # unsafe: y0 - y1 >= t, i.e. row -(y0 - y1) + t <= 0
    for t, expected in ((top - 0.02, "violated"), (top + 0.02, "verified")):
        status, x = milp_reaches(net, lo, hi, [-row], [t], timeout=30)
        assert status == expected, (t, top)
        if expected == "violated":
            assert bool(
                (x >= torch.tensor(lo) - 1e-6).all() and (x <= torch.tensor(hi) + 1e-6).all()
            )
            with torch.no_grad():
                value = float(net(x[None].float())[0] @ torch.tensor(row, dtype=torch.float32))
            assert value >= t - 1e-4  # the counterexample really reaches the region


def test_milp_decides_what_the_bounds_leave_open():
    """A threshold between the true maximum and alpha-CROWN's bound: bounds alone cannot
    prove it, MILP does; and one just under the true maximum is refuted."""
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                        nn.Linear(16, 1)).eval()  # fmt: skip
    lo, hi = -torch.ones(1, 2), torch.ones(1, 2)
    bound = -float(lower_bound_of(to_graph(net), lo, hi, -torch.ones(1, 1, 1), "crown",
                                  optimize=True, intermediate=True)[0, 0])  # fmt: skip
    grid = torch.cartesian_prod(torch.linspace(-1, 1, 401), torch.linspace(-1, 1, 401))
    with torch.no_grad():
        sampled = float(net(grid).max())
    assert bound > sampled + 0.05  # the bounds leave a gap
    t = (bound + sampled) / 2 + 0.01  # above the true max (within ~0.01 of sampled)
    assert milp_reaches(net, lo[0], hi[0], [[-1.0]], [t])[0] == "verified"
    status, x = milp_reaches(net, lo[0], hi[0], [[-1.0]], [sampled - 1e-3])
    with torch.no_grad():
        assert status == "violated" and float(net(x[None])) >= sampled - 1e-3 - 1e-5


def test_regions_are_disjunctions_of_conjunctions():
    net = _tiny(0)
    lo, hi = -np.ones(2), np.ones(2)
    top0 = _exact_max(net, np.array([1.0, 0.0]), lo, hi)
    top1 = _exact_max(net, np.array([0.0, 1.0]), lo, hi)
    # region 0: y0 >= top0 + 0.1 (unreachable); region 1: y1 >= top1 - 0.05 (reachable)
    spec, offset = [[-1.0, 0.0], [0.0, -1.0]], [top0 + 0.1, top1 - 0.05]
    assert milp_reaches(net, lo, hi, spec, offset, [0, 1])[0] == "violated"
    assert milp_reaches(net, lo, hi, spec[:1], offset[:1])[0] == "verified"
    # one region with both rows: both must hold, and the first cannot
    assert milp_reaches(net, lo, hi, spec, offset, [0, 0])[0] == "verified"


def test_timeout_is_kept_and_bad_input_is_named():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                        nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1)).eval()  # fmt: skip
    lo, hi = -torch.ones(30), torch.ones(30)
    with torch.no_grad():
        centre = float(net(torch.zeros(1, 30)))
    start = time.monotonic()
    status, _ = milp_reaches(net, lo, hi, [[-1.0]], [centre + 0.5], timeout=0.5)
    assert time.monotonic() - start < 2.5
    assert status in ("unproven", "violated", "verified")
    with pytest.raises(OptionError, match="timeout"):
        milp_reaches(net, lo, hi, [[-1.0]], [0.0], timeout=0)
    with pytest.raises(OptionError, match="2 columns but the network has 1 outputs"):
        milp_reaches(net, lo, hi, [[-1.0, 1.0]], [0.0])
    with pytest.raises(UnsupportedLayerError, match="'1'.*Sigmoid.*max pooling"):
        milp_reaches(nn.Sequential(nn.Linear(2, 2), nn.Sigmoid()), -np.ones(2), np.ones(2),
                     [[1.0, 0.0]], [0.0])  # fmt: skip


def _export(net, path, inputs):
    torch.onnx.export(net, (torch.zeros(1, inputs),), str(path), dynamo=False)
    return path


def _property(path, inputs, outputs, lo, hi, condition):
    lines = [f"(declare-const X_{i} Real)" for i in range(inputs)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(outputs)]
    for i in range(inputs):
        lines += [f"(assert (>= X_{i} {lo})) ", f"(assert (<= X_{i} {hi}))"]
    path.write_text("\n".join([*lines, condition]) + "\n")
    return path


@pytest.mark.parametrize("shift, answer", [(0.02, "unsat"), (-0.02, "sat")])
def test_verify_vnnlib_with_milp_and_the_cli(tmp_path, capsys, shift, answer):
    net = _tiny(1)
    model = _export(net, tmp_path / "net.onnx", 2)
    top = _exact_max(net, np.array([1.0, -1.0]), -np.ones(2), np.ones(2))
    prop = _property(tmp_path / "p.vnnlib", 2, 2, -1, 1, f"(assert (>= (- Y_0 Y_1) {top + shift}))")
    result = verify_vnnlib(model, prop, timeout=30, milp=True)
    assert result.status == answer
    if answer == "sat":
        assert result.outputs[0] - result.outputs[1] >= top + shift - 1e-5
    assert main(["verify", str(model), str(prop), "--timeout", "30", "--milp"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == answer


def _pooled(slope: float, seed: int = 0):
    """Linear 2-6, BatchNorm (inference statistics), (leaky) ReLU, reshape to (2, 3), max
    pooling (kernel 2, stride 1), flatten, Linear 4-2."""
    torch.manual_seed(seed)
    norm = nn.BatchNorm1d(6)
    with torch.no_grad():
        norm.running_mean.uniform_(-0.5, 0.5), norm.running_var.uniform_(0.5, 2.0)
        norm.weight.uniform_(0.5, 1.5), norm.bias.uniform_(-0.3, 0.3)
    act = nn.ReLU() if slope == 0 else nn.LeakyReLU(slope)
    return nn.Sequential(nn.Linear(2, 6), norm, act, nn.Unflatten(1, (2, 3)),
                         nn.MaxPool1d(2, stride=1), nn.Flatten(), nn.Linear(4, 2)).eval()  # fmt: skip


def _exact_pooled_max(net, slope, row, lo, hi) -> float:
    """max over the box of row @ net(x): one LP per activation pattern and choice of the max
    of each window (2^6 x 2^4), BatchNorm folded here by hand."""
    w1, b1 = net[0].weight.detach().double().numpy(), net[0].bias.detach().double().numpy()
    norm = net[1]
    scale = (norm.weight / torch.sqrt(norm.running_var + norm.eps)).detach().double().numpy()
    shift = norm.bias.detach().double().numpy() - norm.running_mean.double().numpy() * scale
    w, b = scale[:, None] * w1, scale * b1 + shift  # h = w x + b
    w2, b2 = net[6].weight.detach().double().numpy(), net[6].bias.detach().double().numpy()
    c = np.asarray(row, dtype=np.float64) @ w2
    windows = [(ch * 3 + t, ch * 3 + t + 1) for ch in range(2) for t in range(2)]
    best = -np.inf
    for pattern in itertools.product((0, 1), repeat=6):
        p = np.array(pattern)
        gain = np.where(p == 1, 1.0, slope)  # a = gain * h
        rows_ub, rhs = [(1 - 2 * p)[:, None] * w], [-(1 - 2 * p) * b]
        for choice in itertools.product((0, 1), repeat=4):
            picked = [win[k] for win, k in zip(windows, choice, strict=True)]
            others = [win[1 - k] for win, k in zip(windows, choice, strict=True)]
            # a_other - a_picked <= 0 for each window
            a_ub = np.vstack(rows_ub + [gain[o] * w[o] - gain[q] * w[q]
                                        for q, o in zip(picked, others, strict=True)])  # fmt: skip
            b_ub = np.concatenate(rhs + [[gain[q] * b[q] - gain[o] * b[o]]
                                         for q, o in zip(picked, others, strict=True)])  # fmt: skip
            lin = sum(c[k] * gain[q] * w[q] for k, q in enumerate(picked))
            const = sum(c[k] * gain[q] * b[q] for k, q in enumerate(picked)) + row @ b2
            result = linprog(-lin, A_ub=a_ub, b_ub=b_ub, bounds=list(zip(lo, hi, strict=True)))
            if result.status == 0:
                best = max(best, -result.fun + const)
    return float(best)


@pytest.mark.parametrize("slope", [0.0, 0.2])
def test_milp_with_batchnorm_reshape_and_max_pooling_agrees_with_brute_force(slope):
    net = _pooled(slope)
    kinds = [n.kind for n in to_graph(net).nodes]
    assert kinds[2:5] == ["relu" if slope == 0 else "leaky_relu", "affine", "max"]
    lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    row = np.array([1.0, -1.0])
    top = _exact_pooled_max(net, slope, row, lo, hi)
    grid = torch.cartesian_prod(torch.linspace(-1, 1, 201), torch.linspace(-1, 1, 201))
    with torch.no_grad():
        sampled = float((net(grid) @ torch.tensor(row, dtype=torch.float32)).max())
    assert top - 0.02 <= sampled <= top + 1e-4  # the reference is the true maximum
    for t, expected in ((top - 0.01, "violated"), (top + 0.01, "verified")):
        status, x = milp_reaches(net, lo, hi, [-row], [t], timeout=30)
        assert status == expected, (t, top)
        if expected == "violated":
            with torch.no_grad():
                value = float(net(x[None].float())[0] @ torch.tensor(row, dtype=torch.float32))
            assert value >= t - 1e-4
