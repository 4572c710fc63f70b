"""Recordings cut into labelled fixed-length windows (segments) with overlap."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from deeptoolbox.errors import DataError, OptionError

__all__ = ["SignalSegments", "window_recordings"]

CLASSES = ("background", "seizure")


class SignalSegments(Dataset):
    """Fixed-length windows of recordings with a label each: a torch ``Dataset`` whose items
    are ``(window (T, C) float32 tensor, label)``, ready for :func:`~deeptoolbox.train`.

    Attributes:
        data: float32 (N, T, C) tensor of the windows (time first, channels last).
        labels: int64 (N,) tensor: 1 (``classes[1]``, the event label) where at least
            ``min_event_fraction`` of the window lies inside an event, else 0.
        classes: ``("background", <event label>)``.
        event_fraction: (N,) share of each window inside an event.
        recording: (N,) index of each window's recording in ``recordings``.
        start: (N,) start time of each window in seconds from its recording's start.
        window, step: window length and step between window starts, in seconds.
        sampling_rate, channels: of the recordings (the channels kept, in order).
        recordings: the recordings the windows come from (their ``events`` and lengths score
            event-level detection, :func:`event_metrics`).

    Example:
        >>> from deeptoolbox import datasets
        >>> recordings = datasets.eeg(subjects=1, recordings_per_subject=1, duration=60.0)
        >>> segments = window_recordings(recordings, window=2.0, overlap=0.5)
        >>> len(segments), tuple(segments.data.shape[1:]), segments.classes
        (59, (256, 8), ('background', 'seizure'))
        >>> window, label = segments[0]
        >>> tuple(window.shape), int(label)
        ((256, 8), 0)
    """

    def __init__(self, data, labels, *, classes, event_fraction, recording, start, window,
                 step, sampling_rate, channels, recordings) -> None:  # fmt: skip
        self.data = data
        self.labels = labels
        self.classes = tuple(classes)
        self.event_fraction = np.asarray(event_fraction, np.float64)
        self.recording = np.asarray(recording, np.int64)
        self.start = np.asarray(start, np.float64)
        self.window = float(window)
        self.step = float(step)
        self.sampling_rate = float(sampling_rate)
        self.channels = tuple(channels)
        self.recordings = tuple(recordings)

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data[index], self.labels[index]

    def __repr__(self) -> str:
        counts = ", ".join(f"{c}: {n}" for c, n in self.count_each_label().items())
        return (
            f"SignalSegments({len(self)} windows of {self.window:g} s x {len(self.channels)} "
            f"channels from {len(set(self.recording.tolist()))} recordings; {counts})"
        )

    @property
    def subjects(self) -> np.ndarray:
        """(N,) the subject of each window's recording (for splits by subject)."""
        names = np.asarray([str(getattr(r, "subject", "")) for r in self.recordings], object)
        return names[self.recording] if len(self) else np.asarray([], object)

    @property
    def recording_names(self) -> np.ndarray:
        """(N,) the name of each window's recording."""
        names = np.asarray([_name(r, k) for k, r in enumerate(self.recordings)], object)
        return names[self.recording] if len(self) else np.asarray([], object)

    def count_each_label(self) -> dict[str, int]:
        """Windows per class (MATLAB's ``countEachLabel``)."""
        counts = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, counts, strict=True))

    def subset(self, selection: Any) -> SignalSegments:
        """The windows at ``selection``: indices, or a (N,) bool mask (e.g.
        ``segments.subset(segments.subjects != "S01")``)."""
        index = np.asarray(selection)
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise DataError(
                    f"SignalSegments.subset: a bool mask must have one value per window "
                    f"({len(self)}). Received a mask of shape {index.shape}."
                )
            index = np.flatnonzero(index)
        index = index.astype(np.int64).reshape(-1)
        if index.size and (index.min() < -len(self) or index.max() >= len(self)):
            raise DataError(
                f"SignalSegments.subset: indices must be in [0, {len(self)}). Received "
                f"indices from {index.min()} to {index.max()}."
            )
        return self.with_data(self.data[torch.as_tensor(index)], index)

    def with_data(self, data: torch.Tensor, index: Any = None) -> SignalSegments:
        """The same windows (or those at ``index``) with new ``data`` (normalized, say)."""
        keep = slice(None) if index is None else np.asarray(index)
        labels = self.labels if index is None else self.labels[torch.as_tensor(keep)]
        return SignalSegments(
            data, labels, classes=self.classes, event_fraction=self.event_fraction[keep],
            recording=self.recording[keep], start=self.start[keep], window=self.window,
            step=self.step, sampling_rate=self.sampling_rate, channels=self.channels,
            recordings=self.recordings,
        )  # fmt: skip


def _name(recording: Any, index: int) -> str:
    return str(getattr(recording, "name", f"recording {index}"))


def _as_recordings(recordings: Any) -> list[Any]:
    items = [recordings] if hasattr(recordings, "signal") else recordings
    if not isinstance(items, Sequence) or not items:
        raise OptionError(
            "window_recordings: `recordings` must be a recording or a non-empty list of them "
            "(objects with `signal` (T, C), `sampling_rate`, `channels` and `events`, such as "
            f"datasets.eeg() makes). Received: {type(recordings).__name__}."
        )
    for k, item in enumerate(items):
        missing = [a for a in ("signal", "sampling_rate", "channels") if not hasattr(item, a)]
        if missing:
            raise OptionError(
                f"window_recordings: recording {k} has no {', '.join(missing)}: a recording "
                f"needs `signal` (T, C), `sampling_rate` and `channels`. Received: "
                f"{type(item).__name__}."
            )
    return list(items)


