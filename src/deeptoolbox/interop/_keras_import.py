"""import_keras: Keras 3 ``.keras`` and legacy ``.h5`` model files -> Network, without Keras."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deeptoolbox import layers as L
from deeptoolbox.errors import DeepToolboxError, ModelImportError
from deeptoolbox.interop._keras_files import KerasFile, file_keys
from deeptoolbox.interop._keras_layers import convert_layer
from deeptoolbox.interop._torch_layers import TorchFunction
from deeptoolbox.layers._input import InputLayer
from deeptoolbox.network import Network

_INTEGER = re.compile(r"^u?int")


def _input_layer(config: dict[str, Any], where: str) -> InputLayer:
    shape = config.get("batch_shape") or config.get("batch_input_shape")
    if shape is None and config.get("shape") is not None:
        shape = [None, *config["shape"]]
    if not shape:
        raise ModelImportError(f"{where}: the input layer declares no shape.")
    size = list(shape[1:])
    integers = bool(_INTEGER.match(str(config.get("dtype", "float32"))))
    if len(size) == 1 and size[0] is not None:
        return L.SequenceInput(1, length=size[0]) if integers else L.FeatureInput(size[0])
    if len(size) == 2 and size[1] is not None:
        return L.SequenceInput(size[1], length=size[0])
    if len(size) == 3 and None not in size:
        return L.ImageInput((size[2], size[0], size[1]))  # Keras (H, W, C) -> (C, H, W)
    raise ModelImportError(
        f"{where}: an input of size {tuple(size)} (batch excluded) has no toolbox input layer; "
        "supported: features (C,), sequences (T, C) with a free or fixed T, images (H, W, C)."
    )


def _history(value: Any) -> list[str]:
    """Source layer names in a Keras 3 call argument (a tensor or nested lists of tensors)."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        return [value["config"]["keras_history"][0]]
    if isinstance(value, list | tuple):
        return [name for item in value for name in _history(item)]
    return []


def _inbound(layer: dict[str, Any], where: str) -> tuple[list[str], dict[str, Any]]:
    nodes = layer.get("inbound_nodes") or []
    if len(nodes) > 1:
        raise ModelImportError(
            f"{where} is called {len(nodes)} times (a shared layer); import_keras supports layers "
            "called once."
        )
    if not nodes:
        return [], {}
    node = nodes[0]
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        kwargs = node.get("kwargs", {})
        sources = _history(node.get("args", [])) + _history(
            [v for k, v in kwargs.items() if k in ("key", "value")]
        )
        return sources, {k: v for k, v in kwargs.items() if not _history(v)}
    sources = [entry[0] for entry in node]  # Keras 2: [[name, node, tensor, kwargs], ...]
    kwargs = node[0][3] if node and len(node[0]) > 3 else {}
    return sources, kwargs


