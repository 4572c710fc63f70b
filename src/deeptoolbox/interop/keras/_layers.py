"""Keras layer configurations and weights -> toolbox layers, with layout conversion.

Keras images and volumes are channels-last (N, H, W, C) and (N, D, H, W, C); the toolbox's
are channels-first (N, C, H, W) and (N, C, D, H, W), so convolution kernels are transposed and
a Flatten or Reshape of images or volumes permutes to Keras's order first. Sequences are
(N, T, C) in both. Each converter returns a chain of
``(suffix, layer, weights)``: the first layer takes the Keras layer's inputs, the last one's
output is the Keras layer's output, and ``weights`` maps parameter names to arrays.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from deeptoolbox import layers as L
from deeptoolbox.errors import ModelImportError, _KerasUnsupported
from deeptoolbox.interop._operators import TorchFunction
from deeptoolbox.interop.keras._common import (
    Chain,
    activation_layer,
)
from deeptoolbox.interop.keras._common import activation_name as _activation_name
from deeptoolbox.interop.keras._common import channels_last as _channels_last
from deeptoolbox.interop.keras._common import require as _require
from deeptoolbox.interop.keras._common import with_activation as _with_activation
from deeptoolbox.interop.keras._more_layers import (
    LAMBDA_REFUSED,
    MORE_CONVERTERS,
    time_distributed_over,
)
from deeptoolbox.layers._base import Shape

MERGE_MODES = ("concat", "sum", "mul", "ave", None)  # Keras Bidirectional's merge_mode


def _permute(order: list[int]) -> TorchFunction:
    return TorchFunction("torch.Tensor.permute", arguments=[{"input": 0}, *order])


def to_keras_order(rank: int) -> list[int]:
    """The permutation of a batch of images or volumes (sample rank 3 or 4) from the toolbox's
    channels-first layout to Keras's channels-last: [0, 2, 3, 1] or [0, 2, 3, 4, 1].

    Example:
        >>> to_keras_order(4)
        [0, 2, 3, 4, 1]
    """
    return [0, *range(2, rank + 1), 1]


def _from_keras_order(rank: int) -> list[int]:
    return [0, rank, *range(1, rank)]


def _dense(config: dict, weights: list, shapes: list[Shape]) -> Chain:
    rank = len(shapes[0])
    bias = bool(config.get("use_bias", True))
    if rank in (3, 4):  # on each pixel's / voxel's channels: a 1 x 1 (x 1) convolution
        params = {"weight": weights[0].T.reshape(*weights[0].T.shape, *[1] * (rank - 1))}
        cls = L.Conv2d if rank == 3 else L.Conv3d
        layer = cls(config["units"], 1, padding="valid", bias=bias)
    else:
        params = {"weight": weights[0].T}
        layer = L.Dense(config["units"], bias=bias)
    if bias:
        params["bias"] = weights[1]
    return _with_activation([("", layer, params)], config)


def _conv(config: dict, weights: list, shapes: list[Shape], dims: int) -> Chain:
    _channels_last(config)
    padding = config.get("padding", "valid")
    allowed = ("same", "valid", "causal") if dims == 1 else ("same", "valid")
    _require(padding in allowed, f"padding={padding!r} (only {', '.join(map(repr, allowed))})")
    kernel = weights[0]  # (k..., in/groups, filters) -> (filters, in/groups, k...)
    order = (dims + 1, dims, *range(dims))
    params = {"weight": np.transpose(kernel, order)}
    if config.get("use_bias", True):
        params["bias"] = weights[1]
    cls = {1: L.Conv1d, 2: L.Conv2d, 3: L.Conv3d}[dims]
    layer = cls(
        config["filters"], tuple(config["kernel_size"]), stride=tuple(config["strides"]),
        padding=padding, dilation=tuple(config.get("dilation_rate", 1)),
        groups=config.get("groups", 1), bias=config.get("use_bias", True),
    )  # fmt: skip
    return _with_activation([("", layer, params)], config)


def _transposed_conv1d(config: dict, weights: list, shapes: list[Shape]) -> Chain:
    """Conv1DTranspose: "same" is cropping="same"; "valid" no cropping (kernel >= strides)."""
    _channels_last(config)
    (k,), (s,) = config["kernel_size"], config["strides"]
    padding = config.get("padding", "valid")
    _require(padding in ("same", "valid") and k >= s, f"padding={padding!r} with kernel_size="
             f"{k} < strides={s} (only kernel_size >= strides)")  # fmt: skip
    _require(config.get("output_padding") is None, "output_padding")
    _require(list(config.get("dilation_rate", [1])) in ([1], 1), "dilation_rate > 1")
    params = {"weight": np.transpose(weights[0], (2, 1, 0))}  # (k, filters, in) -> (in, filters, k)
    if config.get("use_bias", True):
        params["bias"] = weights[1]
    layer = L.TransposedConv1d(config["filters"], k, stride=s,
                               cropping="same" if padding == "same" else 0,
                               bias=config.get("use_bias", True))  # fmt: skip
    return _with_activation([("", layer, params)], config)


def _pool(config: dict, weights: list, shapes: list[Shape], kind: str, dims: int) -> Chain:
    _channels_last(config)
    padding = config.get("padding", "valid")
    _require(padding in ("same", "valid"), f"padding={padding!r} (only 'same' and 'valid')")
    size = config["pool_size"]
    strides = config.get("strides") or size
    if kind == "avg" and padding == "same":  # Keras leaves the padding out of the average
        layer = L.AvgPoolExcludingPadding(list(size), stride=list(strides))
        return [("", layer, {})]
    cls = {("max", 1): L.MaxPool1d, ("max", 2): L.MaxPool2d, ("max", 3): L.MaxPool3d,
           ("avg", 1): L.AvgPool1d, ("avg", 2): L.AvgPool2d,
           ("avg", 3): L.AvgPool3d}[(kind, dims)]  # fmt: skip
    return [("", cls(tuple(size), stride=tuple(strides), padding=padding), {})]


def _global(config: dict, weights: list, shapes: list[Shape], kind: str) -> Chain:
    _channels_last(config)
    if config.get("_mask"):  # GlobalAveragePooling1D after a padding mask: real steps only
        _require(not config.get("keepdims", False), "keepdims=True after a padding mask")
        return [("", L.GlobalAvgPool(has_padding_mask=True), {})]
    chain: Chain = [("", L.GlobalAvgPool() if kind == "avg" else L.GlobalMaxPool(), {})]
    if config.get("keepdims", False):  # (C,) -> (C, 1, 1[, 1]) for images / volumes,
        rank = len(shapes[0])  # (1, C) for sequences
        channels = shapes[0][0] if rank >= 3 else shapes[0][-1]
        kept = (channels, *[1] * (rank - 1)) if rank >= 3 else (1, channels)
        chain.append(("keepdims", L.Reshape(kept), {}))
    return chain


def _batchnorm(config: dict, weights: list, shapes: list[Shape]) -> Chain:
    axis = config.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    _require(axis in (-1, len(shapes[0])), f"axis={axis!r} (only the channel axis, -1)")
    rest = list(weights)
    channels = rest[-1].shape[0]
    gamma = rest.pop(0) if config.get("scale", True) else np.ones(channels, np.float32)
    beta = rest.pop(0) if config.get("center", True) else np.zeros(channels, np.float32)
    params = {"weight": gamma, "bias": beta, "running_mean": rest[0], "running_var": rest[1]}
    momentum = 1.0 - float(config.get("momentum", 0.99))
    layer = L.BatchNorm(epsilon=float(config.get("epsilon", 1e-3)), momentum=max(momentum, 1e-6))
    return [("", layer, params)]


def _layernorm(config: dict, weights: list, shapes: list[Shape]) -> Chain:
    rank = len(shapes[0])
    _require(rank <= 3, "LayerNormalization on volumes")
    axis = config.get("axis", -1)
    axes = sorted({int(a) % (rank + 1) for a in (axis if isinstance(axis, list) else [axis])})
    _require(0 not in axes, f"axis={axis!r} (the batch axis)")
    _require(not config.get("rms_scaling", False), "rms_scaling=True")
    keras_sizes = [shapes[0][1], shapes[0][2], shapes[0][0]] if rank == 3 else list(shapes[0])
    size = [keras_sizes[a - 1] if a in axes else 1 for a in range(1, rank + 1)]
    _require(None not in size, "normalization over a free (None) length")
    rest = list(weights)
    count = int(np.prod(size))
    gamma = rest.pop(0) if config.get("scale", True) else np.ones(count, np.float32)
    beta = rest.pop(0) if config.get("center", True) else np.zeros(count, np.float32)
    epsilon = float(config.get("epsilon", 1e-3))
    if rank <= 2 and axes == [rank]:  # the channels of features or sequences
        return [("", L.LayerNorm(epsilon=epsilon), {"weight": gamma, "bias": beta})]
    order = (2, 0, 1) if rank == 3 else tuple(range(rank))  # Keras (H, W, C) -> (C, H, W)
    gamma, beta = (np.transpose(np.reshape(p, size), order) for p in (gamma, beta))
    dims = [{1: 2, 2: 3, 3: 1}[a] for a in axes] if rank == 3 else axes
    return [("", L.AxisLayerNorm(dims, epsilon=epsilon), {"weight": gamma, "bias": beta})]


def _flatten(config: dict, weights: list, shapes: list[Shape]) -> Chain:
    rank = len(shapes[0])
    if rank in (3, 4):  # Keras flattens (H, W, C) / (D, H, W, C): permute to that order first
        return [("permute", _permute(to_keras_order(rank)), {}), ("", L.Flatten(), {})]
    return [("", L.Flatten(), {})]


def _reshape(config: dict, weights: list, shapes: list[Shape]) -> Chain:
    target = [int(d) for d in config["target_shape"]]
    chain: Chain = []
    if len(shapes[0]) in (3, 4):
        chain.append(("permute_in", _permute(to_keras_order(len(shapes[0]))), {}))
    chain.append(("", L.Reshape(target), {}))
    if len(target) in (3, 4):  # an image / volume in Keras's channels-last: to channels-first
        chain.append(("permute_out", _permute(_from_keras_order(len(target))), {}))
    return chain


def _activation(config: dict, weights: list, shapes: list[Shape]) -> Chain:
    layer = activation_layer(config.get("activation"))
    return [("", layer if layer is not None else TorchFunction("torch.clone"), {})]


def _relu(config: dict) -> Chain:
    """Keras's ReLU(max_value, negative_slope, threshold): ReLU or, with a ceiling, ClippedReLU."""
    slope, threshold = config.get("negative_slope", 0.0), config.get("threshold", 0.0)
    _require(not slope and not threshold, f"negative_slope={slope}, threshold={threshold}")
    ceiling = config.get("max_value")
    return [("", L.ReLU() if ceiling is None else L.ClippedReLU(float(ceiling)), {})]


