"""Sequence classification and sequence-to-sequence training from datastores and lists.

MATLAB's "sequence classification using deep learning" workflow: variable-length (T, C)
sequences with one label each (or one label per step), trained, evaluated, classified,
charted, saved and loaded, with every padding option.
"""

import numpy as np
import pytest
import torch

import deeptoolbox as dtb
from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.data import ArrayDatastore, SequenceDatastore, SignalDatastore, combine
from deeptoolbox.errors import OptionError
from deeptoolbox.training import TrainingOptions, confusion_chart, evaluate, train

PADDINGS = [
    ("longest", "right"),
    ("longest", "left"),
    ("shortest", "right"),
    ("shortest", "left"),
    (6, "right"),
    (6, "left"),
]


def sequences(n=24, seed=0, equal=False):
    """Two classes: the sign of the first channel's mean; lengths 4..11."""
    rng = np.random.default_rng(seed)
    lengths = [8] * n if equal else rng.integers(4, 12, n)
    labels = np.array(["down", "up"] * n)[:n]
    seqs = []
    for length, label in zip(lengths, labels, strict=True):
        s = rng.normal(0, 0.5, (int(length), 2)).astype(np.float32)
        s[:, 0] += 1.0 if label == "up" else -1.0
        seqs.append(s)
    return seqs, labels


def recurrent(kind="lstm"):
    torch.manual_seed(0)
    layer = L.LSTM(8, output_mode="last") if kind == "lstm" else L.GRU(8, output_mode="last")
    return Network([L.SequenceInput(2), layer, L.Dense(2), L.Softmax()])


def convolutional():
    torch.manual_seed(0)
    return Network(
        [
            L.SequenceInput(2),
            L.Conv1d(8, 3, padding="same"),
            L.ReLU(),
            L.GlobalAvgPool(),
            L.Dense(2),
            L.Softmax(),
        ]  # fmt: skip
    )


def quick(**kw):
    return TrainingOptions(
        solver="adam", initial_learn_rate=0.02, max_epochs=kw.pop("max_epochs", 2),
        mini_batch_size=8, verbose=False, seed=0, **kw,
    )  # fmt: skip


def signal_folder(tmp_path, seqs, labels):
    for i, (s, label) in enumerate(zip(seqs, labels, strict=True)):
        folder = tmp_path / label
        folder.mkdir(exist_ok=True)
        np.save(folder / f"s{i:02d}.npy", s)
    return tmp_path


def datastore(kind, tmp_path, seqs, labels, length, padding):
    if kind == "sequence":
        return SequenceDatastore(seqs, labels, sequence_length=length, padding=padding)
    if kind == "signal":
        root = signal_folder(tmp_path, seqs, labels)
        return SignalDatastore(root, sequence_length=length, padding=padding)
    inputs = SequenceDatastore(seqs, sequence_length=length, padding=padding)
    codes = (labels == "up").astype(np.int64)  # class indices of ["down", "up"]
    return combine(inputs, ArrayDatastore(codes))


@pytest.mark.parametrize("kind", ["sequence", "signal", "combine"])
@pytest.mark.parametrize("length,padding", PADDINGS)
def test_sequence_to_label_trains_and_evaluates_from_datastores(tmp_path, kind, length, padding):
    seqs, labels = sequences()
    ds = datastore(kind, tmp_path, seqs, labels, length, padding)
    net = recurrent()
    result = train(net, ds, "crossentropy", quick(validation_data=ds, metrics=["accuracy"]))
    assert net.classes == (None if kind == "combine" else ["down", "up"])
    assert result.history.column("validation_accuracy")
    values = evaluate(net, ds, ["accuracy"], loss="crossentropy")
    assert 0.0 <= values["accuracy"] <= 1.0 and np.isfinite(values["loss"])


@pytest.mark.parametrize("length,padding", PADDINGS)
def test_sequence_to_sequence_trains_and_evaluates_with_every_padding(length, padding):
    seqs, _ = sequences()
    steps = [np.where(s[:, 0] > 0, "high", "low") for s in seqs]  # one label per time step
    ds = SequenceDatastore(seqs, steps, sequence_length=length, padding=padding)
    torch.manual_seed(0)
    net = Network([L.SequenceInput(2), L.LSTM(8), L.Dense(2), L.Softmax()])
    result = train(net, ds, "crossentropy", quick(max_epochs=6, metrics=["accuracy"]))
    assert result.history.epochs[-1]["loss"] < result.history.epochs[0]["loss"]
    values = evaluate(net, ds, ["accuracy"])
    if length == "longest":  # nothing truncated: every real step of every sequence counts
        predicted = dtb.classify(net, seqs, uniform_output=False)[0]
        truth = np.concatenate(steps)
        expected = float(np.mean(np.concatenate(predicted) == truth))
        assert values["accuracy"] == pytest.approx(expected)


def test_equal_lengths_used_to_fail_too():
    seqs, labels = sequences(equal=True)
    net = convolutional()
    train(net, SequenceDatastore(seqs, labels), "crossentropy", quick())
    assert set(evaluate(net, SequenceDatastore(seqs, labels), ["accuracy"])) == {"accuracy"}


@pytest.mark.parametrize("make", [lambda: recurrent("lstm"), lambda: recurrent("gru"),
                                  convolutional], ids=["lstm", "gru", "cnn1d"])  # fmt: skip
