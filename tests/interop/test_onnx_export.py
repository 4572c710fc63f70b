"""export_onnx: toolbox networks -> ONNX -> onnxruntime, and back with import_onnx."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch import nn

from deeptoolbox import Network, analyze, load, save
from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError
from deeptoolbox.interop import ModelExportError, export_onnx, import_onnx

sys.path.insert(0, str(Path(__file__).parents[1] / "network"))
import test_architectures as architectures  # noqa: E402

TOLERANCE = 1e-5  # |onnx - torch| / (1 + |torch|), float32


def _inputs(case, seed: int) -> list[torch.Tensor]:
    """The case's inputs as the exported file takes them: token ids read by an Embedding as
    int64 (N, T) (issue 25: exported token models take real token ids), others with the
    channel axis the input layers declare."""
    tensors = case.make_inputs(seed)
    out = []
    for x, name in zip(tensors, case.net.input_names, strict=True):
        declared = case.net.layers[name].shape
        readers = [case.net.layers[c.destination] for c in case.net.connections if c.source == name]
        if any(isinstance(r, L.Embedding) for r in readers):
            out.append(x.long().reshape(x.shape[0], -1))
        else:
            out.append(x.float().unsqueeze(-1) if x.dim() == len(declared) else x.float())
    return out


def _onnxruntime(path: Path, inputs: list[torch.Tensor]) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {a.name: x.numpy() for a, x in zip(session.get_inputs(), inputs, strict=True)}
    return session.run(None, feeds)[0]


def _close(got, want) -> float:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    return float(np.max(np.abs(got - want) / (1 + np.abs(want))))


SEQUENCE_CASES = {
    "lstm": lambda: architectures.lstm_classifier(bidirectional=True),
    "transformer_masked": lambda: architectures.transformer("masked"),
}
MORE_SEQUENCE_CASES = {
    "gru": lambda: architectures.cnn_gru(last=True),
    "gru_free_length": lambda: architectures.cnn_gru(last=False),
    "transformer": lambda: architectures.transformer("plain"),
    "transformer_causal": lambda: architectures.transformer("causal"),
}
IMAGE_CASES = {
    "lenet": architectures.lenet,
    "resnet": architectures.resnet,
    "unet": architectures.unet,
    "dcgan_generator": lambda: architectures.dcgan_generator(color=True),
    "dcgan_discriminator": architectures.dcgan_discriminator,
}


_EXPORTED: dict[str, tuple] = {}


def _exported(name: str, make, folder: Path) -> tuple:
    """(case, network, file, imported network), exported once per test session."""
    if name not in _EXPORTED:
        case = make()
        net = architectures.trained_statistics(case).eval()
        path = export_onnx(net, folder / f"{name}.onnx")
        _EXPORTED[name] = (case, net, path, import_onnx(path).eval())
    return _EXPORTED[name]


def _round_trip(name: str, make, tmp_path: Path) -> None:
    case, net, path, imported = _exported(name, make, tmp_path)
    for seed in (5, 7):  # other batch sizes and sequence lengths than at export
        inputs = _inputs(case, seed)
        with torch.no_grad():
            expected = net(*inputs).numpy()
        assert _close(_onnxruntime(path, inputs), expected) < TOLERANCE
        with torch.no_grad():
            assert _close(imported(*inputs).numpy(), expected) < TOLERANCE
    assert imported.classes == net.classes
    assert analyze(imported).ok


@pytest.mark.parametrize("name", SEQUENCE_CASES)
def test_sequence_models_round_trip(name, tmp_path):
    _round_trip(name, SEQUENCE_CASES[name], tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", MORE_SEQUENCE_CASES)
def test_more_sequence_models_round_trip(name, tmp_path):
    _round_trip(name, MORE_SEQUENCE_CASES[name], tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", IMAGE_CASES)
def test_image_models_round_trip(name, tmp_path):
    _round_trip(name, IMAGE_CASES[name], tmp_path)


@pytest.mark.slow
def test_lstm_free_batch_and_length_in_the_file(tmp_path):
    net = Network([L.SequenceInput(3, name="x"), L.LSTM(4, name="lstm"), L.Dense(2, name="fc")])
    path = export_onnx(net, tmp_path / "lstm.onnx")
    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[1].dim_param and dims[2].dim_value == 3
    assert {n.op_type for n in model.graph.node} >= {"LSTM"}
    assert "lstm" in [n.name for n in model.graph.node]  # named after the layer


def _two_sequences(combine: str) -> Network:
    net = Network()
    net.add_layers(L.SequenceInput(4, name="source"))
    net.add_layers(L.SequenceInput(4, name="target"))
    if combine == "attention":  # target steps attend over source steps: lengths independent
        net.add_layers([L.CrossAttention(2, key_dim=3, name="att"), L.Dense(2, name="fc")])
        net.connect("target", "att/query").connect("source", "att/value")
    else:  # an element-wise sum ties the two lengths together
        net.add_layers([L.Addition(2, name="add"), L.Dense(2, name="fc")])
        net.connect("source", "add/in1").connect("target", "add/in2")
    return net


@pytest.mark.parametrize("combine", ["attention", "addition"])
def test_free_lengths_of_several_inputs_stay_independent_where_the_network_allows(
    tmp_path, combine
):
    torch.manual_seed(0)
    net = _two_sequences(combine)
    path = export_onnx(net, tmp_path / f"{combine}.onnx")
    model = onnx.load(str(path))
    lengths = [i.type.tensor_type.shape.dim[1].dim_param for i in model.graph.input]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    if combine == "attention":
        assert lengths[0] and lengths[1] and lengths[0] != lengths[1]
        source, target = torch.randn(3, 11, 4), torch.randn(3, 4, 4)  # other lengths than traced
    else:
        assert lengths[0] and lengths[0] == lengths[1]
        source, target = torch.randn(3, 6, 4), torch.randn(3, 6, 4)
    (got,) = session.run(None, {"source": source.numpy(), "target": target.numpy()})
    expected = net.eval()(source, target).detach().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    back = import_onnx(path)
    torch.testing.assert_close(back(source, target), torch.from_numpy(expected), atol=1e-5,
                               rtol=0)  # fmt: skip


def test_names_and_metadata_are_written(tmp_path):
    net = Network(
        [L.ImageInput((1, 8, 8), name="image"), L.Conv2d(4, 3, padding="same", name="conv1"),
         L.BatchNorm(name="bn1"), L.ReLU(name="relu1"), L.Flatten(name="flat"),
         L.Dense(3, name="fc"), L.Softmax(name="prob")],
        classes=["cat", "dog", "cow"],
    )  # fmt: skip
    path = export_onnx(net, tmp_path / "net.onnx")
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    assert props["classes"] == "cat,dog,cow"
    assert props["deeptoolbox.network"] == "network"
    names = [n.name for n in model.graph.node]
    assert "conv1" in names and "fc" in names
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["prob"]
    imported = import_onnx(path)
    assert imported.classes == ["cat", "dog", "cow"]
    assert "conv1" in imported.layer_names and "fc" in imported.layer_names


class _Disagrees(nn.Module):
    """Adds one in eager mode but not when traced: the exported file differs from the module."""

    def forward(self, x):
        if torch.compiler.is_compiling():
            return x * 2
        return x * 2 + 1


def test_verify_reports_the_largest_difference_and_writes_nothing(tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"previous content")
    with pytest.raises(ModelExportError, match=r"differs .* by up to 0\.\d+") as info:
        export_onnx(_Disagrees(), path, sample_inputs=torch.ones(2, 3))
    assert "'output'" in str(info.value)
    assert path.read_bytes() == b"previous content"  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]  # no temporary left
    export_onnx(_Disagrees(), path, sample_inputs=torch.ones(2, 3), verify=False)
    assert onnx.load(str(path)).graph.node


def test_plain_module_export_with_sample_inputs(tmp_path):
    module = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2)).eval()
    path = export_onnx(module, tmp_path / "mlp.onnx", sample_inputs=torch.randn(3, 4))
    x = torch.randn(6, 4)
    got = _onnxruntime(path, [x])
    assert _close(got, module(x).detach().numpy()) < TOLERANCE


@pytest.mark.parametrize("opset", [14, 17])
def test_older_opset_is_the_one_written(tmp_path, opset):
    # torch.export writes opset 18 and converts down; where onnx's converter has no adapter
    # (Shape, ReduceMean axes) it keeps 18 unless the exporter falls back.
    net = Network(
        [L.SequenceInput(3), L.Conv1d(4, 3, padding="same"), L.GlobalAvgPool(), L.Dense(2)]
    )
    path = export_onnx(net, tmp_path / "old.onnx", opset=opset)
    model = onnx.load(str(path))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [opset]
    x = torch.randn(2, 7, 3)
    assert _close(_onnxruntime(path, [x]), net(x).detach().numpy()) < TOLERANCE


def test_free_lengths_are_declared_free_on_outputs(tmp_path):
    # torch.export declares the LSTM's output length as the sample's; the file computes it.
    net = Network([L.SequenceInput(3), L.LSTM(5, name="lstm")])
    path = export_onnx(net, tmp_path / "seq.onnx")
    dims = onnx.load(str(path)).graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", "time", 5]
    x = torch.randn(2, 13, 3)
    assert _close(_onnxruntime(path, [x]), net(x).detach().numpy()) < TOLERANCE


def test_bad_options(tmp_path):
    net = Network([L.FeatureInput(2), L.Dense(1)])
    with pytest.raises(OptionError, match="opset"):
        export_onnx(net, tmp_path / "a.onnx", opset=5)
    with pytest.raises(OptionError, match="sample_inputs"):
        export_onnx(nn.Linear(2, 1), tmp_path / "b.onnx")


def test_fixed_batch_export(tmp_path):
    net = Network([L.FeatureInput(2), L.Dense(1)])
    path = export_onnx(net, tmp_path / "fixed.onnx", dynamic_batch=False)
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_value == 2


def test_imported_network_saves_and_loads(tmp_path):
    case, net, _, imported = _exported(
        "transformer_masked", SEQUENCE_CASES["transformer_masked"], tmp_path
    )
    saved = load(save(imported, tmp_path / "imported.zip")).eval()
    inputs = _inputs(case, 3)
    with torch.no_grad():
        assert torch.allclose(saved(*inputs), net(*inputs), atol=1e-5)


def test_imported_network_is_ready_to_predict(tmp_path):
    """import_onnx gives the network in evaluation mode (like load and train)."""
    net = Network([L.FeatureInput(3), L.Dense(4), L.Dropout(0.5), L.Dense(2)])
    path = export_onnx(net, tmp_path / "net.onnx")
    imported = import_onnx(path)
    assert not imported.training
    x = torch.randn(5, 3)
    assert torch.equal(imported(x), imported(x))


def test_all_zero_biases_are_written_and_come_back(tmp_path):
    # torch.onnx.export's optimizer drops all-zero Conv/Gemm biases unless told not to; an
    # untrained network whose biases start at zero then reopened with fewer learnables.
    torch.manual_seed(0)
    net = Network([L.ImageInput((1, 12, 12)), L.Conv2d(4, 3), L.ReLU(), L.Flatten(),
                   L.Dense(5), L.ReLU(), L.Dense(3)])  # fmt: skip
    for module in net.modules():
        if isinstance(getattr(module, "bias", None), nn.Parameter):
            nn.init.zeros_(module.bias)
    path = export_onnx(net, tmp_path / "zero_bias.onnx")
    model = onnx.load(str(path))
    biased = [len(n.input) == 3 for n in model.graph.node if n.op_type in ("Conv", "Gemm")]
    assert biased == [True, True, True]
    back = import_onnx(path)
    assert sum(p.numel() for p in back.parameters()) == sum(p.numel() for p in net.parameters())
    x = torch.randn(2, 1, 12, 12)
    net.eval(), back.eval()
    torch.testing.assert_close(back(x), net(x))
    np.testing.assert_allclose(_onnxruntime(path, [x]), net(x).detach().numpy(), atol=1e-5)
