"""pretrained_module(): torchvision architectures with weights from a file or a pre-filled cache."""

import sys
import warnings

import pytest
import safetensors.torch
import torch
from torchvision import models

from deeptoolbox.errors import OptionError
from deeptoolbox.hub import (
    MissingDependencyError,
    UnknownModelError,
    WeightsError,
    _weights,
    model_info,
    pretrained_module,
)

FAST = ["squeezenet1_1", "googlenet", "mobilenet_v3_small"]  # resnet18: test_hub_pretrained
HEAVY = ["resnet18", "mobilenet_v2", "efficientnet_b0", "mobilenet_v3_large", "resnet50",
         "vit_b_16", "convnext_tiny"]  # fmt: skip
REQUIRED = FAST + [pytest.param(n, marks=pytest.mark.slow) for n in HEAVY]


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    def refuse(url, destination):
        raise AssertionError(f"a test tried to download {url}")

    monkeypatch.setattr(_weights, "_download", refuse)
    monkeypatch.delenv("DEEPTOOLBOX_CACHE", raising=False)


def published_like(name):
    """A torchvision model built as torchvision builds it for its published weights, with
    random weights: what a weights file written by the source would hold."""
    weights = models.get_model_weights(name).DEFAULT
    options = {"num_classes": len(weights.meta["categories"])}
    if name in ("googlenet", "inception_v3"):
        options.update(aux_logits=True, transform_input=True, init_weights=False)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = models.get_model(name, weights=None, **options)
    for parameter in model.parameters():  # make every weight count, heads included
        parameter.data.normal_(0, 0.02)
    return model.eval()


def reference_output(model, name, x):
    if name in ("googlenet", "inception_v3"):  # torchvision drops the auxiliary heads
        model.aux_logits, model.aux1, model.aux2 = False, None, None
    with torch.no_grad():
        return model(x)


def size_for(name):
    return 224 if name.startswith("vit") else 64


@pytest.mark.parametrize("name", REQUIRED)
def test_pre_filled_cache_gives_the_torchvision_model(name, tmp_path, monkeypatch):
    model = published_like(name)
    torch.save(model.state_dict(), tmp_path / model_info(name).file_name)
    monkeypatch.setenv("DEEPTOOLBOX_OFFLINE", "1")
    monkeypatch.setenv("DEEPTOOLBOX_CACHE", str(tmp_path))
    loaded = pretrained_module(name)
    x = torch.randn(2, 3, size_for(name), size_for(name))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), reference_output(model, name, x))
    assert not loaded.training


@pytest.mark.parametrize(
    "name, file", [("resnet18", "mine.safetensors"), ("googlenet", "mine.pth")]
)
def test_weights_from_a_local_file(name, file, tmp_path):
    model = published_like(name)
    if file.endswith(".safetensors"):
        safetensors.torch.save_file(model.state_dict(), tmp_path / file)
    else:
        torch.save(model.state_dict(), tmp_path / file)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(
            pretrained_module(name, weights=tmp_path / file)(x), reference_output(model, name, x)
        )


def test_offline_error_names_the_file_the_weights_tag_needs(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPTOOLBOX_OFFLINE", "1")
    with pytest.raises(WeightsError) as info:
        pretrained_module("resnet50", weights="IMAGENET1K_V1", cache_dir=tmp_path)
    message = str(info.value)
    assert "resnet50-0676ba61.pth" in message
    assert "https://download.pytorch.org/models/resnet50-0676ba61.pth" in message
    assert str(tmp_path) in message


def test_random_weights_and_builder_options():
    model = pretrained_module("mobilenet_v3_small", weights=None, num_classes=4)
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 4)


def test_weights_that_do_not_fit_name_the_keys(tmp_path):
    torch.save(published_like("squeezenet1_1").state_dict(), tmp_path / "squeeze.pth")
    with pytest.raises(WeightsError, match="do not fit the architecture") as info:
        pretrained_module("resnet18", weights=tmp_path / "squeeze.pth")
    assert "squeeze.pth" in str(info.value)


def test_bad_names_and_weights_values():
    with pytest.raises(UnknownModelError, match="Did you mean 'resnet18'"):
        pretrained_module("resnet_18")
    with pytest.raises(OptionError, match="IMAGENET1K_V2"):
        pretrained_module("resnet50", weights="imagenet")
    with pytest.raises(WeightsError, match="no file at"):
        pretrained_module("resnet18", weights="missing/weights.pth")


@pytest.mark.parametrize(
    "name, package",
    [("timm:resnet50.a1_in1k", "timm"), ("hf:microsoft/resnet-50", "transformers")],
)
def test_timm_and_hugging_face_need_their_packages(name, package, monkeypatch):
    monkeypatch.setitem(sys.modules, package, None)  # as if it were not installed
    with pytest.raises(MissingDependencyError, match=f"pip install {package}"):
        pretrained_module(name)


def fake_timm(created):
    """A stand-in for the timm package: just the calls deeptoolbox makes."""
    import types

    def create_model(name, pretrained=False, **options):
        created.append((name, pretrained, options))
        torch.manual_seed(0)
        return models.resnet18(weights=None, num_classes=options.get("num_classes", 3))

    data = types.SimpleNamespace(
        resolve_data_config=lambda args, model: {
            "input_size": (3, 160, 160), "crop_pct": 0.8, "interpolation": "bicubic",
            "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25),
        },
        infer_imagenet_subset=lambda model: None,
    )  # fmt: skip
    return types.SimpleNamespace(create_model=create_model, data=data)


def test_timm_models_go_through_timm_with_its_preprocessing(monkeypatch, tmp_path):
    import sys

    from deeptoolbox.hub import _pretrained

    created = []
    monkeypatch.setitem(sys.modules, "timm", fake_timm(created))
    module, info, provenance = _pretrained._module("timm:resnet18.tv_in1k", "default", None, {})
    assert created == [("resnet18.tv_in1k", True, {})] and info.source == "timm"
    spec = info.preprocessing
    assert (spec["crop_size"], spec["resize_size"], spec["interpolation"]) == (160, 200, "bicubic")
    assert info.input_size == (3, 160, 160) and provenance["categories"] is None
    torch.save(module.state_dict(), tmp_path / "w.pth")
    loaded = pretrained_module("timm:resnet18.tv_in1k", weights=tmp_path / "w.pth")
    assert created[-1][1] is False  # a local file: no download through timm
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), module(x))
    _pretrained._module("hf:timm/resnet18.tv_in1k", None, None, {})
    assert created[-1][0] == "hf-hub:timm/resnet18.tv_in1k"
