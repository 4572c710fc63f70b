"""deploy.export(): every format written, loaded back by its own runtime and compared with
the network; deployment folders; atomic writes; clear errors for bad calls."""

import json
import os
import re

import numpy as np
import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.deploy import export
from deeptoolbox.deploy._export import load_runner
from deeptoolbox.errors import OptionError
from deeptoolbox.interop import ModelExportError

FAST_FORMATS = [("onnx", ".onnx"), ("torchscript", ".pt"), ("pt2", ".pt2")]
ALL_FORMATS = [*FAST_FORMATS, pytest.param("executorch", ".pte", marks=pytest.mark.slow)]


def cnn() -> Network:
    torch.manual_seed(0)
    net = Network(
        [
            L.ImageInput((1, 8, 8), normalization="zscore", mean=0.5, std=0.25),
            L.Conv2d(4, 3, padding=1),
            L.BatchNorm(),
            L.ReLU(),
            L.MaxPool2d(2),
            L.Flatten(),
            L.Dense(3),
            L.Softmax(),
        ],
        classes=["cat", "dog", "owl"],
        name="tiny_cnn",
    )
    with torch.no_grad():  # batch-norm statistics that are not the identity
        norm = net.layer(net.layer_names[2])
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
    return net.eval()


def _reference(net, x):
    with torch.no_grad():
        return net(x).numpy()


def _runtime_outputs(path, format, x):
    """Run a written file in its own runtime, independently of deploy's loaders."""
    if format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    if format == "torchscript":
        return torch.jit.load(str(path))(x).detach().numpy()
    if format == "pt2":
        return torch.export.load(str(path)).module()(x).detach().numpy()
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(str(path)).load_method("forward")
    return method.execute([x])[0].numpy()


@pytest.mark.parametrize(("format", "extension"), ALL_FORMATS)
def test_every_format_reloads_in_its_runtime_and_matches_the_network(tmp_path, format, extension):
    if format == "executorch":
        pytest.importorskip("executorch.runtime")
    net = cnn()
    path = export(net, tmp_path / f"net{extension}", format=format)
    assert path == tmp_path / f"net{extension}"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left over
    x = torch.rand(5, 1, 8, 8)  # another batch size than the one traced
    np.testing.assert_allclose(_runtime_outputs(path, format, x), _reference(net, x), atol=1e-5)


@pytest.mark.parametrize(("format", "extension"), FAST_FORMATS)
def test_a_failed_check_leaves_the_earlier_file_in_place(tmp_path, monkeypatch, format, extension):
    net = cnn()
    target = tmp_path / f"net{extension}"
    target.write_bytes(b"the good file")

    def disagreeing_runner(path, fmt):
        return lambda inputs: [np.zeros((inputs[0].shape[0], 3), np.float32)]

    monkeypatch.setattr("deeptoolbox.deploy._export.load_runner", disagreeing_runner)
    with pytest.raises(ModelExportError, match="differs from the network"):
        export(net, target, format=format)
    assert target.read_bytes() == b"the good file"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_deployment_folder_holds_the_model_and_what_a_consumer_needs(tmp_path):
    net = cnn()
    folder = export(net, tmp_path / "deployment", format="onnx", folder=True, version=3)
    assert sorted(p.name for p in folder.iterdir()) == ["metadata.json", "model.onnx"]
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["format"] == "deeptoolbox.deployment"
    assert meta["model_file"] == "model.onnx" and meta["model_format"] == "onnx"
    assert meta["model_version"] == 3
    assert meta["classes"] == ["cat", "dog", "owl"]
    (entry,) = meta["inputs"]
    assert entry["size"] == [1, 8, 8] and entry["layout"] == "NCHW" and entry["dtype"] == "float32"
    assert entry["normalization"]["method"] == "zscore"
    assert entry["normalization"]["mean"] == [0.5] and entry["normalization"]["std"] == [0.25]
    assert meta["outputs"] == [{"name": net.output_names[0], "size": [3], "dtype": "float32"}]
    x = torch.rand(2, 1, 8, 8)
    run = load_runner(folder / "model.onnx", "onnx")
    np.testing.assert_allclose(run([x])[0], _reference(net, x), atol=1e-5)


def test_a_deployment_folder_is_replaced_whole_and_a_foreign_folder_is_left_alone(tmp_path):
    net = cnn()
    folder = export(net, tmp_path / "deployment", format="torchscript", folder=True)
    assert (folder / "model.pt").exists()
    export(net, folder, format="pt2", folder=True)  # an earlier export: replaced
    assert sorted(p.name for p in folder.iterdir()) == ["metadata.json", "model.pt2"]
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"...")
    with pytest.raises(OptionError, match="not an earlier export"):
        export(net, foreign, format="onnx", folder=True)
    assert [p.name for p in foreign.iterdir()] == ["holiday.jpg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deployment", "photos"]


