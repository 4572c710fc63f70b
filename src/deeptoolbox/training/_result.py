"""TrainingResult: what train() returns."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from deeptoolbox.training._progress import TrainingHistory, history_panels, plot_progress

__all__ = ["TrainingResult"]


@dataclass
class TrainingResult:
    """The trained network and the record of its training.

    ``history.iterations`` has one dict per iteration (``iteration``, ``epoch``, ``loss``,
    ``learn_rate``, ``time``; mini-batch metrics and ``validation_*`` values where computed);
    ``history.epochs`` one per epoch (mean ``loss``, last validation values).
    ``returned_iteration`` is the iteration whose weights ``network`` holds (the best
    validation's, or the last), and ``final_validation`` holds that network's validation
    loss and metrics (after its batch-norm statistics were finalized, where they were).

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> from deeptoolbox.training import TrainingOptions, train
        >>> net = Network([L.FeatureInput(2), L.Dense(1)])
        >>> x = torch.randn(64, 2); y = x.sum(1, keepdim=True)
        >>> result = train(net, (x, y), "mse", TrainingOptions(max_epochs=2, verbose=False))
        >>> len(result.history.epochs), result.stop_reason
        (2, 'max epochs completed')
    """

    network: torch.nn.Module
    history: TrainingHistory
    metrics: list[str] = field(default_factory=list)
    best_epoch: int | None = None
    best_iteration: int | None = None
    stop_reason: str = ""
    checkpoint: Path | None = None
    final_validation: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"
    precision: str = "32"
    returned_iteration: int | None = None

    def plot(self, path: str | os.PathLike = "training-progress.png") -> Path:
        """Write the training-progress plot (loss, metrics, learn rate) to a PNG; a star marks
        the returned network."""
        panels = history_panels(self.history, self.metrics, self.returned_iteration)
        return plot_progress(panels, path)

    def summary(self) -> dict[str, Any]:
        """Final numbers: epochs, iterations, last loss, validation values, best epoch."""
        last = self.history.iterations[-1] if self.history.iterations else {}
        return {
            "epochs": len(self.history.epochs),
            "iterations": last.get("iteration", 0),
            "loss": last.get("loss"),
            **{f"validation_{k}": v for k, v in self.final_validation.items()},
            "best_epoch": self.best_epoch,
            "returned_iteration": self.returned_iteration,
            "stop_reason": self.stop_reason,
        }
