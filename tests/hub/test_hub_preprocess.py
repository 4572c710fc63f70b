"""Image preprocessing that travels with a network, applied by predict/classify."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import models

import deeptoolbox as dtb
from deeptoolbox import layers as L
from deeptoolbox.errors import DataError, OptionError
from deeptoolbox.hub import (
    image_transform,
    include_normalization,
    model_info,
    prepare_images,
    preprocess,
)

SPEC = {"type": "image_classification", "resize_size": 40, "crop_size": 32,
        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "interpolation": "bilinear"}  # fmt: skip


def image_net():
    torch.manual_seed(0)
    net = dtb.Network([L.ImageInput((3, 32, 32)), L.Conv2d(4, 3, padding="same"), L.GlobalAvgPool(), L.Dense(3)],
                      classes=["a", "b", "c"])  # fmt: skip
    net.metadata["preprocessing"] = dict(SPEC)
    return net


def test_transform_is_the_one_torchvision_publishes():
    weights = models.EfficientNet_B0_Weights.DEFAULT  # bicubic, resize 256
    ours = image_transform(model_info("efficientnet_b0").preprocessing)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 280, 3), np.uint8))
    torch.testing.assert_close(ours(image), weights.transforms()(image))
    tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1)
    torch.testing.assert_close(ours(tensor), weights.transforms()(tensor))


def test_image_kinds_become_preprocessed_batches(tmp_path):
    net = image_net()
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)
    expected = image_transform(SPEC)(Image.fromarray(rgb))
    Image.fromarray(rgb).save(tmp_path / "a.png")
    torch.testing.assert_close(preprocess(net, tmp_path / "a.png"), expected.unsqueeze(0))
    torch.testing.assert_close(preprocess(net, Image.fromarray(rgb))[0], expected)
    batch = preprocess(net, [str(tmp_path / "a.png"), Image.fromarray(rgb)])
    torch.testing.assert_close(batch, expected.expand(2, -1, -1, -1))
    assert preprocess(net, np.stack([rgb, rgb])).shape == (2, 3, 32, 32)  # (N, H, W, C)
    chw = torch.from_numpy(rgb).permute(2, 0, 1)
    torch.testing.assert_close(preprocess(net, chw)[0], image_transform(SPEC)(chw))
    gray = rng.integers(0, 256, (50, 60), dtype=np.uint8)
    gray_rgb = torch.from_numpy(gray).expand(3, -1, -1)
    torch.testing.assert_close(preprocess(net, gray)[0], image_transform(SPEC)(gray_rgb))
    rgba = np.concatenate([rgb, np.zeros((50, 60, 1), np.uint8)], axis=2)
    torch.testing.assert_close(preprocess(net, rgba)[0], image_transform(SPEC)(chw))


def test_classify_preprocesses_images_and_passes_float_tensors_through(tmp_path):
    net = image_net()
    image = np.random.default_rng(2).integers(0, 256, (45, 45, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "b.png")
    labels, scores = dtb.classify(net, str(tmp_path / "b.png"))
    reference = dtb.classify(net, preprocess(net, tmp_path / "b.png"))[1]
    torch.testing.assert_close(scores, reference)
    assert labels.shape == (1,) and labels[0] in net.classes
    assert prepare_images(net, torch.randn(2, 3, 32, 32)) is None
    assert prepare_images(dtb.Network([L.FeatureInput(2), L.Dense(2)]), image) is None


def test_preprocess_errors_name_the_problem(tmp_path):
    net = image_net()
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match="broken.jpg"):
        preprocess(net, tmp_path / "broken.jpg")
    with pytest.raises(DataError, match="1, 3 or 4 channels"):
        preprocess(net, torch.zeros(2, 5, 8, 8, dtype=torch.uint8))
    with pytest.raises(DataError, match="float"):
        preprocess(net, torch.zeros(2, 3, 8, 8))
    with pytest.raises(OptionError, match="no image preprocessing"):
        preprocess(dtb.Network([L.FeatureInput(2), L.Dense(2)]), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(OptionError, match="image_classification"):
        image_transform({"type": "other"})


def test_include_normalization_makes_the_network_take_images_in_0_1():
    net = image_net()
    x = torch.rand(3, 3, 32, 32)
    mean, std = torch.tensor(SPEC["mean"]).view(3, 1, 1), torch.tensor(SPEC["std"]).view(3, 1, 1)
    with torch.no_grad():
        expected = net((x - mean) / std)
    image = np.random.default_rng(3).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    before = dtb.classify(net, image)[1]
    include_normalization(net)
    with torch.no_grad():
        torch.testing.assert_close(net(x), expected)
    torch.testing.assert_close(dtb.classify(net, image)[1], before)
    with pytest.raises(OptionError, match="without normalization"):
        include_normalization(net)
