"""Bounds and VNN-LIB verification of ONNX files that other exporters wrote: torch's
``x.view(x.size(0), -1)`` (Shape -> Gather -> Unsqueeze -> Concat -> Reshape) now imports as a
Flatten layer, which the bounds treat as the affine map it is; before, the Reshape stayed an
ONNX operator and verification refused the network. Layers the bounds do not support are
refused by their toolbox name (Swish), and operators that stay operators still by op type.
"""

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from conftest import assert_sound
from deeptoolbox.errors import UnsupportedLayerError
from deeptoolbox.interop import import_onnx
from deeptoolbox.robustness import estimate_output_bounds, verify_vnnlib
from deeptoolbox.robustness._graph import to_graph


def _const(name, value, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def _torch_style_net(path, *, activation="Relu", target=None, head=True):
    """Conv -> activation -> view(N, -1) as torch writes it -> Gemm (3 classes).

    ``activation="Swish"`` writes x * Sigmoid(x); ``target`` a constant Reshape target
    instead of the shape arithmetic; ``head=False`` ends with the Reshape (N, 6, 2)."""
    rng = np.random.default_rng(3)
    inits = [_const("k", rng.normal(size=(3, 2, 3, 3))), _const("kb", rng.normal(size=3) * 0.1),
             _const("w", rng.normal(size=(3, 12))), _const("b", np.zeros(3)),
             _const("zero", 0, np.int64), _const("axes", [0], np.int64),
             _const("minus1", [-1], np.int64)]  # fmt: skip
    nodes = [helper.make_node("Conv", ["input", "k", "kb"], ["c"], name="conv")]
    if activation == "Swish":
        nodes += [helper.make_node("Sigmoid", ["c"], ["s"], name="act/Sigmoid"),
                  helper.make_node("Mul", ["c", "s"], ["r"], name="act/Mul")]  # fmt: skip
    else:
        nodes.append(helper.make_node("Relu", ["c"], ["r"], name="relu"))
    if target is None:
        nodes += [helper.make_node("Shape", ["r"], ["shape"]),
                  helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
                  helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
                  helper.make_node("Concat", ["n1", "minus1"], ["t"], axis=0)]  # fmt: skip
    else:
        inits.append(_const("t", target, np.int64))
    nodes.append(helper.make_node("Reshape", ["r", "t"], ["f" if head else "output"],
                                  name="flat"))  # fmt: skip
    if head:
        nodes.append(helper.make_node("Gemm", ["f", "w", "b"], ["output"], transB=1, name="fc"))
    graph = helper.make_graph(
        nodes, "torch_style", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                             ["N", 2, 4, 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)], inits,
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def _reference(path, x):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])


def test_the_shape_arithmetic_flatten_is_a_flatten_layer_and_is_bounded_soundly(tmp_path):
    path = _torch_style_net(tmp_path / "n.onnx")
    net = import_onnx(path)
    assert type(net.layer("flat")).__name__ == "Flatten"
    graph = to_graph(net)  # raised UnsupportedLayerError naming the Reshape operator before
    kinds = {n.name: n.kind for n in graph.nodes}
    assert kinds["flat"] == "affine" and kinds["relu"] == "relu", kinds
    x = torch.rand(4, 2, 4, 4)
    torch.testing.assert_close(graph(x), _reference(path, x), rtol=1e-5, atol=1e-5)
    lo, hi = x - 0.05, x + 0.05
    for method in ("ibp", "crown"):
        bounds = estimate_output_bounds(net, lo, hi, method=method)
        assert_sound(net, lo, hi, bounds.lower, bounds.upper)


def _output_property(tmp_path, center, eps, label, name):
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


def test_verify_vnnlib_answers_on_a_torch_style_flatten(tmp_path):
    path = _torch_style_net(tmp_path / "n.onnx")
    center = torch.rand(1, 2, 4, 4)
    label = int(_reference(path, center).argmax())
    robust = _output_property(tmp_path, center, 1e-4, label, "robust.vnnlib")
    assert verify_vnnlib(path, robust, timeout=20).status == "unsat"
    fragile = _output_property(tmp_path, center, 2.0, label, "fragile.vnnlib")
    result = verify_vnnlib(path, fragile, timeout=20)
    assert result.status == "sat"
    point = torch.tensor(result.counterexample, dtype=torch.float32).reshape(1, 2, 4, 4)
    assert float((point - center).abs().max()) <= 2.0 + 1e-5
    assert int(_reference(path, point).argmax()) != label


def test_a_foreign_swish_is_refused_by_its_layer_name(tmp_path):
    net = import_onnx(_torch_style_net(tmp_path / "s.onnx", activation="Swish"))
    assert type(net.layer("act")).__name__ == "Swish"
    with pytest.raises(UnsupportedLayerError, match=r"Layer 'act' \(Swish\)"):
        to_graph(net)


def test_a_reshape_that_is_not_a_flatten_stays_an_operator_and_is_refused(tmp_path):
    """(N, 3, 2, 2) to (N, 6, 2): no Flatten, so the Reshape operator is refused by op type."""
    net = import_onnx(_torch_style_net(tmp_path / "r.onnx", target=[0, 6, 2], head=False))
    assert type(net.layer("flat")).__name__ == "OnnxOperator"
    with pytest.raises(UnsupportedLayerError, match=r"'flat' \(ONNX operator Reshape\)"):
        to_graph(net)
