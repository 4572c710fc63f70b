"""A parser for VNN-LIB property files (the SMT-LIB subset used by VNN-COMP).

Supported: comments (``;``), ``(declare-const X_i Real)`` / ``(declare-const Y_j Real)``,
``(assert ...)`` with ``and``, ``or``, ``<=``, ``>=``, ``<``, ``>`` (strict comparisons are
treated as non-strict, as VNN-COMP does), ``=``, and linear terms built from numbers, variables,
``+``, ``-`` and ``*`` by a constant. A property describes the *unsafe* inputs and outputs: it is
"sat" when some input in the box gives outputs meeting the output constraints.

The parsed property is a list of :class:`InputRegion`: one input box with a set of output
regions (each a conjunction of linear constraints ``c @ y + d <= 0``), the region reached
when *all* of its rows hold.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deeptoolbox.errors import VnnlibError

__all__ = ["VnnlibError", "InputRegion", "read_vnnlib"]

_VARIABLE = re.compile(r"^([XY])_(\d+)$")


@dataclass
class InputRegion:
    """One input box and the unsafe output regions checked on it.

    ``spec`` (S, num_outputs) and ``offset`` (S,) define S linear functions of the outputs;
    ``groups`` (S,) assigns each to an unsafe region, reached when all its functions are <= 0.

    Example:
        >>> import numpy as np
        >>> r = InputRegion(np.zeros(2), np.ones(2), np.array([[1.0, -1.0]]), np.zeros(1),
        ...                 np.zeros(1, dtype=int))
        >>> r.num_regions
        1
    """

    lower: np.ndarray
    upper: np.ndarray
    spec: np.ndarray
    offset: np.ndarray
    groups: np.ndarray

    @property
    def num_regions(self) -> int:
        """Number of unsafe output regions (disjuncts)."""
        return int(self.groups.max()) + 1 if self.groups.size else 0


Linear = tuple[dict[str, float], float]  # sum(coef * var) + constant


def _tokens(text: str) -> list[str]:
    text = re.sub(r";[^\n]*", " ", text)
    return text.replace("(", " ( ").replace(")", " ) ").split()


def _parse(tokens: list[str], where: str) -> list:
    stack: list[list] = [[]]
    for token in tokens:
        if token == "(":
            stack.append([])
        elif token == ")":
            if len(stack) == 1:
                raise VnnlibError(f"{where}: unbalanced ')' in the property file.")
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(token)
    if len(stack) != 1:
        raise VnnlibError(f"{where}: {len(stack) - 1} '(' are never closed.")
    return stack[0]


def _term(expr, variables: set[str], where: str) -> Linear:
    if isinstance(expr, str):
        if expr in variables:
            return {expr: 1.0}, 0.0
        try:
            return {}, float(expr)
        except ValueError:
            raise VnnlibError(
                f"{where}: unknown symbol {expr!r}; declare variables with (declare-const X_0 Real)."
            ) from None
    head, *args = expr
    parts = [_term(a, variables, where) for a in args]
    if head == "+":
        return _combine(parts, [1.0] * len(parts))
    if head == "-":
        if len(parts) == 1:
            return _combine(parts, [-1.0])
        return _combine(parts, [1.0] + [-1.0] * (len(parts) - 1))
    if head == "*":
        constants = [p for p in parts if not p[0]]
        linear = [p for p in parts if p[0]]
        if len(linear) > 1:
            raise VnnlibError(f"{where}: only linear terms are supported; found {_show(expr)}.")
        factor = float(np.prod([c for _, c in constants])) if constants else 1.0
        return _combine(linear or [({}, 1.0)], [factor])
    raise VnnlibError(
        f"{where}: unsupported term {_show(expr)}; allowed: +, -, *, numbers, X_i, Y_j."
    )


def _combine(parts: list[Linear], weights: list[float]) -> Linear:
    coefs: dict[str, float] = {}
    constant = 0.0
    for (c, k), w in zip(parts, weights, strict=True):
        for name, value in c.items():
            coefs[name] = coefs.get(name, 0.0) + w * value
        constant += w * k
    return coefs, constant


def _show(expr) -> str:
    if isinstance(expr, str):
        return expr
    return "(" + " ".join(_show(e) for e in expr) + ")"


def _dnf(expr, variables: set[str], where: str) -> list[list[Linear]]:
    """Disjunctive normal form: a list of conjunctions of constraints ``linear <= 0``."""
    if isinstance(expr, str) or not expr:
        raise VnnlibError(f"{where}: expected a constraint, found {_show(expr)}.")
    head, *args = expr
    if head == "and":
        combos = itertools.product(*[_dnf(a, variables, where) for a in args])
        return [[c for part in combo for c in part] for combo in combos]
    if head == "or":
        return [conj for a in args for conj in _dnf(a, variables, where)]
    if head in ("<=", ">=", "<", ">", "="):
        if len(args) != 2:
            raise VnnlibError(f"{where}: {head} needs two operands; found {_show(expr)}.")
        left, right = (_term(a, variables, where) for a in args)
        less = _combine([left, right], [1.0, -1.0])  # left - right
        more = _combine([left, right], [-1.0, 1.0])
        if head in ("<=", "<"):
            return [[less]]
        if head in (">=", ">"):
            return [[more]]
        return [[less, more]]
    raise VnnlibError(
        f"{where}: unsupported constraint {_show(expr)}; allowed: and, or, <=, >=, <, >, =."
    )


def read_vnnlib(path: str | Path, num_inputs: int, num_outputs: int) -> list[InputRegion]:
    """Read a VNN-LIB property for a network with the given numbers of inputs and outputs.

    Example:
        >>> import tempfile, os
        >>> text = '''(declare-const X_0 Real)
        ... (declare-const Y_0 Real)
        ... (declare-const Y_1 Real)
        ... (assert (>= X_0 -1))
        ... (assert (<= X_0 1))
        ... (assert (or (and (>= Y_1 Y_0))))'''
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = os.path.join(d, "p.vnnlib")
        ...     _ = open(p, "w").write(text)
        ...     regions = read_vnnlib(p, 1, 2)
        >>> regions[0].lower.tolist(), regions[0].spec.tolist()
        ([-1.0], [[1.0, -1.0]])
    """
    path = Path(path)
    if not path.is_file():
        raise VnnlibError(f"VNN-LIB file not found: '{path}'.")
    where = f"VNN-LIB file '{path.name}'"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise VnnlibError(f"{where} is not UTF-8 text ({err}).") from None
    commands = _parse(_tokens(text), where)
    variables: set[str] = set()
    conjunction: list[list[list[Linear]]] = []
    for command in commands:
        if isinstance(command, str) or not command:
            raise VnnlibError(
                f"{where}: expected a command in parentheses, found {_show(command)}."
            )
        if command[0] == "declare-const":
            variables.add(_declare(command, num_inputs, num_outputs, where))
        elif command[0] == "assert" and len(command) == 2:
            conjunction.append(_dnf(command[1], variables, where))
        else:
            raise VnnlibError(
                f"{where}: unsupported command {_show(command)[:80]}; allowed: declare-const, assert."
            )
    disjuncts = [[c for part in combo for c in part] for combo in itertools.product(*conjunction)]
    return _regions(disjuncts, num_inputs, num_outputs, where)


def _declare(command, num_inputs: int, num_outputs: int, where: str) -> str:
    if len(command) != 3 or not isinstance(command[1], str):
        raise VnnlibError(f"{where}: malformed declaration {_show(command)}.")
    match = _VARIABLE.match(command[1])
    if not match:
        raise VnnlibError(
            f"{where}: variable {command[1]!r} is not named X_i (inputs) or Y_j (outputs)."
        )
    kind, index = match.group(1), int(match.group(2))
    limit = num_inputs if kind == "X" else num_outputs
    if index >= limit:
        what = "inputs" if kind == "X" else "outputs"
        raise VnnlibError(
            f"{where}: {command[1]} is declared but the network has {limit} {what} "
            f"({kind}_0 to {kind}_{limit - 1})."
        )
    return command[1]


def _regions(disjuncts, num_inputs: int, num_outputs: int, where: str) -> list[InputRegion]:
    boxes: dict[tuple, list[list[Linear]]] = {}
    for conj in disjuncts:
        inputs, outputs, mixed = [], [], False  # one pass (a list test per item was quadratic)
        for c in conj:
            if not c[0]:
                continue
            kinds = {n[0] for n in c[0]}
            if kinds == {"X"}:
                inputs.append(c)
            elif kinds == {"Y"}:
                outputs.append(c)
            else:
                mixed = True
        if mixed:
            raise VnnlibError(f"{where}: constraints mixing X and Y variables are not supported.")
        if any(not c[0] and c[1] > 0 for c in conj):
            continue  # a constant constraint that is false: this disjunct is empty
        key = _box(inputs, num_inputs, where)
        boxes.setdefault(key, []).append(outputs)
    regions = []
    for (lower, upper), output_sets in boxes.items():
        rows, offsets, groups = [], [], []
        for group, constraints in enumerate(output_sets):
            for coefs, constant in constraints or [({}, 0.0)]:
                row = np.zeros(num_outputs)
                for name, value in coefs.items():
                    row[int(name[2:])] += value
                rows.append(row)
                offsets.append(constant)
                groups.append(group)
        regions.append(InputRegion(
            np.array(lower), np.array(upper), np.array(rows).reshape(-1, num_outputs),
            np.array(offsets), np.array(groups, dtype=np.int64),
        ))  # fmt: skip
    return regions


def _box(constraints: list[Linear], num_inputs: int, where: str) -> tuple:
    lower = [-np.inf] * num_inputs
    upper = [np.inf] * num_inputs
    for coefs, constant in constraints:
        if len(coefs) != 1:
            raise VnnlibError(
                f"{where}: input constraints must bound one variable each (boxes); found one on "
                f"{sorted(coefs)}."
            )
        ((name, coef),) = coefs.items()
        index, value = int(name[2:]), -constant / coef
        if coef > 0:
            upper[index] = min(upper[index], value)
        elif coef < 0:
            lower[index] = max(lower[index], value)
    missing = [f"X_{i}" for i in range(num_inputs) if not np.isfinite(lower[i] + upper[i])]
    if missing:
        raise VnnlibError(
            f"{where}: every input needs a lower and an upper bound; missing for {missing[:5]}."
        )
    return tuple(lower), tuple(upper)