def _prelu(config: dict, weights: list, shapes: list[Shape]) -> Chain:
    """One alpha per channel (all other axes shared) or a single shared alpha."""
    alpha = np.asarray(weights[0])
    if alpha.size == 1:
        return [("", L.PReLU(channel_wise=False), {"alpha": alpha.reshape(1)})]
    channels = shapes[0][-1] if len(shapes[0]) <= 2 else shapes[0][0]
    per_channel = alpha.shape[-1] == channels and alpha.size == channels
    _require(per_channel, f"alpha of shape {alpha.shape} (only one per channel, or one in all)")
    return [("", L.PReLU(), {"alpha": alpha.reshape(-1)})]


def _embedding(config: dict, weights: list, shapes: list[Shape]) -> Chain:
    layer = L.Embedding(config["input_dim"], config["output_dim"])
    return [("", layer, {"weight": weights[0]})]


def _recurrent_checks(config: dict, cell: str) -> None:
    for option in ("go_backwards", "stateful", "return_state"):
        _require(not config.get(option, False), f"{option}=True")
    _require(
        _activation_name(config.get("activation", "tanh")) == "tanh", "activation other than tanh"
    )
    recurrent = _activation_name(config.get("recurrent_activation", "sigmoid"))
    _require(recurrent == "sigmoid", f"recurrent_activation={recurrent!r} (only 'sigmoid')")
    if cell == "gru":
        _require(config.get("reset_after", True), "reset_after=False (torch's GRU resets after)")


