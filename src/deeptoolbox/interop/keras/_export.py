"""export_keras: a Network -> a Keras 3 ``.keras`` file, written with zipfile, json and h5py.

The file holds a Functional model: ``config.json`` (the architecture), ``metadata.json`` and
``model.weights.h5`` in Keras 3's layout. Keras images and volumes are channels-last, so their
inputs are declared (H, W, C) and (D, H, W, C), kernels are transposed, and a Flatten of images
or volumes permutes to the toolbox's channels-first order first, so ``keras.saving.load_model(path).predict`` gives the network's outputs
for the same data in Keras's layout. Recurrent layers with a padding-mask port are called with
Keras's ``mask=`` argument; masks computed in the network and a few element-wise operations
are written as ``keras.ops`` calls (``not_equal``, ``any``, ``copy``...), as Keras saves them.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deeptoolbox import layers as L
from deeptoolbox._atomic import atomic_path
from deeptoolbox.errors import ModelExportError, ModelImportError
from deeptoolbox.interop._operators import TorchFunction
from deeptoolbox.interop._samples import sample_inputs
from deeptoolbox.interop._verify import compare_outputs, reference, usable_keras
from deeptoolbox.interop.keras._common import array as _array
from deeptoolbox.interop.keras._common import spec as _spec
from deeptoolbox.interop.keras._export_more import (
    MORE_EXPORTERS,
    depthwise_conv,
    merged_directions,
    torch_function_layer,
)
from deeptoolbox.interop.keras._files import file_keys
from deeptoolbox.interop.keras._layers import OPERATIONS
from deeptoolbox.interop.keras._metadata import KEY, normalization_spec, toolbox_entry
from deeptoolbox.layers._base import Shape, layer_type_name
from deeptoolbox.layers._input import InputLayer
from deeptoolbox.network import Network

KERAS_VERSION = "3.0.0"  # the file-format generation written (Keras 3 reads it)


def keras_shape(shape: Shape) -> list[int | None]:
    """A toolbox size (batch excluded) as Keras declares it, batch included.

    Example:
        >>> keras_shape((3, 32, 24)), keras_shape((2, 8, 16, 16))
        ([None, 32, 24, 3], [None, 8, 16, 16, 2])
    """
    if len(shape) in (3, 4):  # images and volumes: channels last
        return [None, *shape[1:], shape[0]]
    return [None, *shape]


def _permute_to_channels_first(name: str, rank: int = 3) -> dict:
    """Keras's Permute from channels-last (H, W, C) / (D, H, W, C) to channels-first."""
    return _spec(f"{name}_permute", "Permute", {"dims": [rank, *range(1, rank)]})


def _dense(name: str, m: L.Dense, shape: Shape) -> list[dict]:
    out = []
    if m.flatten_input:
        if len(shape) in (3, 4):
            out.append(_permute_to_channels_first(name, len(shape)))
        out.append(_spec(f"{name}_flatten", "Flatten", {}))
    weights = [_array(m.weight).T] + ([_array(m.bias)] if m.bias is not None else [])
    config = {"units": m.units, "use_bias": m.bias is not None, "activation": "linear"}
    return [*out, _spec(name, "Dense", config, {"": weights})]


def _conv(name: str, m: L.Conv1d | L.Conv2d | L.Conv3d, shape: Shape) -> list[dict]:
    dims = m.spatial_dims
    out = []
    padding = m.padding
    if not isinstance(padding, str):
        if any(padding):
            value = padding[0] if dims == 1 else [[p, p] for p in padding]
            out.append(_spec(f"{name}_padding", f"ZeroPadding{dims}D", {"padding": value}))
        padding = "valid"
    if m.groups > 1 and m.groups == m.in_channels and dims < 3:  # DepthwiseConv1D/2D
        return [*out, depthwise_conv(name, m, padding)]
    order = (*range(2, 2 + dims), 1, 0)  # (filters, in, k...) -> (k..., in, filters)
    weights = [np.transpose(_array(m.weight), order)]
    if m.bias is not None:
        weights.append(_array(m.bias))
    config = {
        "filters": m.filters, "kernel_size": list(m.kernel_size), "strides": list(m.stride),
        "padding": padding, "dilation_rate": list(m.dilation), "groups": m.groups,
        "use_bias": m.bias is not None, "activation": "linear", "data_format": "channels_last",
    }  # fmt: skip
    return [*out, _spec(name, f"Conv{dims}D", config, {"": weights})]


