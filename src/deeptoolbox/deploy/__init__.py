"""Deployment: networks as portable C code for embedded targets.

Example:
    >>> import tempfile
    >>> from deeptoolbox import Network, layers as L
    >>> from deeptoolbox import deploy
    >>> net = Network([L.FeatureInput(4), L.Dense(3), L.Softmax()])
    >>> report = deploy.generate_c(net, tempfile.mkdtemp() + "/c", verbose=False)
    >>> report.weight_bytes
    60
"""

from deeptoolbox.deploy._cbuild import CompiledC as CompiledC
from deeptoolbox.deploy._cbuild import compile_c as compile_c
from deeptoolbox.deploy._codegen import generate_c as generate_c
from deeptoolbox.deploy._errors import CodegenError as CodegenError
from deeptoolbox.deploy._errors import CompilerError as CompilerError
from deeptoolbox.deploy._report import CodegenReport as CodegenReport
from deeptoolbox.deploy._report import LayerMemory as LayerMemory

__all__ = [
    "generate_c", "compile_c", "CompiledC", "CodegenReport", "LayerMemory",
    "CodegenError", "CompilerError",
]  # fmt: skip
