"""Training: train(), TrainingOptions, callbacks, losses, metrics, schedules, progress,
checkpoints, GANs.

Example:
    >>> import torch
    >>> from deeptoolbox import Network, layers as L
    >>> from deeptoolbox.training import TrainingOptions, train
    >>> net = Network([L.FeatureInput(3), L.Dense(1)])
    >>> x = torch.randn(32, 3)
    >>> result = train(net, (x, x.sum(1, keepdim=True)), "mse",
    ...                TrainingOptions(max_epochs=1, verbose=False))
    >>> result.history.iterations[0]["iteration"]
    1
"""

from deeptoolbox.errors import TrainingError as TrainingError
from deeptoolbox.training._callbacks import Callback as Callback
from deeptoolbox.training._confusion import ConfusionChart as ConfusionChart
from deeptoolbox.training._confusion import confusion_chart as confusion_chart
from deeptoolbox.training._gan import GanOptions as GanOptions
from deeptoolbox.training._gan import GanResult as GanResult
from deeptoolbox.training._gan import train_gan as train_gan
from deeptoolbox.training._launch import launch as launch
from deeptoolbox.training._losses import Loss as Loss
from deeptoolbox.training._losses import loss_function as loss_function
from deeptoolbox.training._monitor_log import TrainingMonitorLog as TrainingMonitorLog
from deeptoolbox.training._options import TrainingOptions as TrainingOptions
from deeptoolbox.training._progress import TrainingHistory as TrainingHistory
from deeptoolbox.training._progress import TrainingProgressMonitor as TrainingProgressMonitor
from deeptoolbox.training._result import TrainingResult as TrainingResult
from deeptoolbox.training._schedules import Cosine as Cosine
from deeptoolbox.training._schedules import Piecewise as Piecewise
from deeptoolbox.training._schedules import Polynomial as Polynomial
from deeptoolbox.training._schedules import Warmup as Warmup
from deeptoolbox.training._state import LoopState as LoopState
from deeptoolbox.training._train import train as train

__all__ = [
    "train",
    "TrainingOptions",
    "TrainingResult",
    "TrainingHistory",
    "TrainingProgressMonitor",
    "TrainingMonitorLog",
    "LoopState",
    "Callback",
    "TrainingError",
    "Loss",
    "loss_function",
    "Piecewise",
    "Warmup",
    "Cosine",
    "Polynomial",
    "launch",
    "evaluate",
    "confusion_chart",
    "ConfusionChart",
    "train_gan",
    "GanOptions",
    "GanResult",
]


def __getattr__(name: str):
    """``evaluate`` lives with inference (``deeptoolbox.inference``, also ``dtb.evaluate``);
    ``deeptoolbox.training.evaluate`` stays its old name, loaded on first use because
    inference imports training's losses and metrics."""
    if name == "evaluate":
        from deeptoolbox.inference import evaluate

        return evaluate
    raise AttributeError(f"module 'deeptoolbox.training' has no attribute {name!r}")
