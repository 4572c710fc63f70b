"""ONNX LSTM, GRU and RNN operators, with ONNX's full semantics (directions, sequence lengths,
initial states, peepholes, clipping, activations, ``layout``), written with torch functions.

ONNX recurrent nodes take time-major input (T, N, C) (``layout=0``); the toolbox's sequences
are (N, T, C). Where a node and the transposes around it compute exactly what a toolbox LSTM /
GRU layer computes, the import uses that layer instead (see :mod:`._patterns_rnn`); these
operators run the nodes that do not fit (clipping, custom activations, sequence lengths,
initial states, reverse direction, ``linear_before_reset=0``, RNN) and serve as the reference
the fused layers are checked against at import.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deeptoolbox.interop.onnx._opset import Inputs, Operator, Tensor, registrar

OPERATORS: dict[str, Operator] = {}
operator = registrar(OPERATORS)


def _activation(name: str, alpha: float | None, beta: float | None):
    name = name.lower()
    table = {
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": torch.relu,
        "softsign": F.softsign,
        "softplus": F.softplus,
        "affine": lambda x: (1.0 if alpha is None else alpha) * x + (beta or 0.0),
        "leakyrelu": lambda x: F.leaky_relu(x, 0.01 if alpha is None else alpha),
        "thresholdedrelu": lambda x: x * (x > (1.0 if alpha is None else alpha)),
        "scaledtanh": lambda x: (alpha or 1.0) * torch.tanh((beta or 1.0) * x),
        "hardsigmoid": lambda x: torch.clamp((0.2 if alpha is None else alpha) * x
                                              + (0.5 if beta is None else beta), 0, 1),
        "elu": lambda x: F.elu(x, 1.0 if alpha is None else alpha),
    }  # fmt: skip
    return table[name]


def _activations(attrs: dict, defaults: list[str], directions: int) -> list:
    names = list(attrs.get("activations", defaults * directions))
    alphas = list(attrs.get("activation_alpha", []))
    betas = list(attrs.get("activation_beta", []))
    result = []
    for i, name in enumerate(names):
        result.append(
            _activation(
                name, alphas[i] if i < len(alphas) else None, betas[i] if i < len(betas) else None
            )
        )
    return result


def _reverse_index(lengths: Tensor, steps: int) -> Tensor:
    """(T, N) time indices that reverse each sequence within its own length."""
    t = torch.arange(steps).unsqueeze(1)
    reversed_t = lengths.unsqueeze(0) - 1 - t
    return torch.where(reversed_t >= 0, reversed_t, t)


def _run(x, lengths, step, states, reverse: bool):
    """Run ``step`` over time; padded steps keep the state and output zeros."""
    steps, batch = x.shape[0], x.shape[1]
    order = _reverse_index(lengths, steps) if reverse else None
    outputs = []
    for t in range(steps):
        xt = x[order[t], torch.arange(batch)] if order is not None else x[t]
        new = step(xt, states)
        live = (t < lengths).unsqueeze(1)
        states = tuple(torch.where(live, n, s) for n, s in zip(new, states, strict=True))
        outputs.append(torch.where(live, states[0], torch.zeros_like(states[0])))
    y = torch.stack(outputs) if outputs else x.new_zeros(0, batch, states[0].shape[-1])
    if order is not None and steps:
        y = torch.stack([y[order[t], torch.arange(batch)] for t in range(steps)])
    return y, states


def _common(inputs: Inputs, attrs: dict, gates: int):
    x = inputs[0]
    if attrs.get("layout", 0):
        x = x.transpose(0, 1)
    w, r = inputs[1], inputs[2]
    directions, hidden = w.shape[0], attrs.get("hidden_size", r.shape[-1])
    b = inputs[3] if len(inputs) > 3 and inputs[3] is not None else None
    if b is None:
        b = x.new_zeros(directions, 2 * gates * hidden)
    steps, batch = x.shape[0], x.shape[1]
    lengths = inputs[4] if len(inputs) > 4 and inputs[4] is not None else None
    lengths = torch.full((batch,), steps, dtype=torch.long) if lengths is None else lengths.long()
    h0 = inputs[5] if len(inputs) > 5 and inputs[5] is not None else None
    if h0 is not None and attrs.get("layout", 0):
        h0 = h0.transpose(0, 1)
    if h0 is None:
        h0 = x.new_zeros(directions, batch, hidden)
    return x, w, r, b, lengths, h0, directions, hidden


def _finish(attrs: dict, ys: list[Tensor], finals: list[tuple[Tensor, ...]]):
    y = torch.stack(ys, dim=1)  # (T, D, N, H)
    states = [torch.stack([f[i] for f in finals]) for i in range(len(finals[0]))]
    return _layout(attrs, y, states)


def _layout(attrs: dict, y: Tensor, states: list[Tensor]) -> tuple[Tensor, ...]:
    if attrs.get("layout", 0):
        y = y.permute(2, 0, 1, 3)
        states = [s.transpose(0, 1) for s in states]
    return (y, *states)


def _directions(attrs: dict, directions: int) -> list[bool]:
    mode = attrs.get("direction", "forward")
    return [False, True] if mode == "bidirectional" else [mode == "reverse"] * directions


_TORCH_GATES = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2]}  # ONNX iofc -> torch ifco; zrh -> rzh


def _plain(inputs: Inputs, attrs: dict, op: str) -> bool:
    """True when torch's fused LSTM/GRU computes exactly what the ONNX node asks."""
    lengths = inputs[4] if len(inputs) > 4 else None
    steps = inputs[0].shape[1 if attrs.get("layout", 0) else 0]
    return (
        "activations" not in attrs
        and attrs.get("clip") is None
        and not attrs.get("input_forget", 0)
        and (op == "LSTM" or attrs.get("linear_before_reset", 0))
        and (len(inputs) < 8 or inputs[7] is None)
        and (lengths is None or bool((lengths == steps).all()))
        and attrs.get("direction", "forward") != "reverse"
    )


