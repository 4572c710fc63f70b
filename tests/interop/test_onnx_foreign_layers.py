"""Graphs other exporters write for GELU, Swish, HardSwish, GroupNorm and Flatten (no
deeptoolbox metadata) import as those toolbox layers; lookalikes stay exact operators.

Each graph is built with onnx.helper in the forms torch.onnx (TorchScript and dynamo) and
tf2onnx write; the imported network must equal onnxruntime running the file within 1e-5, on
a batch size the import did not use.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from deeptoolbox.interop import import_onnx

ATOL = 1e-5
RNG = np.random.default_rng(7)


def _const(name: str, value, dtype=np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def _model(nodes, inputs, consts, opset: int = 17) -> onnx.ModelProto:
    """One graph with float inputs ``{name: dims}`` and the last node's first output."""
    values = [helper.make_tensor_value_info(n, TensorProto.FLOAT, d) for n, d in inputs.items()]
    out = helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "foreign", values, [out], consts)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _check(model: onnx.ModelProto, tmp_path, dims: dict[str, list]) -> dict[str, str]:
    """Import the model, compare with onnxruntime on batch 3; the layer types by name."""
    path = tmp_path / "foreign.onnx"
    onnx.save(model, path)
    net = import_onnx(path)
    feeds = {n: RNG.standard_normal([3, *d[1:]]).astype(np.float32) * 2 for n, d in dims.items()}
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = session.run(None, feeds)[0]
    with torch.no_grad():
        got = net(*[torch.from_numpy(v) for v in feeds.values()]).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    return {name: type(net.layer(name)).__name__ for name in net.layer_names}


IMAGE = {"x": ["N", 4, 3, 3]}
SQRT2 = math.sqrt(2)