def _transposed_conv1d(name: str, m: L.TransposedConv1d, shape: Shape) -> list[dict]:
    """Keras's Conv1DTranspose: ``"same"`` crops as the layer's ``cropping="same"``; ``"valid"``
    is no cropping when kernel_size >= strides."""
    (k,), (s,) = m.kernel_size, m.stride
    if m.cropping == "same":
        padding = "same"
    elif not any(m.padding) and k >= s:
        padding = "valid"
    else:
        raise ValueError(f"cropping={m.cropping!r} with kernel_size={k}, stride={s} (Keras has "
                         "'same', and 'valid' for kernel_size >= stride)")  # fmt: skip
    weights = [np.transpose(_array(m.weight), (2, 1, 0))]  # (in, filters, k) -> (k, filters, in)
    if m.bias is not None:
        weights.append(_array(m.bias))
    config = {"filters": m.filters, "kernel_size": [k], "strides": [s], "padding": padding,
              "use_bias": m.bias is not None, "activation": "linear",
              "data_format": "channels_last"}  # fmt: skip
    return [_spec(name, "Conv1DTranspose", config, {"": weights})]


def _pool(name: str, m: Any, shape: Shape) -> list[dict]:
    dims = m.spatial_dims
    kind = ("Max" if m.mode == "max" else "Average") + f"Pooling{dims}D"
    padding = m.padding
    if padding == "same" and m.mode != "max":
        raise ValueError("average pooling with padding='same' (Keras leaves padding out)")
    if not isinstance(padding, str):
        if any(padding):
            raise ValueError(f"explicit pooling padding {padding}")
        padding = "valid"
    config = {"pool_size": list(m.pool_size), "strides": list(m.stride), "padding": padding,
              "data_format": "channels_last"}  # fmt: skip
    return [_spec(name, kind, config)]


def _norm(name: str, m: L.BatchNorm | L.LayerNorm, shape: Shape) -> list[dict]:
    if isinstance(m, L.LayerNorm):
        if len(shape) > 2:
            raise ValueError("LayerNorm on images (Keras normalizes each position separately)")
        weights = [_array(m.weight), _array(m.bias)]
        return [_spec(name, "LayerNormalization", {"axis": -1, "epsilon": m.epsilon},
                      {"": weights})]  # fmt: skip
    weights = [_array(t) for t in (m.weight, m.bias, m.running_mean, m.running_var)]
    config = {"axis": -1, "epsilon": m.epsilon, "momentum": 1.0 - m.momentum}
    return [_spec(name, "BatchNormalization", config, {"": weights})]


def _recurrent_weights(m: L.LSTM | L.GRU, suffix: str) -> list[np.ndarray]:
    rnn = m.rnn
    w_ih = _array(getattr(rnn, f"weight_ih_l0{suffix}"))
    w_hh = _array(getattr(rnn, f"weight_hh_l0{suffix}"))
    b_ih = _array(getattr(rnn, f"bias_ih_l0{suffix}"))
    b_hh = _array(getattr(rnn, f"bias_hh_l0{suffix}"))
    if isinstance(m, L.LSTM | L.SimpleRNN):
        return [w_ih.T, w_hh.T, b_ih + b_hh]
    h = m.hidden_size  # torch r, z, n -> Keras z, r, h
    order = np.r_[h : 2 * h, 0:h, 2 * h : 3 * h]
    return [w_ih[order].T, w_hh[order].T, np.stack([b_ih[order], b_hh[order]])]


def _recurrent(name: str, m: L.LSTM | L.GRU, shape: Shape) -> list[dict]:
    if m.num_layers != 1:
        raise ValueError(f"num_layers={m.num_layers} (export stacked layers one by one)")
    kind = {L.LSTM: "LSTM", L.GRU: "GRU", L.SimpleRNN: "SimpleRNN"}[type(m)]
    if m.bidirectional and m.output_mode == "last":
        raise ValueError(
            "bidirectional output_mode='last' (MATLAB's last time step; Keras's Bidirectional "
            "returns each direction's final state, output_mode='final_state')"
        )
    sequences = m.output_mode == "sequence"
    config = {"units": m.hidden_size, "return_sequences": sequences,
              "activation": "tanh", "recurrent_activation": "sigmoid"}  # fmt: skip
    if kind == "SimpleRNN":
        del config["recurrent_activation"]
    if kind == "GRU":
        config["reset_after"] = True
    # the toolbox zeroes masked steps of sequences; Keras's mask-free Copy stops Keras from
    # passing the mask on to later layers, which the toolbox's do not read
    after = [_operation(f"{name}_unmask", "Copy")] if m.has_padding_mask and sequences else []
    if m.has_padding_mask:
        config["zero_output_for_mask"] = sequences
    if not m.bidirectional:
        return [_spec(name, kind, config, {"cell": _recurrent_weights(m, "")}), *after]
    inner = {"module": "keras.layers", "class_name": kind,
             "config": {"name": f"{name}_forward", "trainable": True, **config},
             "registered_name": None}  # fmt: skip
    variables = {
        "forward_layer/cell": _recurrent_weights(m, ""),
        "backward_layer/cell": _recurrent_weights(m, "_reverse"),
    }
    spec = _spec(name, "Bidirectional", {"layer": inner, "merge_mode": "concat"}, variables)
    return [spec, *after]


