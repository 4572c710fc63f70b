"""window_recordings and ChannelNormalizer: windows equal slices of the signals, labels equal
the event share computed sample by sample, statistics from the training windows only, and
clear errors for bad input."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from deeptoolbox.datasets import EEGEvent, eeg
from deeptoolbox.errors import DataError, OptionError
from deeptoolbox.signals import ChannelNormalizer, SignalSegments, window_recordings


@pytest.fixture(scope="module")
def recordings():
    return eeg(2, recordings_per_subject=2, duration=80.0, seizure_duration=(10.0, 20.0), seed=3)


def test_windows_are_slices_of_the_recordings_with_the_event_share_as_label(recordings):
    segments = window_recordings(recordings, window=2.0, overlap=0.75, min_event_fraction=0.4)
    length, hop = 256, 64
    per_recording = (80 * 128 - length) // hop + 1
    assert len(segments) == 4 * per_recording and segments.step == 0.5
    assert segments.data.shape == (4 * per_recording, length, 8)
    for i in np.random.default_rng(0).choice(len(segments), 40, replace=False):
        r = recordings[segments.recording[i]]
        first = int(round(segments.start[i] * 128))
        assert torch.equal(segments.data[i], torch.from_numpy(r.signal[first : first + length]))
        share = r.label_mask()[first : first + length].mean()
        assert segments.event_fraction[i] == pytest.approx(share)
        assert int(segments.labels[i]) == int(share >= 0.4)
    counts = segments.count_each_label()
    assert counts["seizure"] == int((segments.event_fraction >= 0.4).sum()) > 0
    assert sum(counts.values()) == len(segments)
    assert sorted(set(segments.subjects)) == ["S01", "S02"]
    assert list(segments.recording_names[:1]) == ["S01-R1"]


def test_channels_are_picked_by_name_and_subsets_keep_their_recordings(recordings):
    segments = window_recordings(recordings, 4.0, overlap=0.0, channels=["O2", "Fp1"])
    o2, fp1 = recordings[0].channels.index("O2"), recordings[0].channels.index("Fp1")
    assert torch.equal(segments.data[0], torch.from_numpy(recordings[0].signal[:512, [o2, fp1]]))
    assert segments.channels == ("O2", "Fp1") and segments.step == 4.0
    part = segments.subset(segments.subjects == "S02")
    assert set(part.recording_names) == {"S02-R1", "S02-R2"}
    assert torch.equal(part.data, segments.data[torch.as_tensor(segments.subjects == "S02")])
    assert part.recordings == segments.recordings
    window, label = part[3]
    assert window.shape == (512, 2) and label.dtype == torch.int64
    assert "SignalSegments(" in repr(part) and "background" in repr(part)


def test_any_object_with_signal_rate_channels_and_events_can_be_windowed():
    @dataclass
    class Plain:
        signal: np.ndarray
        sampling_rate: float
        channels: tuple
        events: tuple = ()

    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    segments = window_recordings(Plain(x, 2.0, ("a", "b"), (EEGEvent(5.0, 10.0),)), 2.0, 0.5)
    assert segments.data.shape == (9, 4, 2)
    assert segments.labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1]
    assert segments.recording_names[0] == "recording 0"


def test_bad_input_gives_clear_errors(recordings):
    with pytest.raises(DataError, match=r"`window` \(100.0 s, 12800 samples\) is longer than "
                                        r"recording 'S01-R1' \(80 s"):  # fmt: skip
        window_recordings(recordings, window=100.0)
    with pytest.raises(DataError, match=r"has no channel 'Cz'.*Its channels are \['Fp1'"):
        window_recordings(recordings, channels=["O1", "Cz"])
    with pytest.raises(OptionError, match=r"`overlap` must be .* in \[0, 1\)"):
        window_recordings(recordings, overlap=1.0)
    with pytest.raises(OptionError, match="`window` must be a positive length"):
        window_recordings(recordings, window=0)
    with pytest.raises(OptionError, match="`recordings` must be a recording or a non-empty"):
        window_recordings([])

    @dataclass
    class Bad:
        signal: np.ndarray
        sampling_rate: float = 128.0
        channels: tuple = ("a", "b")
        name: str = "bad"

    with pytest.raises(DataError, match=r"'bad' must have a \(T, C\) signal .* shape \(300,\)"):
        window_recordings(Bad(np.zeros(300)))
    faster = Bad(np.zeros((600, 2)), 256.0, name="fast")
    with pytest.raises(DataError, match="'fast' is sampled at 256.0 Hz, the first at 128.0 Hz"):
        window_recordings([Bad(np.zeros((600, 2))), faster])
    segments = window_recordings(recordings[:1], 2.0)
    with pytest.raises(DataError, match=r"one value per window \(79\)"):
        segments.subset(np.ones(3, bool))


def test_channel_normalizer_uses_the_training_windows_statistics(recordings):
    segments = window_recordings(recordings, 2.0, overlap=0.0)
    train = segments.subset(segments.subjects == "S01")
    normalizer = ChannelNormalizer.fit(train)
    flat = train.data.reshape(-1, 8).double().numpy()
    assert np.allclose(normalizer.mean.numpy(), flat.mean(axis=0), rtol=1e-5)
    assert np.allclose(normalizer.std.numpy(), flat.std(axis=0), rtol=1e-5)
    normalized = normalizer(segments)
    assert isinstance(normalized, SignalSegments) and torch.equal(
        normalized.labels, segments.labels
    )
    mine = normalized.subset(segments.subjects == "S01").data.reshape(-1, 8)
    assert torch.allclose(mine.mean(0), torch.zeros(8), atol=1e-4)
    assert torch.allclose(mine.std(0, unbiased=False), torch.ones(8), atol=1e-4)
    expected = (segments.data - normalizer.mean) / normalizer.std
    assert torch.allclose(normalized.data, expected)
    # the same statistics from the recordings' signals, and a constant channel keeps std 1
    assert torch.allclose(
        ChannelNormalizer.fit(recordings[:2]).mean, normalizer.mean, rtol=0.05, atol=0.5
    )
    constant = ChannelNormalizer.fit(np.ones((10, 3)))
    assert constant.std.tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(DataError, match=r"the data have 2 channels .* fitted on 8"):
        normalizer(torch.zeros(4, 2))
    with pytest.raises(DataError, match=r"must be \(T, C\) or \(N, T, C\)"):
        ChannelNormalizer.fit(np.zeros(5))
