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
    with pytest.raises(UnsupportedLayerError, match="'1'.*Sigmoid"):
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