def _gelu_torch():
    """torch (TorchScript): Div -> Erf -> Add -> Mul(x, .) -> Mul(., 0.5)."""
    nodes = [helper.make_node("Div", ["x", "sqrt2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["a"]), helper.make_node("Mul", ["x", "a"], ["m"]),
             helper.make_node("Mul", ["m", "half"], ["y"], name="/act/Mul_1")]  # fmt: skip
    return nodes, [_const("sqrt2", SQRT2), _const("one", 1.0), _const("half", 0.5)]


def _gelu_tf():
    """tf2onnx: Mul(0.5, x) and Mul(x, 1/sqrt 2) -> Erf -> Add(1, .), then the product."""
    nodes = [helper.make_node("Mul", ["half", "x"], ["h"]),
             helper.make_node("Mul", ["x", "isqrt2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
             helper.make_node("Add", ["one", "e"], ["a"]), helper.make_node("Mul", ["h", "a"], ["y"])]  # fmt: skip
    return nodes, [_const("isqrt2", 1 / SQRT2), _const("one", 1.0), _const("half", 0.5)]


def _gelu_dynamo():
    """torch (dynamo): Mul(0.5, 1 + erf) then Mul(x, .)."""
    nodes = [helper.make_node("Div", ["x", "sqrt2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["a"]), helper.make_node("Mul", ["half", "a"], ["m"]),
             helper.make_node("Mul", ["x", "m"], ["y"])]  # fmt: skip
    return nodes, [_const("sqrt2", SQRT2), _const("one", 1.0), _const("half", 0.5)]


@pytest.mark.parametrize("form", [_gelu_torch, _gelu_tf, _gelu_dynamo], ids=lambda f: f.__name__)
def test_gelu_written_with_erf_imports_as_gelu(form, tmp_path):
    nodes, consts = form()
    kinds = _check(_model([helper.make_node("Relu", ["x"], ["r"]), *_rename(nodes, "x", "r")],
                          IMAGE, consts), tmp_path, IMAGE)  # fmt: skip
    assert sorted(kinds.values()) == ["GELU", "ImageInput", "ReLU"], kinds


def _rename(nodes, old: str, new: str):
    """The nodes reading ``new`` where they read ``old``."""
    for node in nodes:
        node.input[:] = [new if n == old else n for n in node.input]
    return nodes


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_the_gelu_operator_of_opset_20_imports_as_gelu(approximate, tmp_path):
    node = helper.make_node("Gelu", ["x"], ["y"], name="act", approximate=approximate)
    net_kinds = _check(_model([node], IMAGE, [], opset=20), tmp_path, IMAGE)
    assert net_kinds["act"] == "GELU"


@pytest.mark.parametrize("swap", [False, True])
def test_swish_written_as_x_times_sigmoid_imports_as_swish(swap, tmp_path):
    operands = ["s", "x"] if swap else ["x", "s"]
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", operands, ["y"])]
    kinds = _check(_model(nodes, IMAGE, []), tmp_path, IMAGE)
    assert sorted(kinds.values()) == ["ImageInput", "Swish"], kinds


def test_hard_swish_written_as_x_times_hard_sigmoid_imports_as_hard_swish(tmp_path):
    nodes = [helper.make_node("HardSigmoid", ["x"], ["s"], alpha=1 / 6, beta=0.5),
             helper.make_node("Mul", ["x", "s"], ["y"], name="hs/Mul")]  # fmt: skip
    kinds = _check(_model(nodes, IMAGE, []), tmp_path, IMAGE)
    assert kinds["hs"] == "HardSwish", kinds


@pytest.mark.parametrize("opset, scale_size", [(18, 2), (21, 4)])
def test_the_group_normalization_operator_imports_as_group_norm(opset, scale_size, tmp_path):
    """Opset 18 gives a scale per group, opset 21 one per channel."""
    consts = [
        _const("s", RNG.standard_normal(scale_size)),
        _const("b", RNG.standard_normal(scale_size)),
    ]
    node = helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], name="gn", num_groups=2,
                            epsilon=1e-3)  # fmt: skip
    kinds = _check(_model([node], IMAGE, consts, opset=opset), tmp_path, IMAGE)
    assert kinds["gn"] == "GroupNorm", kinds


def _torch_group_norm(dims: list, inner_scale: float = 1.0, channel_shape=None):
    """torch's group_norm: Reshape(0, G, -1) -> InstanceNormalization -> Reshape(Shape(x))
    -> Mul -> Add by per-channel constants (C, 1, 1[, 1])."""
    channels, spatial = dims[1], len(dims) - 2
    shape = channel_shape or [channels] + [1] * spatial
    consts = [_const("target", [0, 2, -1], np.int64), _const("s", inner_scale * RNG.uniform(0.5, 2, 2)),
              _const("b", inner_scale * RNG.standard_normal(2)),
              _const("w", RNG.standard_normal(shape)), _const("c", RNG.standard_normal(shape))]  # fmt: skip
    nodes = [helper.make_node("Reshape", ["x", "target"], ["r"], name="/gn/Reshape"),
             helper.make_node("InstanceNormalization", ["r", "s", "b"], ["i"], name="/gn/InstanceNormalization",
                              epsilon=1e-5),
             helper.make_node("Shape", ["x"], ["shape"], name="/gn/Shape"),
             helper.make_node("Reshape", ["i", "shape"], ["back"], name="/gn/Reshape_1"),
             helper.make_node("Mul", ["back", "w"], ["m"], name="/gn/Mul"),
             helper.make_node("Add", ["m", "c"], ["y"], name="/gn/Add")]  # fmt: skip
    return nodes, consts


@pytest.mark.parametrize("dims", [["N", 4, 3, 3], ["N", 6, 2, 3, 2]], ids=["image", "volume"])
def test_torch_group_norm_nodes_import_as_group_norm(dims, tmp_path):
    nodes, consts = _torch_group_norm(dims, inner_scale=1.0)
    kinds = _check(_model(nodes, {"x": dims}, consts), tmp_path, {"x": dims})
    assert kinds["gn"] == "GroupNorm", kinds
    assert "OnnxOperator" not in kinds.values(), kinds


def _flatten_by_shape():
    """torch's x.view(x.size(0), -1): Shape -> Gather(0) -> Unsqueeze -> Concat(-1) -> Reshape."""
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["y"], name="/flat/Reshape")]  # fmt: skip
    return nodes, [_const("zero", 0, np.int64), _const("axes", [0], np.int64),
                   _const("minus1", [-1], np.int64)]  # fmt: skip


def _flatten_by_slice():
    """Shape(start=0, end=1) -> Concat(-1) -> Reshape (opset 15+ exporters)."""
    nodes = [helper.make_node("Shape", ["x"], ["n1"], start=0, end=1),
             helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["y"], name="/flat/Reshape")]  # fmt: skip
    return nodes, [_const("minus1", [-1], np.int64)]


def _flatten_zero():
    return [helper.make_node("Reshape", ["x", "t"], ["y"], name="flat")], [
        _const("t", [0, -1], np.int64)
    ]


def _flatten_dynamo():
    """torch dynamo: a constant [-1, C*H*W] with allowzero=1."""
    node = helper.make_node("Reshape", ["x", "t"], ["y"], name="flat", allowzero=1)
    return [node], [_const("t", [-1, 36], np.int64)]


@pytest.mark.parametrize("form", [_flatten_by_shape, _flatten_by_slice, _flatten_zero, _flatten_dynamo],
                         ids=lambda f: f.__name__)  # fmt: skip
def test_reshapes_to_batch_by_everything_import_as_flatten(form, tmp_path):
    nodes, consts = form()
    kinds = _check(_model(nodes, IMAGE, consts, opset=18), tmp_path, IMAGE)
    assert kinds["flat"] == "Flatten", kinds
    assert sorted(kinds.values()) == ["Flatten", "ImageInput"], kinds


# -- lookalikes stay operators --------------------------------------------------------------------


def _sigmoid_of_another_input():
    nodes = [helper.make_node("Sigmoid", ["z"], ["s"]), helper.make_node("Mul", ["x", "s"], ["y"])]
    return nodes, [], {"x": ["N", 4, 3, 3], "z": ["N", 4, 3, 3]}, "Swish"


def _erf_of_another_constant():
    nodes, consts = _gelu_torch()
    consts[0] = _const("sqrt2", 1.5)
    return nodes, consts, IMAGE, "GELU"


def _gelu_with_another_half():
    nodes, consts = _gelu_tf()
    consts[2] = _const("half", 0.6)
    return nodes, consts, IMAGE, "GELU"


def _hard_sigmoid_of_onnx_defaults():
    nodes = [
        helper.make_node("HardSigmoid", ["x"], ["s"]),
        helper.make_node("Mul", ["x", "s"], ["y"]),
    ]
    return nodes, [], IMAGE, "HardSwish"


def _group_norm_scaled_along_width():
    """A (C,) constant broadcasts along the last axis (W), not the channels."""
    dims = ["N", 4, 3, 4]
    nodes, consts = _torch_group_norm(dims, channel_shape=[4])
    return nodes, consts, {"x": dims}, "GroupNorm"


def _reshape_keeping_two_axes():
    nodes = [helper.make_node("Reshape", ["x", "t"], ["y"])]
    return nodes, [_const("t", [0, 2, -1], np.int64)], IMAGE, "Flatten"


def _reshape_by_another_inputs_shape():
    nodes, consts = _flatten_by_shape()
    nodes[0].input[0] = "z"
    return nodes, consts, {"x": ["N", 4, 3, 3], "z": ["N", 2]}, "Flatten"


LOOKALIKES = [_sigmoid_of_another_input, _erf_of_another_constant, _gelu_with_another_half,
              _hard_sigmoid_of_onnx_defaults, _group_norm_scaled_along_width,
              _reshape_keeping_two_axes, _reshape_by_another_inputs_shape]  # fmt: skip


@pytest.mark.parametrize("form", LOOKALIKES, ids=lambda f: f.__name__)
def test_lookalikes_stay_exact_operators(form, tmp_path):
    nodes, consts, dims, layer = form()
    kinds = _check(_model(nodes, dims, consts, opset=18), tmp_path, dims)
    assert layer not in kinds.values(), kinds
    inner = [k for k in kinds.values() if k != "ImageInput"]
    assert len(inner) > 1 or inner == ["OnnxOperator"], kinds  # the nodes, not one layer
