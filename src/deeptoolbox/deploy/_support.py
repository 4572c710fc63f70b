"""Which layers C generation supports, and why not when it does not (no sizes needed)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from deeptoolbox import layers as L

_SEQUENCE_PADDING = "a padding option C generation does not understand"


def _padding_reason(layer: nn.Module) -> str | None:
    padding, dims = layer.padding, len(layer.kernel_size)
    if padding in ("same", "valid"):
        return None
    if isinstance(padding, tuple | list):
        flat = all(isinstance(p, int) for p in padding) and len(padding) in (dims, 2 * dims)
        pairs = len(padding) == dims and all(
            isinstance(p, tuple | list) and len(p) == 2 for p in padding
        )
        if flat or pairs:
            return None
    return f"padding={padding!r} is {_SEQUENCE_PADDING}"


def _recurrent_reason(layer: nn.Module) -> str | None:
    if layer.has_padding_mask:
        return "a padding-mask input is not supported (generate for fixed-length sequences)"
    if getattr(layer, "stateful", False):
        return (
            "stateful mode is not supported (NAME_predict starts every call from a zero "
            "state; NAME_step and NAME_reset keep the state in C): set stateful=False"
        )
    return None


def _pool_reason(layer: nn.Module) -> str | None:
    padding = layer.padding
    if padding == "same" or (
        isinstance(padding, tuple) and all(isinstance(p, int) for p in padding)
    ):
        return None
    return f"padding={padding!r} is {_SEQUENCE_PADDING}"


def _no_reason(layer: nn.Module) -> str | None:
    return None


CHECKS: dict[type, Callable[[nn.Module], str | None]] = {
    L.FeatureInput: _no_reason,
    L.ImageInput: _no_reason,
    L.SequenceInput: _no_reason,
    L.VolumeInput: _no_reason,
    L.Dense: _no_reason,
    L.Conv1d: _padding_reason,
    L.Conv2d: _padding_reason,
    L.TransposedConv2d: _no_reason,
    L.MaxPool1d: _pool_reason,
    L.MaxPool2d: _pool_reason,
    L.AvgPool1d: _pool_reason,
    L.AvgPool2d: _pool_reason,
    L.GlobalAvgPool: _no_reason,
    L.GlobalMaxPool: _no_reason,
    L.BatchNorm: _no_reason,
    L.ReLU: _no_reason,
    L.LeakyReLU: _no_reason,
    L.ELU: _no_reason,
    L.GELU: _no_reason,
    L.Sigmoid: _no_reason,
    L.Tanh: _no_reason,
    L.Swish: _no_reason,
    L.Softmax: _no_reason,
    L.Dropout: _no_reason,
    L.Addition: _no_reason,
    L.Multiplication: _no_reason,
    L.Concatenation: _no_reason,
    L.Flatten: _no_reason,
    L.Reshape: _no_reason,
    L.LSTM: _recurrent_reason,
    L.GRU: _recurrent_reason,
}
"""Exact layer classes C generation handles; a subclass may compute something else."""

_NOT_YET = {
    L.Conv3d: "3-D convolution is not supported (Conv1d, Conv2d and TransposedConv2d are)",
    L.LayerNorm: "layer normalization is not supported (BatchNorm is, folded into convolutions)",
    L.GroupNorm: "group normalization is not supported (BatchNorm is)",
    L.Resize2d: "resizing is not supported (TransposedConv2d upsamples)",
    L.Embedding: "embeddings are not supported",
    L.SelfAttention: "attention is not supported",
    L.PositionEmbedding: "position embeddings are not supported",
    L.TransposedConv1d: "1-D transposed convolution is not supported (TransposedConv2d is)",
    L.TransposedConv3d: "3-D transposed convolution is not supported (TransposedConv2d is)",
    L.AdaptiveAvgPool1d: "adaptive pooling is not supported (AvgPool1d is)",
    L.AdaptiveAvgPool2d: "adaptive pooling is not supported (AvgPool2d and GlobalAvgPool are)",
    L.AdaptiveAvgPool3d: "adaptive pooling is not supported",
    L.Resize3d: "resizing is not supported",
    L.MaxUnpooling2d: "max unpooling is not supported (TransposedConv2d upsamples)",
}


def unsupported_reason(layer: nn.Module) -> str | None:
    """Why C generation cannot handle ``layer``, or None when it can."""
    check = CHECKS.get(type(layer))
    if check is not None:
        return check(layer)
    if type(layer) in _NOT_YET:
        return _NOT_YET[type(layer)]
    for known in CHECKS:
        if isinstance(layer, known):
            return (
                f"a subclass of {known.__name__} ({type(layer).__name__}) may compute something "
                "else; only the toolbox's own layer classes are generated"
            )
    return f"{type(layer).__name__} is not a layer type C generation knows"


def check_arguments(where: str, net, sequence_length) -> None:
    """OptionError unless ``net`` is a Network and ``sequence_length`` None or a positive int."""
    from deeptoolbox.errors import OptionError
    from deeptoolbox.network import Network

    if not isinstance(net, Network):
        raise OptionError(
            f"{where} expects a deeptoolbox Network. Received: {type(net).__name__}. "
            "Bring a PyTorch module in with deeptoolbox.from_torch first."
        )
    if sequence_length is not None and (
        isinstance(sequence_length, bool)
        or not isinstance(sequence_length, int)
        or sequence_length < 1
    ):
        raise OptionError(
            f"{where}: `sequence_length` must be a positive int or None. "
            f"Received: sequence_length={sequence_length!r}."
        )


def supported_layer_types() -> list[str]:
    """Names of the layer types C generation supports.

    Example:
        >>> "Conv2d" in supported_layer_types()
        True
    """
    return sorted(cls.__name__ for cls in CHECKS)


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
    from deeptoolbox.deploy._codegen import _lower_all

    lengths = sequence_length or 16
    graph, step_graph, note = _lower_all(net, lengths)
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
    from deeptoolbox.deploy._lower import execution_order
    from deeptoolbox.layers import Dropout, InputLayer

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
        elif isinstance(layer, InputLayer):
            how = "input" if layer.normalization == "none" else "input, normalized in the code"
        elif type(layer) is Dropout:
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
