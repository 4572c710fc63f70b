"""from_torch, import_pytorch and export_pytorch: outputs checked against the original modules."""

from __future__ import annotations

import warnings
import zipfile

import pytest
import torch
import torchvision
from torch import nn

import deeptoolbox as dtb
from deeptoolbox import layers as L
from deeptoolbox.errors import ModelImportError, OptionError, UnregisteredLayerError
from deeptoolbox.interop._operators import OpaqueModule, TorchFunction, TorchModule
from deeptoolbox.interop.torch._api import export_pytorch, from_torch, import_pytorch

TOLERANCE = 1e-5  # float32, same operations in the same order: differences are rounding only


def _types(net: dtb.Network) -> dict[str, int]:
    counts: dict[str, int] = {}
    for layer in net.layers.values():
        counts[type(layer).__name__] = counts.get(type(layer).__name__, 0) + 1
    return counts


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return float((a - b).abs().max()) <= TOLERANCE * max(1.0, float(b.abs().max()))


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


class Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.conv2(torch.relu(self.bn1(self.conv1(x)))))


class SmallNet(nn.Module):
    """Nested submodules, a residual connection, pooling and a classifier: a small resnet."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8))
        self.layer1 = nn.Sequential(Residual(8), Residual(8))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layer1(self.stem(x))), 1))


@pytest.fixture(scope="module")
def small() -> nn.Module:
    torch.manual_seed(3)
    model = SmallNet().eval()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize(
    ("name", "options", "convs"),
    [
        ("resnet18", {}, 20),
        pytest.param("mobilenet_v2", {}, 52, marks=pytest.mark.slow),
        ("squeezenet1_1", {}, 26),
        pytest.param(
            "googlenet", {"aux_logits": False, "init_weights": True}, 57, marks=pytest.mark.slow
        ),
    ],
)
def test_torchvision_models_trace_into_toolbox_layers(name, options, convs):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None, **options).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback to opaque wrapping
        net = from_torch(model, torch.randn(1, 3, 48, 48))
    counts = _types(net)
    assert counts["Conv2d"] == convs
    assert "OpaqueModule" not in counts
    assert dtb.analyze(net).ok
    x = torch.randn(3, 3, 48, 48)  # another batch size than the example
    with torch.no_grad():
        assert _close(net(x), model(x))


def test_vision_transformer_traces_with_attention_as_self_attention(tmp_path):
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32,
        num_classes=5,
    ).eval()  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback to opaque wrapping
        net = from_torch(model, torch.randn(1, 3, 32, 32))
    counts = _types(net)
    assert "OpaqueModule" not in counts and counts["Dense"] >= 5
    attention = net.layer("encoder_layers_encoder_layer_0_self_attention")
    assert isinstance(attention, L.SelfAttention)  # issue 25: was a TorchModule (output 0)
    dtb.save(net, tmp_path / "vit.zip")
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert _close(net(x), model(x))
        assert _close(dtb.load(tmp_path / "vit.zip").eval()(x), model(x))


def test_names_follow_module_paths_and_weights_are_copies(resnet):
    net = from_torch(resnet, torch.randn(1, 3, 32, 32))
    assert {"conv1", "bn1", "layer1_0_conv1", "layer4_1_bn2", "fc"} <= set(net.layer_names)
    assert type(net.layer("layer1_0_conv1")).__name__ == "Conv2d"
    assert net.layer("fc").weight.data_ptr() != resnet.fc.weight.data_ptr()
    torch.testing.assert_close(net.layer("fc").weight, resnet.fc.weight)
    torch.testing.assert_close(net.layer("bn1").running_var, resnet.bn1.running_var)
    assert net.sources("layer1_0_add") == {"in1": "layer1_0_bn2", "in2": "maxpool"}


def test_sizes_are_resolved_once_not_after_every_layer(resnet, monkeypatch):
    resolved: list[dtb.Network] = []
    original = dtb.Network._resolve

    def counting(self: dtb.Network) -> None:
        resolved.append(self)
        original(self)

    monkeypatch.setattr(dtb.Network, "_resolve", counting)
    net = from_torch(resnet, torch.randn(1, 3, 32, 32))
    assert len(net.layers) > 60
    assert sum(n is net for n in resolved) <= 2  # the empty network, then the whole graph
    assert net.output_shape() == (1000,) and dtb.analyze(net).ok


def test_traced_network_saves_and_loads(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3), nn.ReLU6(), nn.MaxPool2d(2, ceil_mode=True), nn.Flatten(),
        nn.Linear(6 * 8 * 8, 4),
    ).eval()  # fmt: skip
    net = from_torch(model, torch.randn(1, 3, 18, 18))
    assert _types(net)["TorchModule"] == 2  # ReLU6, ceil-mode pooling: kept as torch.nn
    dtb.save(net, tmp_path / "net.zip")
    loaded = dtb.load(tmp_path / "net.zip").eval()
    x = torch.randn(2, 3, 18, 18)
    with torch.no_grad():
        assert _close(loaded(x), model(x))


class Gate(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace this forward."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.a(x)
        return self.b(x)


class TwoInTwoOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.gate, self.head = nn.Linear(4, 8), Gate(), nn.Linear(8, 3)
        self.scale = nn.Parameter(torch.linspace(0.5, 2.0, 3))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.gate(torch.relu(self.fc(x)))
        z = self.head(h) * self.scale
        return z.view(z.size(0), -1) + y, h.mean(-1, keepdim=True)


def test_untraceable_submodule_is_wrapped_alone():
    torch.manual_seed(0)
    model = TwoInTwoOut().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net = from_torch(model, (torch.randn(2, 4), torch.randn(2, 3)))
    assert isinstance(net.layer("gate"), OpaqueModule)
    assert type(net.layer("fc")).__name__ == "Dense"
    assert type(net.layer("view")).__name__ == "Flatten"  # x.view(x.size(0), -1)
    assert isinstance(net.layer("mul"), TorchFunction)  # owns the `scale` parameter
    for batch in (1, 5):  # the batch size stays free
        x, y = torch.randn(batch, 4), torch.randn(batch, 3)
        for found, expected in zip(net(x, y), model(x, y), strict=True):
            assert _close(found.detach(), expected.detach())
    with pytest.raises(UnregisteredLayerError, match="'gate'.*export_pytorch"):
        dtb.save(net, "never-written.zip")


class Whole(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if x.mean() > 0 else x - 1


def test_untraceable_module_is_wrapped_whole_with_a_warning():
    with pytest.warns(UserWarning, match="Whole is wrapped as one opaque layer"):
        net = from_torch(Whole(), torch.randn(2, 5))
    assert [type(m).__name__ for m in net.layers.values()] == ["FeatureInput", "OpaqueModule"]
    x = torch.full((3, 5), 2.0)
    torch.testing.assert_close(net(x), Whole()(x))
    torch.testing.assert_close(net(-x), Whole()(-x))


def test_from_torch_rejects_what_is_not_a_module_or_tensor():
    with pytest.raises(OptionError, match="`module` must be a torch.nn.Module"):
        from_torch(lambda x: x, torch.zeros(1, 2))  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="example_inputs"):
        from_torch(nn.Linear(2, 2), [[1.0, 2.0]])  # type: ignore[arg-type]


@pytest.mark.parametrize(("fmt", "suffix"), [("torchscript", ".pt"), ("exported-program", ".pt2")])
def test_export_of_a_token_network_traces_on_valid_token_ids(tmp_path, fmt, suffix):
    # the default example batch must hold token ids below the vocabulary size, not random
    # floats; the file takes integer token ids (N, T) as a tokenizer gives them (issue 25)
    net = dtb.Network(
        [L.SequenceInput(1), L.Embedding(20, 6), L.LSTM(5, output_mode="last")]
    ).eval()
    path = export_pytorch(net, tmp_path / f"tokens{suffix}", format=fmt)
    tokens = torch.randint(0, 20, (3, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        reloaded = (
            torch.jit.load(path) if fmt == "torchscript" else torch.export.load(path).module()
        )
    with torch.no_grad():
        assert _close(reloaded(tokens), net(tokens))


@pytest.mark.parametrize(("fmt", "suffix"), [("torchscript", ".pt"), ("exported-program", ".pt2")])
def test_export_then_reload_in_plain_torch_and_import(small, tmp_path, fmt, suffix):
    net = from_torch(small, torch.randn(1, 3, 32, 32)).eval()
    path = export_pytorch(net, tmp_path / f"small{suffix}", format=fmt)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary left
    x = torch.randn(3, 3, 32, 32)  # batch 3: the batch size stays free in both formats
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        reloaded = (
            torch.jit.load(path) if fmt == "torchscript" else torch.export.load(path).module()
        )
    with torch.no_grad():
        expected = small(x)
        assert _close(reloaded(x), expected)
        imported = import_pytorch(path, trust_code=True)  # input sizes come from the file
        assert _close(imported(x), expected)
    if fmt == "exported-program":  # ATen operators mapped back onto toolbox layers
        counts = _types(imported)
        assert counts["Conv2d"] == 5 and counts["BatchNorm"] == 3 and counts["Addition"] == 2
        assert {"stem_0", "layer1_0_conv1", "layer1_1_bn1", "fc"} <= set(imported.layer_names)


def test_pt2_from_torch_export_keeps_module_paths_as_names(small, tmp_path):
    program = torch.export.export(small, (torch.randn(2, 3, 32, 32),))
    torch.export.save(program, tmp_path / "small.pt2")
    with pytest.raises(ModelImportError, match="torch.export program, whose weights .* unpickle"):
        import_pytorch(tmp_path / "small.pt2")
    net = import_pytorch(tmp_path / "small.pt2", trust_code=True)
    assert {"stem_0", "stem_1", "layer1_0_conv1", "layer1_1_bn1", "fc"} <= set(net.layer_names)
    assert type(net.layer("layer1_0_conv1")).__name__ == "Conv2d"
    x = torch.randn(2, 3, 32, 32)  # exported with a fixed batch size of 2
    with torch.no_grad():
        assert _close(net(x), small(x))


def test_foreign_torchscript_needs_example_inputs(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(nn.Linear(3, 2)).save(str(tmp_path / "m.pt"))
    with pytest.raises(OptionError, match="example_inputs"):
        import_pytorch(tmp_path / "m.pt", trust_code=True)
    net = import_pytorch(tmp_path / "m.pt", torch.zeros(1, 3), trust_code=True)
    assert isinstance(net.layer("module"), OpaqueModule)
    assert net(torch.ones(4, 3)).shape == (4, 2)


def test_torchscript_is_code_and_opens_only_with_trust_code(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(nn.Linear(3, 2)).save(str(tmp_path / "m.pt"))
    loaded = []
    original = torch.jit.load
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.jit, "load", lambda *a, **k: loaded.append(a) or original(*a, **k))
        with pytest.raises(
            ModelImportError, match=r"'.*m.pt' is TorchScript, a program.*trust_code=True"
        ):
            import_pytorch(tmp_path / "m.pt", example_inputs=torch.zeros(1, 3))
        assert loaded == []  # refused before torch.jit.load ran anything
        with pytest.warns(UserWarning, match="opaque"):
            net = import_pytorch(tmp_path / "m.pt", example_inputs=torch.zeros(1, 3),
                                 trust_code=True)  # fmt: skip
        assert len(loaded) == 1
    assert net(torch.ones(2, 3)).shape == (2, 2)
    own = export_pytorch(dtb.Network([L.FeatureInput(3), L.Dense(2)]), tmp_path / "own.pt",
                         format="torchscript")  # fmt: skip
    with pytest.raises(ModelImportError, match="TorchScript, a program"):
        dtb.interop.convert(own, tmp_path / "own.onnx")
    with pytest.warns(UserWarning, match="opaque"):
        assert dtb.interop.read_model(own, trust_code=True)(torch.ones(2, 3)).shape == (2, 2)


def test_bad_files_raise_model_import_error_naming_the_file(tmp_path):
    missing = tmp_path / "missing.pt"
    with pytest.raises(ModelImportError, match="missing.pt' does not exist"):
        import_pytorch(missing)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model at all")
    with pytest.raises(ModelImportError, match="garbage.pt' is not a TorchScript"):
        import_pytorch(garbage)
    pickled = tmp_path / "pickled.pt"
    torch.save(nn.Linear(2, 2), pickled)  # a pickle checkpoint is never unpickled
    with pytest.raises(ModelImportError, match="pickle"):
        import_pytorch(pickled)
    net = dtb.Network([L.FeatureInput(3), L.Dense(2)])
    good = export_pytorch(net, tmp_path / "good.pt2", format="exported-program")
    truncated = tmp_path / "truncated.pt2"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelImportError, match="truncated.pt2"):
        import_pytorch(truncated, trust_code=True)
    with zipfile.ZipFile(tmp_path / "empty.pt2", "w"):
        pass
    with pytest.raises(ModelImportError, match="empty.pt2' cannot be read"):
        import_pytorch(tmp_path / "empty.pt2", trust_code=True)


def test_export_checks_format_and_never_leaves_a_partial_file(tmp_path, monkeypatch):
    net = dtb.Network([L.FeatureInput(3), L.Dense(2)])
    with pytest.raises(OptionError, match="`format` must be one of 'torchscript'"):
        export_pytorch(net, tmp_path / "n.onnx", format="onnx")
    target = tmp_path / "n.pt"
    target.write_bytes(b"earlier export")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch.jit, "save", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export_pytorch(net, target)
    assert target.read_bytes() == b"earlier export"
    assert [p.name for p in tmp_path.iterdir()] == ["n.pt"]


def test_operator_layers_round_trip_their_configuration():
    layer = TorchFunction(
        "torch.Tensor.view",
        arguments=[{"input": 0}, {"size": 0, "dim": 0}, 2, -1],
    )
    rebuilt = TorchFunction.from_config(layer.get_config())
    x = torch.arange(24.0).reshape(3, 8)
    torch.testing.assert_close(rebuilt(x), x.view(3, 2, 4))
    module = TorchModule("torch.nn.LSTM", module_arguments={"input_size": 3, "hidden_size": 4,
                         "batch_first": True}, output_index=0)  # fmt: skip
    assert module.output_shape([(None, 3)]) == (None, 4)
    with pytest.raises(OptionError, match="`function` must name a function"):
        TorchFunction("os.system")
    with pytest.raises(OptionError, match="`module` must name a module class in torch.nn"):
        TorchModule("subprocess.Popen")


class TextModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.lstm = nn.LSTM(8, 6, batch_first=True)
        self.gru = nn.GRU(6, 5, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(10, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.embed(tokens))
        h, _ = self.gru(h)
        return self.fc(h[:, -1])


def test_recurrent_text_model_maps_onto_toolbox_layers_and_saves(tmp_path):
    torch.manual_seed(4)
    model = TextModel().eval()
    net = from_torch(model, torch.randint(0, 20, (2, 7)))
    kinds = [type(net.layer(n)).__name__ for n in ("embed", "lstm", "gru", "fc")]
    assert kinds == ["Embedding", "LSTM", "GRU", "Dense"]
    dtb.save(net, tmp_path / "text.zip")
    loaded = dtb.load(tmp_path / "text.zip").eval()
    tokens = torch.randint(0, 20, (4, 7))
    with torch.no_grad():
        assert _close(loaded(tokens), model(tokens))


def test_the_kind_of_a_pytorch_file_comes_from_its_content_not_its_extension(tmp_path):
    own = export_pytorch(dtb.Network([L.FeatureInput(3), L.Dense(2)]), tmp_path / "own.pt",
                         format="torchscript")  # fmt: skip
    renamed = tmp_path / "renamed.pt2"
    renamed.write_bytes(own.read_bytes())
    with pytest.raises(ModelImportError, match="is TorchScript, a program"):
        import_pytorch(renamed)
    legacy = tmp_path / "legacy.pt"
    torch.save(nn.Linear(2, 2), legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(ModelImportError, match="pickled checkpoint .* never loads"):
        import_pytorch(legacy, trust_code=True)
