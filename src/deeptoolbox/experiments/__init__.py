"""Experiments: hyperparameter sweeps that run themselves, tracked in a database.

MATLAB's Experiment Manager in Python: a setup function, a parameter table, a strategy
(exhaustive sweep, random sampling, Bayesian optimization with Optuna), trials in worker
processes on one machine or many, a store that Optuna and optuna-dashboard open too, the
results table, plots, code snapshots and diffs. See docs/experiments.md.

Needs the ``experiments`` extra (Optuna, SQLAlchemy): ``pip install 'deeptoolbox[experiments]'``.

Example:
    >>> import tempfile, pathlib
    >>> from deeptoolbox.experiments import Experiment, Uniform
    >>> def setup(params, monitor):
    ...     monitor.metrics = ["error"]
    ...     monitor.record(1, error=(params["x"] - 0.3) ** 2)
    ...     return {}
    >>> store = pathlib.Path(tempfile.mkdtemp()) / "experiments.db"
    >>> exp = Experiment("search", setup, {"x": Uniform(0.0, 1.0)}, strategy="random",
    ...                  trials=5, metric="error", direction="minimize", store=store)
    >>> exp.run(workers=0, verbose=False).counts
    {'completed': 5}
"""

from deeptoolbox.experiments._code import CodeSnapshot as CodeSnapshot
from deeptoolbox.experiments._code import compare_code as compare_code
from deeptoolbox.experiments._errors import ExperimentError as ExperimentError
from deeptoolbox.experiments._errors import StoreError as StoreError
from deeptoolbox.experiments._experiment import Experiment as Experiment
from deeptoolbox.experiments._experiment import delete_experiment as delete_experiment
from deeptoolbox.experiments._experiment import list_experiments as list_experiments
from deeptoolbox.experiments._experiment import load_experiment as load_experiment
from deeptoolbox.experiments._monitor import Monitor as Monitor
from deeptoolbox.experiments._parameters import Choice as Choice
from deeptoolbox.experiments._parameters import Integer as Integer
from deeptoolbox.experiments._parameters import Uniform as Uniform
from deeptoolbox.experiments._results import TrialRecord as TrialRecord
from deeptoolbox.experiments._runner import RunSummary as RunSummary

__all__ = [
    "Experiment",
    "Monitor",
    "Uniform",
    "Integer",
    "Choice",
    "load_experiment",
    "list_experiments",
    "delete_experiment",
    "compare_code",
    "CodeSnapshot",
    "TrialRecord",
    "RunSummary",
    "ExperimentError",
    "StoreError",
]
