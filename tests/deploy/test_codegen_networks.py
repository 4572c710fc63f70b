"""Whole networks as C: digits CNN, residual CNN, LSTM classifier (step by step and over a
sequence), 1-D CNN + GRU; float and int8, compiled and compared with the network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from deploy_helpers import (
    assert_float_close,
    c_outputs,
    inputs_for,
    network_outputs,
    output_step,
    requires_cc,
)
from deploy_networks import cnn_gru, digits_cnn, lstm_classifier, residual_cnn

from deeptoolbox import Network
from deeptoolbox import layers as L

pytestmark = requires_cc

NETWORKS = {
    "digits": (digits_cnn, {}),
    "residual": (residual_cnn, {}),
    "lstm": (lstm_classifier, {"sequence_length": 20}),
    "cnn_gru": (cnn_gru, {"batch_size": 3}),
}


def _digits_inputs(count: int) -> list[torch.Tensor]:
    from deeptoolbox.datasets import digits

    images, _ = digits()
    return [torch.from_numpy(images[-count:])]


def _build(builds, key: str, precision: str):
    make, options = NETWORKS[key]
    if key == "digits":  # calibrate on real digits, not noise
        built = builds.cache.get(f"digits-{precision}-1")
        if built is None:
            net, shapes = make()
            builds.get("digits", lambda: (net, shapes), precision=precision)
            built = builds.cache[f"digits-{precision}-1"]
        return built
    return builds.get(key, make, precision=precision, **options)


def _inputs(key: str, built, count: int | None = None) -> list[torch.Tensor]:
    batch = count or built.report.batch_size
    if key == "digits":
        return _digits_inputs(batch)
    shapes = [tuple(p["shape"]) for p in built.code.manifest["inputs"]]
    return inputs_for(built.net, shapes, batch, seed=11)


@pytest.mark.parametrize("key", list(NETWORKS))
def test_float_network_matches(builds, key):
    built = _build(builds, key, "float32")
    inputs = _inputs(key, built)
    (got,), (want,) = c_outputs(built.code, inputs), network_outputs(built.net, inputs)
    assert_float_close(got, want, key)


@pytest.mark.parametrize("key", list(NETWORKS))
def test_int8_network_equals_reference_and_stays_near_float(builds, key):
    built = _build(builds, key, "int8")
    inputs = _inputs(key, built)
    (got,), (want,) = c_outputs(built.code, inputs), network_outputs(built.net, inputs)
    (reference,) = built.reference_int8([x.numpy() for x in inputs])
    np.testing.assert_array_equal(got, reference.reshape(got.shape))
    spread = float(want.max() - want.min())
    assert np.abs(got - want).max() <= max(6 * output_step(built.qgraph, 0), 0.06 * spread)


def test_int8_digits_classifies_like_float(builds):
    float_code = _build(builds, "digits", "float32").code
    int8_code = _build(builds, "digits", "int8").code
    images = _digits_inputs(200)[0].numpy()
    float_labels = [int(float_code.predict(x[None]).argmax()) for x in images]
    int8_labels = [int(int8_code.predict(x[None]).argmax()) for x in images]
    agreement = np.mean(np.array(float_labels) == np.array(int8_labels))
    assert agreement >= 0.95, f"int8 and float agree on {agreement:.0%} of 200 digits"


def test_lstm_classifier_step_by_step_matches_every_prefix(builds):
    built = _build(builds, "lstm", "float32")
    assert built.code.streaming
    (sequence,) = inputs_for(built.net, [(20, 3)], 1, seed=13)
    built.code.reset()
    for t in range(1, 21):
        got = built.code.step(sequence[:, t - 1 : t].numpy())
        (want,) = network_outputs(built.net, [sequence[:, :t]])
        assert_float_close(got, want, f"after {t} steps")
    built.code.reset()  # reset really clears the state
    first = built.code.step(sequence[:, :1].numpy())
    assert_float_close(first, network_outputs(built.net, [sequence[:, :1]])[0], "after reset")


def test_lstm_classifier_predict_leaves_the_streaming_state_alone(builds):
    built = _build(builds, "lstm", "float32")
    (sequence,) = inputs_for(built.net, [(20, 3)], 1, seed=14)
    built.code.reset()
    built.code.step(sequence[:, :1].numpy())
    built.code.predict(sequence.numpy())
    got = built.code.step(sequence[:, 1:2].numpy())
    assert_float_close(got, network_outputs(built.net, [sequence[:, :2]])[0], "step after predict")


def test_int8_lstm_step_by_step_ends_where_predict_does(builds):
    built = _build(builds, "lstm", "int8")
    (sequence,) = inputs_for(built.net, [(20, 3)], 1, seed=15)
    built.code.reset()
    for t in range(20):
        last = built.code.step(sequence[:, t : t + 1].numpy())
    np.testing.assert_array_equal(last, built.code.predict(sequence.numpy()))


def test_residual_network_reuses_arena_memory(builds):
    report = _build(builds, "residual", "float32").report
    assert report.arena_bytes < report.unshared_activation_bytes
    largest = 8 * 16 * 16 * 4  # one 8x16x16 float activation
    accumulator = 8 * 4  # a convolution's scratch: one value per filter
    # at most the input of a block (kept for the skip), its branch, and the next result
    assert report.arena_bytes <= 3 * largest + accumulator


def test_cnn_gru_has_no_step_function_and_says_why(builds):
    built = _build(builds, "cnn_gru", "float32")
    assert not built.code.streaming
    assert "conv" in built.report.streaming_note


def _bidirectional(cell, mode: str):
    def make():
        torch.manual_seed(3)
        layer = L.LSTM if cell == "lstm" else L.GRU
        try:
            recurrent = layer(5, output_mode=mode, bidirectional=True, name="rnn")
        except ValueError:
            pytest.skip(f"this toolbox's {layer.__name__} has no output_mode={mode!r}")
        net = Network([L.SequenceInput(3, name="seq"), recurrent, L.Dense(2, name="fc")])
        return net.eval(), [(7, 3)]

    return make


@pytest.mark.parametrize("precision", ["float32", "int8"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("mode", ["last", "final_state"])
def test_bidirectional_last_and_final_state_outputs(builds, mode, cell, precision):
    """ "last" as the layer computes it (on toolboxes with "final_state", the output sequence's
    last step, which the reverse direction computes first) and "final_state" (h_n)."""
    make = _bidirectional(cell, mode)
    built = builds.get(f"bi-{cell}-{mode}", make, precision=precision, batch_size=3,
                       sequence_length=7)  # fmt: skip
    inputs = inputs_for(built.net, [(7, 3)], 3, seed=21)
    (got,), (want,) = c_outputs(built.code, inputs), network_outputs(built.net, inputs)
    if precision == "float32":
        assert_float_close(got, want, f"bidirectional {cell} {mode}")
        return
    (reference,) = built.reference_int8([x.numpy() for x in inputs])
    np.testing.assert_array_equal(got, reference.reshape(got.shape))
    spread = float(want.max() - want.min())
    assert np.abs(got - want).max() <= max(6 * output_step(built.qgraph, 0), 0.06 * spread)
