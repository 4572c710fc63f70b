"""ONNX graphs that normalize their input with constant nodes (Sub/Div/Mul by Constant nodes
before the first layer) import with the normalization folded into the input layer, and are
bounded and verified (through import_onnx: the second, minimal importer is gone)."""

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from conftest import assert_sound
from deeptoolbox.interop import import_onnx
from deeptoolbox.robustness import estimate_output_bounds, verify_robustness, verify_vnnlib
from deeptoolbox.robustness._graph import ScaleShift, to_graph


def _constant(name, value):
    tensor = numpy_helper.from_array(np.asarray(value, dtype=np.float32), name + "_value")
    return helper.make_node("Constant", [], [name], value=tensor)


def _normalized_conv_net(
    path, first=("Sub", "Div"), seed=0, opset=13, listed=False, stats_as="nodes", after=None
):
    """Constant nodes, x - mean then / std (or the ops in ``first``), Conv, Relu, Gemm.

    ``opset`` 8 writes an IR-3 file; ``listed`` lists the initializers among the graph inputs
    (as older exporters did); ``stats_as="initializers"`` stores mean and std as initializers
    instead of Constant nodes; ``after`` (an op) puts one more constant op after the Relu.
    """
    rng = np.random.default_rng(seed)
    inits = {"k": rng.normal(size=(3, 2, 3, 3)), "kb": rng.normal(size=3) * 0.1,
             "w": rng.normal(size=(3, 12)), "b": np.zeros(3)}  # fmt: skip
    stats = {
        "mean": [[[[0.5]], [[0.25]]]],  # (1, 2, 1, 1): per channel
        "std": [[[[0.25]], [[-0.5]]]],
    }  # a negative factor keeps intervals honest
    nodes = []
    if stats_as == "nodes":
        nodes += [_constant(k, v) for k, v in stats.items()]
    else:
        inits.update(stats)
    current = "input"
    for i, op in enumerate(first):
        operands = [current, "mean" if op in ("Sub", "Add") else "std"]
        nodes.append(helper.make_node(op, operands, [f"n{i}"]))
        current = f"n{i}"
    nodes += [
        helper.make_node("Conv", [current, "k", "kb"], ["c"], pads=[0, 0, 0, 0]),
        helper.make_node("Relu", ["c"], ["r"]),
    ]
    flat_in = "r"
    if after is not None:
        inits["gain"] = rng.uniform(-2, 2, size=(1, 3, 2, 2))
        nodes.append(helper.make_node(after, ["r", "gain"], ["g"], name="gain_op"))
        flat_in = "g"
    nodes += [
        helper.make_node("Flatten", [flat_in], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w", "b"], ["output"], transB=1),
    ]
    tensors = [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k)
               for k, v in inits.items()]  # fmt: skip
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 2, 4, 4])]
    if listed:
        inputs += [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.dims))
                   for t in tensors]  # fmt: skip
    graph = helper.make_graph(
        nodes, "normalized", inputs,
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3])], tensors,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    if opset < 9:
        model.ir_version = 3
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _reference(path, x: torch.Tensor) -> torch.Tensor:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.tensor(np.concatenate([session.run(None, {"input": p[None].numpy()})[0]
                                        for p in x]))  # fmt: skip


# (ops, expected normalization, mean, std) of x -> ops(x) with mean [0.5, 0.25], std [0.25, -0.5]
FOLDS = [
    (("Sub", "Div"), "zscore", [0.5, 0.25], [0.25, -0.5]),
    (("Div", "Add"), "zscore", [-0.125, 0.125], [0.25, -0.5]),  # x / s + m = (x + m s) / s
    (("Mul", "Sub"), "zscore", [2.0, -0.5], [4.0, -2.0]),  # x s - m = (x - m / s) / (1 / s)
    (("Sub",), "zerocenter", [0.5, 0.25], None),
    (("Sub", "Sub"), "zerocenter", [1.0, 0.5], None),
]


@pytest.mark.parametrize(("first", "mode", "mean", "std"), FOLDS)
@pytest.mark.parametrize(("opset", "listed", "stats_as"),
                         [(13, False, "nodes"), (8, True, "initializers"), (8, True, "nodes"),
                          (13, True, "initializers")])  # fmt: skip
def test_constant_normalization_is_folded_into_the_input_layer(
    tmp_path, first, mode, mean, std, opset, listed, stats_as
):
    path = _normalized_conv_net(tmp_path / "n.onnx", first, opset=opset, listed=listed,
                                stats_as=stats_as)  # fmt: skip
    net = import_onnx(path)
    assert net.input_names == ["input"]
    layer = net.layer("input")
    assert (layer.normalization, layer.normalization_dimension) == (mode, "channel")
    torch.testing.assert_close(layer.mean.flatten(), torch.tensor(mean))
    if std is not None:
        torch.testing.assert_close(layer.std.flatten(), torch.tensor(std))
    assert not any(type(net.layer(n)).__name__ == "OnnxOperator" for n in net.layer_names)
    x = torch.rand(4, 2, 4, 4)
    torch.testing.assert_close(net(x), _reference(path, x), rtol=1e-4, atol=1e-4)