def _rnn_params(cell: str, weights: list, units: int, suffix: str, use_bias: bool) -> dict:
    kernel, recurrent = weights[0], weights[1]
    if cell == "rnn":  # SimpleRNN: one gate, one bias
        bias = weights[2] if use_bias else np.zeros(units, np.float32)
        kernels = (kernel.T, recurrent.T)
        input_bias, recurrent_bias = bias, np.zeros_like(bias)
    elif cell == "lstm":  # Keras gates i, f, c, o are torch's i, f, g, o
        bias = weights[2] if use_bias else np.zeros(4 * units, np.float32)
        kernels = (kernel.T, recurrent.T)
        input_bias, recurrent_bias = bias, np.zeros_like(bias)
    else:  # Keras gates z, r, h -> torch r, z, n; reset_after keeps input and recurrent biases
        bias = weights[2].reshape(2, -1) if use_bias else np.zeros((2, 3 * units), np.float32)
        reorder = np.r_[units : 2 * units, 0:units, 2 * units : 3 * units]
        kernels = (kernel.T[reorder], recurrent.T[reorder])
        input_bias, recurrent_bias = bias[0][reorder], bias[1][reorder]
    return {
        f"rnn.weight_ih_l0{suffix}": kernels[0], f"rnn.weight_hh_l0{suffix}": kernels[1],
        f"rnn.bias_ih_l0{suffix}": input_bias, f"rnn.bias_hh_l0{suffix}": recurrent_bias,
    }  # fmt: skip


