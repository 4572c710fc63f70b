"""The designer's state: the Network being edited, its undo/redo history, and the edits the
front-end asks for, each made through the Network's public editing API."""

from __future__ import annotations

import copy
import difflib
import re
from typing import Any

from torch import nn

from deeptoolbox.apps._library import (
    accepted_settings,
    category_of,
    config_fields,
    starter_config,
)
from deeptoolbox.errors import NetworkError, OptionError
from deeptoolbox.layers._base import registered_layer
from deeptoolbox.network import (
    Network,
    analyze,
    architecture,
    from_architecture,
    input_ports,
    layer_record,
)

UNDO_DEPTH = 50
_SIZE_NAMES = re.compile(r"'([A-Za-z_][A-Za-z0-9_\-]*)'")


def _shape(value: Any) -> list | None:
    return None if value is None else list(value)


class DesignerSession:
    """One designer: the current network plus undo and redo stacks of earlier versions.

    Every edit copies the network first, so undo gives back the exact earlier network,
    weights included (the history keeps at most ``UNDO_DEPTH`` versions).

    Example:
        >>> from deeptoolbox import layers as L
        >>> session = DesignerSession(Network([L.FeatureInput(4, name="x")]))
        >>> _ = session.edit({"op": "add", "type": "Dense", "config": {"units": 3}, "name": "fc"})
        >>> _ = session.edit({"op": "connect", "source": "x", "destination": "fc"})
        >>> session.network.output_shape()
        (3,)
        >>> _ = session.undo(); session.network.sources("fc")
        {'in': None}
    """

    def __init__(self, network: Network | None = None) -> None:
        self.network = network if network is not None else Network(name="network")
        self._undo: list[Network] = []
        self._redo: list[Network] = []

    # -- history --------------------------------------------------------------------------
    def replace(self, network: Network) -> dict[str, Any]:
        """Make ``network`` the current one (opening a file, putting a graph); undoable."""
        self._undo.append(self.network)
        del self._undo[:-UNDO_DEPTH]
        self._redo.clear()
        self.network = network
        return self.describe()

    def undo(self) -> dict[str, Any]:
        """Go back one edit (NetworkError when there is none)."""
        if not self._undo:
            raise NetworkError("Nothing to undo: no edit has been made since the designer opened.")
        self._redo.append(self.network)
        self.network = self._undo.pop()
        return self.describe()

    def redo(self) -> dict[str, Any]:
        """Make the last undone edit again (NetworkError when there is none)."""
        if not self._redo:
            raise NetworkError("Nothing to redo: no edit was undone since the last edit.")
        self._undo.append(self.network)
        self.network = self._redo.pop()
        return self.describe()

    # -- edits ----------------------------------------------------------------------------
    def edit(self, request: dict[str, Any]) -> dict[str, Any]:
        """Apply one edit (``{"op": ..., ...}``, see :data:`EDITS`) and describe the result.

        A failing edit leaves the network as it was and raises the toolbox's error.
        """
        op = request.get("op")
        handler = EDITS.get(op)  # type: ignore[arg-type]
        if handler is None:
            raise OptionError(
                f"designer edit: unknown op {op!r}. Allowed: {', '.join(sorted(EDITS))}."
            )
        trial = copy.deepcopy(self.network)
        with trial.editing():
            handler(trial, request)
        return self.replace(trial)

    # -- what the front-end draws ---------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The graph with live analysis: layers (config, ports, sizes, learnables, issues),
        connections, every issue, the printed ``analyze`` table, and undo/redo availability."""
        net = self.network
        analysis = analyze(net)
        involved = _issue_layers(net, analysis.issues)
        layers = []
        for row in analysis.rows:
            module = net.layers[row.name]
            layers.append({
                "name": row.name,
                "type": row.type,
                "category": category_of(type(module)),
                "config": _config(row.name, module),
                "inputs": list(input_ports(module)),
                "input_sizes": [_shape(s) for s in row.input_sizes],
                "output_size": _shape(row.output_size),
                "learnables": row.learnables,
                "frozen": row.frozen,
                "learn_rate_factor": row.learn_rate_factor,
                "issues": involved.get(row.name, []),
            })  # fmt: skip
        return {
            "name": net.name,
            "layers": layers,
            "connections": [
                {"source": c.source, "destination": c.destination, "port": c.port}
                for c in net.connections
            ],
            "issues": [
                {"severity": i.severity, "layer": i.layer, "message": i.message}
                for i in analysis.issues
            ],
            "classes": net.classes,
            "total_learnables": analysis.total_learnables,
            "unsized": analysis.unsized,
            "ok": analysis.ok,
            "table": str(analysis),
            "can_undo": bool(self._undo),
            "can_redo": bool(self._redo),
        }


def _config(name: str, module: nn.Module) -> dict[str, Any] | None:
    try:
        return layer_record(name, module)["config"]
    except NetworkError:
        return None  # an opaque module (imported), shown without editable fields


def _issue_layers(net: Network, issues: list) -> dict[str, list[dict[str, str]]]:
    """Issues per layer, each also on the other layers its message names (a size mismatch
    names both layers)."""
    names = set(net.layer_names)
    found: dict[str, list[dict[str, str]]] = {}
    for issue in issues:
        if issue.layer is None:
            continue
        entry = {"severity": issue.severity, "message": issue.message}
        layers = [issue.layer] + [
            n for n in _SIZE_NAMES.findall(issue.message) if n in names and n != issue.layer
        ]
        for layer in dict.fromkeys(layers):
            found.setdefault(layer, []).append(entry)
    return found


def _new_layer(type_name: str, config: dict[str, Any]) -> nn.Module:
    cls = registered_layer(type_name)
    if not isinstance(config, dict):
        raise OptionError(f"designer: `config` must be an object. Received: {config!r}.")
    from_config = getattr(cls, "from_config", None)
    return from_config(config) if callable(from_config) else cls(**config)


def _check_settings(type_name: str, keys: Any, layer: str | None) -> None:
    """Refuse settings the layer type does not take, naming the layer, the setting and the
    settings it takes (a constructor's own TypeError names neither)."""
    cls = registered_layer(type_name)
    accepted = accepted_settings(cls)
    if accepted is None or not isinstance(keys, dict):
        return
    unknown = [key for key in keys if key not in accepted and key != "name"]
    if not unknown:
        return
    close = difflib.get_close_matches(str(unknown[0]), accepted, n=1, cutoff=0.6)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    which = f"layer {layer!r} ({type_name})" if layer else f"new {type_name} layer"
    plural = "s" if len(unknown) > 1 else ""
    raise OptionError(
        f"designer: {which}: unknown option{plural} {', '.join(f'`{k}`' for k in unknown)}."
        f"{hint} {type_name} takes: {', '.join(accepted)}. GET /api/library lists the "
        "settings of every layer type."
    )


def _text(request: dict[str, Any], key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str) or not value:
        raise OptionError(
            f"designer edit {request.get('op')!r}: `{key}` must be a non-empty string. "
            f"Received: {value!r}."
        )
    return value


def _add(net: Network, request: dict[str, Any]) -> None:
    """Add a layer; required fields left out take starter values (a layer dropped from the
    palette is built at once, then edited)."""
    type_name = _text(request, "type")
    config = request.get("config") or {}
    _check_settings(type_name, config, request.get("name") or None)
    if isinstance(config, dict):
        cls = registered_layer(type_name)
        config = {**starter_config(type_name, config_fields(cls)), **config}
    module = _new_layer(type_name, config)
    name = request.get("name")
    if name:
        net.add_layers({_text(request, "name"): module})
    else:
        net.add_layers(module)


def _remove(net: Network, request: dict[str, Any]) -> None:
    names = request.get("names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise OptionError(
            f"designer edit 'remove': `names` must be a list of layer names. Received: {names!r}."
        )
    net.remove_layers(names, bridge=bool(request.get("bridge", False)))


def _keep_training_settings(net: Network, new: str, frozen: bool, factor: float) -> None:
    if frozen:
        net.freeze(new)
    if factor != 1.0:
        net.set_learn_rate_factor(new, factor)


def _rename(net: Network, request: dict[str, Any]) -> None:
    name, new = _text(request, "name"), _text(request, "new_name")
    if new in net.layer_names:
        raise NetworkError(f"Cannot rename '{name}' to '{new}': a layer named '{new}' exists.")
    frozen, factor = name in net.frozen_layers, net.learn_rate_factor(name)
    module = net.layer(name)
    if hasattr(module, "name"):
        module.name = new
    net.replace_layer(name, {new: module})
    _keep_training_settings(net, new, frozen, factor)


def _duplicate(net: Network, request: dict[str, Any]) -> None:
    name = _text(request, "name")
    module = net.layer(name)
    record = layer_record(name, module)
    net.add_layers(_new_layer(record["type"], record["config"]))


def _connect(net: Network, request: dict[str, Any]) -> None:
    net.connect(_text(request, "source"), _text(request, "destination"))


def _disconnect(net: Network, request: dict[str, Any]) -> None:
    net.disconnect(_text(request, "source"), _text(request, "destination"))


def _set(net: Network, request: dict[str, Any]) -> None:
    """Set properties: the layer is rebuilt from its config with the new values."""
    name = _text(request, "name")
    changes = request.get("config")
    if not isinstance(changes, dict) or not changes:
        raise OptionError(
            f"designer edit 'set': `config` must be an object of properties. Received: {changes!r}."
        )
    record = layer_record(name, net.layer(name))
    _check_settings(record["type"], changes, name)
    frozen, factor = name in net.frozen_layers, net.learn_rate_factor(name)
    module = _new_layer(record["type"], {**record["config"], **changes})
    net.replace_layer(name, {name: module})
    _keep_training_settings(net, name, frozen, factor)


def _replace_head(net: Network, request: dict[str, Any]) -> None:
    from deeptoolbox.hub import adapt

    classes = request.get("classes")
    factor = request.get("learn_rate_factor")
    adapt(net, classes, layer=request.get("layer") or None, learn_rate_factor=factor)


def _freeze(net: Network, request: dict[str, Any]) -> None:
    from deeptoolbox.hub import freeze

    net.unfreeze()
    up_to = request.get("up_to")
    if up_to is not None:
        freeze(net, up_to=_text(request, "up_to"))


def _learn_rate(net: Network, request: dict[str, Any]) -> None:
    names = request.get("names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise OptionError(
            "designer edit 'learn_rate_factor': `names` must be a list of layer names. "
            f"Received: {names!r}."
        )
    net.set_learn_rate_factor(names, request.get("factor"))  # type: ignore[arg-type]


EDITS = {
    "add": _add,
    "remove": _remove,
    "rename": _rename,
    "duplicate": _duplicate,
    "connect": _connect,
    "disconnect": _disconnect,
    "set": _set,
    "replace_head": _replace_head,
    "freeze": _freeze,
    "learn_rate_factor": _learn_rate,
}
"""The designer's edits by ``op``: each takes the network and the request's fields."""


def network_from_graph(data: Any) -> Network:
    """A Network from a ``network.json`` description (what ``PUT /api/graph`` receives)."""
    return from_architecture(data, Network, "the graph sent to the designer")


def graph_json(net: Network) -> dict[str, Any]:
    """The ``network.json`` description of ``net`` (what ``GET /api/network.json`` sends)."""
    return architecture(net)
