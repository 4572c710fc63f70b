"""Keras layers beyond the core set, each checked against Keras itself (torch backend): a small
model is built and saved by Keras, imported (predictions compared), and the imported network
exported back with export_keras, whose check loads the file in Keras and compares again.
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
from deeptoolbox.interop.keras._export import export_keras  # noqa: E402
from deeptoolbox.interop.keras._import import import_keras  # noqa: E402
from deeptoolbox.layers import MergeDirections, ScaleOffset  # noqa: E402

TOLERANCE = 1e-5
layers = keras.layers
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


def _random_weights(model, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        value = np.asarray(variable.numpy())
        if np.issubdtype(value.dtype, np.floating):
            low = 0.5 if "variance" in variable.path else -0.5
            variable.assign(rng.uniform(low, low + 1.0, value.shape).astype(value.dtype))


def _round_trip(model, x: np.ndarray, tmp_path, suffix: str = ".keras") -> dtb.Network:
    """Save with Keras, import, compare; export the import back (checked in Keras)."""
    _random_weights(model)
    path = tmp_path / f"model{suffix}"
    model.save(path)
    net = import_keras(path)
    images = x.ndim == 4
    toolbox_x = torch.as_tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2) if images else x))
    expected = np.asarray(model.predict(x, verbose=0))
    with torch.no_grad():
        got = net(toolbox_x).numpy()
    got = got.transpose(0, 2, 3, 1) if images and got.ndim == 4 else got
    np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=1e-5)
    export_keras(net, tmp_path / "back.keras", example_inputs=toolbox_x)  # loads it in Keras
    return net


def _images(h: int, w: int, c: int) -> np.ndarray:
    return np.random.default_rng(1).random((2, h, w, c), dtype=np.float32)


def _sequences(t: int, c: int) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(2, t, c)).astype(np.float32)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_depthwise_and_separable_convolutions_with_depth_multiplier(tmp_path, suffix):
    model = keras.Sequential([
        keras.Input((9, 8, 3)),
        layers.DepthwiseConv2D(3, depth_multiplier=2, strides=2, padding="same",
                               activation="relu6"),
        layers.SeparableConv2D(5, (3, 2), depth_multiplier=2, padding="valid", name="sep"),
    ])  # fmt: skip
    net = _round_trip(model, _images(9, 8, 3), tmp_path, suffix)
    depthwise = [m for m in net.layers.values() if isinstance(m, L.Conv2d) and m.groups > 1]
    assert [m.groups for m in depthwise] == [3, 6]  # one group per input channel


def test_conv1d_causal_padding_imports_as_causal_conv1d(tmp_path):
    model = keras.Sequential([
        keras.Input((10, 2)), layers.Conv1D(3, 3, padding="causal", dilation_rate=2, name="c"),
    ])  # fmt: skip
    net = _round_trip(model, _sequences(10, 2), tmp_path)
    assert net.layer("c").padding == "causal"


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_conv2d_transpose_and_upsampling_and_cropping(tmp_path, padding):
    model = keras.Sequential([
        keras.Input((5, 6, 2)),
        layers.Conv2DTranspose(3, 3, strides=2, padding=padding, name="up"),
        layers.UpSampling2D((2, 1), interpolation="bilinear"),
        layers.UpSampling2D(2),
        layers.Cropping2D(((1, 2), (0, 3)), name="crop"),
    ])  # fmt: skip
    net = _round_trip(model, _images(5, 6, 2), tmp_path)
    assert isinstance(net.layer("up"), L.TransposedConv2d)
    assert net.layer("crop").cropping == ((1, 2), (0, 3))


def test_sequence_upsampling_and_cropping(tmp_path):
    model = keras.Sequential([
        keras.Input((6, 3)), layers.UpSampling1D(3), layers.Cropping1D((2, 1), name="crop"),
    ])  # fmt: skip
    net = _round_trip(model, _sequences(6, 3), tmp_path)
    assert isinstance(net.layer("crop"), L.Crop1d)


def test_preprocessing_right_after_the_input_folds_into_its_normalization(tmp_path):
    inputs = keras.Input((6, 5, 3))
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = layers.Normalization(mean=[0.1, 0.2, 0.3], variance=[1.5, 2.0, 0.5])(x)
    x = layers.Conv2D(4, 3, padding="same")(x)
    x = layers.Rescaling([0.5, 2.0, 1.0, 3.0], offset=0.25, name="mid")(x)  # not after input
    model = keras.Model(inputs, x)
    net = _round_trip(model, _images(6, 5, 3) * 255, tmp_path)
    first = net.layer(net.input_names[0])
    assert first.normalization == "zscore" and first.normalization_dimension == "channel"
    assert isinstance(net.layer("mid"), ScaleOffset)
    assert len(net.layers) == 3  # input (normalizing), convolution, ScaleOffset


def test_element_wise_normalization_of_features_folds_per_element(tmp_path):
    model = keras.Sequential([
        keras.Input((4, 3)),
        layers.Normalization(axis=(1, 2), mean=np.arange(12.0).reshape(4, 3),
                             variance=np.linspace(0.5, 2.0, 12).reshape(4, 3)),
        layers.Dense(2),
    ])  # fmt: skip
    net = _round_trip(model, _sequences(4, 3), tmp_path)
    assert net.layer(net.input_names[0]).normalization_dimension == "element"


@pytest.mark.parametrize("merge", ["sum", "mul", "ave", "concat"])
@pytest.mark.parametrize("cell", ["LSTM", "GRU", "SimpleRNN"])
def test_bidirectional_merge_modes(tmp_path, merge, cell):
    if cell != "LSTM" and merge in ("mul", "ave"):
        pytest.skip("merge modes are checked on the LSTM; cells on sum and concat")
    rnn = getattr(layers, cell)(4, return_sequences=merge != "sum")
    model = keras.Sequential([
        keras.Input((5, 3)), layers.Bidirectional(rnn, merge_mode=merge, name="bi"),
    ])  # fmt: skip
    net = _round_trip(model, _sequences(5, 3), tmp_path)
    merged = [m for m in net.layers.values() if isinstance(m, MergeDirections)]
    assert [m.mode for m in merged] == ([] if merge == "concat" else [merge])


def test_bidirectional_without_merging_gives_both_directions(tmp_path):
    inputs = keras.Input((5, 3))
    forward, backward = layers.Bidirectional(layers.LSTM(4), merge_mode=None)(inputs)
    outputs = layers.Concatenate()(
        [layers.Dense(2, name="from_backward")(backward), layers.Dense(3)(forward)]
    )
    model = keras.Model(inputs, outputs)
    _random_weights(model)
    model.save(tmp_path / "model.keras")
    net = import_keras(tmp_path / "model.keras")
    x = _sequences(5, 3)
    with torch.no_grad():
        got = net(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=TOLERANCE, rtol=1e-5)
    modes = sorted(m.mode for m in net.layers.values() if isinstance(m, MergeDirections))
    assert modes == ["backward", "forward"]


def test_simple_rnn_time_distributed_and_inference_identities(tmp_path):
    model = keras.Sequential([
        keras.Input((6, 3)),
        layers.GaussianNoise(0.5), layers.SimpleRNN(5, return_sequences=True, name="rnn"),
        layers.GaussianDropout(0.3), layers.SpatialDropout1D(0.2), layers.Identity(),
        layers.TimeDistributed(layers.Dense(2, activation="swish")),
        layers.Activation("hard_swish"), layers.Activation("gelu"),
        layers.SimpleRNN(3),
        layers.ReLU(max_value=0.4), layers.PReLU(), layers.Activation("hard_sigmoid"),
    ])  # fmt: skip
    net = _round_trip(model, _sequences(6, 3), tmp_path, ".h5")
    assert isinstance(net.layer("rnn"), L.SimpleRNN)
    assert any(isinstance(m, L.ClippedReLU) for m in net.layers.values())


def test_convnext_style_dense_on_images_and_keepdims_pooling(tmp_path):
    inputs = keras.Input((6, 6, 3))
    x = layers.Dense(4, name="pointwise")(inputs)  # on each pixel's channels
    gate = layers.GlobalAveragePooling2D(keepdims=True)(x)
    x = layers.Multiply()([x, layers.Activation("sigmoid")(gate)])  # broadcasting gate
    model = keras.Model(inputs, layers.Add()([x, gate]))
    net = _round_trip(model, _images(6, 6, 3), tmp_path)
    assert isinstance(net.layer("pointwise"), L.Conv2d)


def test_lambda_layers_are_refused_without_running_their_code(tmp_path):
    model = keras.Sequential([
        keras.Input((3,)), layers.Lambda(lambda t: t * 2.0, name="double"), layers.Dense(2),
    ])  # fmt: skip
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(ModelImportError) as info:
        import_keras(tmp_path / "lambda.keras")
    message = str(info.value)
    assert "'double'" in message and "Lambda" in message and "never loads" in message


def test_crop_to_reference_and_unmergeable_directions_are_refused_by_export(tmp_path):
    net = dtb.Network(name="crop")
    for name, layer in {"image": L.ImageInput((2, 6, 6)), "ref": L.ImageInput((1, 4, 4)),
                        "crop": L.Crop2d()}.items():  # fmt: skip
        net.add_layers({name: layer})
    net.connect("image", "crop/in").connect("ref", "crop/ref")
    with pytest.raises(ModelExportError, match="'crop'.*crop-to-reference"):
        export_keras(net, tmp_path / "crop.keras")
    assert not (tmp_path / "crop.keras").exists()
