"""Run a lowered Graph in float with torch: checks the lowering and records value ranges.

The ranges (minimum and maximum of every value over the data, plus the gate pre-activations
and cell states inside recurrent layers) are what int8 quantization is calibrated from.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from deeptoolbox.deploy._ir import Graph, Op

Ranges = dict[str, tuple[float, float]]


def _t(array) -> torch.Tensor:
    return torch.from_numpy(array)


def _pad_amount(length: int, out: int, kernel: int, stride: int, dilation: int, before: int):
    needed = (out - 1) * stride + (kernel - 1) * dilation + 1 - length - before
    return before, max(needed, 0)


def _dense(op: Op, x: torch.Tensor) -> torch.Tensor:
    a = op.attrs
    y = x.reshape(-1, a["in"]) @ _t(op.params["weight"]).T + _t(op.params["bias"])
    return torch.relu(y) if a["relu"] else y


def _conv1d(op: Op, x: torch.Tensor) -> torch.Tensor:
    a = op.attrs
    x = x.transpose(1, 2)
    x = F.pad(x, _pad_amount(a["T"], a["OT"], a["K"], a["S"], a["D"], a["P"]))
    y = F.conv1d(x, _t(op.params["weight"]), _t(op.params["bias"]), a["S"], 0, a["D"], a["G"])
    y = y[..., : a["OT"]].transpose(1, 2)
    return torch.relu(y) if a["relu"] else y


def _conv2d(op: Op, x: torch.Tensor) -> torch.Tensor:
    a = op.attrs
    top = _pad_amount(a["H"], a["OH"], a["KH"], a["SH"], a["DH"], a["PT"])
    left = _pad_amount(a["W"], a["OW"], a["KW"], a["SW"], a["DW"], a["PL"])
    x = F.pad(x, (*left, *top))
    y = F.conv2d(
        x,
        _t(op.params["weight"]),
        _t(op.params["bias"]),
        (a["SH"], a["SW"]),
        0,
        (a["DH"], a["DW"]),
        a["G"],
    )
    y = y[..., : a["OH"], : a["OW"]]
    return torch.relu(y) if a["relu"] else y


def _tconv2d(op: Op, x: torch.Tensor) -> torch.Tensor:
    a = op.attrs
    y = F.conv_transpose2d(
        x, _t(op.params["weight"]), _t(op.params["bias"]), (a["SH"], a["SW"]), (a["PT"], a["PL"])
    )
    y = y[..., : a["OH"], : a["OW"]]
    return torch.relu(y) if a["relu"] else y


def _pool(op: Op, x: torch.Tensor, dims: int) -> torch.Tensor:
    a = op.attrs
    fill = float("-inf") if a["mode"] == "max" else 0.0
    if dims == 1:
        x = x.transpose(1, 2)
        pads = _pad_amount(a["T"], a["OT"], a["K"], a["S"], 1, a["P"])
        kernel, stride, outs = (a["K"],), (a["S"],), (a["OT"],)
    else:
        top = _pad_amount(a["H"], a["OH"], a["KH"], a["SH"], 1, a["PT"])
        pads = (*_pad_amount(a["W"], a["OW"], a["KW"], a["SW"], 1, a["PL"]), *top)
        kernel, stride, outs = (a["KH"], a["KW"]), (a["SH"], a["SW"]), (a["OH"], a["OW"])
    x = F.pad(x, pads, value=fill)
    pool = getattr(F, f"{a['mode']}_pool{dims}d")
    y = pool(x, kernel, stride)
    y = y[..., : outs[0]] if dims == 1 else y[..., : outs[0], : outs[1]]
    return y.transpose(1, 2) if dims == 1 else y


def _gpool(op: Op, x: torch.Tensor) -> torch.Tensor:
    a = op.attrs
    n = x.shape[0]
    if a["channels_last"]:
        x = x.reshape(n, a["positions"], a["channels"]).transpose(1, 2)
    x = x.reshape(n, a["channels"], a["positions"])
    return x.amax(dim=2) if a["mode"] == "max" else x.mean(dim=2)


def _affine(op: Op, x: torch.Tensor) -> torch.Tensor:
    a = op.attrs
    shape = x.shape
    x = x.reshape(shape[0], -1, a["channels"], a["inner"])
    scale = _t(op.params["scale"]).reshape(1, 1, -1, 1)
    shift = _t(op.params["shift"]).reshape(1, 1, -1, 1)
    return (x * scale + shift).reshape(shape)


ACTIVATIONS = {
    "relu": lambda x, a: torch.relu(x),
    "leaky_relu": lambda x, a: F.leaky_relu(x, a),
    "elu": lambda x, a: F.elu(x, a),
    "gelu": lambda x, a: F.gelu(x),
    "gelu_tanh": lambda x, a: F.gelu(x, approximate="tanh"),
    "sigmoid": lambda x, a: torch.sigmoid(x),
    "tanh": lambda x, a: torch.tanh(x),
    "swish": lambda x, a: F.silu(x),
}


def _softmax(op: Op, x: torch.Tensor) -> torch.Tensor:
    a = op.attrs
    return x.reshape(x.shape[0], a["outer"], a["channels"], a["inner"]).softmax(2).reshape(x.shape)


def _concat(op: Op, xs: list[torch.Tensor], shape) -> torch.Tensor:
    a, n = op.attrs, xs[0].shape[0]
    parts = [x.reshape(n, a["outer"], inner) for x, inner in zip(xs, a["inners"], strict=True)]
    return torch.cat(parts, dim=2).reshape(n, *shape)


def _lstm_direction(op, x, d, record) -> tuple[torch.Tensor, torch.Tensor]:
    p, hidden = op.params, op.attrs["H"]
    wx, wh = _t(p[f"wx{d}"]), _t(p[f"wh{d}"])
    bias = _t(p[f"bx{d}"]) + _t(p[f"bh{d}"])
    n, steps = x.shape[0], x.shape[1]
    h, c = x.new_zeros(n, hidden), x.new_zeros(n, hidden)
    outputs = []
    for t in reversed(range(steps)) if d else range(steps):
        gates = x[:, t] @ wx.T + h @ wh.T + bias
        i, f, g, o = gates.chunk(4, 1)
        for index, gate in enumerate((i, f, g, o)):
            record(f"{op.output}/gate{index}", gate)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        record(f"{op.output}/cell", c)
        outputs.append(h)
    if d:
        outputs.reverse()
    return torch.stack(outputs, 1), h


def _gru_direction(op, x, d, record) -> tuple[torch.Tensor, torch.Tensor]:
    p, hidden = op.params, op.attrs["H"]
    wx, wh, bx, bh = (_t(p[f"{k}{d}"]) for k in ("wx", "wh", "bx", "bh"))
    n, steps = x.shape[0], x.shape[1]
    h = x.new_zeros(n, hidden)
    outputs = []
    for t in reversed(range(steps)) if d else range(steps):
        gx, gh = x[:, t] @ wx.T + bx, h @ wh.T + bh
        rz = gx[:, : 2 * hidden] + gh[:, : 2 * hidden]
        record(f"{op.output}/gate0", rz[:, :hidden])
        record(f"{op.output}/gate1", rz[:, hidden:])
        r, z = torch.sigmoid(rz).chunk(2, 1)
        pre = gx[:, 2 * hidden :] + r * gh[:, 2 * hidden :]
        record(f"{op.output}/gate2", pre)
        h = (1 - z) * torch.tanh(pre) + z * h
        outputs.append(h)
    if d:
        outputs.reverse()
    return torch.stack(outputs, 1), h


def _recurrent(op: Op, x: torch.Tensor, record) -> torch.Tensor:
    run = _lstm_direction if op.kind == "lstm" else _gru_direction
    results = [run(op, x, d, record) for d in range(op.attrs["directions"])]
    sequence = torch.cat([r[0] for r in results], dim=2)
    record(op.output, sequence)  # every hidden state, not only the last: the state's range
    if op.attrs["sequence"]:
        return sequence
    if op.attrs.get("last_step"):
        return sequence[:, -1]
    return torch.cat([r[1] for r in results], dim=1)


def run_op(op: Op, xs: list[torch.Tensor], shape, record) -> torch.Tensor:
    """Compute one op in float32 (batch first)."""
    kind, x = op.kind, xs[0]
    simple = {
        "dense": _dense,
        "conv1d": _conv1d,
        "conv2d": _conv2d,
        "tconv2d": _tconv2d,
        "gpool": _gpool,
        "affine": _affine,
        "softmax": _softmax,
    }
    if kind in simple:
        return simple[kind](op, x)
    if kind in ("pool1d", "pool2d"):
        return _pool(op, x, 1 if kind == "pool1d" else 2)
    if kind == "act":
        return ACTIVATIONS[op.attrs["fn"]](x, op.attrs["alpha"])
    if kind in ("add", "mul"):
        result = xs[0] + xs[1] if kind == "add" else xs[0] * xs[1]
        for other in xs[2:]:
            result = result + other if kind == "add" else result * other
        return result
    if kind == "concat":
        return _concat(op, xs, shape)
    if kind == "reshape":
        return x.reshape(x.shape[0], *shape)
    if kind in ("lstm", "gru"):
        return _recurrent(op, x, record)
    raise NotImplementedError(kind)


def run_graph(
    graph: Graph, inputs: Sequence[torch.Tensor], ranges: Ranges | None = None
) -> dict[str, torch.Tensor]:
    """Every value of ``graph`` for a batch of ``inputs``; widens ``ranges`` when given."""

    def record(name: str, tensor: torch.Tensor) -> None:
        if ranges is None or tensor.numel() == 0:
            return
        low, high = float(tensor.min()), float(tensor.max())
        if name in ranges:
            low, high = min(low, ranges[name][0]), max(high, ranges[name][1])
        ranges[name] = (low, high)

    values: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, x in zip(graph.inputs, inputs, strict=True):
            values[name] = x.to(torch.float32).reshape(x.shape[0], *graph.values[name].shape)
            record(name, values[name])
        for op in graph.ops:
            xs = [values[name] for name in op.inputs]
            shape = graph.values[op.output].shape
            values[op.output] = run_op(op, xs, shape, record).reshape(xs[0].shape[0], *shape)
            if op.kind not in ("lstm", "gru"):
                record(op.output, values[op.output])
    return values