def _masked_steps(chain: Chain, config: dict, return_sequences: bool, mode: str) -> Chain:
    """Append what Keras gives at masked steps, when the layer reads a padding mask."""
    if not config.get("_mask"):
        return chain
    return chain + [("masked", L.MaskedSteps(mode if return_sequences else "last"), {})]


def _recurrent(config: dict, weights: list, shapes: list[Shape], cell: str) -> Chain:
    _recurrent_checks(config, cell)
    units, use_bias = config["units"], config.get("use_bias", True)
    sequences = config.get("return_sequences", False)
    layer = _RECURRENT_LAYERS[cell](
        units, output_mode="sequence" if sequences else "last",
        has_padding_mask=bool(config.get("_mask")),
    )  # fmt: skip
    chain = [("", layer, _rnn_params(cell, weights, units, "", use_bias))]
    hold = "zero" if config.get("zero_output_for_mask", False) else "hold"
    return _masked_steps(chain, config, sequences, hold)


_RECURRENT_LAYERS = {"lstm": L.LSTM, "gru": L.GRU, "rnn": L.SimpleRNN}


def _bidirectional(config: dict, weights: list, shapes: list[Shape]) -> Chain:
    merge = config.get("merge_mode", "concat")
    _require(
        merge in MERGE_MODES,
        f"merge_mode={merge!r} (supported: {', '.join(map(repr, MERGE_MODES))})",
    )
    inner = config["layer"]
    kind = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "rnn"}.get(inner.get("class_name"))
    _require(kind is not None, f"Bidirectional around {inner.get('class_name')}")
    cfg = inner["config"]
    _recurrent_checks(cfg, kind)
    units, use_bias = cfg["units"], cfg.get("use_bias", True)
    half = len(weights) // 2
    params = _rnn_params(kind, weights[:half], units, "", use_bias)
    params |= _rnn_params(kind, weights[half:], units, "_reverse", use_bias)
    sequences = cfg.get("return_sequences", False)
    layer = _RECURRENT_LAYERS[kind](
        units, output_mode="sequence" if sequences else "final_state", bidirectional=True,
        has_padding_mask=bool(config.get("_mask")),
    )  # fmt: skip
    # Keras's Bidirectional zeroes masked steps of returned sequences
    chain = _masked_steps([("", layer, params)], config, sequences, "zero")
    if merge in ("concat", None):  # None: the builder takes each half where it is used
        return chain
    return [*chain, ("merge", L.MergeDirections(merge), {})]


