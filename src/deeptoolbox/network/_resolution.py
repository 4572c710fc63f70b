"""Size resolution of a network's graph: the sizes of every layer and the issues found."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from torch import nn

from deeptoolbox.errors import DeepToolboxError
from deeptoolbox.layers._base import Layer, Shape, format_shape
from deeptoolbox.layers._input import InputLayer
from deeptoolbox.network._graph import Connection, find_cycle, topological_order
from deeptoolbox.network._shapes import input_ports, resolve_layer


@dataclass(frozen=True)
class Issue:
    """A problem found in a network: ``severity`` is "error" or "warning".

    Example:
        >>> Issue("error", "add", "input port 'in2' is not connected")
        Issue(severity='error', layer='add', message="input port 'in2' is not connected")
    """

    severity: str
    layer: str | None
    message: str

    def __str__(self) -> str:
        where = f"layer '{self.layer}': " if self.layer else ""
        return f"{self.severity}: {where}{self.message}"


@dataclass
class Resolution:
    """What size propagation found: sizes per layer and the issues."""

    order: list[str] = field(default_factory=list)
    input_shapes: dict[str, list[Shape | None]] = field(default_factory=dict)
    sources: dict[str, dict[str, str | None]] = field(default_factory=dict)  # port -> layer
    output_shapes: dict[str, Shape | None] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    reinitialized: list[str] = field(default_factory=list)  # rebuilt with new weight sizes

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]


def resolve(
    layers: Mapping[str, nn.Module], connections: list[Connection], classes: list[str] | None
) -> Resolution:
    """Propagate sizes through the graph in topological order, building layers as needed.

    Only sizes are computed (and layers whose input sizes changed are built): no module is
    moved, cast or frozen here; the Network places new and rebuilt layers itself.

    Example:
        >>> from deeptoolbox import layers as L
        >>> found = resolve({"x": L.FeatureInput(2), "fc": L.Dense(3)},
        ...                 [Connection("x", "fc", "in")], None)
        >>> found.output_shapes["fc"], found.issues
        ((3,), [])
    """
    order, cyclic = topological_order(list(layers), connections)
    result = Resolution(order=order)
    if cyclic:
        cycle = find_cycle(cyclic, connections) or cyclic
        path = " -> ".join([*cycle, cycle[0]])
        for name in cycle:
            result.issues.append(Issue("error", name, f"is part of a cycle: {path}"))
    feeding: dict[str, dict[str, str]] = {}
    for c in connections:
        feeding.setdefault(c.destination, {})[c.port] = c.source
    for name in order:
        _resolve_layer(name, layers[name], result, feeding.get(name, {}))
    _check_ends(layers, connections, classes, result)
    return result


def _resolve_layer(
    name: str,
    module: nn.Module,
    result: Resolution,
    feeding: dict[str, str],
) -> None:
    sources = {port: feeding.get(port) for port in input_ports(module)}
    result.sources[name] = sources
    shapes = [None if s is None else result.output_shapes.get(s) for s in sources.values()]
    result.input_shapes[name] = shapes
    result.output_shapes[name] = None
    for port, source in sources.items():
        if source is None:
            result.issues.append(Issue("error", name, f"input port '{port}' is not connected"))
    if any(s is None for s in shapes):
        return
    try:
        shape, kept = resolve_layer(module, shapes)  # type: ignore[arg-type]
    except DeepToolboxError as err:
        message = str(err).rstrip(".")
        if len(sources) > 1:
            message += (
                " (from " + ", ".join(f"'{src}' on {port}" for port, src in sources.items()) + ")"
            )
        result.issues.append(Issue("error", name, message))
        return
    result.output_shapes[name] = shape
    reason = module.cannot_run() if isinstance(module, Layer) else None
    if reason:  # sizes resolve, but the layer is a placeholder to replace
        result.issues.append(Issue("error", name, reason))
    if not kept:
        result.reinitialized.append(name)


def _check_ends(
    layers: Mapping[str, nn.Module],
    connections: list[Connection],
    classes: list[str] | None,
    result: Resolution,
) -> None:
    used = {c.source for c in connections}
    inputs = [n for n, m in layers.items() if isinstance(m, InputLayer)]
    outputs = [n for n in layers if n not in used and n not in inputs]
    for name in inputs:
        if name not in used:
            result.issues.append(
                Issue("warning", name, "input layer is not connected to any layer")
            )
    if not inputs:
        result.issues.append(Issue(
            "error", None, "the network has no input layer (FeatureInput, ImageInput, ...)"
        ))  # fmt: skip
    if not outputs:
        result.issues.append(Issue("error", None, "the network has no output layer"))
    if classes is not None and len(outputs) == 1:
        shape = result.output_shapes.get(outputs[0])
        if shape and shape[-1 if len(shape) <= 2 else 0] != len(classes):
            result.issues.append(Issue(
                "warning", outputs[0],
                f"the output of size {format_shape(shape)} does not have one channel per "
                f"class; net.classes lists {len(classes)} classes",
            ))  # fmt: skip
