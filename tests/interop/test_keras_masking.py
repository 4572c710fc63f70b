"""Keras padding masks and attention masks through import_keras and export_keras.

Models are built and saved by the keras package (torch backend) and their predictions
compared with the imported networks'; networks with masked recurrent layers are exported
and run by Keras. Token batches hold right padding, left padding, a padded step inside the
sequence and a sequence with no real step, where Keras's rules at masked steps show.
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
from deeptoolbox.interop import ModelExportError, export_keras, import_keras  # noqa: E402
from deeptoolbox.layers import CrossAttention, MaskedSteps, PaddingMask  # noqa: E402

TOLERANCE = 1e-5
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),  # Keras's legacy-.h5 and numpy notices
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


def _tokens(length: int = 9) -> np.ndarray:
    x = np.random.default_rng(0).integers(1, 20, (5, length)).astype("int32")
    x[0, 6:] = 0  # right padding
    x[1, :3] = 0  # left padding
    x[2, 4] = 0  # a padded step inside
    x[3, :] = 0  # nothing at all
    return x


def _outputs(net: dtb.Network, *inputs: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        found = net(*[torch.as_tensor(x) for x in inputs])
    return [t.numpy() for t in (found if isinstance(found, tuple) else (found,))]


def _compare(model, net, inputs: list[np.ndarray]) -> None:
    expected = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
    expected = expected if isinstance(expected, list) else [expected]
    found = _outputs(net, *inputs)
    assert len(found) == len(expected)
    for want, got in zip(expected, found, strict=True):
        np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)


@pytest.fixture(scope="module")
def masked_text_model():
    """Embedding(mask_zero=True) feeding every layer kind that reads Keras's padding mask."""
    keras.utils.set_random_seed(0)
    tokens = keras.Input((9,), dtype="int32")
    embedded = keras.layers.Embedding(20, 6, mask_zero=True)(tokens)
    lstm = keras.layers.LSTM(5, return_sequences=True, name="lstm_seq")(embedded)
    gru = keras.layers.GRU(4, return_sequences=True, name="gru_seq")(lstm)  # mask passed on
    both = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True), name="both")(
        embedded
    )
    both_last = keras.layers.Bidirectional(keras.layers.GRU(3), name="both_last")(
        keras.layers.Dropout(0.2)(both)
    )
    last = keras.layers.GRU(4, name="gru_last")(keras.layers.Dense(6)(embedded))
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Dense(3)(embedded))
    attended = keras.layers.MultiHeadAttention(2, 3, name="mha")(embedded, embedded)
    outputs = [gru, both_last, last, pooled, attended]
    return keras.Model(tokens, outputs)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_embedding_mask_zero_reaches_recurrent_pooling_and_attention(
    masked_text_model, tmp_path, suffix
):
    masked_text_model.save(tmp_path / f"text{suffix}")
    net = import_keras(tmp_path / f"text{suffix}")
    _compare(masked_text_model, net, [_tokens()])
    kinds = [type(m).__name__ for m in net.layers.values()]
    assert {"MaskedSteps", "GlobalAvgPool", "CrossAttention"} <= set(kinds)  # issue 12 item 4:
    pooled = [m for m in net.layers.values() if isinstance(m, L.GlobalAvgPool)]  # was a
    assert pooled and all(m.has_padding_mask for m in pooled)  # MaskedGlobalAvgPool
    recurrent = [m for m in net.layers.values() if isinstance(m, L.LSTM | L.GRU)]
    assert len(recurrent) == 5 and all(m.has_padding_mask for m in recurrent)
    modes = {n: m.mode for n, m in net.layers.items() if isinstance(m, MaskedSteps)}
    assert modes["lstm_seq_masked"] == "hold"  # Keras repeats the last real output
    assert modes["both_masked"] == "zero"  # Bidirectional zeroes masked steps
    assert modes["gru_last_masked"] == modes["both_last_masked"] == "last"
    assert dtb.analyze(net).ok


