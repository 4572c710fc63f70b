"""The Experiment Manager page's data: experiments of a store inside the app's root, their
results table and one trial's details, read through :mod:`deeptoolbox.experiments`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from deeptoolbox.apps import _files


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
        from deeptoolbox.errors import OptionError

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
    return _plain({
        "name": name, "metric": experiment.metric, "direction": experiment.direction,
        "parameters": list(experiment.table.to_dict()), "columns": columns, "rows": rows,
        "counts": experiment.counts(),
    })  # fmt: skip


def trial_details(root: Path, store: str, name: str, number: int) -> dict[str, Any]:
    """One trial: status, parameters, final and best metrics, curves, annotation, error."""
    from deeptoolbox.experiments import load_experiment

    record = load_experiment(name, _store(root, store)).trial(number)
    return _plain({
        "trial": record.number, "status": record.status, "params": record.params,
        "metrics": record.metrics, "best": record.best, "value": record.value,
        "duration": record.duration, "annotation": record.annotation, "error": record.error,
        "history": record.history(),
    })  # fmt: skip


def add_experiment_routes(app: FastAPI) -> None:
    """``/api/experiments``: list, results table, trial details."""
    options = app.state.options

    @app.get("/api/experiments", summary="experiments of an SQLite store inside the root")
    def get_experiments(store: str = "experiments.db") -> dict[str, Any]:
        from deeptoolbox.experiments import list_experiments

        return {"store": store, "experiments": _plain(list_experiments(_store(options.root,
                                                                               store)))}  # fmt: skip

    @app.get("/api/experiments/{name}", summary="an experiment's results table")
    def get_experiment(name: str, store: str = "experiments.db") -> dict[str, Any]:
        return experiment_summary(options.root, store, name)

    @app.get("/api/experiments/{name}/trials/{number}", summary="one trial's details")
    def get_trial(name: str, number: int, store: str = "experiments.db") -> dict[str, Any]:
        return trial_details(options.root, store, name, number)
