"""Results: trial records, the results table (sort, filter, CSV), comparison plots."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deeptoolbox._atomic import atomic_open
from deeptoolbox.errors import ExperimentError

__all__ = ["TrialRecord", "records", "table", "export_csv", "plot_compare", "plot_optuna"]

_STATE_STATUS = {"WAITING": "queued", "RUNNING": "running", "COMPLETE": "completed",
                 "PRUNED": "pruned", "FAIL": "failed"}  # fmt: skip


@dataclass
class TrialRecord:
    """Everything the store knows about one trial.

    ``status`` is one of queued, running, completed, stopped, pruned, failed, crashed,
    cancelled, skipped. ``metrics`` holds the final value of each metric, ``best`` the best
    value reached during the trial, ``value`` the experiment's metric.

    Example:
        >>> record = TrialRecord(number=0, status="completed", params={"lr": 0.1},
        ...                      metrics={"validation_accuracy": 0.9}, value=0.9)
        >>> record.row()["lr"], record.row()["validation_accuracy"]
        (0.1, 0.9)
    """

    number: int
    status: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)
    value: float | None = None
    started: str | None = None
    finished: str | None = None
    duration: float | None = None
    artifacts: Path | None = None
    error: str | None = None
    traceback: str | None = None
    annotation: str = ""
    run: int | None = None
    seed: int | None = None
    threads: int | None = None
    intermediate: dict[int, float] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """One row of the results table."""
        row: dict[str, Any] = {"trial": self.number, "status": self.status, **self.params}
        row.update(self.metrics)
        row.update({f"best_{name}": value for name, value in self.best.items()})
        row.update(duration=self.duration, started=self.started, run=self.run,
                   artifacts=str(self.artifacts) if self.artifacts else None,
                   annotation=self.annotation, error=self.error)  # fmt: skip
        return row

    def history(self) -> list[dict[str, Any]]:
        """The metrics recorded during the trial: its history.json once it has ended, else
        (while it runs, without files, or with its files on another machine) the curves the
        store keeps, or the experiment's metric alone for trials recorded without them."""
        path = self.artifact("history.json")
        if path is not None and path.is_file() and self.status != "running":
            return json.loads(path.read_text())
        if self.attributes.get("curves"):
            return [dict(row) for row in self.attributes["curves"]]
        return [{"iteration": step, "value": value} for step, value in self.intermediate.items()]

    def artifact(self, name: str) -> Path | None:
        """Path of one of the trial's files (None when it has no folder)."""
        return self.artifacts / name if self.artifacts is not None else None

    def confusion(self) -> Any:
        """The confusion matrix of the trial's network on the validation data, from the labels
        and predictions it stored (``validation-predictions.json``: built-in training of a
        classification network with validation data, or a custom setup that wrote the file),
        as a :class:`~deeptoolbox.training.ConfusionChart` (true class in rows).

        Example:
            >>> import json, tempfile
            >>> folder = Path(tempfile.mkdtemp())
            >>> _ = (folder / "validation-predictions.json").write_text(json.dumps(
            ...     {"classes": ["a", "b"], "truth": ["a", "a", "b"], "predicted": ["a", "b", "b"]}))
            >>> TrialRecord(number=0, status="completed", artifacts=folder).confusion().matrix.tolist()
            [[1, 1], [0, 1]]
        """
        from deeptoolbox.training import confusion_chart

        path = self.artifact("validation-predictions.json")
        if path is None or not path.is_file():
            raise ExperimentError(
                f"trial {self.number} stored no validation predictions (looked for "
                f"{str(path) if path else 'its files, but it kept none'!r}). Built-in training of a "
                "classification network with validation_data stores them when the experiment "
                "keeps artifacts; a custom setup writes validation-predictions.json with "
                '{"classes": [...], "truth": [...], "predicted": [...]} into monitor.artifacts.'
            )
        stored = json.loads(path.read_text())
        if not isinstance(stored, dict) or not {"truth", "predicted"} <= set(stored):
            raise ExperimentError(f"{str(path)!r} must hold \"truth\" and \"predicted\" label "
                                  f"lists. Found keys: {sorted(stored) if isinstance(stored, dict) else type(stored).__name__}.")  # fmt: skip
        classes = stored.get("classes")
        return confusion_chart(stored["truth"], stored["predicted"],
                               classes=[str(c) for c in classes] if classes else None)  # fmt: skip

    def load_network(self) -> Any:
        """The network the trial saved (``network.zip``), loaded."""
        from deeptoolbox.network import load

        path = self.artifact("network.zip")
        if path is None or not path.exists():
            raise ExperimentError(
                f"trial {self.number} saved no network (looked for {str(path)!r}). Built-in "
                "training saves it; a custom setup returns it as {'network': net, ...}."
            )
        return load(path)


