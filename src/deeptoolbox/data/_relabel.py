"""Writing label fixes back (``ImageDatastore.relabel``): files move between class folders,
every change checked before the first one is made, and undone if a move fails midway."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from deeptoolbox.data import _files
from deeptoolbox.errors import DataError, FileWriteError, OptionError

__all__ = ["plan_relabel", "move_files", "apply_labels"]


def _position(kind: str, files: list[str], given: Any) -> int:
    name = os.fspath(given)
    try:
        return files.index(name)
    except ValueError:
        pass
    if not _files.is_url(name):
        absolute = os.path.abspath(name)
        for j, path in enumerate(files):
            if not _files.is_url(path) and os.path.abspath(path) == absolute:
                return j
    raise DataError(
        f"{kind}.relabel: '{name}' is not a file of this datastore ({len(files)} files, such as "
        f"'{files[0] if files else ''}'). Use the names in `ds.files`."
    )


def plan_relabel(
    kind: str,
    files: list[str],
    labels: np.ndarray,
    classes: list[Any],
    changes: Mapping[Any, Any],
    by_folder: bool,
) -> list[tuple[int, Any, str]]:
    """Check ``changes`` ({file: new label}) against the datastore; returns ``(position,
    new label, new path)`` for each label that changes. Nothing is touched."""
    if not isinstance(changes, Mapping):
        raise OptionError(
            f"{kind}.relabel: give a dict {{file: new label}}. Received: {type(changes).__name__}."
        )
    plan, targets = [], {}
    for given, label in changes.items():
        j = _position(kind, files, given)
        if not by_folder and isinstance(label, str):
            label = label.strip()  # a label CSV's cells are read with their spaces removed
        if label not in classes:
            raise DataError(
                f"{kind}.relabel: '{files[j]}': class {label!r} is not one of the datastore's "
                f"classes {classes}. Build the datastore with `classes=` listing it to add a class."
            )
        if labels[j] == label:
            continue
        target = files[j]
        if by_folder:
            if _files.is_url(files[j]):
                raise DataError(
                    f"{kind}.relabel: '{files[j]}' is remote; only local class folders can be "
                    "changed (move the object yourself)."
                )
            root = os.path.dirname(os.path.dirname(files[j]))
            target = os.path.join(root, str(label), os.path.basename(files[j]))
            clash = targets.get(target)
            if os.path.lexists(target) or clash is not None:
                other = target if clash is None else files[clash]
                raise DataError(
                    f"{kind}.relabel: cannot move '{files[j]}' to class folder '{label}': "
                    f"'{other}' already has that name there. Nothing was moved; rename one first."
                )
            targets[target] = j
        plan.append((j, label, target))
    return plan


def _move(source: str, target: str) -> None:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        os.link(source, target)  # fails instead of replacing a file that appeared meanwhile
    except OSError:
        if os.path.lexists(target):
            raise
        os.rename(source, target)  # a filesystem without hard links
        return
    os.unlink(source)


def move_files(kind: str, files: list[str], plan: list[tuple[int, Any, str]]) -> dict[str, str]:
    """Move each planned file into its class folder; a failure moves the done ones back and
    raises FileWriteError. Returns {old path: new path}."""
    done: list[tuple[str, str]] = []
    for j, _, target in plan:
        if target == files[j]:
            continue
        try:
            _move(files[j], target)
        except OSError as err:
            for source, moved in reversed(done):
                os.rename(moved, source)
            raise FileWriteError(
                f"{kind}.relabel: could not move '{files[j]}' to '{target}': {err}. The files "
                f"moved before it were moved back; nothing changed."
            ) from err
        done.append((files[j], target))
    return dict(done)


def apply_labels(
    files: list[str],
    labels: np.ndarray,
    codes: np.ndarray,
    classes: list[Any],
    plan: list[tuple[int, Any, str]],
) -> np.ndarray:
    """Update the datastore's lists in place (views made from it share them); returns the
    labels array (a new one only when a label is longer than the array's strings)."""
    new = [label for _, label, _ in plan]
    if new and np.asarray(new).dtype.itemsize > labels.dtype.itemsize and labels.dtype.kind == "U":
        labels = labels.astype(np.asarray(new).dtype)
    for j, label, target in plan:
        files[j] = target
        labels[j] = label
        codes[j] = classes.index(label)
    return labels