def _operation(name: str, class_name: str, arguments: list | None = None, **config: Any) -> dict:
    """A keras.ops call in the Functional graph; ``None`` arguments are the inputs in order."""
    spec = _spec(name, class_name, {})
    spec["config"] = {"name": name, **config}
    spec["operation"] = True
    spec["arguments"] = arguments or [None]
    return spec


def _padding_mask(name: str, m: L.PaddingMask, shape: Shape) -> list[dict]:
    if not m.over_channels:  # token ids (N, T) -> (N, T), as Embedding(mask_zero=True)
        return [_operation(name, "NotEqual", [None, m.value])]
    return [
        _operation(f"{name}_not_equal", "NotEqual", [None, m.value]),
        _operation(name, "Any", [None], axis=-1, keepdims=True),
    ]


def _torch_function(name: str, m: TorchFunction, shape: Shape) -> list[dict]:
    """The element-wise and mask operations import_keras reads back from keras.ops calls."""
    layer = torch_function_layer(name, m, shape)
    if layer is not None:  # a Keras layer import_keras writes as this function
        return layer
    kind = {function: kind for kind, function in OPERATIONS.items()}.get(m.function)
    inputs = [spec for spec in m.arguments if isinstance(spec, dict)]
    simple = m.output_index is None and not m.tensors and all(
        list(spec) == ["input"] for spec in inputs
    )  # fmt: skip
    if kind is None or not simple or len(shape) > 2 and kind in ("Any", "All"):
        written = ", ".join(sorted(OPERATIONS.values()))
        raise ValueError(
            f"the operation {m.describe()} with arguments {m.arguments} (TorchFunction layers "
            f"export as keras.ops calls for {written} on inputs and constants)"
        )
    arguments = [None if isinstance(a, dict) else a for a in m.arguments]
    config = {}
    if kind in ("Any", "All"):
        config = {"axis": m.keywords.get("dim"), "keepdims": m.keywords.get("keepdim", False)}
    elif m.keywords:
        raise ValueError(f"the operation {m.describe()} with keywords {m.keywords}")
    return [_operation(name, kind, arguments, **config)]


def _masked_steps(net: Network, name: str, m: L.MaskedSteps, specs: list[dict]) -> list[dict]:
    """MaskedSteps right after a masked LSTM or GRU: folded into Keras's own masking."""
    ports = net.sources(name)
    source = net.layer(ports["in"])  # type: ignore[arg-type]
    mask = net.layer(ports["mask"])  # type: ignore[arg-type]
    same_input = net.sources(ports["mask"]).get("in") == ports["in"]  # type: ignore[arg-type]
    if m.mode == "zero" and isinstance(mask, L.PaddingMask) and mask.over_channels and same_input:
        # Keras's Masking; the mask-free copy keeps Keras's later layers from reading a mask
        # the toolbox's do not see (those that do get it through mask=)
        masking = _spec(f"{name}_masking", "Masking", {"mask_value": mask.value})
        return [masking, _operation(name, "Copy")]
    masked = isinstance(source, L.LSTM | L.GRU) and source.has_padding_mask
    if not masked or net.sources(ports["in"])["mask"] != ports["mask"]:  # type: ignore[arg-type]
        raise ValueError(
            "MaskedSteps other than right after an LSTM or GRU that reads its mask, or as "
            "Masking (mode='zero' with a L.PaddingMask(over_channels=True) of the same input)"
        )
    if m.mode == "hold":
        if source.bidirectional:
            raise ValueError("mode='hold' after a bidirectional layer (Keras zeroes those steps)")
        spec = next(s for s in specs if s["name"] == ports["in"])
        target = spec["config"]
        target["zero_output_for_mask"] = False  # Keras repeats the last real step's output
    return [_operation(name, "Copy")]


def _attention(name: str, m: L.SelfAttention, shape: Shape) -> list[dict]:
    if m.has_padding_mask:
        raise ValueError("a padding-mask input")
    channels = int(shape[-1])  # type: ignore[arg-type]
    keys = m.query_weight.shape[0]
    out = m.output_weight.shape[0]
    heads, size = m.num_heads, keys // m.num_heads

    def project(part: str) -> list[np.ndarray]:
        weight = _array(getattr(m, f"{part}_weight")).T.reshape(channels, heads, size)
        return [weight, _array(getattr(m, f"{part}_bias")).reshape(heads, size)]

    variables = {f"{part}_dense": project(part) for part in ("query", "key", "value")}
    variables["output_dense"] = [
        _array(m.output_weight).T.reshape(heads, size, out),
        _array(m.output_bias),
    ]
    config = {"num_heads": heads, "key_dim": size, "value_dim": size, "dropout": m.dropout,
              "output_shape": None if out == channels else out}  # fmt: skip
    spec = _spec(name, "MultiHeadAttention", config, variables)
    spec["kwargs"] = {"use_causal_mask": True} if m.causal else {}
    spec["self_attention"] = True
    return [spec]


