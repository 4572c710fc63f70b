"""pretrained("hf:...") and pretrained("timm:...") with model files the tests write (no download)."""

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

import deeptoolbox as dtb  # noqa: E402


@pytest.fixture
def tiny_vit(tmp_path):
    labels = {0: "cat", 1: "dog", 2: "owl"}
    config = transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=3, id2label=labels, label2id={v: k for k, v in labels.items()},
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.ViTForImageClassification(config).eval()
    model.save_pretrained(tmp_path)
    processor = transformers.ViTImageProcessor(
        size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    processor.save_pretrained(tmp_path)
    return tmp_path, model


def test_hf_model_folder_becomes_a_network_with_its_classes(tiny_vit, monkeypatch):
    folder, model = tiny_vit
    monkeypatch.setenv("DEEPTOOLBOX_OFFLINE", "1")
    net = dtb.pretrained(f"hf:{folder}")
    assert net.classes == ["cat", "dog", "owl"]
    assert list(net.metadata["input_size"]) == [3, 32, 32]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), model(pixel_values=x).logits, atol=1e-5, rtol=0)
    image = (np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)
    labels, scores = dtb.classify(net, image)
    assert labels.shape == (1,) and labels[0] in net.classes and scores.shape == (1, 3)


def test_timm_model_with_a_local_weights_file(tmp_path):
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    torch.manual_seed(0)
    module = timm.create_model("resnet18", pretrained=False, num_classes=5).eval()
    save_file(module.state_dict(), tmp_path / "resnet18.safetensors")
    net = dtb.pretrained("timm:resnet18", weights=tmp_path / "resnet18.safetensors", num_classes=5)
    assert list(net.metadata["input_size"]) == [3, 224, 224]
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), module(x), atol=1e-4, rtol=1e-4)
