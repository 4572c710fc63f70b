"""Keras's Attention layer (dot-product attention) imports as the toolbox's one-head Attention
and exports back, checked against the keras package itself (torch backend)."""

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
RNG = np.random.default_rng(13)
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


def _predict(net: dtb.Network, xs: list[np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        return net.eval()(*(torch.from_numpy(x) for x in xs)).numpy()


def _inputs() -> list[np.ndarray]:
    return [RNG.standard_normal(s).astype(np.float32) for s in ((2, 5, 4), (2, 5, 4), (2, 5, 4))]


@pytest.mark.parametrize(
    ("with_key", "use_scale", "causal"), [(False, False, False), (True, True, True)]
)
def test_keras_attention_imports_as_one_head_attention(tmp_path, with_key, use_scale, causal):
    q, v, k = (keras.Input((5, 4), name=n) for n in ("q", "v", "k"))
    layer = keras.layers.Attention(use_scale=use_scale, name="attention")
    y = layer([q, v, k] if with_key else [q, v], use_causal_mask=causal)
    model = keras.Model([q, v, k] if with_key else [q, v], keras.layers.Dense(3)(y))
    if use_scale:
        layer.scale.assign(0.6)
    model.save(tmp_path / "attention.keras")
    net = import_keras(tmp_path / "attention.keras")
    attention = net.layer("attention")
    assert isinstance(attention, L.Attention) and attention.num_heads == 1
    assert attention.scale == pytest.approx(0.6 if use_scale else 1.0)
    assert attention.attention_mask == ("causal" if causal else "none")
    want_sources = {"query": "q", "key": "k" if with_key else "v", "value": "v"}
    assert net.sources("attention") == want_sources
    xs = _inputs()[: 3 if with_key else 2]
    want = model.predict(xs, verbose=0)
    np.testing.assert_allclose(_predict(net, xs), want, atol=TOLERANCE)


def _attention_network() -> dtb.Network:
    torch.manual_seed(0)
    net = dtb.Network(name="dot")
    net.add_layers([L.SequenceInput(4, name="target"), L.Dense(6, name="q"),
                    L.Attention(attention_mask="causal", name="attention")])  # fmt: skip
    net.add_layers([L.SequenceInput(4, name="memory"), L.Dense(6, name="k")])
    net.add_layers(L.Dense(3, name="v"))
    net.connect("memory", "v").connect("k", "attention/key").connect("v", "attention/value")
    return net.eval()


def test_export_keras_writes_keras_attention_and_imports_back(tmp_path):
    net = _attention_network()
    path = export_keras(net, tmp_path / "dot.keras")
    model = keras.models.load_model(path)
    written = model.get_layer("attention")
    assert type(written).__name__ == "Attention" and written.use_scale
    assert float(written.scale.numpy()) == pytest.approx(1 / 6**0.5)  # "auto" with 6 channels
    xs = _inputs()[:2]
    np.testing.assert_allclose(model.predict(xs, verbose=0), _predict(net, xs), atol=TOLERANCE)
    again = import_keras(path)
    np.testing.assert_allclose(_predict(again, xs), _predict(net, xs), atol=TOLERANCE)


def test_what_keras_attention_cannot_hold_is_refused(tmp_path):
    net = dtb.Network(name="heads")
    net.add_layers([L.SequenceInput(4, name="x"), L.Attention(2, name="attention")])
    net.connect("x", "attention/key").connect("x", "attention/value")
    with pytest.raises(ModelExportError, match=r"'attention' \(Attention\) uses num_heads=2"):
        export_keras(net, tmp_path / "heads.keras")
    q, v = keras.Input((5, 4)), keras.Input((5, 4))
    model = keras.Model([q, v], keras.layers.Attention(score_mode="concat")([q, v]))
    model.save(tmp_path / "concat.keras")
    with pytest.raises(ModelImportError, match="score_mode='concat'"):
        import_keras(tmp_path / "concat.keras")
