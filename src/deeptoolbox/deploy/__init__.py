"""Deployment: C code for embedded targets, exports for other runtimes, an inference server.

``generate_c`` writes C99 code (float32 or int8) with a static arena and a memory report;
``codegen_support`` says per layer whether and how it is generated; ``compile_c`` compiles
the code and calls it from Python, to check it against the network. ``export(net, path,
format=...)`` writes ONNX, TorchScript, ``torch.export`` (``.pt2``), ExecuTorch (``.pte``)
files or a Triton / KServe model repository, each checked against the network after writing.
``create_app(model)`` is the inference server (FastAPI) that ``deeptoolbox serve`` runs.

Example:
    >>> import tempfile
    >>> from deeptoolbox import Network, layers as L
    >>> from deeptoolbox import deploy
    >>> net = Network([L.FeatureInput(4), L.Dense(3), L.Softmax()])
    >>> report = deploy.generate_c(net, tempfile.mkdtemp() + "/c", verbose=False)
    >>> report.weight_bytes, report.arena_bytes
    (60, 12)
    >>> deploy.FORMATS
    ('onnx', 'torchscript', 'pt2', 'executorch', 'triton')
"""

from deeptoolbox.deploy._batching import MicroBatcher as MicroBatcher
from deeptoolbox.deploy._cbuild import CompiledC as CompiledC
from deeptoolbox.deploy._cbuild import compile_c as compile_c
from deeptoolbox.deploy._codegen import generate_c as generate_c
from deeptoolbox.deploy._export import FORMATS as FORMATS
from deeptoolbox.deploy._export_api import export as export
from deeptoolbox.deploy._int8 import activation_ranges as activation_ranges
from deeptoolbox.deploy._layer_rules import supported_layer_types as supported_layer_types
from deeptoolbox.deploy._quantize import ActivationRanges as ActivationRanges
from deeptoolbox.deploy._report import CodegenReport as CodegenReport
from deeptoolbox.deploy._report import LayerMemory as LayerMemory
from deeptoolbox.deploy._server_app import ServerOptions as ServerOptions
from deeptoolbox.deploy._server_app import create_app as create_app
from deeptoolbox.deploy._server_model import ServedModel as ServedModel
from deeptoolbox.deploy._server_model import load_served_model as load_served_model
from deeptoolbox.deploy._support import CodegenSupport as CodegenSupport
from deeptoolbox.deploy._support import LayerSupport as LayerSupport
from deeptoolbox.deploy._support import codegen_support as codegen_support
from deeptoolbox.errors import CodegenError as CodegenError
from deeptoolbox.errors import CompilerError as CompilerError

__all__ = [
    # C code generation
    "generate_c", "codegen_support", "supported_layer_types", "compile_c", "CompiledC",
    "CodegenReport", "LayerMemory", "CodegenSupport", "LayerSupport",
    "activation_ranges", "ActivationRanges",
    "CodegenError", "CompilerError",
    # exports and serving
    "export", "FORMATS",
    "create_app", "ServerOptions", "ServedModel", "load_served_model", "MicroBatcher",
]  # fmt: skip

# analyze() gets a "codegen" verdict per layer (network never imports deploy; deploy registers
# its check when imported).
from deeptoolbox.deploy._support import codegen_check as _codegen_check  # noqa: E402
from deeptoolbox.network import register_analysis_check as _register_analysis_check  # noqa: E402

_register_analysis_check("codegen", _codegen_check)
