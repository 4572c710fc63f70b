"""export_onnx -> import_onnx gives back PatchEmbedding, EmbeddingConcatenation and ScaleOffset
as those layers (issue 13), with their options and weights, computing what the original and
onnxruntime compute (|difference| <= 1e-5, float32).

PatchEmbedding on images and volumes (``Conv`` with stride = kernel -> ``Reshape`` ->
``Transpose``) and the class token (``Concat(Expand(token), x)``) are recognised from the graph,
also in files written with onnx.helper; a PatchEmbedding on sequences (the nodes of a
``Conv1d`` with stride = kernel) and a ScaleOffset (constant ``Mul`` + ``Add``) only where
export_onnx recorded the class in the file's metadata, so a plain Conv1d stays a Conv1d and
constant Mul/Add nodes of other files stay operators.
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

RNG = np.random.default_rng(31)
ATOL = 1e-5


def _onnxruntime(path, x: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _outputs(net: Network, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net.eval()(torch.from_numpy(x)).numpy()


def _perturb(net: Network, seed: int) -> Network:
    """Random values in every parameter and buffer (zero biases would hide a lost bias)."""
    net.initialize()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in [*net.parameters(), *net.buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.5)
    return net.eval()


CASES = {
    "image": (L.ImageInput((3, 8, 8), normalization="none"), L.PatchEmbedding((4, 2), 6),
              (2, 3, 8, 8)),
    "volume": (L.VolumeInput((2, 4, 4, 4), normalization="none"), L.PatchEmbedding(2, 5),
               (2, 2, 4, 4, 4)),
    "sequence": (L.SequenceInput(3, length=8), L.PatchEmbedding(2, 4), (2, 8, 3)),
}  # fmt: skip


@pytest.mark.parametrize("kind", CASES)
def test_patch_embedding_and_class_token_come_back_as_those_layers(kind, tmp_path):
    input_layer, patches, shape = CASES[kind]
    patches.name = "patches"
    net = _perturb(Network([input_layer, patches, L.EmbeddingConcatenation(name="cls"),
                            L.Dense(3, name="fc")]), seed=len(kind))  # fmt: skip
    path = export_onnx(net, tmp_path / f"{kind}.onnx")
    imported = import_onnx(path)
    assert [type(imported.layer(n)).__name__ for n in imported.layer_names] == [
        type(input_layer).__name__,
        "PatchEmbedding",
        "EmbeddingConcatenation",
        "Dense",
    ]
    assert imported.layer("patches").get_config() == net.layer("patches").get_config()
    for name in ("patches", "cls"):
        for key, value in net.layer(name).state_dict().items():
            torch.testing.assert_close(imported.layer(name).state_dict()[key], value)
    x = RNG.standard_normal((3, *shape[1:])).astype(np.float32)
    want = _outputs(net, x)
    np.testing.assert_allclose(_outputs(imported, x), want, atol=ATOL)
    np.testing.assert_allclose(_onnxruntime(path, x), want, atol=ATOL)


@pytest.mark.parametrize(
    ("input_layer", "shape", "trainable"),
    [
        (L.ImageInput((3, 4, 4), normalization="none"), (3, 1, 1), False),
        (L.FeatureInput(4), (4,), True),
        (L.SequenceInput(3, length=5), (3,), False),
    ],
)
def test_scale_offset_comes_back_with_its_values(input_layer, shape, trainable, tmp_path):
    net = _perturb(Network([input_layer, L.ReLU(name="relu"),
                            L.ScaleOffset(shape, trainable=trainable, name="affine"),
                            L.Tanh(name="tanh")]), seed=7)  # fmt: skip
    path = export_onnx(net, tmp_path / "affine.onnx")
    imported = import_onnx(path)
    layer = imported.layer("affine")
    assert type(layer) is L.ScaleOffset and layer.get_config() == net.layer("affine").get_config()
    torch.testing.assert_close(layer.scale, net.layer("affine").scale)
    torch.testing.assert_close(layer.offset, net.layer("affine").offset)
    assert len(imported.layer_names) == 4
    x = RNG.standard_normal((2, *input_layer.shape)).astype(np.float32)
    np.testing.assert_allclose(_outputs(imported, x), _outputs(net, x), atol=ATOL)


def test_without_the_metadata_constant_mul_add_and_stride_kernel_conv1d_stay_as_they_were(
    tmp_path,
):
    net = _perturb(Network([L.SequenceInput(3, length=8), L.Conv1d(4, 2, stride=2, name="conv"),
                            L.ScaleOffset((4,), name="affine"), L.Tanh()]), seed=3)  # fmt: skip
    path = export_onnx(net, tmp_path / "plain.onnx")
    model = onnx.load(str(path))
    assert any(p.key == "deeptoolbox.layer_classes" for p in model.metadata_props)
    kept = [p for p in model.metadata_props if p.key != "deeptoolbox.layer_classes"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    stripped = tmp_path / "stripped.onnx"
    onnx.save(model, str(stripped))
    x = RNG.standard_normal((2, 8, 3)).astype(np.float32)
    for file, affine in ((path, L.ScaleOffset), (stripped, None)):
        imported = import_onnx(file)
        assert type(imported.layer("conv")) is L.Conv1d  # never a PatchEmbedding: none recorded
        kinds = {type(imported.layer(n)).__name__ for n in imported.layer_names}
        assert ("ScaleOffset" in kinds) == (affine is not None)
        np.testing.assert_allclose(_outputs(imported, x), _outputs(net, x), atol=ATOL)


def _token_graph(path, token_first: bool) -> str:
    """A torch-style ViT stem written with onnx.helper: Conv (stride = kernel) -> Reshape ->
    Transpose -> Concat with an expanded class token."""
    weight = RNG.standard_normal((5, 2, 2, 2)).astype(np.float32)
    bias = RNG.standard_normal(5).astype(np.float32)
    token = RNG.standard_normal((1, 1, 5)).astype(np.float32)
    parts = ["cls", "tokens"] if token_first else ["tokens", "cls"]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="stem", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Reshape", ["c", "target"], ["r"], name="flat"),
        helper.make_node("Transpose", ["r"], ["tokens"], name="swap", perm=[0, 2, 1]),
        helper.make_node("Shape", ["x"], ["s"], name="shape", start=0, end=1),
        helper.make_node("Concat", ["s", "one", "one"], ["e"], name="size", axis=0),
        helper.make_node("Expand", ["t", "e"], ["cls"], name="class_token"),
        helper.make_node("Concat", parts, ["y"], name="join", axis=1),
    ]  # fmt: skip
    constants = [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b"),
                 numpy_helper.from_array(token, "t"),
                 numpy_helper.from_array(np.array([0, 5, -1], np.int64), "target"),
                 numpy_helper.from_array(np.array([1], np.int64), "one")]  # fmt: skip
    graph = helper.make_graph(
        nodes, "vit_stem", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 4, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], constants,
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return str(path)


@pytest.mark.parametrize("token_first", [True, False])
def test_a_vit_stem_from_another_exporter(token_first, tmp_path):
    path = _token_graph(tmp_path / "stem.onnx", token_first)
    imported = import_onnx(path)
    x = RNG.standard_normal((3, 2, 4, 6)).astype(np.float32)
    np.testing.assert_allclose(_outputs(imported, x), _onnxruntime(path, x), atol=ATOL)
    patches = imported.layer("stem")
    assert type(patches) is L.PatchEmbedding and patches.patch_size == 2
    kinds = {type(imported.layer(n)).__name__ for n in imported.layer_names}
    # a token after the sequence is no EmbeddingConcatenation (that one prepends)
    assert ("EmbeddingConcatenation" in kinds) == token_first


def test_conv3d_comes_back_as_conv3d(tmp_path):
    net = _perturb(Network([L.VolumeInput((2, 5, 6, 6), normalization="none"),
                            L.Conv3d(3, (3, 3, 2), stride=(1, 2, 2), padding=(1, 1, 0),
                                     dilation=(1, 1, 1), name="conv")]), seed=5)  # fmt: skip
    path = export_onnx(net, tmp_path / "conv3d.onnx")
    imported = import_onnx(path)
    assert type(imported.layer("conv")) is L.Conv3d
    assert imported.layer("conv").get_config() == net.layer("conv").get_config()
    x = RNG.standard_normal((2, 2, 5, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(_outputs(imported, x), _outputs(net, x), atol=ATOL)


def test_free_length_position_encoding_imports(tmp_path):
    """torch's exporter writes the table's slice assignments as ScatterND nodes."""
    net = Network([L.SequenceInput(5), L.SinusoidalPositionEncoding(name="positions")])
    path = export_onnx(net, tmp_path / "positions.onnx")
    assert "ScatterND" in {node.op_type for node in onnx.load(str(path)).graph.node}
    imported = import_onnx(path)
    for length in (3, 9):
        x = RNG.standard_normal((2, length, 5)).astype(np.float32)
        np.testing.assert_allclose(_outputs(imported, x), _outputs(net, x), atol=ATOL)
        np.testing.assert_allclose(_outputs(imported, x), _onnxruntime(path, x), atol=ATOL)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_nd_matches_onnx_reference(reduction, tmp_path):
    from onnx.reference import ReferenceEvaluator

    data = RNG.standard_normal((4, 3, 2)).astype(np.float32)
    # (3, 1, 2): three (observation, row) pairs, valid for any batch of 2 or more
    indices = np.array([[[1, -1]], [[0, 0]], [[-1, 2]]], np.int64)
    updates = RNG.standard_normal((3, 1, 2)).astype(np.float32)
    attrs = {} if reduction == "none" else {"reduction": reduction}
    graph = helper.make_graph(
        [helper.make_node("ScatterND", ["x", "i", "u"], ["y"], name="scatter", **attrs)],
        "scatter", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(indices, "i"), numpy_helper.from_array(updates, "u")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, str(tmp_path / "scatter.onnx"))
    (want,) = ReferenceEvaluator(model).run(None, {"x": data})
    assert not np.allclose(want, data)  # the updates changed something
    imported = import_onnx(tmp_path / "scatter.onnx")
    np.testing.assert_allclose(_outputs(imported, data), want, atol=1e-6)


@pytest.mark.parametrize(
    "pool",
    [L.MaxPool1d(3, stride=2, padding=1), L.AvgPool1d(2), L.AvgPool1d(3, stride=1, padding=1)],
    ids=["max_padded", "avg", "avg_padded"],
)
def test_pooling_over_time_comes_back_as_the_pooling_layer(pool, tmp_path):
    pool.name = "pool"
    net = Network([L.SequenceInput(3), pool])
    path = export_onnx(net, tmp_path / "pool.onnx")
    imported = import_onnx(path)
    assert type(imported.layer("pool")) is type(pool)
    back = imported.layer("pool")
    assert (back.pool_size, back.stride, back.padding) == (
        pool.pool_size,
        pool.stride,
        pool.padding,
    )
    for length in (6, 11):  # free length
        x = RNG.standard_normal((2, length, 3)).astype(np.float32)
        np.testing.assert_allclose(_outputs(imported, x), _outputs(net, x), atol=ATOL)


def test_adjacent_1d_layers_whose_transposes_the_exporter_cancelled(tmp_path):
    """Conv1d -> AvgPool1d -> Conv1d -> TransposedConv1d is written channels-first throughout
    (Transpose, Conv, AveragePool, Conv, ConvTranspose, Transpose): every layer comes back."""
    torch.manual_seed(2)
    net = Network([L.SequenceInput(3, length=12), L.Conv1d(4, 3, name="conv"),
                   L.AvgPool1d(2, name="pool"), L.Conv1d(2, 2, name="conv2"),
                   L.TransposedConv1d(3, 2, name="up")]).eval()  # fmt: skip
    path = export_onnx(net, tmp_path / "chain.onnx")
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    assert ops.count("Transpose") == 2  # the exporter's optimizer cancelled the inner pairs
    imported = import_onnx(path)
    assert [type(imported.layer(n)).__name__ for n in imported.layer_names] == [
        "SequenceInput",
        "Conv1d",
        "AvgPool1d",
        "Conv1d",
        "TransposedConv1d",
    ]
    x = RNG.standard_normal((2, 12, 3)).astype(np.float32)
    np.testing.assert_allclose(_outputs(imported, x), _outputs(net, x), atol=ATOL)
