"""deeptoolbox: a deep learning toolbox for engineers, on PyTorch.

Subpackages: ``layers``, ``network``, ``data``, ``datasets``, ``training``, ``interop``,
``hub``, ``explain``, ``robustness``, ``deploy``. The most used functions are also here.

Example:
    >>> import torch
    >>> import deeptoolbox as dtb
    >>> from deeptoolbox import layers as L
    >>> net = dtb.Network([L.FeatureInput(4), L.Dense(3), L.Softmax()], classes=["a", "b", "c"])
    >>> labels, scores = dtb.classify(net, torch.randn(2, 4))
    >>> len(labels)
    2
"""

from deeptoolbox import data as data
from deeptoolbox import datasets as datasets
from deeptoolbox import deploy as deploy
from deeptoolbox import errors as errors
from deeptoolbox import explain as explain
from deeptoolbox import hub as hub
from deeptoolbox import interop as interop
from deeptoolbox import layers as layers
from deeptoolbox import robustness as robustness
from deeptoolbox import training as training
from deeptoolbox._version import __version__ as __version__
from deeptoolbox.hub import list_pretrained as list_pretrained
from deeptoolbox.hub import pretrained as pretrained
from deeptoolbox.inference import best_device as best_device
from deeptoolbox.inference import classify as classify
from deeptoolbox.inference import predict as predict
from deeptoolbox.interop import export_keras as export_keras
from deeptoolbox.interop import export_onnx as export_onnx
from deeptoolbox.interop import export_pytorch as export_pytorch
from deeptoolbox.interop import from_torch as from_torch
from deeptoolbox.interop import import_keras as import_keras
from deeptoolbox.interop import import_onnx as import_onnx
from deeptoolbox.interop import import_pytorch as import_pytorch
from deeptoolbox.layers import register_layer as register_layer
from deeptoolbox.network import Analysis as Analysis
from deeptoolbox.network import Network as Network
from deeptoolbox.network import analyze as analyze
from deeptoolbox.network import load as load
from deeptoolbox.network import plot_network as plot_network
from deeptoolbox.network import save as save
from deeptoolbox.network import to_python as to_python
from deeptoolbox.training import GanOptions as GanOptions
from deeptoolbox.training import TrainingOptions as TrainingOptions
from deeptoolbox.training import TrainingProgressMonitor as TrainingProgressMonitor
from deeptoolbox.training import TrainingResult as TrainingResult
from deeptoolbox.training import confusion_chart as confusion_chart
from deeptoolbox.training import evaluate as evaluate
from deeptoolbox.training import train as train
from deeptoolbox.training import train_gan as train_gan

__all__ = [
    "__version__",
    # subpackages
    "errors", "layers", "data", "datasets", "training", "interop", "hub", "explain", "robustness",
    "deploy",
    # design
    "Network", "Analysis", "analyze", "save", "load", "to_python", "plot_network",
    "register_layer",
    # inference
    "predict", "classify", "best_device",
    # training
    "train", "TrainingOptions", "TrainingResult", "TrainingProgressMonitor", "evaluate",
    "confusion_chart", "train_gan", "GanOptions",
    # interoperability
    "export_onnx", "import_onnx", "from_torch", "import_pytorch", "export_pytorch",
    "import_keras", "export_keras",
    # pretrained models
    "pretrained", "list_pretrained",
]  # fmt: skip
