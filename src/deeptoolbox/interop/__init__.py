"""Interoperability: ONNX, PyTorch and Keras import and export.

The layers that imported networks use for Keras and PyTorch semantics (``PaddingMask``,
``CrossAttention``, ``StochasticDepth``, ``TensorInput``...) live in
:mod:`deeptoolbox.layers`; they are also importable from here, as before.

Example:
    >>> from deeptoolbox.interop import supported_onnx_operators
    >>> "Conv" in supported_onnx_operators()
    True
"""

from deeptoolbox.errors import ModelExportError as ModelExportError
from deeptoolbox.interop._compat import MaskedGlobalAvgPool as MaskedGlobalAvgPool
from deeptoolbox.interop._convert import convert as convert
from deeptoolbox.interop._convert import read_model as read_model
from deeptoolbox.interop._operators import OpaqueModule as OpaqueModule
from deeptoolbox.interop._operators import TorchFunction as TorchFunction
from deeptoolbox.interop._operators import TorchModule as TorchModule
from deeptoolbox.interop.keras._export import export_keras as export_keras
from deeptoolbox.interop.keras._import import import_keras as import_keras
from deeptoolbox.interop.keras._layers import supported_keras_layers as supported_keras_layers
from deeptoolbox.interop.keras._placeholder import KerasPlaceholder as KerasPlaceholder
from deeptoolbox.interop.onnx._export import export_onnx as export_onnx
from deeptoolbox.interop.onnx._export import verify_onnx as verify_onnx
from deeptoolbox.interop.onnx._import import import_onnx as import_onnx
from deeptoolbox.interop.onnx._import import onnx_operator_table as onnx_operator_table
from deeptoolbox.interop.onnx._import import supported_onnx_operators as supported_onnx_operators
from deeptoolbox.interop.onnx._layers import OnnxOperator as OnnxOperator
from deeptoolbox.interop.onnx._layers import OnnxPlaceholder as OnnxPlaceholder
from deeptoolbox.interop.torch._api import export_pytorch as export_pytorch
from deeptoolbox.interop.torch._api import from_torch as from_torch
from deeptoolbox.interop.torch._api import import_pytorch as import_pytorch
from deeptoolbox.interop.torch._keys import load_original_state_dict as load_original_state_dict
from deeptoolbox.interop.torch._keys import original_state_dict as original_state_dict
from deeptoolbox.interop.torch._keys import original_state_dict_keys as original_state_dict_keys
from deeptoolbox.layers import AvgPoolExcludingPadding as AvgPoolExcludingPadding
from deeptoolbox.layers import AxisLayerNorm as AxisLayerNorm
from deeptoolbox.layers import CrossAttention as CrossAttention
from deeptoolbox.layers import MaskedSteps as MaskedSteps
from deeptoolbox.layers import ModeSwitch as ModeSwitch
from deeptoolbox.layers import PaddingMask as PaddingMask
from deeptoolbox.layers import StochasticDepth as StochasticDepth
from deeptoolbox.layers import TensorInput as TensorInput

__all__ = [
    "convert",
    "read_model",
    "export_onnx",
    "verify_onnx",
    "import_onnx",
    "supported_onnx_operators",
    "onnx_operator_table",
    "OnnxOperator",
    "OnnxPlaceholder",
    "TensorInput",
    "ModelExportError",
    "from_torch",
    "import_pytorch",
    "export_pytorch",
    "original_state_dict",
    "original_state_dict_keys",
    "load_original_state_dict",
    "TorchFunction",
    "TorchModule",
    "OpaqueModule",
    "StochasticDepth",
    "ModeSwitch",
    "import_keras",
    "export_keras",
    "supported_keras_layers",
    "KerasPlaceholder",
    "PaddingMask",
    "MaskedSteps",
    "MaskedGlobalAvgPool",
    "CrossAttention",
    "AvgPoolExcludingPadding",
    "AxisLayerNorm",
]
