"""Keras 3-D layers and volume inputs, checked against the keras package itself (torch
backend): Keras writes a model with every 3-D layer to ``.keras`` and ``.h5``, the toolbox
imports it (outputs equal to Keras's), and export_keras writes the import back, which Keras
loads with equal outputs. Keras volumes are (N, D, H, W, C); the toolbox's (N, C, D, H, W).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported
keras = pytest.importorskip("keras")

import deeptoolbox as dtb  # noqa: E402
from deeptoolbox import layers as L  # noqa: E402
from deeptoolbox.errors import ModelExportError, ModelImportError  # noqa: E402
from deeptoolbox.interop.keras import export_keras, import_keras, supported_keras_layers  # noqa: E402

ATOL, RTOL = 1e-4, 1e-3
layers = keras.layers
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]
VOLUME_LAYERS = [
    "Conv3D", "Conv3DTranspose", "MaxPooling3D", "AveragePooling3D", "GlobalAveragePooling3D",
    "GlobalMaxPooling3D", "UpSampling3D", "ZeroPadding3D", "Cropping3D",
]  # fmt: skip


def _random_weights(model, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        value = np.asarray(variable.numpy())
        low = 0.5 if "variance" in variable.path else -0.5
        variable.assign(rng.uniform(low, low + 1.0, value.shape).astype(value.dtype))


def _volume_model():
    """Every 3-D layer, Dense/BatchNormalization on volumes, Flatten and Reshape of volumes."""
    inputs = keras.Input((6, 8, 7, 3))
    h = layers.Conv3D(4, 3, padding="same", activation="relu")(inputs)
    h = layers.BatchNormalization()(h)
    h = layers.ZeroPadding3D(((1, 0), (0, 2), (1, 1)))(h)
    h = layers.MaxPooling3D(2, padding="same")(h)  # (4, 5, 5, 4)
    a = layers.AveragePooling3D((2, 1, 2), strides=1, padding="same")(h)  # padding left out
    b = layers.AveragePooling3D(2, strides=(1, 2, 1))(h)  # (3, 2, 4, 4)
    h = layers.Conv3DTranspose(3, (3, 2, 3), strides=(2, 1, 2), padding="same")(a)
    h = layers.UpSampling3D((1, 2, 1))(h)
    h = layers.Cropping3D(((1, 0), (0, 1), (1, 1)))(h)  # (7, 9, 8, 3)
    gate = layers.GlobalAveragePooling3D(keepdims=True)(h)
    h = layers.Multiply()([h, gate])
    h = layers.Conv3DTranspose(2, 2, strides=2, padding="valid", use_bias=False)(h)
    h = layers.Dense(2)(h)  # on each voxel's channels
    flat = layers.Dense(3)(layers.Flatten()(h))
    peak = layers.GlobalMaxPooling3D()(b)
    joined = layers.Concatenate(axis=2)([b, b])  # along H
    joined = layers.Permute((3, 1, 4, 2))(joined)
    volume = layers.Reshape((4, 3, 4, 4))(layers.Flatten()(joined))
    volume = layers.Conv3D(2, (1, 2, 2), strides=(1, 2, 2), activation="tanh")(volume)
    return keras.Model(inputs, [flat, peak, volume])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The model written by Keras as .keras and .h5, a batch in Keras's layout, its outputs."""
    keras.utils.set_random_seed(0)
    model = _volume_model()
    _random_weights(model)
    folder = tmp_path_factory.mktemp("volumes")
    for suffix in (".keras", ".h5"):
        model.save(folder / f"model{suffix}")
    x = np.random.default_rng(1).random((2, 6, 8, 7, 3), dtype=np.float32)
    return folder, x, [np.asarray(y) for y in model.predict(x, verbose=0)]


def _toolbox(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(np.moveaxis(x, -1, 1)))  # channels first


