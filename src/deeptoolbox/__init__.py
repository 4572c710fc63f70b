"""deeptoolbox: a deep learning toolbox for engineers, on PyTorch.

Example:
    >>> import torch
    >>> import deeptoolbox as dtb
    >>> from deeptoolbox import layers as L
    >>> net = dtb.Network([L.FeatureInput(4), L.Dense(3), L.Softmax()], classes=["a", "b", "c"])
    >>> labels, scores = dtb.classify(net, torch.randn(2, 4))
    >>> len(labels)
    2
"""

from deeptoolbox import errors as errors
from deeptoolbox import layers as layers
from deeptoolbox._version import __version__ as __version__
from deeptoolbox.inference import best_device as best_device
from deeptoolbox.inference import classify as classify
from deeptoolbox.inference import predict as predict
from deeptoolbox.layers import register_layer as register_layer
from deeptoolbox.network import Analysis as Analysis
from deeptoolbox.network import Network as Network
from deeptoolbox.network import analyze as analyze
from deeptoolbox.network import load as load
from deeptoolbox.network import plot_network as plot_network
from deeptoolbox.network import save as save
from deeptoolbox.network import to_python as to_python

__all__ = [
    "__version__",
    "errors",
    "layers",
    "Network",
    "Analysis",
    "analyze",
    "save",
    "load",
    "to_python",
    "plot_network",
    "predict",
    "classify",
    "best_device",
    "register_layer",
]