def test_sequence_classification_workflow_end_to_end(tmp_path, make):
    seqs, labels = sequences(48)
    ds = SequenceDatastore(seqs, labels)
    train_ds, valid_ds = ds.split(0.75, seed=0)
    net = make()
    options = quick(max_epochs=12, validation_data=valid_ds, metrics=["accuracy"])
    result = train(net, train_ds, "crossentropy", options)
    values = evaluate(net, valid_ds, ["accuracy"])
    assert values["accuracy"] == pytest.approx(result.final_validation["accuracy"])
    assert values["accuracy"] >= 0.9
    valid_seqs = [s for s, _ in (valid_ds[i] for i in range(len(valid_ds)))]
    predicted, scores = dtb.classify(net, valid_seqs)
    truth = valid_ds.labels
    assert float(np.mean(predicted == truth)) == pytest.approx(values["accuracy"])
    chart = confusion_chart(truth, predicted, classes=net.classes, path=tmp_path / "chart.png")
    assert chart.accuracy == pytest.approx(values["accuracy"]) and chart.matrix.sum() == len(truth)
    dtb.save(net, tmp_path / "net.zip")
    loaded = dtb.load(tmp_path / "net.zip")
    again, again_scores = dtb.classify(loaded, valid_seqs)
    assert list(again) == list(predicted) and loaded.classes == net.classes
    torch.testing.assert_close(again_scores, scores)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_recurrent_last_output_does_not_depend_on_padding(kind):
    seqs, _ = sequences(6)
    net = recurrent(kind).eval()
    alone = torch.cat([dtb.predict(net, torch.from_numpy(s)[None]) for s in seqs])
    for length, padding in [("longest", "right"), ("longest", "left"), (20, "left")]:
        padded = dtb.predict(
            net, seqs, sequence_length=length, sequence_padding_direction=padding,
            sequence_padding_value=3.0,
        )  # fmt: skip
        torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-4)


def test_lists_of_arrays_train_and_predict_directly():
    seqs, labels = sequences(32)
    net = recurrent()
    result = train(net, (seqs, labels), "crossentropy", quick(max_epochs=10))
    assert net.classes == ["down", "up"] and result.history.epochs
    predicted, _ = dtb.classify(net, seqs)
    assert float(np.mean(predicted == labels)) >= 0.9
    assert evaluate(net, (seqs, labels), ["accuracy"])["accuracy"] == pytest.approx(
        float(np.mean(predicted == labels))
    )


def test_uniform_output_false_gives_unpadded_outputs():
    seqs, _ = sequences(5)
    torch.manual_seed(0)
    net = Network([L.SequenceInput(2), L.LSTM(4), L.Dense(3)]).eval()
    for padding in ("right", "left"):
        outputs = dtb.predict(net, seqs, sequence_padding_direction=padding, uniform_output=False)
        assert [tuple(o.shape) for o in outputs] == [(len(s), 3) for s in seqs]
        for s, out in zip(seqs, outputs, strict=True):
            torch.testing.assert_close(out, dtb.predict(net, torch.from_numpy(s)[None])[0])
    rows = dtb.predict(recurrent(), seqs, uniform_output=False)
    assert [tuple(r.shape) for r in rows] == [(2,)] * 5


def test_training_options_sequence_settings_override_the_datastore():
    seqs, labels = sequences(8)
    ds = SequenceDatastore(seqs, labels, padding="right")
    net = convolutional()
    seen = []
    net.layer(net.layer_names[1]).register_forward_pre_hook(
        lambda module, args: seen.append(args[0][0, :, 0].clone())
    )
    options = quick(max_epochs=1, shuffle="never", sequence_length=3,
                    sequence_padding_direction="left")  # fmt: skip
    train(net, ds, "crossentropy", options)
    assert all(len(x) == 3 for x in seen)
    first = torch.from_numpy(seqs[0][-3:, 0])  # truncated on the left: the last 3 steps kept
    torch.testing.assert_close(seen[0], first)
    assert ds.collate_fn.padding == "right" and ds.collate_fn.sequence_length == "longest"


def test_a_mask_input_receives_the_padding_mask():
    net = Network().add_layers([L.SequenceInput(2, name="x"),
                                L.LSTM(6, has_padding_mask=True, output_mode="last", name="lstm"),
                                L.Dense(2, name="fc"), L.Softmax(name="sm")])  # fmt: skip
    net.add_layers(L.SequenceInput(1, name="mask")).connect("mask", "lstm/mask")
    seqs, labels = sequences(16)
    train(net, (seqs, labels), "crossentropy", quick(max_epochs=1))
    net.eval()
    alone = torch.cat(
        [dtb.predict(net, (torch.from_numpy(s)[None], torch.ones(1, len(s)))) for s in seqs]
    )
    torch.testing.assert_close(dtb.predict(net, seqs), alone, atol=1e-5, rtol=1e-4)


def test_bad_sequence_options_name_the_option():
    with pytest.raises(OptionError, match="`sequence_length`"):
        TrainingOptions(sequence_length=0)
    with pytest.raises(OptionError, match="`sequence_padding_direction`"):
        TrainingOptions(sequence_padding_direction="both")
    with pytest.raises(OptionError, match="`sequence_padding_value`"):
        dtb.predict(recurrent(), sequences(2)[0], sequence_padding_value="zero")
