"""import_keras: Keras 3 ``.keras`` and legacy ``.h5`` model files -> Network, without Keras."""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deeptoolbox import layers as L
from deeptoolbox._limits import ReadLimits
from deeptoolbox.errors import DeepToolboxError, ModelImportError, OptionError
from deeptoolbox.interop._operators import TorchFunction
from deeptoolbox.interop._verify import check_unsupported
from deeptoolbox.interop.keras._files import KerasFile, file_keys
from deeptoolbox.interop.keras._folding import fold, functional_candidates, sequential_candidates
from deeptoolbox.interop.keras._layers import OPERATIONS, convert_layer
from deeptoolbox.interop.keras._metadata import (
    classes_of,
    input_layer_of,
    normalization_layers_of,
)
from deeptoolbox.interop.keras._placeholder import KerasPlaceholder
from deeptoolbox.layers._attention import MASK_PORTS
from deeptoolbox.layers._input import InputLayer
from deeptoolbox.network import Network, resolve_layer

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
    if len(size) == 4 and None not in size:  # Keras (D, H, W, C) -> (C, D, H, W)
        return L.VolumeInput((size[3], size[0], size[1], size[2]))
    raise ModelImportError(
        f"{where}: an input of size {tuple(size)} (batch excluded) has no toolbox input layer; "
        "supported: features (C,), sequences (T, C) with a free or fixed T, images (H, W, C), "
        "volumes (D, H, W, C)."
    )


Ref = tuple[str, int]  # a Keras tensor: (layer name, call index)

# Keras layers whose output carries their first input's padding mask on (supports_masking)
PROPAGATE_MASK = frozenset({
    "Dense", "Dropout", "Activation", "ReLU", "LeakyReLU", "ELU", "LayerNormalization",
    "BatchNormalization",
})  # fmt: skip
RECURRENT = frozenset({"LSTM", "GRU", "Bidirectional"})
MERGE = frozenset({"Add", "Multiply", "Concatenate"})
MASK_USERS = "LSTM, GRU, Bidirectional, GlobalAveragePooling1D and MultiHeadAttention"
PART = "#"  # Ref names "layer#1": the second output of a layer with several
ALL_REAL = "*every step real*"  # a Keras mask that marks every step real (not a layer name)


@dataclass
class _Call:
    """One call of a Keras layer: positional tensors, tensor keywords, constant keywords."""

    args: list[Ref]
    tensors: dict[str, Ref] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)
    raw: list[Any] = field(default_factory=list)  # positional arguments as saved

    @property
    def refs(self) -> list[Ref]:
        return [*self.args, *self.tensors.values()]


def _history(value: Any) -> list[Ref]:
    """Source tensors in a Keras 3 call argument (a tensor or nested lists of tensors)."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        history = value["config"]["keras_history"]
        tensor = int(history[2]) if len(history) > 2 else 0  # a layer's second output...
        return [(history[0] if tensor == 0 else f"{history[0]}{PART}{tensor}", int(history[1]))]
    if isinstance(value, list | tuple):
        return [ref for item in value for ref in _history(item)]
    return []


def _calls(layer: dict[str, Any], where: str) -> list[_Call]:
    calls = []
    for node in layer.get("inbound_nodes") or []:
        if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
            kwargs = node.get("kwargs", {})
            tensors = {k: _history(v) for k, v in kwargs.items()}
            if any(len(refs) > 1 for refs in tensors.values()):
                raise ModelImportError(f"{where} takes a list of tensors as a keyword argument.")
            calls.append(_Call(
                _history(node.get("args", [])),
                {k: refs[0] for k, refs in tensors.items() if refs},
                {k: v for k, v in kwargs.items() if not tensors[k]},
                list(node.get("args", [])),
            ))  # fmt: skip
        else:  # Keras 2: [[name, node, tensor, kwargs], ...]
            kwargs = node[0][3] if node and len(node[0]) > 3 else {}
            calls.append(_Call([(entry[0], int(entry[1])) for entry in node], {}, kwargs))
    return calls


def _is_operation(layer: dict[str, Any]) -> bool:
    """A keras.ops call (legacy .h5 files drop the module; operations have no "trainable")."""
    module = layer.get("module")
    if module is not None:
        return str(module).startswith("keras.src.ops")
    return "trainable" not in layer.get("config", {}) and layer.get("class_name") in OPERATIONS


def _attention_inputs(call: _Call, where: str) -> tuple[list[Ref], dict[str, Ref]]:
    """MultiHeadAttention's (query, value[, key]) and its explicit masks, however passed."""
    args, tensors = list(call.args), dict(call.tensors)
    named = ["query", "value", "key"]
    found = {k: args.pop(0) if args else tensors.pop(k, None) for k in named}
    if found["query"] is None or found["value"] is None:
        raise ModelImportError(f"{where} (MultiHeadAttention) is called without query and value.")
    inputs = [found["query"], found["value"]]
    if found["key"] is not None and found["key"] != found["value"]:
        inputs.append(found["key"])
    masks = {
        k: tensors.pop(k) for k in ("value_mask", "key_mask", "attention_mask") if k in tensors
    }
    tensors.pop("query_mask", None)  # Keras takes the query's own mask instead
    if tensors:
        raise ModelImportError(
            f"{where} (MultiHeadAttention) takes tensor arguments {sorted(tensors)}; supported: "
            "query, value, key, value_mask, key_mask and attention_mask."
        )
    return inputs, masks


