"""import_keras and export_keras, checked against the keras package itself (torch backend).

Keras is a test-only dependency: the library reads and writes Keras files with zipfile, json
and h5py alone. Models are built and saved by Keras, imported by the toolbox, and the
predictions compared; networks exported by the toolbox are loaded by keras.saving.load_model.
"""

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
from deeptoolbox.errors import ModelImportError  # noqa: E402
from deeptoolbox.interop import ModelExportError, convert, import_pytorch  # noqa: E402
from deeptoolbox.interop._operators import TorchFunction  # noqa: E402
from deeptoolbox.interop.keras._export import export_keras  # noqa: E402
from deeptoolbox.interop.keras._import import import_keras  # noqa: E402

TOLERANCE = 1e-5  # float32; Keras's torch backend and the toolbox differ by rounding only
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),  # Keras's legacy-.h5 warning
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # Keras's numpy 2 notice
]


def _predict(net: dtb.Network, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.as_tensor(x)).numpy()


def _images_first(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _check_import(model, x, toolbox_x, tmp_path, suffix) -> dtb.Network:
    path = tmp_path / f"model{suffix}"
    model.save(path)
    net = import_keras(path)
    expected = np.asarray(model.predict(x, verbose=0))
    np.testing.assert_allclose(_predict(net, toolbox_x), expected, atol=TOLERANCE, rtol=0)
    return net


def _set_statistics(layer, channels: int) -> None:
    rng = np.random.default_rng(1)
    layer.moving_mean.assign(rng.normal(size=channels).astype("float32"))
    layer.moving_variance.assign(rng.uniform(0.5, 2.0, size=channels).astype("float32"))


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_sequential_cnn_imports_with_channels_first_images(tmp_path, suffix):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((12, 10, 3)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_a"),
        keras.layers.BatchNormalization(),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(6, (3, 2), strides=2, padding="valid"),
        keras.layers.Flatten(),  # Keras flattens (H, W, C): the import must reproduce it
        keras.layers.Dropout(0.3),
        keras.layers.Dense(5, activation="softmax"),
    ])  # fmt: skip
    _set_statistics(model.layers[1], 8)
    x = np.random.default_rng(0).random((4, 12, 10, 3), dtype=np.float32)
    net = _check_import(model, x, _images_first(x), tmp_path, suffix)
    assert net.input_names == ["input_layer"] or len(net.input_names) == 1
    assert net.layer(net.input_names[0]).shape == (3, 12, 10)
    assert type(net.layer("conv_a")).__name__ == "Conv2d"
    assert type(net.layer("conv_a_activation")).__name__ == "ReLU"
    assert dtb.analyze(net).ok


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_functional_resnet_block_imports(tmp_path, suffix):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((10, 10, 4))
    h = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Activation("relu")(h)
    h = keras.layers.Conv2D(4, 3, padding="same")(h)
    added = keras.layers.ReLU()(keras.layers.Add()([inputs, h]))
    joined = keras.layers.Concatenate()([added, inputs])
    pooled = keras.layers.GlobalAveragePooling2D()(joined)
    model = keras.Model(inputs, keras.layers.Dense(3)(pooled))
    _set_statistics(model.layers[2], 4)
    x = np.random.default_rng(1).random((2, 10, 10, 4), dtype=np.float32)
    net = _check_import(model, x, _images_first(x), tmp_path, suffix)
    kinds = {type(m).__name__ for m in net.layers.values()}
    assert {"Addition", "Concatenation", "GlobalAvgPool", "BatchNorm"} <= kinds


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_text_model_with_recurrent_and_attention_layers_imports(tmp_path, suffix):
    keras.utils.set_random_seed(2)
    tokens = keras.Input((15,), dtype="int32")
    h = keras.layers.Embedding(30, 8)(tokens)
    h = keras.layers.Bidirectional(keras.layers.LSTM(6, return_sequences=True))(h)
    h = keras.layers.MultiHeadAttention(2, 6)(h, h, use_causal_mask=True)
    h = keras.layers.LayerNormalization()(h)
    h = keras.layers.Conv1D(5, 3, padding="same", activation="tanh")(h)
    h = keras.layers.MaxPooling1D(2)(h)
    h = keras.layers.GRU(4)(h)
    model = keras.Model(tokens, keras.layers.Dense(2, activation="sigmoid")(h))
    x = np.random.default_rng(2).integers(0, 30, (3, 15)).astype("int32")
    net = _check_import(model, x, x, tmp_path, suffix)
    kinds = {type(m).__name__ for m in net.layers.values()}
    assert {"Embedding", "LSTM", "SelfAttention", "LayerNorm", "Conv1d", "GRU"} <= kinds
    attention = next(m for m in net.layers.values() if type(m).__name__ == "SelfAttention")
    assert attention.causal