def _cross_attention(name: str, m: L.CrossAttention, shape: Shape) -> list[dict]:
    if "query_mask" in m.masks:
        raise ValueError("a query_mask input (Keras takes it only from the query's own mask)")
    heads = m.num_heads
    sizes = {"query": m.key_dim, "key": m.key_dim, "value": m.value_dim}
    variables = {}
    for part, size in sizes.items():
        weight = _array(getattr(m, f"{part}_weight")).T
        kernel = [weight.reshape(weight.shape[0], heads, size)]
        bias = getattr(m, f"{part}_bias")
        variables[f"{part}_dense"] = kernel + (
            [_array(bias).reshape(heads, size)] if m.bias else []
        )
    out = _array(m.output_weight).T.reshape(heads, m.value_dim, -1)
    variables["output_dense"] = [out] + ([_array(m.output_bias)] if m.bias else [])
    config = {"num_heads": heads, "key_dim": m.key_dim, "value_dim": m.value_dim,
              "use_bias": m.bias, "output_shape": m.output_channels}  # fmt: skip
    spec = _spec(name, "MultiHeadAttention", config, variables)
    spec["kwargs"] = {"use_causal_mask": True} if m.causal else {}
    return [spec]


_cross_attention.keyword_ports = lambda m: {  # type: ignore[attr-defined]
    port: port for port in ("key", *m.masks)
}


def _dot_attention(name: str, m: L.Attention, shape: Shape) -> list[dict]:
    if m.num_heads != 1 or m.has_padding_mask:
        raise ValueError(
            f"num_heads={m.num_heads}, has_padding_mask={m.has_padding_mask} (Keras's Attention "
            "has one head and no padding port)"
        )
    scale = 1.0 / float(shape[-1]) ** 0.5 if m.scale == "auto" else float(m.scale)
    use_scale = scale != 1.0  # Keras's learnable scale, holding the same value
    config = {"use_scale": use_scale, "score_mode": "dot", "dropout": m.dropout}
    variables = {"": [np.array(scale, dtype=np.float32)]} if use_scale else {}
    spec = _spec(name, "Attention", config, variables)
    spec["kwargs"] = {"use_causal_mask": True} if m.attention_mask == "causal" else {}
    spec["source_order"] = [0, 2, 1]  # ports (query, key, value) -> Keras's [query, value, key]
    return [spec]


def _exclusive_pool(name: str, m: L.AvgPoolExcludingPadding, shape: Shape) -> list[dict]:
    config = {"pool_size": list(m.pool_size), "strides": list(m.stride), "padding": "same",
              "data_format": "channels_last"}  # fmt: skip
    return [_spec(name, f"AveragePooling{len(m.pool_size)}D", config)]


def _axis_norm(name: str, m: L.AxisLayerNorm, shape: Shape) -> list[dict]:
    image = len(shape) == 3  # the toolbox's (C, H, W) is Keras's (H, W, C)
    axes = sorted({1: 3, 2: 1, 3: 2}[a] for a in m.axes) if image else list(m.axes)
    size = [int(d) for d in keras_shape(shape)[1:]]
    param = [size[a - 1] for a in axes]

    def keras_layout(tensor: Any) -> np.ndarray:
        array = _array(tensor)
        return (np.transpose(array, (1, 2, 0)) if image else array).reshape(param)

    config = {"axis": axes, "epsilon": m.epsilon}
    weights = [keras_layout(m.weight), keras_layout(m.bias)]
    return [_spec(name, "LayerNormalization", config, {"": weights})]


def _flatten(name: str, m: nn.Module, shape: Shape) -> list[dict]:
    first = [_permute_to_channels_first(name, len(shape))] if len(shape) in (3, 4) else []
    return [*first, _spec(name, "Flatten", {})]


def _reshape(name: str, m: L.Reshape, shape: Shape) -> list[dict]:
    first = [_permute_to_channels_first(name, len(shape))] if len(shape) in (3, 4) else []
    target = m.output_shape([shape])
    out = [*first, _spec(name, "Reshape", {"target_shape": list(target)})]
    if len(target) in (3, 4):  # the toolbox's (C, H, W) -> Keras's (H, W, C), volumes alike
        dims = [*range(2, len(target) + 1), 1]
        out.append(_spec(f"{name}_permute_out", "Permute", {"dims": dims}))
    return out


def _combine(name: str, m: nn.Module, shape: Shape) -> list[dict]:
    if isinstance(m, L.Concatenation):
        axis = m._shape_axis(len(shape))  # toolbox axis, batch excluded
        rank = len(shape)  # images and volumes: the toolbox's channel axis 0 is Keras's last
        keras_axis = (axis or rank) if rank in (3, 4) else axis + 1
        return [_spec(name, "Concatenate", {"axis": keras_axis})]
    return [_spec(name, "Add" if isinstance(m, L.Addition) else "Multiply", {})]


