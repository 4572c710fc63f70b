"""Parameter tables: values to sweep, distributions to sample, fixed values, constraints."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deeptoolbox.errors import OptionError

__all__ = ["Uniform", "Integer", "Choice", "ParameterTable", "STRATEGIES", "parameters_from_dict"]

STRATEGIES = ("exhaustive", "random", "bayesian")
_PRIMITIVES = (bool, int, float, str, type(None))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    """numpy scalars become Python scalars; everything else is returned as is."""
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "shape", None) == ():
        return item()
    return value


@dataclass(frozen=True)
class Uniform:
    """A real parameter drawn between ``low`` and ``high`` (log scale with ``log=True``).

    For the random and Bayesian strategies (MATLAB's "Real" hyperparameter with a range;
    ``log=True`` is its "log" transform). ``step`` makes it discrete (not with ``log``).

    Example:
        >>> Uniform(1e-4, 1e-1, log=True)
        Uniform(low=0.0001, high=0.1, log=True, step=None)
        >>> try:
        ...     Uniform(0.0, 1.0, log=True)
        ... except ValueError as err:
        ...     print(str(err)[:45])
        Uniform: `low` must be > 0 with log=True. Rec
    """

    low: float
    high: float
    log: bool = False
    step: float | None = None

    def __post_init__(self) -> None:
        if not (_is_number(self.low) and _is_number(self.high)):
            raise OptionError(
                f"Uniform: `low` and `high` must be numbers. Received: low={self.low!r}, "
                f"high={self.high!r}. Example: Uniform(1e-4, 1e-1, log=True)."
            )
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise OptionError(
                f"Uniform: `low` must be below `high`, both finite. Received: low={self.low!r}, "
                f"high={self.high!r}."
            )
        if self.log and self.low <= 0:
            raise OptionError(
                f"Uniform: `low` must be > 0 with log=True. Received: low={self.low!r}. "
                "Hint: a log scale starts above zero, e.g. Uniform(1e-5, 1e-1, log=True)."
            )
        if self.step is not None and (self.log or not _is_number(self.step) or self.step <= 0):
            raise OptionError(
                f"Uniform: `step` must be a positive number, and cannot go with log=True. "
                f"Received: step={self.step!r}, log={self.log!r}."
            )

    def to_optuna(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "uniform", "low": self.low, "high": self.high, "log": self.log,
                "step": self.step}  # fmt: skip


@dataclass(frozen=True)
class Integer:
    """An integer parameter from ``low`` to ``high``, both included (MATLAB's "Integer").

    Example:
        >>> Integer(8, 64, log=True)
        Integer(low=8, high=64, log=True, step=1)
    """

    low: int
    high: int
    log: bool = False
    step: int = 1

    def __post_init__(self) -> None:
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high))
        if not ints or self.low >= self.high:
            raise OptionError(
                f"Integer: `low` and `high` must be ints with low < high. Received: "
                f"low={self.low!r}, high={self.high!r}. Example: Integer(1, 4)."
            )
        if self.log and self.low <= 0:
            raise OptionError(f"Integer: `low` must be > 0 with log=True. Received: {self.low!r}.")
        if not isinstance(self.step, int) or self.step < 1 or (self.log and self.step != 1):
            raise OptionError(
                f"Integer: `step` must be an int >= 1 (1 with log=True). Received: {self.step!r}."
            )

    def to_optuna(self) -> Any:
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high, log=self.log, step=self.step)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "integer", "low": self.low, "high": self.high, "log": self.log,
                "step": self.step}  # fmt: skip


class Choice:
    """One of a list of values (MATLAB's "Categorical"): numbers, strings, booleans or None.

    Example:
        >>> Choice(["adam", "sgdm"]).values
        ('adam', 'sgdm')
    """

    def __init__(self, values: Iterable[Any]) -> None:
        if isinstance(values, str) or not isinstance(values, Iterable):
            raise OptionError(
                f"Choice: `values` must be a list of values. Received: {values!r}. "
                "Example: Choice(['adam', 'sgdm'])."
            )
        self.values = _check_values("Choice", list(values))

    def __repr__(self) -> str:
        return f"Choice({list(self.values)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Choice) and other.values == self.values

    def __hash__(self) -> int:
        return hash(self.values)

    def to_optuna(self) -> Any:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(self.values)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "choice", "values": list(self.values)}


def _check_values(what: str, values: list[Any]) -> tuple[Any, ...]:
    values = [_plain(v) for v in values]
    if not values:
        raise OptionError(
            f"{what} has no values. Give at least one value, e.g. [0.01, 0.1], or remove it."
        )
    bad = [v for v in values if not isinstance(v, _PRIMITIVES)]
    if bad:
        raise OptionError(
            f"{what}: values must be numbers, strings, booleans or None. Received: {bad[0]!r} "
            f"({type(bad[0]).__name__}). Hint: give a name or an index and build the object "
            "in the setup function."
        )
    if len(set(map(repr, values))) != len(values):
        raise OptionError(f"{what}: values must differ. Received: {values!r}.")
    return tuple(values)


_DISTRIBUTIONS = (Uniform, Integer, Choice)


class ParameterTable:
    """The validated parameter table of an experiment (internal; users pass a dict).

    Each entry is swept (a list of values, or a distribution) or fixed (a single value).

    Example:
        >>> table = ParameterTable({"lr": [0.01, 0.1], "epochs": 2}, "exhaustive")
        >>> table.grid()
        [{'lr': 0.01}, {'lr': 0.1}]
        >>> table.fixed
        {'epochs': 2}
    """

    def __init__(self, parameters: Mapping[str, Any], strategy: str) -> None:
        if not isinstance(parameters, Mapping):
            raise OptionError(
                "Experiment: `parameters` must be a dict {name: values}. Received: "
                f"{type(parameters).__name__}. Example: {{'lr': [0.01, 0.1], 'filters': [8, 16]}}."
            )
        if not parameters:
            raise OptionError(
                "Experiment: `parameters` is empty. Give at least one parameter, e.g. "
                "{'lr': [0.01, 0.1]}."
            )
        self.strategy = strategy
        self.swept: dict[str, tuple[Any, ...] | Uniform | Integer | Choice] = {}
        self.fixed: dict[str, Any] = {}
        for name, value in parameters.items():
            self._add(name, value)

    def _add(self, name: Any, value: Any) -> None:
        if not isinstance(name, str) or not name:
            raise OptionError(f"Experiment: parameter names must be strings. Received: {name!r}.")
        what = f"Experiment: parameter {name!r}"
        value = _plain(value)
        if isinstance(value, _DISTRIBUTIONS):
            if self.strategy == "exhaustive":
                raise OptionError(
                    f"{what} is a distribution ({value!r}), which the 'exhaustive' strategy "
                    "cannot sweep. Give a list or range of values (e.g. [1e-3, 1e-2] or "
                    "range(1, 5)), or use strategy='random' or 'bayesian'."
                )
            self.swept[name] = value
        elif isinstance(value, _PRIMITIVES):
            self.fixed[name] = value
        elif isinstance(value, Sequence | range | set | frozenset) or hasattr(value, "tolist"):
            values = value.tolist() if hasattr(value, "tolist") else list(value)
            values = _check_values(what, values)
            self.swept[name] = values if self.strategy == "exhaustive" else Choice(values)
        else:
            raise OptionError(
                f"{what} must be a list or range of values, a single value (fixed), or "
                f"Uniform/Integer/Choice. Received: {value!r} ({type(value).__name__})."
            )

    def grid(self, constraints: Sequence[Callable[[dict], bool]] = ()) -> list[dict[str, Any]]:
        """Every combination of swept values (exhaustive), in table order, that passes."""
        names = list(self.swept)
        combos = [dict(zip(names, values, strict=True))
                  for values in itertools.product(*(self.swept[n] for n in names))]  # fmt: skip
        return [c for c in combos if satisfies(constraints, {**self.fixed, **c})]

    def distributions(self) -> dict[str, Any]:
        """Optuna distributions of the swept parameters."""
        from optuna.distributions import CategoricalDistribution

        return {
            name: CategoricalDistribution(spec) if isinstance(spec, tuple) else spec.to_optuna()
            for name, spec in self.swept.items()
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description (stored with the experiment, shown by compare_code)."""
        table: dict[str, Any] = {}
        for name, spec in self.swept.items():
            table[name] = (
                {"type": "values", "values": list(spec)} if isinstance(spec, tuple)
                else spec.to_dict()
            )  # fmt: skip
        for name, value in self.fixed.items():
            table[name] = {"type": "fixed", "value": value}
        return table

    @classmethod
    def from_dict(cls, table: Mapping[str, Any], strategy: str) -> ParameterTable:
        """Rebuild a table from :meth:`to_dict` (an experiment read back from a store)."""
        return cls(parameters_from_dict(table), strategy)


PARAMETER_KINDS = ("values", "uniform", "integer", "choice", "fixed")


def parameters_from_dict(table: Mapping[str, Any]) -> dict[str, Any]:
    """The ``parameters`` of an Experiment from their JSON description (the form an
    experiment's stored definition, the apps and spec files use): ``{name: {"type": kind,
    ...}}`` with kind ``values`` / ``choice`` (``values``), ``uniform`` / ``integer`` (``low``,
    ``high``, optional ``log`` and ``step``) or ``fixed`` (``value``); a plain list stands for
    ``values``.

    Example:
        >>> parameters_from_dict({"lr": {"type": "uniform", "low": 0.001, "high": 0.1,
        ...                              "log": True}, "width": [8, 16]})
        {'lr': Uniform(low=0.001, high=0.1, log=True, step=None), 'width': [8, 16]}
    """
    kinds = {"uniform": Uniform, "integer": Integer}
    parameters: dict[str, Any] = {}
    for name, spec in table.items():
        if isinstance(spec, list):
            parameters[name] = list(spec)
            continue
        kind = spec.get("type") if isinstance(spec, Mapping) else None
        if kind not in PARAMETER_KINDS:
            raise OptionError(
                f"Experiment: parameter {name!r} must be a list of values or {{'type': kind, "
                f"...}} with kind one of {', '.join(PARAMETER_KINDS)}. Received: {spec!r}."
            )
        try:
            if kind in kinds:
                spec["low"], spec["high"]  # noqa: B018 - a missing bound is named below
                fields = {k: v for k, v in spec.items() if k != "type"}
                parameters[name] = kinds[kind](**fields)
            elif kind == "choice":
                parameters[name] = Choice(spec["values"])
            elif kind == "values":
                parameters[name] = list(spec["values"])
            else:
                parameters[name] = spec["value"]
        except KeyError as err:
            raise OptionError(f"Experiment: parameter {name!r} ({kind}) needs "
                              f"{err.args[0]!r}. Received: {spec!r}.") from None  # fmt: skip
        except TypeError as err:
            raise OptionError(f"Experiment: parameter {name!r} ({kind}): {err}. Received: "
                              f"{spec!r}.") from None  # fmt: skip
    return parameters


def satisfies(constraints: Sequence[Callable[[dict], bool]], params: dict[str, Any]) -> bool:
    """True when every constraint accepts ``params`` (fixed values included)."""
    return all(bool(check(dict(params))) for check in constraints)
