"""ONNX export and import of the layers issue 13 added (ClippedReLU, PReLU, Softplus, HardSwish,
HardSigmoid, Mish, InstanceNorm, CrossChannelNorm, DepthToSpace, SpaceToDepth, SpatialDropout,
MaxPool3d, AvgPool3d).

Exported files are run in onnxruntime and compared with the network; standard ONNX nodes
written with onnx.helper (Clip, PRelu, Softplus, HardSwish, HardSigmoid, Mish,
InstanceNormalization, LRN, DepthToSpace, SpaceToDepth) import as those layers when they
compute exactly the same, and stay operator layers when they do not.
|network - onnxruntime| <= 1e-5 (float32); where onnxruntime refuses a valid node (LRN with an
even size or alpha = 0) the operator's formula from the ONNX specification, written in numpy,
stands in (onnx's reference evaluator loops over the batch instead of the channels for LRN).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from deeptoolbox import Network, load, save
from deeptoolbox import layers as L
from deeptoolbox.interop import export_onnx, import_onnx

RNG = np.random.default_rng(13)
ATOL = 1e-5


def _onnxruntime(path, x: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _lrn_specification(x: np.ndarray, size: int, alpha=1e-4, beta=0.75, bias=1.0) -> np.ndarray:
    """ONNX LRN: square sums over channels c - floor((size-1)/2) .. c + ceil((size-1)/2)."""
    x = x.astype(np.float64)
    sums = np.zeros_like(x)
    for c in range(x.shape[1]):
        low, high = max(0, c - (size - 1) // 2), min(x.shape[1], c + size // 2 + 1)
        sums[:, c] = np.square(x[:, low:high]).sum(axis=1)
    return x / (bias + alpha / size * sums) ** beta


def _outputs(net: Network, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net.eval()(torch.from_numpy(x)).numpy()


def _image_network() -> Network:
    torch.manual_seed(0)
    net = Network(
        [
            L.ImageInput((3, 6, 6), normalization="none"),
            L.Conv2d(4, 3, padding="same", name="conv"),
            L.InstanceNorm(name="inorm"),
            L.PReLU(name="prelu"),
            L.CrossChannelNorm(4, alpha=0.5, name="lrn"),
            L.ClippedReLU(1.5, name="clip"),
            L.HardSwish(name="hswish"),
            L.Mish(name="mish"),
            L.Softplus(name="softplus"),
            L.HardSigmoid(name="hsig"),
            L.PReLU(0.1, channel_wise=False, name="shared"),
        ]
    )
    with torch.no_grad():
        net.layer("prelu").alpha.copy_(torch.tensor([0.1, -0.2, 0.3, 0.5]))
        net.layer("inorm").weight.copy_(torch.tensor([1.0, 2.0, 0.5, -1.0]))
        net.layer("inorm").bias.copy_(torch.tensor([0.0, 0.1, -0.3, 1.0]))
    return net


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    net = _image_network()
    path = export_onnx(net, tmp_path_factory.mktemp("own") / "net.onnx")
    return net, path


def test_export_writes_the_standard_ops_and_matches_onnxruntime(image_file):
    net, path = image_file
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert {"InstanceNormalization", "PRelu", "Clip", "HardSwish", "Mish", "Softplus",
            "HardSigmoid"} <= ops  # fmt: skip
    x = RNG.standard_normal((3, 3, 6, 6)).astype(np.float32) * 3
    np.testing.assert_allclose(_onnxruntime(path, x), _outputs(net, x), rtol=0, atol=ATOL)


def test_exported_file_imports_back_as_the_layers(image_file, tmp_path):
    net, path = image_file
    again = import_onnx(path)
    kinds = {name: type(again.layer(name)).__name__ for name in again.layer_names}
    for name, kind in [("inorm", "InstanceNorm"), ("prelu", "PReLU"), ("clip", "ClippedReLU"),
                       ("hswish", "HardSwish"), ("mish", "Mish"), ("softplus", "Softplus"),
                       ("hsig", "HardSigmoid"), ("shared", "PReLU")]:  # fmt: skip
        assert kinds[name] == kind, kinds
    torch.testing.assert_close(again.layer("prelu").alpha, net.layer("prelu").alpha)
    assert again.layer("shared").channel_wise is False
    x = RNG.standard_normal((2, 3, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(_outputs(again, x), _outputs(net, x), rtol=0, atol=ATOL)
    reloaded = load(save(again, tmp_path / "again.zip"))
    np.testing.assert_allclose(_outputs(reloaded, x), _outputs(net, x), rtol=0, atol=ATOL)


def test_sequence_layers_export_channels_last(tmp_path):
    torch.manual_seed(1)
    net = Network(
        [
            L.SequenceInput(3),
            L.PReLU(name="prelu"),
            L.InstanceNorm(name="inorm"),
            L.CrossChannelNorm(3, name="lrn"),
        ]
    )
    with torch.no_grad():
        net.layer("prelu").alpha.copy_(torch.tensor([0.1, 0.5, 2.0]))
    path = export_onnx(net, tmp_path / "seq.onnx")
    x = RNG.standard_normal((2, 7, 3)).astype(np.float32)
    np.testing.assert_allclose(_onnxruntime(path, x), _outputs(net, x), rtol=0, atol=ATOL)


def test_pool3d_export_and_import_back(tmp_path):
    torch.manual_seed(2)
    net = Network(
        [
            L.VolumeInput((2, 4, 6, 6), normalization="none"),
            L.MaxPool3d((2, 3, 3), stride=(1, 2, 2), padding=(1, 1, 0), name="maxpool"),
            L.AvgPool3d(2, name="avgpool"),
        ]
    )
    path = export_onnx(net, tmp_path / "pool3d.onnx")
    x = RNG.standard_normal((2, 2, 4, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(_onnxruntime(path, x), _outputs(net, x), rtol=0, atol=ATOL)
    again = import_onnx(path)
    assert type(again.layer("maxpool")).__name__ == "MaxPool3d"
    assert type(again.layer("avgpool")).__name__ == "AvgPool3d"
    assert again.layer("maxpool").padding == (1, 1, 0)
    np.testing.assert_allclose(_outputs(again, x), _outputs(net, x), rtol=0, atol=ATOL)


# -- standard nodes written with onnx.helper -------------------------------------------------


def _single_node_model(op: str, inputs: dict, shape: list, opset: int = 18, **attrs):
    """x (shape) -> one ``op`` node with constant extra inputs ``inputs`` -> y."""
    inits = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inputs.items()]
    node = helper.make_node(op, ["x", *inputs], ["y"], name="node", **attrs)
    graph = helper.make_graph(
        [node], "one", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


CHANNELS = 4
SLOPE = RNG.standard_normal(CHANNELS).astype(np.float32)
HAND_NODES = {
    # name: (op, constant inputs, attributes, input size, the layer it becomes)
    "clip": ("Clip", {"lo": 0.0, "hi": 0.7}, {}, [2, 4, 3, 3], "ClippedReLU"),
    "clip_negative_floor": ("Clip", {"lo": -1.0, "hi": 1.0}, {}, [2, 4, 3, 3], "OnnxOperator"),
    "prelu_channels": ("PRelu", {"s": SLOPE.reshape(4, 1, 1)}, {}, [2, 4, 3, 3], "PReLU"),
    "prelu_channels_5d": (
        "PRelu",
        {"s": SLOPE.reshape(4, 1, 1, 1)},
        {},
        [2, 4, 2, 3, 3],
        "PReLU",
    ),  # fmt: skip
    "prelu_features": ("PRelu", {"s": SLOPE}, {}, [2, 4], "PReLU"),
    "prelu_scalar": ("PRelu", {"s": np.array([0.3])}, {}, [2, 4, 3, 3], "PReLU"),
    "prelu_last_axis": ("PRelu", {"s": SLOPE}, {}, [2, 3, 3, 4], "OnnxOperator"),
    "softplus": ("Softplus", {}, {}, [2, 4, 3, 3], "Softplus"),
    "hardswish": ("HardSwish", {}, {}, [2, 4], "HardSwish"),
    "hardsigmoid_default": ("HardSigmoid", {}, {}, [2, 4, 3, 3], "HardSigmoid"),
    "hardsigmoid_options": ("HardSigmoid", {}, {"alpha": 0.3, "beta": 0.6}, [2, 4], "HardSigmoid"),
    "mish": ("Mish", {}, {}, [2, 4, 3, 3], "Mish"),
    "instance_norm": (
        "InstanceNormalization",
        {"g": SLOPE, "b": SLOPE[::-1].copy()},
        {"epsilon": 1e-3},
        [2, 4, 3, 5],
        "InstanceNorm",
    ),  # fmt: skip
    "instance_norm_5d": (
        "InstanceNormalization",
        {"g": SLOPE, "b": SLOPE},
        {},
        [2, 4, 2, 3, 3],
        "InstanceNorm",
    ),  # fmt: skip
    "lrn_odd": (
        "LRN",
        {},
        {"size": 3, "alpha": 0.5, "beta": 0.6, "bias": 1.5},
        [2, 4, 3, 3],
        "CrossChannelNorm",
    ),  # fmt: skip
    "lrn_even_defaults": ("LRN", {}, {"size": 2}, [2, 4, 3, 3], "CrossChannelNorm"),
    "lrn_even_5d": ("LRN", {}, {"size": 4, "alpha": 0.9}, [2, 5, 2, 3, 3], "CrossChannelNorm"),
    "lrn_zero_alpha": ("LRN", {}, {"size": 3, "alpha": 0.0}, [2, 4, 3, 3], "OnnxOperator"),
    "depth_to_space_dcr": ("DepthToSpace", {}, {"blocksize": 2}, [2, 8, 3, 3], "DepthToSpace"),
    "depth_to_space_crd": (
        "DepthToSpace",
        {},
        {"blocksize": 2, "mode": "CRD"},
        [2, 8, 3, 3],
        "DepthToSpace",
    ),  # fmt: skip
    "space_to_depth": ("SpaceToDepth", {}, {"blocksize": 3}, [2, 2, 6, 3], "SpaceToDepth"),
}
NO_ONNXRUNTIME = {"lrn_even_defaults", "lrn_even_5d", "lrn_zero_alpha"}


@pytest.mark.parametrize("case", sorted(HAND_NODES))
def test_standard_node_imports_as_the_layer_it_equals(case, tmp_path):
    op, constants, attrs, shape, expected = HAND_NODES[case]
    path = tmp_path / f"{case}.onnx"
    onnx.save(_single_node_model(op, constants, shape, **attrs), str(path))
    net = import_onnx(path)
    assert type(net.layer("node")).__name__ == expected
    x = (RNG.standard_normal(shape) * 3).astype(np.float32)
    want = _lrn_specification(x, **attrs) if case in NO_ONNXRUNTIME else _onnxruntime(path, x)
    np.testing.assert_allclose(_outputs(net, x), want, rtol=0, atol=ATOL)


def test_imported_lrn_and_prelu_keep_their_options(tmp_path):
    path = tmp_path / "lrn.onnx"
    onnx.save(_single_node_model("LRN", {}, [1, 4, 2, 2], size=5, alpha=0.2, beta=0.5, bias=3.0),
              str(path))  # fmt: skip
    layer = import_onnx(path).layer("node")
    got = (layer.window_size, layer.alpha, layer.beta, layer.k)
    assert got == pytest.approx((5, 0.2, 0.5, 3.0), rel=1e-7)  # attributes are float32
    path = tmp_path / "prelu.onnx"
    onnx.save(_single_node_model("PRelu", {"s": SLOPE.reshape(4, 1, 1)}, [1, 4, 2, 2]), str(path))
    np.testing.assert_array_equal(import_onnx(path).layer("node").alpha.detach().numpy(), SLOPE)
    path = tmp_path / "d2s.onnx"
    onnx.save(_single_node_model("DepthToSpace", {}, [1, 9, 2, 2], blocksize=3, mode="CRD"),
              str(path))  # fmt: skip
    layer = import_onnx(path).layer("node")
    assert (layer.block_size, layer.mode) == ((3, 3), "crd")
