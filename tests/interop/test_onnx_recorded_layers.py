"""export_onnx -> import_onnx gives back layers ONNX has no operator for (GELU, GroupNorm,
Embedding, DepthToSpace, Crop1d, ...) as those toolbox layers (issue 13): export_onnx records
each one's saved record and where its weights are; import_onnx rebuilds it from its nodes'
group and keeps it only where it computes what the nodes compute. Files without the record,
or whose nodes were edited, import as exact operator layers, as before."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.interop import export_onnx, import_onnx

RNG = np.random.default_rng(7)
CLASSES_KEY = "deeptoolbox.layer_classes"


def _perturbed(net: Network, seed: int = 0) -> Network:
    """Random values in every float parameter (defaults such as unit scales hide mistakes)."""
    net.initialize()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in net.parameters():
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.5)
    return net.eval()


def _as_json(config: dict) -> dict:
    return json.loads(json.dumps(config))  # as network.json holds it: tuples are lists


def _run(net: Network, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net.eval()(x)


CASES = {
    "GELU": ([L.FeatureInput(4), L.Dense(6, name="fc"), L.GELU(name="target")], (3, 4)),
    "Swish": ([L.FeatureInput(4), L.Swish(name="target")], (3, 4)),
    "Softplus": ([L.FeatureInput(4), L.Softplus(name="target")], (3, 4)),
    "Flatten": ([L.ImageInput((2, 4, 4), normalization="none"), L.Conv2d(3, 3, name="conv"),
                 L.Flatten(name="target"), L.Dense(2, name="fc")], (2, 2, 4, 4)),
    "Reshape": ([L.FeatureInput(8), L.Reshape((2, 4), name="target")], (3, 8)),
    "GroupNorm": ([L.ImageInput((4, 5, 5), normalization="none"), L.GroupNorm(2, name="target")],
                  (2, 4, 5, 5)),
    "CrossChannelNorm": ([L.ImageInput((5, 4, 4), normalization="none"),
                          L.CrossChannelNorm(3, name="target")], (2, 5, 4, 4)),
    "DepthToSpace": ([L.ImageInput((8, 3, 3), normalization="none"),
                      L.DepthToSpace(2, name="target")], (2, 8, 3, 3)),
    "SpaceToDepth": ([L.ImageInput((2, 4, 6), normalization="none"),
                      L.SpaceToDepth(2, name="target")], (2, 2, 4, 6)),
    "PositionEmbedding": ([L.SequenceInput(4, length=6), L.PositionEmbedding(6, name="target")],
                          (2, 6, 4)),
    "SinusoidalPositionEncoding": ([L.SequenceInput(4, length=6),
                                    L.SinusoidalPositionEncoding(4, name="target")], (2, 6, 4)),
    "Crop1d": ([L.SequenceInput(3), L.Crop1d(2, name="target")], (2, 9, 3)),
    "Crop2d": ([L.ImageInput((2, 8, 8), normalization="none"), L.Crop2d((2, 2), name="target")],
               (2, 2, 8, 8)),
    "Crop3d": ([L.VolumeInput((1, 6, 6, 6), normalization="none"), L.Crop3d(2, name="target")],
               (2, 1, 6, 6, 6)),
    "FunctionLayer": ([L.FeatureInput(4), L.FunctionLayer("x * sigmoid(2 * x) + 1", name="target")],
                      (3, 4)),
    "Indexing1d": ([L.SequenceInput(4), L.Indexing1d("last", name="target")], (2, 5, 4)),
    "SelfAttention": ([L.SequenceInput(4, length=5), L.SelfAttention(2, name="target")],
                      (2, 5, 4)),
    "AxisLayerNorm": ([L.ImageInput((3, 4, 4), normalization="none"),
                       L.AxisLayerNorm([1], name="target")], (2, 3, 4, 4)),
}  # fmt: skip


@pytest.mark.parametrize("kind", CASES)
def test_the_layer_comes_back_with_its_options_and_weights(kind, tmp_path):
    layers, shape = CASES[kind]
    net = _perturbed(Network(layers), seed=len(kind))
    path = export_onnx(net, tmp_path / f"{kind}.onnx")
    imported = import_onnx(path)
    assert [type(imported.layer(n)).__name__ for n in imported.layer_names] == [
        type(layer).__name__ for layer in layers
    ]
    target = imported.layer("target")
    assert _as_json(target.get_config()) == _as_json(net.layer("target").get_config())
    for key, value in net.layer("target").state_dict().items():
        torch.testing.assert_close(target.state_dict()[key], value)
    x = torch.from_numpy(RNG.standard_normal(shape).astype(np.float32))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    from_runtime = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(_run(imported, x).numpy(), from_runtime, atol=1e-5)
    np.testing.assert_allclose(_run(imported, x).numpy(), _run(net, x).numpy(), atol=1e-5)


def test_an_embedding_comes_back_with_its_table(tmp_path):
    net = _perturbed(Network([L.SequenceInput(1), L.Embedding(10, 4, name="target")]))
    imported = import_onnx(export_onnx(net, tmp_path / "embedding.onnx"))
    target = imported.layer("target")
    assert type(target).__name__ == "Embedding"
    torch.testing.assert_close(target.weight, net.layer("target").weight)
    tokens = torch.tensor([[[1.0], [9.0], [0.0]]])  # (N, T, 1) token ids
    ids = tokens[..., 0].long()  # the file takes int64 (N, T) ids, as a tokenizer gives them
    torch.testing.assert_close(_run(imported, ids), _run(net, tokens))


def test_a_free_length_sequence_is_checked_at_two_lengths(tmp_path):
    net = _perturbed(Network([L.SequenceInput(3), L.Dense(5, name="fc"), L.GELU(name="gelu"),
                              L.Crop1d(1, name="crop"), L.LayerNorm(name="ln")]))  # fmt: skip
    imported = import_onnx(export_onnx(net, tmp_path / "free.onnx"))
    assert {"gelu": "GELU", "crop": "Crop1d"}.items() <= {
        n: type(imported.layer(n)).__name__ for n in imported.layer_names
    }.items()
    for steps in (4, 11):
        x = torch.randn(2, steps, 3)
        torch.testing.assert_close(_run(imported, x), _run(net, x), atol=1e-5, rtol=1e-5)


def _rewrite_classes(path, change) -> None:
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == CLASSES_KEY:
            prop.value = json.dumps(change(json.loads(prop.value)))
    onnx.save(model, str(path))


def test_a_record_that_does_not_compute_like_the_nodes_leaves_operators(tmp_path):
    net = _perturbed(Network([L.ImageInput((4, 5, 5), normalization="none"),
                              L.GroupNorm(2, name="target")]))  # fmt: skip
    path = export_onnx(net, tmp_path / "groupnorm.onnx")

    def lie(recorded):  # the record claims 4 groups; the nodes normalize 2
        recorded["target"]["record"]["config"]["groups"] = 4
        return recorded

    _rewrite_classes(path, lie)
    imported = import_onnx(path)
    kinds = {type(imported.layer(n)).__name__ for n in imported.layer_names}
    assert "GroupNorm" not in kinds and "OnnxOperator" in kinds
    x = torch.randn(2, 4, 5, 5)
    torch.testing.assert_close(_run(imported, x), _run(net, x), atol=1e-5, rtol=1e-5)


def test_files_without_the_record_import_as_exact_operators(tmp_path):
    """The tanh form of GELU has no foreign pattern: without the record it stays operators."""
    net = _perturbed(Network([L.FeatureInput(4), L.GELU("tanh", name="target")]))
    path = export_onnx(net, tmp_path / "gelu.onnx")
    _rewrite_classes(path, lambda recorded: {})
    imported = import_onnx(path)
    assert "GELU" not in {type(imported.layer(n)).__name__ for n in imported.layer_names}
    x = torch.randn(3, 4)
    torch.testing.assert_close(_run(imported, x), _run(net, x), atol=1e-6, rtol=1e-6)


def test_erf_gelu_without_the_record_comes_back_by_its_formula(tmp_path):
    """x * 0.5 * (1 + erf(x / sqrt 2)) is a foreign pattern (see _patterns_foreign)."""
    net = _perturbed(Network([L.FeatureInput(4), L.GELU(name="target")]))
    path = export_onnx(net, tmp_path / "gelu.onnx")
    _rewrite_classes(path, lambda recorded: {})
    imported = import_onnx(path)
    assert {type(imported.layer(n)).__name__ for n in imported.layer_names} == {"FeatureInput",
                                                                                "GELU"}  # fmt: skip
    x = torch.randn(3, 4)
    torch.testing.assert_close(_run(imported, x), _run(net, x), atol=1e-6, rtol=1e-6)


def test_the_export_records_where_each_weight_is(tmp_path):
    net = _perturbed(Network([L.ImageInput((4, 5, 5), normalization="none"),
                              L.GroupNorm(2, name="target")]))  # fmt: skip
    path = export_onnx(net, tmp_path / "groupnorm.onnx")
    model = onnx.load(str(path))
    entry = json.loads({p.key: p.value for p in model.metadata_props}[CLASSES_KEY])["target"]
    assert entry["class"] == "GroupNorm" and entry["record"]["type"] == "GroupNorm"
    values = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    for key, (holder, how) in entry["weights"].items():
        want = net.layer("target").state_dict()[key].numpy()
        assert how == "same"
        np.testing.assert_array_equal(values[holder].reshape(want.shape), want)


def _two_sequences() -> Network:
    net = Network(name="joined")
    with net.editing():
        net.add_layers(L.SequenceInput(3, name="a"))
        net.add_layers(L.SequenceInput(3, name="b"))
        net.add_layers({"target": L.Concatenation(axis="time")})
        net.connect("a", "target/in1")
        net.connect("b", "target/in2")
    return net.initialize().eval()


def test_a_layer_with_two_inputs_is_connected_port_by_port(tmp_path):
    net = _two_sequences()
    path = export_onnx(net, tmp_path / "joined.onnx")
    entry = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}[CLASSES_KEY])
    assert entry["target"]["sources"] == ["a", "b"]
    imported = import_onnx(path)
    assert type(imported.layer("target")).__name__ == "Concatenation"
    assert imported.sources("target") == {"in1": "a", "in2": "b"}
    a, b = torch.randn(2, 4, 3), torch.randn(2, 6, 3)
    torch.testing.assert_close(imported(a, b), net(a, b))


def test_recorded_sources_that_do_not_fit_leave_operators(tmp_path):
    """Sources swapped in the record: the rebuilt layer would join b before a, which the
    sample check sees; the nodes stay operators and compute as the file does."""
    net = _two_sequences()
    path = export_onnx(net, tmp_path / "joined.onnx")

    def swap(recorded):
        recorded["target"]["sources"] = ["b", "a"]
        return recorded

    _rewrite_classes(path, swap)
    imported = import_onnx(path)
    assert type(imported.layer("target")).__name__ == "OnnxOperator"
    a, b = torch.randn(2, 4, 3), torch.randn(2, 6, 3)
    torch.testing.assert_close(imported(a, b), net(a, b))
