"""ONNX import and export: ``import_onnx``, ``export_onnx``, ``verify_onnx`` and the registry
of supported operators (``_registry``). The same names are in :mod:`deeptoolbox.interop`.

Example:
    >>> from deeptoolbox.interop.onnx import supported_onnx_operators
    >>> "Conv" in supported_onnx_operators()
    True
"""

from deeptoolbox.interop.onnx._export import export_onnx as export_onnx
from deeptoolbox.interop.onnx._export import verify_onnx as verify_onnx
from deeptoolbox.interop.onnx._import import import_onnx as import_onnx
from deeptoolbox.interop.onnx._import import onnx_operator_table as onnx_operator_table
from deeptoolbox.interop.onnx._import import supported_onnx_operators as supported_onnx_operators
from deeptoolbox.interop.onnx._layers import OnnxOperator as OnnxOperator
from deeptoolbox.interop.onnx._layers import OnnxPlaceholder as OnnxPlaceholder

__all__ = [
    "import_onnx",
    "export_onnx",
    "verify_onnx",
    "supported_onnx_operators",
    "onnx_operator_table",
    "OnnxOperator",
    "OnnxPlaceholder",
]
