"""Keras import and export of TransposedConv1d (Keras Conv1DTranspose), checked against the
keras package itself (torch backend). Keras's Conv3DTranspose and UpSampling3D need volume
inputs, which the Keras interop does not read or write yet (Conv3D neither)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported
keras = pytest.importorskip("keras")

import deeptoolbox as dtb  # noqa: E402
from deeptoolbox import layers as L  # noqa: E402
from deeptoolbox.errors import ModelImportError  # noqa: E402
from deeptoolbox.interop import ModelExportError  # noqa: E402
from deeptoolbox.interop.keras._export import export_keras  # noqa: E402
from deeptoolbox.interop.keras._import import import_keras  # noqa: E402

TOLERANCE = 1e-5
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


def _predict(net: dtb.Network, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net.eval()(torch.as_tensor(x)).numpy()


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_conv1d_transpose_imports_as_transposed_conv1d(tmp_path, suffix):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((7, 3))
    h = keras.layers.Conv1DTranspose(4, 3, strides=2, padding="same")(inputs)  # odd crop
    h = keras.layers.Conv1DTranspose(5, 4, strides=2, padding="same", activation="relu")(h)
    outputs = keras.layers.Conv1DTranspose(2, 3, strides=2, padding="valid", use_bias=False)(h)
    model = keras.Model(inputs, outputs)
    for layer in model.layers[1:]:  # non-zero biases
        layer.set_weights([w + np.random.default_rng(1).normal(size=w.shape) * 0.1
                           for w in layer.get_weights()])  # fmt: skip
    model.save(tmp_path / f"model{suffix}")
    net = import_keras(tmp_path / f"model{suffix}")
    kinds = [type(net.layer(n)).__name__ for n in net.layer_names]
    assert kinds.count("TransposedConv1d") == 3 and "ReLU" in kinds
    x = np.random.default_rng(2).standard_normal((2, 7, 3)).astype(np.float32)
    np.testing.assert_allclose(
        _predict(net, x), model.predict(x, verbose=0), atol=TOLERANCE, rtol=1e-5
    )


def test_export_keras_writes_conv1d_transpose_back(tmp_path):
    torch.manual_seed(3)
    net = dtb.Network([
        L.SequenceInput(3), L.TransposedConv1d(4, 3, stride=2, cropping="same"),
        L.TransposedConv1d(2, 2, stride=2, bias=False),
    ])  # fmt: skip
    path = tmp_path / "net.keras"
    export_keras(net, path)
    model = keras.saving.load_model(path)
    assert [type(layer).__name__ for layer in model.layers][1:] == ["Conv1DTranspose"] * 2
    x = torch.randn(2, 6, 3)
    expected = _predict(net, x.numpy())
    np.testing.assert_allclose(model.predict(x.numpy(), verbose=0), expected, atol=TOLERANCE,
                               rtol=1e-5)  # fmt: skip
    back = import_keras(path)
    np.testing.assert_allclose(_predict(back, x.numpy()), expected, atol=TOLERANCE, rtol=1e-5)


def test_crops_keras_cannot_express_are_refused(tmp_path):
    net = dtb.Network([L.SequenceInput(3), L.TransposedConv1d(2, 3, cropping=1, name="up")])
    with pytest.raises(ModelExportError, match="up"):
        export_keras(net, tmp_path / "net.keras")
    inputs = keras.Input((5, 3))
    model = keras.Model(inputs, keras.layers.Conv1DTranspose(2, 2, strides=3)(inputs))
    model.save(tmp_path / "small_kernel.keras")
    with pytest.raises(ModelImportError, match="Conv1DTranspose.*kernel_size=2 < strides=3"):
        import_keras(tmp_path / "small_kernel.keras")
