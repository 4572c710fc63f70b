"""Keras import and export of the activations issue 13 added (ClippedReLU, PReLU, Softplus,
HardSwish, HardSigmoid, Mish) and SpatialDropout, checked against the keras package itself
(torch backend)."""

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


def _kinds(net: dtb.Network) -> set[str]:
    return {type(net.layer(name)).__name__ for name in net.layer_names}


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_activations_and_prelu_import_as_the_layers(tmp_path, suffix):
    keras.utils.set_random_seed(0)
    layers = keras.layers
    inputs = keras.Input((6, 6, 2))
    h = layers.Conv2D(4, 3, padding="same")(inputs)
    h = layers.PReLU(shared_axes=[1, 2], alpha_initializer="random_uniform")(h)
    h = layers.ReLU(max_value=1.5)(h)
    h = layers.Activation("hard_silu")(h)
    h = layers.Activation("mish")(h)
    h = layers.SpatialDropout2D(0.3)(h)
    h = layers.Flatten()(h)
    h = layers.Dense(5)(h)
    h = layers.Activation("relu6")(h)
    h = layers.Activation("softplus")(h)
    h = layers.PReLU(alpha_initializer="random_uniform")(h)
    outputs = layers.Activation("hard_sigmoid")(h)
    model = keras.Model(inputs, outputs)
    path = tmp_path / f"model{suffix}"
    model.save(path)
    net = import_keras(path)
    kinds = {
        "PReLU",
        "ClippedReLU",
        "HardSwish",
        "Mish",
        "Softplus",
        "HardSigmoid",
        "SpatialDropout",
    }
    assert kinds <= _kinds(net)
    x = np.random.default_rng(0).standard_normal((3, 6, 6, 2)).astype(np.float32) * 2
    expected = np.asarray(model.predict(x, verbose=0))
    got = _predict(net, np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0)


def test_keras_prelu_with_alpha_per_position_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((4, 3)), keras.layers.PReLU()])  # alpha (4, 3)
    path = tmp_path / "prelu.keras"
    model.save(path)
    with pytest.raises(ModelImportError, match="alpha of shape"):
        import_keras(path)


def test_exported_activations_load_in_keras_with_the_same_predictions(tmp_path):
    torch.manual_seed(0)
    net = dtb.Network(
        [
            L.ImageInput((2, 5, 5), normalization="none"),
            L.Conv2d(3, 3, padding="same"),
            L.PReLU(name="prelu"),
            L.ClippedReLU(0.8),
            L.HardSwish(),
            L.Mish(),
            L.Flatten(),
            L.Dense(4),
            L.Softplus(),
            L.PReLU(0.3, channel_wise=False, name="shared"),
            L.HardSigmoid(),
        ]
    )
    with torch.no_grad():
        net.layer("prelu").alpha.copy_(torch.tensor([0.1, -0.4, 0.7]))
    path = tmp_path / "net.keras"
    export_keras(net, path)
    model = keras.saving.load_model(path)
    x = torch.randn(2, 2, 5, 5) * 2
    expected = _predict(net, x.numpy())
    got = model.predict(x.permute(0, 2, 3, 1).numpy(), verbose=0)
    np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0)
    back = import_keras(path)
    np.testing.assert_allclose(_predict(back, x.numpy()), expected, atol=TOLERANCE, rtol=0)


def test_exported_sequence_prelu_loads_in_keras(tmp_path):
    torch.manual_seed(1)
    net = dtb.Network([L.SequenceInput(3), L.SpatialDropout(0.5), L.PReLU(name="prelu")])
    with torch.no_grad():
        net.layer("prelu").alpha.copy_(torch.tensor([0.1, 0.5, 2.0]))
    export_keras(net, tmp_path / "seq.keras")
    model = keras.saving.load_model(tmp_path / "seq.keras")
    assert [type(layer).__name__ for layer in model.layers][-2:] == ["SpatialDropout1D", "PReLU"]
    x = torch.randn(2, 7, 3)
    np.testing.assert_allclose(model.predict(x.numpy(), verbose=0), _predict(net, x.numpy()),
                               atol=TOLERANCE, rtol=0)  # fmt: skip


def test_export_refuses_a_hard_sigmoid_keras_does_not_have(tmp_path):
    net = dtb.Network([L.FeatureInput(3), L.HardSigmoid(0.2, 0.5, name="hsig")])
    with pytest.raises(ModelExportError, match=r"layer 'hsig' \(HardSigmoid\) uses alpha=0.2"):
        export_keras(net, tmp_path / "net.keras")
