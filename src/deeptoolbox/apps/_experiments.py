"""The Experiment Manager page's data: experiments of a store inside the app's root, their
results table and one trial's details, read through :mod:`deeptoolbox.experiments`; and its
actions: create an experiment from a parameter table and a setup function, run its trials in
``deeptoolbox experiment worker`` processes, stop a trial, cancel the rest."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from deeptoolbox.apps import _files
from deeptoolbox.errors import OptionError


def _plain(value: Any) -> Any:
    """JSON-safe: NaN and infinities become None, paths and other objects text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def _store(root: Path, store: str) -> Path:
    path = _files.confined(root, store)
    if path.suffix.lower() not in (".db", ".sqlite", ".sqlite3"):
        raise OptionError(
            f"Experiment Manager: {store!r} is not an SQLite store (.db, .sqlite); give the "
            "experiments.db file the experiments were run with, inside the app's folder."
        )
    return path


def experiment_summary(root: Path, store: str, name: str) -> dict[str, Any]:
    """The results table of experiment ``name`` (rows as dicts) with its metric and columns."""
    from deeptoolbox.experiments import load_experiment

    experiment = load_experiment(name, _store(root, store))
    rows = experiment.results(as_records=True)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    # the experiment's metric (and its best value) right after the parameters, so the number
    # the experiment is judged by is in sight without scrolling past every other metric
    parameters = list(experiment.table.to_dict())
    leading = ["trial", "status", *parameters, experiment.metric, f"best_{experiment.metric}"]
    columns = [c for c in leading if c in columns] + [c for c in columns if c not in leading]
    return _plain({
        "name": name, "metric": experiment.metric, "direction": experiment.direction,
        "parameters": parameters, "columns": columns, "rows": rows,
        "counts": experiment.counts(),
    })  # fmt: skip


CURVE_POINTS = 1_000  # the most points of a trial's curves the page gets


def thin_rows(rows: list[dict[str, Any]], limit: int = CURVE_POINTS) -> list[dict[str, Any]]:
    """At most ``limit`` of a trial's history rows, keeping the curves' shape: the first and
    last rows and, in each of equal runs of rows, those holding each metric's min and max.

    Example:
        >>> rows = [{"iteration": i, "loss": float(i % 7)} for i in range(1, 5001)]
        >>> kept = thin_rows(rows, 100)
        >>> len(kept) <= 100, kept[0]["iteration"], kept[-1]["iteration"]
        (True, 1, 5000)
        >>> {0.0, 6.0} <= {row["loss"] for row in kept}  # the extremes are kept
        True
    """
    if len(rows) <= limit:
        return list(rows)
    metrics = sorted({k for row in rows for k, v in row.items()
                      if k != "iteration" and isinstance(v, int | float)})  # fmt: skip
    buckets = max(1, (limit - 2) // (2 * max(len(metrics), 1)))
    keep = {0, len(rows) - 1}
    for b in range(buckets):
        lo, hi = b * len(rows) // buckets, (b + 1) * len(rows) // buckets
        for name in metrics:
            present = [i for i in range(lo, hi) if isinstance(rows[i].get(name), int | float)
                       and math.isfinite(rows[i][name])]  # fmt: skip
            if present:
                keep.add(min(present, key=lambda i: rows[i][name]))
                keep.add(max(present, key=lambda i: rows[i][name]))
        if not metrics:
            keep.add(lo)
    return [rows[i] for i in sorted(keep)]


def trial_details(root: Path, store: str, name: str, number: int) -> dict[str, Any]:
    """One trial: status, parameters, final and best metrics, curves (every recorded row,
    thinned by :func:`thin_rows` to at most :data:`CURVE_POINTS`), annotation, error."""
    from deeptoolbox.experiments import load_experiment

    record = load_experiment(name, _store(root, store)).trial(number)
    return _plain({
        "trial": record.number, "status": record.status, "params": record.params,
        "metrics": record.metrics, "best": record.best, "value": record.value,
        "duration": record.duration, "annotation": record.annotation, "error": record.error,
        "history": thin_rows(record.history()),
    })  # fmt: skip


def parameters_from_json(table: Any) -> dict[str, Any]:
    """The ``parameters`` of an :class:`~deeptoolbox.experiments.Experiment` from the page's
    table (see :func:`deeptoolbox.experiments.parameters_from_dict`).

    Example:
        >>> parameters_from_json({"width": [8, 16], "depth": {"type": "fixed", "value": 2}})
        {'width': [8, 16], 'depth': 2}
    """
    from deeptoolbox.experiments import parameters_from_dict

    if not isinstance(table, dict) or not table:
        raise OptionError(f"Experiment Manager: `parameters` must be a table of one or more "
                          f"parameters {{name: values}}. Received: {table!r}.")  # fmt: skip
    return parameters_from_dict(table)


def load_setup(root: Path, reference: str) -> Any:
    """The setup function ``reference`` names: ``file.py:function`` (a file inside the app's
    folder) or ``package.module:function`` (an importable module).

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp()).resolve()
        >>> _ = (root / "sweep.py").write_text("def setup(params, monitor):\\n    return {}\\n")
        >>> load_setup(root, "sweep.py:setup").__name__
        'setup'
    """
    where, _, name = str(reference).rpartition(":")
    if not where or not name.isidentifier():
        raise OptionError(
            "Experiment Manager: the setup function must be given as `file.py:function` (a file "
            f"inside the app's folder) or `package.module:function`. Received: {reference!r}."
        )
    if where.endswith(".py"):
        module = _module_from_file(_files.confined(root, where))
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as err:
            raise OptionError(f"Experiment Manager: cannot import module {where!r} for the "
                              f"setup function {reference!r}: {err}.") from None  # fmt: skip
    function = getattr(module, name, None)
    if not callable(function):
        raise OptionError(f"Experiment Manager: {where!r} defines no function {name!r} (setup "
                          f"function {reference!r}).")  # fmt: skip
    return function


def _module_from_file(path: Path) -> Any:
    if not path.is_file():
        raise OptionError(f"Experiment Manager: the setup file {str(path)!r} does not exist.")
    source = path.read_bytes()
    name = f"deeptoolbox_setup_{path.stem}_{hashlib.sha256(source).hexdigest()[:12]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise OptionError(f"Experiment Manager: running the setup file {str(path)!r} failed: "
                          f"{type(err).__name__}: {err}.") from None  # fmt: skip
    return module


