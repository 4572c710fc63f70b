"""Detection metrics clinicians use for seizure detection: per-window (segment) sensitivity
and specificity, and event-level detection (events found, latency, false alarms per hour)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from deeptoolbox.errors import DataError, OptionError
from deeptoolbox.signals._segments import SignalSegments

__all__ = ["SegmentMetrics", "segment_metrics", "Detection", "EventMetrics", "event_metrics"]


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def _as_labels(values: Any, where: str, name: str) -> np.ndarray:
    if isinstance(values, SignalSegments):
        values = values.labels
    array = values.detach().cpu().numpy() if torch.is_tensor(values) else np.asarray(values)
    if array.ndim == 2:  # scores (N, K): the most likely class
        array = array.argmax(axis=1)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iub"):
        raise DataError(
            f"{where}: `{name}` must be (N,) class indices or (N, K) scores. Received shape "
            f"{array.shape}, dtype {array.dtype}."
        )
    return array.astype(np.int64)


@dataclass(frozen=True)
class SegmentMetrics:
    """Per-window detection scores (the positive class is the event, e.g. "seizure").

    Attributes:
        sensitivity: TP / (TP + FN), the share of event windows found (recall).
        specificity: TN / (TN + FP), the share of background windows left alone.
        precision: TP / (TP + FP). accuracy: (TP + TN) / N. f1: 2 TP / (2 TP + FP + FN).
        true_positives, false_positives, true_negatives, false_negatives: the counts.

    Example:
        >>> m = segment_metrics([1, 0, 1, 0], [1, 1, 0, 0])
        >>> m.sensitivity, m.specificity, m.true_positives
        (0.5, 0.5, 1)
    """

    sensitivity: float
    specificity: float
    precision: float
    accuracy: float
    f1: float
    true_positives: int
    false_positives: int
    true_negatives: int
    false_negatives: int

    def __str__(self) -> str:
        return (
            f"sensitivity {self.sensitivity:.3f}, specificity {self.specificity:.3f}, "
            f"precision {self.precision:.3f}, accuracy {self.accuracy:.3f}, f1 {self.f1:.3f} "
            f"(TP {self.true_positives}, FP {self.false_positives}, TN {self.true_negatives}, "
            f"FN {self.false_negatives})"
        )


def segment_metrics(predicted: Any, truth: Any, *, positive: int = 1) -> SegmentMetrics:
    """Sensitivity, specificity, precision, accuracy and F1 of window labels, class
    ``positive`` against all others. ``predicted`` are class indices or (N, K) scores (the
    most likely class is taken), ``truth`` class indices or SignalSegments.

    Example:
        >>> import torch
        >>> scores = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
        >>> segment_metrics(scores, [0, 1, 1]).sensitivity
        0.5
    """
    columns = np.shape(predicted.detach().cpu() if torch.is_tensor(predicted) else predicted)
    if isinstance(truth, SignalSegments) and len(columns) == 2 and columns[1] != len(truth.classes):
        raise DataError(
            f"segment_metrics: `predicted` scores {columns[1]} classes, but the windows "
            f"have {len(truth.classes)}: {list(truth.classes)}. Give one score column "
            "per class of the windows (the network's output for them)."
        )
    guess = _as_labels(predicted, "segment_metrics", "predicted") == positive
    real = _as_labels(truth, "segment_metrics", "truth") == positive
    if guess.shape != real.shape:
        raise DataError(
            f"segment_metrics: `predicted` has {guess.size} windows, `truth` {real.size}; "
            "they must label the same windows."
        )
    tp, fp = int((guess & real).sum()), int((guess & ~real).sum())
    tn, fn = int((~guess & ~real).sum()), int((~guess & real).sum())
    return SegmentMetrics(_ratio(tp, tp + fn), _ratio(tn, tn + fp), _ratio(tp, tp + fp),
                          _ratio(tp + tn, real.size), _ratio(2 * tp, 2 * tp + fp + fn),
                          tp, fp, tn, fn)  # fmt: skip


@dataclass(frozen=True)
class Detection:
    """A detected event: a run of consecutive positive windows of one recording, from the
    first window's start to the last window's end (s), ``decided`` at the end of the
    ``min_consecutive``-th window (when an online detector would raise the alarm), and the
    true event it overlaps (its index in the recording's events) or None: a false alarm.

    Example:
        >>> Detection("S01-R1", 10.0, 24.0, 14.0, 0).duration
        14.0
    """

    recording: str
    start: float
    end: float
    decided: float
    event: int | None

    @property
    def duration(self) -> float:
        """``end - start`` in seconds."""
        return self.end - self.start


@dataclass(frozen=True)
class EventMetrics:
    """Event-level detection of the annotated events (see :func:`event_metrics`).

    Attributes:
        events: true events in the scored recordings. detected: how many were detected.
        sensitivity: ``detected / events``.
        latencies: (detected,) seconds from each detected event's onset to the alarm.
        mean_latency, median_latency: of ``latencies`` (NaN without detections).
        false_alarms: detections that overlap no true event.
        hours: total length of the scored recordings. false_alarms_per_hour: their ratio.
        detections: every :class:`Detection`, false alarms included.

    Example:
        >>> m = EventMetrics(2, 1, 0.5, np.array([3.0]), 3.0, 3.0, 1, 0.5, 2.0)
        >>> m.false_alarms_per_hour
        2.0
    """

    events: int
    detected: int
    sensitivity: float
    latencies: np.ndarray = field(repr=False)
    mean_latency: float
    median_latency: float
    false_alarms: int
    hours: float
    false_alarms_per_hour: float
    detections: tuple[Detection, ...] = field(default=(), repr=False)

    def __str__(self) -> str:
        return (
            f"{self.detected}/{self.events} events detected (sensitivity "
            f"{self.sensitivity:.3f}), latency mean {self.mean_latency:.1f} s median "
            f"{self.median_latency:.1f} s, {self.false_alarms} false alarms in "
            f"{self.hours:.2f} h ({self.false_alarms_per_hour:.2f}/h)"
        )


def _runs(flags: np.ndarray, starts: np.ndarray, step: float) -> list[tuple[int, int]]:
    """(first, last) positions of runs of True in windows sorted by start; windows more than
    one step apart break a run."""
    runs: list[tuple[int, int]] = []
    first = None
    for i, flag in enumerate(flags):
        if first is not None and (not flag or starts[i] - starts[i - 1] > step * 1.001):
            runs.append((first, i - 1))
            first = None
        if flag and first is None:
            first = i
    if first is not None:
        runs.append((first, len(flags) - 1))
    return runs


def _recording_detections(name, events, flags, starts, window, step, min_consecutive, label):
    wanted = [(k, e) for k, e in enumerate(events) if getattr(e, "label", label) == label]
    detections = []
    for first, last in _runs(flags, starts, step):
        if last - first + 1 < min_consecutive:
            continue
        start, end = float(starts[first]), float(starts[last] + window)
        decided = float(starts[first + min_consecutive - 1] + window)
        hit = next((k for k, e in wanted if start < e.end and end > e.start), None)
        detections.append(Detection(name, start, end, decided, hit))
    latencies = []
    for k, event in wanted:
        alarms = [d.decided for d in detections if d.event == k]
        if alarms:
            latencies.append(max(0.0, min(alarms) - event.start))
    return detections, latencies, len(wanted)


def event_metrics(
    predicted: Any,
    segments: SignalSegments,
    *,
    min_consecutive: int = 1,
    positive: int = 1,
) -> EventMetrics:
    """Score window predictions as an event detector over whole recordings.

    Consecutive windows predicted ``positive`` (class indices, or (N, K) scores) form one
    detection, from the first window's start to the last one's end; runs shorter than
    ``min_consecutive`` windows are dropped (a persistence rule against false alarms). A
    true event is detected when a detection overlaps it; its latency is from its onset to
    the end of the detection's ``min_consecutive``-th window (when the alarm goes off; 0 if
    that is before the onset). A detection that overlaps no event is a false alarm; the rate
    is per hour of the recordings ``segments`` come from (all of each recording's length).

    Example:
        >>> from deeptoolbox import datasets
        >>> from deeptoolbox.signals import window_recordings
        >>> recordings = datasets.eeg(subjects=1, recordings_per_subject=1, duration=120.0)
        >>> segments = window_recordings(recordings, 2.0, overlap=0.5)
        >>> perfect = event_metrics(segments.labels, segments)
        >>> perfect.sensitivity, perfect.false_alarms, perfect.mean_latency < 2.0
        (1.0, 0, True)
    """
    if not isinstance(segments, SignalSegments):
        raise OptionError(
            "event_metrics: `segments` must be the SignalSegments the predictions are for "
            f"(window_recordings makes them). Received: {type(segments).__name__}."
        )
    if (
        isinstance(min_consecutive, bool)
        or not isinstance(min_consecutive, int)
        or min_consecutive < 1
    ):
        raise OptionError(
            f"event_metrics: `min_consecutive` must be an int >= 1. Received: {min_consecutive!r}."
        )
    flags = _as_labels(predicted, "event_metrics", "predicted") == positive
    if flags.size != len(segments):
        raise DataError(
            f"event_metrics: `predicted` has {flags.size} windows, `segments` {len(segments)}."
        )
    label = segments.classes[positive] if positive < len(segments.classes) else "seizure"
    detections, latencies, events, seconds = [], [], 0, 0.0
    for k in np.unique(segments.recording):
        recording = segments.recordings[k]
        where = np.flatnonzero(segments.recording == k)
        where = where[np.argsort(segments.start[where], kind="stable")]
        name = str(getattr(recording, "name", f"recording {k}"))
        found, delays, count = _recording_detections(
            name, getattr(recording, "events", ()), flags[where], segments.start[where],
            segments.window, segments.step, min_consecutive, label,
        )  # fmt: skip
        detections += found
        latencies += delays
        events += count
        seconds += np.asarray(recording.signal).shape[0] / segments.sampling_rate
    latency = np.asarray(latencies, np.float64)
    false_alarms = sum(d.event is None for d in detections)
    hours = seconds / 3600.0
    return EventMetrics(
        events, len(latency), _ratio(len(latency), events), latency,
        float(latency.mean()) if latency.size else float("nan"),
        float(np.median(latency)) if latency.size else float("nan"),
        false_alarms, hours, _ratio(false_alarms, hours) if hours else float("nan"),
        tuple(detections),
    )  # fmt: skip
