"""Compression: int8 quantization, projection, structured pruning and a compression report.

Every result is an ordinary toolbox object: pruned and projected networks are plain Networks
(they train, save, reload from their config and export), quantized networks predict,
classify, evaluate and save their int8 ONNX (or torch.export) file. Importing this package
adds a "compression" section to :func:`deeptoolbox.analyze`.

Example:
    >>> import torch
    >>> from deeptoolbox import Network, layers as L
    >>> from deeptoolbox.compress import prune
    >>> net = Network([L.FeatureInput(4), L.Dense(16, name="fc"), L.ReLU(), L.Dense(2)])
    >>> prune(net, ratio=0.25).network.layer("fc").units
    12
"""

from deeptoolbox.compress._calibration import CalibrationResult as CalibrationResult
from deeptoolbox.compress._calibration import LayerRange as LayerRange
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
from deeptoolbox.compress._report import CompressionReport as CompressionReport
from deeptoolbox.compress._report import ModelSummary as ModelSummary
from deeptoolbox.compress._report import measure_latency as measure_latency
from deeptoolbox.compress._report import multiply_accumulates as multiply_accumulates
from deeptoolbox.compress._report import report as report
from deeptoolbox.errors import CompressionError as CompressionError
from deeptoolbox.errors import MissingDependencyError as MissingDependencyError

__all__ = [
    "Quantizer", "quantize", "QuantizedNetwork", "CalibrationResult", "LayerRange", "Validation",
    "project", "neuron_pca", "unpack_projected", "NeuronPCA", "ProjectionResult",
    "ProjectedDense", "ProjectedConv1d", "ProjectedConv2d", "ProjectedLSTM", "ProjectedGRU",
    "prune", "TaylorPruner", "PruningResult",
    "report", "CompressionReport", "ModelSummary", "measure_latency", "multiply_accumulates",
    "CompressionError", "MissingDependencyError",
]  # fmt: skip

from deeptoolbox.compress._analysis import compression_check as _compression_check  # noqa: E402
from deeptoolbox.network import register_analysis_check as _register  # noqa: E402

_register("compression", _compression_check)
