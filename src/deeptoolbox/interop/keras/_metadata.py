"""What a ``.keras`` file written by export_keras carries back to import_keras.

- Input normalization becomes real Keras layers right after the input, so Keras computes
  what the network computes: ``zscore`` and ``zerocenter`` a ``Normalization`` layer (mean,
  variance), ``rescale-zero-one`` and ``rescale-symmetric`` a ``Rescaling`` layer (scale,
  offset); statistics are written channels-last, as Keras takes its data.
- ``metadata.json`` (which Keras itself does not read) gets a ``"deeptoolbox"`` entry: the
  network's name, its classes, each input layer's configuration (type, size, normalization
  and statistics) and the Keras layers that hold input normalization. import_keras rebuilds
  the input layers from it (the normalization layers fold back into them) and sets
  ``net.classes``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deeptoolbox.errors import DeepToolboxError
from deeptoolbox.layers._input import InputLayer

KEY = "deeptoolbox"


def _channels_last(values: np.ndarray, rank: int, dimension: str) -> Any:
    """A statistic in the network's layout as Keras's channels-last layout, JSON-ready."""
    if dimension == "all" or values.ndim == 0:
        return float(values.reshape(-1)[0])
    if dimension == "channel":
        return values.reshape(-1).tolist()
    if rank >= 3:  # element statistics of images / volumes: (C, H, W) -> (H, W, C)
        return np.moveaxis(values, 0, -1).tolist()
    return values.tolist()  # features (C,) and sequences (T, C) are channels-last already


def _statistic(layer: InputLayer, key: str) -> np.ndarray:
    return getattr(layer, key).detach().cpu().double().numpy()


def _axis(layer: InputLayer) -> Any:
    rank = len(layer.shape)
    dimension = _dimension(layer)
    if dimension == "all":
        return None
    if dimension == "element" and rank > 1:
        return list(range(1, rank + 1))
    return -1


def _dimension(layer: InputLayer) -> str:
    dimension = layer.normalization_dimension
    return "channel" if dimension == "auto" else dimension


def normalization_spec(layer: InputLayer) -> tuple[str, dict[str, Any]] | None:
    """The Keras class name and config that normalize like ``layer`` (None for "none")."""
    mode = layer.normalization
    if mode == "none":
        return None
    rank, dimension = len(layer.shape), _dimension(layer)
    if mode in ("zscore", "zerocenter"):
        mean = _statistic(layer, "mean")
        std = _statistic(layer, "std") if mode == "zscore" else np.ones_like(mean)
        config = {
            "axis": _axis(layer),
            "mean": _channels_last(mean, rank, dimension),
            "variance": _channels_last(std**2, rank, dimension),
            "invert": False,
        }
        return "Normalization", config
    low, high = _statistic(layer, "min"), _statistic(layer, "max")
    scale = 1.0 / np.maximum(high - low, 1e-12)
    offset = -low * scale
    if mode == "rescale-symmetric":
        scale, offset = 2 * scale, 2 * offset - 1
    config = {
        "scale": _channels_last(scale, rank, dimension),
        "offset": _channels_last(offset, rank, dimension),
    }
    return "Rescaling", config


def toolbox_entry(net: Any, normalization_layers: dict[str, str]) -> dict[str, Any]:
    """The ``"deeptoolbox"`` entry of metadata.json."""
    inputs = {}
    for name in net.input_names:
        layer = net.layer(name)
        inputs[name] = {"type": type(layer).__name__, "config": layer.get_config()}
    return {
        "network": net.name,
        "classes": net.classes,
        "inputs": inputs,
        "normalization_layers": normalization_layers,
    }


def _entry(metadata: dict[str, Any]) -> dict[str, Any]:
    entry = metadata.get(KEY) if isinstance(metadata, dict) else None
    return entry if isinstance(entry, dict) else {}


def classes_of(metadata: dict[str, Any]) -> list[str] | None:
    classes = _entry(metadata).get("classes")
    if isinstance(classes, list) and all(isinstance(c, str | int | float) for c in classes):
        return [str(c) for c in classes]
    return None


def normalization_layers_of(metadata: dict[str, Any]) -> dict[str, str]:
    """Keras layer name -> the input layer whose normalization it holds."""
    layers = _entry(metadata).get("normalization_layers")
    return {str(k): str(v) for k, v in layers.items()} if isinstance(layers, dict) else {}


def input_layer_of(metadata: dict[str, Any], name: str, built: InputLayer) -> InputLayer:
    """The input layer export_keras described for ``name``, when it has the size Keras
    declares; else ``built`` (what the Keras input declares)."""
    from deeptoolbox.layers import registered_layer

    described = _entry(metadata).get("inputs", {}).get(name)
    if not isinstance(described, dict) or described.get("type") != type(built).__name__:
        return built
    try:
        layer = registered_layer(described["type"])(**described["config"])
    except (TypeError, ValueError, KeyError, AttributeError, DeepToolboxError):
        return built
    return layer if tuple(layer.shape) == tuple(built.shape) else built
