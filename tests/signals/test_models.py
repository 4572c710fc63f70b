"""The two window classifiers: toolbox Networks (sizes, classes, save/load), trained by
train() on a few real windows to well beyond chance, and clear errors for bad options."""

import numpy as np
import pytest
import torch

from deeptoolbox import datasets, load, predict, save, signals, train
from deeptoolbox.errors import OptionError
from deeptoolbox.network import Network
from deeptoolbox.training import TrainingOptions, loss_function


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_networks_take_windows_and_scalograms_and_round_trip_through_files(tmp_path):
    raw = signals.cnn_lstm_classifier(4, 3, filters=8, hidden_units=12, classes=["a", "b", "c"])
    assert isinstance(raw, Network) and raw.classes == ["a", "b", "c"]
    x = torch.randn(5, 128, 4)
    assert raw(x).shape == (5, 3) and torch.allclose(raw.eval()(x).sum(1), torch.ones(5))
    assert raw(torch.randn(2, 200, 4)).shape == (2, 3)  # window length is free
    image = signals.scalogram_cnn((4, 16, 24), 2, filters=4)
    assert image(torch.randn(2, 4, 16, 24)).shape == (2, 2)
    for net, inputs in [(raw, x), (image, torch.randn(3, 4, 16, 24))]:
        net.eval()
        again = load(save(net, tmp_path / net.name)).eval()
        assert torch.allclose(again(inputs), net(inputs), atol=1e-6)


def test_both_models_learn_seizure_windows_with_train():
    recordings = datasets.eeg(3, recordings_per_subject=1, duration=120.0, seizures=2,
                              seizure_duration=(15.0, 25.0), seed=7)  # fmt: skip
    segments = signals.window_recordings(recordings, 2.0, overlap=0.5)
    segments = signals.ChannelNormalizer.fit(segments)(segments)
    is_test = segments.subjects == "S03"
    train_set, test_set = segments.subset(~is_test), segments.subset(is_test)
    loss = loss_function("crossentropy", class_weights=signals.class_weights(train_set))
    options = TrainingOptions(solver="adam", initial_learn_rate=3e-3, max_epochs=4,
                              mini_batch_size=32, verbose=False, seed=0)  # fmt: skip
    images = torch.log1p(signals.scalogram(segments, 128.0, frequency_range=(1.5, 40.0),
                                           num_frequencies=12, hop_length=16).values)  # fmt: skip
    cases = [
        (signals.cnn_lstm_classifier(8, 2, filters=8, hidden_units=16), train_set.data,
         test_set.data),
        (signals.scalogram_cnn(tuple(images.shape[1:]), 2, filters=8),
         images[torch.as_tensor(~is_test)], images[torch.as_tensor(is_test)]),
    ]  # fmt: skip
    for net, train_inputs, test_inputs in cases:
        train(net, (train_inputs, train_set.labels), loss, options)
        m = signals.segment_metrics(predict(net, test_inputs), test_set)
        # always "background" (or always "seizure") gives a balanced accuracy of 0.5; one
        # held-out subject after 4 short epochs is far from the full example's >= 0.9
        assert (m.sensitivity + m.specificity) / 2 > 0.75, (net.name, str(m))
        assert min(m.sensitivity, m.specificity) > 0.5, (net.name, str(m))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: signals.cnn_lstm_classifier(0), "`channels` must be an int >= 1"),
        (lambda: signals.cnn_lstm_classifier(8, 1), "`num_classes` must be an int >= 2"),
        (lambda: signals.cnn_lstm_classifier(8, 2, classes=["a"]), "must name 2 classes"),
        (lambda: signals.scalogram_cnn((8, 24)), r"`input_size` must be \(channels, frequencies"),
        (lambda: signals.scalogram_cnn((8, 24, 32), 2, filters=0), "`filters` must be an int"),
    ],
)
def test_bad_options_name_the_option(build, message):
    with pytest.raises(OptionError, match=message):
        build()


def test_plot_recording_draws_the_asked_channels_and_refuses_unknown_ones():
    from deeptoolbox.errors import DataError

    recording = datasets.eeg(1, recordings_per_subject=1, duration=60.0)[0]
    figure = signals.plot_recording(recording, start=5.0, seconds=20.0, channels=["O1", "C3"])
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["O1", "C3"]
    assert ax.get_xlim() == pytest.approx((5.0, 25.0 - 1 / 128))
    assert len(ax.lines) == 2 and np.allclose(ax.lines[0].get_xdata()[:2], [5.0, 5.0 + 1 / 128])
    with pytest.raises(DataError, match=r"no channel 'Cz' in recording 'S01-R1'"):
        signals.plot_recording(recording, channels=["Cz"])
