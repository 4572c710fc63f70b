"""export_keras -> import_keras keeps the network's name, classes and input normalization,
and Keras's own loader computes what the network computes (normalization included)."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
import torch

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported
keras = pytest.importorskip("keras")

import deeptoolbox as dtb  # noqa: E402
from deeptoolbox import layers as L  # noqa: E402
from deeptoolbox.explain import gradcam  # noqa: E402

STATISTICS = {
    "zscore": {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.3, 0.25]},
    "zerocenter": {"mean": [0.5, 0.1, 0.2]},
    "rescale-zero-one": {"min": [0.0, 0.1, 0.2], "max": [1.0, 2.0, 3.0]},
    "rescale-symmetric": {"min": [0.0, -1.0, 0.5], "max": [255.0, 1.0, 2.0]},
}


def image_net(normalization="none", dimension="auto"):
    torch.manual_seed(0)
    statistics = STATISTICS.get(normalization, {})
    if dimension == "all":
        statistics = {k: float(np.mean(v)) for k, v in statistics.items()}
    elif dimension == "element":
        low = {"std": 0.5, "max": 2.0}
        statistics = {k: torch.rand(3, 6, 5) + low.get(k, 0.0) for k in statistics}
    net = dtb.Network(
        [
            L.ImageInput((3, 6, 5), name="img", normalization=normalization,
                         normalization_dimension=dimension, **statistics),
            L.Conv2d(4, 3, padding=1, name="conv1"),
            L.BatchNorm(name="bn1"),
            L.ReLU(name="relu1"),
            L.GlobalAvgPool(name="gap"),
            L.Dense(3, name="fc"),
            L.Softmax(name="prob"),
        ],
        classes=["cat", "dog", "owl"],
        name="pets",
    )  # fmt: skip
    net.train()
    net(torch.rand(8, 3, 6, 5))  # BatchNorm statistics away from their defaults
    return net.eval()


def keras_output(path, x: torch.Tensor) -> np.ndarray:
    model = keras.saving.load_model(path)
    channels_last = x.permute(0, 2, 3, 1) if x.dim() == 4 else x
    return np.asarray(keras.ops.convert_to_numpy(model(channels_last.numpy())))


@pytest.mark.parametrize("dimension", ["auto", "all", "element"])
@pytest.mark.parametrize("normalization", sorted(STATISTICS))
def test_input_normalization_round_trips_and_keras_applies_it(tmp_path, normalization, dimension):
    net = image_net(normalization, dimension)
    path = dtb.export_keras(net, tmp_path / "pets.keras")
    again = dtb.import_keras(path)
    layer, original = again.layer("img"), net.layer("img")
    assert layer.normalization == normalization
    assert layer.normalization_dimension == dimension
    for key in STATISTICS[normalization]:
        torch.testing.assert_close(getattr(layer, key), getattr(original, key))
    x = torch.rand(4, 3, 6, 5) * 3
    torch.testing.assert_close(again(x), net(x))
    np.testing.assert_allclose(keras_output(path, x), net(x).detach().numpy(), atol=1e-5)


def test_name_classes_and_layer_names_round_trip(tmp_path):
    net = image_net("zscore")
    again = dtb.import_keras(dtb.export_keras(net, tmp_path / "pets.keras"))
    assert again.name == "pets"
    assert again.classes == ["cat", "dog", "owl"]
    assert {"img", "conv1", "bn1", "relu1", "fc", "prob"} <= set(again.layer_names)
    x = torch.rand(2, 3, 6, 5)
    labels, scores = dtb.classify(again, x)
    assert list(labels) == list(dtb.classify(net, x)[0])
    torch.testing.assert_close(
        gradcam(again, x, target="dog", layer="relu1"), gradcam(net, x, target="dog", layer="relu1")
    )
    dtb.hub.freeze(again, up_to="bn1")
    assert not again.layer("conv1").weight.requires_grad and again.layer("fc").weight.requires_grad


def test_metadata_is_invisible_to_keras_and_features_keep_their_normalization(tmp_path):
    net = dtb.Network(
        [L.FeatureInput(3, normalization="zscore", mean=[1.0, 2.0, 3.0], std=[2.0, 1.0, 0.5],
                        name="x"), L.Dense(2, name="fc"), L.Softmax()],
        classes=["low", "high"],
    )  # fmt: skip
    path = dtb.export_keras(net, tmp_path / "f.keras")
    with zipfile.ZipFile(path) as archive:
        entry = json.loads(archive.read("metadata.json"))["deeptoolbox"]
    assert entry["classes"] == ["low", "high"]
    assert entry["normalization_layers"] == {"x_normalization": "x"}
    x = torch.randn(5, 3) * 2 + 2
    np.testing.assert_allclose(keras_output(path, x), net(x).detach().numpy(), atol=1e-5)
    again = dtb.import_keras(path)
    assert again.classes == ["low", "high"] and again.layer("x").normalization == "zscore"
    assert "x_normalization" not in again.layer_names
    torch.testing.assert_close(again(x), net(x))
