"""int8 parameters of LSTM and GRU layers.

Gate pre-activations are requantized to int8 (one scale per gate, from its range clipped to
[-8, 8]) and go through 256-entry sigmoid / tanh tables: sigmoid outputs u / 256 with u in
[0, 255], tanh outputs q / 128. The LSTM cell state is int16. The hidden state uses the
layer output's int8 parameters, so a sequence output is the state at every step.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from deeptoolbox.deploy._ir import Op
from deeptoolbox.deploy._quantize import (
    DEFAULT_CELL,
    GATE_LIMIT,
    lookup_table,
    multiplier,
    quantize_bias,
    quantize_weights,
    round_away,
    shared_multipliers,
)

SIGMOID_OUT = (1.0 / 256, -128)
TANH_OUT = (1.0 / 128, 0)
CELL_SHIFT = 24


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _peak(ranges: Mapping, key: str, default: float, floor: float) -> float:
    low, high = ranges.get(key, (-default, default))
    return max(max(abs(low), abs(high)), floor)


def gate_scales(op: Op, ranges: Mapping, gates: int) -> list[float]:
    """The int8 scale of each gate's pre-activation (clipped to [-8, 8])."""
    return [
        min(_peak(ranges, f"{op.output}/gate{g}", GATE_LIMIT, 1 / 16), GATE_LIMIT) / 127
        for g in range(gates)
    ]


def _weights(op: Op, d: int, x: tuple, h: tuple, scales: list[float], biases: np.ndarray):
    hidden = op.attrs["H"]
    wx, swx = quantize_weights(op.params[f"wx{d}"], 0)
    wh, swh = quantize_weights(op.params[f"wh{d}"], 0)
    rows = np.repeat(np.array(scales), hidden)
    (mx, mh), shifts = shared_multipliers([x[0] * swx / rows, h[0] * swh / rows], bits=22)
    bias = quantize_bias(biases, x[0] * swx)
    return {
        f"wx{d}": wx,
        f"wh{d}": wh,
        f"b{d}": bias,
        f"mx{d}": mx,
        f"mh{d}": mh,
        f"ps{d}": shifts,
    }, swh


def _lstm(op: Op, d: int, x: tuple, h: tuple, ranges: Mapping) -> tuple[dict, dict]:
    scales = gate_scales(op, ranges, 4)
    bias = op.params[f"bx{d}"].astype(np.float64) + op.params[f"bh{d}"]
    params, _ = _weights(op, d, x, h, scales, bias)
    functions = [_sigmoid, _sigmoid, np.tanh, _sigmoid]
    outs = [SIGMOID_OUT, SIGMOID_OUT, TANH_OUT, SIGMOID_OUT]
    params[f"lut{d}"] = np.concatenate(
        [lookup_table(f, s, 0, *o) for f, s, o in zip(functions, scales, outs, strict=True)]
    )
    cell = _peak(ranges, f"{op.output}/cell", DEFAULT_CELL, 1 / 64)
    cell_scale = cell / 32767
    tanh_scale = min(cell, GATE_LIMIT) / 127
    params[f"lutc{d}"] = lookup_table(np.tanh, tanh_scale, 0, *TANH_OUT)
    mt, st = multiplier(cell_scale / tanh_scale)
    mo, so = multiplier(1.0 / (32768 * h[0]))
    bc = int(round_away(2.0**CELL_SHIFT / (32768 * cell_scale)))
    return params, {"bc": bc, "mt": mt, "st": st, "mo": mo, "so": so}


def _gru(op: Op, d: int, x: tuple, h: tuple, ranges: Mapping) -> tuple[dict, dict]:
    hidden = op.attrs["H"]
    scales = gate_scales(op, ranges, 3)
    bx, bh = op.params[f"bx{d}"].astype(np.float64), op.params[f"bh{d}"].astype(np.float64)
    bias = np.concatenate([bx[: 2 * hidden] + bh[: 2 * hidden], bx[2 * hidden :]])
    params, swh = _weights(op, d, x, h, scales, bias)
    params[f"bh{d}"] = quantize_bias(bh[2 * hidden :], h[0] * swh[2 * hidden :])
    functions, outs = [_sigmoid, _sigmoid, np.tanh], [SIGMOID_OUT, SIGMOID_OUT, TANH_OUT]
    params[f"lut{d}"] = np.concatenate(
        [lookup_table(f, s, 0, *o) for f, s, o in zip(functions, scales, outs, strict=True)]
    )
    bn, sg = multiplier(1.0 / (32768 * h[0]))
    if sg < 8:
        bn, sg = int(round_away(2.0**8 / (32768 * h[0]))), 8
    return params, {"bn": bn, "sg": sg}


def quantize_recurrent(op: Op, x: tuple, h: tuple, ranges: Mapping) -> tuple[dict, dict]:
    """(attrs, params) of a q_lstm / q_gru op: ``x``, ``h`` are (scale, zero) of input, state."""
    params, scalars = {}, {}
    for d in range(op.attrs["directions"]):
        part, extra = (_lstm if op.kind == "lstm" else _gru)(op, d, x, h, ranges)
        params |= part
        scalars |= {f"{k}{d}": v for k, v in extra.items()}
    return {"zx": x[1], "zh": h[1], **scalars}, params
