"""EEG-like recordings with seizure-like events, generated from a seed (issue 19 item 3).

Each recording is a sum of what a scalp EEG shows (amplitudes in microvolts):

- background activity with a 1/f^beta power spectrum (beta per subject, 1.0-1.8), partly
  shared between channels (volume conduction);
- an alpha rhythm (8-12 Hz, per subject) whose amplitude waxes and wanes, strongest over the
  occipital and parietal channels;
- eye blinks: slow large deflections on the frontal polar channels (Fp1, Fp2, F7, F8), a
  high-amplitude artefact that is *not* a seizure;
- seizure-like events: rhythmic spike-and-wave discharges at about 3 Hz (absence-like,
  slowing by up to 20 % during the event) that start at a focus channel, spread to other
  channels with delays of up to 2 s, grow over a short onset ramp (0.3-1 s: the abrupt
  onset of absence seizures) and fade at offset.

Every recording draws from its own generator seeded by ``(seed, subject, recording)``, so
asking for more subjects or recordings leaves the earlier ones unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from deeptoolbox.errors import DataError, OptionError

__all__ = ["EEG_CHANNELS", "EEGEvent", "EEGRecording", "eeg"]

# The 19 electrodes of the international 10-20 system (old temporal names T3-T6).
EEG_CHANNELS = ("Fp1", "Fp2", "C3", "C4", "T3", "T4", "O1", "O2", "F3", "F4", "P3", "P4",
                "F7", "F8", "T5", "T6", "Fz", "Cz", "Pz")  # fmt: skip
_ALPHA_WEIGHT = {"O": 1.0, "P": 0.8, "T": 0.45, "C": 0.4, "F": 0.2}  # by the name's region
_BLINK_WEIGHT = {"Fp1": 1.0, "Fp2": 1.0, "F7": 0.45, "F8": 0.45, "F3": 0.3, "F4": 0.3, "Fz": 0.3}


@dataclass(frozen=True)
class EEGEvent:
    """One annotated event of a recording: ``start`` and ``end`` in seconds from the
    recording's start, the ``label`` ("seizure") and the ``channels`` it involves, in the
    order the discharge reached them (the onset channel first).

    Example:
        >>> event = EEGEvent(12.0, 30.5, "seizure", ("T3", "C3"))
        >>> event.duration
        18.5
    """

    start: float
    end: float
    label: str = "seizure"
    channels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise DataError(
                f"EEGEvent: an event needs 0 <= start < end (seconds). Received: start="
                f"{self.start!r}, end={self.end!r} ({self.label!r})."
            )

    @property
    def duration(self) -> float:
        """``end - start`` in seconds."""
        return self.end - self.start


@dataclass(frozen=True)
class EEGRecording:
    """A multi-channel recording: ``signal`` float32 (T, C) in microvolts (time first, as the
    toolbox's sequences), its ``sampling_rate`` (Hz), ``channels`` (names, one per column),
    the annotated ``events`` and the ``subject`` and ``name`` it belongs to.

    Example:
        >>> recording = eeg(subjects=1, recordings_per_subject=1, duration=60.0)[0]
        >>> recording.signal.shape, recording.sampling_rate, recording.name
        ((7680, 8), 128.0, 'S01-R1')
        >>> bool(recording.label_mask().any())  # samples inside a seizure
        True
    """

    signal: np.ndarray = field(repr=False)
    sampling_rate: float
    channels: tuple[str, ...]
    events: tuple[EEGEvent, ...]
    subject: str
    name: str

    def __post_init__(self) -> None:
        duration = self.signal.shape[0] / self.sampling_rate
        late = [e for e in self.events if e.end > duration + 1e-9]
        if late:
            raise DataError(
                f"EEGRecording '{self.name}': events {[(e.start, e.end) for e in late]} end after "
                f"the recording ({duration:g} s, {self.signal.shape[0]} samples at "
                f"{self.sampling_rate:g} Hz)."
            )

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.signal.shape[0] / self.sampling_rate

    def label_mask(self, label: str = "seizure") -> np.ndarray:
        """(T,) bool: True for the samples inside an event with this ``label``."""
        mask = np.zeros(self.signal.shape[0], bool)
        for event in self.events:
            if event.label == label:
                first = int(round(event.start * self.sampling_rate))
                mask[first : int(round(event.end * self.sampling_rate))] = True
        return mask


def _check_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise OptionError(f"eeg: `{name}` must be an int >= {low}. Received: {name}={value!r}.")
    return int(value)


def _check_range(name: str, value: object, low: float, example: str) -> tuple[float, float]:
    pair = (
        (value, value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    )
    if (
        not isinstance(pair, tuple | list)
        or len(pair) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair)
        or not low <= pair[0] <= pair[1]
    ):
        raise OptionError(
            f"eeg: `{name}` must be a number >= {low} or a (min, max) pair with "
            f"{low} <= min <= max, e.g. {example}. Received: {name}={value!r}."
        )
    return float(pair[0]), float(pair[1])


def _channel_names(channels: int | Sequence[str]) -> tuple[str, ...]:
    if isinstance(channels, int | np.integer) and not isinstance(channels, bool):
        if not 1 <= channels <= len(EEG_CHANNELS):
            raise OptionError(
                f"eeg: `channels` must be 1 to {len(EEG_CHANNELS)} (the 10-20 electrodes "
                f"{', '.join(EEG_CHANNELS)}) or a list of names. Received: channels={channels}."
            )
        return EEG_CHANNELS[: int(channels)]
    names = tuple(channels) if isinstance(channels, Sequence) else ()
    if (
        not names
        or not all(isinstance(n, str) and n for n in names)
        or len(set(names)) < len(names)
    ):
        raise OptionError(
            "eeg: `channels` must be a number of 10-20 electrodes or a list of distinct channel "
            f"names, e.g. ['Fp1', 'Fp2', 'O1', 'O2']. Received: channels={channels!r}."
        )
    return names


def _region_weight(name: str) -> float:
    return next((w for prefix, w in _ALPHA_WEIGHT.items() if name.startswith(prefix)), 0.4)


def _pink_noise(rng: np.random.Generator, t: int, channels: int, rate: float, beta: float):
    """(t, channels) noise with power ~ 1/f^beta above 0.5 Hz, unit standard deviation."""
    spectrum = rng.normal(size=(t // 2 + 1, channels)) + 1j * rng.normal(
        size=(t // 2 + 1, channels)
    )
    frequency = np.maximum(np.fft.rfftfreq(t, 1.0 / rate), 0.5)
    spectrum *= frequency[:, None] ** (-beta / 2)
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n=t, axis=0)
    return noise / noise.std(axis=0, keepdims=True)


def _smooth_positive(rng: np.random.Generator, t: int, rate: float, seconds: float) -> np.ndarray:
    """A slowly varying positive envelope around 1 (log-normal, correlated over ``seconds``)."""
    width = max(1, int(seconds * rate))
    kernel = np.hanning(2 * width + 1)
    slow = np.convolve(rng.normal(size=t + 2 * width), kernel / np.sqrt((kernel**2).sum()), "valid")
    return np.exp(0.5 * slow[:t] - 0.125)


def _spike_wave(times: np.ndarray, start: float, end: float, f0: float, slowing: float):
    """The spike-and-wave train of one event at ``times`` (s): unit spike amplitude, cycle
    frequency falling from ``f0`` to ``f0 * (1 - slowing)``. Returns (values, cycle starts)."""
    cycles, at = [], start
    while at < end:
        cycles.append(at)
        at += 1.0 / (f0 * (1.0 - slowing * (at - start) / max(end - start, 1e-9)))
    values = np.zeros_like(times)
    for c in cycles:
        period = 1.0 / f0
        near = (times > c - 0.1) & (times < c + period)
        dt = times[near] - c
        spike = -np.exp(-0.5 * (dt / 0.018) ** 2)  # sharp surface-negative spike (~40 ms)
        wave = 0.55 * np.exp(-0.5 * ((dt - 0.42 * period) / (0.16 * period)) ** 2)  # slow wave
        values[near] += spike + wave
    return values


def _ramp(times: np.ndarray, start: float, end: float, rise: float, fall: float) -> np.ndarray:
    up = np.clip((times - start) / rise, 0.0, 1.0)
    down = np.clip((end - times) / fall, 0.0, 1.0)
    return np.sin(0.5 * np.pi * up) ** 2 * np.sin(0.5 * np.pi * down) ** 2


def _place_events(rng, count: int, duration: float, lengths: tuple[float, float]):
    """Non-overlapping (start, end) times, 10 s from either edge and 20 s apart."""
    placed: list[tuple[float, float]] = []
    for _ in range(200 * max(count, 1)):
        if len(placed) == count:
            break
        length = rng.uniform(*lengths)
        if duration - 20.0 - length <= 0.0:
            continue
        start = rng.uniform(10.0, duration - 10.0 - length)
        if all(start > e + 20.0 or start + length < s - 20.0 for s, e in placed):
            placed.append((start, start + length))
    return sorted(placed)


@dataclass(frozen=True)
class _Subject:
    alpha_frequency: float
    alpha_amplitude: float
    beta: float
    background: float
    spike_wave_frequency: float
    focus: int


def _subject(seed: int, index: int, channels: int) -> _Subject:
    rng = np.random.default_rng([seed, index, 0])
    return _Subject(
        alpha_frequency=rng.uniform(8.5, 11.5),
        alpha_amplitude=rng.uniform(10.0, 25.0),
        beta=rng.uniform(1.0, 1.8),
        background=rng.uniform(15.0, 30.0),
        spike_wave_frequency=rng.uniform(2.6, 3.6),
        focus=int(rng.integers(channels)),
    )


def _recording(
    seed, subject_index, recording_index, names, rate, duration, options
) -> EEGRecording:
    seizures, seizure_seconds, amplitude = options
    who = _subject(seed, subject_index, len(names))
    rng = np.random.default_rng([seed, subject_index, recording_index + 1])
    t, c = int(round(duration * rate)), len(names)
    times = np.arange(t) / rate
    noise = _pink_noise(rng, t, c, rate, who.beta)
    shared = _pink_noise(rng, t, 1, rate, who.beta)
    x = who.background * (0.8 * noise + 0.6 * shared)
    drift = 0.3 * np.cumsum(rng.normal(size=t)) / rate
    phase = 2 * np.pi * np.cumsum(who.alpha_frequency + 0.4 * np.tanh(drift)) / rate
    envelope = _smooth_positive(rng, t, rate, 1.5)
    weights = np.array([_region_weight(n) for n in names])
    offsets = rng.normal(0.0, 0.3, size=c)
    x += who.alpha_amplitude * envelope[:, None] * weights * np.sin(phase[:, None] + offsets)
    for blink in np.cumsum(rng.exponential(5.0, size=int(duration / 2) + 4)):  # ~0.2 per s
        if blink >= duration:
            break
        shape = np.exp(-0.5 * ((times - blink) / rng.uniform(0.06, 0.12)) ** 2)
        size = rng.uniform(60.0, 120.0)
        for k, name in enumerate(names):
            x[:, k] += size * _BLINK_WEIGHT.get(name, 0.0) * shape
    count = int(rng.integers(seizures[0], seizures[1] + 1))
    events = []
    for start, end in _place_events(rng, count, duration, seizure_seconds):
        spread = rng.permutation([k for k in range(c) if k != who.focus])
        reached = [who.focus, *spread[: int(rng.integers(max(1, c // 3), c))]]
        delays = np.concatenate([[0.0], np.sort(rng.uniform(0.2, 2.0, size=len(reached) - 1))])
        f0 = who.spike_wave_frequency * rng.uniform(0.9, 1.1)
        train = _spike_wave(times, start, end, f0, rng.uniform(0.05, 0.2))
        size = rng.uniform(*amplitude)
        for k, delay in zip(reached, delays, strict=True):
            ramp = _ramp(times, start + delay, end, rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.0))
            x[:, k] += size * rng.uniform(0.6, 1.0) * ramp * train
        events.append(EEGEvent(round(start, 3), round(end, 3), "seizure",
                               tuple(names[k] for k in reached)))  # fmt: skip
    subject = f"S{subject_index + 1:02d}"
    return EEGRecording(x.astype(np.float32), float(rate), names, tuple(events), subject,
                        f"{subject}-R{recording_index + 1}")  # fmt: skip


def eeg(
    subjects: int = 4,
    *,
    recordings_per_subject: int = 2,
    duration: float = 300.0,
    sampling_rate: float = 128.0,
    channels: int | Sequence[str] = 8,
    seizures: int | tuple[int, int] = (1, 3),
    seizure_duration: float | tuple[float, float] = (10.0, 40.0),
    seizure_amplitude: float | tuple[float, float] = (60.0, 150.0),
    seed: int = 0,
) -> list[EEGRecording]:
    """Multi-channel EEG-like recordings with annotated seizure-like events, for seizure
    detection (see the module docstring for what is in them).

    Returns ``subjects * recordings_per_subject`` :class:`EEGRecording` objects, subject by
    subject. ``channels`` is a number of 10-20 electrodes (``EEG_CHANNELS[:channels]``, the
    default 8: Fp1, Fp2, C3, C4, T3, T4, O1, O2) or a list of names. ``seizures`` (per
    recording), ``seizure_duration`` (s) and ``seizure_amplitude`` (the spike's peak in
    microvolts, the background's standard deviation being 15-30) are fixed or (min, max)
    ranges. A subject keeps its alpha frequency, background spectrum, spike-wave frequency
    and seizure focus in all its recordings. The same ``seed`` gives the same data.

    Example:
        >>> recordings = eeg(subjects=2, recordings_per_subject=1, duration=120.0, seed=3)
        >>> [(r.name, r.signal.shape, len(r.events) >= 1) for r in recordings]
        [('S01-R1', (15360, 8), True), ('S02-R1', (15360, 8), True)]
        >>> event = recordings[0].events[0]
        >>> event.label, 10.0 <= event.duration <= 40.0
        ('seizure', True)
    """
    subjects = _check_int("subjects", subjects, 1)
    per_subject = _check_int("recordings_per_subject", recordings_per_subject, 1)
    duration = _check_range("duration", duration, 30.0, "duration=300.0")[0]
    rate = _check_range("sampling_rate", sampling_rate, 32.0, "sampling_rate=128.0")[0]
    names = _channel_names(channels)
    count = _check_range("seizures", seizures, 0, "seizures=(1, 3)")
    if count != tuple(map(int, count)):
        raise OptionError(
            f"eeg: `seizures` must be whole numbers. Received: seizures={seizures!r}."
        )
    lengths = _check_range("seizure_duration", seizure_duration, 2.0, "seizure_duration=(10, 40)")
    if count[1] > 0 and duration < lengths[0] + 30.0:
        raise OptionError(
            f"eeg: a recording of {duration} s has no room for a seizure of {lengths[0]} s or "
            "more (10 s are kept free at each end). Give a longer `duration` or a shorter "
            f"`seizure_duration`. Received: duration={duration}, seizure_duration={seizure_duration!r}."
        )
    amplitude = _check_range("seizure_amplitude", seizure_amplitude, 0.0, "(60.0, 150.0)")
    options = ((int(count[0]), int(count[1])), lengths, amplitude)
    return [
        _recording(seed, s, r, names, rate, duration, options)
        for s in range(subjects)
        for r in range(per_subject)
    ]