def _load_and_compare(net: dtb.Network, x: torch.Tensor, path, images: bool) -> None:
    net.eval()
    export_keras(net, path)
    model = keras.saving.load_model(path)
    keras_x = x.permute(0, 2, 3, 1).numpy() if images else x.numpy()
    expected = _predict(net, x.numpy())
    np.testing.assert_allclose(model.predict(keras_x, verbose=0), expected, atol=TOLERANCE)
    back = import_keras(path)  # and the toolbox reads its own files back
    np.testing.assert_allclose(_predict(back, x.numpy()), expected, atol=TOLERANCE)


def test_exported_cnn_loads_in_keras_with_the_same_predictions(tmp_path):
    torch.manual_seed(0)
    net = dtb.Network([
        L.ImageInput((3, 12, 12)), L.Conv2d(8, 3, padding=1), L.BatchNorm(name="bn"), L.ReLU(),
        L.MaxPool2d(2), L.Conv2d(4, 3, stride=2, padding="same"), L.GELU(), L.Flatten(),
        L.Dropout(0.2), L.Dense(5), L.Softmax(),
    ])  # fmt: skip
    net.layer("bn").running_mean.uniform_(-1, 1)
    net.layer("bn").running_var.uniform_(0.5, 1.5)
    _load_and_compare(net, torch.randn(2, 3, 12, 12), tmp_path / "cnn.keras", images=True)


def test_exported_branching_network_keeps_weights_in_keras_order(tmp_path):
    torch.manual_seed(1)
    net = dtb.Network([
        L.ImageInput((4, 8, 8), name="x"), L.Conv2d(4, 3, padding="same", name="c1"), L.ReLU(name="r1"),
        L.Conv2d(4, 3, padding="same", name="c2"), L.Addition(name="add"), L.Concatenation(name="cat"),
        L.GlobalAvgPool(name="gap"), L.Dense(3, name="fc"),
    ])  # fmt: skip
    net.add_layers({"shortcut": L.Conv2d(4, 1)}).connect("x", "shortcut")
    net.connect("shortcut", "add/in2").connect("x", "cat/in2")
    _load_and_compare(net, torch.randn(2, 4, 8, 8), tmp_path / "branches.keras", images=True)


def test_exported_sequence_network_loads_in_keras(tmp_path):
    torch.manual_seed(2)
    net = dtb.Network([
        L.SequenceInput(1, length=10), L.Embedding(20, 8), L.LSTM(6, bidirectional=True),
        L.SelfAttention(2, causal=True), L.LayerNorm(), L.Conv1d(5, 3, padding="same"), L.LeakyReLU(0.1),
        L.GRU(4, output_mode="last"), L.Dense(2), L.Sigmoid(),
    ])  # fmt: skip
    tokens = torch.randint(0, 20, (3, 10)).float()
    _load_and_compare(net, tokens, tmp_path / "text.keras", images=False)


def test_keras_file_converts_to_torchscript(tmp_path):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="tanh")])
    model.save(tmp_path / "small.keras")
    convert(tmp_path / "small.keras", tmp_path / "small.pt")
    x = np.random.default_rng(3).random((5, 6), dtype=np.float32)
    found = _predict(import_pytorch(tmp_path / "small.pt", trust_code=True), x)
    np.testing.assert_allclose(found, model.predict(x, verbose=0), atol=TOLERANCE)


def test_unknown_and_unsupported_layers_name_file_layer_and_supported_list(tmp_path):
    # (UpSampling2D and Conv1D(padding="causal"), used here before, are supported now)
    model = keras.Sequential([
        keras.Input((8, 8, 2)), keras.layers.UnitNormalization(name="unit"),
        keras.layers.Flatten(),
    ])  # fmt: skip
    model.save(tmp_path / "unknown.keras")
    with pytest.raises(ModelImportError) as info:
        import_keras(tmp_path / "unknown.keras")
    message = str(info.value)
    assert "unknown.keras" in message and "'unit'" in message and "UnitNormalization" in message
    assert "Supported layers: InputLayer" in message and "LSTM" in message
    model = keras.Sequential([keras.Input((8, 2)), keras.layers.SimpleRNN(
        2, activation="relu", name="smooth")])  # fmt: skip
    model.save(tmp_path / "option.h5")
    with pytest.raises(ModelImportError, match=r"'smooth' \(SimpleRNN\) uses activation other"):
        import_keras(tmp_path / "option.h5")