def test_masked_network_saves_and_loads(masked_text_model, tmp_path):
    masked_text_model.save(tmp_path / "text.keras")
    net = import_keras(tmp_path / "text.keras")
    dtb.save(net, tmp_path / "saved")
    again = dtb.load(tmp_path / "saved").eval()
    for a, b in zip(_outputs(net, _tokens()), _outputs(again, _tokens()), strict=True):
        np.testing.assert_array_equal(a, b)


def test_keras_holds_the_last_real_output_over_masked_steps(masked_text_model, tmp_path):
    """The rule MaskedSteps reproduces, read off Keras itself."""
    x = _tokens()
    sequences = keras.Model(
        masked_text_model.inputs, masked_text_model.get_layer("lstm_seq").output
    )
    y = np.asarray(sequences.predict(x, verbose=0))
    np.testing.assert_array_equal(y[0, 6:], np.repeat(y[0, 5:6], 3, axis=0))
    np.testing.assert_array_equal(y[1, :3], 0.0)
    np.testing.assert_array_equal(y[2, 4], y[2, 3])
    np.testing.assert_array_equal(y[3], 0.0)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_sequential_text_model_follows_the_implicit_mask(tmp_path, suffix):
    """Sequential files save no mask arguments: the import follows Keras's mask rules."""
    keras.utils.set_random_seed(5)
    model = keras.Sequential([
        keras.Input((9,), dtype="int32"), keras.layers.Embedding(20, 6, mask_zero=True),
        keras.layers.Dropout(0.1), keras.layers.LSTM(5, return_sequences=True),
        keras.layers.Bidirectional(keras.layers.GRU(3, return_sequences=True)),
        keras.layers.GRU(4), keras.layers.Dense(2),
    ])  # fmt: skip
    model.save(tmp_path / f"sequential{suffix}")
    net = import_keras(tmp_path / f"sequential{suffix}")
    _compare(model, net, [_tokens()])
    assert sum(isinstance(m, PaddingMask) for m in net.layers.values()) == 1


def test_masks_end_where_keras_drops_them(tmp_path):
    keras.utils.set_random_seed(6)
    tokens, extra = keras.Input((9,), dtype="int32"), keras.Input((9, 2))
    embedded = keras.layers.Embedding(20, 6, mask_zero=True)(tokens)
    convolved = keras.layers.Conv1D(4, 3, padding="same")(embedded)  # drops the mask
    joined = keras.layers.Concatenate()([embedded, extra])  # an unmasked input: all steps real
    outputs = [keras.layers.LSTM(3)(convolved), keras.layers.GRU(3)(joined)]
    model = keras.Model([tokens, extra], outputs)
    model.save(tmp_path / "dropped.keras")
    net = import_keras(tmp_path / "dropped.keras")
    x = np.random.default_rng(6).normal(size=(5, 9, 2)).astype("float32")
    _compare(model, net, [_tokens(), x])
    assert not any(getattr(m, "has_padding_mask", False) for m in net.layers.values())


