"""Recurrent state of a Network: read, set and reset it, and carry it through batched prediction.

A network's state is a dict ``{layer name: {"hidden": tensor, "cell": tensor}}`` over its
stateful layers (LSTM: hidden and cell, GRU: hidden), each tensor batch first:
(N, layers x directions, hidden size). A layer without a state yet (after ``reset_state``)
maps to ``None``, which means zeros.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from deeptoolbox.errors import OptionError
from deeptoolbox.layers._base import StatefulLayer

State = dict[str, dict[str, torch.Tensor] | None]


def stateful_layers(net: nn.Module) -> dict[str, StatefulLayer]:
    """The layers of ``net`` that can keep a state, by name (empty for other networks)."""
    layers = getattr(net, "layers", None)
    if not isinstance(layers, nn.ModuleDict):
        return {}
    return {name: m for name, m in layers.items() if isinstance(m, StatefulLayer)}


def get_state(net: nn.Module) -> State:
    """The state of each stateful layer of ``net`` (copies, batch first)."""
    return {name: layer.get_state() for name, layer in stateful_layers(net).items()}


def set_state(net: nn.Module, state: Mapping[str, Any] | None) -> None:
    """Give each stateful layer named in ``state`` that state (``None``: zeros)."""
    layers = stateful_layers(net)
    if state is None:
        for layer in layers.values():
            layer.reset_state()
        return
    if not isinstance(state, Mapping):
        raise OptionError(
            f"set_state expects a dict of layer name -> state, as net.state returns. "
            f"Received: {type(state).__name__}."
        )
    unknown = sorted(set(state) - set(layers))
    if unknown:
        raise OptionError(
            f"set_state: {unknown} are not stateful layers of this network; its stateful "
            f"layers are {sorted(layers) or 'none (no LSTM or GRU layers)'}."
        )
    for name, value in state.items():
        layers[name].set_state(value)


@contextlib.contextmanager
def state_gradients(net: nn.Module) -> Iterator[None]:
    """Within the block, the states that ``net``'s stateful layers keep and are given stay on
    the autograd graph: a loss after several stateful calls reaches back through them (full
    backpropagation through time, as a simulation needs). Outside it, kept states are
    detached (truncated backpropagation through time).

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.SequenceInput(1), L.GRU(2), L.Dense(1)])
        >>> net.stateful = True
        >>> x = torch.randn(1, 1, 1, requires_grad=True)
        >>> with state_gradients(net):
        ...     _ = net(x)
        ...     net(torch.zeros(1, 1, 1)).sum().backward()  # the second step reaches x
        >>> x.grad is not None
        True
    """
    layers = list(stateful_layers(net).values())
    before = [layer.state_gradients for layer in layers]
    for layer in layers:
        layer.state_gradients = True
    try:
        yield
    finally:
        for layer, value in zip(layers, before, strict=True):
            layer.state_gradients = value


def _select(state: State, start: int, stop: int) -> State:
    return {
        name: None if value is None else {k: v[start:stop] for k, v in value.items()}
        for name, value in state.items()
    }


def _concatenate(parts: list[State]) -> State:
    names = parts[0].keys()
    joined: State = {}
    for name in names:
        values = [part[name] for part in parts]
        if any(v is None for v in values):
            joined[name] = None
            continue
        keys = values[0].keys()  # type: ignore[union-attr]
        joined[name] = {k: torch.cat([v[k] for v in values]) for k in keys}  # type: ignore[index]
    return joined


class StatefulPrediction:
    """Carry recurrent state through a prediction that runs in batches of observations.

    Each batch starts from its observations' slice of the network's current state (zeros
    where there is none) and ends in a state that is gathered for all observations. On
    :meth:`finish`, a network in stateful mode keeps the final state (MATLAB's
    ``predictAndUpdateState``); any other network gets back the state and mode it had, and the
    final state is only returned (MATLAB's ``[Y, state] = predict(net, X)``). Networks without
    stateful layers pass through untouched.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.SequenceInput(2), L.LSTM(3, output_mode="last")])
        >>> run = StatefulPrediction(net)
        >>> for batch in torch.randn(5, 4, 2).split(2):
        ...     with run.batch(len(batch)):
        ...         _ = net(batch)
        >>> run.finish()["lstm_1"]["hidden"].shape, net.state["lstm_1"]
        (torch.Size([5, 1, 3]), None)
    """

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        self.layers = stateful_layers(net)
        self.was_stateful = {name: layer.stateful for name, layer in self.layers.items()}
        self.initial = get_state(net)
        self.parts: list[State] = []
        self.offset = 0

    def batch(self, size: int) -> _Batch:
        """A context for running the next ``size`` observations."""
        return _Batch(self, size)

    def finish(self) -> State:
        """Restore or update the network (see the class) and return the final state."""
        final = _concatenate(self.parts) if self.parts else self.initial
        for name, layer in self.layers.items():
            layer.stateful = self.was_stateful[name]
            layer.set_state(final[name] if layer.stateful else self.initial[name])
        return final


class _Batch:
    def __init__(self, run: StatefulPrediction, size: int) -> None:
        self.run, self.size = run, size

    def __enter__(self) -> None:
        run = self.run
        start, stop = run.offset, run.offset + self.size
        for name, layer in run.layers.items():
            layer.stateful = True
            layer.set_state(_select({name: run.initial[name]}, start, stop)[name])

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is None:
            self.run.parts.append(get_state(self.run.net))
            self.run.offset += self.size


def iterate_states(state: State) -> Iterator[tuple[str, str, torch.Tensor]]:
    """(layer, part, tensor) for every tensor of a state, e.g. for saving."""
    for name, value in state.items():
        for part, tensor in (value or {}).items():
            yield name, part, tensor