def _activation(name: str, m: nn.Module, shape: Shape) -> list[dict]:
    if isinstance(m, L.LeakyReLU):
        return [_spec(name, "LeakyReLU", {"negative_slope": m.scale})]
    if isinstance(m, L.ELU):
        return [_spec(name, "ELU", {"alpha": m.alpha})]
    if isinstance(m, L.GELU) and m.approximation != "none":
        return [_spec(name, "Activation", {"activation": {"module": "keras.activations",
                "class_name": "function", "config": "gelu", "registered_name": None}})]  # fmt: skip
    if isinstance(m, L.ClippedReLU):
        return [_spec(name, "ReLU", {"max_value": m.ceiling, "negative_slope": 0.0,
                                     "threshold": 0.0})]  # fmt: skip
    if isinstance(m, L.HardSigmoid) and (m.alpha, m.beta) != (1 / 6, 0.5):
        raise ValueError(f"alpha={m.alpha}, beta={m.beta} (Keras's hard_sigmoid is 1/6, 0.5)")
    names = {L.ReLU: "relu", L.Sigmoid: "sigmoid", L.Tanh: "tanh", L.Softmax: "softmax",
             L.Swish: "silu", L.GELU: "gelu", L.Softplus: "softplus", L.HardSwish: "hard_silu",
             L.HardSigmoid: "hard_sigmoid", L.Mish: "mish"}  # fmt: skip
    return [_spec(name, "Activation", {"activation": names[type(m)]})]


def _spatial_dropout(name: str, m: L.SpatialDropout, shape: Shape) -> list[dict]:
    if len(shape) == 1:  # one value per channel: plain dropout
        return [_spec(name, "Dropout", {"rate": m.probability})]
    spec = _spec(name, f"SpatialDropout{len(shape) - 1}D", {"rate": m.probability})
    del spec["config"]["trainable"]  # SpatialDropout1D's constructor refuses it
    return [spec]


def _prelu(name: str, m: L.PReLU, shape: Shape) -> list[dict]:
    """Keras's alpha has the input's size (H, W, C for images) less the ``shared_axes``."""
    rank = len(shape)
    shared = list(range(1, rank + 1)) if not m.channel_wise else list(range(1, rank))
    alpha = _array(m.alpha).reshape([1] * (rank - 1) + [-1])
    config = {"shared_axes": shared or None, "alpha_initializer": "zeros"}
    return [_spec(name, "PReLU", config, {"": [alpha]})]


_EXPORTERS: dict[type, Any] = {
    L.Dense: _dense,
    L.Conv1d: _conv,
    L.Conv2d: _conv,
    L.Conv3d: _conv,
    L.TransposedConv1d: _transposed_conv1d,
    L.MaxPool1d: _pool,
    L.MaxPool2d: _pool,
    L.AvgPool1d: _pool,
    L.AvgPool2d: _pool,
    L.MaxPool3d: _pool,
    L.AvgPool3d: _pool,
    L.GlobalAvgPool: lambda n, m, s: [_spec(n, f"GlobalAveragePooling{len(s) - 1}D", {})],
    L.GlobalMaxPool: lambda n, m, s: [_spec(n, f"GlobalMaxPooling{len(s) - 1}D", {})],
    L.BatchNorm: _norm,
    L.LayerNorm: _norm,
    L.Dropout: lambda n, m, s: [_spec(n, "Dropout", {"rate": m.probability})],
    L.SpatialDropout: _spatial_dropout,
    L.Flatten: _flatten,
    L.Reshape: _reshape,
    L.Embedding: lambda n, m, s: [
        _spec(
            n,
            "Embedding",
            {"input_dim": m.vocabulary_size, "output_dim": m.dimension},
            {"": [_array(m.weight)]},
        )  # fmt: skip
    ],
    L.PaddingMask: _padding_mask,
    L.CrossAttention: _cross_attention,
    L.Attention: _dot_attention,
    L.AvgPoolExcludingPadding: _exclusive_pool,
    L.AxisLayerNorm: _axis_norm,
    TorchFunction: _torch_function,
    L.LSTM: _recurrent,
    L.GRU: _recurrent,
    L.SimpleRNN: _recurrent,
    L.SelfAttention: _attention,
    L.Addition: _combine,
    L.Multiplication: _combine,
    L.Concatenation: _combine,
    L.PReLU: _prelu,
    **{
        kind: _activation
        for kind in (
            L.ReLU,
            L.LeakyReLU,
            L.ELU,
            L.GELU,
            L.Sigmoid,
            L.Tanh,
            L.Softmax,
            L.Swish,
            L.ClippedReLU,
            L.Softplus,
            L.HardSwish,
            L.HardSigmoid,
            L.Mish,
        )
    },  # fmt: skip
    **MORE_EXPORTERS,
}


_MASK_READERS = frozenset({"LSTM", "GRU", "Bidirectional", "GlobalAveragePooling1D"})


def _tensor(spec: dict) -> dict:
    return {"class_name": "__keras_tensor__",
            "config": {"shape": spec["shape"], "dtype": "float32",
                       "keras_history": [spec["name"], 0, 0]}}  # fmt: skip


