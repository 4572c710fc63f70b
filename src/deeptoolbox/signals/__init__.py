"""Signal classification, EEG-style: recordings cut into labelled windows, per-channel
normalization, time-frequency maps (spectrogram, Morlet scalogram), class weights for rare
events, window- and event-level detection metrics, and two classifiers (a raw-signal 1-D
CNN + LSTM and a scalogram 2-D CNN). See docs/signals.md.

Example:
    >>> from deeptoolbox import datasets, signals
    >>> recordings = datasets.eeg(subjects=1, recordings_per_subject=1, duration=60.0)
    >>> segments = signals.window_recordings(recordings, window=2.0, overlap=0.5)
    >>> segments.count_each_label()["background"] > segments.count_each_label()["seizure"]
    True
"""

# --- EEG-style signal classification (issue 19 item 3) ---
from deeptoolbox.signals._metrics import Detection as Detection
from deeptoolbox.signals._metrics import EventMetrics as EventMetrics
from deeptoolbox.signals._metrics import SegmentMetrics as SegmentMetrics
from deeptoolbox.signals._metrics import event_metrics as event_metrics
from deeptoolbox.signals._metrics import segment_metrics as segment_metrics
from deeptoolbox.signals._models import cnn_lstm_classifier as cnn_lstm_classifier
from deeptoolbox.signals._models import scalogram_cnn as scalogram_cnn
from deeptoolbox.signals._normalize import ChannelNormalizer as ChannelNormalizer
from deeptoolbox.signals._plots import plot_recording as plot_recording
from deeptoolbox.signals._plots import plot_time_frequency as plot_time_frequency
from deeptoolbox.signals._segments import SignalSegments as SignalSegments
from deeptoolbox.signals._segments import window_recordings as window_recordings
from deeptoolbox.signals._timefreq import TimeFrequencyMap as TimeFrequencyMap
from deeptoolbox.signals._timefreq import morlet_frequencies as morlet_frequencies
from deeptoolbox.signals._timefreq import scalogram as scalogram
from deeptoolbox.signals._timefreq import spectrogram as spectrogram
from deeptoolbox.signals._weights import class_weights as class_weights
from deeptoolbox.signals._weights import count_each_label as count_each_label

__all__ = [
    "window_recordings", "SignalSegments", "ChannelNormalizer",
    "spectrogram", "scalogram", "morlet_frequencies", "TimeFrequencyMap",
    "count_each_label", "class_weights",
    "segment_metrics", "SegmentMetrics", "event_metrics", "EventMetrics", "Detection",
    "cnn_lstm_classifier", "scalogram_cnn", "plot_recording", "plot_time_frequency",
]  # fmt: skip
