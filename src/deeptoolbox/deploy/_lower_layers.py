"""One converter per supported layer type: layer + input values -> ops (see _lower.Lowering).

A converter returns None after emitting ops that write a value named after the layer, or the
name of an existing value when the layer only passes its input through (Dropout).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from deeptoolbox import layers as L
from deeptoolbox.deploy._ir import Value
from deeptoolbox.errors import CodegenError


def tensor(t: torch.Tensor | None, size: int | None = None) -> np.ndarray:
    """A parameter as a float32 numpy array (zeros of ``size`` when the layer has none)."""
    if t is None:
        return np.zeros(size or 0, dtype=np.float32)
    array = t.detach().to("cpu", torch.float32).numpy().copy()
    if not np.all(np.isfinite(array)):
        raise CodegenError("A parameter holds NaN or Inf values; C code needs finite weights.")
    return array


def same_pads(length: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """(before, after) padding for an output of ceil(length / stride), the extra one after."""
    extent = (kernel - 1) * dilation + 1
    total = max((math.ceil(length / stride) - 1) * stride + extent - length, 0)
    return total // 2, total - total // 2


def window_pads(layer, lengths, kernel, stride, dilation) -> list[tuple[int, int]]:
    """Per-axis (before, after) padding of a convolution or pooling layer."""
    padding, dims = layer.padding, len(lengths)
    if padding == "same":
        return [same_pads(*args) for args in zip(lengths, kernel, stride, dilation, strict=True)]
    if padding == "valid":
        return [(0, 0)] * dims
    if len(padding) == dims and all(isinstance(p, int) for p in padding):
        return [(p, p) for p in padding]
    if len(padding) == dims:
        return [(int(p[0]), int(p[1])) for p in padding]
    return [(int(padding[2 * i]), int(padding[2 * i + 1])) for i in range(dims)]


def sliding(length: int, kernel: int, stride: int, dilation: int, pads: tuple[int, int]) -> int:
    return (length + pads[0] + pads[1] - (kernel - 1) * dilation - 1) // stride + 1


def _weights(b, layer, out_channels: int) -> dict[str, np.ndarray]:
    return {"weight": tensor(layer.weight), "bias": tensor(layer.bias, out_channels)}


def dense(b, name, layer, inputs: list[Value]):
    (x,) = inputs
    rows, features = (x.shape[0], x.shape[1]) if len(x.shape) == 2 else (1, x.numel)
    shape = (rows, layer.units) if len(x.shape) == 2 else (layer.units,)
    attrs = {"rows": rows, "in": features, "out": layer.units, "relu": False}
    b.emit("dense", [x.name], name, shape, [name], attrs, _weights(b, layer, layer.units))


def conv1d(b, name, layer, inputs: list[Value]):
    (x,) = inputs
    length, channels = x.shape
    k, s, d = layer.kernel_size[0], layer.stride[0], layer.dilation[0]
    (pads,) = window_pads(layer, [length], [k], [s], [d])
    out = sliding(length, k, s, d, pads)
    attrs = {
        "T": length,
        "C": channels,
        "F": layer.filters,
        "OT": out,
        "K": k,
        "S": s,
        "D": d,
        "P": pads[0],
        "G": layer.groups,
        "relu": False,
    }
    b.emit(
        "conv1d",
        [x.name],
        name,
        (out, layer.filters),
        [name],
        attrs,
        _weights(b, layer, layer.filters),
    )


def conv2d(b, name, layer, inputs: list[Value]):
    (x,) = inputs
    channels, height, width = x.shape
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.stride, layer.dilation
    pads = window_pads(layer, [height, width], [kh, kw], [sh, sw], [dh, dw])
    oh, ow = sliding(height, kh, sh, dh, pads[0]), sliding(width, kw, sw, dw, pads[1])
    attrs = {
        "C": channels,
        "H": height,
        "W": width,
        "F": layer.filters,
        "OH": oh,
        "OW": ow,
        "KH": kh,
        "KW": kw,
        "SH": sh,
        "SW": sw,
        "DH": dh,
        "DW": dw,
        "PT": pads[0][0],
        "PL": pads[1][0],
        "G": layer.groups,
        "relu": False,
    }
    b.emit(
        "conv2d",
        [x.name],
        name,
        (layer.filters, oh, ow),
        [name],
        attrs,
        _weights(b, layer, layer.filters),
    )


def transposed_conv2d(b, name, layer, inputs: list[Value]):
    (x,) = inputs
    channels, height, width = x.shape
    (kh, kw), (sh, sw) = layer.kernel_size, layer.stride
    (pt, pl), (th, tw) = layer.padding, layer.trim
    oh, ow = (height - 1) * sh - 2 * pt + kh - th, (width - 1) * sw - 2 * pl + kw - tw
    attrs = {
        "C": channels,
        "H": height,
        "W": width,
        "F": layer.filters,
        "OH": oh,
        "OW": ow,
        "KH": kh,
        "KW": kw,
        "SH": sh,
        "SW": sw,
        "PT": pt,
        "PL": pl,
        "relu": False,
    }
    b.emit(
        "tconv2d",
        [x.name],
        name,
        (layer.filters, oh, ow),
        [name],
        attrs,
        _weights(b, layer, layer.filters),
    )


def pool1d(b, name, layer, inputs: list[Value]):
    (x,) = inputs
    length, channels = x.shape
    k, s = layer.pool_size[0], layer.stride[0]
    (pads,) = window_pads(layer, [length], [k], [s], [1])
    out = sliding(length, k, s, 1, pads)
    attrs = {
        "mode": layer.mode,
        "T": length,
        "C": channels,
        "OT": out,
        "K": k,
        "S": s,
        "P": pads[0],
    }
    b.emit("pool1d", [x.name], name, (out, channels), [name], attrs)


def pool2d(b, name, layer, inputs: list[Value]):
    (x,) = inputs
    channels, height, width = x.shape
    (kh, kw), (sh, sw) = layer.pool_size, layer.stride
    pads = window_pads(layer, [height, width], [kh, kw], [sh, sw], [1, 1])
    oh, ow = sliding(height, kh, sh, 1, pads[0]), sliding(width, kw, sw, 1, pads[1])
    attrs = {
        "mode": layer.mode,
        "C": channels,
        "H": height,
        "W": width,
        "OH": oh,
        "OW": ow,
        "KH": kh,
        "KW": kw,
        "SH": sh,
        "SW": sw,
        "PT": pads[0][0],
        "PL": pads[1][0],
    }
    b.emit("pool2d", [x.name], name, (channels, oh, ow), [name], attrs)


def global_pool(b, name, layer, inputs: list[Value]):
    (x,) = inputs
    last = len(x.shape) == 2
    channels = x.shape[-1] if last else x.shape[0]
    attrs = {
        "mode": "max" if layer.reduce == "max" else "avg",
        "channels": channels,
        "positions": x.numel // channels,
        "channels_last": last,
    }
    b.emit("gpool", [x.name], name, (channels,), [name], attrs)


def channel_layout(shape: tuple[int, ...]) -> tuple[int, int]:
    """(channels, inner): the channel axis is the last for rank <= 2, the first otherwise."""
    if len(shape) <= 2:
        return shape[-1], 1
    return shape[0], math.prod(shape[1:])


def batch_norm(b, name, layer, inputs: list[Value]):
    (x,) = inputs
    channels, inner = channel_layout(x.shape)
    gamma, beta = tensor(layer.weight).astype(np.float64), tensor(layer.bias).astype(np.float64)
    mean = tensor(layer.running_mean).astype(np.float64)
    var = tensor(layer.running_var).astype(np.float64)
    scale = gamma / np.sqrt(var + layer.epsilon)
    params = {"scale": scale.astype(np.float32), "shift": (beta - mean * scale).astype(np.float32)}
    b.emit(
        "affine", [x.name], name, x.shape, [name], {"channels": channels, "inner": inner}, params
    )


def _activation(fn: str, alpha_attr: str | None = None):
    def convert(b, name, layer, inputs: list[Value]):
        (x,) = inputs
        kind = fn
        if fn == "gelu" and layer.approximation == "tanh":
            kind = "gelu_tanh"
        alpha = float(getattr(layer, alpha_attr)) if alpha_attr else 0.0
        b.emit("act", [x.name], name, x.shape, [name], {"fn": kind, "alpha": alpha})

    return convert


def softmax(b, name, layer, inputs: list[Value]):
    (x,) = inputs
    channels, inner = channel_layout(x.shape)
    attrs = {"outer": x.numel // (channels * inner), "channels": channels, "inner": inner}
    b.emit("softmax", [x.name], name, x.shape, [name], attrs)


def _elementwise(kind: str):
    def convert(b, name, layer, inputs: list[Value]):
        b.emit(kind, [v.name for v in inputs], name, inputs[0].shape, [name])

    return convert


def concatenation(b, name, layer, inputs: list[Value]):
    rank = len(inputs[0].shape)
    if layer.axis == "channel":
        axis = rank - 1 if rank <= 2 else 0
    elif layer.axis == "time":
        axis = 0
    else:
        axis = layer.axis % rank
    outer = math.prod(inputs[0].shape[:axis])
    inners = [math.prod(v.shape[axis:]) for v in inputs]
    shape = list(inputs[0].shape)
    shape[axis] = sum(v.shape[axis] for v in inputs)
    attrs = {"outer": outer, "inners": inners}
    b.emit("concat", [v.name for v in inputs], name, tuple(shape), [name], attrs)


def reshape(b, name, layer, inputs: list[Value]):
    (x,) = inputs
    shape = layer.output_shape([x.shape])
    b.emit("reshape", [x.name], name, tuple(shape), [name])


def dropout(b, name, layer, inputs: list[Value]):
    return inputs[0].name


def last_is_last_step(layer) -> bool:
    """Whether the layer gives the last step of its output sequence (``output_mode="last"``,
    MATLAB's meaning for bidirectional layers) rather than each direction's final state."""
    return layer.output_mode == "last"


def recurrent(b, name, layer, inputs: list[Value]):
    (x,) = inputs
    length = x.shape[0]
    hidden, directions, cell = layer.hidden_size, 2 if layer.bidirectional else 1, layer.cell
    rnn = layer.rnn
    source = x.name
    for index in range(layer.num_layers):
        last = index == layer.num_layers - 1
        sequence = not last or layer.output_mode == "sequence"
        output = name if last else f"{name}/l{index}"
        params = {}
        for d in range(directions):
            suffix = f"_l{index}" + ("_reverse" if d else "")
            wx, wh = (
                tensor(getattr(rnn, "weight_ih" + suffix)),
                tensor(getattr(rnn, "weight_hh" + suffix)),
            )
            bx = tensor(getattr(rnn, "bias_ih" + suffix, None), wx.shape[0])
            bh = tensor(getattr(rnn, "bias_hh" + suffix, None), wx.shape[0])
            params |= {f"wx{d}": wx, f"wh{d}": wh, f"bx{d}": bx, f"bh{d}": bh}
        channels = b.graph.values[source].shape[1]
        shape = (length, directions * hidden) if sequence else (directions * hidden,)
        attrs = {
            "T": length,
            "C": channels,
            "H": hidden,
            "directions": directions,
            "sequence": sequence,
            "last_step": not sequence and directions == 2 and last_is_last_step(layer),
        }
        b.emit(cell, [source], output, shape, [name], attrs, params)
        source = output


CONVERTERS = {
    L.Dense: dense,
    L.Conv1d: conv1d,
    L.Conv2d: conv2d,
    L.TransposedConv2d: transposed_conv2d,
    L.MaxPool1d: pool1d,
    L.AvgPool1d: pool1d,
    L.MaxPool2d: pool2d,
    L.AvgPool2d: pool2d,
    L.GlobalAvgPool: global_pool,
    L.GlobalMaxPool: global_pool,
    L.BatchNorm: batch_norm,
    L.ReLU: _activation("relu"),
    L.LeakyReLU: _activation("leaky_relu", "scale"),
    L.ELU: _activation("elu", "alpha"),
    L.GELU: _activation("gelu"),
    L.Sigmoid: _activation("sigmoid"),
    L.Tanh: _activation("tanh"),
    L.Swish: _activation("swish"),
    L.Softmax: softmax,
    L.Addition: _elementwise("add"),
    L.Multiplication: _elementwise("mul"),
    L.Concatenation: concatenation,
    L.Flatten: reshape,
    L.Reshape: reshape,
    L.Dropout: dropout,
    L.LSTM: recurrent,
    L.GRU: recurrent,
}
