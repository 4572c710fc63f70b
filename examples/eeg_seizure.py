"""Seizure detection in EEG-like recordings: a raw-signal 1-D CNN + LSTM against a
scalogram 2-D CNN, scored on subjects neither model saw.

The workflow of MATLAB's EEG / signal classification examples, on data the toolbox
generates (``datasets.eeg``: 1/f background, alpha rhythm, eye blinks and ~3 Hz spike-wave
seizures that spread over channels):

1. generate recordings of several subjects and hold out the last subjects for testing;
2. cut every recording into 2 s windows with 50 % overlap, labelled "seizure" when at least
   half the window lies in an annotated seizure (``signals.window_recordings``);
3. fit a per-channel z-score on the training windows only (``signals.ChannelNormalizer``)
   and weight the rare seizure class in the loss (``signals.class_weights``);
4. train ``signals.cnn_lstm_classifier`` on the raw windows and ``signals.scalogram_cnn`` on
   their Morlet scalograms (``signals.scalogram``), both with ``train``;
5. score the held-out windows (``signals.segment_metrics``: sensitivity, specificity) and the
   held-out recordings as an event detector (``signals.event_metrics``: events detected,
   latency, false alarms per hour).

Writes ``eeg-recording.png`` (a held-out recording with its seizures and both models'
detections), ``eeg-scalogram.png`` (background and seizure windows and their scalograms) and
``eeg-comparison.png`` (the two models' scores) into ``--output`` (printed at the end);
``--subjects``, ``--duration``, ``--epochs``... reduce the run (the smoke test).
Run: ``python examples/eeg_seizure.py`` (a few minutes on two CPU cores).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from deeptoolbox import datasets, predict, signals, train
from deeptoolbox.training import TrainingOptions, loss_function

RATE = 128.0


def scalogram_images(segments: signals.SignalSegments) -> torch.Tensor:
    """log(1 + |CWT|) of every window: (N, C, 24 frequencies 1.5-40 Hz, 32 columns)."""
    tf = signals.scalogram(segments, segments.sampling_rate, frequency_range=(1.5, 40.0),
                           num_frequencies=24, hop_length=8)  # fmt: skip
    return torch.log1p(tf.values)


def fit(net, inputs, labels, weights, args, learn_rate):
    options = TrainingOptions(solver="adam", initial_learn_rate=learn_rate,
                              max_epochs=args.epochs, mini_batch_size=64, shuffle="every-epoch",
                              verbose=False, seed=0)  # fmt: skip
    loss = loss_function("crossentropy", class_weights=weights)
    return train(net, (inputs, labels), loss, options)


def scores(net, inputs) -> torch.Tensor:
    return predict(net, inputs, batch_size=256)


def draw_recording(path: Path, recording, detections: dict, seconds: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(9, 4.2))
    first = max(0.0, recording.events[0].start - seconds / 3) if recording.events else 0.0
    signals.plot_recording(recording, start=first, seconds=seconds, ax=ax,
                           title=f"held-out {recording.name}: seizures shaded; detections "
                                 f"below: {' (blue), '.join(detections)} (orange)")  # fmt: skip
    bottom = ax.get_ylim()[0]
    step = (ax.get_ylim()[1] - bottom) / 30
    for row, (_, found) in enumerate(detections.items()):
        for d in found:
            if d.recording == recording.name:
                y = bottom + step * (1 + 1.5 * row)
                ax.plot([d.start, d.end], [y, y], color=f"C{row}", linewidth=3)
    ax.set_xlim(first, first + seconds)
    figure.savefig(path, dpi=80)
    plt.close(figure)


def draw_scalograms(path: Path, segments, images):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tf = signals.scalogram(segments.data[:1], RATE, frequency_range=(1.5, 40.0),
                           num_frequencies=24, hop_length=8)  # fmt: skip
    picks = {"background": int(np.flatnonzero(segments.event_fraction == 0)[0]),
             "seizure": int(np.flatnonzero(segments.event_fraction == 1)[0])}  # fmt: skip
    channel = segments.channels.index(segments.recordings[
        segments.recording[picks["seizure"]]].events[0].channels[0])  # fmt: skip
    figure, axes = plt.subplots(2, 2, figsize=(9, 5))
    time_axis = np.arange(segments.data.shape[1]) / RATE
    for col, (name, i) in enumerate(picks.items()):
        axes[0, col].plot(time_axis, segments.data[i, :, channel], color="black", linewidth=0.7)
        axes[0, col].set_title(f"{name} window, channel {segments.channels[channel]}", fontsize=9)
        axes[0, col].set_xlim(0, time_axis[-1])
        mesh = axes[1, col].pcolormesh(tf.times, tf.frequencies, images[i, channel],
                                       shading="nearest", cmap="viridis")  # fmt: skip
        axes[1, col].set_yscale("log")
        axes[1, col].set_xlabel("time (s)")
        axes[1, col].set_ylabel("frequency (Hz)")
        figure.colorbar(mesh, ax=axes[1, col], label="log(1 + |CWT|)")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def draw_comparison(path: Path, results: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["sensitivity", "specificity", "event sensitivity"]
    figure, ax = plt.subplots(figsize=(6, 3.2))
    width = 0.8 / len(results)
    for k, (model, r) in enumerate(results.items()):
        values = [r["segment"].sensitivity, r["segment"].specificity, r["event"].sensitivity]
        bars = ax.bar(np.arange(3) + k * width, values, width, label=model)
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.axhline(0.9, color="gray", linestyle="--", linewidth=0.8)
    ax.set_xticks(np.arange(3) + width * (len(results) - 1) / 2, names)
    ax.set_ylim(0, 1.1)
    ax.set_title("held-out subjects", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--test-subjects", type=int, default=2)
    parser.add_argument("--recordings", type=int, default=2, help="per subject")
    parser.add_argument("--duration", type=float, default=300.0, help="seconds per recording")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--output", default="eeg-output")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    recordings = datasets.eeg(args.subjects, recordings_per_subject=args.recordings,
                              duration=args.duration, sampling_rate=RATE, seed=0)  # fmt: skip
    segments = signals.window_recordings(recordings, window=2.0, overlap=0.5)
    held_out = [f"S{s + 1:02d}" for s in range(args.subjects - args.test_subjects, args.subjects)]
    is_test = np.isin(segments.subjects, held_out)
    normalizer = signals.ChannelNormalizer.fit(segments.subset(~is_test))
    segments = normalizer(segments)
    train_set, test_set = segments.subset(~is_test), segments.subset(is_test)
    weights = signals.class_weights(train_set)
    images = scalogram_images(segments)
    train_images, test_images = images[torch.as_tensor(~is_test)], images[torch.as_tensor(is_test)]

    channels = len(segments.channels)
    models = {
        "CNN+LSTM (raw)": (signals.cnn_lstm_classifier(channels, 2, classes=segments.classes),
                           train_set.data, test_set.data, 3e-3),
        "scalogram CNN": (signals.scalogram_cnn(tuple(images.shape[1:]), 2,
                                                classes=segments.classes),
                          train_images, test_images, 3e-3),
    }  # fmt: skip
    results = {}
    for name, (net, train_inputs, test_inputs, rate) in models.items():
        began = time.perf_counter()
        fit(net, train_inputs, train_set.labels, weights, args, rate)
        predicted = scores(net, test_inputs)
        results[name] = {
            "segment": signals.segment_metrics(predicted, test_set),
            "event": signals.event_metrics(predicted, test_set, min_consecutive=2),
            "seconds": round(time.perf_counter() - began, 1),
        }
        print(f"{name}: {results[name]['segment']}")
        print(f"{name}: {results[name]['event']}  ({results[name]['seconds']} s)")

    test_recording = next(r for r in recordings if r.subject == held_out[0] and r.events)
    draw_recording(output / "eeg-recording.png", test_recording,
                   {n: r["event"].detections for n, r in results.items()},
                   seconds=min(90.0, args.duration))  # fmt: skip
    draw_scalograms(output / "eeg-scalogram.png", test_set, test_images)
    draw_comparison(output / "eeg-comparison.png", results)
    summary = {
        "train_windows": segments.subset(~is_test).count_each_label(),
        "test_windows": test_set.count_each_label(),
        "class_weights": [round(w, 3) for w in weights],
        "models": {
            name: {
                "sensitivity": r["segment"].sensitivity,
                "specificity": r["segment"].specificity,
                "event_sensitivity": r["event"].sensitivity,
                "mean_latency": r["event"].mean_latency,
                "false_alarms_per_hour": r["event"].false_alarms_per_hour,
                "seconds": r["seconds"],
            }
            for name, r in results.items()
        },
        "seconds": round(time.perf_counter() - start, 1),
        "output": output,
    }
    best = max(summary["models"].values(),
               key=lambda m: min(m["sensitivity"], m["specificity"]))  # fmt: skip
    summary["best_sensitivity"] = best["sensitivity"]
    summary["best_specificity"] = best["specificity"]
    print({k: v for k, v in summary.items() if k != "models"})
    for name, m in summary["models"].items():
        print(name, {k: round(v, 3) if isinstance(v, float) and not math.isnan(v) else v
                     for k, v in m.items()})  # fmt: skip
    print(f"pictures written to {output.resolve()}/ ({summary['seconds']} s)")
    return summary


if __name__ == "__main__":
    main()