def _recorded_sizes(kind: str, layers: list[dict]) -> dict[Ref, Any]:
    """The output sizes Keras recorded for layers (batch included, Keras's layout): the shapes
    of the tensors later calls take (Functional models), or the next layer's build input
    shape (Sequential models)."""
    found: dict[Ref, Any] = {}
    if kind == "Sequential":
        for layer, after in zip(layers, layers[1:], strict=False):
            shape = (after.get("build_config") or {}).get("input_shape")
            if shape is not None:
                found[(_layer_name(layer, "?"), 0)] = shape
        return found

    def walk(value: Any) -> None:
        if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
            config = value.get("config", {})
            history = config.get("keras_history") or []
            if len(history) >= 2 and (len(history) < 3 or int(history[2]) == 0):
                found.setdefault((str(history[0]), int(history[1])), config.get("shape"))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    for layer in layers:
        walk(layer.get("inbound_nodes") or [])
    return found


def _toolbox_size(shape: Any) -> tuple | None:
    """A Keras shape (batch included) as a toolbox size: images and volumes channels first."""
    if not isinstance(shape, list | tuple) or not shape:
        return None
    size = [None if d is None else int(d) for d in shape[1:]]
    return tuple(size[-1:] + size[:-1]) if len(size) in (3, 4) else tuple(size)


