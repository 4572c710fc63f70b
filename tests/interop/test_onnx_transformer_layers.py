"""ONNX export and import of the transformer layers issue 13 added (PatchEmbedding,
EmbeddingConcatenation, SinusoidalPositionEncoding, Attention, Indexing1d, FunctionLayer) and
of NetworkLayer, which exports inlined.

Exported files run in onnxruntime and are compared with the network (|difference| <= 1e-5,
float32); they import back to networks computing the same (PatchEmbedding and
EmbeddingConcatenation as those layers, see test_onnx_layer_round_trip.py); ``Gather(x, i, axis=1)`` with a
constant scalar i on sequences, written with onnx.helper, imports as Indexing1d.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.interop import export_onnx, import_onnx
from deeptoolbox.network import NetworkLayer

RNG = np.random.default_rng(13)
ATOL = 1e-5


def _onnxruntime(path, *xs: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, xs, strict=True)))[0]


def _outputs(net: Network, *xs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net.eval()(*(torch.from_numpy(x) for x in xs)).numpy()


def _vision_transformer() -> Network:
    torch.manual_seed(0)
    block = Network([L.SequenceInput(6), L.Dense(6), L.GELU()], name="mlp")
    return Network(
        [
            L.ImageInput((3, 8, 8), normalization="none"),
            L.PatchEmbedding(4, 6, name="patches"),
            L.EmbeddingConcatenation(name="cls"),
            L.SinusoidalPositionEncoding(name="positions"),
            NetworkLayer(block, name="mlp"),
            L.FunctionLayer("x * sigmoid(x) + mean(x, dim=-1, keepdim=True)", name="function"),
            L.Indexing1d("first", name="token"),
            L.Dense(3, name="fc"),
        ]
    ).eval()


def _cross_attention() -> Network:
    torch.manual_seed(1)
    net = Network(name="cross")
    net.add_layers([L.SequenceInput(4, name="target"), L.Dense(8, name="q"),
                    L.Attention(2, attention_mask="causal", name="attention")])  # fmt: skip
    net.add_layers([L.SequenceInput(3, name="memory"), L.Dense(8, name="k")])
    net.add_layers(L.Dense(6, name="v"))
    net.connect("memory", "v").connect("k", "attention/key").connect("v", "attention/value")
    return net.eval()


@pytest.fixture(scope="module")
def vit_file(tmp_path_factory):
    net = _vision_transformer()
    return net, export_onnx(net, tmp_path_factory.mktemp("vit") / "vit.onnx")


def test_vision_transformer_file_matches_onnxruntime_and_inlines_the_nested_network(vit_file):
    net, path = vit_file
    model = onnx.load(str(path))
    assert {o.domain for o in model.opset_import} <= {"", "ai.onnx"}
    assert not model.functions  # the NetworkLayer's layers are in the main graph
    ops = {node.op_type for node in model.graph.node}
    assert {"Conv", "Concat", "Gather"} <= ops
    x = RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(_onnxruntime(path, x), _outputs(net, x), atol=ATOL)


def test_vision_transformer_file_imports_back(vit_file):
    net, path = vit_file
    imported = import_onnx(path)
    x = RNG.standard_normal((3, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(_outputs(imported, x), _outputs(net, x), atol=ATOL)
    assert type(imported.layer("patches")) is L.PatchEmbedding
    assert type(imported.layer("cls")) is L.EmbeddingConcatenation
    assert isinstance(imported.layer("token"), L.Indexing1d)


def test_cross_attention_file_keeps_free_lengths(tmp_path):
    net = _cross_attention()
    path = export_onnx(net, tmp_path / "cross.onnx")
    for t, s in ((5, 5), (8, 8)):  # export_onnx gives all free-length inputs one time axis
        target = RNG.standard_normal((2, t, 4)).astype(np.float32)
        memory = RNG.standard_normal((2, s, 3)).astype(np.float32)
        want = _outputs(net, target, memory)
        np.testing.assert_allclose(_onnxruntime(path, target, memory), want, atol=ATOL)
    imported = import_onnx(path)
    np.testing.assert_allclose(_outputs(imported, target, memory), want, atol=ATOL)


def _gather_model(index: np.ndarray, axis: int, path) -> str:
    graph = helper.make_graph(
        [helper.make_node("Gather", ["x", "i"], ["y"], name="pick", axis=axis)],
        "gather",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(index, "i")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return str(path)


@pytest.mark.parametrize("index", [0, 5, -1, -6])
def test_gather_of_one_step_imports_as_indexing1d(index, tmp_path):
    x = RNG.standard_normal((2, 6, 4)).astype(np.float32)
    net = import_onnx(_gather_model(np.array(index, dtype=np.int64), 1, tmp_path / "g.onnx"))
    layer = net.layer("pick")
    assert isinstance(layer, L.Indexing1d) and layer.index == index
    np.testing.assert_array_equal(_outputs(net, x), x[:, index])


def test_other_gathers_stay_operators(tmp_path):
    x = RNG.standard_normal((2, 6, 4)).astype(np.float32)
    for index, axis in ((np.array([1, 3], dtype=np.int64), 1), (np.array(2, dtype=np.int64), 2)):
        net = import_onnx(_gather_model(index, axis, tmp_path / f"g{axis}.onnx"))
        assert not isinstance(net.layer("pick"), L.Indexing1d)
        np.testing.assert_array_equal(_outputs(net, x), np.take(x, index, axis=axis))
