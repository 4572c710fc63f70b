"""import_keras(..., unsupported="placeholder"): Keras layers the toolbox cannot convert (a
custom registered layer, an unsupported option) become KerasPlaceholder layers that keep the
Keras class name, configuration and weights, are reported by analyze, refuse to run until
replaced, and survive save/load; replaced by an equivalent toolbox layer, the network gives
Keras's outputs. Checked against the keras package itself (torch backend).
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
from deeptoolbox.errors import (  # noqa: E402
    ModelImportError,
    NotInitializedError,
    OptionError,
    SizeMismatchError,
)
from deeptoolbox.interop import KerasPlaceholder, import_keras  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


@keras.saving.register_keras_serializable(package="deeptoolbox_tests")
class Scale(keras.layers.Layer):
    """A custom layer: x * w * factor, one learned w per channel."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

    def call(self, x):
        return x * self.w * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A model with a custom layer inside (sized by its consumer) and one as an output (whose
    size the file does not record), saved by Keras as .keras and .h5."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5,))
    h = keras.layers.Dense(4, name="first")(inputs)
    scaled = Scale(3.0, name="scale")(h)
    outputs = keras.layers.Dense(2, name="last")(keras.layers.ReLU()(scaled))
    model = keras.Model(inputs, outputs)
    model.get_layer("scale").w.assign(np.array([1.0, -2.0, 0.5, 3.0], np.float32))
    folder = tmp_path_factory.mktemp("placeholder")
    for suffix in (".keras", ".h5"):
        model.save(folder / f"model{suffix}")
    tail = keras.Model(inputs, Scale(0.5, name="tail")(h))  # the custom layer as the output
    tail.save(folder / "tail.keras")
    x = np.random.default_rng(1).normal(size=(3, 5)).astype(np.float32)
    return folder, x, np.asarray(model.predict(x, verbose=0))


def _replacement(layer: KerasPlaceholder) -> L.ScaleOffset:
    """The toolbox layer computing Scale from the placeholder's kept config and weights."""
    (w,) = layer.keras_weights
    replacement = L.ScaleOffset((w.numel(),))
    replacement.build([(w.numel(),)])
    with torch.no_grad():
        replacement.scale.copy_(w * layer.keras_config["factor"])
        replacement.offset.zero_()
    return replacement


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_custom_layer_becomes_a_placeholder_reported_refused_and_replaceable(saved, suffix):
    folder, x, expected = saved
    net = import_keras(folder / f"model{suffix}", unsupported="placeholder")
    layer = net.layer("scale")
    assert isinstance(layer, KerasPlaceholder)
    assert layer.class_name.endswith("Scale") and layer.keras_config["factor"] == 3.0
    assert layer.keras_weights[0].tolist() == [1.0, -2.0, 0.5, 3.0]
    assert net.output_shape("scale") == (4,)  # from the file: the next layer's input
    report = dtb.analyze(net)
    assert not report.ok and {i.layer for i in report.errors} == {"scale"}
    assert "Scale" in str(report) and "replace_layer" in str(report)
    with pytest.raises(NotInitializedError, match=r"'scale'.*Scale.*net\.replace_layer"):
        net(torch.as_tensor(x))
    net.replace_layer("scale", _replacement(layer))
    assert dtb.analyze(net).ok
    with torch.no_grad():
        got = net(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-3)


def test_placeholder_survives_save_and_load(saved, tmp_path):
    folder, x, expected = saved
    net = import_keras(folder / "model.keras", unsupported="placeholder")
    path = dtb.save(net, tmp_path / "with_placeholder.dtbx")
    back = dtb.load(path)
    layer = back.layer("scale")
    assert isinstance(layer, KerasPlaceholder)
    assert layer.get_config() == net.layer("scale").get_config()
    assert layer.keras_weights[0].tolist() == [1.0, -2.0, 0.5, 3.0]
    assert torch.equal(back.layer("last").weight, net.layer("last").weight)
    assert {i.layer for i in dtb.analyze(back).errors} == {"scale"}
    back.replace_layer("scale", _replacement(layer))
    with torch.no_grad():
        got = back(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-3)


def test_unrecorded_output_size_is_said(saved):
    folder, _, _ = saved
    net = import_keras(folder / "tail.keras", unsupported="placeholder")
    assert isinstance(net.layer("tail"), KerasPlaceholder)
    messages = [i.message for i in dtb.analyze(net).errors if i.layer == "tail"]
    assert messages and "output size cannot be known" in messages[0]
    with pytest.raises(SizeMismatchError, match="cannot be known"):
        net.layer("tail").output_shape([(4,)])


def test_unsupported_option_becomes_a_placeholder_with_its_reason(tmp_path):
    inputs = keras.Input((6, 3))
    h = keras.layers.LSTM(4, go_backwards=True, name="backwards")(inputs)
    keras.Model(inputs, keras.layers.Dense(2)(h)).save(tmp_path / "lstm.keras")
    with pytest.raises(ModelImportError, match="go_backwards=True"):
        import_keras(tmp_path / "lstm.keras")
    net = import_keras(tmp_path / "lstm.keras", unsupported="placeholder")
    layer = net.layer("backwards")
    assert isinstance(layer, KerasPlaceholder) and "go_backwards=True" in layer.reason
    assert net.output_shape("backwards") == (4,) and len(layer.keras_weights) == 3


def test_errors_lambda_and_operator(saved, tmp_path):
    folder, _, _ = saved
    with pytest.raises(ModelImportError, match=r"Scale.*unsupported='placeholder'"):
        import_keras(folder / "model.keras")
    with pytest.raises(OptionError, match="never loads or runs code.*not a dependency"):
        import_keras(folder / "model.keras", unsupported="operator")
    with pytest.raises(OptionError, match="`unsupported`"):
        import_keras(folder / "model.keras", unsupported="skip")
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2, name="twice")(inputs))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(ModelImportError, match="Lambda.*never loads or runs code"):
        import_keras(tmp_path / "lambda.keras", unsupported="placeholder")
