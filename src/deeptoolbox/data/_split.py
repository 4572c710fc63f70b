"""How ``Datastore.split`` cuts observations into parts (MATLAB ``splitEachLabel``): amounts
as fractions or counts, per class or overall, in order or shuffled, and the warnings for
classes that end up missing from a part."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deeptoolbox.errors import OptionError

__all__ = ["Amounts", "parse_amounts", "split_positions", "missing_notes"]

_EXAMPLE = (
    "Examples: split(0.8) (fractions, per class), split(0.7, 0.15) (three parts), split(40) "
    "(40 observations of each class, the rest in a second part), split(40, 10)."
)


class Amounts:
    """The parsed amounts of a split: ``kind`` is "fractions" or "counts"."""

    def __init__(self, kind: str, values: list[float]) -> None:
        self.kind, self.values = kind, values

    @property
    def num_parts(self) -> int:
        """Parts returned: one per amount, plus the rest (always for counts; for fractions
        when they sum to less than 1)."""
        if self.kind == "counts" or sum(self.values) < 1 - 1e-9:
            return len(self.values) + 1
        return len(self.values)

    def cuts(self, size: int) -> np.ndarray:
        """Boundaries of the parts in a group of ``size`` observations."""
        if self.kind == "fractions":
            bounds = np.concatenate([[0.0], np.cumsum(self.values)])
            if len(bounds) - 1 < self.num_parts:
                bounds = np.append(bounds, 1.0)
            bounds[-1] = 1.0
            return np.round(bounds * size).astype(int)
        cuts = np.minimum(np.concatenate([[0], np.cumsum(self.values)]), size).astype(int)
        return np.append(cuts, size)


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_float(value: Any) -> bool:
    return isinstance(value, float | np.floating)


def parse_amounts(name: str, amounts: tuple[Any, ...]) -> Amounts:
    """Check the amounts given to ``split``: all fractions (floats) or all counts (ints)."""
    values = list(amounts)
    if len(values) == 1 and isinstance(values[0], Sequence | np.ndarray):
        values = list(values[0])  # split([0.7, 0.15]) as well as split(0.7, 0.15)
    if not values or not all(_is_int(v) or _is_float(v) for v in values):
        raise OptionError(
            f"{name}.split: give fractions (floats in (0, 1]) or counts per class (ints >= 1). "
            f"Received: {amounts!r}. {_EXAMPLE}"
        )
    if all(_is_int(v) for v in values):
        if any(v < 1 for v in values):
            raise OptionError(
                f"{name}.split: counts must be ints >= 1. Received: {values!r}. {_EXAMPLE}"
            )
        return Amounts("counts", [int(v) for v in values])
    if not all(_is_float(v) for v in values):
        raise OptionError(
            f"{name}.split: give all fractions (floats) or all counts (ints), not a mix. "
            f"Received: {values!r}. Write 1.0 for a fraction of one. {_EXAMPLE}"
        )
    if any(not 0 < v <= 1 + 1e-9 for v in values):
        raise OptionError(
            f"{name}.split: fractions must lie in (0, 1]. Received: {values!r}. {_EXAMPLE}"
        )
    total = float(sum(values))
    if total > 1 + 1e-9:
        raise OptionError(
            f"{name}.split: fractions must sum to at most 1. Received sum {total:g} "
            f"({values!r}). {_EXAMPLE}"
        )
    return Amounts("fractions", [float(v) for v in values])


def split_positions(
    amounts: Amounts,
    groups: list[tuple[Any, np.ndarray]],
    rng: np.random.Generator | None,
) -> tuple[list[np.ndarray], list[str]]:
    """Cut each group (a class, or everything) into the parts; returns the positions of each
    part (sorted) and notes on classes with fewer observations than a count asked for."""
    parts: list[list[np.ndarray]] = [[] for _ in range(amounts.num_parts)]
    short: list[str] = []
    for label, group in groups:
        if rng is not None:
            group = group[rng.permutation(len(group))]
        cuts = amounts.cuts(len(group))
        for k in range(amounts.num_parts):
            parts[k].append(group[cuts[k] : cuts[k + 1]])
        asked = int(sum(amounts.values)) if amounts.kind == "counts" else 0
        if asked > len(group):
            who = "the datastore" if label is None else f"class {label!r}"
            short.append(f"{who} has {len(group)} (asked for {asked})")
    empty = np.zeros(0, dtype=np.int64)
    return [np.sort(np.concatenate(p)) if p else empty for p in parts], short


def missing_notes(
    amounts: Amounts, parts: list[np.ndarray], labels: np.ndarray | None
) -> list[str]:
    """One note per part that is empty, or that lacks a class the datastore has."""
    notes = []
    classes = [] if labels is None else list(dict.fromkeys(labels.tolist()))
    for k, part in enumerate(parts):
        automatic_rest = amounts.kind == "counts" and k == len(parts) - 1
        where = f"part {k + 1} of {len(parts)}"
        if len(part) == 0:
            if not automatic_rest:
                notes.append(f"{where} is empty")
            continue
        present = set() if labels is None else set(labels[part].tolist())
        missing = [c for c in classes if c not in present]
        if missing:
            counts = [f"{c!r} ({int(np.count_nonzero(labels == c))} in all)" for c in missing]
            notes.append(f"{where} has no observations of class {', '.join(counts)}")
    return notes