def _channel_columns(recording: Any, k: int, channels: Sequence[str]) -> list[int]:
    names = list(recording.channels)
    signal = np.asarray(recording.signal)
    if signal.ndim != 2 or signal.shape[1] != len(names):
        raise DataError(
            f"window_recordings: recording {_name(recording, k)!r} must have a (T, C) signal "
            f"with one column per channel ({len(names)}: {names}). Received a signal of shape "
            f"{signal.shape}."
        )
    unknown = [c for c in channels if c not in names]
    if unknown:
        raise DataError(
            f"window_recordings: recording {_name(recording, k)!r} has no channel "
            f"{', '.join(map(repr, unknown))}. Its channels are {names}."
        )
    return [names.index(c) for c in channels]


def _check_window(window: Any, overlap: Any, min_event_fraction: Any) -> None:
    if isinstance(window, bool) or not isinstance(window, int | float) or window <= 0:
        raise OptionError(
            f"window_recordings: `window` must be a positive length in seconds, e.g. "
            f"window=2.0. Received: window={window!r}."
        )
    if isinstance(overlap, bool) or not isinstance(overlap, int | float) or not 0 <= overlap < 1:
        raise OptionError(
            "window_recordings: `overlap` must be the share of a window that the next one "
            f"overlaps, in [0, 1), e.g. overlap=0.5. Received: overlap={overlap!r}."
        )
    fraction = min_event_fraction
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction <= 1:
        raise OptionError(
            "window_recordings: `min_event_fraction` must be in (0, 1]: the share of a window "
            f"inside an event that makes it an event window. Received: {fraction!r}."
        )


def _event_mask(recording: Any, label: str, length: int, rate: float) -> np.ndarray:
    mask = np.zeros(length, bool)
    for event in getattr(recording, "events", ()):
        if getattr(event, "label", label) == label:
            first = max(0, int(round(event.start * rate)))
            mask[first : max(first, int(round(event.end * rate)))] = True
    return mask


def window_recordings(
    recordings: Any,
    window: float = 2.0,
    overlap: float = 0.5,
    *,
    channels: Sequence[str] | None = None,
    label: str = "seizure",
    min_event_fraction: float = 0.5,
) -> SignalSegments:
    """Cut recordings into windows of ``window`` seconds, each starting ``window * (1 -
    overlap)`` seconds after the previous one, labelled by their overlap with the events
    (MATLAB: ``buffer`` with an overlap, the labels of a ``signalMask``).

    A window is labelled ``label`` (class 1) when at least ``min_event_fraction`` of it lies
    inside an event with that label, else "background" (class 0); ``event_fraction`` keeps
    the share. ``channels`` picks (and orders) channels by name; by default the first
    recording's channels, which every recording must have. All recordings must share one
    sampling rate.

    Raises:
        OptionError: bad options. DataError: a signal that is not (T, C), an unknown channel,
        different sampling rates, or a window longer than a recording.

    Example:
        >>> from deeptoolbox import datasets
        >>> recordings = datasets.eeg(subjects=2, recordings_per_subject=1, duration=90.0)
        >>> segments = window_recordings(recordings, 4.0, overlap=0.75, channels=["O1", "O2"])
        >>> segments.data.shape, segments.step
        (torch.Size([174, 512, 2]), 1.0)
        >>> sorted(set(segments.subjects.tolist()))
        ['S01', 'S02']
    """
    _check_window(window, overlap, min_event_fraction)
    items = _as_recordings(recordings)
    rate = float(items[0].sampling_rate)
    names = list(items[0].channels) if channels is None else list(channels)
    if not names or not all(isinstance(c, str) for c in names):
        raise OptionError(
            f"window_recordings: `channels` must be a non-empty list of channel names. "
            f"Received: channels={channels!r}."
        )
    length = int(round(window * rate))
    hop = max(1, int(round(window * (1.0 - overlap) * rate)))
    pieces, labels, fractions, which, starts = [], [], [], [], []
    for k, recording in enumerate(items):
        if float(recording.sampling_rate) != rate:
            raise DataError(
                f"window_recordings: recording {_name(recording, k)!r} is sampled at "
                f"{recording.sampling_rate} Hz, the first at {rate} Hz; resample them to one "
                "rate first."
            )
        columns = _channel_columns(recording, k, names)
        signal = np.asarray(recording.signal, np.float32)[:, columns]
        if signal.shape[0] < length:
            raise DataError(
                f"window_recordings: `window` ({window} s, {length} samples) is longer than "
                f"recording {_name(recording, k)!r} ({signal.shape[0] / rate:g} s, "
                f"{signal.shape[0]} samples). Use a shorter window."
            )
        first = np.arange(0, signal.shape[0] - length + 1, hop)
        inside = _event_mask(recording, label, signal.shape[0], rate).astype(np.float64)
        share = np.concatenate([[0.0], np.cumsum(inside)])
        fraction = (share[first + length] - share[first]) / length
        pieces.append(np.lib.stride_tricks.sliding_window_view(signal, length, axis=0)[first])
        fractions.append(fraction)
        labels.append(fraction >= min_event_fraction - 1e-12)
        which.append(np.full(first.size, k))
        starts.append(first / rate)
    data = torch.from_numpy(np.ascontiguousarray(np.concatenate(pieces).transpose(0, 2, 1)))
    return SignalSegments(
        data, torch.from_numpy(np.concatenate(labels).astype(np.int64)),
        classes=("background", label), event_fraction=np.concatenate(fractions),
        recording=np.concatenate(which), start=np.concatenate(starts), window=length / rate,
        step=hop / rate, sampling_rate=rate, channels=names, recordings=items,
    )  # fmt: skip
