import json
import zipfile

import pytest
import torch
from torch import nn

import deeptoolbox as dtb
from deeptoolbox import Network, load, save
from deeptoolbox import layers as L
from deeptoolbox.errors import NetworkFileError, OptionError, UnregisteredLayerError
from deeptoolbox.network import _io


def cnn():
    torch.manual_seed(0)
    net = Network(
        [
            L.ImageInput((1, 8, 8), normalization="zscore", name="img"),
            L.Conv2d(4, 3, padding="same", name="conv"),
            L.BatchNorm(name="bn"),
            L.ReLU(),
            L.Flatten(),
            L.Dense(3, name="fc"),
            L.Softmax(),
        ],
        classes=["cat", "dog", "owl"],
        name="small-cnn",
    )
    net.layer("img").compute_statistics(torch.randn(20, 1, 8, 8) * 3 + 1)
    net.train()
    for _ in range(3):  # move BatchNorm statistics away from their defaults
        net(torch.randn(8, 1, 8, 8))
    net.eval()
    net.freeze("conv").set_learn_rate_factor("fc", 4)
    net.metadata["author"] = "test"
    return net


@pytest.mark.parametrize("target", ["saved", "saved.zip"])
def test_round_trip_gives_identical_network(tmp_path, target):
    net = cnn()
    path = save(net, tmp_path / target)
    loaded = load(path).eval()
    x = torch.randn(5, 1, 8, 8)
    assert torch.equal(loaded(x), net(x))
    assert loaded.classes == ["cat", "dog", "owl"]
    assert loaded.name == "small-cnn"
    assert loaded.frozen_layers == ["conv"] and not loaded.layer("conv").weight.requires_grad
    assert loaded.learn_rate_factor("fc") == 4.0
    assert loaded.metadata == {"author": "test"}
    assert loaded.to_json() == net.to_json()
    assert [repr(m) for m in loaded.layers.values()] == [repr(m) for m in net.layers.values()]


def test_saved_files_have_documented_layout(tmp_path):
    path = save(cnn(), tmp_path / "net")
    assert sorted(p.name for p in path.iterdir()) == [
        "metadata.json",
        "network.json",
        "weights.safetensors",
    ]
    arch = json.loads((path / "network.json").read_text())
    assert arch["format"] == "deeptoolbox.network" and arch["format_version"] == 2
    assert arch["layers"][0] == {
        "name": "img",
        "type": "ImageInput",
        "config": {"size": [1, 8, 8], "normalization": "zscore"},
    }
    meta = json.loads((path / "metadata.json").read_text())
    assert meta["classes"] == ["cat", "dog", "owl"]
    assert meta["inputs"] == [
        {"name": "img", "type": "ImageInput", "size": [1, 8, 8], "normalization": "zscore"}
    ]
    assert meta["deeptoolbox_version"] == dtb.__version__ and "created" in meta
    from safetensors.torch import load_file

    weights = load_file(path / "weights.safetensors")
    assert "layers.img.mean" in weights and "layers.bn.running_var" in weights


def test_json_round_trip(tmp_path):
    net = cnn()
    rebuilt = Network.from_json(net.to_json())
    rebuilt.load_state_dict(net.state_dict())
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(rebuilt.eval()(x), net(x))


def test_missing_path_and_incomplete_folder(tmp_path):
    with pytest.raises(NetworkFileError, match="does not exist"):
        load(tmp_path / "nothing")
    path = save(cnn(), tmp_path / "net")
    (path / "weights.safetensors").unlink()
    with pytest.raises(NetworkFileError, match="missing weights.safetensors"):
        load(path)


def test_truncated_zip_gives_clear_error(tmp_path):
    path = save(cnn(), tmp_path / "net.zip")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(NetworkFileError, match="corrupted or truncated"):
        load(path)


def test_corrupted_weights_and_json_give_clear_errors(tmp_path):
    path = save(cnn(), tmp_path / "net")
    weights = path / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(NetworkFileError, match="weights.safetensors is corrupted or truncated"):
        load(path)
    path = save(cnn(), tmp_path / "net2")
    (path / "network.json").write_text('{"format": "deeptoolbox.network", "layers": [')
    with pytest.raises(NetworkFileError, match="network.json is corrupted or truncated"):
        load(path)