def _reads_ids(layer: nn.Module) -> bool:
    """Layers that take token ids as (N, T) as well as (N, T, 1)."""
    if isinstance(layer, TorchFunction):  # a padding mask as keras.ops.not_equal(ids, 0)
        return layer.function in ("torch.ne", "torch.eq")
    return isinstance(layer, L.Embedding | L.PaddingMask) and not getattr(
        layer, "over_channels", False
    )


def _input_spec(net: Network, name: str) -> dict:
    layer: InputLayer = net.layer(name)  # type: ignore[assignment]
    if layer.normalization != "none" and not layer.has_statistics:
        raise ModelExportError(
            f"export_keras: input layer '{name}' uses normalization={layer.normalization!r} but "
            "its statistics are not set. Call compute_statistics(training_data) on it first."
        )
    shape = keras_shape(layer.shape)
    consumers = [c.destination for c in net.connections if c.source == name]
    tokens = isinstance(layer, L.SequenceInput) and layer.num_channels == 1
    if tokens and consumers and all(_reads_ids(net.layer(c)) for c in consumers):
        shape = shape[:2]  # token ids (N, T): Keras's Embedding adds the channel axis
    spec = _spec(name, "InputLayer", {"batch_shape": shape, "dtype": "float32"})
    spec["config"].pop("trainable")
    spec["shape"] = shape
    return spec


def _input_normalization(net: Network, name: str, specs: list[dict]) -> str:
    """Add the Keras layer that normalizes input ``name`` (if it normalizes); returns the name
    of the layer its consumers read."""
    found = normalization_spec(net.layer(name))  # type: ignore[arg-type]
    if found is None:
        return name
    class_name, config = found
    spec = _spec(f"{name}_normalization", class_name, config)
    spec["sources"], spec["shape"] = [name], specs[-1]["shape"]
    specs.append(spec)
    return spec["name"]


def _specs(net: Network) -> list[dict]:
    """Keras layer descriptions in the network's order, with their sources."""
    net.initialize()
    last: dict[str, str] = {}
    specs: list[dict] = []
    for name in net.execution_order:
        module = net.layer(name)
        if isinstance(module, InputLayer):
            specs.append(_input_spec(net, name))
            last[name] = _input_normalization(net, name, specs)
            continue
        exporter = _EXPORTERS.get(type(module))
        if isinstance(module, L.MaskedSteps):
            exporter = lambda n, m, s: _masked_steps(net, n, m, specs)  # noqa: E731
        elif isinstance(module, L.MergeDirections):
            exporter = lambda n, m, s: merged_directions(net, n, m, specs)  # noqa: E731
        if exporter is None:
            supported = ", ".join(sorted(k.__name__ for k in _EXPORTERS))
            raise ModelExportError(
                f"export_keras: layer '{name}' is a {layer_type_name(module)}, which has no Keras "
                f"equivalent here. Layers export_keras writes: input layers, {supported}."
            )
        ports = {port: last[s] for port, s in net.sources(name).items()}  # type: ignore[index]
        keyword_ports = getattr(exporter, "keyword_ports", lambda m: {"mask": "mask"})(module)
        sources = [s for port, s in ports.items() if port not in keyword_ports]
        keywords = {keyword_ports[p]: s for p, s in ports.items() if p in keyword_ports}
        shape = next(iter(net.input_sizes(name).values()))
        try:
            chain = exporter(name, module, shape)
        except (ValueError, KeyError) as err:
            raise ModelExportError(
                f"export_keras: layer '{name}' ({layer_type_name(module)}) uses {err}, which "
                "has no Keras equivalent."
            ) from err
        if "mask" in keywords and chain[0]["class_name"] in _MASK_READERS:
            flat = _spec(f"{name}_mask", "Reshape", {"target_shape": [-1]})  # (N, T) for Keras
            flat |= {"sources": [keywords["mask"]], "shape": [None, None]}
            specs.append(flat)
            keywords = {"mask": flat["name"]}
        _unique_helpers(chain, name, set(net.layer_names) | {s["name"] for s in specs})
        for index, spec in enumerate(chain):
            spec["sources"] = sources if index == 0 else [chain[index - 1]["name"]]
            if "source_order" in spec:
                spec["sources"] = [spec["sources"][i] for i in spec.pop("source_order")]
            if index == 0 and (spec["class_name"] in _MASK_READERS or "mask" not in keywords):
                spec["tensor_kwargs"] = keywords
            spec["shape"] = keras_shape(net.output_shape(name) or ())
            specs.append(spec)
        last[name] = chain[-1]["name"]
    return specs, [last[n] for n in net.output_names]


def _unique_helpers(chain: list[dict], name: str, taken: set[str]) -> None:
    """Rename the extra Keras layers a layer exports as (``conv_padding``, ``flat_permute``)
    where another layer has the name already (an imported ``flatten_permute``...)."""
    for spec in chain:
        if spec["name"] == name or spec["name"] not in taken:
            taken.add(spec["name"])
            continue
        base, k = spec["name"], 1
        while f"{base}_{k}" in taken:
            k += 1
        spec["name"] = spec["config"]["name"] = f"{base}_{k}"
        taken.add(spec["name"])


