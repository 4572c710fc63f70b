"""Training progress: the history record, the terminal table, the progress plot and the monitor.

The terminal display prints MATLAB-style rows (epoch, iteration, elapsed time, mini-batch and
validation loss and metrics, learn rate) with a rich progress bar below them when the output
is a terminal. The plot (matplotlib, no pyplot) shows the training loss (raw and smoothed),
validation points, metrics and the learn rate, and is written to a PNG. In train() the table
(:class:`ProgressTable`) and the plot (:class:`ProgressPlot`) are callbacks, and a
:class:`TrainingProgressMonitor` can be one too; all plots are drawn by :func:`plot_progress`.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deeptoolbox._atomic import atomic_path
from deeptoolbox.errors import OptionError

__all__ = [
    "TrainingHistory",
    "ConsoleDisplay",
    "ProgressTable",
    "ProgressPlot",
    "plot_progress",
    "history_panels",
    "TrainingProgressMonitor",
]


class TrainingHistory:
    """Per-iteration and per-epoch records of a training run (lists of dicts).

    Example:
        >>> h = TrainingHistory()
        >>> h.iterations.append({"iteration": 1, "epoch": 1, "loss": 0.5})
        >>> h.column("loss")
        [0.5]
    """

    def __init__(self, iterations=None, epochs=None) -> None:
        self.iterations: list[dict[str, Any]] = list(iterations or [])
        self.epochs: list[dict[str, Any]] = list(epochs or [])

    def column(self, name: str, per: str = "iteration") -> list[Any]:
        """Values of ``name`` for every record that has it (``per``: iteration or epoch)."""
        records = self.iterations if per == "iteration" else self.epochs
        return [r[name] for r in records if r.get(name) is not None]

    def state(self) -> dict[str, list[dict[str, Any]]]:
        return {"iterations": self.iterations, "epochs": self.epochs}

    def __repr__(self) -> str:
        return f"TrainingHistory({len(self.iterations)} iterations, {len(self.epochs)} epochs)"


def _format(value: Any, width: int, percent: bool = False) -> str:
    if value is None:
        text = ""
    elif percent and isinstance(value, int | float):
        text = f"{100 * value:.2f}%"  # accuracy in percent, as MATLAB shows it
    elif isinstance(value, float):
        text = f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    else:
        text = str(value)
    return text.rjust(width)


def _elapsed(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ConsoleDisplay:
    """The verbose table and progress bar; does nothing when disabled (or not rank 0).

    ``columns`` are ``(title, record key)`` pairs; the key None shows the elapsed time.
    Accuracy columns show percent (the history keeps fractions); a validation loss that is
    the best so far, when the best network is returned, is marked with ``*``.
    """

    def __init__(self, enabled: bool, columns: Sequence[tuple[str, str | None]], total: int | None):
        self.enabled = enabled
        self.columns = [title for title, _ in columns]
        self.keys = [key for _, key in columns]
        self.widths = [max(len(c), 10) for c in self.columns]
        self.total, self.progress, self.task = total, None, None
        if enabled:
            from rich.console import Console

            self.console = Console(highlight=False, soft_wrap=True)

    @staticmethod
    def training_columns(metrics: Sequence[str], validation: bool) -> list[tuple[str, str | None]]:
        """The columns of train()'s table (MATLAB's verbose output)."""
        columns = [("Epoch", "epoch"), ("Iteration", "iteration"), ("Time Elapsed", None),
                   ("Mini-batch Loss", "loss")]  # fmt: skip
        if validation:
            columns.append(("Validation Loss", "validation_loss"))
        for name in metrics:
            columns.append((f"Mini-batch {name}", name))
            if validation:
                columns.append((f"Validation {name}", f"validation_{name}"))
        return [*columns, ("Learn Rate", "learn_rate")]

    def start(self, device: str, details: str) -> None:
        """Print the first line, ``Training on DEVICE (DETAILS).``, and the table header."""
        if not self.enabled:
            return
        self.console.print(f"Training on {device} ({details}).", markup=False)
        rule = "|" + "|".join("=" * (w + 2) for w in self.widths) + "|"
        header = (
            "|"
            + "|".join(f" {c.center(w)} " for c, w in zip(self.columns, self.widths, strict=True))
            + "|"
        )
        for line in (rule, header, rule):
            self.console.print(line, markup=False)
        if self.console.is_terminal and self.total:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self.progress = Progress(
                "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                TimeRemainingColumn(), console=self.console, transient=True,
            )  # fmt: skip
            self.task = self.progress.add_task("iterations", total=self.total)
            self.progress.start()

    def advance(self, iteration: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=iteration)

    def row(self, record: dict[str, Any], elapsed: float) -> None:
        if not self.enabled:
            return
        cells = [self._cell(key, record, elapsed, width)
                 for key, width in zip(self.keys, self.widths, strict=True)]  # fmt: skip
        line = "|" + "|".join(f" {c} " for c in cells) + "|"
        target = self.progress.console if self.progress is not None else self.console
        target.print(line, markup=False)

    @staticmethod
    def _cell(key: str | None, record: dict[str, Any], elapsed: float, width: int) -> str:
        if key is None:
            return _format(_elapsed(elapsed), width)
        value = record.get(key)
        if key == "validation_loss" and value is not None and record.get("best"):
            return (_format(value, 0) + " *").rjust(width)
        return _format(value, width, percent=key.endswith("accuracy"))

    def finish(self, reason: str, returned: str = "") -> None:
        if not self.enabled:
            return
        if self.progress is not None:
            self.progress.stop()
        self.console.print("|" + "|".join("=" * (w + 2) for w in self.widths) + "|", markup=False)
        self.console.print(f"Training finished: {reason}", markup=False)
        if returned:
            self.console.print(returned, markup=False)


def info_record(info: dict[str, Any]) -> dict[str, Any]:
    """One flat record (a table row, monitor values) from a callback's ``info``.

    Example:
        >>> record = info_record({"epoch": 1, "iteration": 4, "loss": 0.5, "learn_rate": 0.1,
        ...                       "metrics": {"accuracy": 0.9}, "validation": {"loss": 0.6}})
        >>> record["accuracy"], record["validation_loss"], record["loss"]
        (0.9, 0.6, 0.5)
    """
    record = {key: info.get(key) for key in ("epoch", "iteration", "loss", "learn_rate")}
    record.update(info.get("metrics") or {})
    record.update({f"validation_{k}": v for k, v in (info.get("validation") or {}).items()})
    return record


class ProgressTable:
    """train()'s verbose table and progress bar, as a callback over a :class:`ConsoleDisplay`.

    A row is printed at every logged iteration; ``mark_best`` marks a best-so-far
    validation loss with ``*`` (when the best network is the one returned).
    """

    callback_name = "progress table"

    def __init__(self, display: ConsoleDisplay, device: str, details: str, mark_best: bool):
        self.display, self.device, self.details = display, device, details
        self.mark_best = mark_best

    def on_train_start(self, state: Any) -> None:
        self.display.start(self.device, self.details)

    def on_iteration_end(self, state: Any, info: dict[str, Any]) -> None:
        self.display.advance(info["iteration"])
        if info["logged"]:
            record = {**info_record(info), "best": info["best"] and self.mark_best}
            self.display.row(record, info["elapsed"])

    def on_train_end(self, result: Any) -> None:
        self.display.finish(result.stop_reason, self.returned_note(result))

    def returned_note(self, result: Any) -> str:
        returned = result.returned_iteration
        if returned is None:
            return ""
        if "non-finite" in result.stop_reason:
            kind = "the last one checked before the non-finite loss"
        elif self.mark_best and result.best_iteration is not None:
            kind = "best validation"
        else:
            kind = "last iteration"
        loss = result.final_validation.get("loss")
        shown = f", validation loss {loss:.4g}" if loss is not None else ""
        return f"Returned the network of iteration {returned} ({kind}{shown})."

    def close(self) -> None:
        """Stop the progress bar (after an error too)."""
        if self.display.progress is not None:
            self.display.progress.stop()


class ProgressPlot:
    """train()'s progress plot (``plots="training-progress"``) as a callback: redrawn at
    logged iterations at most every ``frequency`` seconds, and at the end with a star on
    the returned network."""

    callback_name = "progress plot"

    def __init__(self, path: str | os.PathLike, frequency: float, metrics: Sequence[str]):
        self.path, self.frequency, self.metrics = Path(path), frequency, list(metrics)
        self.last = -math.inf

    def on_iteration_end(self, state: Any, info: dict[str, Any]) -> None:
        if info["logged"] and time.perf_counter() - self.last >= self.frequency:
            plot_progress(history_panels(state.history, self.metrics), self.path)
            self.last = time.perf_counter()

    def on_train_end(self, result: Any) -> None:
        panels = history_panels(result.history, self.metrics, result.returned_iteration)
        plot_progress(panels, self.path)


def _smooth(values: list[float], weight: float = 0.6) -> list[float]:
    """Debiased exponential moving average (TensorBoard-style)."""
    out, last, norm = [], 0.0, 0.0
    for value in values:
        last = weight * last + (1 - weight) * value
        norm = weight * norm + (1 - weight)
        out.append(last / norm)
    return out


def _panel(axes, curves: dict[str, tuple[list, list]], title: str, smooth: bool) -> None:
    for name, (xs, ys) in curves.items():
        if not xs:
            continue
        if name.startswith("returned"):
            axes.plot(xs, ys, "*", color="red", markersize=12, label=name, zorder=5)
        elif name.startswith("validation"):
            axes.plot(xs, ys, "--o", color="black", markersize=3, linewidth=1, label=name)
        elif smooth and len(ys) > 2 and xs[-1] - xs[0] == len(xs) - 1:  # dense: every step
            line = axes.plot(xs, ys, alpha=0.3, linewidth=0.8)[0]
            axes.plot(xs, _smooth(ys), color=line.get_color(), label=f"{name} (smoothed)")
        else:
            axes.plot(xs, ys, label=name)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    if any(xs for xs, _ in curves.values()):
        axes.legend(fontsize=7)


def plot_progress(
    panels: dict[str, dict[str, tuple[list, list]]],
    path: str | os.PathLike,
    *,
    x_label: str = "Iteration",
    title: str = "Training progress",
    info: dict[str, Any] | None = None,
) -> Path:
    """Draw panels of curves ``{panel: {name: (xs, ys)}}`` to a PNG, atomically.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "p.png"
        >>> plot_progress({"Loss": {"loss": ([1, 2, 3], [1.0, 0.5, 0.2])}}, out).exists()
        True
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(panels)
    heights = [1 if name == "Learn rate" else 2 for name in names]
    figure = Figure(figsize=(8, 1.2 + 1.6 * sum(heights) / 2), dpi=100)
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(len(names), 1, height_ratios=heights)
    for row, name in enumerate(names):
        axes = figure.add_subplot(grid[row])
        _panel(axes, panels[name], name, smooth=name != "Learn rate")
        if row == len(names) - 1:
            axes.set_xlabel(x_label)
    text = title + ("   " + "   ".join(f"{k}: {v}" for k, v in info.items()) if info else "")
    figure.suptitle(text, fontsize=9)
    figure.tight_layout()
    return _atomic_png(figure, path)