class _Builder:
    def __init__(self, file: KerasFile, unsupported: str = "error") -> None:
        self.file = file
        self.unsupported = unsupported
        self.placeholders: list[str] = []  # KerasPlaceholder layers left to replace
        self.recorded: dict[Ref, Any] = {}  # Keras's recorded output sizes
        self.net = Network(name=str(file.model.get("config", {}).get("name") or "keras"))
        self.output_of: dict[Ref, str] = {}
        self.mask_of: dict[Ref, str | None] = {}
        self.shared: dict[str, list[str]] = {}
        self.implicit_masks: list[str] = []
        self.deferred: dict[Ref, tuple[dict, str, int, _Call]] = {}  # keras.ops calls
        self.fold_candidates: dict[str, list[dict]] = {}  # input -> preprocessing after it
        self.folded: dict[str, Ref] = {}  # Keras layers the input layers apply themselves
        self.keys: dict[str, str] = {}  # Keras layer name -> its weights file key
        self.halves: list[str] = []  # Bidirectional(merge_mode=None) outputs, used or not
        self.shape_of: dict[str, Any] = {}  # toolbox layer -> output size, as layers are added

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
        # keras.ops calls hold no weights and take no key in the weights file
        names = ["Operation" if _is_operation(x) else x.get("class_name", "") for x in layers]
        keys = file_keys(names)
        self.keys = {_layer_name(x, k): k for x, k in zip(layers, keys, strict=True)}
        self._plan_folds(kind, layers)
        if self.unsupported == "placeholder":
            self.recorded = _recorded_sizes(kind, layers)
        with self.net.editing():  # sizes resolved when a layer asks for them, or at the end
            if kind == "Sequential":
                self._sequential(layers, keys)
            else:
                self._functional(layers, keys)
        try:
            self.net.initialize()
        except DeepToolboxError as err:
            others = [i for i in self.net.issues
                      if i.severity == "error" and i.layer not in self.placeholders]  # fmt: skip
            if others or not self.placeholders:
                raise ModelImportError(f"import_keras: '{self.file.path}': {err}") from err
        declared = set(self._declared_outputs())
        halves = [h for h in self.halves if h not in declared]
        unused = [m for m in self.implicit_masks + halves if not self.net.destinations(m)]
        if unused:  # Keras saved explicit mask operations instead
            self.net.remove_layers(unused)
        if self.shared:
            self.net.metadata["keras_shared_layers"] = self.shared
        classes = classes_of(self.file.metadata)
        if classes is not None and len(self.net.output_names) == 1:
            self.net.classes = classes
        return self.net.eval()

    def _plan_folds(self, kind: str, layers: list[dict]) -> None:
        """Find the Rescaling / Normalization layers right after each input."""
        if kind == "Sequential":
            first = next((x for x in layers if x.get("class_name") == "InputLayer"), None)
            name = _layer_name(first, "input") if first is not None else "input"
            self.fold_candidates[name] = sequential_candidates(layers)
            return
        calls = {}
        for layer in layers:
            if layer.get("class_name") != "InputLayer":
                name = _layer_name(layer, "?")
                calls[name] = [call.refs for call in _calls(layer, self.where(name))]
        declared = self.file.model["config"].get("output_layers", [])
        declared = [declared] if declared and isinstance(declared[0], str) else declared
        outputs = [(entry[0], int(entry[1]) if len(entry) > 1 else 0) for entry in declared]
        for layer in layers:
            if layer.get("class_name") == "InputLayer":
                name = _layer_name(layer, "input")
                self.fold_candidates[name] = functional_candidates(
                    layers, calls, outputs, (name, 0)
                )

    def _folded_input(self, layer: InputLayer, name: str) -> InputLayer:
        """The input layer with the preprocessing right after it as its normalization."""
        candidates = self.fold_candidates.get(name) or []
        if layer.normalization != "none" or not candidates:
            return layer
        steps = []
        for keras_layer in candidates:
            kind, key = keras_layer["class_name"], self.keys[_layer_name(keras_layer, "?")]
            weights = self.file.weights(_layer_name(keras_layer, "?"), key, kind)
            steps.append((kind, keras_layer.get("config", {}), weights))
        folded = fold(layer, steps)
        if folded is None:
            return layer
        for keras_layer in candidates:
            self.folded[_layer_name(keras_layer, "?")] = (name, 0)
        return folded

    def _input(self, config: dict[str, Any], name: str) -> None:
        layer = _input_layer(config, self.where(name))
        layer = input_layer_of(self.file.metadata, name, layer)
        layer = self._folded_input(layer, name)
        self.net.add_layers({_safe(name): layer})
        self.output_of[(name, 0)] = self.net.layer_names[-1]
        self.mask_of[(name, 0)] = None

    def _sequential(self, layers: list[dict], keys: list[str]) -> None:
        previous: Ref | None = None
        if layers and layers[0].get("class_name") != "InputLayer":
            previous = self._declared_input(layers[0].get("config", {}))
        for layer, key in zip(layers, keys, strict=True):
            config = layer.get("config", {})
            name = config.get("name") or key
            if layer.get("class_name") == "InputLayer":
                self._input(config, name)
            else:
                self._layer(layer, key, 0, _Call([previous]))  # type: ignore[list-item]
            previous = (name, 0)

    def _declared_input(self, first: dict[str, Any]) -> Ref:
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
        self._input(config, "input")
        return ("input", 0)

    def _functional(self, layers: list[dict], keys: list[str]) -> None:
        pending: list[tuple[dict, str, int, _Call]] = []
        declared = self.file.model["config"].get("input_layers") or []
        declared = [declared] if declared and isinstance(declared[0], str) else declared
        order = [entry[0] for entry in declared]
        inputs = [layer for layer in layers if layer.get("class_name") == "InputLayer"]
        inputs.sort(key=lambda x: order.index(x["name"]) if x.get("name") in order else len(order))
        for layer in inputs:  # the network takes its inputs in the model's order
            self._input(layer.get("config", {}), layer.get("name") or layer["config"]["name"])
        for layer, key in zip(layers, keys, strict=True):
            config = layer.get("config", {})
            name = layer.get("name") or config.get("name") or key
            if layer.get("class_name") == "InputLayer":
                continue
            calls = _calls(layer, self.where(name))
            if not calls or not all(call.refs for call in calls):
                raise ModelImportError(f"{self.where(name)} is not called on any input.")
            nodes = [(layer, key, index, call) for index, call in enumerate(calls)]
            if _is_operation(layer):  # converted only where used: Keras saves each mask
                self.deferred |= {(name, node[2]): node for node in nodes}  # this way too
            else:
                pending += nodes
        while pending:  # a shared layer's later calls may use layers listed after it
            ready = next((p for p in pending if all(map(self._available, p[3].refs))), None)
            if ready is None:
                layer, _, _, call = pending[0]
                missing = sorted({r[0] for r in call.refs if not self._available(r)})
                name = layer.get("name") or layer.get("config", {}).get("name")
                raise ModelImportError(
                    f"{self.where(name)} takes inputs from unknown layers {missing}."
                )
            pending.remove(ready)
            self._layer(*ready)
        self._outputs(self.file.model["config"].get("output_layers", []))

    def _declared_outputs(self) -> list[str]:
        """The toolbox layers giving the model's declared outputs (Functional models)."""
        declared = self.file.model.get("config", {}).get("output_layers") or []
        refs = _history([{"class_name": "__keras_tensor__", "config": {"keras_history": entry}}
                         for entry in ([declared] if isinstance(declared[0], str) else declared)]
                        ) if declared else []  # fmt: skip
        return [self.output_of[r] for r in refs if r in self.output_of]

    def _outputs(self, declared: list) -> None:
        if declared and isinstance(declared[0], str):
            declared = [declared]
        refs = _history(
            [{"class_name": "__keras_tensor__", "config": {"keras_history": e}} for e in declared]
        )
        wanted = [self._output(ref) for ref in refs if self._available(ref)]
        if len(wanted) > 1 and wanted != self.net.output_names:
            for index, name in enumerate(wanted, start=1):
                output = _safe(f"output_{index}")
                self.net.add_layers({output: TorchFunction("torch.clone")})
                self.net.connect(name, output)

    def _shape(self, name: str) -> Any:
        """A layer's output size, from the sizes found as layers were added (resolving the
        whole network at each layer would take time quadratic in its size)."""
        if name not in self.shape_of:
            self.shape_of[name] = self.net.output_shape(name)
        return self.shape_of[name]

    def _unique(self, name: str) -> str:
        return _unique_name(name, self.net.layer_names)

    def _available(self, ref: Ref) -> bool:
        if ref in self.output_of:
            return True
        node = self.deferred.get(ref)
        return node is not None and all(map(self._available, node[3].refs))

    def _output(self, ref: Ref) -> str:
        """The toolbox layer giving a Keras tensor, converting a keras.ops call when first used."""
        if ref not in self.output_of:
            self._layer(*self.deferred.pop(ref))
        return self.output_of[ref]

    def _incoming(self, ref: Ref, call: _Call) -> str | None:
        """The padding mask a layer sees: its input's, else one passed explicitly (mask=)."""
        implicit = self.mask_of.get(ref)
        if implicit is not None or "mask" not in call.tensors:
            return implicit
        return self._output(call.tensors["mask"])

    def _layer(self, layer: dict, key: str, index: int, call: _Call) -> None:
        class_name = layer.get("class_name", "?")
        config = dict(layer.get("config", {}))
        name = config.get("name") or key
        if name in self.folded:  # applied by the input layer's normalization
            self.output_of[(name, 0)] = self.output_of[self.folded[name]]
            self.mask_of[(name, 0)] = None
            return
        if self._folds_into_input(name, call):
            return
        where = self.where(name)
        base = _safe(name if index == 0 else f"{name}_call{index + 1}")
        if class_name == "Sequential":
            self._nested(layer, key, index, call, base)
            return
        refs, masks = list(call.args), {}
        if class_name == "MultiHeadAttention":
            refs, explicit = _attention_inputs(call, where)
            masks = self._attention_masks(refs, explicit, config, call.kwargs)
            config["_self"] = len(refs) == 2 and refs[0] == refs[1]
        elif class_name == "Attention":
            refs = self._dot_attention_inputs(refs, config, call, where)
        elif _is_operation(layer):
            config["_arguments"] = [None if _history(a) else a for a in call.raw]
        else:
            masks = self._masks(class_name, config, refs, call, base, where)
        sources = [self._output(ref) for ref in refs]
        shapes = [self._shape(s) for s in sources]
        shapes += [self._shape(m) for m in masks.values()]
        weights = self.file.weights(name, key, class_name)
        fallback = None
        if self.unsupported == "placeholder":

            def fallback(reason: str) -> list:
                saved = layer.get("config", {})
                return self._placeholder(class_name, saved, weights, shapes[: len(sources)],
                                         (name, index), reason)  # fmt: skip

        chain = convert_layer(class_name, config, weights, shapes, where, fallback)
        placeholder = isinstance(chain[0][1], KerasPlaceholder)
        added = self._add_chain(base, chain, sources, {} if placeholder else masks, where)
        if placeholder:
            self.placeholders.append(added[0])
        self.output_of[(name, index)] = added[-1]
        self.mask_of[(name, index)] = (
            None  # keras.ops results and placeholders carry no mask
            if "_arguments" in config or placeholder
            else self._output_mask(class_name, config, refs, call, masks)
        )
        if class_name == "Bidirectional" and config.get("merge_mode", "concat") is None:
            self._directions(name, index, added[-1])
        if len(layer.get("inbound_nodes") or []) > 1:  # the layer holding this call's weights
            self.shared.setdefault(name, []).append(added[0])

    def _placeholder(
        self, class_name: str, config: dict, weights: list, shapes: list, ref: Ref, reason: str
    ) -> list:
        """A KerasPlaceholder for a layer import_keras cannot convert, sized as Keras recorded."""
        arrays = [np.asarray(w) for w in weights]
        layer = KerasPlaceholder(
            class_name, keras_config=config, reason=reason, num_inputs=max(len(shapes), 1),
            output_size=_toolbox_size(self.recorded.get(ref)),
            input_sizes=[tuple(s) for s in shapes if s is not None],
            weights=[{"shape": list(a.shape), "dtype": str(a.dtype)} for a in arrays],
        )  # fmt: skip
        return [("", layer, {f"weight_{i}": a for i, a in enumerate(arrays, start=1)})]

    def _directions(self, name: str, index: int, joined: str) -> None:
        """Bidirectional(merge_mode=None)'s two outputs: the forward and the backward half."""
        for tensor, mode in enumerate(("forward", "backward")):
            half = self._unique(f"{joined}_{mode}")
            self.net.add_layers({half: L.MergeDirections(mode)}).connect(joined, half)
            ref = (name if tensor == 0 else f"{name}{PART}{tensor}", index)
            self.output_of[ref] = half
            self.mask_of[ref] = self.mask_of[(name, index)]
            self.halves.append(half)

    def _nested(self, layer: dict, key: str, index: int, call: _Call, base: str) -> None:
        """A Sequential model used as one layer: its layers one after the other."""
        name = layer.get("config", {}).get("name") or key
        inner = [x for x in layer["config"].get("layers", []) if x["class_name"] != "InputLayer"]
        if len(call.args) != 1 or any(x["class_name"] == "Sequential" for x in inner):
            raise ModelImportError(
                f"{self.where(name)} is a nested Sequential model called on {len(call.args)} "
                "tensors or holding other models; import_keras reads nested Sequential models "
                "of plain layers called on one tensor."
            )
        source = self._output(call.args[0])
        weights = self.file.nested_weights(name, key, inner)
        for sub, variables in zip(inner, weights, strict=True):
            sub_name = sub.get("config", {}).get("name") or sub["class_name"]
            where = f"{self.where(name)} (nested layer '{sub_name}')"
            shapes = [self._shape(source)]
            chain = convert_layer(sub["class_name"], dict(sub["config"]), variables, shapes, where)
            source = self._add_chain(_safe(f"{base}_{sub_name}"), chain, [source], {}, where)[-1]
        self.output_of[(name, index)] = source
        self.mask_of[(name, index)] = None

    def _folds_into_input(self, name: str, call: _Call) -> bool:
        """A Normalization / Rescaling layer export_keras wrote for an input layer's
        normalization, which the input layer (rebuilt from metadata.json) applies itself."""
        source = normalization_layers_of(self.file.metadata).get(name)
        if source is None or len(call.args) != 1 or call.args[0] != (source, 0):
            return False
        layer = self.net.layer(self.output_of[(source, 0)])
        if getattr(layer, "normalization", "none") == "none":
            return False
        self.output_of[(name, 0)] = self.output_of[(source, 0)]
        self.mask_of[(name, 0)] = self.mask_of[(source, 0)]
        return True

    def _dot_attention_inputs(
        self, refs: list[Ref], config: dict, call: _Call, where: str
    ) -> list[Ref]:
        """Keras's Attention([query, value, key]) as the toolbox's (query, key, value)."""
        masked = any(self._incoming(ref, call) not in (None, ALL_REAL) for ref in refs)
        if call.tensors or masked or call.kwargs.get("return_attention_scores"):
            raise ModelImportError(
                f"{where} (Attention) is called with masks or return_attention_scores; "
                "import_keras reproduces Attention([query, value]) and Attention([query, "
                "value, key]), optionally with use_causal_mask=True."
            )
        if len(refs) not in (2, 3):
            raise ModelImportError(
                f"{where} (Attention) needs [query, value] or [query, value, key]."
            )
        config["_causal"] = bool(call.kwargs.get("use_causal_mask", False))
        return [refs[0], refs[2] if len(refs) == 3 else refs[1], refs[1]]

    def _masks(
        self, class_name: str, config: dict, refs: list[Ref], call: _Call, base: str, where: str
    ) -> dict[str, str]:
        """The padding masks a layer reads (port -> layer); sets the converter's flags."""
        if class_name in ("Embedding", "Masking"):
            if class_name == "Embedding" and not config.get("mask_zero", False):
                return {}
            name = self._unique(f"{base}_mask")
            value = float(config.get("mask_value", 0.0)) if class_name == "Masking" else 0.0
            mask = L.PaddingMask(value, over_channels=class_name == "Masking")
            self.net.add_layers({name: mask}).connect(self._output(refs[0]), name)
            self.implicit_masks.append(name)
            return {"mask": name}
        mask = self._incoming(refs[0], call) if refs else None
        if mask is None or mask == ALL_REAL:
            return {}
        if class_name in RECURRENT or class_name == "GlobalAveragePooling1D":
            config["_mask"] = True
            return {"mask": mask}
        if class_name == "Softmax":
            raise ModelImportError(
                f"{where} (Softmax) receives a padding mask; import_keras reproduces masks in "
                f"{MASK_USERS} only."
            )
        return {}

    def _attention_masks(
        self, refs: list[Ref], explicit: dict[str, Ref], config: dict, kwargs: dict
    ) -> dict[str, str]:
        found = {
            "query_mask": self.mask_of.get(refs[0]),
            "value_mask": self.mask_of.get(refs[1]),
            "key_mask": self.mask_of.get(refs[2]) if len(refs) > 2 else None,
            "attention_mask": None,
        }
        found |= {port: self._output(ref) for port, ref in explicit.items()}
        masks = {port: m for port in MASK_PORTS if (m := found[port]) not in (None, ALL_REAL)}
        config["_masks"] = list(masks)
        config["_has_key"] = len(refs) > 2
        config["_causal"] = bool(kwargs.get("use_causal_mask", False))
        return masks

    def _output_mask(
        self, class_name: str, config: dict, refs: list[Ref], call: _Call, masks: dict[str, str]
    ) -> str | None:
        """The padding mask Keras attaches to the layer's output (None for none)."""
        if class_name in ("Embedding", "Masking"):
            return masks.get("mask")
        if class_name in PROPAGATE_MASK:
            return self._incoming(refs[0], call)
        if class_name in RECURRENT:
            inner = config["layer"]["config"] if class_name == "Bidirectional" else config
            return self._incoming(refs[0], call) if inner.get("return_sequences") else None
        if class_name == "MultiHeadAttention":
            return self.mask_of.get(refs[0])
        if class_name not in MERGE:
            return None  # Keras drops the mask (layers without masking support)
        return self._merged_mask(class_name, config, refs)

    def _merged_mask(self, class_name: str, config: dict, refs: list[Ref]) -> str | None:
        where = self.where(config.get("name", class_name))
        masks = {self.mask_of.get(ref) for ref in refs}
        if masks == {None}:
            return None
        if class_name == "Concatenate":
            rank = len(self._shape(self._output(refs[0])) or ()) + 1
            if int(config.get("axis", -1)) % rank != rank - 1:
                raise ModelImportError(
                    f"{where} (Concatenate) joins masked tensors along axis "
                    f"{config.get('axis')}; import_keras follows padding masks through "
                    "concatenations along the channels (axis=-1) only."
                )
            if None in masks:  # a step is real where any input's is: an unmasked input
                return ALL_REAL  # makes every step real
        elif None in masks:  # Add, Multiply: Keras keeps a mask only if every input has one
            return None
        if len(masks) == 1:
            return masks.pop()
        if ALL_REAL in masks:  # Keras joins the masks with OR
            return ALL_REAL
        raise ModelImportError(
            f"{where} ({class_name}) merges tensors with different padding masks; import_keras "
            "reproduces merges of tensors with the same mask, or with an unmasked tensor."
        )

    def _add_chain(
        self, base: str, chain: list, sources: list[str], masks: dict[str, str], where: str
    ) -> list[str]:
        """Add a converted chain, wiring inputs and mask ports; return the new layers' names."""
        added: list[str] = []
        for index, (suffix, module, params) in enumerate(chain):
            layer_name = self._unique(f"{base}_{suffix}" if suffix else base)
            feeding = sources if index == 0 else added[-1:]
            self.net.add_layers({layer_name: module})
            for port, source in zip(self.net.sources(layer_name), feeding, strict=False):
                self.net.connect(source, f"{layer_name}/{port}")
            for port in list(self.net.sources(layer_name))[len(feeding) :]:
                if port not in masks:
                    raise ModelImportError(f"{where}: nothing feeds port '{port}' of {module}.")
                self.net.connect(masks[port], f"{layer_name}/{port}")
            ports = self.net.sources(layer_name)
            unsized = [
                s for s in ports.values() if s in self.placeholders and self._shape(s) is None
            ]
            if unsized:
                raise ModelImportError(
                    f"{where} takes the output of the KerasPlaceholder '{unsized[0]}', whose "
                    "output size the file does not record, so import_keras cannot size this "
                    "layer; make the unsupported layer convertible, or build this part of the "
                    "network from toolbox layers."
                )
            try:  # builds the layer, so it has its weights to fill
                shape, _ = resolve_layer(module, [self._shape(s) for s in ports.values()])
            except DeepToolboxError as err:
                if not isinstance(module, KerasPlaceholder):
                    raise ModelImportError(f"{where}: {err}") from err
                shape = None  # an output size the file does not record: analyze says so
            self.shape_of[layer_name] = shape
            _load(module, params, where)
            added.append(layer_name)
        return added