def test_scalar_and_per_element_constants_fold_too(tmp_path):
    path = tmp_path / "e.onnx"
    rng = np.random.default_rng(3)
    offset = rng.normal(size=(1, 5)).astype(np.float32)
    nodes = [_constant("scale", 4.0), _constant("offset", offset),
             helper.make_node("Mul", ["scale", "input"], ["m"]),  # constant first: c * x
             helper.make_node("Add", ["m", "offset"], ["a"]),
             helper.make_node("Relu", ["a"], ["output"])]  # fmt: skip
    graph = helper.make_graph(
        nodes, "per_element", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 5])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 5])],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    net = import_onnx(path)
    layer = net.layer("input")
    assert layer.normalization == "zscore"
    torch.testing.assert_close(layer.std, torch.full((5,), 0.25))
    torch.testing.assert_close(layer.mean, torch.tensor(-offset[0] / 4.0))
    x = torch.randn(6, 5)
    torch.testing.assert_close(net(x), _reference(path, x), rtol=1e-5, atol=1e-5)


def test_input_normalization_round_trips_through_export_onnx(tmp_path):
    from deeptoolbox import Network
    from deeptoolbox import layers as L
    from deeptoolbox.interop import export_onnx

    net = Network([L.FeatureInput(3, normalization="zscore", mean=[1.0, -2.0, 0.5],
                                  std=[2.0, 0.5, 4.0]), L.Dense(2)])  # fmt: skip
    again = import_onnx(export_onnx(net, tmp_path / "z.onnx"))
    first = again.layer(again.input_names[0])
    assert first.normalization == "zscore"
    torch.testing.assert_close(first.mean, torch.tensor([1.0, -2.0, 0.5]))
    torch.testing.assert_close(first.std, torch.tensor([2.0, 0.5, 4.0]))
    x = torch.randn(4, 3)
    torch.testing.assert_close(again(x), net(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("first", [("Sub", "Div"), ("Div", "Add"), ("Mul", "Sub")])
def test_imported_network_with_constant_normalization_is_bounded_soundly(tmp_path, first):
    path = _normalized_conv_net(tmp_path / "n.onnx", first)
    net = import_onnx(path)
    graph = to_graph(net)  # used to raise UnsupportedLayerError naming the Sub node
    # issue 13: the normalization is now the input layer's (it was one ScaleShift per node)
    assert graph.nodes[0].name == "input" and graph.nodes[0].kind == "affine"
    x = torch.rand(5, 2, 4, 4)
    torch.testing.assert_close(graph(x), _reference(path, x), rtol=1e-5, atol=1e-5)
    lo, hi = x - 0.05, x + 0.05
    # outputs reach |y| ~ 30 here: float32 rounding of CROWN's sums is a few 1e-6 (seen up to
    # 1e-5 once the normalization is the input layer's), so the tolerance is 3e-5
    for method in ("ibp", "crown"):
        bounds = estimate_output_bounds(net, lo, hi, method=method)
        assert_sound(net, lo, hi, bounds.lower, bounds.upper, tolerance=3e-5)
    alpha = estimate_output_bounds(net, lo, hi, method="crown", optimize_slopes=True, steps=4)
    assert_sound(net, lo, hi, alpha.lower, alpha.upper, tolerance=3e-5)


@pytest.mark.parametrize("op", ["Mul", "Sub", "Div"])
def test_a_constant_affine_node_inside_the_network_is_bounded_soundly(tmp_path, op):
    path = _normalized_conv_net(tmp_path / "g.onnx", after=op)
    net = import_onnx(path)
    graph = to_graph(net)
    gain = [n for n in graph.nodes if n.name == "gain_op"]
    assert len(gain) == 1 and isinstance(gain[0].module, ScaleShift)
    x = torch.rand(4, 2, 4, 4)
    torch.testing.assert_close(graph(x), _reference(path, x), rtol=1e-5, atol=1e-5)
    lo, hi = x - 0.1, x + 0.1
    for method, slopes in (("ibp", False), ("crown", False), ("crown", True)):
        bounds = estimate_output_bounds(net, lo, hi, method=method, optimize_slopes=slopes,
                                        steps=4)  # fmt: skip
        assert_sound(net, lo, hi, bounds.lower, bounds.upper)


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


@pytest.mark.parametrize("opset", [8, 13])
def test_verify_vnnlib_answers_on_an_onnx_network_that_normalizes_its_input(tmp_path, opset):
    path = _normalized_conv_net(tmp_path / "n.onnx", opset=opset, listed=opset == 8)
    from deeptoolbox import Network
    from deeptoolbox.robustness._vnnlib import _load_model

    net, shape = _load_model(path)
    assert isinstance(net, Network) and shape == (2, 4, 4)
    assert net.layer("input").normalization == "zscore"
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

    nodes = [_constant("one", 1.0), helper.make_node("Div", ["one", "input"], ["output"],
                                                     name="reciprocal")]  # fmt: skip
    graph = helper.make_graph(
        nodes, "reciprocal", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3])],
    )  # fmt: skip
    path = tmp_path / "r.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    net = import_onnx(path)
    assert net.layer("input").normalization == "none"  # 1 / x is not affine: not folded
    with pytest.raises(UnsupportedLayerError, match=r"'reciprocal' \(ONNX operator Div\).*affine"):
        to_graph(net)


def test_an_input_layer_with_a_negative_std_is_bounded_soundly():
    """Interval bounds of an input layer took 1/std as non-negative (unsound for std < 0,
    which a folded ONNX Div by a negative constant gives)."""
    from deeptoolbox import Network
    from deeptoolbox import layers as L

    torch.manual_seed(0)
    net = Network([L.FeatureInput(3, normalization="zscore", mean=[0.5, -1.0, 2.0],
                                  std=[-0.5, 2.0, -4.0]), L.Dense(4), L.ReLU(), L.Dense(2)])  # fmt: skip
    x = torch.randn(3, 3)
    lo, hi = x - 0.3, x + 0.3
    for method in ("ibp", "crown"):
        bounds = estimate_output_bounds(net, lo, hi, method=method)
        assert_sound(net, lo, hi, bounds.lower, bounds.upper)
