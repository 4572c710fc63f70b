"""Network architecture <-> JSON: what ``network.json`` holds and what code generation reads."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from torch import nn

from deeptoolbox.errors import NetworkError, NetworkFileError, OptionError, UnregisteredLayerError
from deeptoolbox.layers._base import (
    Layer,
    config_of,
    layer_type_name,
    registered_layer,
    registered_layers,
)
from deeptoolbox.network._graph import Connection
from deeptoolbox.network._shapes import input_ports

if TYPE_CHECKING:  # Network imports this module (its to_json / from_json), never the reverse
    from deeptoolbox.network._network import Network

FORMAT = "deeptoolbox.network"
FORMAT_VERSION = 2
"""Version history: 1 = the first format. 2 = convolutions default to ``padding=0`` (before,
``"same"``), and a bidirectional LSTM/GRU's ``output_mode="last"`` is MATLAB's last time step
(before, each direction's final state, now ``"final_state"``)."""

RENAMED_LAYER_TYPES: dict[str, tuple[str, dict[str, Any]]] = {
    "MaskedGlobalAvgPool": ("GlobalAvgPool", {"has_padding_mask": True}),
}
"""Toolbox layer types that files written by earlier versions name: old type name -> (the
type today, the options that give it the old behaviour). A class registered under the old
name (a user's own) wins."""

_CONVOLUTIONS = ("Conv1d", "Conv2d", "Conv3d")
_RECURRENT = ("LSTM", "GRU")


def upgrade_layer_config(type_name: str, config: dict[str, Any], version: int) -> dict[str, Any]:
    """The config of a toolbox layer record read from a file of format ``version``, in
    today's terms, so that a saved network keeps its meaning when a default or an option's
    meaning changes.

    Example:
        >>> upgrade_layer_config("Conv2d", {"filters": 8, "kernel_size": 3}, 1)["padding"]
        'same'
        >>> "padding" in upgrade_layer_config("Conv2d", {"filters": 8, "kernel_size": 3}, 2)
        False
        >>> upgrade_layer_config("LSTM", {"hidden_size": 4, "output_mode": "last",
        ...                               "bidirectional": True}, 1)["output_mode"]
        'final_state'
    """
    upgraded = dict(config)
    if version < 2:
        if type_name in _CONVOLUTIONS:
            upgraded.setdefault("padding", "same")
        if (
            type_name in _RECURRENT
            and upgraded.get("bidirectional")
            and upgraded.get("output_mode") == "last"
        ):
            upgraded["output_mode"] = "final_state"
    return upgraded


def _check_json_value(layer: str, key: str, value: Any) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise OptionError(
            f"Layer '{layer}': the argument {key}={value!r} cannot be written to network.json; "
            "constructor arguments of saved layers must be JSON values (numbers, strings, "
            "booleans, lists, dicts, None)."
        ) from None


def layer_record(name: str, module: nn.Module) -> dict[str, Any]:
    """Describe one layer as ``{"name", "type", "config"}`` (its entry in ``network.json``).

    Raises :class:`~deeptoolbox.errors.UnregisteredLayerError` for a module whose class is
    not registered (it could not be saved), and :class:`~deeptoolbox.errors.NetworkError`
    for a configuration value JSON cannot hold.

    Example:
        >>> from deeptoolbox import layers as L
        >>> layer_record("act", L.ReLU())
        {'name': 'act', 'type': 'ReLU', 'config': {}}
    """
    type_name = layer_type_name(module)
    if not isinstance(module, Layer):
        try:
            if registered_layer(type_name) is not type(module):
                raise UnregisteredLayerError("")
        except UnregisteredLayerError:
            raise UnregisteredLayerError(
                f"Layer '{name}' is a {type(module).__module__}.{type(module).__qualname__}, which "
                "is not registered, so it cannot be saved. Decorate its class with "
                "@deeptoolbox.layers.register_layer (its constructor arguments are then saved)."
            ) from None
    config = config_of(module)
    for key, value in config.items():
        _check_json_value(name, key, value)
    return {"name": name, "type": type_name, "config": config}


def _graph_order(net: Network) -> list[Connection]:
    """Connections sorted by destination layer, then input port: the same graph always gives
    the same JSON, whatever order it was edited in (code generation builds in its own order)."""
    position = {name: index for index, name in enumerate(net.layer_names)}

    def key(connection: Connection) -> tuple[int, int]:
        ports = input_ports(net.layers[connection.destination])
        port = ports.index(connection.port) if connection.port in ports else len(ports)
        return position[connection.destination], port

    return sorted(net.connections, key=key)


def architecture(net: Network) -> dict[str, Any]:
    """Return the JSON-ready description of a network's architecture (no weights).

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> arch = architecture(Network([L.FeatureInput(2), L.Dense(1, name="fc")]))
        >>> arch["layers"][1], arch["connections"]
        ({'name': 'fc', 'type': 'Dense', 'config': {'units': 1, 'bias': True, 'weights_initializer': 'glorot', 'bias_initializer': 'zeros'}}, [['featureinput_1', 'fc/in']])
    """
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": net.name,
        "layers": [layer_record(name, module) for name, module in net.layers.items()],
        "connections": [[c.source, c.destination_port] for c in _graph_order(net)],
        "frozen": net.frozen_layers,
        "learn_rate_factors": dict(net._learn_rate_factors),
        "classes": net.classes,
    }