def test_weights_that_do_not_match_are_named(tmp_path):
    path = save(cnn(), tmp_path / "net")
    arch = json.loads((path / "network.json").read_text())
    arch["layers"][5]["config"]["units"] = 5  # fc: 3 -> 5 units
    (path / "network.json").write_text(json.dumps(arch))
    with pytest.raises(
        NetworkFileError, match=r"layers\.fc\.weight: file \(3, 256\) vs network \(5, 256\)"
    ):
        load(path)


def test_other_formats_and_unknown_types_are_rejected(tmp_path):
    path = save(cnn(), tmp_path / "net")
    (path / "network.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(NetworkFileError, match="not a deeptoolbox network"):
        load(path)
    arch = json.loads(cnn().to_json())
    arch["layers"][1]["type"] = "Conv9d"
    (path / "network.json").write_text(json.dumps(arch))
    with pytest.raises(UnregisteredLayerError, match="Unknown layer type 'Conv9d'"):
        load(path)
    arch["format_version"] = 99
    (path / "network.json").write_text(json.dumps(arch))
    with pytest.raises(NetworkFileError, match="Upgrade deeptoolbox"):
        load(path)


def _without_padding(arch: dict, version: int | None) -> dict:
    for record in arch["layers"]:
        record["config"].pop("padding", None)
    if version is None:
        arch.pop("format_version")
    else:
        arch["format_version"] = version
    return arch


@pytest.mark.parametrize("version", [1, None])
def test_version_1_files_keep_the_old_same_padding_default(tmp_path, version):
    # network.json written before convolutions defaulted to padding=0 (format version 1, or no
    # version at all) meant "same" when it left padding out
    net = cnn()
    path = save(net, tmp_path / "old")
    arch = _without_padding(json.loads((path / "network.json").read_text()), version)
    (path / "network.json").write_text(json.dumps(arch))
    loaded = load(path).eval()
    assert loaded.layer("conv").padding == "same"
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(loaded(x), net(x))
    assert json.loads(loaded.to_json())["format_version"] == 2


def test_version_2_files_without_padding_mean_no_padding():
    arch = _without_padding(json.loads(cnn().to_json()), 2)
    arch["layers"] = arch["layers"][:2]
    arch["connections"] = arch["connections"][:1]
    arch["classes"], arch["frozen"], arch["learn_rate_factors"] = None, [], {}
    net = Network.from_json(json.dumps(arch))
    assert net.layer("conv").padding == (0, 0) and net.output_shape("conv") == (4, 6, 6)


def test_bad_format_version_is_rejected(tmp_path):
    arch = json.loads(cnn().to_json())
    arch["format_version"] = "two"
    with pytest.raises(NetworkFileError, match="format_version 'two'"):
        Network.from_json(json.dumps(arch))


@pytest.mark.parametrize("target", ["net", "net.zip"])
def test_failed_save_leaves_earlier_save_loadable(tmp_path, monkeypatch, target):
    original = cnn()
    path = save(original, tmp_path / target)
    changed = cnn()
    with torch.no_grad():
        changed.layer("fc").weight.add_(1.0)

    real_write = _io._write_zip if target.endswith(".zip") else _io._write_folder

    def failing_write(destination, payload):
        def explode(*args, **kwargs):
            raise OSError("disk full (simulated)")

        monkeypatch.setattr(zipfile.ZipFile, "writestr", explode)
        monkeypatch.setattr(type(destination), "write_bytes", explode)
        real_write(destination, payload)

    name = "_write_zip" if target.endswith(".zip") else "_write_folder"
    monkeypatch.setattr(_io, name, failing_write)
    with pytest.raises(OSError, match="disk full"):
        save(changed, path)
    monkeypatch.undo()
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(load(path).eval()(x), original(x))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != path.name]
    assert leftovers == []


