"""Compression: quantization, projection, structured pruning and a compression report."""

from deeptoolbox.compress._errors import CompressionError as CompressionError
from deeptoolbox.compress._errors import MissingDependencyError as MissingDependencyError
from deeptoolbox.compress._pruning import PruningResult as PruningResult
from deeptoolbox.compress._pruning import TaylorPruner as TaylorPruner
from deeptoolbox.compress._pruning import prune as prune

__all__ = ["prune", "TaylorPruner", "PruningResult", "CompressionError", "MissingDependencyError"]
