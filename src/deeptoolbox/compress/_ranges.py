"""Dynamic ranges of tensors: statistics over calibration data and the calibration methods.

Each tensor gets its minimum, maximum and a histogram (2048 bins over [min, max], from a
second pass over the data). A calibration method turns these into the range [low, high] that
int8 values will cover:

- ``"minmax"``: the observed minimum and maximum (nothing is clipped);
- ``"percentile"``: the ``percentile`` and ``100 - percentile`` percentiles (outliers clipped);
- ``"entropy"``: the clipping range whose 8-bit version of the histogram is closest to it in
  Kullback-Leibler divergence (TensorRT's method);
- ``"mse"``: the clipping range with the smallest expected squared quantization error
  (clipping error plus rounding error).

Candidate clipping ranges for entropy and MSE are ``[max(min, -t), min(max, t)]`` for
thresholds ``t`` up to the largest magnitude, so one-sided data (after a ReLU) keep 0 as
their low end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deeptoolbox.errors import OptionError

METHODS = ("minmax", "percentile", "entropy", "mse")
BINS = 2048
LEVELS = 256  # 8-bit


@dataclass
class TensorStatistics:
    """Minimum, maximum and histogram of one tensor over the calibration data."""

    minimum: float = np.inf
    maximum: float = -np.inf
    counts: np.ndarray | None = None
    edges: np.ndarray | None = None

    def observe_range(self, values: np.ndarray) -> None:
        if values.size:
            self.minimum = min(self.minimum, float(values.min()))
            self.maximum = max(self.maximum, float(values.max()))

    def observe_histogram(self, values: np.ndarray) -> None:
        low, high = self.minimum, self.maximum
        if high <= low:
            high = low + 1e-8
        counts, edges = np.histogram(values, bins=BINS, range=(low, high))
        if self.counts is None:
            self.counts, self.edges = counts.astype(np.float64), edges
        else:
            self.counts += counts


def check_method(method: str, where: str) -> str:
    if method not in METHODS:
        raise OptionError(
            f"{where}: `method` must be one of {', '.join(map(repr, METHODS))}. "
            f"Received: method={method!r}."
        )
    return method


def choose_range(stats: TensorStatistics, method: str, percentile: float = 99.99):
    """The range [low, high] of one tensor for a calibration method.

    Example:
        >>> values = np.concatenate([np.linspace(0, 1, 10000), [50.0]])  # one outlier
        >>> stats = TensorStatistics(); stats.observe_range(values); stats.observe_histogram(values)
        >>> choose_range(stats, "minmax")
        (0.0, 50.0)
        >>> low, high = choose_range(stats, "percentile"); high < 2
        True
    """
    if method == "minmax" or stats.counts is None or stats.maximum <= stats.minimum:
        return stats.minimum, stats.maximum
    if method == "percentile":
        return _percentile_range(stats, percentile)
    return _search_range(stats, _kl_divergence if method == "entropy" else _squared_error)


def _percentile_range(stats: TensorStatistics, percentile: float) -> tuple[float, float]:
    cumulative = np.cumsum(stats.counts) / stats.counts.sum()
    centers = (stats.edges[:-1] + stats.edges[1:]) / 2
    low_index = int(np.searchsorted(cumulative, 1 - percentile / 100))
    high_index = int(np.searchsorted(cumulative, percentile / 100))
    low = stats.minimum if low_index == 0 else float(centers[low_index])
    high = stats.maximum if high_index >= len(centers) - 1 else float(stats.edges[high_index + 1])
    return min(low, stats.minimum if low_index == 0 else low), high


def _candidates(stats: TensorStatistics) -> list[tuple[float, float]]:
    largest = max(abs(stats.minimum), abs(stats.maximum))
    thresholds = largest * np.linspace(1 / 128, 1, 128)
    ranges = {(max(stats.minimum, -t), min(stats.maximum, t)) for t in thresholds}
    return sorted((lo, hi) for lo, hi in ranges if hi > lo)


def _search_range(stats: TensorStatistics, cost) -> tuple[float, float]:
    best, best_cost = (stats.minimum, stats.maximum), np.inf
    for low, high in _candidates(stats):
        value = cost(stats, low, high)
        if value < best_cost - 1e-12:
            best, best_cost = (float(low), float(high)), value
    return best


def _squared_error(stats: TensorStatistics, low: float, high: float) -> float:
    centers = (stats.edges[:-1] + stats.edges[1:]) / 2
    step = (high - low) / (LEVELS - 1)
    clipped = np.clip(centers, low, high)
    inside = (centers >= low) & (centers <= high)
    error = np.where(inside, step**2 / 12, (centers - clipped) ** 2)
    return float((stats.counts * error).sum() / stats.counts.sum())


def _kl_divergence(stats: TensorStatistics, low: float, high: float) -> float:
    edges, counts = stats.edges, stats.counts
    first = int(np.clip(np.searchsorted(edges, low, side="right") - 1, 0, len(counts) - 1))
    last = int(np.clip(np.searchsorted(edges, high, side="left"), first + 1, len(counts)))
    if last - first < LEVELS:
        return np.inf  # fewer bins than levels: nothing to compare
    reference = counts[first:last].copy()
    reference[0] += counts[:first].sum()  # clipped values land on the edges
    reference[-1] += counts[last:].sum()
    quantized = np.zeros_like(reference)
    for chunk in np.array_split(np.arange(len(reference)), LEVELS):
        part = reference[chunk]
        used = part > 0
        if used.any():
            quantized[chunk[used]] = part.sum() / used.sum()
    p = reference / reference.sum()
    q = quantized / max(quantized.sum(), 1e-12)
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / np.maximum(q[mask], 1e-12))))


def uint8_parameters(low: float, high: float) -> tuple[float, int]:
    """Scale and zero point of an asymmetric uint8 quantization of [low, high] (0 included).

    Example:
        >>> uint8_parameters(0.0, 2.55)
        (0.01, 0)
    """
    low, high = min(low, 0.0), max(high, 0.0)
    scale = (high - low) / 255 if high > low else 1.0
    return round(scale, 12), int(round(-low / scale))


def int8_weight_scales(weight: np.ndarray) -> np.ndarray:
    """Per-output-channel scales of a symmetric int8 weight quantization (max |w| / 127)."""
    largest = np.abs(weight.reshape(weight.shape[0], -1)).max(axis=1)
    return np.where(largest > 0, largest / 127.0, 1.0)
