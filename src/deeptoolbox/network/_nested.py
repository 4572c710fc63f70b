"""NetworkLayer: a whole Network used as one layer of another (MATLAB's networkLayer)."""

from __future__ import annotations

from typing import Any

import torch

from deeptoolbox.errors import OptionError, SizeMismatchError
from deeptoolbox.layers._base import Layer, Shape, format_shape, register_layer
from deeptoolbox.network._network import Network
from deeptoolbox.network._serialize import architecture, from_architecture


@register_layer
class NetworkLayer(Layer):
    """Nest a :class:`Network` as one layer: its input layers become the layer's input ports.

    The inner network has input layers (their sizes are what the ports accept) and exactly
    one output. Its layers' weights are the layer's parameters: they count as its learnables,
    save and load inside the outer network's files (the inner architecture is written into
    the outer ``network.json``), freeze with the layer, and export inlined to ONNX. A dict
    (the inner network's architecture, as ``network.json`` holds it) is accepted too.

    Example:
        >>> import torch
        >>> from deeptoolbox import layers as L
        >>> block = Network([L.FeatureInput(4), L.Dense(8), L.ReLU(), L.Dense(4)])
        >>> outer = Network([L.FeatureInput(4), NetworkLayer(block, name="block"), L.Dense(2)])
        >>> outer.output_sizes("block"), outer(torch.zeros(3, 4)).shape
        ({'out': (4,)}, torch.Size([3, 2]))
    """

    def __init__(self, network: Network | dict[str, Any], *, name: str | None = None) -> None:
        super().__init__(name=name)
        if isinstance(network, dict):
            network = from_architecture(network, Network, "NetworkLayer's `network`")
        if not isinstance(network, Network):
            raise OptionError(
                "NetworkLayer: `network` must be a deeptoolbox Network (or its architecture "
                f"dict). Received: {type(network).__name__}. Hint: bring a torch module in "
                "with deeptoolbox.interop.from_torch first."
            )
        if not network.input_names or len(network.output_names) != 1:
            raise OptionError(
                f"NetworkLayer: the network '{network.name}' must have input layers and exactly "
                f"one output; it has inputs {network.input_names} and outputs "
                f"{network.output_names}."
            )
        self.network = network
        self.input_names = tuple(network.input_names)

    def get_config(self) -> dict[str, Any]:
        """The inner network's architecture (its weights are the layer's parameters).

        Example:
            >>> from deeptoolbox import layers as L
            >>> inner = Network([L.FeatureInput(2), L.Dense(1)])
            >>> NetworkLayer(inner).get_config()["network"]["layers"][1]["type"]
            'Dense'
        """
        return {"network": architecture(self.network)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> NetworkLayer:
        """Rebuild the layer (fresh weights) from :meth:`get_config` output."""
        return cls(config["network"])

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        if len(input_shapes) != len(self.input_names):
            raise SizeMismatchError(
                f"NetworkLayer: network '{self.network.name}' takes {len(self.input_names)} "
                f"inputs ({', '.join(self.input_names)}); received {len(input_shapes)}."
            )
        for port, shape in zip(self.input_names, input_shapes, strict=True):
            declared = self.network.layer(port).shape
            fits = len(declared) == len(shape) and all(
                d is None or d == s for d, s in zip(declared, shape, strict=True)
            )
            if not fits:
                raise SizeMismatchError(
                    f"NetworkLayer: input '{port}' of network '{self.network.name}' expects "
                    f"{format_shape(declared)}; received {format_shape(shape)}."
                )
        output = self.network.output_shape()
        if output is None:
            raise SizeMismatchError(
                f"NetworkLayer: network '{self.network.name}' has unresolved sizes; "
                "analyze(network) shows the problem."
            )
        return self._propagate(input_shapes) or output

    def _propagate(self, input_shapes: list[Shape]) -> Shape | None:
        """The inner output size for these input sizes (free lengths made concrete), by the
        size rules alone; None when a layer without a size rule is in the way."""
        net = self.network
        shapes: dict[str, Shape] = dict(zip(self.input_names, input_shapes, strict=True))
        for name in net.execution_order:
            if name in shapes:
                continue
            module = net.layer(name)
            if not isinstance(module, Layer):
                return None
            shapes[name] = module.output_shape([shapes[s] for s in net.sources(name).values()])
        return shapes[net.output_names[0]]

    def build(self, input_shapes: list[Shape]) -> None:
        self.output_shape(input_shapes)
        self.network.initialize()
        super().build(input_shapes)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.network(*inputs)
