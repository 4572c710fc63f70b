"""Which channels of a network can be pruned, and which must go together.

Every layer's output channels are *atoms*. Layers that keep channels apart (activations,
BatchNorm, pooling, Addition, Concatenation, Flatten, depthwise convolutions...) tie each
output channel to the input channel(s) it comes from; layers with weights (convolutions,
Dense, LSTM/GRU, SelfAttention) make fresh channels: their filters or units. Atoms tied
together form a *component*: one filter of a convolution with the BatchNorm channel after it,
the channels of every branch of a residual Addition, and so on. Removing a component removes
all its atoms at once, which is exactly the same as those channels being zero everywhere.

A component is blocked (cannot be pruned) when it reaches an input or output layer, a layer
that mixes channels without weights (Softmax, LayerNorm, GroupNorm, Reshape), a layer the
pruning does not know, or a layer the user excluded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from torch import nn

from deeptoolbox import layers as L
from deeptoolbox.layers._base import layer_type_name
from deeptoolbox.network import Network

_PASS_THROUGH = (
    L.ReLU, L.LeakyReLU, L.ELU, L.GELU, L.Sigmoid, L.Tanh, L.Swish, L.Dropout, L.BatchNorm,
    L.MaxPool1d, L.MaxPool2d, L.AvgPool1d, L.AvgPool2d, L.GlobalAvgPool, L.GlobalMaxPool,
    L.Resize2d,
)  # fmt: skip
_ELEMENTWISE = (L.Addition, L.Multiplication)
_CHANNEL_MIXERS = (L.Softmax, L.LayerNorm, L.GroupNorm)
_CONVOLUTIONS = (L.Conv1d, L.Conv2d, L.Conv3d)
_RECURRENT = (L.LSTM, L.GRU)
PRODUCERS = (*_CONVOLUTIONS, L.TransposedConv2d, L.Dense, *_RECURRENT, L.SelfAttention)


def channel_count(shape: tuple | None) -> int:
    """Channels of a size without batch: last axis of features/sequences, first otherwise."""
    if not shape:
        return 0
    channels = shape[-1] if len(shape) <= 2 else shape[0]
    return int(channels) if channels is not None else 0


@dataclass
class Component:
    """Channels that are pruned together: ``atoms`` maps a layer to its output channels in it."""

    index: int
    atoms: dict[str, list[int]] = field(default_factory=dict)
    producers: dict[str, list[int]] = field(default_factory=dict)
    blocked: str | None = None

    @property
    def signature(self) -> tuple[str, ...]:
        """The layers whose filters/units make this component (components sharing it are a group)."""
        return tuple(sorted(self.producers))

    @property
    def prunable(self) -> bool:
        return self.blocked is None and bool(self.producers)


@dataclass
class HeadGroup:
    """The attention heads of one SelfAttention layer (pruned inside the layer)."""

    layer: str
    heads: int
    blocked: str | None = None


class _UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


class ChannelGraph:
    """The components of a network's channels (see the module docstring).

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.ImageInput((1, 8, 8)), L.Conv2d(4, 3, padding=1, name="conv"),
        ...                L.BatchNorm(), L.ReLU(), L.GlobalAvgPool(), L.Dense(2, name="fc")])
        >>> graph = ChannelGraph(net)
        >>> [c.signature for c in graph.prunable()]
        [('conv',), ('conv',), ('conv',), ('conv',)]
    """

    def __init__(self, net: Network, exclude: Iterable[str] = ()) -> None:
        self.net = net
        self.spaces = {n: channel_count(net.output_shape(n)) for n in net.layer_names}
        self.offsets: dict[str, int] = {}
        total = 0
        for name, count in self.spaces.items():
            self.offsets[name] = total
            total += count
        self._sets = _UnionFind(total)
        self._blocked: dict[int, str] = {}
        self._producers: dict[str, bool] = {}
        self.heads: dict[str, HeadGroup] = {}
        excluded = set(exclude)
        for name in net.layer_names:
            self._apply_rule(name, net.layer(name))
        for name in net.output_names:
            self._block(name, f"layer '{name}' is an output of the network")
        for name in excluded:
            self._block(name, f"layer '{name}' is excluded from pruning")
            if name in self.heads:
                self.heads[name].blocked = f"layer '{name}' is excluded from pruning"
        self.components = self._collect()

    # -- building --------------------------------------------------------------------------
    def _atom(self, name: str, index: int) -> int:
        return self.offsets[name] + index

    def _block(self, name: str, reason: str) -> None:
        for i in range(self.spaces.get(name, 0)):
            self._blocked.setdefault(self._atom(name, i), reason)

    def _tie(self, source: str, source_index: int, name: str, index: int) -> None:
        self._sets.union(self._atom(source, source_index), self._atom(name, index))

    def _pass(self, name: str, source: str) -> bool:
        if self.spaces[source] != self.spaces[name]:
            return False
        for i in range(self.spaces[name]):
            self._tie(source, i, name, i)
        return True

    def _apply_rule(self, name: str, module: nn.Module) -> None:
        sources = [s for p, s in self.net.sources(name).items() if p != "mask" and s]
        kind = layer_type_name(module)
        if isinstance(module, L.InputLayer):
            self._block(name, f"layer '{name}' is an input layer")
        elif isinstance(module, _PASS_THROUGH) and len(sources) == 1:
            if not self._pass(name, sources[0]):
                self._mixer(name, sources, f"{kind} '{name}' changes the channel count")
        elif isinstance(module, _ELEMENTWISE):
            for source in sources:
                if not self._pass(name, source):
                    self._mixer(name, sources, f"{kind} '{name}' broadcasts channels")
        elif isinstance(module, L.Concatenation):
            self._concatenation(name, module, sources)
        elif isinstance(module, L.Flatten) and len(sources) == 1:
            self._flatten(name, sources[0])
        elif isinstance(module, _CONVOLUTIONS):
            self._convolution(name, module, sources[0])
        elif isinstance(module, L.Dense | L.TransposedConv2d):
            self._producers[name] = True
        elif isinstance(module, _RECURRENT):
            self._recurrent(name, module)
        elif isinstance(module, L.SelfAttention):
            self._producers[name] = True
            self.heads[name] = HeadGroup(name, module.num_heads)
        elif isinstance(module, _CHANNEL_MIXERS):
            self._mixer(name, sources, f"{kind} '{name}' mixes channels (normalizes over them)")
        else:
            self._mixer(name, sources, f"{kind} '{name}' is not supported by pruning")

    def _mixer(self, name: str, sources: list[str], reason: str) -> None:
        for source in sources:
            self._block(source, reason)
        self._block(name, reason)

    def _concatenation(self, name: str, module: L.Concatenation, sources: list[str]) -> None:
        shapes = [self.net.output_shape(s) for s in sources]
        rank = len(shapes[0])
        channel_axis = rank - 1 if rank <= 2 else 0
        if module._shape_axis(rank) != channel_axis:  # joined in time or space: channels align
            for source in sources:
                self._pass(name, source)
            return
        offset = 0
        for source in sources:
            for i in range(self.spaces[source]):
                self._tie(source, i, name, offset + i)
            offset += self.spaces[source]

    def _flatten(self, name: str, source: str) -> None:
        shape = self.net.output_shape(source)
        if len(shape) == 1:
            self._pass(name, source)
        elif len(shape) >= 3:
            positions = self.spaces[name] // max(self.spaces[source], 1)
            for c in range(self.spaces[source]):
                for p in range(positions):
                    self._tie(source, c, name, c * positions + p)
        else:
            self._mixer(name, [source], f"Flatten '{name}' mixes time steps and channels")

    def _convolution(self, name: str, module: nn.Module, source: str) -> None:
        channels, groups = self.spaces[source], module.groups
        self._producers[name] = True
        if groups == 1:
            return
        if groups == channels:  # depthwise: filter f reads input channel f // multiplier
            multiplier = module.filters // groups
            for f in range(module.filters):
                self._tie(source, f // multiplier, name, f)
            return
        per_group_in, per_group_out = channels // groups, module.filters // groups
        for group in range(1, groups):  # position p of every group goes together
            for p in range(per_group_in):
                self._tie(source, p, source, group * per_group_in + p)
            for q in range(per_group_out):
                self._tie(name, q, name, group * per_group_out + q)

    def _recurrent(self, name: str, module: nn.Module) -> None:
        if module.num_layers > 1:
            self._block(name, f"{type(module).__name__} '{name}' has num_layers > 1")
            return
        self._producers[name] = True
        if module.bidirectional:
            hidden = module.hidden_size
            for u in range(hidden):
                self._tie(name, u, name, hidden + u)

    def _collect(self) -> list[Component]:
        by_root: dict[int, Component] = {}
        for name, count in self.spaces.items():
            for i in range(count):
                atom = self._atom(name, i)
                root = self._sets.find(atom)
                component = by_root.setdefault(root, Component(index=len(by_root)))
                component.atoms.setdefault(name, []).append(i)
                if self._producers.get(name):
                    component.producers.setdefault(name, []).append(i)
                if atom in self._blocked and component.blocked is None:
                    component.blocked = self._blocked[atom]
        return list(by_root.values())

    # -- reading -------------------------------------------------------------------------
    def prunable(self) -> list[Component]:
        """The components that can be removed."""
        return [c for c in self.components if c.prunable]

    def groups(self) -> dict[tuple[str, ...], list[Component]]:
        """Prunable components grouped by the layers that make them."""
        result: dict[tuple[str, ...], list[Component]] = {}
        for component in self.prunable():
            result.setdefault(component.signature, []).append(component)
        return result

    def why_not(self, name: str) -> str | None:
        """None if layer ``name`` has prunable channels or heads, else the reason it has not."""
        if name in self.heads and self.heads[name].blocked is None and self.heads[name].heads > 1:
            return None
        reasons = []
        for component in self.components:
            if name in component.producers:
                if component.prunable:
                    return None
                reasons.append(component.blocked)
        if not self._producers.get(name):
            return f"{layer_type_name(self.net.layer(name))} '{name}' has no filters or units"
        return next((r for r in reasons if r), "its channels cannot be removed")

    def kept(self, removed: set[int]) -> dict[str, list[int]]:
        """For each layer, the output channels left when components ``removed`` are gone."""
        kept: dict[str, list[int]] = {name: [] for name in self.spaces}
        for component in self.components:
            if component.index in removed:
                continue
            for name, indices in component.atoms.items():
                kept[name].extend(indices)
        return {name: sorted(indices) for name, indices in kept.items()}
