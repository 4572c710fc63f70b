"""Compression: quantization, projection, structured pruning and a compression report."""

from deeptoolbox.compress._calibration import CalibrationResult as CalibrationResult
from deeptoolbox.compress._calibration import LayerRange as LayerRange
from deeptoolbox.compress._errors import CompressionError as CompressionError
from deeptoolbox.compress._errors import MissingDependencyError as MissingDependencyError
from deeptoolbox.compress._pruning import PruningResult as PruningResult
from deeptoolbox.compress._pruning import TaylorPruner as TaylorPruner
from deeptoolbox.compress._pruning import prune as prune
from deeptoolbox.compress._quantized import QuantizedNetwork as QuantizedNetwork
from deeptoolbox.compress._quantizer import Quantizer as Quantizer
from deeptoolbox.compress._quantizer import Validation as Validation
from deeptoolbox.compress._quantizer import quantize as quantize

__all__ = [
    "Quantizer", "quantize", "QuantizedNetwork", "CalibrationResult", "LayerRange", "Validation",
    "prune", "TaylorPruner", "PruningResult",
    "CompressionError", "MissingDependencyError",
]  # fmt: skip
