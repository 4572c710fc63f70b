"""Per-layer C generation support of a network: the table of :func:`codegen_support` (which
lowers the network to say how each layer becomes code) and the verdicts of ``analyze()``."""

from __future__ import annotations

from dataclasses import dataclass

from deeptoolbox import layers as L
from deeptoolbox.deploy._codegen import lower_all
from deeptoolbox.deploy._layer_rules import check_arguments, unsupported_reason
from deeptoolbox.deploy._lower import execution_order


@dataclass(frozen=True)
class LayerSupport:
    """One row of :func:`codegen_support`: whether and how a layer becomes C code.

    Example:
        >>> print(LayerSupport("bn1", "BatchNorm", True, "folded into 'conv1'"))
        bn1 (BatchNorm): folded into 'conv1'
    """

    name: str
    type: str
    supported: bool
    how: str

    def __str__(self) -> str:
        return f"{self.name} ({self.type}): {self.how}"


@dataclass(frozen=True)
class CodegenSupport:
    """Per-layer C generation support of a network (see :func:`codegen_support`).

    ``print(support)`` shows the table; ``ok`` is True when every layer is supported;
    ``issues()`` lists ``(layer, message)`` for the unsupported ones.

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> support = codegen_support(Network([L.FeatureInput(2), L.Dense(2), L.LayerNorm()]))
        >>> support.ok, [row.name for row in support.unsupported]
        (False, ['layernorm_1'])
    """

    network: str
    rows: list[LayerSupport]
    streaming: str

    @property
    def ok(self) -> bool:
        """True when C generation supports every layer."""
        return all(row.supported for row in self.rows)

    @property
    def unsupported(self) -> list[LayerSupport]:
        """The rows of the layers C generation cannot handle."""
        return [row for row in self.rows if not row.supported]

    def row(self, name: str) -> LayerSupport:
        """The row of layer ``name``."""
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"No layer named {name!r}. Layers: {[r.name for r in self.rows]}.")

    def issues(self) -> list[tuple[str, str]]:
        """(layer, message) for each unsupported layer, for analysis tables."""
        return [(r.name, f"C code generation: {r.how}") for r in self.unsupported]

    def __str__(self) -> str:
        width = max([len(r.name) for r in self.rows] + [5])
        kinds = max([len(r.type) for r in self.rows] + [4])
        lines = [
            f"C code generation for '{self.network}': "
            + (
                "every layer supported"
                if self.ok
                else f"{len(self.unsupported)} layer(s) not supported"
            ),
            f"{'layer'.ljust(width)}  {'type'.ljust(kinds)}  C code",
        ]
        lines += [f"{r.name.ljust(width)}  {r.type.ljust(kinds)}  {r.how}" for r in self.rows]
        lines.append(f"streaming (NAME_step): {self.streaming}")
        return "\n".join(lines)


def _lowered_roles(net, order: list[str], sequence_length: int | None) -> tuple[dict, str]:
    """How each layer ends up in the lowered graph, and whether it can stream."""
    lengths = sequence_length or 16
    graph, step_graph, note = lower_all(net, lengths)
    roles: dict[str, str] = {}
    for op in graph.ops:
        main = op.layers[0]
        if op.kind == "reshape":
            roles.setdefault(main, "view of its input (no code)")
            continue
        roles.setdefault(main, f"generated ({op.kind})")
        for other in op.layers[1:]:
            kind = type(net.layer(other)).__name__
            verb = "fused into" if kind == "ReLU" else "folded into"
            roles[other] = f"{verb} '{main}'"
    return roles, "yes" if step_graph is not None else f"no: {note}"


def codegen_support(net, *, sequence_length: int | None = None) -> CodegenSupport:
    """Say, layer by layer, whether :func:`~deeptoolbox.deploy.generate_c` supports it and how.

    Rows read "generated (conv2d)", "folded into 'conv1'" (BatchNorm), "fused into 'conv1'"
    (ReLU), "removed (does nothing at inference)" (Dropout), "view of its input (no code)"
    (Flatten, Reshape), or the reason a layer is not supported. Never raises for unsupported
    layers: that is what the table is for.

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.ImageInput((1, 8, 8)), L.Conv2d(4, 3, padding=1, name="conv"),
        ...                L.BatchNorm(name="bn"), L.ReLU(name="relu"), L.Flatten(), L.Dense(2)])
        >>> support = codegen_support(net)
        >>> support.row("bn").how, support.row("relu").how
        ("folded into 'conv'", "fused into 'conv'")
    """
    check_arguments("codegen_support", net, sequence_length)
    order = execution_order(net)
    reasons = {name: unsupported_reason(net.layer(name)) for name in net.layer_names}
    roles, streaming = {}, "unknown until every layer is supported"
    if not any(reasons[n] for n in order) and net.is_initialized:
        roles, streaming = _lowered_roles(net, order, sequence_length)
    rows = []
    for name in net.layer_names:
        layer = net.layer(name)
        if reasons[name]:
            how = f"not supported: {reasons[name]}"
        elif name not in order:
            how = "not used by any output (no code)"
        elif isinstance(layer, L.InputLayer):
            how = "input" if layer.normalization == "none" else "input, normalized in the code"
        elif type(layer) is L.Dropout:
            how = "removed (does nothing at inference)"
        else:
            how = roles.get(name, "supported")
        rows.append(LayerSupport(name, type(layer).__name__, not reasons[name], how))
    return CodegenSupport(getattr(net, "name", "network"), rows, streaming)


def codegen_check(net) -> dict[str, str]:
    """The "codegen" verdict of :func:`deeptoolbox.analyze` for every layer of ``net``.

    Cheap (no lowering): "yes", "removed" (Dropout) or "no: <reason>".
    :func:`codegen_support` says in more detail how each layer becomes code.

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(4), L.Dense(3, name="fc"), L.LayerNorm(name="ln")])
        >>> check = codegen_check(net)
        >>> check["fc"], check["ln"].split(":")[0]
        ('yes', 'no')
    """
    verdicts = {}
    for name in net.layer_names:
        layer = net.layer(name)
        reason = unsupported_reason(layer)
        if reason:
            verdicts[name] = f"no: {reason}"
        else:
            verdicts[name] = "removed" if type(layer) is L.Dropout else "yes"
    return verdicts
