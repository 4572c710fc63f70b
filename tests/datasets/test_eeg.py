"""datasets.eeg: reproducible from the seed, events where the annotations say, and the
spectral content of EEG (1/f background, alpha over the occipital channels, ~3 Hz
spike-wave in seizures)."""

import numpy as np
import pytest
from scipy.signal import welch

from deeptoolbox.datasets import EEG_CHANNELS, eeg
from deeptoolbox.errors import OptionError


def _same(a, b) -> bool:
    return all(
        np.array_equal(x.signal, y.signal) and x.events == y.events and x.name == y.name
        for x, y in zip(a, b, strict=True)
    )


def test_same_seed_gives_identical_data_and_another_seed_different_data():
    first = eeg(2, recordings_per_subject=2, duration=60.0, seed=5)
    again = eeg(2, recordings_per_subject=2, duration=60.0, seed=5)
    other = eeg(2, recordings_per_subject=2, duration=60.0, seed=6)
    assert _same(first, again)
    for x, y in zip(first, other, strict=True):
        assert not np.allclose(x.signal, y.signal)
    assert [r.events for r in first] != [r.events for r in other]
    # more subjects or recordings leave the earlier recordings as they were
    more = eeg(3, recordings_per_subject=3, duration=60.0, seed=5)
    by_name = {r.name: r for r in more}
    assert _same(first, [by_name[r.name] for r in first])


def test_recordings_have_the_asked_layout_and_annotated_events():
    recordings = eeg(3, recordings_per_subject=2, duration=200.0, channels=10,
                     seizures=(2, 3), seizure_duration=(8.0, 20.0), seed=1)  # fmt: skip
    assert [r.name for r in recordings] == ["S01-R1", "S01-R2", "S02-R1", "S02-R2", "S03-R1",
                                            "S03-R2"]  # fmt: skip
    for r in recordings:
        assert r.signal.dtype == np.float32 and r.signal.shape == (200 * 128, 10)
        assert r.channels == EEG_CHANNELS[:10] and r.duration == 200.0
        assert 2 <= len(r.events) <= 3
        for before, after in zip(r.events, r.events[1:], strict=False):
            assert after.start > before.end + 20.0  # apart, in time order
        for event in r.events:
            assert event.start >= 10.0 and event.end <= 190.0 and 8.0 <= event.duration <= 20.0
            assert event.label == "seizure" and set(event.channels) <= set(r.channels)
        mask = r.label_mask()
        assert mask.sum() == pytest.approx(
            sum(e.duration for e in r.events) * 128, abs=2 * len(r.events)
        )
    named = eeg(1, recordings_per_subject=1, duration=60.0, channels=["O2", "Fp1"])[0]
    assert named.channels == ("O2", "Fp1") and named.signal.shape[1] == 2
    assert eeg(1, recordings_per_subject=1, duration=60.0, seizures=0)[0].events == ()


def _psd(x, rate=128.0):
    return welch(x, fs=rate, nperseg=512, axis=0)


def test_background_is_1_over_f_with_an_occipital_alpha_peak():
    r = eeg(1, recordings_per_subject=1, duration=240.0, seizures=0, seed=2)[0]
    f, p = _psd(r.signal)
    band = (f >= 2) & (f <= 40) & ~((f >= 7) & (f <= 13))  # outside the alpha band
    slope = np.polyfit(np.log(f[band]), np.log(p[band].mean(axis=1)), 1)[0]
    assert -2.2 < slope < -0.6  # power ~ 1/f^beta, beta 1.0-1.8
    alpha = (f >= 8) & (f <= 12)
    o1, fp1 = r.channels.index("O1"), r.channels.index("Fp1")
    peak = f[alpha][np.argmax(p[alpha, o1])]
    assert 8.0 <= peak <= 12.0
    assert p[alpha, o1].mean() > 2 * p[alpha, fp1].mean()  # alpha is strongest at the back


def test_seizures_are_3_hz_spike_wave_on_the_channels_they_reach():
    r = eeg(1, recordings_per_subject=1, duration=200.0, seizures=1,
            seizure_duration=(30.0, 30.0), seed=4)[0]  # fmt: skip
    event = r.events[0]
    focus = r.channels.index(event.channels[0])
    inside = r.signal[int((event.start + 3) * 128) : int((event.end - 1) * 128), focus]
    outside = r.signal[: int((event.start - 5) * 128), focus]
    f, p_in = _psd(inside)
    _, p_out = _psd(outside)
    assert 2.3 <= f[np.argmax(p_in)] <= 4.0  # the spike-wave rhythm dominates
    low = (f >= 2) & (f <= 4.5)
    assert p_in[low].sum() > 5 * p_out[low].sum()
    assert np.abs(inside).max() > 3 * outside.std()  # spikes stand out of the background


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"subjects": 0}, "`subjects` must be an int >= 1"),
        ({"duration": 10.0}, "`duration` must be a number >= 30"),
        ({"channels": 30}, "`channels` must be 1 to 19"),
        ({"channels": ["O1", "O1"]}, "distinct channel names"),
        ({"seizures": (3, 1)}, "min <= max"),
        ({"seizures": 1.5}, "whole numbers"),
        ({"duration": 40.0, "seizure_duration": 20.0}, "no room for a seizure of 20.0 s"),
    ],
)
def test_bad_options_name_the_option_and_value(options, message):
    with pytest.raises(OptionError, match=message):
        eeg(**{"subjects": 1, **options})


def test_events_outside_their_recording_are_refused():
    import numpy as np

    from deeptoolbox.datasets import EEGEvent, EEGRecording
    from deeptoolbox.errors import DataError

    with pytest.raises(DataError, match=r"0 <= start < end .* start=30.0, end=20.0"):
        EEGEvent(30.0, 20.0)
    with pytest.raises(DataError, match=r"'r1': events \[\(50.0, 90.0\)\] end after the "
                                        r"recording \(60 s"):  # fmt: skip
        EEGRecording(np.zeros((60 * 128, 2), np.float32), 128.0, ("C3", "C4"),
                     (EEGEvent(50.0, 90.0),), "S01", "r1")  # fmt: skip
