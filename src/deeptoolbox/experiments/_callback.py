"""The train() callback of a built-in training trial: live curves, pruning, clean stops."""

from __future__ import annotations

import math
from typing import Any

from deeptoolbox.experiments._monitor import Monitor

__all__ = ["TrialCallback"]


class TrialCallback:
    """Joins a built-in training trial's ``train()`` to its :class:`Monitor`.

    Every iteration's ``training_loss`` goes into the monitor's history: at each logged
    iteration (when ``train()`` reads the losses back from the device, every
    ``verbose_frequency`` iterations, at validations and at the end) it records the losses of
    the iterations since the last logged one, then that iteration's ``training_loss``,
    ``training_<metric>`` and, at validations, ``validation_loss`` and ``validation_<metric>``.
    The monitor sends them to the store as training goes (curves, progress, info) and reports
    the experiment's metric to Optuna's pruner. After every iteration it returns
    ``monitor.stop_requested`` (a stop request, a time limit, the pruner, a cancel), so
    training stops cleanly and keeps what it reached.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> from deeptoolbox.training import TrainingOptions, train
        >>> monitor = Monitor()
        >>> x = torch.randn(64, 2); y = (x[:, 0] > 0).long()
        >>> options = TrainingOptions(max_epochs=2, mini_batch_size=16, verbose=False,
        ...                           verbose_frequency=3, metrics=["accuracy"],
        ...                           callbacks=[TrialCallback(monitor)])
        >>> _ = train(Network([L.FeatureInput(2), L.Dense(2), L.Softmax()]), (x, y),
        ...           "crossentropy", options)
        >>> [row["iteration"] for row in monitor.history], monitor.progress
        ([1, 2, 3, 4, 5, 6, 7, 8], 100.0)
        >>> [row["iteration"] for row in monitor.history if "training_accuracy" in row]
        [1, 3, 6, 8]
    """

    callback_name = "experiment trial"

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.recorded = 0  # last iteration recorded on the monitor
        self.stopped = False
        monitor.metrics = ["training_loss", "validation_loss"]
        monitor.info = ["epoch", "learn_rate"]

    def on_iteration_end(self, state: Any, info: dict[str, Any]) -> bool:
        monitor = self.monitor
        if info["logged"]:
            values = {"training_loss": info["loss"]}
            values.update({f"training_{k}": v for k, v in (info["metrics"] or {}).items()})
            values.update({f"validation_{k}": v for k, v in (info["validation"] or {}).items()})
            monitor.update_info(epoch=info["epoch"], learn_rate=info["learn_rate"])
            if info["total_iterations"]:
                # set before the record, which sends the row and the progress to the store
                monitor._progress = min(100.0, 100.0 * info["iteration"] / info["total_iterations"])
            self._record_losses(state.history.iterations, before=info["iteration"])
            self._record(info["iteration"], values)
        self.stopped = monitor.stop_requested
        return self.stopped

    def on_train_end(self, result: Any) -> None:
        """Records the iterations after the last logged one (training stopped between)."""
        rows = result.history.iterations
        if rows and rows[-1]["iteration"] > self.recorded:
            last = rows[-1]
            self.monitor.update_info(epoch=last.get("epoch"), learn_rate=last.get("learn_rate"))
            self._record_losses(rows, before=last["iteration"] + 1)
        if not self.stopped:
            self.monitor.progress = 100.0  # ended by itself: max epochs, patience, user code

    def _record_losses(self, rows: list[dict[str, Any]], before: int) -> None:
        """Record ``training_loss`` of the history rows after the last recorded iteration and
        before iteration ``before`` (the losses train() read back at this flush)."""
        start = len(rows)
        while start > 0 and rows[start - 1]["iteration"] > self.recorded:
            start -= 1  # from the end: a flush adds at most verbose_frequency rows
        for row in rows[start:]:
            if row["iteration"] < before:
                self._record(row["iteration"], {"training_loss": row.get("loss")})

    def _record(self, iteration: int, values: dict[str, Any]) -> None:
        numbers = {k: float(v) for k, v in values.items() if _number(v)}
        new = [name for name in numbers if name not in self.monitor.metrics]
        if new:
            self.monitor.metrics = [*self.monitor.metrics, *new]
        self.monitor.record(iteration, **numbers)
        self.recorded = iteration


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