def _fused(x, w, r, b, h0, c0, directions: int, hidden: int, op: str):
    order = _TORCH_GATES[op]
    expected = (directions, x.shape[1], hidden)
    for state in (h0, c0):
        if state is not None and tuple(state.shape) != expected:  # torch would abort, not raise
            raise ValueError(
                f"ONNX {op}: initial state of size {tuple(state.shape)}; expected {expected} "
                "(directions, batch, hidden_size; batch first with layout=1)."
            )

    def gates(t: Tensor) -> Tensor:
        return torch.cat([t.chunk(len(order), 0)[i] for i in order])

    params = []
    for d in range(directions):
        params += [gates(w[d]), gates(r[d]), gates(b[d, : b.shape[1] // 2]),
                   gates(b[d, b.shape[1] // 2 :])]  # fmt: skip
    if op == "LSTM":
        y, h, c = torch.lstm(x, (h0, c0), params, True, 1, 0.0, False, directions == 2, False)
        states = [h, c]
    else:
        y, h = torch.gru(x, h0, params, True, 1, 0.0, False, directions == 2, False)
        states = [h]
    steps, batch = x.shape[0], x.shape[1]
    return y.reshape(steps, batch, directions, hidden).transpose(1, 2), states


@operator("LSTM")
def lstm(inputs: Inputs, attrs: dict) -> tuple[Tensor, ...]:
    """ONNX LSTM: gates in the order input, output, forget, cell."""
    x, w, r, b, lengths, h0, directions, hidden = _common(inputs, attrs, 4)
    if _plain(inputs, attrs, "LSTM"):
        c0 = inputs[6] if len(inputs) > 6 and inputs[6] is not None else torch.zeros_like(h0)
        if len(inputs) > 6 and inputs[6] is not None and attrs.get("layout", 0):
            c0 = c0.transpose(0, 1)
        y, states = _fused(x, w, r, b, h0, c0, directions, hidden, "LSTM")
        return _layout(attrs, y, states)
    c0 = inputs[6] if len(inputs) > 6 and inputs[6] is not None else None
    if c0 is not None and attrs.get("layout", 0):
        c0 = c0.transpose(0, 1)
    c0 = c0 if c0 is not None else torch.zeros_like(h0)
    peep = inputs[7] if len(inputs) > 7 and inputs[7] is not None else None
    clip = attrs.get("clip")
    couple = attrs.get("input_forget", 0)
    functions = _activations(attrs, ["Sigmoid", "Tanh", "Tanh"], directions)
    ys, finals = [], []
    for d, reverse in enumerate(_directions(attrs, directions)):
        f, g, h = functions[3 * d : 3 * d + 3]
        bias = b[d, : 4 * hidden] + b[d, 4 * hidden :]
        p = peep[d] if peep is not None else x.new_zeros(3 * hidden)

        def step(xt, state, d=d, f=f, g=g, h=h, bias=bias, p=p):
            ht, ct = state
            gates = xt @ w[d].t() + ht @ r[d].t() + bias
            if clip is not None:
                gates = gates.clamp(-clip, clip)
            i, o, fg, c = gates.chunk(4, dim=-1)
            i = f(i + p[:hidden] * ct)
            fg = 1 - i if couple else f(fg + p[2 * hidden :] * ct)
            c_new = fg * ct + i * g(c)
            o = f(o + p[hidden : 2 * hidden] * c_new)
            return o * h(c_new), c_new

        y, state = _run(x, lengths, step, (h0[d], c0[d]), reverse)
        ys.append(y)
        finals.append(state)
    return _finish(attrs, ys, finals)


@operator("GRU")
def gru(inputs: Inputs, attrs: dict) -> tuple[Tensor, ...]:
    """ONNX GRU: gates in the order update (z), reset (r), hidden (h)."""
    x, w, r, b, lengths, h0, directions, hidden = _common(inputs, attrs, 3)
    if _plain(inputs, attrs, "GRU"):
        y, states = _fused(x, w, r, b, h0, None, directions, hidden, "GRU")
        return _layout(attrs, y, states)
    clip = attrs.get("clip")
    before = attrs.get("linear_before_reset", 0)
    functions = _activations(attrs, ["Sigmoid", "Tanh"], directions)
    ys, finals = [], []
    for d, reverse in enumerate(_directions(attrs, directions)):
        f, g = functions[2 * d : 2 * d + 2]
        wb, rb = b[d, : 3 * hidden], b[d, 3 * hidden :]

        def step(xt, state, d=d, f=f, g=g, wb=wb, rb=rb):
            (ht,) = state
            xz, xr, xh = (xt @ w[d].t() + wb).chunk(3, dim=-1)
            rz, rr, rh_w = r[d].chunk(3, dim=0)
            bz, br, bh = rb.chunk(3)
            z, reset = xz + ht @ rz.t() + bz, xr + ht @ rr.t() + br
            if clip is not None:
                z, reset = z.clamp(-clip, clip), reset.clamp(-clip, clip)
            z, reset = f(z), f(reset)
            if before:
                candidate = xh + reset * (ht @ rh_w.t() + bh)
            else:
                candidate = xh + (reset * ht) @ rh_w.t() + bh
            if clip is not None:
                candidate = candidate.clamp(-clip, clip)
            candidate = g(candidate)
            return ((1 - z) * candidate + z * ht,)

        y, state = _run(x, lengths, step, (h0[d],), reverse)
        ys.append(y)
        finals.append(state)
    return _finish(attrs, ys, finals)


@operator("RNN")
def rnn(inputs: Inputs, attrs: dict) -> tuple[Tensor, ...]:
    """ONNX RNN: ``h = f(x W^T + h R^T + b)``."""
    x, w, r, b, lengths, h0, directions, hidden = _common(inputs, attrs, 1)
    clip = attrs.get("clip")
    functions = _activations(attrs, ["Tanh"], directions)
    ys, finals = [], []
    for d, reverse in enumerate(_directions(attrs, directions)):
        bias = b[d, :hidden] + b[d, hidden:]

        def step(xt, state, d=d, f=functions[d], bias=bias):
            pre = xt @ w[d].t() + state[0] @ r[d].t() + bias
            if clip is not None:
                pre = pre.clamp(-clip, clip)
            return (f(pre),)

        y, state = _run(x, lengths, step, (h0[d],), reverse)
        ys.append(y)
        finals.append(state)
    return _finish(attrs, ys, finals)
