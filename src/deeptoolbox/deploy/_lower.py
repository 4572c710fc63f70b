"""Lower a Network to a :class:`~deeptoolbox.deploy._ir.Graph` through its public API.

Each supported layer becomes one or more ops on values of fixed size; sequence inputs get a
concrete length (the length ``NAME_predict`` takes, or 1 for ``NAME_step``). Folding and fusion
happen afterwards in :mod:`deeptoolbox.deploy._passes`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from torch import nn

from deeptoolbox.deploy._ir import Graph, Op, Value
from deeptoolbox.deploy._layer_rules import unsupported_reason
from deeptoolbox.deploy._lower_layers import CONVERTERS, tensor
from deeptoolbox.errors import CodegenError
from deeptoolbox.layers import InputLayer
from deeptoolbox.network import Network


def execution_order(net: nn.Module) -> list[str]:
    """Layers the outputs need, each after its sources (ties broken by table order)."""
    needed: set[str] = set()
    stack = list(net.output_names)
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        stack.extend(s for s in net.sources(name).values() if s is not None)
    needed.update(net.input_names)
    order: list[str] = []
    done: set[str] = set()
    pending = [n for n in net.layer_names if n in needed]
    while pending:
        ready = [n for n in pending if all(s in done for s in net.sources(n).values())]
        if not ready:
            raise CodegenError(f"Network '{net.name}' has a cycle; run deeptoolbox.analyze(net).")
        for name in ready:
            order.append(name)
            done.add(name)
        pending = [n for n in pending if n not in done]
    return order


def check_supported(net: nn.Module, order: list[str]) -> None:
    """Raise one CodegenError listing every layer C generation cannot handle."""
    problems = []
    for name in order:
        layer = net.layer(name)
        reason = unsupported_reason(layer)
        if reason:
            problems.append(f"  layer '{name}' ({type(layer).__name__}): {reason}")
    if problems:
        raise CodegenError(
            f"Network '{net.name}' has {len(problems)} layer(s) C generation does not support:\n"
            + "\n".join(problems)
            + "\nReplace or remove them (net.replace_layer / net.remove_layers), or export the "
            "network to ONNX instead. deeptoolbox.deploy.codegen_support(net) lists every layer."
        )


def input_shape(net: nn.Module, name: str, length: int | None) -> tuple[int, ...]:
    """The concrete size of input ``name``: a free time length becomes ``length``."""
    layer: InputLayer = net.layer(name)  # type: ignore[assignment]
    shape = tuple(layer.shape)
    if any(d is None for d in shape):
        if length is None:
            raise CodegenError(
                f"Input layer '{name}' has a free time length; C code works on fixed sizes. "
                "Pass sequence_length=T: the length NAME_predict takes (recurrent networks also "
                "get NAME_step, which takes one time step at a time)."
            )
        shape = tuple(length if d is None else d for d in shape)
    return tuple(int(d) for d in shape)


class Lowering:
    """Builds a Graph from a network, layer by layer in execution order."""

    def __init__(self, net: nn.Module, lengths: dict[str, int | None]) -> None:
        self.net = net
        self.lengths = lengths
        self.graph = Graph({}, [], [], [], list(net.input_names), list(net.output_names))
        self.value_of: dict[str, str] = {}

    def run(self) -> Graph:
        order = execution_order(self.net)
        check_supported(self.net, order)
        for name in order:
            layer = self.net.layer(name)
            if isinstance(layer, InputLayer):
                self._input(name, layer)
                continue
            sources = list(self.net.sources(name).values())
            inputs = [self.graph.values[self.value_of[s]] for s in sources]
            self._convert(name, layer, inputs)
        self.graph.outputs = [self.value_of[n] for n in self.net.output_names]
        return self.graph

    def _convert(self, name: str, layer: nn.Module, inputs: list[Value]) -> None:
        convert: Callable = CONVERTERS[type(layer)]
        produced = convert(self, name, layer, inputs)
        if produced is not None:  # an alias: the layer passes a value through unchanged
            self.value_of[name] = produced
            return
        self.value_of[name] = name
        expected = layer.output_shape([v.shape for v in inputs])
        if tuple(expected) != self.graph.values[name].shape:
            raise CodegenError(
                f"Internal error lowering layer '{name}': size {self.graph.values[name].shape} "
                f"instead of {tuple(expected)}. Please report it."
            )

    def _input(self, name: str, layer: InputLayer) -> None:
        shape = input_shape(self.net, name, self.lengths.get(name))
        if layer.normalization == "none":
            self.graph.add_value(name, shape)
            self.graph.inputs.append(name)
            self.value_of[name] = name
            return
        raw = f"{name}#raw"
        self.graph.add_value(raw, shape)
        self.graph.inputs.append(raw)
        scale, shift, channels, inner = normalization_affine(name, layer, shape)
        self.emit(
            "affine",
            [raw],
            name,
            shape,
            [name],
            {"channels": channels, "inner": inner},
            {"scale": scale, "shift": shift},
        )
        self.value_of[name] = name

    def emit(self, kind, inputs, output, shape, layers, attrs=None, params=None) -> Op:
        """Append an op writing a new value ``output`` of size ``shape``."""
        self.graph.add_value(output, shape)
        op = Op(kind, list(inputs), output, list(layers), dict(attrs or {}), dict(params or {}))
        self.graph.ops.append(op)
        return op


def normalization_affine(
    name: str, layer: InputLayer, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """An input layer's normalization as ``x * scale + shift`` with per-channel arrays."""
    if not layer.has_statistics:
        raise CodegenError(
            f"Input layer '{name}' uses normalization={layer.normalization!r} but its statistics "
            "are not set; call compute_statistics(training_data) on it before generating C."
        )
    stats = {
        k: tensor(getattr(layer, k)).reshape(-1).astype(np.float64)
        for k in ("mean", "std", "min", "max")
        if hasattr(layer, k)
    }
    mode = layer.normalization
    if mode == "zerocenter":
        scale, shift = np.ones_like(stats["mean"]), -stats["mean"]
    elif mode == "zscore":
        scale = 1.0 / stats["std"]
        shift = -stats["mean"] * scale
    else:
        scale = 1.0 / np.maximum(stats["max"] - stats["min"], 1e-12)
        shift = -stats["min"] * scale
        if mode == "rescale-symmetric":
            scale, shift = scale * 2, shift * 2 - 1
    channels = scale.size
    inner = 1
    if layer.normalization_dimension in ("auto", "channel") and len(shape) >= 3:
        inner = math.prod(shape[1:])
    return scale.astype(np.float32), shift.astype(np.float32), channels, inner


def check_network(net: object) -> None:
    """Raise CodegenError unless ``net`` is a deeptoolbox Network that can run."""
    if not isinstance(net, Network):
        raise CodegenError(
            f"C generation expects a deeptoolbox Network. Received: {type(net).__name__}. "
            "Bring a PyTorch module in with deeptoolbox.from_torch(module, example_input)."
        )
    net.initialize()


def lower(net: nn.Module, lengths: dict[str, int | None]) -> Graph:
    """Lower ``net`` with the given concrete lengths of its free-length inputs."""
    check_network(net)
    return Lowering(net, lengths).run()


__all__ = ["lower", "execution_order", "check_supported"]
