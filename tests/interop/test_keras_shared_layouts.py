"""Shared Keras layers, average pooling with "same" padding and layer normalization of images.

Each model is built and saved by the keras package (torch backend), imported with
import_keras, and its predictions compared with Keras's; networks using the layers these
imports produce are exported back with export_keras and run by Keras.
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
from deeptoolbox.errors import ModelImportError  # noqa: E402
from deeptoolbox.interop import ModelExportError, export_keras, import_keras  # noqa: E402
from deeptoolbox.layers import (  # noqa: E402
    AvgPoolExcludingPadding,
    AxisLayerNorm,
    CrossAttention,
)

TOLERANCE = 1e-5
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),  # Keras's legacy-.h5 and numpy notices
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


def _channels_first(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _predict(net: dtb.Network, *inputs: np.ndarray) -> list[np.ndarray]:
    """The network's outputs, images back in Keras's channels-last layout."""
    with torch.no_grad():
        found = net(*[torch.as_tensor(x) for x in inputs])
    found = found if isinstance(found, tuple) else (found,)
    return [t.permute(0, 2, 3, 1).numpy() if t.dim() == 4 else t.numpy() for t in found]


def _compare(model, net, keras_inputs, toolbox_inputs, rtol: float = 0.0) -> None:
    expected = model.predict(keras_inputs, verbose=0)
    expected = expected if isinstance(expected, list) else [expected]
    found = _predict(net, *toolbox_inputs)
    assert len(found) == len(expected)
    for want, got in zip(expected, found, strict=True):
        np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=rtol)


@pytest.fixture(scope="module")
def siamese_model():
    keras.utils.set_random_seed(0)
    left, right = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    conv = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")
    pool = keras.layers.GlobalAveragePooling2D(name="pool")
    dense = keras.layers.Dense(4, name="embed")
    a, b = dense(pool(conv(left))), dense(pool(conv(right)))
    b = dense(keras.layers.Dense(4, name="between")(b))  # a third call on a later layer
    return keras.Model([left, right], keras.layers.Concatenate()([a, b]))


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_shared_layers_import_as_copies_with_the_same_weights(siamese_model, tmp_path, suffix):
    siamese_model.save(tmp_path / f"siamese{suffix}")
    net = import_keras(tmp_path / f"siamese{suffix}")
    rng = np.random.default_rng(0)
    x = [rng.random((2, 8, 8, 3), dtype=np.float32) for _ in range(2)]
    _compare(siamese_model, net, x, [_channels_first(v) for v in x])
    shared = net.metadata["keras_shared_layers"]
    assert shared["embed"] == ["embed", "embed_call2", "embed_call3"]
    assert shared["conv"] == ["conv", "conv_call2"]  # each followed by its own activation
    first, third = net.layer("embed").weight, net.layer("embed_call3").weight
    torch.testing.assert_close(first, third)
    assert first.data_ptr() != third.data_ptr()  # copies: fine-tuning updates each on its own


def test_network_with_shared_copies_saves_and_exports(siamese_model, tmp_path):
    siamese_model.save(tmp_path / "siamese.keras")
    net = import_keras(tmp_path / "siamese.keras")
    dtb.save(net, tmp_path / "saved")
    assert dtb.load(tmp_path / "saved").metadata["keras_shared_layers"]["pool"] == [
        "pool", "pool_call2"
    ]  # fmt: skip
    export_keras(net, tmp_path / "again.keras")
    rng = np.random.default_rng(1)
    x = [rng.random((2, 8, 8, 3), dtype=np.float32) for _ in range(2)]
    again = keras.saving.load_model(tmp_path / "again.keras")
    np.testing.assert_allclose(
        again.predict(x, verbose=0), siamese_model.predict(x, verbose=0), atol=TOLERANCE
    )


@pytest.fixture(scope="module")
def pooling_model():
    keras.utils.set_random_seed(1)
    images = keras.Input((7, 9, 3))
    smooth = keras.layers.AveragePooling2D(3, strides=1, padding="same")(images)
    halved = keras.layers.AveragePooling2D(2, padding="same")(smooth)  # 7 x 9 -> 4 x 5
    return keras.Model(images, [smooth, halved])


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_average_pooling_same_leaves_padding_out(pooling_model, tmp_path, suffix):
    pooling_model.save(tmp_path / f"pool{suffix}")
    net = import_keras(tmp_path / f"pool{suffix}")
    x = np.random.default_rng(2).random((2, 7, 9, 3), dtype=np.float32)
    _compare(pooling_model, net, x, [_channels_first(x)])
    assert sum(isinstance(m, AvgPoolExcludingPadding) for m in net.layers.values()) == 2
    corner = x[0, :2, :2].mean(axis=(0, 1))  # the first window holds 4 values, not 9
    np.testing.assert_allclose(_predict(net, _channels_first(x))[0][0, 0, 0], corner, atol=1e-6)


def test_average_pooling_1d_same_matches_keras_and_the_definition(tmp_path):
    keras.utils.set_random_seed(2)
    sequences = keras.Input((10, 3))
    outputs = [
        keras.layers.AveragePooling1D(3, strides=1, padding="same")(sequences),
        keras.layers.AveragePooling1D(2, padding="same")(sequences),
        keras.layers.AveragePooling1D(3, strides=2, padding="same")(sequences),
    ]
    model = keras.Model(sequences, outputs[:2])
    model.save(tmp_path / "pool1d.keras")
    x = np.random.default_rng(3).random((2, 10, 3), dtype=np.float32)
    _compare(model, import_keras(tmp_path / "pool1d.keras"), x, [x])
    # Padding 0 before and 1 after: TensorFlow and JAX average the real values only (Keras's
    # torch backend repeats the edge value there instead); the import follows the definition.
    keras.Model(sequences, outputs[2]).save(tmp_path / "odd.keras")
    found = _predict(import_keras(tmp_path / "odd.keras"), x)[0]
    expected = np.stack([x[:, 2 * i : 2 * i + 3].mean(1) for i in range(5)], axis=1)
    np.testing.assert_allclose(found, expected, atol=1e-6)


@pytest.fixture(scope="module")
def image_norm_model():
    keras.utils.set_random_seed(3)
    images = keras.Input((5, 6, 4))
    h = keras.layers.Conv2D(4, 3, padding="same")(images)
    outputs = [
        keras.layers.LayerNormalization()(h),  # channels at each position
        keras.layers.LayerNormalization(axis=[1, 2, 3], epsilon=1e-5)(h),  # whole images
        keras.layers.LayerNormalization(axis=[1, 3], center=False)(h),  # rows and channels
    ]
    model = keras.Model(images, outputs)
    rng = np.random.default_rng(4)
    for layer in model.layers[2:]:
        for weight in layer.weights:  # scale and offset that differ per element
            weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
    return model


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_layer_normalization_of_images_over_any_axes(image_norm_model, tmp_path, suffix):
    image_norm_model.save(tmp_path / f"norm{suffix}")
    net = import_keras(tmp_path / f"norm{suffix}")
    x = np.random.default_rng(5).normal(size=(3, 5, 6, 4)).astype("float32")
    _compare(image_norm_model, net, x, [_channels_first(x)], rtol=1e-5)
    axes = [m.axes for m in net.layers.values() if isinstance(m, AxisLayerNorm)]
    assert axes == [(1,), (1, 2, 3), (1, 2)]


def test_image_norm_pooling_and_cross_attention_export_to_keras(tmp_path):
    torch.manual_seed(0)
    net = dtb.Network([
        L.ImageInput((3, 6, 7)), AxisLayerNorm([1], name="norm"), L.Conv2d(4, 3, padding="same"),
        AvgPoolExcludingPadding([3, 3], stride=[1, 1]), AxisLayerNorm([1, 2, 3]),
        L.GlobalAvgPool(), L.Dense(3),
    ])  # fmt: skip
    with torch.no_grad():
        for module in net.layers.values():
            if isinstance(module, AxisLayerNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    net.eval()
    x = torch.randn(2, 3, 6, 7)
    export_keras(net, tmp_path / "images.keras")
    model = keras.saving.load_model(tmp_path / "images.keras")
    expected = _predict(net, x.numpy())[0]
    found = model.predict(x.permute(0, 2, 3, 1).numpy(), verbose=0)
    np.testing.assert_allclose(found, expected, atol=TOLERANCE, rtol=1e-5)

    attention = dtb.Network([L.SequenceInput(5, length=4, name="q"),
                             CrossAttention(2, key_dim=3, value_dim=2, bias=False,
                                            has_key=True, masks=["attention_mask"], name="att")])  # fmt: skip
    attention.add_layers([L.SequenceInput(3, length=6, name="v")]).connect("v", "att/value")
    attention.add_layers([L.SequenceInput(2, length=6, name="k")]).connect("k", "att/key")
    attention.add_layers([L.SequenceInput(6, length=4, name="m")])
    attention.connect("m", "att/attention_mask").eval()
    inputs = [torch.randn(2, 4, 5), torch.randn(2, 6, 3), torch.randn(2, 6, 2)]
    inputs.append((torch.rand(2, 4, 6) > 0.3).float())
    export_keras(attention, tmp_path / "attention.keras")
    model = keras.saving.load_model(tmp_path / "attention.keras")
    expected = _predict(attention, *[t.numpy() for t in inputs])[0]
    found = model.predict([t.numpy() for t in inputs], verbose=0)
    np.testing.assert_allclose(found, expected, atol=TOLERANCE)


def test_remaining_unsupported_variants_name_file_layer_and_option(tmp_path):
    images = keras.Input((4, 4, 2))
    model = keras.Model(images, keras.layers.LayerNormalization(rms_scaling=True, name="rms")(
        images))  # fmt: skip
    model.save(tmp_path / "rms.keras")
    with pytest.raises(ModelImportError, match=r"rms\.keras.*'rms' \(LayerNormalization\) uses "):
        import_keras(tmp_path / "rms.keras")
    sequences = keras.Input((6, 4))
    gated = keras.layers.MultiHeadAttention(2, 2, use_gate=True, name="gated")
    keras.Model(sequences, gated(sequences, sequences)).save(tmp_path / "gate.keras")
    with pytest.raises(ModelImportError, match=r"'gated' \(MultiHeadAttention\) uses use_gate"):
        import_keras(tmp_path / "gate.keras")
    keras.Model(sequences, keras.ops.sin(sequences)).save(tmp_path / "sine.keras")
    with pytest.raises(ModelImportError, match=r"sine\.keras.*operation Sin.*NotEqual"):
        import_keras(tmp_path / "sine.keras")


def test_export_refuses_a_query_mask_keras_cannot_take(tmp_path):
    net = dtb.Network([L.SequenceInput(4, length=5, name="q"),
                       CrossAttention(2, key_dim=2, masks=["query_mask"], name="att")])  # fmt: skip
    net.add_layers(L.SequenceInput(1, length=5, name="m")).connect("q", "att/value")
    net.connect("m", "att/query_mask")
    with pytest.raises(ModelExportError, match=r"'att' \(CrossAttention\) uses a query_mask"):
        export_keras(net, tmp_path / "att.keras")
