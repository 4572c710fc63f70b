"""What the Keras layer converters share: the chain type, option checks, activations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from torch import nn

from deeptoolbox import layers as L
from deeptoolbox.errors import _KerasUnsupported

Chain = list[tuple[str, nn.Module, dict[str, np.ndarray]]]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": L.ReLU,
    "sigmoid": L.Sigmoid,
    "tanh": L.Tanh,
    "softmax": L.Softmax,
    "gelu": L.GELU,
    "swish": L.Swish,
    "silu": L.Swish,
    "elu": L.ELU,
    "leaky_relu": lambda: L.LeakyReLU(0.2),
    "relu6": lambda: L.ClippedReLU(6.0),
    "softplus": L.Softplus,
    "hard_sigmoid": L.HardSigmoid,  # Keras 3's: relu6(x + 3) / 6
    "hard_silu": L.HardSwish,
    "hard_swish": L.HardSwish,
    "mish": L.Mish,
}


def activation_name(value: Any) -> str:
    if isinstance(value, dict):  # serialized activation: {"class_name": "function", ...}
        value = value.get("config", value.get("class_name"))
    return str(value or "linear")


def activation_layer(value: Any) -> nn.Module | None:
    """The layer for a Keras activation name (None for "linear")."""
    name = activation_name(value)
    if name in ("linear", "None"):
        return None
    if name not in ACTIVATIONS:
        raise _KerasUnsupported(
            f"activation {name!r} (supported: {', '.join(sorted(ACTIVATIONS))})"
        )
    return ACTIVATIONS[name]()


def with_activation(chain: Chain, config: dict[str, Any]) -> Chain:
    layer = activation_layer(config.get("activation"))
    return chain + [("activation", layer, {})] if layer is not None else chain


def require(condition: bool, what: str) -> None:
    if not condition:
        raise _KerasUnsupported(what)


def channels_last(config: dict[str, Any]) -> None:
    require(config.get("data_format", "channels_last") == "channels_last", "data_format="
             f"{config.get('data_format')!r} (only 'channels_last')")  # fmt: skip


# -- export_keras ------------------------------------------------------------------------------
def array(tensor: Any) -> np.ndarray:
    return tensor.detach().cpu().float().numpy()


def spec(name: str, class_name: str, config: dict, variables: dict | None = None) -> dict:
    return {
        "name": name,
        "class_name": class_name,
        "config": {"name": name, "trainable": True, **config},
        "vars": variables or {},
        "kwargs": {},
    }