def _keras_layout(y: torch.Tensor) -> np.ndarray:
    y = y.detach().numpy()
    return np.moveaxis(y, 1, -1) if y.ndim == 5 else y


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_volume_model_imports_with_keras_outputs(saved, suffix):
    folder, x, expected = saved
    net = import_keras(folder / f"model{suffix}")
    assert isinstance(net.layer(net.input_names[0]), L.VolumeInput)
    assert net.layer(net.input_names[0]).shape == (3, 6, 8, 7)
    kinds = {type(m).__name__ for m in net.layers.values()}
    assert {"Conv3d", "TransposedConv3d", "MaxPool3d", "AvgPool3d", "AvgPoolExcludingPadding",
            "GlobalAvgPool", "GlobalMaxPool", "Resize3d", "Crop3d", "BatchNorm"} <= kinds  # fmt: skip
    with torch.no_grad():
        got = net(_toolbox(x))
    assert len(got) == len(expected)
    for want, out in zip(expected, got, strict=True):
        np.testing.assert_allclose(_keras_layout(out), want, atol=ATOL, rtol=RTOL)


def test_imported_volume_model_exports_back_to_keras(saved, tmp_path):
    folder, x, expected = saved
    net = import_keras(folder / "model.keras")
    path = export_keras(net, tmp_path / "back.keras", example_inputs=_toolbox(x))
    model = keras.saving.load_model(path)
    written = {type(layer).__name__ for layer in model.layers}
    assert set(VOLUME_LAYERS) <= written
    for want, got in zip(expected, model.predict(x, verbose=0), strict=True):
        np.testing.assert_allclose(np.asarray(got), want, atol=ATOL, rtol=RTOL)


def test_toolbox_volume_network_exports_to_keras(tmp_path):
    torch.manual_seed(2)
    net = dtb.Network(
        [
            L.VolumeInput((2, 5, 6, 6), name="volume"),
            L.Conv3d(3, 3, padding=1, name="conv"),  # explicit padding: ZeroPadding3D first
            L.AvgPool3d(2, stride=1, name="avg"),
            L.TransposedConv3d(2, 3, stride=2, cropping=1, name="up"),  # + Cropping3D
            L.Resize3d(scale=(2, 1, 1), name="resize"),
            L.Crop3d([[1, 0], [0, 1], [2, 1]], name="crop"),
            # Keras's torch backend pads uneven "same" windows by repeating the border, not
            # as TensorFlow (and the toolbox) do; an odd window with stride 1 is even
            L.AvgPoolExcludingPadding([3, 1, 3], stride=[1, 1, 1], name="mean"),
            L.ReLU(name="relu"),
            L.GlobalAvgPool(name="gap"),
            L.Dense(3, name="fc"),
        ]
    )
    x = torch.rand(2, 2, 5, 6, 6)
    path = export_keras(net, tmp_path / "volumes.keras", example_inputs=x)
    model = keras.saving.load_model(path)
    kinds = [type(layer).__name__ for layer in model.layers]
    for kind in ("ZeroPadding3D", "Conv3D", "AveragePooling3D", "Conv3DTranspose",
                 "Cropping3D", "UpSampling3D", "GlobalAveragePooling3D"):  # fmt: skip
        assert kind in kinds
    with torch.no_grad():
        expected = net(x).numpy()
    keras_x = x.permute(0, 2, 3, 4, 1).numpy()
    np.testing.assert_allclose(model.predict(keras_x, verbose=0), expected, atol=ATOL, rtol=RTOL)
    back = import_keras(path)
    with torch.no_grad():
        np.testing.assert_allclose(back(x).numpy(), expected, atol=ATOL, rtol=RTOL)


def test_volume_layers_are_listed_and_unsupported_options_refused(tmp_path):
    assert set(VOLUME_LAYERS) <= set(supported_keras_layers())
    inputs = keras.Input((4, 4, 4, 2))
    outputs = layers.Conv3D(2, 3, padding="same")(inputs)
    outputs = layers.Conv3DTranspose(2, 2, strides=2, output_padding=1)(outputs)
    keras.Model(inputs, outputs).save(tmp_path / "output_padding.keras")
    with pytest.raises(ModelImportError, match="Conv3DTranspose.*output_padding"):
        import_keras(tmp_path / "output_padding.keras")
    net = dtb.Network([L.VolumeInput((1, 4, 4, 4)), L.Resize3d(scale=2, method="trilinear")])
    with pytest.raises(ModelExportError, match="UpSampling3D"):
        export_keras(net, tmp_path / "trilinear.keras")
