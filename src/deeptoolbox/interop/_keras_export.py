"""export_keras: a Network -> a Keras 3 ``.keras`` file, written with zipfile, json and h5py.

The file holds a Functional model: ``config.json`` (the architecture), ``metadata.json`` and
``model.weights.h5`` in Keras 3's layout. Keras images are channels-last, so image inputs are
declared (H, W, C), kernels are transposed, and a Flatten of images permutes to the toolbox's
(C, H, W) order first, so ``keras.saving.load_model(path).predict`` gives the network's outputs
for the same data in Keras's layout.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from deeptoolbox import layers as L
from deeptoolbox.interop._keras_files import file_keys
from deeptoolbox.interop._onnx_export import ModelExportError
from deeptoolbox.layers._base import Shape, layer_type_name
from deeptoolbox.layers._input import InputLayer
from deeptoolbox.network import Network

KERAS_VERSION = "3.0.0"  # the file-format generation written (Keras 3 reads it)


def _array(tensor: Any) -> np.ndarray:
    return tensor.detach().cpu().float().numpy()


def keras_shape(shape: Shape) -> list[int | None]:
    """A toolbox size (batch excluded) as Keras declares it, batch included.

    Example:
        >>> keras_shape((3, 32, 24))
        [None, 32, 24, 3]
    """
    if len(shape) == 3:
        return [None, shape[1], shape[2], shape[0]]
    return [None, *shape]


def _spec(name: str, class_name: str, config: dict, variables: dict | None = None) -> dict:
    return {
        "name": name,
        "class_name": class_name,
        "config": {"name": name, "trainable": True, **config},
        "vars": variables or {},
        "kwargs": {},
    }


def _permute_to_channels_first(name: str) -> dict:
    return _spec(f"{name}_permute", "Permute", {"dims": [3, 1, 2]})


def _dense(name: str, m: L.Dense, shape: Shape) -> list[dict]:
    out = []
    if m.flatten_input:
        if len(shape) == 3:
            out.append(_permute_to_channels_first(name))
        out.append(_spec(f"{name}_flatten", "Flatten", {}))
    weights = [_array(m.weight).T] + ([_array(m.bias)] if m.bias is not None else [])
    config = {"units": m.units, "use_bias": m.bias is not None, "activation": "linear"}
    return [*out, _spec(name, "Dense", config, {"": weights})]


def _conv(name: str, m: L.Conv1d | L.Conv2d, shape: Shape) -> list[dict]:
    dims = m.spatial_dims
    out = []
    padding = m.padding
    if not isinstance(padding, str):
        if any(padding):
            kind = "ZeroPadding1D" if dims == 1 else "ZeroPadding2D"
            value = padding[0] if dims == 1 else [[p, p] for p in padding]
            out.append(_spec(f"{name}_padding", kind, {"padding": value}))
        padding = "valid"
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
    if isinstance(m, L.LSTM):
        return [w_ih.T, w_hh.T, b_ih + b_hh]
    h = m.hidden_size  # torch r, z, n -> Keras z, r, h
    order = np.r_[h : 2 * h, 0:h, 2 * h : 3 * h]
    return [w_ih[order].T, w_hh[order].T, np.stack([b_ih[order], b_hh[order]])]


def _recurrent(name: str, m: L.LSTM | L.GRU, shape: Shape) -> list[dict]:
    if m.num_layers != 1:
        raise ValueError(f"num_layers={m.num_layers} (export stacked layers one by one)")
    kind = "LSTM" if isinstance(m, L.LSTM) else "GRU"
    config = {"units": m.hidden_size, "return_sequences": m.output_mode == "sequence",
              "activation": "tanh", "recurrent_activation": "sigmoid"}  # fmt: skip
    if kind == "GRU":
        config["reset_after"] = True
    if not m.bidirectional:
        return [_spec(name, kind, config, {"cell": _recurrent_weights(m, "")})]
    inner = {"module": "keras.layers", "class_name": kind,
             "config": {"name": f"{name}_forward", "trainable": True, **config},
             "registered_name": None}  # fmt: skip
    variables = {
        "forward_layer/cell": _recurrent_weights(m, ""),
        "backward_layer/cell": _recurrent_weights(m, "_reverse"),
    }
    return [_spec(name, "Bidirectional", {"layer": inner, "merge_mode": "concat"}, variables)]


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


def _flatten(name: str, m: nn.Module, shape: Shape) -> list[dict]:
    first = [_permute_to_channels_first(name)] if len(shape) == 3 else []
    return [*first, _spec(name, "Flatten", {})]


def _reshape(name: str, m: L.Reshape, shape: Shape) -> list[dict]:
    first = [_permute_to_channels_first(name)] if len(shape) == 3 else []
    target = m.output_shape([shape])
    out = [*first, _spec(name, "Reshape", {"target_shape": list(target)})]
    if len(target) == 3:  # the toolbox's (C, H, W) -> Keras's (H, W, C)
        out.append(_spec(f"{name}_permute_out", "Permute", {"dims": [2, 3, 1]}))
    return out


def _combine(name: str, m: nn.Module, shape: Shape) -> list[dict]:
    if isinstance(m, L.Concatenation):
        axis = m._shape_axis(len(shape))  # toolbox axis, batch excluded
        keras_axis = ({0: 3, 1: 1, 2: 2}[axis]) if len(shape) == 3 else axis + 1
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
    names = {L.ReLU: "relu", L.Sigmoid: "sigmoid", L.Tanh: "tanh", L.Softmax: "softmax",
             L.Swish: "silu", L.GELU: "gelu"}  # fmt: skip
    return [_spec(name, "Activation", {"activation": names[type(m)]})]


_EXPORTERS: dict[type, Any] = {
    L.Dense: _dense,
    L.Conv1d: _conv,
    L.Conv2d: _conv,
    L.MaxPool1d: _pool,
    L.MaxPool2d: _pool,
    L.AvgPool1d: _pool,
    L.AvgPool2d: _pool,
    L.GlobalAvgPool: lambda n, m, s: [
        _spec(n, f"GlobalAveragePooling{1 if len(s) == 2 else 2}D", {})
    ],
    L.GlobalMaxPool: lambda n, m, s: [_spec(n, f"GlobalMaxPooling{1 if len(s) == 2 else 2}D", {})],
    L.BatchNorm: _norm,
    L.LayerNorm: _norm,
    L.Dropout: lambda n, m, s: [_spec(n, "Dropout", {"rate": m.probability})],
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
    L.LSTM: _recurrent,
    L.GRU: _recurrent,
    L.SelfAttention: _attention,
    L.Addition: _combine,
    L.Multiplication: _combine,
    L.Concatenation: _combine,
    **{
        kind: _activation
        for kind in (L.ReLU, L.LeakyReLU, L.ELU, L.GELU, L.Sigmoid, L.Tanh, L.Softmax, L.Swish)
    },  # fmt: skip
}


def _tensor(spec: dict) -> dict:
    return {"class_name": "__keras_tensor__",
            "config": {"shape": spec["shape"], "dtype": "float32",
                       "keras_history": [spec["name"], 0, 0]}}  # fmt: skip


def _input_spec(net: Network, name: str) -> dict:
    layer: InputLayer = net.layer(name)  # type: ignore[assignment]
    if layer.normalization != "none":
        raise ModelExportError(
            f"export_keras: input layer '{name}' normalizes its data ({layer.normalization!r}); "
            "Keras files carry no input normalization. Normalize the data before predicting and "
            "export a network whose input layer has normalization='none'."
        )
    shape = keras_shape(layer.shape)
    consumers = [c.destination for c in net.connections if c.source == name]
    tokens = isinstance(layer, L.SequenceInput) and layer.num_channels == 1
    if tokens and consumers and all(isinstance(net.layer(c), L.Embedding) for c in consumers):
        shape = shape[:2]  # token ids (N, T): Keras's Embedding adds the channel axis
    spec = _spec(name, "InputLayer", {"batch_shape": shape, "dtype": "float32"})
    spec["config"].pop("trainable")
    spec["shape"] = shape
    return spec


def _specs(net: Network) -> list[dict]:
    """Keras layer descriptions in the network's order, with their sources."""
    net.initialize()
    last: dict[str, str] = {}
    specs: list[dict] = []
    for name in net._resolution.order:
        module = net.layer(name)
        if isinstance(module, InputLayer):
            specs.append(_input_spec(net, name))
            last[name] = name
            continue
        exporter = _EXPORTERS.get(type(module))
        if exporter is None:
            supported = ", ".join(sorted(k.__name__ for k in _EXPORTERS))
            raise ModelExportError(
                f"export_keras: layer '{name}' is a {layer_type_name(module)}, which has no Keras "
                f"equivalent here. Layers export_keras writes: input layers, {supported}."
            )
        sources = [last[s] for s in net.sources(name).values()]  # type: ignore[index]
        shape = net._resolution.input_shapes[name][0]
        try:
            chain = exporter(name, module, shape)
        except (ValueError, KeyError) as err:
            raise ModelExportError(
                f"export_keras: layer '{name}' ({layer_type_name(module)}) uses {err}, which "
                "has no Keras equivalent."
            ) from err
        for index, spec in enumerate(chain):
            spec["sources"] = sources if index == 0 else [chain[index - 1]["name"]]
            spec["shape"] = keras_shape(net.output_shape(name) or ())
            specs.append(spec)
        last[name] = chain[-1]["name"]
    return specs, [last[n] for n in net.output_names]


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
        for source in by_name[name].get("sources", []):
            visit(source)
        finished.append(name)

    for output in outputs:
        visit(output)
    depth: dict[str, int] = {}
    for name in reversed(finished):
        depth.setdefault(name, 0)
        for source in by_name[name].get("sources", []):
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
    if spec.get("self_attention"):
        args: list = [tensors[0], tensors[0]]
    elif spec["class_name"] in ("Add", "Multiply", "Concatenate"):
        args = [tensors]
    else:
        args = tensors
    record["inbound_nodes"] = [{"args": args, "kwargs": spec["kwargs"]}]
    return record


