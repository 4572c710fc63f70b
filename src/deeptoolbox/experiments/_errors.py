"""Errors of the experiment manager (they derive from the toolbox's hierarchy)."""

from __future__ import annotations

from deeptoolbox.errors import DeepToolboxError

__all__ = ["ExperimentError", "StoreError"]


class ExperimentError(DeepToolboxError, RuntimeError):
    """An experiment cannot go on: a metric is never reported, the store holds another
    definition under this name, a trial or run that does not exist was asked for.

    Example:
        >>> issubclass(ExperimentError, RuntimeError)
        True
    """


class StoreError(DeepToolboxError, OSError):
    """The experiment store cannot be opened: a folder that does not exist, a bad database
    URL, a database driver that is not installed.

    Example:
        >>> issubclass(StoreError, OSError)
        True
    """
