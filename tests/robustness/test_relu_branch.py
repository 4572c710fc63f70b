"""Branch and bound on ReLU phases (beta-CROWN domains): sound on every domain, and it proves
what CROWN alone cannot; verify_vnnlib uses it for wide inputs, falsification first."""

import time

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from deeptoolbox.robustness import find_adversarial, verify_robustness, verify_vnnlib
from deeptoolbox.robustness._bounds import lower_bound_of
from deeptoolbox.robustness._budget import Budget
from deeptoolbox.robustness._crown import Propagator
from deeptoolbox.robustness._graph import to_graph
from deeptoolbox.robustness._relu_branch import relu_split_and_bound


def _mlp(seed, inputs=2, width=12):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(inputs, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, 1)).eval()  # fmt: skip


def _grid(n=201):
    axis = torch.linspace(-1, 1, n)
    return torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)


@pytest.mark.parametrize("seed", [0, 1])
def test_bounds_on_a_split_domain_hold_for_every_input_of_the_domain(seed):
    """The new rule: clipped intervals of split neurons plus optimized multipliers (beta) are
    lower bounds over the inputs whose neurons have the chosen phases (sampled densely)."""
    net = _mlp(seed)
    graph = to_graph(net)
    x = _grid()
    with torch.no_grad():
        pre = net[0](x)  # node 0: the first pre-activation
        out = net(x)[:, 0]
    generator = torch.Generator().manual_seed(seed)
    domains = torch.randint(-1, 2, (6, 12), generator=generator, dtype=torch.int8)
    domains[:, 4:] = 0  # split four neurons at most, so that most domains are not empty
    lo, hi = -torch.ones(6, 2), torch.ones(6, 2)
    for optimize in (False, True):
        prop = Propagator(graph, lo, hi, "crown", Budget(2**28), splits={0: domains})
        bounds = prop.linear_lower(torch.ones(1, 1, 1), optimize, 30)[:, 0]
        for d in range(6):
            phase = domains[d].float()
            inside = ((pre * phase >= 0) | (phase == 0)).all(1)
            if bool(inside.any()):  # (a domain without inputs may get any bound, +inf too)
                assert float(bounds[d]) <= float(out[inside].min()) + 1e-5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relu_branch_and_bound_is_sound_and_proves_what_crown_cannot(seed):
    net = _mlp(seed)
    graph = to_graph(net)
    with torch.no_grad():
        least = float(net(_grid()).min())
    lo, hi = -torch.ones(2), torch.ones(2)
    crown = float(lower_bound_of(graph, lo[None], hi[None], torch.ones(1, 1, 1), "crown")[0, 0])
    below, above = least - 0.05, least + 0.01
    assert crown < below  # CROWN alone does not prove the property below
    spec = torch.ones(1, 1)
    proven, _ = relu_split_and_bound(graph, lo, hi, spec, offset=torch.tensor([-below]),
                                     deadline=time.monotonic() + 20)  # fmt: skip
    assert proven == "verified"
    wrong, _ = relu_split_and_bound(graph, lo, hi, spec, offset=torch.tensor([-above]),
                                    deadline=time.monotonic() + 3)  # fmt: skip
    assert wrong == "unproven"  # a grid point goes below: never "verified"


def _wide_net(path, seed=0, inputs=24):
    """Gemm-Relu-Gemm-Relu-Gemm with 24 inputs (more than input splitting handles)."""
    rng = np.random.default_rng(seed)
    inits = {"w1": rng.normal(size=(16, inputs)) / np.sqrt(inputs), "b1": rng.normal(size=16) * .1,
             "w2": rng.normal(size=(16, 16)) / 4, "b2": rng.normal(size=16) * 0.1,
             "w3": rng.normal(size=(2, 16)) / 4, "b3": np.zeros(2)}  # fmt: skip
    nodes = [helper.make_node("Gemm", ["input", "w1", "b1"], ["h1"], transB=1),
             helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("Gemm", ["r1", "w2", "b2"], ["h2"], transB=1),
             helper.make_node("Relu", ["h2"], ["r2"]),
             helper.make_node("Gemm", ["r2", "w3", "b3"], ["output"], transB=1)]  # fmt: skip
    graph = helper.make_graph(
        nodes, "wide", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, inputs])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits.items()],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def _linf_property(path, center, eps, clause):
    lines = [f"(declare-const X_{i} Real)" for i in range(center.size)]
    lines += ["(declare-const Y_0 Real)", "(declare-const Y_1 Real)"]
    for i, v in enumerate(center.tolist()):
        lines += [f"(assert (>= X_{i} {v - eps!r}))", f"(assert (<= X_{i} {v + eps!r}))"]
    lines.append(f"(assert {clause})")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_verify_vnnlib_on_a_wide_input_finds_the_planted_counterexample_and_proves_the_rest(
    tmp_path,
):
    model = _wide_net(tmp_path / "w.onnx")
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    center = rng.uniform(-1, 1, 24).astype(np.float32)
    eps = 0.05
    planted = np.clip(center + eps * np.sign(rng.normal(size=24)), center - eps, center + eps)
    y = session.run(None, {"input": planted[None].astype(np.float32)})[0][0]
    # sat: Y_0 - Y_1 reaches the value at a planted corner (a counterexample exists)
    sat = _linf_property(tmp_path / "sat.vnnlib", center, eps, f"(>= Y_0 {float(y[0]) - 1e-3!r})")
    result = verify_vnnlib(model, sat, timeout=20)
    assert result.status == "sat"
    x = result.counterexample.astype(np.float32)
    assert np.all(x >= center - eps - 1e-6) and np.all(x <= center + eps + 1e-6)
    assert session.run(None, {"input": x[None]})[0][0, 0] >= float(y[0]) - 1e-3 - 1e-6
    # unsat: far above anything sampled in the box
    samples = center + eps * rng.uniform(-1, 1, (4000, 24)).astype(np.float32)
    top = max(float(session.run(None, {"input": s[None]})[0][0, 0]) for s in samples[:400])
    unsat = _linf_property(tmp_path / "unsat.vnnlib", center, eps, f"(>= Y_0 {top + 0.05!r})")
    answer = verify_vnnlib(model, unsat, timeout=20)
    assert answer.status == "unsat", answer.notes


def test_verify_robustness_branch_and_bound_splits_relus_on_wide_inputs(monkeypatch):
    from deeptoolbox.robustness import _verify

    calls = []
    original = _verify.relu_split_and_bound

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(_verify, "relu_split_and_bound", spy)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    x = torch.rand(2, 20)
    labels = net(x).argmax(1)
    plain = verify_robustness(net, x, labels, 0.12, timeout=5)
    assert plain.status == ["verified", "unproven"] and not calls
    result = verify_robustness(net, x, labels, 0.12, branch_and_bound=True, timeout=5)
    assert calls  # the unproven observation went to branch and bound on ReLUs
    assert result.status == ["verified", "verified"]
    attack = find_adversarial(net, x, labels, 0.12, steps=50)
    assert not bool(attack.success.any())
