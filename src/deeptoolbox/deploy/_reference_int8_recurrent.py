"""The integer LSTM and GRU of the generated C, in numpy (see _quantize_recurrent)."""

from __future__ import annotations

import numpy as np

from deeptoolbox.deploy._int8_arithmetic import clamp, rshift_round
from deeptoolbox.deploy._ir import Op
from deeptoolbox.deploy._quantize_recurrent import CELL_SHIFT


def _preactivations(op: Op, d: int, xt: np.ndarray, h: np.ndarray):
    a, p = op.attrs, op.params
    ax = (xt - a["zx"]) @ p[f"wx{d}"].T + p[f"b{d}"]
    ah = (h - a["zh"]) @ p[f"wh{d}"].T
    return ax, ah


def _lstm_step(op: Op, d: int, xt, h, c):
    a, p, hidden = op.attrs, op.params, op.attrs["H"]
    ax, ah = _preactivations(op, d, xt, h)
    q = clamp(rshift_round(ax * p[f"mx{d}"] + ah * p[f"mh{d}"], p[f"ps{d}"]))
    lut = p[f"lut{d}"]
    gates = [lut[g * 256 + q[:, g * hidden : (g + 1) * hidden] + 128] for g in range(4)]
    ui, uf, qg, uo = gates[0] + 128, gates[1] + 128, gates[2], gates[3] + 128
    c = clamp(rshift_round(uf * c * 65536 + ui * qg * a[f"bc{d}"], CELL_SHIFT), -32767, 32767)
    qc = clamp(rshift_round(c * a[f"mt{d}"], a[f"st{d}"]))
    tc = p[f"lutc{d}"][qc + 128]
    h = clamp(a["zh"] + rshift_round(uo * tc * a[f"mo{d}"], a[f"so{d}"]))
    return h, c


def _gru_step(op: Op, d: int, xt, h, c):
    a, p, hidden = op.attrs, op.params, op.attrs["H"]
    ax, ah = _preactivations(op, d, xt, h)
    ah[:, 2 * hidden :] += p[f"bh{d}"]
    mx, mh, ps, lut = p[f"mx{d}"], p[f"mh{d}"], p[f"ps{d}"], p[f"lut{d}"]
    rz = slice(0, 2 * hidden)
    q = clamp(rshift_round(ax[:, rz] * mx[rz] + ah[:, rz] * mh[rz], ps[rz]))
    ur = lut[q[:, :hidden] + 128] + 128
    uz = lut[256 + q[:, hidden:] + 128] + 128
    n = slice(2 * hidden, 3 * hidden)
    total = ax[:, n] * mx[n] * 256 + ur * ah[:, n] * mh[n]
    qn = lut[512 + clamp(rshift_round(total, ps[n] + 8)) + 128]
    sg = a[f"sg{d}"]
    mixed = (256 - uz) * qn * a[f"bn{d}"] + uz * (h - a["zh"]) * (1 << (sg - 8))
    return clamp(a["zh"] + rshift_round(mixed, sg)), c


def run_recurrent(op: Op, x: np.ndarray) -> np.ndarray:
    """A q_lstm / q_gru op over x (N, T, C) int8 values."""
    a, hidden = op.attrs, op.attrs["H"]
    n, steps = x.shape[0], a["T"]
    x = x.reshape(n, steps, a["C"])
    step = _lstm_step if op.kind == "q_lstm" else _gru_step
    sequences, finals = [], []
    for d in range(a["directions"]):
        h = np.full((n, hidden), a["zh"], dtype=np.int64)
        c = np.zeros((n, hidden), dtype=np.int64)
        outputs = [None] * steps
        for t in reversed(range(steps)) if d else range(steps):
            h, c = step(op, d, x[:, t], h, c)
            outputs[t] = h
        sequences.append(np.stack(outputs, 1))
        finals.append(h)
    if a["sequence"]:
        return np.concatenate(sequences, axis=2)
    if a.get("last_step"):
        return np.concatenate(sequences, axis=2)[:, -1]
    return np.concatenate(finals, axis=1)
