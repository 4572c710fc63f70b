"""Monitor: what a custom-training setup function reports (MATLAB's experiments.Monitor)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from deeptoolbox.errors import OptionError

__all__ = ["Monitor"]


class TrialLink(Protocol):
    """How a monitor talks to the running trial (the store); absent for a plain Monitor()."""

    def report(self, step: int, value: float, prune: bool) -> bool: ...

    def push(self, monitor: Monitor, force: bool) -> None: ...

    def stop_reason(self) -> str | None: ...


class Monitor:
    """Metrics and information a setup function with custom training reports, trial by trial.

    Like MATLAB's ``experiments.Monitor``: declare the names in ``metrics`` and ``info``,
    then call :meth:`record` (``recordMetrics``) and :meth:`update_info` (``updateInfo``) as
    training goes, set ``progress`` (percent), and end the loop early when
    ``stop_requested`` is True (the user stopped the trial, a time limit passed, or the pruner
    judged the trial hopeless). ``artifacts`` is the trial's folder for your own files.

    Example:
        >>> monitor = Monitor(metrics=["training_loss", "validation_accuracy"], info=["epoch"])
        >>> for iteration in range(1, 4):
        ...     monitor.record(iteration, training_loss=1.0 / iteration)
        ...     monitor.update_info(epoch=1)
        >>> monitor.record(3, validation_accuracy=0.9)
        >>> monitor.progress = 100
        >>> monitor.last("training_loss"), monitor.stop_requested
        (0.3333333333333333, False)
    """

    def __init__(
        self,
        *,
        metrics: Sequence[str] = (),
        info: Sequence[str] = (),
        x_label: str = "Iteration",
        artifacts: str | os.PathLike | None = None,
        link: TrialLink | None = None,
    ) -> None:
        self._metrics: list[str] = []
        self._info: dict[str, Any] = {}
        self.metrics = list(metrics)
        self.info = list(info)
        self.x_label = x_label
        self.artifacts = Path(artifacts) if artifacts is not None else None
        self.groups: dict[str, list[str]] = {}
        self.history: list[dict[str, Any]] = []
        self.status = ""
        self._progress = 0.0
        self._link = link
        self._reason: str | None = None
        self._started = time.monotonic()

    # -- declared names ------------------------------------------------------------------------
    @property
    def metrics(self) -> list[str]:
        """Names of the metrics this trial records (MATLAB's ``monitor.Metrics``)."""
        return list(self._metrics)

    @metrics.setter
    def metrics(self, names: Sequence[str]) -> None:
        self._metrics = _names("metrics", names)

    @property
    def info(self) -> list[str]:
        """Names of the information fields (MATLAB's ``monitor.Info``)."""
        return list(self._info)

    @info.setter
    def info(self, names: Sequence[str]) -> None:
        self._info = {name: self._info.get(name) for name in _names("info", names)}

    @property
    def info_values(self) -> dict[str, Any]:
        """Current value of each information field."""
        return dict(self._info)

    # -- recording ------------------------------------------------------------------------------
    def record(self, iteration: int, **values: float) -> None:
        """Record metric values at ``iteration`` (MATLAB's ``recordMetrics``).

        Names must be among :attr:`metrics`; values must be real numbers.
        """
        if isinstance(iteration, bool) or not isinstance(iteration, int | float):
            raise OptionError(f"Monitor.record: `iteration` must be a number. Received: "
                              f"{iteration!r}.")  # fmt: skip
        row: dict[str, Any] = {"iteration": iteration}
        for name, value in values.items():
            if name not in self._metrics:
                raise OptionError(
                    f"Monitor.record: unknown metric {name!r}. Declared metrics: "
                    f"{self._metrics}. Add it first: monitor.metrics = [..., {name!r}]."
                )
            try:
                row[name] = float(value)
            except (TypeError, ValueError):
                raise OptionError(
                    f"Monitor.record: metric {name!r} must be a number. Received: {value!r}."
                ) from None
        self.history.append(row)
        if self._link is not None:
            objective = getattr(self._link, "metric", None)
            value = row.get(objective)
            if (
                value is not None
                and math.isfinite(value)
                and self._link.report(int(iteration), value, True)
            ):
                self._reason = self._reason or "pruned"
            self._link.push(self, False)

    def update_info(self, **values: Any) -> None:
        """Set information fields (MATLAB's ``updateInfo``); names must be among :attr:`info`."""
        for name, value in values.items():
            if name not in self._info:
                raise OptionError(
                    f"Monitor.update_info: unknown field {name!r}. Declared info fields: "
                    f"{list(self._info)}. Add it first: monitor.info = [..., {name!r}]."
                )
            self._info[name] = value

    def group_subplot(self, title: str, metrics: Sequence[str]) -> None:
        """Draw several metrics in one panel of the trial's plot (MATLAB's ``groupSubPlot``)."""
        unknown = [m for m in metrics if m not in self._metrics]
        if unknown:
            raise OptionError(
                f"Monitor.group_subplot: unknown metrics {unknown}. Declared: {self._metrics}."
            )
        self.groups[str(title)] = list(metrics)

    @property
    def progress(self) -> float:
        """Percent of the trial done, 0 to 100 (MATLAB's ``monitor.Progress``)."""
        return self._progress

    @progress.setter
    def progress(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
            raise OptionError(f"Monitor.progress must be a number from 0 to 100. Received: "
                              f"{value!r}.")  # fmt: skip
        self._progress = float(value)
        if self._link is not None:
            self._link.push(self, False)

    # -- stopping -------------------------------------------------------------------------------
    @property
    def stop_requested(self) -> bool:
        """True when the trial should end now (MATLAB's ``monitor.Stop``); check it each
        iteration and return the metrics reached so far."""
        if self._reason is None and self._link is not None:
            self._reason = self._link.stop_reason()
        return self._reason is not None

    @property
    def stop_reason(self) -> str | None:
        """Why the trial was asked to stop: 'stopped by user', 'pruned', 'trial time limit',
        'experiment time limit', 'cancelled'; None while it goes on."""
        self.stop_requested  # noqa: B018 - refreshes the reason
        return self._reason

    # -- reading back ---------------------------------------------------------------------------
    def values(self, name: str) -> list[float]:
        """Every recorded value of metric ``name``."""
        return [row[name] for row in self.history if name in row]

    def last(self, name: str) -> float | None:
        """The last recorded value of metric ``name`` (None when never recorded)."""
        values = self.values(name)
        return values[-1] if values else None

    def reported(self) -> list[str]:
        """Names of the metrics recorded at least once."""
        return [m for m in self._metrics if any(m in row for row in self.history)]

    def latest(self) -> dict[str, float]:
        """The last recorded value of each metric recorded so far."""
        latest: dict[str, float] = {}
        for row in self.history:
            latest.update((k, v) for k, v in row.items() if k != "iteration")
        return latest

    def curves(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The recorded rows, at most ``limit`` of them: every k-th row and the last one
        (what the store keeps of a running trial's curves).

        Example:
            >>> monitor = Monitor(metrics=["loss"])
            >>> for i in range(1, 11):
            ...     monitor.record(i, loss=1.0 / i)
            >>> [row["iteration"] for row in monitor.curves(limit=4)]
            [1, 5, 9, 10]
        """
        rows = self.history
        if len(rows) <= limit:
            return list(rows)
        stride = math.ceil(len(rows) / (limit - 1))
        return [*rows[:-1:stride], rows[-1]]

    def panels(self) -> dict[str, dict[str, tuple[list, list]]]:
        """Plot panels: groups first, then training_X / validation_X pairs share a panel."""

        def curve(name: str) -> tuple[list, list]:
            rows = [r for r in self.history if name in r]
            return [r["iteration"] for r in rows], [r[name] for r in rows]

        panels = {title: {m: curve(m) for m in ms} for title, ms in self.groups.items()}
        grouped = {m for ms in self.groups.values() for m in ms}
        for name in self.reported():
            if name in grouped:
                continue
            base = name.split("_", 1)[1] if name.startswith(("training_", "validation_")) else name
            panels.setdefault(base.replace("_", " ").capitalize(), {})[name] = curve(name)
        return panels

    def plot(self, path: str | os.PathLike, title: str = "Training progress") -> Path:
        """Draw the recorded metrics to a PNG (the trial's training-progress plot)."""
        from deeptoolbox.training._progress import plot_progress

        info = {k: v for k, v in self._info.items() if v is not None}
        panels = self.panels() or {"(nothing recorded)": {}}
        return plot_progress(panels, path, x_label=self.x_label, title=title, info=info)


def _names(what: str, names: Sequence[str]) -> list[str]:
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if not all(isinstance(n, str) and n for n in names):
        raise OptionError(f"Monitor.{what} must be a list of names. Received: {names!r}.")
    return names