def _layer_name(layer: dict[str, Any], default: str) -> str:
    return str(layer.get("name") or layer.get("config", {}).get("name") or default)


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


_DAMAGE = (KeyError, AttributeError, TypeError, IndexError, ValueError, RuntimeError, OSError,
           zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError)  # fmt: skip


def _read_keras_file(
    path: Path, unsupported: str = "error", limits: ReadLimits | None = None
) -> Network:
    """The network a Keras file describes; a damaged file (h5py's errors, a config of the
    wrong shape) raises ModelImportError naming it instead of the reader's own exception."""
    try:
        file = KerasFile(path, limits)
        try:
            return _Builder(file, unsupported).build()
        finally:
            file.close()
    except DeepToolboxError:
        raise
    except _DAMAGE as err:
        raise ModelImportError(
            f"import_keras: {str(path)!r} is damaged or is not a model file Keras wrote "
            f"({type(err).__name__}: {err})."
        ) from err


def import_keras(
    path: str | os.PathLike,
    *,
    example_inputs: torch.Tensor | Sequence[torch.Tensor] | None = None,
    name: str | None = None,
    unsupported: str = "error",
    limits: ReadLimits | None = None,
) -> Network:
    """Import a Keras model file (``.keras`` or legacy ``.h5``) as a Network, without Keras.

    Sequential and Functional models are read with zipfile, json and h5py. Images and
    volumes are converted from Keras's channels-last layout: the network takes (N, C, H, W)
    and (N, C, D, H, W) batches, its convolution kernels are transposed, and a Flatten after
    images or volumes permutes to Keras's order first, so predictions match Keras's. Recurrent weights are reordered to torch's gate
    order. Padding masks (``Embedding(mask_zero=True)``, ``Masking``) are computed inside the
    network and wired to the layers that read them, with Keras's results at masked steps;
    a layer called several times becomes one layer per call with copies of its weights
    (listed in ``net.metadata["keras_shared_layers"]``). The network takes its inputs in the
    Keras model's order.

    ``unsupported`` says what happens to a layer with no toolbox equivalent (an unknown
    class such as a custom registered layer, or an unsupported option): ``"error"``
    (default) raises :class:`ModelImportError` naming the file, the layer and the supported
    layers (see :func:`supported_keras_layers`); ``"placeholder"`` puts a
    :class:`KerasPlaceholder` in its place (its Keras class name, configuration and weights
    kept, its output size as Keras recorded it), which ``analyze`` reports and which must be
    replaced (``net.replace_layer``) before the network runs. ``Lambda`` layers are refused
    either way: their code is never loaded. ``"operator"`` (running the original Keras
    layer) is not offered: no Keras code runs at import, and Keras is not a dependency.

    ``limits`` (:class:`deeptoolbox.ReadLimits`, None for the defaults) bounds what the file
    may declare: zip and JSON sizes, JSON depth, weight sizes (docs/security.md).

    ``name`` renames the network (default: the Keras model's name). ``example_inputs``, when
    given, are run through the imported network once, so inputs of the wrong size show at
    import (not when placeholders are left: the network cannot run until they are replaced).
    The network comes back in evaluation mode (ready to predict, as Keras' ``predict``);
    ``deeptoolbox.train`` switches modes itself.

    Example:
        >>> try:
        ...     import_keras("missing.keras")
        ... except ModelImportError as err:
        ...     print(err)
        import_keras: the file 'missing.keras' does not exist.
    """
    if unsupported == "operator":
        raise OptionError(
            "import_keras: `unsupported` must be 'error' or 'placeholder'. Received: "
            "unsupported='operator', which would run the original Keras layer's code: "
            "import_keras never loads or runs code from a file, and Keras is not a dependency "
            "of deeptoolbox. Use unsupported='placeholder' and replace each KerasPlaceholder "
            "with net.replace_layer(name, layer)."
        )
    check_unsupported("import_keras", unsupported, ("error", "placeholder"))
    net = _read_keras_file(Path(path), unsupported, limits)
    if name is not None:
        net.name = name
    placeholders = any(isinstance(m, KerasPlaceholder) for m in net.layers.values())
    if example_inputs is not None and not placeholders:
        inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else example_inputs
        with torch.no_grad():
            net.eval()(*inputs)
    return net.eval()
