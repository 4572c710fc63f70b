"""analyze(): a table of every layer with its sizes, learnables and problems.

Other subpackages add their own per-layer verdicts with :func:`register_analysis_check`
(``deeptoolbox.compress`` says whether each layer can be quantized, projected and pruned):
``network`` never imports them, they register themselves when imported.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from torch import nn
from torch.nn.parameter import UninitializedParameter

from deeptoolbox.errors import LayerNotFoundError
from deeptoolbox.layers._base import Layer, format_shape, layer_type_name
from deeptoolbox.network._resolution import Issue
from deeptoolbox.network._shapes import input_ports

if TYPE_CHECKING:  # Network imports this module (its summary()), never the reverse
    from deeptoolbox.network._network import Network


@dataclass(frozen=True)
class LayerReport:
    """One row of an analysis: a layer's type, sizes, learnables and issues.

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> row = analyze(Network([L.FeatureInput(4), L.Dense(2, name="fc")])).row("fc")
        >>> row.type, row.input_sizes, row.output_size, row.learnables
        ('Dense', [(4,)], (2,), 10)

    ``learnables`` is None when it depends on an input size that is not known yet (a Dense
    whose input is unconnected); a layer without learnables of any size says 0.
    """

    name: str
    type: str
    sources: dict[str, str | None]
    input_sizes: list[tuple | None]
    output_size: tuple | None
    learnables: int | None
    frozen: bool
    learn_rate_factor: float
    issues: list[str] = field(default_factory=list)
    checks: dict[str, str] = field(default_factory=dict)


AnalysisCheck = Callable[["Network"], Mapping[str, str]]
"""A check: given a network, a short verdict (text) for each layer it has something to say on."""

_CHECKS: dict[str, AnalysisCheck] = {}


def register_analysis_check(name: str, check: AnalysisCheck) -> AnalysisCheck:
    """Add a named per-layer check to every :func:`analyze` from now on; returns ``check``.

    ``check(net)`` returns ``{layer name: short text}`` for the layers it has a verdict on.
    The results appear in ``analysis.checks[name]``, in each row's ``checks`` and as a
    section of the printed table. A check that raises does not stop the analysis: its section
    says why it failed. Registering a name again replaces the earlier check.

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> def parameters_check(net):
        ...     return {n: "has weights" for n in net.layer_names if list(net.layer(n).parameters())}
        >>> _ = register_analysis_check("weights", parameters_check)
        >>> analyze(Network([L.FeatureInput(2), L.Dense(1, name="fc")])).checks["weights"]
        {'fc': 'has weights'}
        >>> unregister_analysis_check("weights")
    """
    if not isinstance(name, str) or not name or not callable(check):
        from deeptoolbox.errors import OptionError

        raise OptionError(
            "register_analysis_check(name, check): `name` must be a non-empty string and "
            f"`check` a function of the network. Received: name={name!r}, check={check!r}."
        )
    _CHECKS[name] = check
    return check


def unregister_analysis_check(name: str) -> None:
    """Remove the check registered as ``name`` (nothing happens if there is none).

    Example:
        >>> unregister_analysis_check("no-such-check")
    """
    _CHECKS.pop(name, None)


def analysis_checks() -> list[str]:
    """Names of the registered analysis checks, in registration order.

    Example:
        >>> isinstance(analysis_checks(), list)
        True
    """
    return list(_CHECKS)


def _run_checks(net: Network) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    results: dict[str, dict[str, str]] = {}
    failures: dict[str, str] = {}
    for name, check in list(_CHECKS.items()):
        try:
            verdicts = check(net)
            results[name] = {str(k): str(v) for k, v in dict(verdicts).items()}
        except Exception as err:  # a broken check must not hide the rest of the analysis
            failures[name] = f"{type(err).__name__}: {err}"
    return results, failures


@dataclass(frozen=True)
class Analysis:
    """The result of :func:`analyze`: per-layer rows plus every issue found.

    ``print(analysis)`` shows a table; ``analysis.errors`` / ``analysis.warnings`` list
    problems; ``analysis.ok`` is True when there are no errors.

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> result = analyze(Network([L.FeatureInput(4), L.Dense(2)]))
        >>> result.ok, result.total_learnables, result.rows[1].output_size
        (True, 10, (2,))
    """

    network: str
    rows: list[LayerReport]
    issues: list[Issue]
    checks: dict[str, dict[str, str]] = field(default_factory=dict)
    failed_checks: dict[str, str] = field(default_factory=dict)

    @property
    def errors(self) -> list[Issue]:
        """Issues of severity "error": the network cannot run until they are fixed."""
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        """Issues of severity "warning": suspicious but runnable."""
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when no errors were found."""
        return not self.errors

    @property
    def total_learnables(self) -> int:
        """Number of learnable values in the layers whose count is known (see :attr:`unsized`)."""
        return sum(row.learnables for row in self.rows if row.learnables is not None)

    @property
    def unsized(self) -> list[str]:
        """Layers whose learnables are unknown until their input size is known.

        Example:
            >>> from deeptoolbox import Network, layers as L
            >>> net = Network([L.FeatureInput(4), L.Dense(2, name="fc")])
            >>> _ = net.add_layers(L.Dense(3, name="loose"))  # its input is not connected
            >>> result = analyze(net)
            >>> result.unsized, result.row("loose").learnables, result.total_learnables
            (['loose'], None, 10)
        """
        return [row.name for row in self.rows if row.learnables is None]

    def row(self, name: str) -> LayerReport:
        """The row of layer ``name``."""
        for row in self.rows:
            if row.name == name:
                return row
        raise LayerNotFoundError(
            f"No layer named {name!r} in this analysis. Layers: {[r.name for r in self.rows]}."
        )

    def __str__(self) -> str:
        header = ("#", "name", "type", "input size", "output size", "learnables", "notes")
        table = [header]
        for index, row in enumerate(self.rows, 1):
            notes = []
            if row.frozen:
                notes.append("frozen")
            if row.learn_rate_factor != 1.0:
                notes.append(f"lr x{row.learn_rate_factor:g}")
            notes += [
                f"{'ERROR' if _is_error(self, row.name, m) else 'warning'}: {m}" for m in row.issues
            ]
            inputs = ", ".join(format_shape(s) for s in row.input_sizes) or "-"
            table.append((
                str(index), row.name, row.type, inputs, format_shape(row.output_size),
                "unknown" if row.learnables is None else f"{row.learnables:,}", "; ".join(notes),
            ))  # fmt: skip
        widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
            for r in table
        ]
        rule = "-" * len(lines[0].rstrip())
        unsized = len(self.unsized)
        also = f" (+ {_count(unsized, 'layer')} of unknown size)" if unsized else ""
        summary = (
            f"Network '{self.network}': {_count(len(self.rows), 'layer')}, "
            f"{_count(self.total_learnables, 'learnable')}{also}, "
            f"{_count(len(self.errors), 'error')}, {_count(len(self.warnings), 'warning')}"
        )
        general = [f"  {i}" for i in self.issues if i.layer is None]
        return "\n".join(
            [
                summary,
                rule,
                lines[0].rstrip(),
                rule,
                *(x.rstrip() for x in lines[1:]),
                rule,
                *general,
                *self._check_sections(),
            ]
        )

    def _check_sections(self) -> list[str]:
        lines: list[str] = []
        for name in [*self.checks, *self.failed_checks]:
            lines.append(f"{name}:")
            if name in self.failed_checks:
                lines.append(f"  the check failed: {self.failed_checks[name]}")
                continue
            verdicts = self.checks[name]
            width = max((len(layer) for layer in verdicts), default=0)
            lines += [f"  {layer.ljust(width)}  {text}" for layer, text in verdicts.items()]
        return lines