class _Builder:
    def __init__(self, file: KerasFile) -> None:
        self.file = file
        self.net = Network(name=str(file.model.get("config", {}).get("name") or "keras"))
        self.output_of: dict[str, str] = {}

    def where(self, name: str) -> str:
        return f"import_keras: '{self.file.path}': layer '{name}'"

    def build(self) -> Network:
        kind = self.file.model.get("class_name")
        layers = self.file.model.get("config", {}).get("layers")
        if kind not in ("Sequential", "Functional", "Model") or not isinstance(layers, list):
            raise ModelImportError(
                f"import_keras: '{self.file.path}' holds a {kind!r} model; supported: Sequential "
                "and Functional models (subclassed models have no saved architecture)."
            )
        keys = file_keys([layer.get("class_name", "") for layer in layers])
        if kind == "Sequential":
            self._sequential(layers, keys)
        else:
            self._functional(layers, keys)
        try:
            self.net.initialize()
        except DeepToolboxError as err:
            raise ModelImportError(f"import_keras: '{self.file.path}': {err}") from err
        return self.net.eval()

    def _sequential(self, layers: list[dict], keys: list[str]) -> None:
        previous = None
        if layers and layers[0].get("class_name") != "InputLayer":
            previous = self._declared_input(layers[0].get("config", {}))
        for layer, key in zip(layers, keys, strict=True):
            config = layer.get("config", {})
            name = config.get("name") or key
            if layer.get("class_name") == "InputLayer":
                self.net.add_layers({_safe(name): _input_layer(config, self.where(name))})
                previous = self.net.layer_names[-1]
            else:
                previous = self._layer(layer, key, [previous], {})

    def _declared_input(self, first: dict[str, Any]) -> str:
        """The input of a Sequential model saved without an InputLayer entry."""
        config = first if first.get("batch_shape") or first.get("batch_input_shape") else None
        model = self.file.model
        shape = (model.get("build_config") or {}).get("input_shape") or model.get("config", {}).get(
            "build_input_shape"
        )
        if config is None and shape:
            config = {"batch_shape": shape, "dtype": first.get("dtype", "float32")}
        if config is None:
            raise ModelImportError(
                f"import_keras: '{self.file.path}': the Sequential model declares no input "
                "shape; build it with keras.Input(shape) before saving."
            )
        self.net.add_layers({"input": _input_layer(config, self.where("input"))})
        return "input"

    def _functional(self, layers: list[dict], keys: list[str]) -> None:
        for layer, key in zip(layers, keys, strict=True):
            config = layer.get("config", {})
            name = layer.get("name") or config.get("name") or key
            if layer.get("class_name") == "InputLayer":
                self.net.add_layers({_safe(name): _input_layer(config, self.where(name))})
                self.output_of[name] = self.net.layer_names[-1]
                continue
            sources, kwargs = _inbound(layer, self.where(name))
            missing = [s for s in sources if s not in self.output_of]
            if missing or not sources:
                raise ModelImportError(
                    f"{self.where(name)} takes inputs from unknown layers {missing}."
                )
            self.output_of[name] = self._layer(
                layer, key, [self.output_of[s] for s in sources], kwargs
            )
        self._outputs(self.file.model["config"].get("output_layers", []))

    def _outputs(self, declared: list) -> None:
        if declared and isinstance(declared[0], str):
            declared = [declared]
        wanted = [self.output_of[entry[0]] for entry in declared if entry[0] in self.output_of]
        if len(wanted) > 1 and wanted != self.net.output_names:
            for index, name in enumerate(wanted, start=1):
                output = _safe(f"output_{index}")
                self.net.add_layers({output: TorchFunction("torch.clone")})
                self.net.connect(name, output)

    def _unique(self, name: str) -> str:
        return _unique_name(name, self.net.layer_names)

    def _layer(self, layer: dict, key: str, sources: list[str], kwargs: dict) -> str:
        class_name = layer.get("class_name", "?")
        config = dict(layer.get("config", {}))
        name = config.get("name") or key
        where = self.where(name)
        if class_name == "MultiHeadAttention":
            if len(set(sources)) != 1:
                raise ModelImportError(
                    f"{where} (MultiHeadAttention) attends across different tensors; import_keras "
                    "supports self-attention (query, key and value from one tensor)."
                )
            sources = sources[:1]
            config["_causal"] = bool(kwargs.get("use_causal_mask", False))
        shapes = [self.net.output_shape(s) for s in sources]
        weights = self.file.weights(name, key, class_name)
        chain = convert_layer(class_name, config, weights, shapes, where)
        for index, (suffix, module, params) in enumerate(chain):
            layer_name = self._unique(_safe(f"{name}_{suffix}" if suffix else name))
            self.net.add_layers({layer_name: module})
            feeding = sources if index == 0 else [self.net.layer_names[-2]]
            ports = list(self.net.sources(layer_name))
            for port, source in zip(ports, feeding, strict=True):
                self.net.connect(source, f"{layer_name}/{port}")
            _load(module, params, where)
        return self.net.layer_names[-1]


def _unique_name(name: str, taken: list[str]) -> str:
    unique, k = name, 1
    while unique in taken:
        unique, k = f"{name}_{k}", k + 1
    return unique


def _safe(name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_\-]", "_", name)
    if not (name[:1].isalpha() or name[:1] == "_"):
        name = f"layer_{name}"
    return f"{name}_layer" if hasattr(nn.ModuleDict, name) else name


def _load(module: nn.Module, params: dict[str, np.ndarray], where: str) -> None:
    state = module.state_dict()
    with torch.no_grad():
        for key, value in params.items():
            if key not in state:
                raise ModelImportError(f"{where}: the toolbox layer has no parameter '{key}'.")
            tensor = torch.as_tensor(np.ascontiguousarray(value), dtype=state[key].dtype)
            if tuple(tensor.shape) != tuple(state[key].shape):
                raise ModelImportError(
                    f"{where}: weight '{key}' has size {tuple(tensor.shape)} in the file; the layer "
                    f"expects {tuple(state[key].shape)}."
                )
            state[key].copy_(tensor)


def import_keras(path: str | os.PathLike) -> Network:
    """Import a Keras model file (``.keras`` or legacy ``.h5``) as a Network, without Keras.

    Sequential and Functional models are read with zipfile, json and h5py. Images are
    converted from Keras's channels-last layout: the network takes (N, C, H, W) batches, its
    convolution kernels are transposed, and a Flatten after images permutes to Keras's
    order first, so predictions match Keras's. Recurrent weights are reordered to torch's gate
    order. A layer with no toolbox equivalent raises :class:`ModelImportError` naming the file,
    the layer and the supported layers (see :func:`supported_keras_layers`).

    Example:
        >>> try:
        ...     import_keras("missing.keras")
        ... except ModelImportError as err:
        ...     print(err)
        import_keras: the file 'missing.keras' does not exist.
    """
    file = KerasFile(Path(path))
    try:
        return _Builder(file).build()
    finally:
        file.close()