def trial_confusion(root: Path, store: str, name: str, number: int) -> dict[str, Any]:
    """The validation confusion matrix of one trial (true class in rows) from the labels and
    predictions it stored, with accuracy, per-class recall and precision."""
    from deeptoolbox.experiments import load_experiment

    chart = load_experiment(name, _store(root, store)).trial(number).confusion()
    return _plain({
        "trial": number, "classes": chart.classes, "matrix": chart.matrix.tolist(),
        "accuracy": chart.accuracy, "recall": chart.recall.tolist(),
        "precision": chart.precision.tolist(),
    })  # fmt: skip


class Annotation(BaseModel):
    """The body of ``PUT /api/experiments/{name}/trials/{number}/annotation``."""

    text: str = Field(max_length=10_000)
    store: str = "experiments.db"


class NewExperiment(BaseModel):
    """The body of ``POST /api/experiments``; a malformed one is answered 422 naming the
    field (``detail[i]["loc"]``) and what it must be."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
                      description="letters, digits, '_', '.' and '-', starting with a letter or digit")  # fmt: skip
    setup: str = Field(
        min_length=1, description="file.py:function inside the root, or package.module:function"
    )
    parameters: dict[str, Any] = Field(min_length=1, description="{name: values or a range}")
    strategy: Literal["exhaustive", "random", "bayesian"] = "exhaustive"
    trials: int | None = Field(default=None, ge=1)
    metric: str = Field(default="validation_accuracy", min_length=1)
    direction: Literal["maximize", "minimize"] = "maximize"
    description: str = ""
    store: str = "experiments.db"


class RunRequest(BaseModel):
    """The body of ``POST /api/experiments/{name}/run``."""

    store: str = "experiments.db"
    workers: int = Field(default=1, ge=1, le=64)


class Workers:
    """``deeptoolbox experiment worker`` processes the app started, per (store, experiment);
    each one exits by itself when the queue is empty or when the app's process ends."""

    def __init__(self) -> None:
        self._processes: dict[tuple[str, str], list[subprocess.Popen]] = {}
        self._lock = threading.Lock()

    def start(self, root: Path, store: Path, name: str, count: int) -> list[int]:
        command = [sys.executable, "-m", "deeptoolbox.cli", "experiment", "worker", str(store),
                   name, "--parent", str(os.getpid())]  # fmt: skip
        with self._lock:
            started = [subprocess.Popen(command, cwd=root, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                       for _ in range(count)]  # fmt: skip
            self._processes.setdefault((str(store), name), []).extend(started)
        return [process.pid for process in started]

    def running(self, store: Path, name: str) -> int:
        with self._lock:
            alive = [p for p in self._processes.get((str(store), name), []) if p.poll() is None]
            self._processes[(str(store), name)] = alive
            return len(alive)

    def stop_all(self) -> None:
        with self._lock:
            for process in (p for group in self._processes.values() for p in group):
                if process.poll() is None:
                    process.terminate()
            self._processes.clear()


def create_experiment(root: Path, request: NewExperiment) -> dict[str, Any]:
    """Record a new experiment in its store and queue its trials (nothing runs yet)."""
    from deeptoolbox.experiments import Experiment

    experiment = Experiment(
        request.name, load_setup(root, request.setup), parameters_from_json(request.parameters),
        strategy=request.strategy, trials=request.trials, metric=request.metric,
        direction=request.direction, store=_store(root, request.store),
        description=request.description,
    )  # fmt: skip
    run = experiment.create()
    return {"name": experiment.name, "run": run, "counts": experiment.counts()}


def add_experiment_routes(app: FastAPI) -> None:
    """``/api/experiments``: list, results table, trial details, confusion matrix and
    annotation; create, run, stop, cancel."""
    options = app.state.options
    app.state.experiment_workers = workers = Workers()
    app.router.on_shutdown.append(workers.stop_all)

    @app.get("/api/experiments", summary="experiments of an SQLite store inside the root")
    def get_experiments(store: str = "experiments.db") -> dict[str, Any]:
        from deeptoolbox.experiments import list_experiments

        return {"store": store, "experiments": _plain(list_experiments(_store(options.root,
                                                                               store)))}  # fmt: skip

    @app.get("/api/experiments/{name}", summary="an experiment's results table")
    def get_experiment(name: str, store: str = "experiments.db") -> dict[str, Any]:
        summary = experiment_summary(options.root, store, name)
        summary["workers"] = workers.running(_store(options.root, store), name)
        return summary

    @app.post("/api/experiments", summary="create an experiment and queue its trials")
    def post_experiment(request: NewExperiment) -> dict[str, Any]:
        return create_experiment(options.root, request)

    @app.post("/api/experiments/{name}/run", summary="run its queued trials in worker processes")
    def run_experiment(name: str, request: RunRequest) -> dict[str, Any]:
        from deeptoolbox.experiments import load_experiment

        store = _store(options.root, request.store)
        counts = load_experiment(name, store).counts()  # 404 for an unknown experiment
        pids = workers.start(options.root, store, name, request.workers)
        return {"name": name, "workers": pids, "counts": counts}

    @app.post("/api/experiments/{name}/trials/{number}/stop", summary="stop a running trial")
    def stop_trial(name: str, number: int, store: str = "experiments.db") -> dict[str, Any]:
        from deeptoolbox.experiments import load_experiment

        load_experiment(name, _store(options.root, store)).stop(number)
        return {"name": name, "trial": number, "stop_requested": True}

    @app.post("/api/experiments/{name}/cancel", summary="start no more trials, stop running ones")
    def cancel_experiment(name: str, store: str = "experiments.db") -> dict[str, Any]:
        from deeptoolbox.experiments import load_experiment

        load_experiment(name, _store(options.root, store)).cancel()
        return {"name": name, "cancelled": True}

    @app.get("/api/experiments/{name}/trials/{number}", summary="one trial's details")
    def get_trial(name: str, number: int, store: str = "experiments.db") -> dict[str, Any]:
        return trial_details(options.root, store, name, number)

    @app.get("/api/experiments/{name}/trials/{number}/confusion",
             summary="a trial's validation confusion matrix")  # fmt: skip
    def get_confusion(name: str, number: int, store: str = "experiments.db") -> dict[str, Any]:
        return trial_confusion(options.root, store, name, number)

    @app.put("/api/experiments/{name}/trials/{number}/annotation",
             summary="set a trial's annotation (an empty text removes it)")  # fmt: skip
    def put_annotation(name: str, number: int, request: Annotation) -> dict[str, Any]:
        from deeptoolbox.experiments import load_experiment

        load_experiment(name, _store(options.root, request.store)).annotate(number, request.text)
        return {"name": name, "trial": number, "annotation": request.text}