def _attention(config: dict, weights: list, shapes: list[Shape]) -> Chain:
    heads, key_dim = config["num_heads"], config["key_dim"]
    value_dim = config.get("value_dim") or key_dim
    bias = config.get("use_bias", True)
    _require(not config.get("use_gate", False), "use_gate=True")
    _require(config.get("sliding_window") is None, "sliding_window")
    axes = config.get("attention_axes")
    _require(axes in (None, [1], 1), f"attention_axes={axes!r} (only the time axis)")
    output = config.get("output_shape")
    output = output[0] if isinstance(output, list) else output
    has_key, masks = bool(config.get("_has_key")), list(config.get("_masks", []))
    kernels = weights[0::2] if bias else weights
    q, k, v, o = kernels
    inputs = [shapes[0][-1], shapes[2 if has_key else 1][-1], shapes[1][-1]]
    parts = zip(("query", "key", "value"), (q, k, v), inputs, strict=True)
    params = {f"{part}_weight": w.reshape(c, -1).T for part, w, c in parts}
    params["output_weight"] = o.reshape(heads * value_dim, -1).T
    if bias:
        for part, b in zip(("query", "key", "value", "output"), weights[1::2], strict=True):
            params[f"{part}_bias"] = b.reshape(-1)
    causal = bool(config.get("_causal", False))
    if config.get("_self") and not masks and bias and value_dim == key_dim:
        layer = L.SelfAttention(heads, key_channels=heads * key_dim, output_channels=output,
                                causal=causal)  # fmt: skip
        return [("", layer, params)]
    layer = L.CrossAttention(
        heads, key_dim=key_dim, value_dim=value_dim, output_channels=output, bias=bias,
        causal=causal, has_key=has_key, masks=masks,
    )  # fmt: skip
    return [("", layer, params)]


def _dot_attention(config: dict, weights: list, shapes: list[Shape]) -> Chain:
    """Keras's Attention (Luong's dot-product attention): the toolbox's one-head Attention."""
    mode = config.get("score_mode", "dot")
    _require(mode == "dot", f"score_mode={mode!r} (only 'dot')")
    scale = float(np.asarray(weights[0]).reshape(-1)[0]) if config.get("use_scale") else 1.0
    causal = "causal" if config.get("_causal") else "none"
    layer = L.Attention(1, scale=scale, attention_mask=causal,
                        dropout=float(config.get("dropout", 0.0)))  # fmt: skip
    return [("", layer, {})]


def _elementwise(shapes: list[Shape], layer: type, function: str) -> Chain:
    """Add / Multiply: the toolbox layer for inputs of one size; Keras also broadcasts (a
    squeeze-and-excitation gate (1, 1, C) times an image (H, W, C)), as torch does."""
    if all(tuple(s) == tuple(shapes[0]) for s in shapes):
        return [("", layer(len(shapes)), {})]
    _require(len(shapes) == 2, f"broadcasting over {len(shapes)} inputs (two at most)")
    operation = TorchFunction(function, arguments=[{"input": 0}, {"input": 1}], num_inputs=2)
    return [("", operation, {})]


def _concatenate(config: dict, weights: list, shapes: list[Shape]) -> Chain:
    rank = len(shapes[0])
    axis = config.get("axis", -1) % (rank + 1)  # Keras axis, batch included
    if rank >= 3:  # Keras (H, W, C) axes 1, 2, 3 -> toolbox (C, H, W) axes 1, 2, 0 (volumes alike)
        axis = "channel" if axis == rank else axis
    else:
        axis = "channel" if axis == rank else axis - 1
    return [("", L.Concatenation(len(shapes), axis=axis), {})]


def _keras_permute(config: dict, weights: list, shapes: list[Shape]) -> Chain:
    dims = [int(d) - 1 for d in config["dims"]]  # Keras's axes, batch excluded, 0-based
    rank = len(dims)
    if rank not in (3, 4):
        return [("", _permute([0, *(d + 1 for d in dims)]), {})]
    # a Keras image K = (a, b, c) is the toolbox's T = (c, a, b): K[i] = T[(i + 1) % rank]
    # (volumes alike); the toolbox's output axis m is Keras's output axis (m - 1) % rank
    moved = [dims[(m - 1) % rank] for m in range(rank)]
    return [("", _permute([0, *((d + 1) % rank + 1 for d in moved)]), {})]


