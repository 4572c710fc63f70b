"""Pictures of recordings (channels stacked, events shaded) and of time-frequency maps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deeptoolbox.errors import DataError, MissingDependencyError, OptionError
from deeptoolbox.signals._timefreq import TimeFrequencyMap

__all__ = ["plot_recording", "plot_time_frequency"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise MissingDependencyError(
            "The signal plots need matplotlib: pip install 'deeptoolbox[signals]'."
        ) from err
    return plt


def plot_recording(
    recording: Any,
    *,
    start: float = 0.0,
    seconds: float | None = None,
    channels: Sequence[str] | None = None,
    detections: Sequence[Any] = (),
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Draw a recording's channels one above the other (EEG montage style) from ``start`` for
    ``seconds``, its events shaded red and ``detections`` (objects with ``start``/``end`` in
    seconds, such as ``EventMetrics.detections``) marked blue under the traces. Returns the
    matplotlib Figure.

    Example:
        >>> from deeptoolbox import datasets
        >>> recording = datasets.eeg(subjects=1, recordings_per_subject=1, duration=60.0)[0]
        >>> figure = plot_recording(recording, seconds=20.0, channels=["Fp1", "O1"])
        >>> [t.get_text() for t in figure.axes[0].get_yticklabels()]
        ['Fp1', 'O1']
    """
    plt = _pyplot()
    rate = float(recording.sampling_rate)
    names = list(recording.channels)
    chosen = names if channels is None else list(channels)
    unknown = [c for c in chosen if c not in names]
    if unknown:
        raise DataError(
            f"plot_recording: no channel {', '.join(map(repr, unknown))} in recording "
            f"{getattr(recording, 'name', '')!r}; its channels are {names}."
        )
    signal = np.asarray(recording.signal)
    first = int(round(start * rate))
    last = signal.shape[0] if seconds is None else min(signal.shape[0], first + int(seconds * rate))
    if not 0 <= first < last:
        raise OptionError(
            f"plot_recording: `start` ({start} s) must be inside the recording "
            f"({signal.shape[0] / rate:g} s)."
        )
    part = signal[first:last, [names.index(c) for c in chosen]]
    spacing = 4.0 * float(np.median(part.std(axis=0))) or 1.0
    times = np.arange(first, last) / rate
    if ax is None:
        figure, ax = plt.subplots(figsize=(9, 0.45 * len(chosen) + 1.2))
    else:
        figure = ax.figure
    offsets = -spacing * np.arange(len(chosen))
    ax.plot(times, part + offsets, color="black", linewidth=0.5)
    for event in getattr(recording, "events", ()):
        ax.axvspan(event.start, event.end, color="tab:red", alpha=0.15, linewidth=0)
    bottom = offsets[-1] - spacing
    for found in detections:
        ax.plot([found.start, found.end], [bottom, bottom], color="tab:blue", linewidth=4)
    ax.set_yticks(offsets, chosen)
    ax.set_xlim(times[0], times[-1])
    ax.set_ylim(bottom - spacing * 0.5, spacing)
    ax.set_xlabel("time (s)")
    ax.set_title(title or f"{getattr(recording, 'name', 'recording')}: events shaded", fontsize=9)
    figure.tight_layout()
    return figure


def plot_time_frequency(
    tf: TimeFrequencyMap,
    *,
    index: int | None = None,
    channel: int = 0,
    ax: Any = None,
    title: str | None = None,
    log: bool = True,
) -> Any:
    """Draw one channel of a spectrogram or scalogram (of observation ``index`` for batched
    maps) as an image: time across, frequency up (log scale for scalograms), colour the
    value (``log10`` of it with ``log=True``). Returns the matplotlib Figure.

    Example:
        >>> import torch
        >>> from deeptoolbox.signals import scalogram
        >>> tf = scalogram(torch.randn(256, 2), 128.0, num_frequencies=8)
        >>> plot_time_frequency(tf, channel=1).axes[0].get_ylabel()
        'frequency (Hz)'
    """
    plt = _pyplot()
    values = tf.values.detach().cpu()
    if values.ndim == 4:
        if index is None:
            raise OptionError(
                f"plot_time_frequency: the map holds {values.shape[0]} observations "
                f"(values {tuple(values.shape)}); pick one with index=..."
            )
        values = values[index]
    if values.ndim != 3 or not 0 <= channel < values.shape[0]:
        raise OptionError(
            f"plot_time_frequency: `channel` must be in [0, {values.shape[0]}) for values of "
            f"shape {tuple(values.shape)}. Received: channel={channel!r}."
        )
    image = values[channel].numpy()
    image = np.log10(np.maximum(image, 1e-12)) if log else image
    if ax is None:
        figure, ax = plt.subplots(figsize=(5, 3))
    else:
        figure = ax.figure
    mesh = ax.pcolormesh(tf.times, tf.frequencies, image, shading="nearest", cmap="viridis")
    if tf.kind == "scalogram":
        ax.set_yscale("log")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    ax.set_title(title or tf.kind, fontsize=9)
    figure.colorbar(mesh, ax=ax, label=f"log10 {tf.kind}" if log else tf.kind)
    figure.tight_layout()
    return figure