def _build_layer(record: Any, where: str, version: int) -> tuple[str, nn.Module]:
    if not isinstance(record, dict) or not {"name", "type", "config"} <= record.keys():
        raise NetworkFileError(
            f"{where}: each layer entry needs 'name', 'type' and 'config'. Received: {record!r}."
        )
    type_name, config = record["type"], record["config"]
    if type_name in RENAMED_LAYER_TYPES and type_name not in registered_layers():
        type_name, options = RENAMED_LAYER_TYPES[type_name]
        config = {**config, **options} if isinstance(config, dict) else config
    try:
        cls = registered_layer(type_name)
    except UnregisteredLayerError as err:
        raise UnregisteredLayerError(f"{where}: {err}") from None
    if isinstance(config, dict) and cls.__module__.startswith("deeptoolbox."):
        config = upgrade_layer_config(type_name, config, version)
    try:
        if issubclass(cls, Layer):
            module = cls.from_config(config)
        else:
            from_config = getattr(cls, "from_config", None)
            module = from_config(config) if callable(from_config) else cls(**config)
    except (TypeError, ValueError) as err:
        raise NetworkFileError(
            f"{where}: layer '{record['name']}' of type {record['type']} cannot be rebuilt from "
            f"config {config!r}: {err}"
        ) from err
    return record["name"], module


_FIELD_KINDS = {"name": (str, "a string"), "layers": (list, "a list of layer entries"),
                "connections": (list, "a list of [source, destination] pairs"),
                "classes": ((list, type(None)), "a list of class names or null"),
                "frozen": (list, "a list of layer names"),
                "learn_rate_factors": (dict, "an object of layer name: factor"),
                "tied_weights": (dict, "an object of tensor: source tensor"),
                "parametrizations": (list, "a list of parametrization entries")}  # fmt: skip


def layer_from_record(record: dict[str, Any], where: str) -> tuple[str, nn.Module]:
    """(name, layer) rebuilt from a :func:`layer_record` of this version's format.

    Example:
        >>> from deeptoolbox.layers import Dense
        >>> name, layer = layer_from_record(layer_record("fc", Dense(3)), "example")
        >>> name, type(layer).__name__, layer.units
        ('fc', 'Dense', 3)
    """
    return _build_layer(record, where, FORMAT_VERSION)


def _check_fields(data: dict[str, Any], where: str) -> None:
    """The top-level fields of a description have the types the reader relies on."""
    for key, (kinds, meaning) in _FIELD_KINDS.items():
        if key in data and not isinstance(data[key], kinds):
            raise NetworkFileError(
                f"{where}: {key!r} must be {meaning}. Received: {_brief(data[key])}."
            )
    for pair in data.get("connections", []):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str)
                                                                  for p in pair)):  # fmt: skip
            raise NetworkFileError(
                f"{where}: each connection must be a [source, destination] pair of layer or "
                f"port names. Received: {_brief(pair)}."
            )
    for key in ("frozen", "classes"):
        if any(not isinstance(item, str) for item in data.get(key) or []):
            raise NetworkFileError(f"{where}: {key!r} must hold strings only.")


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def from_architecture(
    data: Any, network_type: type[Network], where: str = "network.json"
) -> Network:
    """Rebuild a network (with freshly initialized weights) from :func:`architecture` output.

    ``network_type`` is the class to build (:class:`~deeptoolbox.network.Network` or a
    subclass): this module reads and writes the description and never imports the class.

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(1, name="fc")])
        >>> from_architecture(architecture(net), Network).layer_names
        ['featureinput_1', 'fc']
    """
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise NetworkFileError(
            f'{where} is not a deeptoolbox network description (expected "format": "{FORMAT}").'
        )
    version = data.get("format_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise NetworkFileError(
            f"{where} has format_version {version!r}; expected an integer from 1 to "
            f"{FORMAT_VERSION}."
        )
    if version > FORMAT_VERSION:
        raise NetworkFileError(
            f"{where} has format_version {data['format_version']}; this deeptoolbox reads up to "
            f"{FORMAT_VERSION}. Upgrade deeptoolbox to load it."
        )
    _check_fields(data, where)
    try:
        net = network_type(name=data.get("name", "network"))
        with net.editing():  # sizes resolved once, at the end
            for record in data.get("layers", []):
                name, module = _build_layer(record, where, version)
                net.add_layers({name: module})
            for source, destination in data.get("connections", []):
                net.connect(source, destination)
        net.classes = data.get("classes")
        net.freeze(data.get("frozen", []))
        for name, factor in data.get("learn_rate_factors", {}).items():
            net.set_learn_rate_factor(name, factor)
    except (NetworkError, ValueError, TypeError) as err:
        if isinstance(err, NetworkFileError | UnregisteredLayerError):
            raise
        raise NetworkFileError(f"{where} describes an invalid network: {err}") from err
    return net


def to_json(net: Network, *, indent: int | None = 2) -> str:
    """Return the architecture of ``net`` as a JSON string.

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> text = to_json(Network([L.FeatureInput(2), L.Dense(1)]))
        >>> from_json(text, Network).layer_names
        ['featureinput_1', 'dense_1']
    """
    return json.dumps(architecture(net), indent=indent)


def from_json(text: str, network_type: type[Network]) -> Network:
    """Rebuild a ``network_type`` (fresh weights) from :func:`to_json` output."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise NetworkFileError(f"The network JSON is not valid JSON: {err}") from err
    return from_architecture(data, network_type, "the network JSON")
