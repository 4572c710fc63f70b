"""Keras preprocessing layers right after an input, folded into the input layer's normalization.

A Keras model often starts with ``Rescaling`` and ``Normalization`` layers (the MobileNetV3,
EfficientNet and ConvNeXt applications do). Right after an input, and read by nothing else,
they are one affine map ``x * scale + offset``: the toolbox input layer applies it as its
``"zscore"`` normalization (mean = -offset / scale, std = 1 / scale, per channel or per
element), as MATLAB's input layers would, so the network shows its normalization where
MATLAB users look for it. Elsewhere (or with a scale <= 0) they become ScaleOffset layers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deeptoolbox.errors import DeepToolboxError, _KerasUnsupported
from deeptoolbox.interop.keras._more_layers import keras_affine, toolbox_layout
from deeptoolbox.layers._input import InputLayer

FOLDABLE = frozenset({"Rescaling", "Normalization"})
Ref = tuple[str, int]


def _name(layer: dict[str, Any]) -> str:
    return str(layer.get("name") or layer.get("config", {}).get("name"))


def sequential_candidates(layers: list[dict]) -> list[dict]:
    """The Rescaling / Normalization layers at the start of a Sequential model."""
    found = []
    for layer in layers:
        if layer.get("class_name") == "InputLayer":
            continue
        if layer.get("class_name") not in FOLDABLE:
            break
        found.append(layer)
    return found


def functional_candidates(
    layers: list[dict], calls: dict[str, list[list[Ref]]], outputs: list[Ref], start: Ref
) -> list[dict]:
    """The chain of Rescaling / Normalization layers after input ``start``, each the only
    reader of the tensor before it. ``calls``: layer name -> the refs each call reads."""
    readers: dict[Ref, int] = {}
    for refs_per_call in calls.values():
        for refs in refs_per_call:
            for ref in refs:
                readers[ref] = readers.get(ref, 0) + 1
    for ref in outputs:
        readers[ref] = readers.get(ref, 0) + 1
    by_source = {}
    for layer in layers:
        name = _name(layer)
        single = calls.get(name) and len(calls[name]) == 1 and len(calls[name][0]) == 1
        if layer.get("class_name") in FOLDABLE and single:
            by_source[calls[name][0][0]] = layer
    found, current = [], start
    while readers.get(current) == 1 and current in by_source:
        layer = by_source[current]
        found.append(layer)
        current = (_name(layer), 0)
    return found


def fold(input_layer: InputLayer, steps: list[tuple[str, dict, list]]) -> InputLayer | None:
    """``input_layer`` (normalization "none") normalizing by the affine ``steps`` (class name,
    config, weights), or None when the toolbox's normalization cannot hold it."""
    shape = input_layer.shape
    scale, offset = np.float64(1.0), np.float64(0.0)
    try:
        for class_name, config, weights in steps:
            s, o = keras_affine(class_name, config, weights, shape)
            scale, offset = scale * s, offset * s + o
    except (_KerasUnsupported, ValueError, TypeError, KeyError, IndexError):
        return None
    rank = len(shape)
    scale, offset = toolbox_layout(scale, rank), toolbox_layout(offset, rank)
    size = np.broadcast_shapes(scale.shape, offset.shape)
    scale, offset = np.broadcast_to(scale, size), np.broadcast_to(offset, size)
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0) or not np.all(np.isfinite(offset)):
        return None
    channel_axis = rank - 1 if rank <= 2 else 0
    per_channel = all(d == 1 for i, d in enumerate(size) if i != channel_axis)
    if per_channel:
        dimension = "channel"
        scale, offset = scale.reshape(-1), offset.reshape(-1)
    elif None in shape:
        return None
    else:
        dimension = "element"
        scale = np.broadcast_to(scale, shape)
        offset = np.broadcast_to(offset, shape)
    config = {k: v for k, v in input_layer.get_config().items()
              if k not in ("mean", "std", "min", "max")}  # fmt: skip
    config |= {"normalization": "zscore", "normalization_dimension": dimension,
               "mean": (-offset / scale).tolist(), "std": (1.0 / scale).tolist()}  # fmt: skip
    try:
        return type(input_layer)(**config)
    except DeepToolboxError:
        return None