def _zero_padding(config: dict, weights: list, shapes: list[Shape]) -> Chain:
    padding = config.get("padding", 1)
    if len(shapes[0]) == 2:  # sequences (T, C): pad time
        before, after = (padding, padding) if isinstance(padding, int) else padding
        pads = [0, 0, before, after]
    elif len(shapes[0]) == 4:  # volumes: ((d0, d1), (h0, h1), (w0, w1)), torch's order reversed
        _channels_last(config)
        axes = [padding] * 3 if isinstance(padding, int) else list(padding)
        pairs = [(a, a) if isinstance(a, int) else tuple(a) for a in axes]
        pads = [int(p) for pair in reversed(pairs) for p in pair]
    else:
        _channels_last(config)
        rows, cols = (padding, padding) if isinstance(padding, int) else padding
        rows = (rows, rows) if isinstance(rows, int) else rows
        cols = (cols, cols) if isinstance(cols, int) else cols
        pads = [cols[0], cols[1], rows[0], rows[1]]
    layer = TorchFunction("torch.nn.functional.pad", arguments=[{"input": 0}, {"list": pads}])
    return [("", layer, {})]


OPERATIONS = {
    "NotEqual": "torch.ne", "Equal": "torch.eq", "LogicalAnd": "torch.logical_and",
    "LogicalOr": "torch.logical_or", "LogicalNot": "torch.logical_not", "Any": "torch.any",
    "All": "torch.all", "Multiply": "torch.mul", "Add": "torch.add", "Copy": "torch.clone",
}  # fmt: skip


def _operation(config: dict, weights: list, shapes: list[Shape], kind: str) -> Chain:
    """A keras.ops call saved in a Functional model (Keras saves padding masks this way)."""
    arguments, index = [], 0
    for value in config.get("_arguments", []):
        if value is None:
            arguments.append({"input": index})
            index += 1
        else:
            _require(isinstance(value, int | float | bool), f"the constant argument {value!r}")
            arguments.append(value)
    keywords = {}
    if kind in ("Any", "All"):
        axis = config.get("axis")
        _require(isinstance(axis, int) and len(shapes[0]) <= 2, f"axis={axis!r} on images")
        keywords = {"dim": axis, "keepdim": bool(config.get("keepdims"))}
    layer = TorchFunction(OPERATIONS[kind], arguments=arguments, keywords=keywords,
                          num_inputs=len(shapes))  # fmt: skip
    return [("", layer, {})]


