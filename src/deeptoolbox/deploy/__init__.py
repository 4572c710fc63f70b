"""Deployment: exports for other runtimes and an inference server.

``export(net, path, format=...)`` writes ONNX, TorchScript, ``torch.export`` (``.pt2``),
ExecuTorch (``.pte``) files or a Triton / KServe model repository, each checked against the
network after writing. ``create_app(model)`` is the inference server (FastAPI) that
``deeptoolbox serve`` runs.

Example:
    >>> from deeptoolbox.deploy import FORMATS
    >>> FORMATS
    ('onnx', 'torchscript', 'pt2', 'executorch', 'triton')
"""

from deeptoolbox.deploy._batching import MicroBatcher as MicroBatcher
from deeptoolbox.deploy._export import FORMATS as FORMATS
from deeptoolbox.deploy._export import export as export
from deeptoolbox.deploy._server_app import ServerOptions as ServerOptions
from deeptoolbox.deploy._server_app import create_app as create_app
from deeptoolbox.deploy._server_model import ServedModel as ServedModel
from deeptoolbox.deploy._server_model import load_served_model as load_served_model

__all__ = [
    "export", "FORMATS",
    "create_app", "ServerOptions", "ServedModel", "load_served_model", "MicroBatcher",
]  # fmt: skip
