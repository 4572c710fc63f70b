"""Experiments: hyperparameter sweeps that run themselves, tracked in a database.

MATLAB's Experiment Manager in Python: a setup function, a parameter table, a strategy
(exhaustive sweep, random sampling, Bayesian optimization with Optuna), trials in worker
processes on one machine or many, a store that Optuna and optuna-dashboard open too, the
results table, plots, code snapshots and diffs. See docs/experiments.md.

Needs the ``experiments`` extra (Optuna, SQLAlchemy): ``pip install 'deeptoolbox[experiments]'``.
Names load on first use, so importing the package (or its command line) stays cheap.

Example:
    >>> import tempfile, pathlib
    >>> from deeptoolbox.experiments import Experiment, Uniform
    >>> def setup(params, monitor):
    ...     monitor.metrics = ["error"]
    ...     monitor.record(1, error=(params["x"] - 0.3) ** 2)
    ...     return {}
    >>> store = pathlib.Path(tempfile.mkdtemp()) / "experiments.db"
    >>> exp = Experiment("search", setup, {"x": Uniform(0.0, 1.0)}, strategy="random",
    ...                  trials=5, metric="error", direction="minimize", store=store,
    ...                  artifacts=False)
    >>> exp.run(workers=0, verbose=False).counts
    {'completed': 5}
"""

import importlib
from typing import Any

_NAMES = {
    "Experiment": "_experiment",
    "load_experiment": "_experiment",
    "list_experiments": "_experiment",
    "delete_experiment": "_experiment",
    "Monitor": "_monitor",
    "Uniform": "_parameters",
    "Integer": "_parameters",
    "Choice": "_parameters",
    "parameters_from_dict": "_parameters",
    "compare_code": "_code",
    "CodeSnapshot": "_code",
    "TrialRecord": "_results",
    "RunSummary": "_runner",
    "ExperimentError": "_errors",
    "StoreError": "_errors",
}

__all__ = list(_NAMES)


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'deeptoolbox.experiments' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"deeptoolbox.experiments.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_NAMES])
