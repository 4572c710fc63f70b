"""list_pretrained(), model_info() and the command line helpers."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import models

import deeptoolbox as dtb
from deeptoolbox import layers as L
from deeptoolbox.hub import (
    UnknownModelError,
    _pretrained,
    classify_command,
    list_pretrained,
    model_info,
    models_command,
    top_classes,
)

REQUIRED = ["squeezenet1_1", "googlenet", "resnet18", "resnet50", "mobilenet_v2",
            "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "vit_b_16",
            "convnext_tiny"]  # fmt: skip


def test_registry_reads_the_published_figures():
    table = list_pretrained()
    assert set(REQUIRED) <= set(table.names)
    for name in REQUIRED:
        weights = models.get_model_weights(name).DEFAULT
        info = model_info(name)
        assert info.parameters == weights.meta["num_params"]
        assert info.accuracy["top1"] == weights.meta["_metrics"]["ImageNet-1K"]["acc@1"]
        assert info.url == weights.url and info.file_name in weights.url
        assert weights.url.split("-")[-1].startswith(info.sha256_prefix)
    rows = table.to_list()
    assert {"name", "family", "parameters", "input_size", "accuracy", "license"} <= set(rows[0])
    assert model_info("vit_b_16").family == "vit" and model_info("resnet50").input_size == (
        3,
        224,
        224,
    )
    assert model_info("vit_b_16").to_dict()["weight_tags"][0] == "IMAGENET1K_V1"


def test_table_prints_and_filters():
    text = str(list_pretrained(family="mobilenet_v3"))
    lines = text.splitlines()
    assert lines[0].split() == [
        "name",
        "family",
        "parameters",
        "input",
        "top-1",
        "top-5",
        "license",
    ]
    assert lines[2].split()[:3] == ["mobilenet_v3_large", "mobilenet_v3", "5.5M"]
    assert "2 models" in lines[-1] and "timm:" in lines[-1]
    with pytest.raises(UnknownModelError, match="'resnet'"):
        list_pretrained(family="resnets")
    names = list_pretrained(family="resnet").names
    assert names.index("resnet18") < names.index("resnet101")  # natural order


def tiny_pretrained(name, weights="default", cache_dir=None):
    torch.manual_seed(0)
    net = dtb.Network(
        [L.ImageInput((3, 8, 8)), L.Flatten(), L.Dense(3)], classes=["cat", "dog", "owl"]
    )
    net.metadata["preprocessing"] = {"type": "image_classification", "resize_size": 8,
                                     "crop_size": 8, "mean": [0.5] * 3, "std": [0.5] * 3}  # fmt: skip
    return net


def test_top_classes_are_sorted_probabilities():
    net = tiny_pretrained("x")
    rows = top_classes(net, torch.randn(3, 3, 8, 8), top=2)
    assert len(rows) == 3 and all(len(r) == 2 and r[0][1] >= r[1][1] for r in rows)
    assert all(label in net.classes for r in rows for label, _ in r)
    with pytest.raises(ValueError, match="top"):
        top_classes(net, torch.randn(1, 3, 8, 8), top=0)


def test_cli_helpers(monkeypatch, tmp_path, capsys):
    assert models_command() == 0
    assert "resnet18" in capsys.readouterr().out
    assert models_command("nope") == 2 and "unknown family" in capsys.readouterr().err
    monkeypatch.setattr(_pretrained, "pretrained", tiny_pretrained)
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(tmp_path / "cat.png")
    assert classify_command(str(tmp_path / "cat.png"), "tiny", top=2) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("(tiny):") and len(out) == 3 and out[1].strip().endswith("%")
    assert classify_command(str(tmp_path / "missing.png"), "tiny") == 2
    assert "missing.png" in capsys.readouterr().err


def test_matlab_model_names_resolve_with_a_note_where_the_model_differs():
    expected = {
        "squeezenet": "squeezenet1_1", "googlenet": "googlenet", "inceptionv3": "inception_v3",
        "mobilenetv2": "mobilenet_v2", "efficientnetb0": "efficientnet_b0",
        "resnet18": "resnet18", "resnet101": "resnet101", "densenet201": "densenet201",
        "ResNet50": "resnet50",
    }  # fmt: skip
    assert {name: model_info(name).name for name in expected} == expected
    assert model_info("inceptionv3").input_size == (3, 299, 299)
    with pytest.warns(UserWarning, match="SqueezeNet v1.1.*input_size=\\(3, 227, 227\\)"):
        net = dtb.hub.pretrained("squeezenet", weights=None)
    assert net.metadata["pretrained"]["name"] == "squeezenet1_1"
    assert net.metadata["pretrained"]["requested"] == "squeezenet"
    assert "227x227" in net.metadata["pretrained"]["note"]
    with pytest.raises(UnknownModelError, match="timm:legacy_xception"):
        dtb.hub.pretrained("xception", weights=None)
