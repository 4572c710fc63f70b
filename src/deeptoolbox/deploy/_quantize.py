"""int8 quantization for C generation: value ranges, scales, fixed-point multipliers.

Activations are int8 with a per-tensor scale and zero point (asymmetric, from the measured
range); weights are int8 with one scale per output channel (symmetric); sums are int32.
A real multiplier M is stored as an integer ``mult`` and a ``shift``: ``x * M`` is computed
as ``round(x * mult / 2**shift)`` with halves rounded away from zero, in 64-bit integers.
The same integer arithmetic runs in the generated C and in the Python reference
(_reference_int8), so both give identical outputs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from deeptoolbox.errors import CodegenError

QMIN, QMAX = -128, 127
GATE_LIMIT = 8.0  # sigmoid and tanh are flat beyond: gate inputs are clipped there
DEFAULT_CELL = 8.0  # LSTM cell range when none is given


class ActivationRanges(Mapping):
    """Minimum and maximum of each value, keyed by layer name: what int8 scales come from.

    A layer's key holds the range of its output (after folding: a Conv2d + BatchNorm + ReLU
    group is keyed by the ReLU). Recurrent layers may add ``"<name>/gate<k>"`` (gate
    pre-activations) and ``"<name>/cell"`` (LSTM cell state); without them, gates use
    [-8, 8] and the cell [-8, 8]. Build one with :func:`~deeptoolbox.deploy.activation_ranges`
    from data, or from any mapping ``name -> (min, max)`` (e.g. what a calibrated quantizer
    measured).

    Example:
        >>> ranges = ActivationRanges({"fc": (-1.5, 2.0)})
        >>> ranges["fc"], len(ranges)
        ((-1.5, 2.0), 1)
    """

    def __init__(self, ranges: Mapping[str, tuple[float, float]] | None = None) -> None:
        self._ranges: dict[str, tuple[float, float]] = {}
        for name, pair in (ranges or {}).items():
            low, high = _check_pair(name, pair)
            self._ranges[str(name)] = (low, high)

    def __getitem__(self, name: str) -> tuple[float, float]:
        return self._ranges[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ranges)

    def __len__(self) -> int:
        return len(self._ranges)

    def merged(self, other: Mapping[str, tuple[float, float]]) -> ActivationRanges:
        """A copy with ``other``'s entries replacing these."""
        return ActivationRanges({**self._ranges, **ActivationRanges(other)._ranges})

    def __repr__(self) -> str:
        return f"ActivationRanges({len(self)} values)"


def _check_pair(name: object, pair: Any) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in pair)
    except (TypeError, ValueError):
        raise CodegenError(
            f"Activation range of {name!r} must be a pair (min, max). Received: {pair!r}."
        ) from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise CodegenError(
            f"Activation range of {name!r} must be finite with min <= max. Received: {pair!r}."
        )
    return low, high


def qparams(low: float, high: float) -> tuple[float, int]:
    """(scale, zero point) of an int8 value covering [low, high] (and 0); scale as float32."""
    low, high = min(low, 0.0), max(high, 0.0)
    if high - low < 1e-6:
        high = low + 1e-6
    scale = float(np.float32((high - low) / 255.0))
    zero = int(np.clip(round_away(-128.0 - low / scale), QMIN, QMAX))
    return scale, zero


def round_away(x):
    """Round halves away from zero (numpy arrays or floats)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def multiplier(real: float, bits: int = 31) -> tuple[int, int]:
    """(mult, shift) with real ~= mult / 2**shift and mult in [2**(bits-1), 2**bits)."""
    if real <= 0:
        return 0, 1
    exponent = math.floor(math.log2(real))
    shift = bits - 1 - exponent
    mult = int(round_away(real * 2.0**shift))
    if mult >= 2**bits:
        mult, shift = mult // 2, shift - 1
    if shift > 62:
        mult, shift = int(round_away(real * 2.0**62)), 62
    if shift < 1:
        raise CodegenError(
            f"A requantization factor of {real:g} is too large for int8 code; the value ranges "
            "differ too much (check the calibration data)."
        )
    return mult, shift


def multipliers(reals: np.ndarray, bits: int = 31) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mult int32, shift int8) arrays."""
    pairs = [multiplier(float(r), bits) for r in np.asarray(reals, dtype=np.float64).ravel()]
    return (
        np.array([p[0] for p in pairs], dtype=np.int64),
        np.array([p[1] for p in pairs], dtype=np.int64),
    )


def shared_multipliers(reals: list[np.ndarray], bits: int = 22):
    """Several per-row multipliers sharing one shift per row: ([mult arrays], shift array)."""
    stacked = np.stack([np.asarray(r, dtype=np.float64) for r in reals])
    top = stacked.max(axis=0)
    shifts = np.array([multiplier(float(t), bits)[1] if t > 0 else 1 for t in top])
    mults = [round_away(r * 2.0**shifts).astype(np.int64) for r in stacked]
    return mults, shifts.astype(np.int64)


def quantize_weights(weight: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 weights with one scale per channel along ``axis``: (int8, scales)."""
    w = np.moveaxis(weight.astype(np.float64), axis, 0)
    peak = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
    scales = np.where(peak > 0, peak / 127.0, 1.0)
    q = np.clip(round_away(w / scales.reshape((-1,) + (1,) * (w.ndim - 1))), -127, 127)
    return np.moveaxis(q, 0, axis).astype(np.int64), scales


def quantize_bias(bias: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """An int32 bias in accumulator units (input scale x weight scale)."""
    q = round_away(bias.astype(np.float64) / scales)
    return np.clip(q, -(2**31 - 1), 2**31 - 1).astype(np.int64)


def lookup_table(function, in_scale: float, in_zero: int, out_scale: float, out_zero: int):
    """The 256 int8 outputs of ``function`` for every int8 input (index q + 128)."""
    q = np.arange(QMIN, QMAX + 1, dtype=np.float64)
    real = function((q - in_zero) * in_scale)
    return np.clip(round_away(real / out_scale) + out_zero, QMIN, QMAX).astype(np.int64)