def _config(net: Network, specs: list[dict], outputs: list[str]) -> dict:
    by_name = {spec["name"]: spec for spec in specs}
    inputs = [s["name"] for s in specs if s["class_name"] == "InputLayer"]
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
    keys = file_keys([spec["class_name"] for spec in specs])
    with h5py.File(buffer, "w") as h5:
        layers = h5.create_group("layers")
        for spec, key in zip(specs, keys, strict=True):
            group = layers.create_group(key)
            group.create_group("vars").attrs["name"] = spec["name"]
            for path, arrays in spec["vars"].items():
                target = group.require_group(f"{path}/vars" if path else "vars")
                for index, array in enumerate(arrays):
                    target.create_dataset(str(index), data=np.ascontiguousarray(array))
        h5.create_group("vars")
    return buffer.getvalue()


def export_keras(net: Network, path: str | os.PathLike) -> Path:
    """Write a Network as a Keras 3 ``.keras`` file that ``keras.saving.load_model`` reads.

    No Keras or TensorFlow is needed to write it. Keras takes images channels-last: feed it
    ``x.permute(0, 2, 3, 1)`` of what the network takes. Layers without a Keras equivalent
    (and input normalization) raise ``ModelExportError`` naming the layer. The file is
    written to a temporary name and renamed, so a failed export leaves no partial file.

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
    metadata = {"keras_version": KERAS_VERSION,
                "date_saved": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d@%H:%M:%S")}  # fmt: skip
    members = {
        "metadata.json": json.dumps(metadata),
        "config.json": json.dumps(_config(net, specs, outputs)),
        "model.weights.h5": _weights_file(specs),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    os.close(handle)
    try:
        with zipfile.ZipFile(temporary, "w") as archive:
            for member, data in members.items():
                archive.writestr(member, data)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path