def test_save_replaces_earlier_network(tmp_path):
    path = save(cnn(), tmp_path / "net")
    changed = cnn()
    with torch.no_grad():
        changed.layer("fc").bias.fill_(7.0)
    save(changed, path)
    assert torch.all(load(path).layer("fc").bias == 7.0)
    assert [p.name for p in tmp_path.iterdir()] == ["net"]


def test_save_refuses_to_overwrite_other_things(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(b"not a network")
    with pytest.raises(NetworkFileError, match="Not overwriting"):
        save(cnn(), folder)
    assert (folder / "cat.jpg").read_bytes() == b"not a network"
    document = tmp_path / "report.zip"
    document.write_bytes(b"PK not really")
    with pytest.raises(NetworkFileError, match="Not overwriting"):
        save(cnn(), document)


class Doubler(nn.Module):
    def forward(self, x):
        return x * 2


@dtb.register_layer(name="TestTimesK")
class TimesK(nn.Module):
    def __init__(self, k=2.0):
        super().__init__()
        self.k = k

    def forward(self, x):
        return x * self.k


def test_custom_layers_save_only_when_registered(tmp_path):
    with pytest.raises(UnregisteredLayerError, match="register_layer"):
        save(Network([L.FeatureInput(2), Doubler()]), tmp_path / "a")
    assert not (tmp_path / "a").exists()
    net = Network([L.FeatureInput(2), TimesK(3.0), L.Dense(1)])
    loaded = load(save(net, tmp_path / "b"))
    assert loaded.layer_names[1] == "testtimesk_1"
    assert (
        isinstance(loaded.layer("testtimesk_1"), TimesK) and loaded.layer("testtimesk_1").k == 3.0
    )
    x = torch.randn(4, 2)
    assert torch.equal(loaded(x), net(x))
    with pytest.raises(OptionError, match="JSON values"):
        save(Network([L.FeatureInput(2), TimesK(torch.tensor(2.0))]), tmp_path / "c")


def test_json_keeps_classes():
    net = cnn()
    assert Network.from_json(net.to_json()).classes == ["cat", "dog", "owl"]


def test_to_python_keeps_names_of_plain_registered_modules():
    net = Network({"x": L.FeatureInput(2), "halve": TimesK(0.5), "fc": L.Dense(1)})
    net.add_layers(L.Dense(1, name="side")).connect("halve", "side")
    namespace = {}
    exec(dtb.to_python(net), namespace)
    rebuilt = namespace["build_network"]()
    assert rebuilt.layer_names == ["x", "halve", "fc", "side"]
    assert rebuilt.to_json() == net.to_json()


def test_folder_save_restores_the_old_folder_when_the_final_rename_fails(tmp_path, monkeypatch):
    path = save(cnn(), tmp_path / "net")
    real_rename = _io.os.rename
    calls = []

    def rename(source, destination):
        calls.append(source)
        if len(calls) == 2:  # the new folder moving into place
            raise OSError("rename failed (simulated)")
        return real_rename(source, destination)

    monkeypatch.setattr(_io.os, "rename", rename)
    # where the system cannot swap two folders in one step (renameat2), they move in two
    monkeypatch.setattr("deeptoolbox._atomic._exchange", lambda first, second: False)
    with pytest.raises(OSError, match="rename failed"):
        save(cnn(), path)
    monkeypatch.undo()
    assert load(path).classes == ["cat", "dog", "owl"]
    assert [p.name for p in tmp_path.iterdir()] == ["net"]


def test_load_gives_a_network_ready_to_predict(tmp_path):
    """A network saved in training mode (dropout on) loads in evaluation mode: net(x) is
    deterministic and equals the saved network's evaluation output."""
    torch.manual_seed(0)
    net = Network([L.FeatureInput(4), L.Dense(16), L.Dropout(0.5), L.Dense(2)])
    net.train()
    x = torch.randn(8, 4)
    loaded = load(save(net, tmp_path / "net"))
    assert not loaded.training
    assert torch.equal(loaded(x), loaded(x))
    assert torch.equal(loaded(x), net.eval()(x))
