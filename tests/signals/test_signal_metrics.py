"""Class weights against scikit-learn, segment metrics against a confusion matrix, and
event-level detection on hand-made predictions with known detections, latencies and false
alarms."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix
from sklearn.utils.class_weight import compute_class_weight

from deeptoolbox.datasets import EEGEvent
from deeptoolbox.errors import DataError, OptionError
from deeptoolbox.signals import (
    class_weights,
    count_each_label,
    event_metrics,
    segment_metrics,
    window_recordings,
)
from deeptoolbox.training import loss_function


def test_class_weights_balance_the_classes_as_scikit_learn_does():
    labels = np.random.default_rng(0).choice(3, size=500, p=[0.7, 0.2, 0.1])
    weights = class_weights(labels, ["a", "b", "c"])
    assert np.allclose(weights, compute_class_weight("balanced", classes=np.arange(3), y=labels))
    counts = np.bincount(labels)
    assert np.allclose(class_weights(labels, 3, "median-frequency"), np.median(counts) / counts)
    assert count_each_label(torch.as_tensor(labels), ["a", "b", "c"]) == dict(
        zip("abc", counts.tolist(), strict=True)
    )
    assert class_weights([0, 0, 2], 3) == [0.5, 0.0, 1.0]  # a class not there gets 0
    # the weighted loss: a seizure window counts as much as (n_background / n_seizure) others
    loss = loss_function("crossentropy", class_weights=class_weights([0, 0, 0, 1], 2))
    assert float(loss(torch.zeros(2, 2), torch.tensor([0, 1]))) == pytest.approx(np.log(2))
    with pytest.raises(DataError, match=r"class indices 0 to 1 .* labels from 0 to 2"):
        class_weights([0, 2], ["a", "b"])
    with pytest.raises(OptionError, match="`method` must be 'inverse-frequency'"):
        class_weights([0, 1], 2, method="balanced")
    with pytest.raises(DataError, match="1-D array of class indices"):
        count_each_label([0.5, 1.0])


def test_segment_metrics_equal_the_confusion_matrix():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, size=300)
    predicted = np.where(rng.random(300) < 0.8, truth, 1 - truth)
    (tn, fp), (fn, tp) = confusion_matrix(truth, predicted)
    m = segment_metrics(predicted, truth)
    assert (m.true_positives, m.false_positives, m.true_negatives, m.false_negatives) == (
        tp,
        fp,
        tn,
        fn,
    )
    assert m.sensitivity == pytest.approx(tp / (tp + fn))
    assert m.specificity == pytest.approx(tn / (tn + fp))
    assert m.precision == pytest.approx(tp / (tp + fp))
    assert m.f1 == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert m.accuracy == pytest.approx((tp + tn) / 300)
    scores = torch.nn.functional.one_hot(torch.as_tensor(predicted), 2).float()
    assert segment_metrics(scores, torch.as_tensor(truth)) == m
    assert "sensitivity" in str(m)
    with pytest.raises(DataError, match="`predicted` has 3 windows, `truth` 2"):
        segment_metrics([0, 1, 1], [0, 1])


@dataclass
class Recording:
    signal: np.ndarray
    events: tuple
    name: str = "R"
    sampling_rate: float = 1.0
    channels: tuple = ("x",)


@pytest.fixture
def segments():
    """Two recordings of 1 hour at 1 Hz, 10 s windows every 5 s."""
    first = Recording(np.zeros((3600, 1)), (EEGEvent(100.0, 160.0), EEGEvent(1000.0, 1030.0)), "A")
    second = Recording(np.zeros((3600, 1)), (EEGEvent(2000.0, 2100.0),), "B")
    return window_recordings([first, second], window=10.0, overlap=0.5)


def _predict(segments, intervals):
    """1 for the windows of (recording, start, end) whose start lies in [start, end)."""
    flags = np.zeros(len(segments), np.int64)
    for k, start, end in intervals:
        flags[(segments.recording == k) & (segments.start >= start) & (segments.start < end)] = 1
    return flags


def test_event_metrics_count_detections_latency_and_false_alarms(segments):
    predicted = _predict(segments, [(0, 110, 150), (0, 500, 510), (0, 700, 705), (1, 2020, 2090)])
    m = event_metrics(predicted, segments)
    assert (m.events, m.detected, m.sensitivity) == (3, 2, pytest.approx(2 / 3))
    # event at 100 s: the first window starts at 110 and ends (decides) at 120: 20 s latency
    # event at 2000 s: first window 2020 -> alarm at 2030
    assert m.latencies.tolist() == [20.0, 30.0] and m.mean_latency == 25.0
    assert m.false_alarms == 2 and m.hours == 2.0 and m.false_alarms_per_hour == 1.0
    assert [(d.recording, d.start, d.end, d.event) for d in m.detections] == [
        ("A", 110.0, 155.0, 0), ("A", 500.0, 515.0, None), ("A", 700.0, 710.0, None),
        ("B", 2020.0, 2095.0, 0),
    ]  # fmt: skip
    # a persistence rule of 3 windows drops the short false alarms and delays the alarms
    strict = event_metrics(predicted, segments, min_consecutive=3)
    assert strict.false_alarms == 0 and strict.detected == 2
    assert strict.latencies.tolist() == [30.0, 40.0]
    assert "2/3 events detected" in str(m)


def test_event_metrics_of_the_true_labels_find_every_event_without_false_alarms(segments):
    m = event_metrics(segments.labels, segments)
    assert m.detected == m.events == 3 and m.false_alarms == 0
    assert (m.latencies <= 10.0).all()  # within one window of the onset
    nothing = event_metrics(np.zeros(len(segments), np.int64), segments)
    assert nothing.detected == 0 and np.isnan(nothing.mean_latency)
    only_b = segments.subset(segments.recording == 1)
    assert event_metrics(only_b.labels, only_b).hours == 1.0  # only the scored recordings


def test_event_metrics_bad_input(segments):
    with pytest.raises(DataError, match="`predicted` has 3 windows, `segments` 1438"):
        event_metrics([0, 1, 0], segments)
    with pytest.raises(OptionError, match="`min_consecutive` must be an int >= 1"):
        event_metrics(segments.labels, segments, min_consecutive=0)
    with pytest.raises(OptionError, match="`segments` must be the SignalSegments"):
        event_metrics(segments.labels, segments.data)


def test_scores_for_another_number_of_classes_than_the_windows_are_refused():
    from deeptoolbox import datasets
    from deeptoolbox.errors import DataError
    from deeptoolbox.signals import window_recordings

    segments = window_recordings(datasets.eeg(subjects=1, recordings_per_subject=1,
                                              duration=60.0, seed=0))  # fmt: skip
    with pytest.raises(DataError, match=r"scores 3 classes, but the windows have 2"):
        segment_metrics(torch.rand(len(segments), 3), segments)
    assert segment_metrics(torch.rand(len(segments), 2), segments).true_positives >= 0
