"""VNN-LIB parsing and verify_vnnlib on hand-made ONNX networks with known answers."""

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from deeptoolbox.errors import NetworkFileError, OptionError
from deeptoolbox.robustness import VnnlibError, read_vnnlib, verify_vnnlib
from deeptoolbox.robustness._vnnlib import _load_model


def _save(path, nodes, initializers, input_shape, output_size):
    graph = helper.make_graph(
        nodes, "net",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, output_size])],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in initializers.items()],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _absolute_value_net(path):
    """y0 = |x0| (as relu(x0) + relu(-x0)), y1 = relu(x1); Gemm layers."""
    w1 = [[1, 0], [-1, 0], [0, 1]]
    w2 = [[1, 1, 0], [0, 0, 1]]
    nodes = [
        helper.make_node("Gemm", ["input", "w1", "b1"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["output"], transB=1),
    ]
    inits = {"w1": w1, "b1": np.zeros(3), "w2": w2, "b2": np.zeros(2)}
    return _save(path, nodes, inits, (1, 2), 2)


def _random_net(path, seed=0):
    """A MatMul + Add + Relu network with random weights, 3 inputs and 3 outputs."""
    rng = np.random.default_rng(seed)
    inits = {"w1": rng.normal(size=(3, 12)), "b1": rng.normal(size=12) * 0.1,
             "w2": rng.normal(size=(12, 3)) * 0.5, "b2": np.zeros(3)}  # fmt: skip
    nodes = [
        helper.make_node("MatMul", ["input", "w1"], ["a"]),
        helper.make_node("Add", ["a", "b1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["c"]),
        helper.make_node("Add", ["c", "b2"], ["output"]),
    ]
    return _save(path, nodes, inits, (1, 3), 3)


def _conv_net(path, seed=0):
    rng = np.random.default_rng(seed)
    inits = {"k": rng.normal(size=(2, 1, 3, 3)), "kb": np.zeros(2),
             "w": rng.normal(size=(2, 4)), "b": np.zeros(2)}  # fmt: skip
    nodes = [
        helper.make_node("Conv", ["input", "k", "kb"], ["c"], pads=[0, 0, 0, 0]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w", "b"], ["output"], transB=1),
    ]
    return _save(path, nodes, inits, (1, 1, 4, 3), 2)


def _box(n, low=-1.0, high=1.0):
    lines = [f"(declare-const X_{i} Real)" for i in range(n)]
    lines += [f"(assert (>= X_{i} {low}))\n(assert (<= X_{i} {high}))" for i in range(n)]
    return "\n".join(lines)


def _property(tmp_path, inputs, outputs, constraint, name="p.vnnlib"):
    text = _box(inputs) + "\n" + "\n".join(f"(declare-const Y_{j} Real)" for j in range(outputs))
    path = tmp_path / name
    path.write_text(text + f"\n(assert {constraint})\n")
    return path


def _check_counterexample(onnx_path, vnnlib_path, result, num_outputs):
    """Run the counterexample through onnxruntime and check it meets the property."""
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0]
    x = result.counterexample.astype(np.float32)
    y = session.run(None, {feed.name: x.reshape([d or 1 for d in feed.shape])})[0].reshape(-1)
    np.testing.assert_allclose(y, result.outputs, rtol=1e-6, atol=1e-6)
    (region,) = read_vnnlib(vnnlib_path, x.size, num_outputs)
    assert bool(((x >= region.lower) & (x <= region.upper)).all())
    rows = region.spec @ y.astype(np.float64) + region.offset
    assert any((rows[region.groups == g] <= 0).all() for g in range(region.num_regions))


CASES = [
    ("(>= Y_0 1.5)", "unsat"),
    ("(<= Y_0 -0.1)", "unsat"),
    ("(and (>= Y_0 0.9) (>= Y_1 0.9))", "sat"),
    ("(or (and (>= Y_0 1.5)) (and (<= Y_1 -0.5)))", "unsat"),
    ("(or (and (>= Y_0 1.5)) (and (>= Y_1 0.5) (<= Y_0 0.1)))", "sat"),
    ("(<= (+ Y_0 (* -1 Y_1)) -1.5)", "unsat"),
    ("(>= (- Y_0 Y_1) 0.99)", "sat"),
]


@pytest.mark.parametrize(("constraint", "answer"), CASES)
def test_known_answers_on_the_absolute_value_network(tmp_path, constraint, answer):
    model = _absolute_value_net(tmp_path / "abs.onnx")
    prop = _property(tmp_path, 2, 2, constraint)
    result = verify_vnnlib(model, prop, timeout=20)
    assert result.status == answer
    if answer == "sat":
        _check_counterexample(model, prop, result, 2)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_networks_agree_with_sampling(tmp_path, seed):
    model = _random_net(tmp_path / "r.onnx", seed)
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(5).uniform(-1, 1, (20000, 3)).astype(np.float32)
    y = np.concatenate([session.run(None, {"input": v[None]})[0] for v in x[:2000]])
    top = float(y[:, 0].max())
    for threshold, expected in [(top - 0.2, "sat"), (top + 0.5 * abs(top) + 3.0, None)]:
        prop = _property(tmp_path, 3, 3, f"(>= Y_0 {threshold})", name=f"p{threshold:.3f}.vnnlib")
        result = verify_vnnlib(model, prop, timeout=20)
        if expected == "sat":
            assert result.status == "sat"
            _check_counterexample(model, prop, result, 3)
        else:
            assert result.status in ("unsat", "unknown", "timeout")
            if result.status == "unsat":
                assert float(y[:, 0].max()) < threshold


def test_convolution_network(tmp_path):
    model = _conv_net(tmp_path / "c.onnx")
    net, shape = _load_model(model)
    assert shape == (1, 4, 3)
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(-1, 1, (1, 1, 4, 3)).astype(np.float32)
    import torch

    np.testing.assert_allclose(net(torch.as_tensor(x)).detach().numpy(),
                               session.run(None, {"input": x})[0], rtol=1e-5, atol=1e-5)  # fmt: skip
    sat = _property(tmp_path, 12, 2, "(>= Y_0 -100)", name="easy.vnnlib")
    assert verify_vnnlib(model, sat, timeout=20).status == "sat"
    unsat = _property(tmp_path, 12, 2, "(>= Y_0 1000)", name="hard.vnnlib")
    assert verify_vnnlib(model, unsat, timeout=20).status == "unsat"


def test_result_format_and_file(tmp_path):
    model = _absolute_value_net(tmp_path / "abs.onnx")
    prop = _property(tmp_path, 2, 2, "(and (>= Y_0 0.9) (>= Y_1 0.9))")
    result = verify_vnnlib(model, prop, timeout=20)
    text = result.to_vnncomp()
    lines = text.splitlines()
    assert lines[0] == "sat" and lines[1].startswith("((X_0 ") and lines[-1].endswith("))")
    values = dict(line.strip(" ()").split() for line in lines[1:])
    assert float(values["X_1"]) == pytest.approx(float(result.counterexample[1]))
    assert set(values) == {"X_0", "X_1", "Y_0", "Y_1"}
    result.write(tmp_path / "out.txt")
    assert (tmp_path / "out.txt").read_text() == text + "\n"
    unsat = verify_vnnlib(model, _property(tmp_path, 2, 2, "(>= Y_0 2)", "u.vnnlib"), timeout=20)
    assert unsat.to_vnncomp() == "unsat" and unsat.counterexample is None


def test_parser_grammar(tmp_path):
    text = """; a comment line
(declare-const X_0 Real) ; trailing comment
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(assert (or
    (and (>= X_0 0) (<= X_0 0.5) (>= X_1 -1) (<= X_1 1) (<= Y_0 Y_1))
    (and (>= X_0 0.5) (<= X_0 1) (>= X_1 -1) (<= X_1 1) (= Y_0 2) (> Y_1 -3))))
"""
    path = tmp_path / "g.vnnlib"
    path.write_text(text)
    first, second = read_vnnlib(path, 2, 2)
    assert first.lower.tolist() == [0, -1] and first.upper.tolist() == [0.5, 1]
    assert first.spec.tolist() == [[1, -1]] and first.offset.tolist() == [0]
    assert second.lower.tolist() == [0.5, -1]
    # Y_0 = 2 gives Y_0 - 2 <= 0 and 2 - Y_0 <= 0; Y_1 > -3 gives -3 - Y_1 <= 0
    assert second.spec.tolist() == [[1, 0], [-1, 0], [0, -1]]
    assert second.offset.tolist() == [-2, 2, -3]
    assert second.num_regions == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("(declare-const X_0 Real)\n(assert (<= X_0 1)", "never closed"),
        ("(declare-const X_0 Real)\n(assert (<= X_9 1))", "unknown symbol 'X_9'"),
        ("(declare-const X_3 Real)", "network has 2 inputs"),
        ("(declare-const Z Real)", "not named X_i"),
        ("(declare-const X_0 Real)(declare-const X_1 Real)(assert (<= X_0 1))", "missing for"),
        ("(declare-const X_0 Real)(declare-const Y_0 Real)(assert (<= X_0 Y_0))", "mixing"),
        ("(declare-const X_0 Real)(assert (foo X_0 1))", "unsupported constraint"),
        ("(check-sat)", "unsupported command"),
    ],
)
def test_parser_errors_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "bad.vnnlib"
    path.write_text(text)
    with pytest.raises(VnnlibError, match=message):
        read_vnnlib(path, 2, 1)


def test_missing_files_and_bad_timeout(tmp_path):
    model = _absolute_value_net(tmp_path / "abs.onnx")
    with pytest.raises(VnnlibError, match="not found"):
        verify_vnnlib(model, tmp_path / "none.vnnlib", timeout=5)
    with pytest.raises(NetworkFileError, match="not found"):
        verify_vnnlib(tmp_path / "none.onnx", tmp_path / "none.vnnlib", timeout=5)
    with pytest.raises(OptionError, match="timeout"):
        verify_vnnlib(model, tmp_path / "none.vnnlib", timeout=0)


def test_a_layer_that_cannot_be_bounded_is_named_with_the_reason(tmp_path):
    """The second (minimal) ONNX importer is gone: import_onnx's network is used, and a layer
    the bounds cannot handle is named, with why, instead of a silent fallback."""
    from deeptoolbox.robustness import UnsupportedLayerError

    nodes = [
        helper.make_node("Gemm", ["input", "w1", "b1"], ["h"], transB=1, name="fc1"),
        helper.make_node("Exp", ["h"], ["e"], name="growth"),
        helper.make_node("Gemm", ["e", "w2", "b2"], ["output"], transB=1, name="fc2"),
    ]
    inits = {"w1": np.eye(2), "b1": np.zeros(2), "w2": np.eye(2), "b2": np.zeros(2)}
    model = _save(tmp_path / "exp.onnx", nodes, inits, (1, 2), 2)
    prop = _property(tmp_path, 2, 2, "(>= Y_0 100)")
    with pytest.raises(UnsupportedLayerError, match=r"'growth' \(ONNX operator Exp\).*relaxation"):
        verify_vnnlib(model, prop, timeout=5)


def test_a_property_over_many_inputs_is_read_in_linear_time(tmp_path):
    """Each constraint was compared with every other one (4 s for 784 inputs, minutes for
    3,000); now one pass."""
    import time

    n = 3000
    prop = _property(tmp_path, n, 2, "(or (and (>= Y_0 Y_1)) (and (>= Y_1 5)))")
    begin = time.monotonic()
    regions = read_vnnlib(prop, n, 2)
    assert time.monotonic() - begin < 5.0
    assert len(regions) == 1 and regions[0].lower.shape == (n,) and regions[0].num_regions == 2
