"""Compression: quantization, projection, structured pruning and a compression report."""

from deeptoolbox.compress._calibration import CalibrationResult as CalibrationResult
from deeptoolbox.compress._calibration import LayerRange as LayerRange
from deeptoolbox.compress._errors import CompressionError as CompressionError
from deeptoolbox.compress._errors import MissingDependencyError as MissingDependencyError
from deeptoolbox.compress._projected_layers import ProjectedConv1d as ProjectedConv1d
from deeptoolbox.compress._projected_layers import ProjectedConv2d as ProjectedConv2d
from deeptoolbox.compress._projected_layers import ProjectedDense as ProjectedDense
from deeptoolbox.compress._projected_layers import ProjectedGRU as ProjectedGRU
from deeptoolbox.compress._projected_layers import ProjectedLSTM as ProjectedLSTM
from deeptoolbox.compress._projection import NeuronPCA as NeuronPCA
from deeptoolbox.compress._projection import ProjectionResult as ProjectionResult
from deeptoolbox.compress._projection import neuron_pca as neuron_pca
from deeptoolbox.compress._projection import project as project
from deeptoolbox.compress._projection import unpack_projected as unpack_projected
from deeptoolbox.compress._pruning import PruningResult as PruningResult
from deeptoolbox.compress._pruning import TaylorPruner as TaylorPruner
from deeptoolbox.compress._pruning import prune as prune
from deeptoolbox.compress._quantized import QuantizedNetwork as QuantizedNetwork
from deeptoolbox.compress._quantizer import Quantizer as Quantizer
from deeptoolbox.compress._quantizer import Validation as Validation
from deeptoolbox.compress._quantizer import quantize as quantize

__all__ = [
    "Quantizer", "quantize", "QuantizedNetwork", "CalibrationResult", "LayerRange", "Validation",
    "project", "neuron_pca", "unpack_projected", "NeuronPCA", "ProjectionResult",
    "ProjectedDense", "ProjectedConv1d", "ProjectedConv2d", "ProjectedLSTM", "ProjectedGRU",
    "prune", "TaylorPruner", "PruningResult",
    "CompressionError", "MissingDependencyError",
]  # fmt: skip
