"""Browser apps: the Network Designer (MATLAB's ``deepNetworkDesigner``), the Training
Monitor (the training-progress window) and the Experiment Manager, served locally by
``deeptoolbox app``.

Example:
    >>> from deeptoolbox import Network, layers as L
    >>> from deeptoolbox import apps
    >>> handle = apps.designer(Network([L.FeatureInput(4), L.Dense(2)]), open_browser=False)
    >>> handle.network.output_shape()
    (2,)
    >>> _ = handle.close()
"""

from deeptoolbox.apps._launch import AppHandle as AppHandle
from deeptoolbox.apps._launch import designer as designer
from deeptoolbox.apps._launch import labeler as labeler
from deeptoolbox.apps._launch import monitor as monitor
from deeptoolbox.apps._library import layer_library as layer_library
from deeptoolbox.apps._server import AppOptions as AppOptions
from deeptoolbox.apps._server import create_app as create_app
from deeptoolbox.apps._session import DesignerSession as DesignerSession
from deeptoolbox.training import TrainingMonitorLog as TrainingMonitorLog

__all__ = [
    "designer",
    "monitor",
    "AppHandle",
    "AppOptions",
    "create_app",
    "DesignerSession",
    "TrainingMonitorLog",
    "layer_library",
    # the labeling app (issue 24)
    "labeler",
]
