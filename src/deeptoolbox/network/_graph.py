"""Graph helpers on layer names: connections, topological order, cycles, naming."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from deeptoolbox.errors import NetworkError


@dataclass(frozen=True)
class Connection:
    """One edge of the layer graph: ``source`` feeds input port ``port`` of ``destination``.

    Example:
        >>> Connection("conv1", "add", "in2").destination_port
        'add/in2'
    """

    source: str
    destination: str
    port: str

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
