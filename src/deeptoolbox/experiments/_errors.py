"""Errors of the experiment manager (defined in :mod:`deeptoolbox.errors`)."""

from __future__ import annotations

from deeptoolbox.errors import ExperimentError, StoreError

__all__ = ["ExperimentError", "StoreError"]
