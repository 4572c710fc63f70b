"""The designer's layer library: every public layer of :mod:`deeptoolbox.layers`, grouped by
category, with the fields of its constructor (name, default, kind) for the properties panel."""

from __future__ import annotations

import inspect
from typing import Any

from deeptoolbox import layers as L
from deeptoolbox.layers._base import Layer
from deeptoolbox.network import input_ports

_CATEGORIES = {  # module of deeptoolbox.layers -> category shown in the palette
    "_input": "Input",
    "_dense": "Dense",
    "_conv": "Convolution",
    "_pool": "Pooling",
    "_norm": "Normalization",
    "_activation": "Activation",
    "_recurrent": "Sequence",
    "_attention": "Sequence",
    "_combine": "Combination",
    "_reshape": "Reshape",
}
_BASES = {"Layer", "StatefulLayer", "InputLayer"}
_STARTERS: dict[str, Any] = {  # values for required fields when a layer is dropped on the canvas
    "num_features": 4, "num_channels": 1, "units": 10, "filters": 8, "kernel_size": 3,
    "pool_size": 2, "groups": 2, "window_size": 5, "ceiling": 6.0, "hidden_size": 32,
    "vocabulary_size": 1000, "dimension": 32, "num_heads": 2, "max_position": 128,
    "target_shape": [-1], "block_size": 2, "output_size": 2, "patch_size": 4,
    "output_channels": 16, "expression": "x", "key_dim": 8, "axes": [1],
}  # fmt: skip
_STARTER_SIZES = {"ImageInput": [1, 28, 28], "VolumeInput": [1, 16, 16, 16], "TensorInput": [4]}
_TYPE_STARTERS = {"Resize2d": {"scale": 2}, "Resize3d": {"scale": 2},
                  "AvgPoolExcludingPadding": {"pool_size": [2, 2]}}  # fmt: skip  # layers that need one of several options


def starter_config(type_name: str, fields: list[dict[str, Any]]) -> dict[str, Any]:
    """Values for the required fields of a layer type, so a layer dropped from the palette
    can be built at once (the user then edits them).

    Example:
        >>> from deeptoolbox import layers as L
        >>> starter_config("Conv2d", config_fields(L.Conv2d))
        {'filters': 8, 'kernel_size': 3}
        >>> starter_config("ImageInput", config_fields(L.ImageInput))
        {'size': [1, 28, 28]}
    """
    config = {}
    for field in fields:
        if not field["required"]:
            continue
        if field["name"] == "size" and type_name in _STARTER_SIZES:
            config["size"] = _STARTER_SIZES[type_name]
        elif field["name"] in _STARTERS:
            config[field["name"]] = _STARTERS[field["name"]]
    return {**config, **_TYPE_STARTERS.get(type_name, {})}


def category_of(cls: type) -> str:
    """The palette category of a layer class (from the module that defines it).

    Example:
        >>> from deeptoolbox import layers as L
        >>> category_of(L.Conv2d), category_of(L.ReLU)
        ('Convolution', 'Activation')
    """
    if cls.__name__ == "Dropout" or "Dropout" in cls.__name__:
        return "Dropout"
    module = cls.__module__.rsplit(".", 1)[-1]
    return _CATEGORIES.get(module, "Other")


def _kind(default: Any, annotation: Any) -> str:
    text = str(annotation)
    if isinstance(default, bool) or text == "bool":
        return "bool"
    if isinstance(default, int) or text == "int":
        return "int"
    if isinstance(default, float) or text == "float":
        return "float"
    if isinstance(default, str) or text == "str":
        return "str"
    return "json"


def config_fields(cls: type) -> list[dict[str, Any]]:
    """The constructor fields of a layer class: name, kind, required, default (JSON).

    Example:
        >>> from deeptoolbox import layers as L
        >>> [f["name"] for f in config_fields(L.Dense)][:2]
        ['units', 'bias']
        >>> config_fields(L.Dense)[0]["required"]
        True
    """
    fields = []
    for key, param in inspect.signature(cls.__init__).parameters.items():
        if key in ("self", "name") or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        required = param.default is inspect.Parameter.empty
        default = None if required else param.default
        if isinstance(default, tuple):
            default = list(default)
        fields.append({
            "name": key,
            "kind": _kind(default, param.annotation),
            "required": required,
            "default": default if _json_safe(default) else repr(default),
        })  # fmt: skip
    return fields


def accepted_settings(cls: type) -> list[str] | None:
    """Every keyword a layer class's constructor takes (``name`` left out), following
    ``**options`` up to the base class that names them; None when they are open-ended.

    Example:
        >>> from deeptoolbox import layers as L
        >>> accepted_settings(L.Dense)[:2]
        ['units', 'bias']
        >>> "mean" in accepted_settings(L.ImageInput)  # ImageInput(**options) -> InputLayer
        True
    """
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):  # a builtin without a signature: cannot tell
            return None
        for param in params:
            if param.name not in ("self", "name", *names) and param.kind not in (
                param.VAR_POSITIONAL,
                param.VAR_KEYWORD,
            ):
                names.append(param.name)
        if not any(param.kind == param.VAR_KEYWORD for param in params):
            return names
    return None


def _json_safe(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str | list | dict)


def _default_ports(cls: type) -> list[str]:
    """Input ports of a layer built with its defaults (Addition: in1, in2)."""
    try:
        return list(input_ports(cls()))
    except (TypeError, ValueError):  # required arguments: the class's ports
        return list(getattr(cls, "input_names", ("in",)))


def layer_library() -> list[dict[str, Any]]:
    """Every public layer class: ``{"type", "category", "doc", "fields", "inputs"}``.

    Example:
        >>> library = layer_library()
        >>> next(e for e in library if e["type"] == "Addition")["inputs"]
        ['in1', 'in2']
    """
    entries = []
    for name in L.__all__:
        cls = getattr(L, name)
        if not (isinstance(cls, type) and issubclass(cls, Layer)) or name in _BASES:
            continue
        doc = (inspect.getdoc(cls) or "").split("\n", 1)[0]
        fields = config_fields(cls)
        entries.append({
            "type": name,
            "category": category_of(cls),
            "doc": doc,
            "fields": fields,
            "starter": starter_config(name, fields),
            "inputs": _default_ports(cls),
        })  # fmt: skip
    return entries