def _count(n: int, word: str) -> str:
    """``n`` and ``word``, in the plural unless ``n`` is 1: "1 error", "0 errors", "2,610 learnables"."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _is_error(analysis: Analysis, layer: str, message: str) -> bool:
    return any(
        i.layer == layer and i.message == message and i.severity == "error" for i in analysis.issues
    )


def _learnables(module: nn.Module) -> int | None:
    if any(isinstance(p, UninitializedParameter) for p in module.parameters()):
        return None  # a torch lazy module before its first call
    return sum(p.numel() for p in module.parameters())


def _learnables_of(module: nn.Module, input_sizes: list[tuple | None]) -> int | None:
    """The layer's learnables; for a layer not built yet (an input size unknown), the count
    its size rule gives whatever the unknown sizes are, or None when that count depends on
    them (a Dense's weights do, a Concatenation has none of any size)."""
    if not isinstance(module, Layer) or type(module).build is Layer.build:
        return _learnables(module)
    if module.is_built and None not in input_sizes:
        return _learnables(module)
    # built for sizes that are no longer known (after a size error upstream): its current
    # parameters are stale, so count as for a layer not built yet
    ports = input_sizes or [None] * len(input_ports(module))
    counts: set[int | None] = set()
    fills_built: set[int] = set()
    for rank in range(1, 5):
        for fill in (5, 6):  # two sizes: a count that differs between them depends on the size
            shapes = [s if s is not None else (fill,) * rank for s in ports]
            trial = copy.deepcopy(module)
            try:
                trial.build(shapes)
            except Exception:  # this size does not suit the layer: try the next one
                continue
            counts.add(_learnables(trial))
            fills_built.add(fill)
            if len(counts) > 1:
                return None
    if not counts and ports and None not in ports:
        return _learnables_for_unfit_sizes(module, ports)
    return counts.pop() if len(counts) == 1 and len(fills_built) == 2 else None


def _learnables_for_unfit_sizes(module: Layer, shapes: list[tuple]) -> int | None:
    """The learnables of a layer whose known input sizes do not suit it (a kernel larger than
    its input): the count for larger sizes along the axes it does not depend on, so that a
    ``Conv2d`` whose kernel does not fit still counts its weights from the channels. Tries
    growing each set of axes (most axes first) by two amounts; a set whose two counts agree
    gives the count, and None when no set does."""
    ranks = [len(s) for s in shapes]
    axes = [(port, axis) for port, rank in enumerate(ranks) for axis in range(rank)]
    subsets = [
        set(combo)
        for size in range(len(axes), 0, -1)
        for combo in itertools.combinations(axes, size)
    ]
    for grown in subsets[:64]:  # a few ports of rank <= 4: every set is tried
        counts: set[int | None] = set()
        for extra in (32, 33):
            trial_shapes = [
                tuple(
                    d + extra if (port, axis) in grown and isinstance(d, int) else d
                    for axis, d in enumerate(shape)
                )
                for port, shape in enumerate(shapes)
            ]
            trial = copy.deepcopy(module)
            try:
                trial.build(trial_shapes)
            except Exception:  # these sizes do not suit it either
                break
            counts.add(_learnables(trial))
        else:
            if len(counts) == 1:
                return counts.pop()
    return None


def analyze(net: Network) -> Analysis:
    """Check a network and describe every layer: type, sizes, learnables, frozen, problems.

    Never raises on a broken network: size mismatches (naming both layers and sizes),
    unconnected ports, missing inputs or outputs and cycles are listed as issues.

    Example:
        >>> from deeptoolbox import Network, analyze
        >>> from deeptoolbox import layers as L
        >>> net = Network([L.ImageInput((1, 8, 8)), L.Conv2d(4, 3, padding="same"), L.ReLU(), L.Flatten(), L.Dense(10)])
        >>> print(analyze(net))  # doctest: +ELLIPSIS
        Network 'network': 5 layers, 2,610 learnables, 0 errors, 0 warnings
        ...
    """
    if not (isinstance(net, nn.Module) and callable(getattr(net, "_resolved", None))):
        from deeptoolbox.errors import OptionError

        raise OptionError(
            f"analyze expects a deeptoolbox Network. Received: {type(net).__name__}. "
            "Wrap a plain module with Network([input_layer, module])."
        )
    resolution = net._resolved()
    checks, failures = _run_checks(net)
    rows = []
    for name in net.layer_names:
        module = net.layers[name]
        input_sizes = list(resolution.input_shapes.get(name, []))
        rows.append(LayerReport(
            name=name,
            type=layer_type_name(module),
            sources=net.sources(name),
            input_sizes=input_sizes,
            output_size=resolution.output_shapes.get(name),
            learnables=_learnables_of(module, input_sizes),
            frozen=name in net.frozen_layers,
            learn_rate_factor=net.learn_rate_factor(name),
            issues=[i.message for i in resolution.issues if i.layer == name],
            checks={c: v[name] for c, v in checks.items() if name in v},
        ))  # fmt: skip
    return Analysis(
        network=net.name,
        rows=rows,
        issues=list(resolution.issues),
        checks=checks,
        failed_checks=failures,
    )
