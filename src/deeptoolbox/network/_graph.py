"""Graph helpers on layer names: connections, topological order, cycles, naming."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from deeptoolbox.errors import NetworkError
from deeptoolbox.layers._base import layer_type_name
from deeptoolbox.network._layer_dict import LayerDict

_RESERVED_NAMES = frozenset(dir(LayerDict)) | frozenset(vars(nn.ModuleDict()))


@dataclass(frozen=True)
class Connection:
    """One edge of the layer graph: ``source`` feeds input port ``port`` of ``destination``.

    Example:
        >>> edge = Connection("conv1", "add", "in2")
        >>> edge.source_port, edge.destination_port
        ('conv1/out', 'add/in2')
    """

    source: str
    destination: str
    port: str

    @property
    def source_port(self) -> str:
        """The source written as ``layer/out`` (every layer has one output port, ``out``)."""
        return f"{self.source}/out"

    @property
    def destination_port(self) -> str:
        """The destination written as ``layer/port``."""
        return f"{self.destination}/{self.port}"


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def check_layer_name(name: object) -> str:
    """Return ``name`` if it can name a layer (letters, digits, '_' and '-', not starting with
    a digit), else raise NetworkError."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise NetworkError(
            f"Layer names must start with a letter or '_' and contain only letters, digits, '_' "
            f"and '-' ('/' separates ports, '.' separates parameter names). Received: {name!r}."
        )
    return name


def generated_name(type_name: str, taken: Iterable[str]) -> str:
    """Return ``<type>_<k>`` with the smallest k >= 1 not in ``taken``.

    Example:
        >>> generated_name("Conv2d", {"conv2d_1"})
        'conv2d_2'
    """
    base = re.sub(r"[^a-z0-9_]", "", type_name.lower()) or "layer"
    taken = set(taken)
    k = 1
    while f"{base}_{k}" in taken:
        k += 1
    return f"{base}_{k}"


def topological_order(
    names: list[str], connections: list[Connection]
) -> tuple[list[str], list[str]]:
    """Order layers so that every source comes before its destinations (Kahn's algorithm).

    Returns ``(order, cyclic)``: layers on or behind a cycle are left out of ``order`` and
    listed in ``cyclic``. Ties keep the insertion order of ``names``.

    Example:
        >>> edges = [Connection("a", "b", "in"), Connection("b", "c", "in")]
        >>> topological_order(["c", "b", "a"], edges)
        (['a', 'b', 'c'], [])
    """
    position = {name: i for i, name in enumerate(names)}
    pending = {name: 0 for name in names}
    consumers: dict[str, list[str]] = {name: [] for name in names}
    for edge in connections:
        pending[edge.destination] += 1
        consumers[edge.source].append(edge.destination)
    ready = sorted((n for n in names if pending[n] == 0), key=position.__getitem__)
    order: list[str] = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        released = []
        for consumer in consumers[name]:
            pending[consumer] -= 1
            if pending[consumer] == 0:
                released.append(consumer)
        ready = sorted(ready + released, key=position.__getitem__)
    placed = set(order)
    return order, [n for n in names if n not in placed]


def find_cycle(names: list[str], connections: list[Connection]) -> list[str]:
    """Return the layers of one cycle among ``names`` (empty list if there is none).

    Example:
        >>> edges = [Connection("a", "b", "in"), Connection("b", "a", "in")]
        >>> find_cycle(["a", "b"], edges)
        ['a', 'b']
    """
    consumers: dict[str, list[str]] = {n: [] for n in names}
    for edge in connections:
        if edge.source in consumers and edge.destination in consumers:
            consumers[edge.source].append(edge.destination)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in consumers[node]:
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        stack.pop()
        return []

    for name in names:
        if name not in state and (cycle := visit(name)):
            return cycle
    return []


def _named_items(layers: Any) -> list[tuple[Any, Any]]:
    if isinstance(layers, Mapping):
        return [(check_layer_name(k), v) for k, v in layers.items()]
    if isinstance(layers, nn.Module):
        return [(getattr(layers, "name", None), layers)]
    if isinstance(layers, Sequence) and not isinstance(layers, str):
        return [(getattr(m, "name", None), m) for m in layers]
    raise NetworkError(
        f"Expected a layer, a list of layers or a dict of name -> layer. Received: {layers!r}."
    )


def name_layers(
    layers: Any, existing: Mapping[str, nn.Module], network: str, free: Iterable[str] = ()
) -> list[tuple[str, nn.Module]]:
    """Name each of ``layers`` (a module, list or dict) for adding to a network that holds
    ``existing`` (names in ``free`` are being replaced); raise NetworkError on bad names,
    duplicates or a module added twice.

    Example:
        >>> from torch import nn
        >>> name_layers([nn.ReLU(), nn.ReLU()], {}, "net")[1][0]
        'relu_2'
    """
    items = _named_items(layers)
    if not items:
        raise NetworkError("Expected at least one layer; received an empty list.")
    free = set(free)
    taken = set(existing.keys()) - free
    in_use = set(map(id, existing.values()))  # C-speed: edits one layer at a time stay cheap
    in_use -= {id(existing[k]) for k in free if k in existing}
    named: list[tuple[str, nn.Module]] = []
    for given, module in items:
        if not isinstance(module, nn.Module):
            raise NetworkError(
                f"Every layer must be a torch.nn.Module; received {type(module).__name__}: "
                f"{module!r}."
            )
        if given is not None and not isinstance(given, str):
            given = None
        name = check_layer_name(given) if given else generated_name(layer_type_name(module), taken)
        if name in _RESERVED_NAMES:
            raise NetworkError(
                f"'{name}' cannot name a layer: it is an attribute of torch.nn.ModuleDict, which "
                f"holds the layers. Choose another name, e.g. '{name}_1'."
            )
        if name in taken:
            raise NetworkError(
                f"A layer named '{name}' already exists in network '{network}'. Layer names "
                "must be unique; pass another name=... or leave it out to generate one."
            )
        if id(module) in in_use:
            raise NetworkError(
                f"The same {type(module).__name__} object is added twice ('{name}'); create a "
                "new layer object for each place in the graph."
            )
        taken.add(name)
        in_use.add(id(module))
        named.append((name, module))
    return named