def test_bad_files_raise_model_import_error_naming_the_file(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.save(tmp_path / "good.keras")
    data = (tmp_path / "good.keras").read_bytes()
    (tmp_path / "truncated.keras").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.h5").write_bytes(b"\x89HDF\r\n" + b"\x00" * 64)
    (tmp_path / "text.keras").write_text("not a model")
    with zipfile.ZipFile(tmp_path / "other.keras", "w") as archive:
        archive.writestr("readme.txt", "a zip, but no Keras model")
    model.save_weights(tmp_path / "only.weights.h5")
    expected = {
        "truncated.keras": "truncated",
        "garbage.h5": "neither a Keras 3",
        "text.keras": "neither a Keras 3",
        "other.keras": "lacks config.json, model.weights.h5",
        "only.weights.h5": "weights-only file",
        "missing.keras": "does not exist",
    }
    for name, why in expected.items():
        with pytest.raises(ModelImportError, match=why) as info:
            import_keras(tmp_path / name)
        assert name in str(info.value)


def test_export_refuses_what_keras_cannot_hold(tmp_path):
    net = dtb.Network([L.FeatureInput(3), TorchFunction("torch.nn.functional.relu6", name="r6")])
    with pytest.raises(ModelExportError, match=r"layer 'r6' \(TorchFunction\) uses .*relu6"):
        export_keras(net, tmp_path / "net.keras")
    with pytest.raises(ModelExportError, match="must end in '.keras'"):
        export_keras(dtb.Network([L.FeatureInput(3), L.Dense(2)]), tmp_path / "net.h5")
    unset = dtb.Network([L.FeatureInput(3, normalization="zscore"), L.Dense(2)])
    with pytest.raises(ModelExportError, match="statistics are not set"):
        export_keras(unset, tmp_path / "net.keras")  # normalization itself exports (issue 21)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_keras2_style_legacy_h5_imports(tmp_path):
    """A file as tf.keras 2 wrote it: list-style inbound nodes, ':0' weight names."""
    import h5py

    rng = np.random.default_rng(5)
    kernel, bias = rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=3).astype("float32")
    gamma, beta = rng.uniform(0.5, 1.5, 3).astype("float32"), rng.normal(size=3).astype("float32")
    config = {"class_name": "Model", "config": {"name": "old", "layers": [
        {"class_name": "InputLayer", "name": "x", "inbound_nodes": [],
         "config": {"batch_input_shape": [None, 4], "dtype": "float32", "name": "x"}},
        {"class_name": "Dense", "name": "fc", "inbound_nodes": [[["x", 0, 0, {}]]],
         "config": {"name": "fc", "units": 3, "activation": "relu", "use_bias": True}},
        {"class_name": "LayerNormalization", "name": "norm", "inbound_nodes": [[["fc", 0, 0, {}]]],
         "config": {"name": "norm", "axis": [1], "epsilon": 0.001}},
    ], "input_layers": [["x", 0, 0]], "output_layers": [["norm", 0, 0]]}}  # fmt: skip
    with h5py.File(tmp_path / "old.h5", "w") as h5:
        h5.attrs["model_config"] = json.dumps(config).encode()
        weights = h5.create_group("model_weights")
        for name, arrays in {"fc": {"kernel:0": kernel, "bias:0": bias},
                             "norm": {"gamma:0": gamma, "beta:0": beta}}.items():  # fmt: skip
            group = weights.create_group(name)
            group.attrs["weight_names"] = [f"{name}/{key}".encode() for key in arrays]
            for key, value in arrays.items():
                group.create_dataset(f"{name}/{key}", data=value)
    net = import_keras(tmp_path / "old.h5")
    x = rng.normal(size=(5, 4)).astype("float32")
    h = np.maximum(x @ kernel + bias, 0)
    mean, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
    expected = (h - mean) / np.sqrt(var + 0.001) * gamma + beta
    np.testing.assert_allclose(_predict(net, x), expected, atol=1e-5)