def test_functional_file_without_saved_mask_arguments(masked_text_model, tmp_path):
    """As tf.keras 2 wrote them: no keras.ops mask nodes, no mask= arguments."""
    masked_text_model.save(tmp_path / "text.keras")
    with zipfile.ZipFile(tmp_path / "text.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    layers = config["config"]["layers"]
    layers[:] = [x for x in layers if not x.get("module", "").startswith("keras.src.ops")]
    for layer in layers:
        for node in layer["inbound_nodes"]:
            node["kwargs"].pop("mask", None)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "implicit.keras", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    _compare(masked_text_model, import_keras(tmp_path / "implicit.keras"), [_tokens()])


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_masking_layer_on_float_sequences(tmp_path, suffix):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((7, 3))
    h = keras.layers.Masking(mask_value=0.0)(inputs)
    h = keras.layers.LSTM(4, return_sequences=True)(h)
    h = keras.layers.Dense(2)(h)  # Dense passes the mask on
    model = keras.Model(inputs, [keras.layers.GlobalAveragePooling1D()(h), h])
    model.save(tmp_path / f"masking{suffix}")
    x = np.random.default_rng(1).normal(size=(4, 7, 3)).astype("float32")
    x[0, 5:] = 0.0
    x[1, :2] = 0.0
    x[2, 3] = 0.0
    x[3, 1, 0] = 0.0  # one zero channel is not padding
    net = import_keras(tmp_path / f"masking{suffix}")
    _compare(model, net, [x])
    export_keras(net, tmp_path / "again.keras")  # back to Keras: Masking, mask= arguments
    _compare(keras.saving.load_model(tmp_path / "again.keras"), net, [x])


@pytest.fixture(scope="module")
def attention_model():
    keras.utils.set_random_seed(2)
    query, value = keras.Input((4, 5)), keras.Input((7, 3))
    key, allowed = keras.Input((7, 2)), keras.Input((4, 7), dtype="bool")
    crossed = keras.layers.MultiHeadAttention(2, 3, value_dim=4, output_shape=6)(
        query, value, key=key, attention_mask=allowed
    )
    causal = keras.layers.MultiHeadAttention(3, 2, use_bias=False)(
        query, value, use_causal_mask=True
    )
    unbiased = keras.layers.MultiHeadAttention(2, 3, use_bias=False)(query, query)
    return keras.Model([query, value, key, allowed], [crossed, causal, unbiased])


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_cross_attention_with_key_and_attention_mask(attention_model, tmp_path, suffix):
    attention_model.save(tmp_path / f"attention{suffix}")
    net = import_keras(tmp_path / f"attention{suffix}")
    rng = np.random.default_rng(2)
    inputs = [rng.normal(size=(3, *shape)).astype("float32") for shape in ((4, 5), (7, 3), (7, 2))]
    allowed = rng.random((3, 4, 7)) > 0.4
    allowed[0, 1] = False  # a query with no key left: Keras attends uniformly
    _compare(attention_model, net, [*inputs, allowed])
    layers = [m for m in net.layers.values() if isinstance(m, CrossAttention)]
    assert [m.masks for m in layers] == [("attention_mask",), (), ()]
    assert [m.has_key for m in layers] == [True, False, False]
    assert layers[1].causal and not layers[1].bias


def test_shared_attention_inputs_stay_self_attention(tmp_path):
    keras.utils.set_random_seed(3)
    x = keras.Input((6, 4))
    model = keras.Model(x, keras.layers.MultiHeadAttention(2, 2)(x, x, x))
    model.save(tmp_path / "self.keras")
    net = import_keras(tmp_path / "self.keras")
    assert any(isinstance(m, L.SelfAttention) for m in net.layers.values())
    _compare(model, net, [np.random.default_rng(3).normal(size=(2, 6, 4)).astype("float32")])


def test_unsupported_mask_uses_raise_naming_file_and_layer(tmp_path):
    tokens = keras.Input((5,), dtype="int32")
    embedded = keras.layers.Embedding(9, 4, mask_zero=True)(tokens)
    other = keras.layers.Masking()(keras.layers.Dense(4)(keras.Input((5, 4))))
    model = keras.Model(
        [tokens, other._keras_history[0].input],
        keras.layers.Concatenate(name="joined")([embedded, other]),
    )
    model.save(tmp_path / "mixed.keras")
    with pytest.raises(ModelImportError, match=r"mixed\.keras.*'joined'.*different padding masks"):
        import_keras(tmp_path / "mixed.keras")
    model = keras.Sequential([keras.Input((5, 4)), keras.layers.Masking(),
                              keras.layers.Softmax(name="soft")])  # fmt: skip
    model.save(tmp_path / "soft.keras")
    with pytest.raises(ModelImportError, match=r"soft\.keras.*'soft' \(Softmax\).*LSTM, GRU"):
        import_keras(tmp_path / "soft.keras")


def _masked_network() -> dtb.Network:
    torch.manual_seed(0)
    net = dtb.Network([
        L.SequenceInput(1, length=8, name="ids"), L.Embedding(20, 6, name="emb"),
        L.LSTM(5, has_padding_mask=True, name="lstm"),
        L.GRU(4, bidirectional=True, has_padding_mask=True, name="bigru"),
        L.GlobalAvgPool(name="mean"),  # plain mean: Keras must not see the mask here
        L.Dense(2, name="fc"),
    ])  # fmt: skip
    net.add_layers(PaddingMask(name="mask"))
    net.add_layers(L.GRU(3, output_mode="last", has_padding_mask=True, name="gru"))
    net.add_layers({"joined": L.Concatenation(2)}).connect("fc", "joined")
    net.connect("ids", "mask").connect("bigru", "gru").connect("gru", "joined/in2")
    for name in ("lstm", "bigru", "gru"):
        net.connect("mask", f"{name}/mask")
    return net.eval()


def test_exported_masked_recurrent_layers_match_in_keras(tmp_path):
    net = _masked_network()
    x = torch.as_tensor(_tokens(8)[[0, 1, 2, 4]]).float()
    export_keras(net, tmp_path / "masked.keras")
    model = keras.saving.load_model(tmp_path / "masked.keras")
    expected = _outputs(net, x.numpy())[0]
    np.testing.assert_allclose(model.predict(x.numpy(), verbose=0), expected, atol=TOLERANCE)
    back = import_keras(tmp_path / "masked.keras")
    np.testing.assert_allclose(_outputs(back, x.numpy())[0], expected, atol=TOLERANCE)


def test_imported_masked_model_exports_back_to_keras(masked_text_model, tmp_path):
    keras.utils.set_random_seed(4)
    tokens = keras.Input((9,), dtype="int32")
    h = keras.layers.Embedding(20, 6, mask_zero=True)(tokens)
    h = keras.layers.LSTM(5, return_sequences=True)(h)
    h = keras.layers.Bidirectional(keras.layers.GRU(3))(h)
    model = keras.Model(tokens, h)
    model.save(tmp_path / "text.keras")
    export_keras(import_keras(tmp_path / "text.keras"), tmp_path / "again.keras")
    again = keras.saving.load_model(tmp_path / "again.keras")
    x = _tokens()
    np.testing.assert_allclose(
        again.predict(x.astype("float32"), verbose=0), model.predict(x, verbose=0), atol=TOLERANCE
    )


def test_export_refuses_masked_steps_it_cannot_fold(tmp_path):
    net = dtb.Network([L.SequenceInput(3, length=5, name="x"), L.Dense(4, name="fc"),
                       MaskedSteps("hold", name="held")])  # fmt: skip
    net.add_layers({"m": PaddingMask(over_channels=True)}).connect("x", "m")
    net.connect("m", "held/mask")
    with pytest.raises(ModelExportError, match="layer 'held' \\(MaskedSteps\\)"):
        export_keras(net, tmp_path / "held.keras")
    assert not (tmp_path / "held.keras").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_imported_masked_network_runs_on_the_gpu(masked_text_model, tmp_path):
    masked_text_model.save(tmp_path / "text.keras")
    net = import_keras(tmp_path / "text.keras")
    expected = _outputs(net, _tokens())
    with torch.no_grad():
        found = net.cuda()(torch.as_tensor(_tokens()).cuda())
    for want, got in zip(expected, found, strict=True):
        np.testing.assert_allclose(got.cpu().numpy(), want, atol=1e-4)


def test_imported_masked_network_exports_to_onnx(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    from deeptoolbox.interop import export_onnx

    keras.utils.set_random_seed(7)
    tokens = keras.Input((9,), dtype="int32")
    h = keras.layers.Embedding(20, 6, mask_zero=True)(tokens)
    h = keras.layers.GRU(4, return_sequences=True)(h)  # masked steps hold: no cummax in ONNX
    model = keras.Model(tokens, keras.layers.MultiHeadAttention(2, 2)(h, h))
    model.save(tmp_path / "text.keras")
    net = import_keras(tmp_path / "text.keras")
    export_onnx(net, tmp_path / "text.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "text.onnx"))
    x = _tokens()[[0, 1, 2, 4]]
    feed = {session.get_inputs()[0].name: x.astype("int64")}  # token ids, (N, T)
    (found,) = session.run(None, feed)
    np.testing.assert_allclose(found, model.predict(x, verbose=0), atol=TOLERANCE)