CONVERTERS: dict[str, Callable[[dict, list, list[Shape]], Chain]] = {
    "Permute": _keras_permute,
    "ZeroPadding1D": _zero_padding,
    "ZeroPadding2D": _zero_padding,
    "ZeroPadding3D": _zero_padding,
    "Dense": _dense,
    "Conv1D": lambda c, w, s: _conv(c, w, s, 1),
    "Conv2D": lambda c, w, s: _conv(c, w, s, 2),
    "Conv3D": lambda c, w, s: _conv(c, w, s, 3),
    "Conv1DTranspose": _transposed_conv1d,
    "MaxPooling1D": lambda c, w, s: _pool(c, w, s, "max", 1),
    "MaxPooling2D": lambda c, w, s: _pool(c, w, s, "max", 2),
    "AveragePooling1D": lambda c, w, s: _pool(c, w, s, "avg", 1),
    "AveragePooling2D": lambda c, w, s: _pool(c, w, s, "avg", 2),
    "MaxPooling3D": lambda c, w, s: _pool(c, w, s, "max", 3),
    "AveragePooling3D": lambda c, w, s: _pool(c, w, s, "avg", 3),
    "GlobalAveragePooling1D": lambda c, w, s: _global(c, w, s, "avg"),
    "GlobalAveragePooling2D": lambda c, w, s: _global(c, w, s, "avg"),
    "GlobalMaxPooling1D": lambda c, w, s: _global(c, w, s, "max"),
    "GlobalMaxPooling2D": lambda c, w, s: _global(c, w, s, "max"),
    "GlobalAveragePooling3D": lambda c, w, s: _global(c, w, s, "avg"),
    "GlobalMaxPooling3D": lambda c, w, s: _global(c, w, s, "max"),
    "BatchNormalization": _batchnorm,
    "LayerNormalization": _layernorm,
    "Dropout": lambda c, w, s: [("", L.Dropout(float(c.get("rate", 0.5))), {})],
    **{
        f"SpatialDropout{d}D": lambda c, w, s: [("", L.SpatialDropout(float(c["rate"])), {})]
        for d in (1, 2, 3)
    },
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Activation": _activation,
    "ReLU": lambda c, w, s: _relu(c),
    "PReLU": _prelu,
    "LeakyReLU": lambda c, w, s: [
        ("", L.LeakyReLU(float(c.get("negative_slope", c.get("alpha", 0.3)))), {})
    ],
    "ELU": lambda c, w, s: [("", L.ELU(float(c.get("alpha", 1.0))), {})],
    "Softmax": lambda c, w, s: [("", L.Softmax(), {})],
    "Embedding": _embedding,
    "Masking": lambda c, w, s: [("", L.MaskedSteps("zero"), {})],
    "LSTM": lambda c, w, s: _recurrent(c, w, s, "lstm"),
    "GRU": lambda c, w, s: _recurrent(c, w, s, "gru"),
    "SimpleRNN": lambda c, w, s: _recurrent(c, w, s, "rnn"),
    "Bidirectional": _bidirectional,
    "MultiHeadAttention": _attention,
    "Attention": _dot_attention,
    "Add": lambda c, w, s: _elementwise(s, L.Addition, "torch.add"),
    "Multiply": lambda c, w, s: _elementwise(s, L.Multiplication, "torch.mul"),
    "Concatenate": _concatenate,
    **MORE_CONVERTERS,
}
CONVERTERS["TimeDistributed"] = lambda c, w, s: time_distributed_over(CONVERTERS, c, w, s)


OPERATION_CONVERTERS: dict[str, Callable[[dict, list, list[Shape]], Chain]] = {
    kind: (lambda k: lambda c, w, s: _operation(c, w, s, k))(kind) for kind in OPERATIONS
}


def supported_keras_layers() -> list[str]:
    """Names of the Keras layer classes import_keras converts (InputLayer aside).

    Example:
        >>> "LSTM" in supported_keras_layers()
        True
    """
    return sorted(CONVERTERS)


def convert_layer(
    class_name: str,
    config: dict,
    weights: list,
    shapes: list[Shape],
    where: str,
    fallback: Callable[[str], Chain] | None = None,
) -> Chain:
    """Convert one Keras layer; raise ModelImportError naming it for anything unsupported, or
    return ``fallback(reason)`` (a placeholder) for an unknown class or unsupported option."""
    if "_arguments" in config:  # a keras.ops call
        converter = OPERATION_CONVERTERS.get(class_name)
        if converter is None and fallback is not None:
            return fallback("an unsupported keras.ops operation")
        if converter is None:
            raise ModelImportError(
                f"{where} is the keras.ops operation {class_name}, which import_keras does not "
                f"support. Supported operations: {', '.join(sorted(OPERATIONS))}."
            )
    else:
        converter = CONVERTERS.get(class_name)
    if class_name == "Lambda":  # even as a placeholder: its code is never read
        raise ModelImportError(f"{where} {LAMBDA_REFUSED}.")
    if converter is None and fallback is not None:
        return fallback("")
    if converter is None:
        raise ModelImportError(
            f"{where} is a {class_name}, which import_keras does not support (a custom layer "
            "can be kept as a KerasPlaceholder to replace: import_keras(..., "
            "unsupported='placeholder')). Supported layers: "
            f"InputLayer, {', '.join(supported_keras_layers())}."
        )
    try:
        return converter(config, weights, shapes)
    except _KerasUnsupported as err:
        if fallback is not None:
            return fallback(f"it uses {err}")
        raise ModelImportError(
            f"{where} ({class_name}) uses {err}, which has no toolbox equivalent."
        ) from None
    except (KeyError, IndexError, ValueError, TypeError) as err:
        raise ModelImportError(
            f"{where} ({class_name}) has a configuration or weights import_keras cannot read: "
            f"{type(err).__name__}: {err}"
        ) from err