def test_fixed_length_formats_say_so_in_the_metadata(tmp_path):
    net = Network([L.SequenceInput(3), L.LSTM(4, output_mode="last"), L.Dense(2)])
    free_folder = export(net, tmp_path / "script", format="torchscript", folder=True)
    pt2_folder = export(net, tmp_path / "pt2", format="pt2", folder=True)
    free_input = json.loads((free_folder / "metadata.json").read_text())["inputs"][0]
    pt2_input = json.loads((pt2_folder / "metadata.json").read_text())["inputs"][0]
    assert free_input["size"] == [None, 3] and free_input["layout"] == "NTC"
    assert pt2_input["size"] == [8, 3] and "fixed" in pt2_input["note"]
    x = torch.randn(2, 13, 3)  # TorchScript keeps the time axis free
    run = load_runner(free_folder / "model.pt", "torchscript")
    np.testing.assert_allclose(run([x])[0], _reference(net.eval(), x), atol=1e-5)


def test_plain_modules_export_with_example_inputs(tmp_path):
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    with pytest.raises(OptionError, match="example_inputs"):
        export(module, tmp_path / "m.onnx")
    folder = export(module, tmp_path / "m", format="onnx", folder=True,
                    example_inputs=torch.randn(2, 4))  # fmt: skip
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["inputs"][0]["size"] == [4] and meta["classes"] is None
    x = torch.randn(3, 4)
    np.testing.assert_allclose(load_runner(folder / "model.onnx", "onnx")([x])[0],
                               module(x).detach().numpy(), atol=1e-5)  # fmt: skip


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda p: export(cnn(), p / "n.onnx", format="tflite"), "format"),
        (lambda p: export(cnn(), p / "n.pt", format="onnx"), r"\.onnx"),
        (lambda p: export(cnn(), p / "n", format="onnx"), "no extension"),
        (lambda p: export("net.zip", p / "n.onnx"), "Network or a torch.nn.Module"),
        (lambda p: export(cnn(), p / "n.onnx", tolerance=0), "tolerance"),
        (lambda p: export(cnn(), p / "n.onnx", version=0), "version"),
        (lambda p: export(cnn(), p / "n.onnx", verify="yes"), "verify"),
        (lambda p: export(cnn(), p / "n.onnx", example_inputs=[[1.0]]), "example_inputs"),
        (lambda p: export(cnn(), p, format="triton", folder=True), "folder=False"),
    ],
)
def test_bad_calls_name_the_option(tmp_path, call, match):
    with pytest.raises(OptionError, match=match):
        call(tmp_path)
    assert not any(p.suffix for p in tmp_path.iterdir())  # nothing written


def test_a_file_path_that_is_a_folder_is_refused(tmp_path):
    (tmp_path / "n.onnx").mkdir()
    with pytest.raises(OptionError, match="is a folder"):
        export(cnn(), tmp_path / "n.onnx")


def test_executorch_without_a_working_package_names_the_versions(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_executorch(name, *args, **kwargs):
        if name.startswith("executorch"):
            raise ImportError(f"No module named '{name}'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_executorch)
    from deeptoolbox.hub import MissingDependencyError

    with pytest.raises(
        MissingDependencyError, match=re.escape(f"torch {torch.__version__}")
    ) as caught:
        export(cnn(), tmp_path / "n.pte", format="executorch")
    assert "deeptoolbox[executorch]" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_quantized_networks_export_their_int8_onnx_file(tmp_path):
    compress = pytest.importorskip("deeptoolbox.compress")
    torch.manual_seed(0)
    net = Network([L.FeatureInput(4), L.Dense(16), L.ReLU(), L.Dense(3), L.Softmax()],
                  classes=["a", "b", "c"])  # fmt: skip
    quantizer = compress.Quantizer(net)
    quantizer.calibrate(torch.randn(64, 4))
    qnet = quantizer.quantize()
    folder = export(qnet, tmp_path / "int8", format="onnx", folder=True)
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["classes"] == ["a", "b", "c"] and meta["inputs"][0]["size"] == [4]
    x = torch.randn(5, 4)
    np.testing.assert_allclose(load_runner(folder / "model.onnx", "onnx")([x])[0],
                               qnet(x).numpy(), atol=1e-6)  # fmt: skip
    with pytest.raises(ModelExportError, match="onnx"):
        export(qnet, tmp_path / "q.pt", format="torchscript")


def test_export_leaves_the_network_as_it_was(tmp_path):
    net = cnn().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    export(net, tmp_path / "n.pt2", format="pt2")
    assert net.training
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert os.listdir(tmp_path) == ["n.pt2"]
