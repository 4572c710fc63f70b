"""The int8 graph run in Python with exactly the integer arithmetic of the generated C.

Tests compare the C code's outputs with these bit for bit; generate_c uses it to report how
far int8 results are from float on the calibration data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from deeptoolbox.deploy._int8_arithmetic import clamp, rdiv, rshift_round
from deeptoolbox.deploy._ir import Graph, Op
from deeptoolbox.deploy._reference import _pad_amount


def _requant(acc, op: Op, channel_axis: int):
    a, p = op.attrs, op.params
    shape = [1] * acc.ndim
    shape[channel_axis] = -1
    mult, shift = p["mult"].reshape(shape), p["shift"].reshape(shape)
    return clamp(a["zy"] + rshift_round(acc * mult, shift), a["lo"])


def _conv(op: Op, x: np.ndarray, kind: str) -> np.ndarray:
    a, p = op.attrs, op.params
    xt = torch.from_numpy((x - a["zx"]).astype(np.float64))
    w = torch.from_numpy(p["weight"].astype(np.float64))
    if kind == "conv1d":
        xt = F.pad(xt.transpose(1, 2), _pad_amount(a["T"], a["OT"], a["K"], a["S"], a["D"], a["P"]))
        y = F.conv1d(xt, w, None, a["S"], 0, a["D"], a["G"])[..., : a["OT"]].transpose(1, 2)
    elif kind == "conv2d":
        top = _pad_amount(a["H"], a["OH"], a["KH"], a["SH"], a["DH"], a["PT"])
        left = _pad_amount(a["W"], a["OW"], a["KW"], a["SW"], a["DW"], a["PL"])
        y = F.conv2d(
            F.pad(xt, (*left, *top)), w, None, (a["SH"], a["SW"]), 0, (a["DH"], a["DW"]), a["G"]
        )[..., : a["OH"], : a["OW"]]
    else:
        y = F.conv_transpose2d(xt, w, None, (a["SH"], a["SW"]), (a["PT"], a["PL"]))
        y = y[..., : a["OH"], : a["OW"]]
    acc = np.rint(y.numpy()).astype(np.int64)
    axis = 2 if kind == "conv1d" else 1
    shape = [1] * acc.ndim
    shape[axis] = -1
    return _requant(acc + p["bias"].reshape(shape), op, axis)


def _dense(op: Op, x: np.ndarray) -> np.ndarray:
    a, p = op.attrs, op.params
    xs = x.reshape(-1, a["in"]) - a["zx"]
    acc = xs @ p["weight"].T + p["bias"]
    return _requant(acc, op, 1)


def _pool(op: Op, x: np.ndarray, dims: int) -> np.ndarray:
    a = op.attrs
    if dims == 1:
        xt = torch.from_numpy((x - a["zx"]).astype(np.float64)).transpose(1, 2).unsqueeze(2)
        pads = _pad_amount(a["T"], a["OT"], a["K"], a["S"], 1, a["P"])
        geometry = ((1, a["K"]), (1, a["S"]), (*pads, 0, 0))
        outs = (1, a["OT"])
    else:
        xt = torch.from_numpy((x - a["zx"]).astype(np.float64))
        top = _pad_amount(a["H"], a["OH"], a["KH"], a["SH"], 1, a["PT"])
        left = _pad_amount(a["W"], a["OW"], a["KW"], a["SW"], 1, a["PL"])
        geometry = ((a["KH"], a["KW"]), (a["SH"], a["SW"]), (*left, *top))
        outs = (a["OH"], a["OW"])
    kernel, stride, pads = geometry
    if a["mode"] == "max":
        y = F.max_pool2d(F.pad(xt, pads, value=float("-inf")), kernel, stride)
        result = np.rint(y.numpy()).astype(np.int64) + a["zx"]
    else:
        y = F.avg_pool2d(F.pad(xt, pads), kernel, stride, divisor_override=1)
        result = clamp(a["zx"] + rdiv(np.rint(y.numpy()).astype(np.int64), kernel[0] * kernel[1]))
    result = result[..., : outs[0], : outs[1]]
    return result[:, :, 0, :].transpose(0, 2, 1) if dims == 1 else result


def _gpool(op: Op, x: np.ndarray) -> np.ndarray:
    a = op.attrs
    n = x.shape[0]
    if a["channels_last"]:
        x = x.reshape(n, a["positions"], a["channels"]).transpose(0, 2, 1)
    x = x.reshape(n, a["channels"], a["positions"])
    if a["mode"] == "max":
        return x.max(axis=2)
    return clamp(a["zx"] + rdiv((x - a["zx"]).sum(axis=2), a["positions"]))


def _affine(op: Op, x: np.ndarray) -> np.ndarray:
    a, p = op.attrs, op.params
    xs = x.reshape(x.shape[0], -1, a["channels"], a["inner"]) - a["zx"]
    acc = xs * p["weight"].reshape(1, 1, -1, 1) + p["bias"].reshape(1, 1, -1, 1)
    mult, shift = p["mult"].reshape(1, 1, -1, 1), p["shift"].reshape(1, 1, -1, 1)
    return clamp(a["zy"] + rshift_round(acc * mult, shift)).reshape(x.shape)


def _softmax(op: Op, x: np.ndarray) -> np.ndarray:
    a, table = op.attrs, op.params["table"]
    xs = x.reshape(x.shape[0], a["outer"], a["channels"], a["inner"])
    e = table[xs - xs.max(axis=2, keepdims=True) + 255]
    total = e.sum(axis=2, keepdims=True)
    return clamp((e * 512 + total) // (2 * total) - 128).reshape(x.shape)


def _quantize(op: Op, x: np.ndarray) -> np.ndarray:
    a, p = op.attrs, op.params
    xs = x.astype(np.float32).reshape(x.shape[0], -1, a["channels"], a["inner"])
    v = xs * p["a"].reshape(1, 1, -1, 1)
    v = v + p["b"].reshape(1, 1, -1, 1)
    q = np.where(~(v >= np.float32(-128)), -128, np.where(v > np.float32(127), 127, np.floor(v)))
    return q.astype(np.int64).reshape(x.shape)


def _binary(op: Op, xs: list[np.ndarray]) -> np.ndarray:
    a, p = op.attrs, op.params
    if op.kind == "q_add":
        acc = sum((x - z) * m for x, z, m in zip(xs, p["zeros"], p["mults"], strict=True))
        return clamp(a["zy"] + rshift_round(acc, a["shift"]))
    product = (xs[0] - a["za"]) * (xs[1] - a["zb"])
    return clamp(a["zy"] + rshift_round(product * a["mult"], a["shift"]))


def _concat(op: Op, xs: list[np.ndarray], shape) -> np.ndarray:
    a, n = op.attrs, xs[0].shape[0]
    parts = []
    for x, inner, (zero, mult, shift) in zip(xs, a["inners"], a["parts"], strict=True):
        q = clamp(a["zy"] + rshift_round((x - zero) * mult, shift))
        parts.append(q.reshape(n, a["outer"], inner))
    return np.concatenate(parts, axis=2).reshape(n, *shape)


def run_op(op: Op, xs: list[np.ndarray], shape) -> np.ndarray:
    """Compute one int8 op (batch first; int8 values held as int64 arrays)."""
    from deeptoolbox.deploy._reference_int8_recurrent import run_recurrent

    kind, x = op.kind, xs[0]
    if kind == "q_quantize":
        return _quantize(op, x)
    if kind == "q_dequantize":
        return (x - op.attrs["zero"]).astype(np.float32) * np.float32(op.attrs["scale"])
    if kind == "q_dense":
        return _dense(op, x)
    if kind in ("q_conv1d", "q_conv2d", "q_tconv2d"):
        return _conv(op, x, kind[2:])
    if kind in ("q_pool1d", "q_pool2d"):
        return _pool(op, x, 1 if kind == "q_pool1d" else 2)
    simple = {"q_gpool": _gpool, "q_affine": _affine, "q_softmax": _softmax}
    if kind in simple:
        return simple[kind](op, x)
    if kind == "q_lut":
        return op.params["table"][x + 128]
    if kind in ("q_add", "q_mul"):
        return _binary(op, xs)
    if kind == "q_concat":
        return _concat(op, xs, shape)
    if kind == "reshape":
        return x
    if kind in ("q_lstm", "q_gru"):
        return run_recurrent(op, x)
    raise NotImplementedError(kind)


def run_int8(graph: Graph, inputs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Every value of an int8 graph for a batch of float ``inputs``."""
    values: dict[str, np.ndarray] = {}
    for name, x in zip(graph.inputs, inputs, strict=True):
        array = np.asarray(x, dtype=np.float32)
        values[name] = array.reshape(array.shape[0], *graph.values[name].shape)
    for op in graph.ops:
        shape = graph.values[op.output].shape
        xs = [values[name] for name in op.inputs]
        values[op.output] = run_op(op, xs, shape).reshape(xs[0].shape[0], *shape)
    return values
