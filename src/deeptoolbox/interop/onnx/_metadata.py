"""What an ONNX file written by export_onnx carries back to import_onnx besides the graph.

- Layer names: every node is named after the layer it comes from (``conv1``, ``relu1``,
  ``conv1/Add`` for a layer's further nodes); the network calls its layers through
  ``nn.Module.__call__`` while it is exported so that parameterless layers are named too.
- ``metadata_props``: ``deeptoolbox.network`` (the network's name), ``deeptoolbox.classes``
  (JSON) and ``classes`` (comma-separated, the key other tools read), ``deeptoolbox.inputs``,
  and ``deeptoolbox.folded_batchnorm``: the BatchNorm layers the exporter folded into the
  convolution or dense layer before them (``{"bn1": "conv1"}``). import_onnx puts those back
  as BatchNorm layers that leave their input unchanged, so the imported network has the
  original's layers under the original names (``gradcam(layer="bn1")``, ``freeze(up_to=...)``)
  and computes the same. ``export_onnx(..., fold_batchnorm=False)`` keeps BatchNorm as ONNX
  BatchNormalization nodes instead, with their statistics.
- ``deeptoolbox.layer_classes``: the class (and options the graph does not hold) of layers
  whose nodes other layers or other files write too: a ``PatchEmbedding`` on sequences is
  the nodes of a ``Conv1d`` whose stride is its kernel, a ``ScaleOffset`` is a constant
  ``Mul`` and ``Add``: ``{"patches": {"class": "PatchEmbedding", "patch_size": 16}, "so":
  {"class": "ScaleOffset", "trainable": false}}``; import_onnx's pattern pass reads it. Layers
  ONNX has no operator for (GELU, GroupNorm, Embedding, DepthToSpace...) are recorded there
  too, with their saved record and where their weights are (see :mod:`._recorded`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from deeptoolbox.interop.onnx._recorded import recorded_layers
from deeptoolbox.layers._norm import BatchNorm
from deeptoolbox.network._network import Network

METADATA_PREFIX = "deeptoolbox."
FOLDED_KEY = METADATA_PREFIX + "folded_batchnorm"
CLASSES_KEY = METADATA_PREFIX + "layer_classes"
RECORDED_OPTIONS: dict[str, tuple[str, ...]] = {
    "PatchEmbedding": ("patch_size",),
    "ScaleOffset": ("trainable",),
}
"""Layers whose class export_onnx records, with the options it records (see the module doc)."""
NETWORK_KEY = METADATA_PREFIX + "network"


def _no_hook(module: nn.Module, inputs: tuple) -> None:
    return None


@contextlib.contextmanager
def layer_scopes(net: nn.Module) -> Iterator[None]:
    """While exporting, call every layer through ``__call__`` (a no-op hook makes the network
    do so), so torch.export records the layer each operation comes from."""
    if not isinstance(net, Network):
        yield
        return
    # a hooked layer is called through __call__: the network's plan checks for hooks each call
    hooks = [layer.register_forward_pre_hook(_no_hook) for layer in net.layers.values()]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


@contextlib.contextmanager
def batchnorm_folding(fold: bool) -> Iterator[bool]:
    """Leave out onnxscript's BatchNorm-into-Conv/Gemm rewrite rules unless ``fold``.

    Yields False when the rules could not be taken out (an onnxscript without them under the
    expected names); the caller then checks the written graph.
    """
    if fold:
        yield True
        return
    try:
        from onnxscript import rewriter
        from onnxscript.rewriter.rules.common import _fuse_batchnorm

        original = rewriter._DEFAULT_REWRITE_RULES
        folding = {id(rule) for rule in _fuse_batchnorm.rules}
    except (ImportError, AttributeError):
        yield False
        return
    rewriter._DEFAULT_REWRITE_RULES = tuple(r for r in original if id(r) not in folding)
    try:
        yield True
    finally:
        rewriter._DEFAULT_REWRITE_RULES = original


def node_layers(model) -> set[str]:
    """The layer names the nodes of ``model`` carry (``conv1`` and ``conv1/Add`` -> conv1)."""
    return {node.name.split("/")[0] for node in model.graph.node if node.name}


def folded_batchnorms(net: nn.Module, model) -> dict[str, str]:
    """BatchNorm layers of ``net`` with no node of their own, folded into the layer feeding
    them: ``{batchnorm name: layer name}``."""
    if not isinstance(net, Network):
        return {}
    named = node_layers(model)
    folded = {}
    for name, layer in net.layers.items():
        if not isinstance(layer, BatchNorm) or name in named:
            continue
        sources = [s for s in net.sources(name).values() if s is not None]
        if len(sources) == 1 and sources[0] in named and len(net.destinations(sources[0])) == 1:
            folded[name] = sources[0]
    return folded


def metadata_entries(net: nn.Module, model) -> dict[str, str]:
    """The ``metadata_props`` export_onnx writes."""
    entries = {METADATA_PREFIX + "producer": "deeptoolbox"}
    if isinstance(net, Network):
        entries[NETWORK_KEY] = net.name
        if net.classes is not None:
            entries[METADATA_PREFIX + "classes"] = json.dumps(net.classes)
        inputs = {n: type(net.layers[n]).__name__ for n in net.input_names}
        entries[METADATA_PREFIX + "inputs"] = json.dumps(inputs)
        folded = folded_batchnorms(net, model)
        if folded:
            entries[FOLDED_KEY] = json.dumps(folded)
        recorded = {
            name: {"class": kind, **{o: getattr(m, o) for o in RECORDED_OPTIONS[kind]}}
            for name, m in net.layers.items()
            if (kind := type(m).__name__) in RECORDED_OPTIONS
        }
        recorded.update(recorded_layers(net, model))
        if recorded:
            entries[CLASSES_KEY] = json.dumps(recorded)
        if net.classes is not None:
            entries["classes"] = ",".join(net.classes)  # the key MATLAB and other tools read
    return entries


def _props(model) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def network_name(model) -> str | None:
    """The network name export_onnx recorded, if any."""
    name = _props(model).get(NETWORK_KEY)
    return name if isinstance(name, str) and name else None


def layer_classes(model) -> dict[str, dict[str, Any]]:
    """The layer classes and options export_onnx recorded (``deeptoolbox.layer_classes``:
    ``{layer: {"class": ..., option: value}}``), else {}."""
    try:
        recorded = json.loads(_props(model).get(CLASSES_KEY, "{}"))
    except ValueError:
        return {}
    if not isinstance(recorded, dict):
        return {}
    return {str(k): v for k, v in recorded.items() if isinstance(v, dict)}


def restore_folded_batchnorms(network: Network, model) -> None:
    """Put back, as identity BatchNorm layers, the ones export_onnx folded (see module doc)."""
    try:
        folded = json.loads(_props(model).get(FOLDED_KEY, "{}"))
    except ValueError:
        return
    if not isinstance(folded, dict):
        return
    added = []
    for batchnorm, source in folded.items():
        if source in network.layer_names and batchnorm not in network.layer_names:
            network.insert_layer(source, BatchNorm(name=str(batchnorm)))
            added.append(str(batchnorm))
    if added:
        network.initialize()
        for name in added:
            _make_identity(network.layer(name))


def _make_identity(layer: Any) -> None:
    layer.eval()  # as import_onnx leaves the layers it maps: computing like the file
    with torch.no_grad():
        layer.running_mean.zero_()
        layer.running_var.fill_(1.0 - layer.epsilon)  # (x - 0) / sqrt(var + eps) = x
        layer.weight.fill_(1.0)
        layer.bias.zero_()
