"""Static memory planning: where every value and scratch buffer lives in the arenas.

Values that are reshapes of another share its storage. Network inputs and outputs live in the
caller's buffers. Every other storage is alive from the op that writes it to the last op that
reads it; storages whose lifetimes do not overlap share arena space (greedy, largest first).
Element-wise ops write over their input when nothing reads that input later (in place).
Recurrent state that must survive between ``NAME_step`` calls lives in a persistent region at
the start of the arena that nothing else uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from deeptoolbox.deploy._ir import Graph, Op

IN_PLACE = frozenset(
    {"act", "affine", "add", "mul", "softmax", "q_lut", "q_add", "q_mul", "q_affine", "q_softmax"}
)


@dataclass
class Buffer:
    """A region of one arena (``space``), or a caller buffer (space ``input``/``output``)."""

    space: str
    offset: int
    elements: int


@dataclass
class Storage:
    values: list[str]
    dtype: str
    elements: int
    first: int = -1  # index of the op that writes it
    last: int = -1  # index of the last op that reads it
    buffer: Buffer | None = None


@dataclass
class Scratch:
    """A buffer an op needs while it runs (or, persistent, across ``NAME_step`` calls)."""

    key: str
    dtype: str
    elements: int
    persistent: bool = False
    fill: int = 0  # what NAME_reset() writes into a persistent buffer


@dataclass
class MemoryPlan:
    """Where each value and scratch buffer of one graph lives."""

    buffers: dict[str, Buffer]  # value -> buffer
    scratch: dict[tuple[int, str], Buffer]  # (op index, key) -> buffer
    copies: list[tuple[int, Buffer]]  # (output index, source): outputs that need a copy
    sizes: dict[str, int] = field(default_factory=dict)  # planned elements per arena
    unshared: dict[str, int] = field(default_factory=dict)  # the same without any reuse
    in_place: set[int] = field(default_factory=set)  # ops writing over their input


class Planner:
    """Plans one graph; ``persistent`` holds the regions already given to recurrent state."""

    def __init__(
        self,
        graph: Graph,
        batch: int,
        dtype_of: Callable[[str], str],
        scratch_of: Callable[[Op], list[Scratch]],
        persistent: dict[str, Buffer],
        persistent_size: dict[str, int],
    ) -> None:
        self.graph, self.batch, self.dtype_of, self.scratch_of = graph, batch, dtype_of, scratch_of
        self.persistent, self.persistent_size = persistent, persistent_size
        self.storage_of: dict[str, Storage] = {}

    def plan(self) -> MemoryPlan:
        self._alias()
        copies = self._bind()
        unshared: dict[str, int] = {}
        for storage in self.storages():
            if storage.buffer is None:
                unshared[storage.dtype] = unshared.get(storage.dtype, 0) + storage.elements
        in_place = self._in_place()
        self._lifetimes()
        items = [(s, s.first, s.last) for s in self.storages() if s.buffer is None]
        scratch, pending = self._scratch(items)
        for holder, _, _ in items[len(items) - len(pending) :]:
            unshared[holder.dtype] = unshared.get(holder.dtype, 0) + holder.elements
        sizes = place(items, self.persistent_size)
        for index, key, holder in pending:
            scratch[(index, key)] = holder.buffer
        buffers = {v: s.buffer for s in self.storages() for v in s.values}
        return MemoryPlan(buffers, scratch, copies, sizes, unshared, in_place)

    def storages(self) -> list[Storage]:
        unique = {id(s): s for s in self.storage_of.values()}
        return list(unique.values())

    def _alias(self) -> None:
        graph = self.graph
        for name in graph.inputs:
            self._new(name)
        for op in graph.ops:
            if op.kind == "reshape":
                storage = self.storage_of[op.inputs[0]]
                storage.values.append(op.output)
                self.storage_of[op.output] = storage
            else:
                self._new(op.output)

    def _new(self, name: str) -> None:
        elements = self.graph.values[name].numel * self.batch
        self.storage_of[name] = Storage([name], self.dtype_of(name), elements)

    def _bind(self) -> list[tuple[int, Buffer]]:
        graph, copies = self.graph, []
        for index, name in enumerate(graph.inputs):
            self.storage_of[name].buffer = Buffer(f"input{index}", 0, 0)
        for index, name in enumerate(graph.outputs):
            storage = self.storage_of[name]
            if storage.buffer is None:
                storage.buffer = Buffer(f"output{index}", 0, storage.elements)
            else:  # a network input, or a storage already given to another output
                copies.append((index, storage.buffer))
        return copies

    def _merge(self, into: Storage, other: Storage) -> None:
        into.values += other.values
        for name in other.values:
            self.storage_of[name] = into

    def _readers(self, storage: Storage) -> list[int]:
        names = set(storage.values)
        return [i for i, op in enumerate(self.graph.ops) if names & set(op.inputs)]

    def _in_place(self) -> set[int]:
        done = set()
        for index, op in enumerate(self.graph.ops):
            out = self.storage_of[op.output]
            if op.kind not in IN_PLACE or out.buffer is not None:
                continue
            candidates = op.inputs[:2] if op.kind in ("add", "mul") else op.inputs
            for name in candidates:  # a chain of float adds writes its output before input 3
                source = self.storage_of[name]
                if (
                    source.buffer is None
                    and source.dtype == out.dtype
                    and source.elements == out.elements
                    and max(self._readers(source)) == index
                ):
                    self._merge(source, out)
                    done.add(index)
                    break
        return done

    def _lifetimes(self) -> None:
        for storage in self.storages():
            names = set(storage.values)
            writers = [i for i, op in enumerate(self.graph.ops) if op.output in names]
            readers = self._readers(storage)
            storage.first = min(writers) if writers else 0
            storage.last = max(readers + [storage.first])

    def _scratch(self, items: list) -> tuple[dict, list]:
        """Scratch needs of every op: persistent ones fixed, the others added to ``items``."""
        scratch: dict[tuple[int, str], Buffer] = {}
        pending = []
        for index, op in enumerate(self.graph.ops):
            for need in self.scratch_of(op):
                if need.persistent:
                    scratch[(index, need.key)] = self.persistent[need.key]
                    continue
                holder = Storage([f"{op.output}#{need.key}"], need.dtype, need.elements)
                pending.append((index, need.key, holder))
                items.append((holder, index, index))
        return scratch, pending


def place(items, start: dict[str, int]) -> dict[str, int]:
    """Give each (storage, first, last) an arena offset; returns the elements per arena."""
    sizes = dict(start)
    by_space: dict[str, list] = {}
    for storage, first, last in sorted(items, key=lambda it: (-it[0].elements, it[1])):
        space = f"arena_{storage.dtype}"
        placed = by_space.setdefault(space, [])
        offset = start.get(storage.dtype, 0)
        for other, o_first, o_last in sorted(placed, key=lambda it: it[0].buffer.offset):
            if o_last < first or last < o_first:
                continue  # not alive at the same time
            if other.buffer.offset - offset >= storage.elements:
                break  # fits in the gap before this one
            offset = max(offset, other.buffer.offset + other.buffer.elements)
        storage.buffer = Buffer(space, offset, storage.elements)
        placed.append((storage, first, last))
        sizes[storage.dtype] = max(sizes.get(storage.dtype, 0), offset + storage.elements)
    return sizes


def plan_memory(graph, batch, dtype_of, scratch_of, persistent, persistent_size) -> MemoryPlan:
    """Plan ``graph``; see :class:`Planner`."""
    planner = Planner(graph, batch, dtype_of, scratch_of, persistent, persistent_size)
    return planner.plan()
