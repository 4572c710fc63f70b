"""ONNX graphs that normalize their input with constant nodes (Sub/Div/Mul by Constant nodes
before the first layer) are bounded and verified, through import_onnx and the minimal importer."""

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from conftest import assert_sound
from deeptoolbox.interop import import_onnx
from deeptoolbox.robustness import estimate_output_bounds, verify_robustness, verify_vnnlib
from deeptoolbox.robustness._graph import ScaleShift, to_graph
from deeptoolbox.robustness._onnx_minimal import load_onnx_sequential


def _constant(name, value):
    tensor = numpy_helper.from_array(np.asarray(value, dtype=np.float32), name + "_value")
    return helper.make_node("Constant", [], [name], value=tensor)


def _normalized_conv_net(path, first=("Sub", "Div"), seed=0):
    """Constant nodes, x - mean then / std (or the ops in ``first``), Conv, Relu, Gemm."""
    rng = np.random.default_rng(seed)
    inits = {"k": rng.normal(size=(3, 2, 3, 3)), "kb": rng.normal(size=3) * 0.1,
             "w": rng.normal(size=(3, 12)), "b": np.zeros(3)}  # fmt: skip
    nodes = [
        _constant("mean", [[[[0.5]], [[0.25]]]]),  # (1, 2, 1, 1): per channel
        _constant("std", [[[[0.25]], [[-0.5]]]]),  # a negative factor keeps intervals honest
    ]
    current = "input"
    for i, op in enumerate(first):
        operands = [current, "mean" if op in ("Sub", "Add") else "std"]
        nodes.append(helper.make_node(op, operands, [f"n{i}"]))
        current = f"n{i}"
    nodes += [
        helper.make_node("Conv", [current, "k", "kb"], ["c"], pads=[0, 0, 0, 0]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w", "b"], ["output"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "normalized",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits.items()],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _reference(path, x: torch.Tensor) -> torch.Tensor:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.tensor(np.concatenate([session.run(None, {"input": p[None].numpy()})[0]
                                        for p in x]))  # fmt: skip


@pytest.mark.parametrize("first", [("Sub", "Div"), ("Div", "Add"), ("Mul", "Sub")])
def test_imported_network_with_constant_normalization_is_bounded_soundly(tmp_path, first):
    path = _normalized_conv_net(tmp_path / "n.onnx", first)
    net = import_onnx(path)
    graph = to_graph(net)  # used to raise UnsupportedLayerError naming the Sub node
    assert [type(n.module) for n in graph.nodes[: len(first)]] == [ScaleShift] * len(first)
    x = torch.rand(5, 2, 4, 4)
    torch.testing.assert_close(graph(x), _reference(path, x), rtol=1e-5, atol=1e-5)
    lo, hi = x - 0.05, x + 0.05
    for method in ("ibp", "crown"):
        bounds = estimate_output_bounds(net, lo, hi, method=method)
        assert_sound(net, lo, hi, bounds.lower, bounds.upper)
    alpha = estimate_output_bounds(net, lo, hi, method="crown", optimize_slopes=True,
                                   iterations=4)  # fmt: skip
    assert_sound(net, lo, hi, alpha.lower, alpha.upper)


def test_verify_robustness_answers_on_an_onnx_network_that_normalizes_its_input(tmp_path):
    net = import_onnx(_normalized_conv_net(tmp_path / "n.onnx"))
    x = torch.rand(3, 2, 4, 4)
    with torch.no_grad():
        labels = net(x).argmax(1)
    small = verify_robustness(net, x, labels, 1e-4)
    assert small.status == ["verified"] * 3
    large = verify_robustness(net, x, labels, 2.0)
    assert "violated" in large.status
    for i, status in enumerate(large.status):
        if status == "violated":  # the counterexample is real, in the box, and misclassified
            point = large.counterexamples[i]
            assert float((point - x[i]).abs().max()) <= 2.0 + 1e-6
            assert int(net(point[None]).argmax()) != int(labels[i])


def _output_property(tmp_path, path, center, eps, label, name):
    lines = []
    for i, v in enumerate(center.flatten().tolist()):
        lines += [f"(declare-const X_{i} Real)", f"(assert (>= X_{i} {v - eps!r}))",
                  f"(assert (<= X_{i} {v + eps!r}))"]  # fmt: skip
    lines += [f"(declare-const Y_{j} Real)" for j in range(3)]
    others = " ".join(f"(>= Y_{j} Y_{label})" for j in range(3) if j != label)
    lines.append(f"(assert (or {others}))")
    prop = tmp_path / name
    prop.write_text("\n".join(lines) + "\n")
    return prop


@pytest.mark.parametrize("minimal", [False, True])
def test_verify_vnnlib_answers_on_an_onnx_network_that_normalizes_its_input(
    tmp_path, monkeypatch, minimal
):
    path = _normalized_conv_net(tmp_path / "n.onnx")
    if minimal:
        import deeptoolbox.interop as interop

        monkeypatch.delattr(interop, "import_onnx")
        net, shape = load_onnx_sequential(path)
        assert shape == (2, 4, 4) and isinstance(net[0], ScaleShift)
        x = torch.rand(4, 2, 4, 4)
        torch.testing.assert_close(net(x), _reference(path, x), rtol=1e-5, atol=1e-5)
    else:  # import_onnx's network is used, not the fallback
        from deeptoolbox import Network
        from deeptoolbox.robustness._vnnlib import _load_model

        assert isinstance(_load_model(path)[0], Network)
    center = torch.rand(1, 2, 4, 4)
    label = int(_reference(path, center).argmax())
    robust = _output_property(tmp_path, path, center, 1e-4, label, "robust.vnnlib")
    assert verify_vnnlib(path, robust, timeout=20).status == "unsat"
    fragile = _output_property(tmp_path, path, center, 2.0, label, "fragile.vnnlib")
    result = verify_vnnlib(path, fragile, timeout=20)
    assert result.status == "sat"
    point = torch.tensor(result.counterexample, dtype=torch.float32).reshape(1, 2, 4, 4)
    assert float((point - center).abs().max()) <= 2.0 + 1e-5
    assert int(_reference(path, point).argmax()) != label


def test_dividing_by_the_input_is_refused_by_name(tmp_path):
    from deeptoolbox.robustness import UnsupportedLayerError

    nodes = [_constant("one", 1.0), helper.make_node("Div", ["one", "input"], ["output"])]
    graph = helper.make_graph(
        nodes, "reciprocal", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3])],
    )  # fmt: skip
    path = tmp_path / "r.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    with pytest.raises(UnsupportedLayerError, match="Div"):
        load_onnx_sequential(path)