def _iso(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def record_of(trial: Any, metric: str, annotations: Mapping[int, str]) -> TrialRecord:
    attrs = dict(trial.user_attrs)
    status = attrs.get("status") or _STATE_STATUS.get(trial.state.name, trial.state.name.lower())
    if trial.state.name == "FAIL" and status == "running":
        status = "crashed"
    if trial.state.name in ("WAITING", "RUNNING"):
        status = _STATE_STATUS[trial.state.name]
    metrics = dict(attrs.get("metrics") or {})
    folder = attrs.get("artifacts")
    return TrialRecord(
        number=trial.number, status=status, params=dict(attrs.get("params") or trial.params),
        metrics=metrics, best=dict(attrs.get("best") or {}), value=metrics.get(metric),
        started=_iso(trial.datetime_start), finished=_iso(trial.datetime_complete),
        duration=attrs.get("duration"), artifacts=Path(folder) if folder else None,
        error=attrs.get("error"), traceback=attrs.get("traceback"),
        annotation=annotations.get(trial.number, ""), run=attrs.get("run"),
        seed=attrs.get("seed"), threads=attrs.get("threads"),
        intermediate=dict(trial.intermediate_values), attributes=attrs,
    )  # fmt: skip


def records(trials: Iterable[Any], metric: str, annotations: Mapping[int, str]) -> list:
    return [record_of(t, metric, annotations) for t in sorted(trials, key=lambda t: t.number)]


def table(
    rows: list[dict[str, Any]],
    *,
    sort_by: str | None = None,
    ascending: bool = True,
    status: str | Sequence[str] | None = None,
    where: Callable[[dict[str, Any]], bool] | Mapping[str, Any] | None = None,
    as_records: bool = False,
) -> Any:
    """Filter and sort result rows; a pandas DataFrame when pandas is installed."""
    if status is not None:
        wanted = {status} if isinstance(status, str) else set(status)
        rows = [r for r in rows if r["status"] in wanted]
    if where is not None:
        if isinstance(where, Mapping):
            rows = [r for r in rows if all(r.get(k) == v for k, v in where.items())]
        else:
            rows = [r for r in rows if where(dict(r))]
    if sort_by is not None:
        if rows and not any(sort_by in r for r in rows):
            raise ExperimentError(
                f"results: no column {sort_by!r}. Columns: {sorted({k for r in rows for k in r})}."
            )
        present = [r for r in rows if r.get(sort_by) is not None]
        missing = [r for r in rows if r.get(sort_by) is None]
        rows = sorted(present, key=lambda r: r[sort_by], reverse=not ascending) + missing
    if as_records:
        return rows
    try:
        import pandas
    except ImportError:
        return rows
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return pandas.DataFrame(rows, columns=columns or ["trial", "status"])


def export_csv(rows: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write result rows to a CSV file (through a temporary file and a rename)."""
    path = Path(path)
    columns = list(dict.fromkeys(k for r in rows for k in r)) or ["trial", "status"]
    with atomic_open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, dict | list) else v
                             for k, v in row.items()})  # fmt: skip
    return path


def plot_compare(chosen: list[TrialRecord], metric: str, path: str | os.PathLike) -> Path:
    """Training curves of ``metric`` for several trials on one figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from deeptoolbox.training._progress import _atomic_png

    figure = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    drawn = 0
    for record in chosen:
        rows = record.history()
        key = metric if any(metric in r for r in rows) else "value"
        points = [(r["iteration"], r[key]) for r in rows if r.get(key) is not None]
        if not points and record.metrics.get(metric) is not None:  # a final value only
            points = [(rows[-1]["iteration"] if rows else 1, record.metrics[metric])]
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in record.params.items())  # fmt: skip
        axes.plot(xs, ys, marker="." if len(xs) < 30 else None,
                  label=f"trial {record.number} ({params})")  # fmt: skip
        drawn += 1
    if not drawn:
        raise ExperimentError(
            f"compare: none of trials {[r.number for r in chosen]} recorded {metric!r}."
        )
    axes.set_xlabel("Iteration")
    axes.set_ylabel(metric)
    axes.set_title(f"{metric} by trial")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    return _atomic_png(figure, path)


def plot_optuna(kind: str, study: Any, path: str | os.PathLike, **options: Any) -> Path:
    """Optuna's parallel-coordinate or parameter-importance plot, saved as a PNG."""
    import warnings

    from matplotlib import pyplot
    from optuna.visualization import matplotlib as optuna_plots

    from deeptoolbox.training._progress import _atomic_png

    draw = {"parallel": optuna_plots.plot_parallel_coordinate,
            "importance": optuna_plots.plot_param_importances}[kind]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            axes = draw(study, **options)
        except (RuntimeError, ValueError, ZeroDivisionError) as err:
            raise ExperimentError(
                f"the {kind} plot needs at least two completed trials that differ in their "
                f"parameters and metric ({err})."
            ) from err
    figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
    figure.set_size_inches(9, 5)
    figure.tight_layout()
    try:
        return _atomic_png(figure, path)
    finally:
        pyplot.close(figure)