def _atomic_png(figure: Any, path: str | os.PathLike) -> Path:
    """Save a matplotlib figure to ``path`` through a temporary file and a rename."""
    path = Path(path)
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png")
    return path


def history_panels(
    history: TrainingHistory, metrics: Sequence[str], returned_iteration: int | None = None
) -> dict[str, dict]:
    """Panels for plot_progress from a training history; a star marks the returned network."""

    def curve(name: str) -> tuple[list, list]:
        rows = [r for r in history.iterations if r.get(name) is not None]
        return [r["iteration"] for r in rows], [r[name] for r in rows]

    panels = {"Loss": {"training loss": curve("loss"), "validation loss": curve("validation_loss")}}
    if returned_iteration is not None:
        rows = [r for r in history.iterations if r["iteration"] == returned_iteration]
        if rows:
            value = rows[-1].get("validation_loss", rows[-1]["loss"])
            label = f"returned network (iteration {returned_iteration})"
            panels["Loss"][label] = ([returned_iteration], [value])
    for name in metrics:
        panels[name.capitalize()] = {
            f"training {name}": curve(name),
            f"validation {name}": curve(f"validation_{name}"),
        }
    panels["Learn rate"] = {"learn rate": curve("learn_rate")}
    return panels


class TrainingProgressMonitor:
    """A training-progress plot for your own training loop (MATLAB's trainingProgressMonitor).

    Record metric values at each step with :meth:`record_metrics`, extra information with
    :meth:`update_info`, and the PNG at ``path`` is redrawn at most every ``refresh_seconds``
    (and by :meth:`save`). Set ``monitor.stop = True`` from your code to end a loop politely.

    Passed to train() as ``TrainingOptions(callbacks=[monitor])``, it records the declared
    metrics among ``loss``, ``learn_rate``, the training metrics and ``validation_*`` at
    every logged iteration, fills declared info fields (``epoch``, ``iteration``,
    ``learn_rate``, ``elapsed``, ...) and ``progress``, and ``monitor.stop = True`` stops
    the training run.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "progress.png"
        >>> monitor = TrainingProgressMonitor(metrics=["loss"], info=["epoch"], path=path)
        >>> for step in range(1, 4):
        ...     monitor.record_metrics(step, loss=1.0 / step)
        ...     monitor.update_info(epoch=1)
        >>> monitor.progress = 100
        >>> monitor.save().exists(), monitor.values("loss")
        (True, [1.0, 0.5, 0.3333333333333333])
    """

    def __init__(
        self,
        *,
        metrics: Sequence[str] = ("loss",),
        info: Sequence[str] = (),
        x_label: str = "Iteration",
        path: str | os.PathLike = "training-progress.png",
        refresh_seconds: float = 5.0,
    ) -> None:
        if isinstance(metrics, str) or not all(isinstance(m, str) for m in metrics):
            raise OptionError(
                f"TrainingProgressMonitor: `metrics` must be a list of names. Received: {metrics!r}."
            )
        self.metrics = list(metrics)
        self.info: dict[str, Any] = {name: None for name in info}
        self.x_label, self.path, self.refresh_seconds = x_label, Path(path), refresh_seconds
        self.groups: dict[str, list[str]] = {}
        self.progress: float = 0.0
        self.status: str = ""
        self.stop: bool = False
        self._data: dict[str, tuple[list, list]] = {m: ([], []) for m in self.metrics}
        self._last_draw = time.monotonic()

    def record_metrics(self, step: float, **values: float) -> None:
        """Record metric values at ``step``; names must be among ``metrics``."""
        for name, value in values.items():
            if name not in self._data:
                raise OptionError(
                    f"TrainingProgressMonitor.record_metrics: unknown metric {name!r}. Declared "
                    f"metrics: {self.metrics}. Add it to `metrics=` when creating the monitor."
                )
            xs, ys = self._data[name]
            xs.append(step)
            ys.append(float(value))
        if time.monotonic() - self._last_draw >= self.refresh_seconds:
            self.save()

    def update_info(self, **values: Any) -> None:
        """Set information fields shown above the plot (declared in ``info``)."""
        for name, value in values.items():
            if name not in self.info:
                raise OptionError(
                    f"TrainingProgressMonitor.update_info: unknown field {name!r}. Declared "
                    f"info fields: {list(self.info)}."
                )
            self.info[name] = value

    def group_subplot(self, title: str, metrics: Sequence[str]) -> None:
        """Draw several metrics in one panel called ``title``."""
        unknown = [m for m in metrics if m not in self._data]
        if unknown:
            raise OptionError(
                f"TrainingProgressMonitor.group_subplot: unknown metrics {unknown}; declared: "
                f"{self.metrics}."
            )
        self.groups[title] = list(metrics)

    def values(self, name: str) -> list[float]:
        """Recorded values of metric ``name``."""
        return list(self._data[name][1])

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Redraw the plot now and write it to ``path`` (default: the monitor's path)."""
        grouped = {m for ms in self.groups.values() for m in ms}
        panels = {t: {m: self._data[m] for m in ms} for t, ms in self.groups.items()}
        panels.update({m: {m: self._data[m]} for m in self.metrics if m not in grouped})
        info = {k: v for k, v in self.info.items() if v is not None}
        if self.progress:
            info["progress"] = f"{self.progress:.0f}%"
        if self.status:
            info["status"] = self.status
        self._last_draw = time.monotonic()
        return plot_progress(panels, path or self.path, x_label=self.x_label, info=info)

    # -- as a train() callback: TrainingOptions(callbacks=[monitor]) ----------------------------
    def on_iteration_end(self, state: Any, info: dict[str, Any]) -> bool:
        """Record the declared metrics that ``info`` holds (``loss``, ``learn_rate``, metric
        names, ``validation_loss``, ``validation_<metric>``) at logged iterations, copy the
        declared info fields, set ``progress``; returns ``stop`` (True stops train())."""
        if info.get("logged"):
            record = info_record(info)
            self._offered = getattr(self, "_offered", set()) | set(record)
            values = {
                k: v for k, v in record.items()
                if k in self._data and isinstance(v, int | float) and not isinstance(v, bool)
            }  # fmt: skip
            if values:
                self.record_metrics(info["iteration"], **values)
        for name in self.info:
            if info.get(name) is not None:
                self.info[name] = info[name]
        if info.get("total_iterations"):
            self.progress = 100 * info["iteration"] / info["total_iterations"]
        return self.stop

    def on_train_end(self, result: Any) -> None:
        """Show the stop reason as the status, draw the plot, and warn about declared metrics
        that train() never gave (a misspelt name such as ``val_loss``)."""
        self.status = result.stop_reason
        offered = getattr(self, "_offered", set())
        missing = [m for m in self.metrics if m not in offered and not self._data[m][0]]
        if missing:
            warnings.warn(
                f"TrainingProgressMonitor: train() gave no values for the metrics {missing}. "
                f"It gives {sorted(n for n in offered if n not in ('epoch', 'iteration'))}: "
                "`loss`, `learn_rate`, the options' `metrics` and `validation_loss` / "
                "`validation_<metric>` (with validation_data).",
                stacklevel=2,
            )
        self.save()


def finite_or_none(value: float) -> float | None:
    return value if value is not None and math.isfinite(value) else None