def _depends(spec: dict) -> list[str]:
    return [*spec.get("sources", []), *spec.get("tensor_kwargs", {}).values()]


def keras_order(specs: list[dict], outputs: list[str]) -> list[dict]:
    """Order layers as Keras's Functional model lists them (the order of its weight keys).

    Keras walks back from the outputs depth-first to number the layers, gives each its
    longest distance to an output, and lists them by decreasing distance, then by number.
    """
    by_name = {spec["name"]: spec for spec in specs}
    index: dict[str, int] = {}
    finished: list[str] = []

    def visit(name: str) -> None:
        if name in finished:
            return
        index.setdefault(name, len(index))
        for source in _depends(by_name[name]):
            visit(source)
        finished.append(name)

    for output in outputs:
        visit(output)
    depth: dict[str, int] = {}
    for name in reversed(finished):
        depth.setdefault(name, 0)
        for source in _depends(by_name[name]):
            depth[source] = max(depth.get(source, 0), depth[name] + 1)
    ordered = sorted(finished, key=lambda n: (-depth[n], index[n]))
    return [by_name[n] for n in ordered]


def _layer_config(spec: dict, by_name: dict[str, dict]) -> dict:
    record = {"module": "keras.layers", "class_name": spec["class_name"],
              "config": spec["config"], "registered_name": None, "name": spec["name"]}  # fmt: skip
    sources = spec.get("sources", [])
    if spec["class_name"] == "InputLayer":
        record["inbound_nodes"] = []
        return record
    tensors = [_tensor(by_name[s]) for s in sources]
    if spec.get("operation"):
        record["module"] = "keras.src.ops.numpy"
        record["registered_name"] = spec["class_name"]
        given = iter(tensors)
        args = [next(given) if a is None else a for a in spec["arguments"]]
        record["inbound_nodes"] = [{"args": args, "kwargs": {}}]
        return record
    kwargs = dict(spec["kwargs"])
    for keyword, source in spec.get("tensor_kwargs", {}).items():
        kwargs[keyword] = _tensor(by_name[source])
    if spec.get("self_attention"):
        args: list = [tensors[0], tensors[0]]
    elif spec["class_name"] in ("Add", "Multiply", "Concatenate", "Attention"):
        args = [tensors]  # one list (Attention's: [query, value, key])
    else:
        args = tensors
    record["inbound_nodes"] = [{"args": args, "kwargs": kwargs}]
    return record


def _config(net: Network, specs: list[dict], outputs: list[str]) -> dict:
    by_name = {spec["name"]: spec for spec in specs}
    inputs = net.input_names  # the order the network (and so the Keras model) takes them
    model = {
        "name": net.name, "trainable": True,
        "layers": [_layer_config(spec, by_name) for spec in specs],
        "input_layers": [[n, 0, 0] for n in inputs] if len(inputs) > 1 else [inputs[0], 0, 0],
        "output_layers": [[n, 0, 0] for n in outputs] if len(outputs) > 1 else [outputs[0], 0, 0],
    }  # fmt: skip
    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "config": model, "registered_name": "Functional",
            "build_config": {"input_shape": None}, "compile_config": None}  # fmt: skip


def _weights_file(specs: list[dict]) -> bytes:
    import h5py  # only needed when a Keras file is written

    buffer = io.BytesIO()
    specs = [spec for spec in specs if not spec.get("operation")]  # ops hold no weights
    keys = file_keys([spec["class_name"] for spec in specs])
    with h5py.File(buffer, "w") as h5:
        layers = h5.create_group("layers")
        for spec, key in zip(specs, keys, strict=True):
            group = layers.create_group(key)
            group.create_group("vars").attrs["name"] = spec["name"]
            for path, arrays in spec["vars"].items():
                target = group.require_group(f"{path}/vars" if path else "vars")
                for index, array in enumerate(arrays):
                    target.create_dataset(
                        str(index), data=np.require(array, requirements="C")
                    )  # 0-d stays 0-d
        h5.create_group("vars")
    return buffer.getvalue()


