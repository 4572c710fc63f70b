"""Two classifiers of signal windows, built from toolbox layers as editable, saveable
Networks: a raw-signal 1-D CNN + LSTM, and a 2-D CNN on scalograms."""

from __future__ import annotations

from collections.abc import Sequence

from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError
from deeptoolbox.network import Network

__all__ = ["cnn_lstm_classifier", "scalogram_cnn"]


def _count(where: str, name: str, value: object, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise OptionError(f"{where}: `{name}` must be an int >= {low}. Received: {name}={value!r}.")
    return value


def _classes(where: str, num_classes: int, classes: Sequence[str] | None) -> list[str] | None:
    _count(where, "num_classes", num_classes, 2)
    if classes is not None and len(classes) != num_classes:
        raise OptionError(
            f"{where}: `classes` must name {num_classes} classes (num_classes). Received "
            f"{len(classes)}: {list(classes)!r}."
        )
    return None if classes is None else [str(c) for c in classes]


def cnn_lstm_classifier(
    channels: int,
    num_classes: int = 2,
    *,
    filters: int = 16,
    hidden_units: int = 32,
    dropout: float = 0.2,
    classes: Sequence[str] | None = None,
) -> Network:
    """A raw-signal classifier of (N, T, C) windows: two 1-D convolution blocks (convolution,
    batch norm, ReLU, max pooling by 4) that learn rhythm and spike detectors and shorten the
    sequence 16 times, then an LSTM that reads what they found over time (its last step),
    dropout, a Dense layer and Softmax. The window length is free.

    Example:
        >>> import torch
        >>> net = cnn_lstm_classifier(8, 2, classes=["background", "seizure"])
        >>> net(torch.zeros(4, 256, 8)).shape, net.classes
        (torch.Size([4, 2]), ['background', 'seizure'])
    """
    where = "cnn_lstm_classifier"
    _count(where, "channels", channels)
    names = _classes(where, num_classes, classes)
    _count(where, "filters", filters)
    _count(where, "hidden_units", hidden_units)
    blocks = []
    for stage, (width, kernel) in enumerate([(filters, 7), (2 * filters, 5)], 1):
        blocks += [L.Conv1d(width, kernel, padding="same", name=f"conv{stage}"),
                   L.BatchNorm(name=f"bn{stage}"), L.ReLU(name=f"relu{stage}"),
                   L.MaxPool1d(4, name=f"pool{stage}")]  # fmt: skip
    net = Network(
        [L.SequenceInput(channels, name="input"), *blocks,
         L.LSTM(hidden_units, output_mode="last", name="lstm"),
         L.Dropout(dropout, name="dropout"), L.Dense(num_classes, name="fc"),
         L.Softmax(name="softmax")],
        classes=names, name="cnn_lstm",
    )  # fmt: skip
    return net


def scalogram_cnn(
    input_size: Sequence[int],
    num_classes: int = 2,
    *,
    filters: int = 16,
    dropout: float = 0.2,
    classes: Sequence[str] | None = None,
) -> Network:
    """A 2-D CNN on scalograms (or spectrograms) of windows, input (C, F, K): channels as
    image channels, frequencies as rows, time as columns (MATLAB's scalogram -> CNN
    workflow). Three convolution blocks (3x3, batch norm, ReLU; max pooling by 2 after the
    first two), global average pooling, dropout, Dense and Softmax.

    Example:
        >>> import torch
        >>> net = scalogram_cnn((8, 24, 32), 2)
        >>> net(torch.zeros(3, 8, 24, 32)).shape
        torch.Size([3, 2])
    """
    where = "scalogram_cnn"
    size = tuple(input_size) if isinstance(input_size, Sequence) else ()
    if len(size) != 3 or not all(isinstance(v, int) and v >= 4 for v in size):
        raise OptionError(
            f"{where}: `input_size` must be (channels, frequencies, time columns), each an int "
            f">= 4, e.g. (8, 24, 32). Received: input_size={input_size!r}."
        )
    names = _classes(where, num_classes, classes)
    _count(where, "filters", filters)
    layers_: list = [L.ImageInput(size, name="input")]
    for stage, width in enumerate([filters, 2 * filters, 4 * filters], 1):
        layers_ += [L.Conv2d(width, 3, padding="same", name=f"conv{stage}"),
                    L.BatchNorm(name=f"bn{stage}"), L.ReLU(name=f"relu{stage}")]  # fmt: skip
        if stage < 3:
            layers_.append(L.MaxPool2d(2, name=f"pool{stage}"))
    layers_ += [L.GlobalAvgPool(name="gap"), L.Dropout(dropout, name="dropout"),
                L.Dense(num_classes, name="fc"), L.Softmax(name="softmax")]  # fmt: skip
    return Network(layers_, classes=names, name="scalogram_cnn")
