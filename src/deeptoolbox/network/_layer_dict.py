"""The ``net.layers`` container: a ModuleDict whose writes are edits of the network."""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

from torch import nn


class LayerDict(nn.ModuleDict):
    """The layers of a Network by name, in table order.

    Reading works as for any ``nn.ModuleDict``. Writing edits the network it belongs to, so
    the graph, the sizes and the execution plan follow: ``net.layers["fc"] = layer`` replaces
    layer ``fc`` keeping its connections (as ``net.replace_layer``), a new name adds an
    unconnected layer (as ``net.add_layers``), and ``del net.layers["fc"]`` removes it with
    its connections (as ``net.remove_layers``).

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(3), L.Dense(4, name="fc")])
        >>> net.layers["fc"] = torch.nn.Linear(3, 7)
        >>> net(torch.zeros(2, 3)).shape
        torch.Size([2, 7])
    """

    def __init__(self, network: nn.Module, modules: Iterable[tuple[str, nn.Module]] = ()) -> None:
        super().__init__()
        for name, module in modules:
            nn.ModuleDict.__setitem__(self, name, module)
        self._link_network(network)

    def _link_network(self, network: nn.Module) -> None:
        """Route writes to ``network`` (a weak reference: the dict does not keep it alive)."""
        self.__dict__["_network"] = weakref.ref(network)

    def _owner(self) -> Any:
        reference = self.__dict__.get("_network")
        return reference() if reference is not None else None

    def _store(self, name: str, module: nn.Module) -> None:
        """Store ``module`` under ``name`` without editing the graph (for the Network itself)."""
        nn.ModuleDict.__setitem__(self, name, module)

    def _discard(self, name: str) -> None:
        """Remove ``name`` without editing the graph (for the Network itself)."""
        nn.ModuleDict.__delitem__(self, name)

    def __setitem__(self, name: str, module: nn.Module) -> None:
        network = self._owner()
        if network is None:
            self._store(name, module)
        elif name in self._modules:
            network.replace_layer(name, {name: module})
        else:
            network.add_layers({name: module})

    def __delitem__(self, name: str) -> None:
        network = self._owner()
        if network is None:
            self._discard(name)
        else:
            network.remove_layers(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, nn.Module) and not name.startswith("_"):
            self[name] = value
        else:
            super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if name in self._modules:
            del self[name]
        else:
            super().__delattr__(name)

    def clear(self) -> None:
        """Remove every layer (and so every connection) from the network."""
        for name in list(self._modules):
            del self[name]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_network", None)  # weak references do not pickle; the Network relinks
        return state