def export_keras(
    net: Network,
    path: str | os.PathLike,
    *,
    example_inputs: torch.Tensor | Sequence[torch.Tensor] | None = None,
    verify: bool = True,
    tolerance: float = 1e-4,
) -> Path:
    """Write a Network as a Keras 3 ``.keras`` file that ``keras.saving.load_model`` reads.

    No Keras or TensorFlow is needed to write it. Keras takes images channels-last: feed it
    ``x.permute(0, 2, 3, 1)`` of what the network takes. Input normalization becomes a Keras
    ``Normalization`` or ``Rescaling`` layer after the input; the network's name, classes and
    input layers are recorded in ``metadata.json``, so :func:`import_keras` gives them back.
    Layers without a Keras equivalent raise ``ModelExportError`` naming the layer. The file
    is written to a temporary name and renamed, so a failed export leaves no partial file.

    With ``verify=True`` (default) the file is read back before it is renamed and its outputs
    on ``example_inputs`` (default: random inputs of the declared sizes) are compared with
    the network's (``|file - net| / (1 + |net|) <= tolerance``): by the toolbox's reader, and
    by Keras itself (``keras.saving.load_model``) when Keras is usable in this process
    (imported already, or ``KERAS_BACKEND`` names an installed backend). A disagreement
    raises ``ModelExportError`` and leaves no file.

    Example:
        >>> import tempfile, os, zipfile
        >>> from deeptoolbox import layers as L
        >>> net = Network([L.FeatureInput(4), L.Dense(3), L.ReLU()])
        >>> path = export_keras(net, os.path.join(tempfile.mkdtemp(), "net.keras"))
        >>> sorted(zipfile.ZipFile(path).namelist())
        ['config.json', 'metadata.json', 'model.weights.h5']
    """
    if not isinstance(net, Network):
        raise ModelExportError(
            f"export_keras expects a deeptoolbox Network. Received: {type(net).__name__}. Bring a "
            "module in with deeptoolbox.interop.from_torch(module, example_inputs) first."
        )
    path = Path(path)
    if path.suffix != ".keras":
        raise ModelExportError(
            f"export_keras: the file name must end in '.keras' (Keras 3 refuses others). "
            f"Received: '{path}'."
        )
    specs, outputs = _specs(net)
    specs = keras_order(specs, outputs)
    normalizing = {f"{n}_normalization": n for n in net.input_names
                   if getattr(net.layer(n), "normalization", "none") != "none"}  # fmt: skip
    metadata = {"keras_version": KERAS_VERSION,
                "date_saved": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d@%H:%M:%S"),
                KEY: toolbox_entry(net, normalizing)}  # fmt: skip
    members = {
        "metadata.json": json.dumps(metadata),
        "config.json": json.dumps(_config(net, specs, outputs)),
        "model.weights.h5": _weights_file(specs),
    }
    with atomic_path(path, suffix=".keras") as temporary:
        with zipfile.ZipFile(temporary, "w") as archive:
            for member, data in members.items():
                archive.writestr(member, data)
        if verify:
            inputs = _check_inputs(net, example_inputs)
            verify_keras_file(net, Path(temporary), inputs, tolerance)
    return path


def _check_inputs(net: Network, example_inputs) -> list[torch.Tensor]:
    if example_inputs is None:
        return sample_inputs(net, batch=3, length=8, seed=1)
    return [example_inputs] if isinstance(example_inputs, torch.Tensor) else list(example_inputs)


# -- checking the written file -----------------------------------------------------------------
def _in_order(net: nn.Module, back: nn.Module, inputs, expected) -> tuple[Any, Any]:
    """``back``'s outputs next to ``net``'s, matched by input and output names (Keras order)."""
    names, again = list(getattr(net, "input_names", [])), list(getattr(back, "input_names", []))
    if sorted(names) == sorted(again) and len(names) == len(inputs):
        inputs = [inputs[names.index(n)] for n in again]
    got = reference(back, inputs)
    outs, outs_back = (
        list(getattr(net, "output_names", [])),
        list(getattr(back, "output_names", [])),
    )
    if len(outs) > 1 and sorted(outs) == sorted(outs_back) and not isinstance(got, torch.Tensor):
        got_list = list(got)
        got = [got_list[outs_back.index(n)] for n in outs]
    return expected, got


def verify_keras_file(net: nn.Module, path: Path, inputs, tolerance: float) -> float:
    """Read a .keras file back (toolbox reader, then Keras when usable) and compare outputs."""
    from deeptoolbox.interop.keras._import import import_keras

    where = f"export_keras: check of '{path.name}'"
    expected = reference(net, inputs)
    try:
        back = import_keras(path)
    except ModelImportError as err:
        raise ModelExportError(f"{where}: the file cannot be read back: {err}") from err
    worst = compare_outputs(where, *_in_order(net, back, inputs, expected), tolerance)
    keras = usable_keras()
    if keras is None:
        return worst
    try:
        model = keras.saving.load_model(str(path))
    except Exception as err:
        raise ModelExportError(f"{where}: Keras cannot load the file: {err}") from err
    if len(inputs) == 1 and inputs[0].is_floating_point() and isinstance(expected, torch.Tensor):
        x = inputs[0].detach().cpu()
        channels_last = x.dim() >= 4  # images and volumes: Keras takes channels last
        feed = x.movedim(1, -1) if channels_last else x
        want = expected.movedim(1, -1) if channels_last and expected.dim() >= 4 else expected
        got = model.predict(feed.numpy(), verbose=0)
        worst = max(worst, compare_outputs(f"{where} (Keras)", want, got, tolerance))
    return worst
