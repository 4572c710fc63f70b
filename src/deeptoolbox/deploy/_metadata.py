"""What a consumer of a deployed model needs to feed it: the ``metadata.json`` of a deployment
folder, also served by the inference server at ``GET /v1/metadata``.

Inputs are described by name, kind, size (batch excluded, ``null`` for a free length), layout
(``"NCHW"``...), dtype and the normalization the model applies itself; outputs by name and
size; plus class names, the model version and the versions that wrote it.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from deeptoolbox._version import __version__
from deeptoolbox.layers._input import InputLayer
from deeptoolbox.network._network import Network

METADATA_FORMAT = "deeptoolbox.deployment"
_LAYOUTS = {
    "FeatureInput": "NC",
    "SequenceInput": "NTC",
    "ImageInput": "NCHW",
    "VolumeInput": "NCDHW",
}
_RANK_LAYOUTS = {1: "NC", 2: "NTC", 3: "NCHW", 4: "NCDHW"}
_STATISTICS = ("mean", "std", "min", "max")
_MAX_LISTED_VALUES = 4096  # larger statistics stay in the model only


def input_description(name: str, layer: InputLayer) -> dict[str, Any]:
    """Describe one input layer: name, kind, size, layout, dtype and normalization.

    Example:
        >>> from deeptoolbox.layers import ImageInput
        >>> description = input_description("in", ImageInput((1, 8, 8)))
        >>> description["layout"], description["size"], description["normalization"]["method"]
        ('NCHW', [1, 8, 8], 'none')
    """
    kind = type(layer).__name__
    return {
        "name": name,
        "kind": kind,
        "size": [None if d is None else int(d) for d in layer.shape],
        "layout": _LAYOUTS.get(kind, _RANK_LAYOUTS.get(len(layer.shape), "N...")),
        "dtype": "float32",
        "normalization": _normalization(layer),
    }


def _normalization(layer: InputLayer) -> dict[str, Any]:
    method = layer.normalization
    entry: dict[str, Any] = {"method": method}
    if method == "none":
        return entry
    entry["dimension"] = layer.normalization_dimension
    entry["applied_by"] = "the model (feed raw values)"
    for key in _STATISTICS:
        value = getattr(layer, key, None)
        if isinstance(value, torch.Tensor) and key in _used_statistics(method):
            values = value.detach().cpu().double().flatten()
            if values.numel() <= _MAX_LISTED_VALUES:
                entry[key] = np.round(values.numpy(), 8).tolist()
    return entry


def _used_statistics(method: str) -> tuple[str, ...]:
    return {
        "zerocenter": ("mean",),
        "zscore": ("mean", "std"),
        "rescale-symmetric": ("min", "max"),
        "rescale-zero-one": ("min", "max"),
    }.get(method, ())


def tensor_description(name: str, size: Sequence[int | None], dtype: str = "float32") -> dict:
    """Describe an input or output known only by its size (batch excluded).

    Example:
        >>> tensor_description("x", (3, None))
        {'name': 'x', 'kind': 'Tensor', 'size': [3, None], 'layout': 'N...', 'dtype': 'float32'}
    """
    return {
        "name": name,
        "kind": "Tensor",
        "size": [None if d is None else int(d) for d in size],
        "layout": "N...",
        "dtype": dtype,
    }


def network_inputs(net: Network) -> list[dict[str, Any]]:
    """Descriptions of every input layer of ``net``, in the order ``forward`` takes them."""
    return [input_description(name, net.layer(name)) for name in net.input_names]


def network_outputs(net: Network) -> list[dict[str, Any]]:
    """Descriptions of every output of ``net``: name, size (None where unresolved), dtype."""
    outputs = []
    for name in net.output_names:
        size = net.output_shape(name)
        outputs.append({
            "name": name,
            "size": None if size is None else [None if d is None else int(d) for d in size],
            "dtype": "float32",
        })  # fmt: skip
    return outputs


def deployment_metadata(
    net: torch.nn.Module,
    *,
    model_file: str,
    model_format: str,
    version: int,
    inputs: list[dict[str, Any]] | None = None,
    outputs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``metadata.json`` of a deployment folder for ``net`` (a Network, or any module with
    ``inputs`` / ``outputs`` described by the caller).

    Example:
        >>> from deeptoolbox import layers as L
        >>> net = Network([L.FeatureInput(4), L.Dense(2), L.Softmax()], classes=["no", "yes"])
        >>> meta = deployment_metadata(net, model_file="model.onnx", model_format="onnx", version=1)
        >>> meta["classes"], meta["inputs"][0]["layout"], meta["model_version"]
        (['no', 'yes'], 'NC', 1)
    """
    is_network = isinstance(net, Network)
    metadata = getattr(net, "metadata", None)
    preprocessing = metadata.get("preprocessing") if isinstance(metadata, dict) else None
    return {
        "format": METADATA_FORMAT,
        "name": str(getattr(net, "name", None) or type(net).__name__),
        "model_file": model_file,
        "model_format": model_format,
        "model_version": int(version),
        "inputs": inputs if inputs is not None else (network_inputs(net) if is_network else []),
        "outputs": outputs if outputs is not None else (network_outputs(net) if is_network else []),
        "classes": list(net.classes) if getattr(net, "classes", None) is not None else None,
        "preprocessing": preprocessing,
        "deeptoolbox_version": __version__,
        "torch_version": torch.__version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
