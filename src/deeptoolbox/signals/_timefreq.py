"""Time-frequency maps of signals: the spectrogram (short-time Fourier transform, torch.stft)
and the scalogram (continuous wavelet transform with a complex Morlet wavelet, computed on
torch in the frequency domain).

The Morlet filter bank. The complex Morlet wavelet with bandwidth ``B`` and centre frequency
``C`` (PyWavelets' ``"cmorB-C"``) is ``psi(t) = exp(-t^2 / B) exp(2j pi C t) / sqrt(pi B)``;
its Fourier transform is the Gaussian ``Psi(f) = exp(-pi^2 B (f - C)^2)``. At scale ``s``
(samples) the wavelet looks at frequency ``C / s`` cycles per sample, so a frequency ``f`` Hz
uses ``s = C * sampling_rate / f``. The transform ``W(s, b) = sum_n x[n] conj(psi((n - b) /
s)) / norm(s)`` is computed as ``ifft(fft(x) * Psi(s f) * gain(s))`` on a zero-padded
signal (padded by the longest wavelet's reach, so nothing wraps around):

- ``normalization="l1"`` (MATLAB's ``cwt``): ``norm(s) = s / 2``; an oscillation of
  amplitude A at frequency f gives ``|W| = A`` in the row of f.
- ``normalization="l2"`` (PyWavelets' ``pywt.cwt``): ``norm(s) = sqrt(s)``, energy
  preserving; the same oscillation gives ``A sqrt(s) / 2``.

The scalogram is ``|W|``, averaged over blocks of ``hop_length`` samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from deeptoolbox.errors import DataError, OptionError
from deeptoolbox.signals._segments import SignalSegments

__all__ = ["TimeFrequencyMap", "spectrogram", "scalogram", "morlet_frequencies"]


@dataclass(frozen=True)
class TimeFrequencyMap:
    """A spectrogram or scalogram: ``values`` (..., C, F, K) float32 (channels, frequencies,
    time columns), ``frequencies`` (F,) in Hz and ``times`` (K,) in seconds (each column's
    centre from the start of its window).

    Example:
        >>> import torch
        >>> tf = spectrogram(torch.zeros(256, 1), 128.0, window_length=64, hop_length=32)
        >>> tuple(tf.values.shape), tf.frequencies[:3].tolist(), tf.times[:2].tolist()
        ((1, 33, 7), [0.0, 2.0, 4.0], [0.25, 0.5])
    """

    values: torch.Tensor = field(repr=False)
    frequencies: np.ndarray = field(repr=False)
    times: np.ndarray = field(repr=False)
    kind: str = "spectrogram"

    def __repr__(self) -> str:
        return (
            f"TimeFrequencyMap({self.kind}, values {tuple(self.values.shape)}, "
            f"{self.frequencies[0]:.3g}-{self.frequencies[-1]:.3g} Hz, {self.times.size} columns)"
        )


def _signal(x: Any, where: str) -> torch.Tensor:
    """(..., T, C) float tensor of SignalSegments, recordings, arrays or tensors."""
    if isinstance(x, SignalSegments):
        return x.data
    if hasattr(x, "signal"):
        x = x.signal
    values = x if torch.is_tensor(x) else torch.as_tensor(np.asarray(x, np.float32))
    if values.ndim < 2 or values.is_complex():
        raise DataError(
            f"{where}: the signal must be real (T, C) or (N, T, C): time, then channels last. "
            f"Received shape {tuple(values.shape)}{' (complex)' if values.is_complex() else ''}."
            " A single channel of shape (T,) is x[:, None]."
        )
    return values.float()


def _positive(where: str, name: str, value: Any, example: str, whole: bool = True) -> Any:
    kinds = int if whole else int | float
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        raise OptionError(
            f"{where}: `{name}` must be a positive {'int' if whole else 'number'}, e.g. "
            f"{example}. Received: {name}={value!r}."
        )
    return value


def spectrogram(
    x: Any,
    sampling_rate: float,
    *,
    window_length: int = 64,
    hop_length: int | None = None,
    n_fft: int | None = None,
) -> TimeFrequencyMap:
    """Power spectral density over time of each channel (MATLAB's ``spectrogram`` with a Hann
    window, ``pspectrum(x, fs, "spectrogram")``), by ``torch.stft``.

    ``x`` is (T, C) or (N, T, C) (or SignalSegments); ``window_length`` and ``hop_length``
    (default ``window_length // 4``) are in samples, ``n_fft`` (default ``window_length``)
    sets the frequency grid. No padding: column k covers samples ``[k hop, k hop +
    window_length)``. The values are one-sided densities (units^2 / Hz) as
    ``scipy.signal.spectrogram(x, fs, window="hann", nperseg=window_length,
    noverlap=window_length - hop_length, detrend=False)`` gives them.

    Example:
        >>> import math, torch
        >>> t = torch.arange(512) / 128.0
        >>> x = torch.sin(2 * math.pi * 16.0 * t)[:, None]  # a 16 Hz sine, one channel
        >>> tf = spectrogram(x, 128.0, window_length=128)
        >>> float(tf.frequencies[tf.values[0].mean(-1).argmax()])
        16.0
    """
    where = "spectrogram"
    values = _signal(x, where)
    rate = float(_positive(where, "sampling_rate", sampling_rate, "128.0", whole=False))
    length = _positive(where, "window_length", window_length, "window_length=64")
    hop = _positive(where, "hop_length", max(1, length // 4) if hop_length is None else hop_length,
                    "hop_length=16")  # fmt: skip
    n_fft = _positive(where, "n_fft", length if n_fft is None else n_fft, "n_fft=128")
    if n_fft < length:
        raise OptionError(f"{where}: `n_fft` ({n_fft}) must be >= `window_length` ({length}).")
    if values.shape[-2] < length:
        raise DataError(
            f"{where}: `window_length` ({length} samples) is longer than the signal "
            f"({values.shape[-2]} samples, shape {tuple(values.shape)}; time is axis -2)."
        )
    lead = values.shape[:-2]
    flat = values.movedim(-1, -2).reshape(-1, values.shape[-2])
    window = torch.hann_window(length, dtype=flat.dtype, device=flat.device)
    if n_fft == length:
        frames = torch.stft(flat, n_fft, hop_length=hop, window=window, center=False,
                            return_complex=True)  # fmt: skip
    else:  # each windowed segment zero-padded to n_fft (torch.stft would centre the window)
        frames = torch.fft.rfft(flat.unfold(-1, length, hop) * window, n=n_fft).transpose(-1, -2)
    power = frames.abs() ** 2 / (rate * float((window**2).sum()))
    if n_fft % 2 == 0:
        power[:, 1:-1] *= 2.0
    else:
        power[:, 1:] *= 2.0
    power = power.reshape(*lead, values.shape[-1], *power.shape[-2:])
    times = (length / 2 + hop * np.arange(power.shape[-1])) / rate
    return TimeFrequencyMap(power, np.fft.rfftfreq(n_fft, 1.0 / rate), times, "spectrogram")


def morlet_frequencies(
    sampling_rate: float, frequency_range: tuple[float, float] | None = None, count: int = 32
) -> np.ndarray:
    """``count`` frequencies (Hz) spaced evenly on a log scale over ``frequency_range``,
    high to low as MATLAB's ``cwt`` lists them; by default from 1 Hz (or ``sampling_rate /
    128`` if higher) to a quarter of the sampling rate.

    Example:
        >>> morlet_frequencies(128.0, (2.0, 32.0), 5).round(6).tolist()
        [32.0, 16.0, 8.0, 4.0, 2.0]
    """
    rate = float(_positive("morlet_frequencies", "sampling_rate", sampling_rate, "128.0", False))
    low, high = frequency_range or (max(1.0, rate / 128), rate / 4)
    if not 0 < low <= high <= rate / 2:
        raise OptionError(
            f"scalogram: `frequency_range` must be (low, high) with 0 < low <= high <= the "
            f"Nyquist frequency {rate / 2:g} Hz. Received: {frequency_range!r}."
        )
    _positive("scalogram", "num_frequencies", count, "num_frequencies=32")
    return np.geomspace(high, low, count)


def _morlet_gains(frequencies, rate, n, bandwidth, center, normalization) -> torch.Tensor:
    """(F, n) Fourier-domain filters ``Psi(s f) * gain(s)`` for an n-point FFT."""
    scales = center * rate / torch.as_tensor(frequencies, dtype=torch.float64)
    grid = torch.fft.fftfreq(n, dtype=torch.float64)  # cycles per sample
    gains = torch.exp(-(math.pi**2) * bandwidth * (scales[:, None] * grid - center) ** 2)
    # Psi(s f) is the transform of psi(t/s)/s; times s/norm(s): 2 for "l1", sqrt(s) for "l2"
    factor = torch.full_like(scales, 2.0) if normalization == "l1" else scales.sqrt()
    return gains * factor[:, None]


def scalogram(
    x: Any,
    sampling_rate: float,
    *,
    frequencies: Any = None,
    frequency_range: tuple[float, float] | None = None,
    num_frequencies: int = 32,
    bandwidth: float = 1.5,
    center_frequency: float = 1.0,
    normalization: str = "l1",
    hop_length: int = 1,
    batch_size: int = 256,
) -> TimeFrequencyMap:
    """Magnitude of the continuous wavelet transform of each channel, with the complex Morlet
    wavelet (MATLAB's ``cwt`` / ``cwtfilterbank`` scalogram ``abs(cfs)``; PyWavelets'
    ``pywt.cwt(x, scales, "cmor1.5-1.0")``): see the module docstring for the filter bank.

    ``x`` is (T, C) or (N, T, C) (or SignalSegments); the result's ``values`` are
    (..., C, F, T // hop_length), frequencies from high to low (``frequencies`` in Hz, or
    :func:`morlet_frequencies` over ``frequency_range``). ``bandwidth`` and
    ``center_frequency`` are the wavelet's B and C (larger B: finer frequency, coarser time
    resolution). ``hop_length`` > 1 averages the magnitude over blocks of that many samples (a
    smaller image for a CNN). Runs on ``x``'s device, ``batch_size`` signals at a time.

    Example:
        >>> import math, torch
        >>> t = torch.arange(1024) / 128.0
        >>> x = (3.0 * torch.cos(2 * math.pi * 8.0 * t))[:, None]  # amplitude 3 at 8 Hz
        >>> tf = scalogram(x, 128.0, frequencies=[32.0, 8.0, 2.0])
        >>> [round(float(v), 2) for v in tf.values[0, :, 512]]  # |W| = amplitude at 8 Hz
        [0.0, 3.0, 0.0]
    """
    where = "scalogram"
    values = _signal(x, where)
    rate = float(_positive(where, "sampling_rate", sampling_rate, "128.0", whole=False))
    _positive(where, "bandwidth", bandwidth, "bandwidth=1.5", whole=False)
    _positive(where, "center_frequency", center_frequency, "center_frequency=1.0", whole=False)
    _positive(where, "hop_length", hop_length, "hop_length=4")
    _positive(where, "batch_size", batch_size, "batch_size=256")
    if normalization not in ("l1", "l2"):
        raise OptionError(
            f"{where}: `normalization` must be 'l1' (MATLAB's cwt) or 'l2' (pywt.cwt). "
            f"Received: normalization={normalization!r}."
        )
    if frequencies is None:
        chosen = morlet_frequencies(rate, frequency_range, num_frequencies)
    else:
        chosen = np.asarray(frequencies, np.float64).reshape(-1)
        if chosen.size == 0 or not np.all((chosen > 0) & (chosen <= rate / 2)):
            raise OptionError(
                f"{where}: `frequencies` must be in (0, {rate / 2:g}] Hz (the Nyquist "
                f"frequency). Received: {chosen.tolist()}."
            )
    t = values.shape[-2]
    if t < hop_length:
        raise DataError(
            f"{where}: the signal ({t} samples) is shorter than hop_length ({hop_length})."
        )
    reach = int(math.ceil(4.0 * math.sqrt(bandwidth) * center_frequency * rate / chosen.min()))
    n = 1 << int(math.ceil(math.log2(t + reach)))
    gains = _morlet_gains(chosen, rate, n, bandwidth, center_frequency, normalization)
    gains = gains.to(device=values.device, dtype=torch.complex64)
    lead = values.shape[:-2]
    flat = values.movedim(-1, -2).reshape(-1, t)
    columns = t // hop_length
    out = torch.empty(flat.shape[0], len(chosen), columns, device=values.device)
    for first in range(0, flat.shape[0], batch_size):
        spectrum = torch.fft.fft(flat[first : first + batch_size], n=n)
        coefficients = torch.fft.ifft(spectrum[:, None, :] * gains, n=n)[..., :t].abs()
        blocks = coefficients[..., : columns * hop_length]
        out[first : first + batch_size] = blocks.reshape(
            *blocks.shape[:-1], columns, hop_length
        ).mean(-1)
    times = (np.arange(columns) * hop_length + (hop_length - 1) / 2) / rate
    shaped = out.reshape(*lead, values.shape[-1], len(chosen), columns)
    return TimeFrequencyMap(shaped, chosen, times, "scalogram")
