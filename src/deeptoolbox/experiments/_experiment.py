"""Experiment: a setup function, a parameter table and a strategy, tracked in a store."""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from deeptoolbox.errors import ExperimentError, OptionError
from deeptoolbox.experiments import _code
from deeptoolbox.experiments import _results as results_module
from deeptoolbox.experiments import _store as keys
from deeptoolbox.experiments._code import CodeSnapshot, load_function, snapshot_function
from deeptoolbox.experiments._ddp import check_processes
from deeptoolbox.experiments._engine import Store
from deeptoolbox.experiments._parameters import STRATEGIES, ParameterTable
from deeptoolbox.experiments._results import TrialRecord
from deeptoolbox.experiments._runner import RunSummary, run_experiment
from deeptoolbox.experiments._store import default_artifacts, open_storage, store_url
from deeptoolbox.experiments._trial import setup_kind

__all__ = ["Experiment", "load_experiment", "list_experiments", "delete_experiment"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _positive(what: str, value: Any, integer: bool = False) -> Any:
    if value is None:
        return None
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0 or (
        not integer and not math.isfinite(value)
    ):  # fmt: skip
        allowed = "a positive int" if integer else "a positive number of seconds"
        raise OptionError(f"Experiment: `{what}` must be {allowed} or None. Received: {value!r}.")
    return value


class Experiment:
    """A hyperparameter sweep: one setup function, a parameter table, a search strategy.

    MATLAB's Experiment Manager in Python. ``setup(params)`` returns ``(network,
    training_data, loss, TrainingOptions)`` and deeptoolbox trains (built-in training), or
    ``setup(params, monitor)`` trains by itself, records metrics on the
    :class:`Monitor` and returns a dict of final metrics (custom training).

    ``parameters`` maps names to lists or ranges of values (``strategy="exhaustive"``: every
    combination) or to :class:`Uniform`, :class:`Integer`, :class:`Choice` (``"random"``,
    ``"bayesian"``; lists count as Choice); a single value is fixed. ``constraints`` are
    functions of the parameter dict that return False for combinations to skip.

    Trials are tracked in ``store``: a SQLite file by default, or any SQLAlchemy URL
    (``postgresql+psycopg://user@host/db``) that workers on many machines share. It is an
    Optuna storage: ``optuna.load_study(study_name=name, storage=url)`` and optuna-dashboard
    open it. Each trial's files (saved network, history, plots, params) go into
    ``artifacts/NAME/trial-NNNN`` (default: beside the SQLite file; ``artifacts=False``
    writes none, for cheap objective functions).

    Example:
        >>> import tempfile, pathlib
        >>> def setup(params, monitor):
        ...     monitor.metrics = ["score"]
        ...     monitor.record(1, score=-(params["x"] - 2) ** 2)
        ...     return {}
        >>> store = pathlib.Path(tempfile.mkdtemp()) / "experiments.db"
        >>> exp = Experiment("parabola", setup, {"x": [0, 1, 2, 3]}, metric="score",
        ...                  store=store)
        >>> summary = exp.run(workers=0, verbose=False)
        >>> exp.best.params, len(exp.results(as_records=True))
        ({'x': 2}, 4)
    """

    def __init__(
        self,
        name: str,
        setup: Callable[..., Any],
        parameters: Mapping[str, Any],
        *,
        strategy: str = "exhaustive",
        trials: int | None = None,
        metric: str = "validation_accuracy",
        direction: str = "maximize",
        store: str | os.PathLike = "experiments.db",
        seed: int = 0,
        max_time: float | None = None,
        trial_max_time: float | None = None,
        constraints: Callable[[dict], bool] | Sequence[Callable[[dict], bool]] = (),
        pruner: str | Any | None = None,
        sampler: str | Any = "tpe",
        artifacts: str | os.PathLike | bool | None = None,
        description: str = "",
    ) -> None:
        kind = setup_kind(setup)
        constraints = [constraints] if callable(constraints) else list(constraints)
        if not all(callable(c) for c in constraints):
            raise OptionError(
                f"Experiment: `constraints` must be functions of the parameter dict returning "
                f"True to keep a combination. Received: {constraints!r}."
            )
        self._configure(name, strategy, trials, metric, direction, store, seed, max_time,
                        trial_max_time, pruner, sampler, artifacts, description)  # fmt: skip
        self.table = ParameterTable(parameters, strategy)
        self.setup_kind = kind
        self._setup: Callable[..., Any] | None = setup
        self._setup_record: dict[str, Any] | None = None
        self._constraints: list[Callable] | None = constraints
        self._constraint_records: list[dict[str, Any]] | None = None

    def _configure(self, name, strategy, trials, metric, direction, store, seed, max_time,
                   trial_max_time, pruner, sampler, artifacts, description) -> None:  # fmt: skip
        if not isinstance(name, str) or not _NAME.match(name):
            raise OptionError(
                "Experiment: `name` must start with a letter or digit and hold only letters, "
                f"digits, '_', '.' and '-' (it names folders too). Received: {name!r}."
            )
        if strategy not in STRATEGIES:
            raise OptionError(
                f"Experiment: `strategy` must be one of {', '.join(map(repr, STRATEGIES))}. "
                f"Received: strategy={strategy!r}."
            )
        if direction not in ("maximize", "minimize"):
            raise OptionError(f"Experiment: `direction` must be 'maximize' or 'minimize'. "
                              f"Received: {direction!r}.")  # fmt: skip
        if not isinstance(metric, str) or not metric:
            raise OptionError(f"Experiment: `metric` must be a metric name. Received: {metric!r}.")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise OptionError(f"Experiment: `seed` must be an int. Received: {seed!r}.")
        self.name, self.strategy, self.metric, self.direction = name, strategy, metric, direction
        self.trials = _positive("trials", trials, integer=True)
        self.seed = seed
        self.max_time = _positive("max_time", max_time)
        self.trial_max_time = _positive("trial_max_time", trial_max_time)
        self._check_budget()
        if pruner not in (None, "median") and not hasattr(pruner, "prune"):
            raise OptionError(f"Experiment: `pruner` must be None, 'median' or an Optuna pruner. "
                              f"Received: {pruner!r}.")  # fmt: skip
        if sampler not in ("tpe", "gp") and not hasattr(sampler, "sample_relative"):
            raise OptionError(f"Experiment: `sampler` must be 'tpe', 'gp' or an Optuna sampler. "
                              f"Received: {sampler!r}.")  # fmt: skip
        self.pruner, self.sampler = pruner, sampler
        self.store = store
        self.url = store_url(store)
        if artifacts is False:
            self.artifacts: Path | None = None  # no trial files (cheap objective functions)
        elif artifacts in (None, True, ""):
            self.artifacts = default_artifacts(self.url)
        else:
            self.artifacts = Path(artifacts).resolve()
        self.description = str(description)
        self._stores: dict[int, Store] = {}

    def _check_budget(self) -> None:
        if self.strategy == "exhaustive" and self.trials is not None:
            raise OptionError(
                "Experiment: the 'exhaustive' strategy runs every combination of the table; "
                f"leave `trials` unset. Received: trials={self.trials!r}."
            )
        if self.strategy == "random" and self.trials is None:
            raise OptionError("Experiment: strategy='random' needs `trials` (how many to draw).")
        if self.strategy == "bayesian" and self.trials is None and self.max_time is None:
            raise OptionError(
                "Experiment: strategy='bayesian' needs `trials` or `max_time` to know when to stop."
            )

    # -- the setup function and its record ------------------------------------------------------
    @property
    def setup(self) -> Callable[..., Any]:
        """The setup function (loaded from the stored code for an experiment read back)."""
        if self._setup is None:
            self._setup = load_function(self._setup_record or {})
        return self._setup

    @property
    def constraint_functions(self) -> list[Callable[[dict], bool]]:
        """The constraint functions (loaded from the stored code when read back)."""
        if self._constraints is None:
            self._constraints = [load_function(r) for r in self._constraint_records or []]
        return self._constraints

    def _definition(self) -> dict[str, Any]:
        describe = lambda value: value if value in (None, "median", "tpe", "gp") else type(  # noqa: E731
            value).__name__  # fmt: skip
        return {
            "format": 1, "strategy": self.strategy, "metric": self.metric,
            "direction": self.direction, "parameters": self.table.to_dict(),
            "trials": self.trials, "seed": self.seed, "sampler": describe(self.sampler),
            "pruner": describe(self.pruner), "max_time": self.max_time,
            "trial_max_time": self.trial_max_time, "artifacts": str(self.artifacts) if self.artifacts else False,
            "setup_kind": self.setup_kind, "description": self.description,
            "created": _code.now(),
        }  # fmt: skip

    def _live_code(self) -> CodeSnapshot:
        definition = self._definition()
        settings = {k: definition[k] for k in ("strategy", "metric", "direction", "trials",
                                               "seed", "sampler", "pruner")}  # fmt: skip
        if self._constraint_records is None:
            self._constraint_records = [snapshot_function(c) for c in self.constraint_functions]
        return CodeSnapshot(
            experiment=self.name, run=None,
            setup=self._setup_record or snapshot_function(self.setup),
            parameters=definition["parameters"], settings=settings,
            constraints=list(self._constraint_records),
            versions=_code.versions(), created=_code.now(), host=keys.HOST,
        )  # fmt: skip

    def _store(self, create: bool = False) -> Store:
        store = self._stores.get(os.getpid())
        if store is None or create:
            store = Store(self, create=create)
            self._stores = {os.getpid(): store}
        return store

    # -- running --------------------------------------------------------------------------------
    def run(
        self,
        workers: int = 1,
        *,
        stale: str = "requeue",
        verbose: bool = True,
        start_method: str | None = None,
        processes_per_trial: int = 1,
    ) -> RunSummary:
        """Run the trials not done yet in ``workers`` processes (0: in this process).

        Running again resumes: finished trials are kept, queued ones run, trials left
        running by a run that died are failed and, with ``stale="requeue"`` (default),
        queued again (``stale="fail"`` only fails them). Each worker runs one trial at a
        time with its share of the CPU cores; with GPUs, workers take them round-robin
        (``CUDA_VISIBLE_DEVICES``). ``start_method`` "fork" (the default where safe) or
        "spawn" (new interpreters that load the setup from the stored code).
        ``processes_per_trial=N`` trains each trial data-parallel in N processes (DDP: NCCL
        over N GPUs per worker when there are enough, else gloo on the CPU); the setup must
        use built-in training and be loadable from the stored code.

        Raises ExperimentError when the setup never reports the metric (after the first
        trial, naming the metrics it reports), or when the store holds another definition.
        """
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise OptionError(f"Experiment.run: `workers` must be an int >= 0. Received: "
                              f"{workers!r}.")  # fmt: skip
        if stale not in ("requeue", "fail"):
            raise OptionError(f"Experiment.run: `stale` must be 'requeue' or 'fail'. Received: "
                              f"{stale!r}.")  # fmt: skip
        if start_method not in (None, "fork", "spawn"):
            raise OptionError(f"Experiment.run: `start_method` must be None, 'fork' or "
                              f"'spawn'. Received: {start_method!r}.")  # fmt: skip
        processes = check_processes(processes_per_trial)
        if processes > 1 and self.setup_kind != "training":
            raise OptionError(
                f"Experiment {self.name!r}: `processes_per_trial`={processes} trains a trial "
                "data-parallel with train(), so the setup must be setup(params) returning "
                "(network, data, loss, TrainingOptions); a setup(params, monitor) runs its own "
                "loop in one process."
            )
        if processes > 1 and start_method is None:
            # a forked worker whose parent ran torch's CPU threads can crash once gloo and
            # those threads meet in it: trials trained by several processes use fresh workers
            start_method = "spawn"
        check = processes > 1 or (
            workers > 0 and (start_method == "spawn" or not _runner_can_fork())
        )
        store, run = self._prepare(check_loadable=check)
        return run_experiment(self, store, run, workers, stale, verbose, start_method,
                              processes)  # fmt: skip

    resume = run

    def create(self) -> int:
        """Record the experiment in its store and queue its trials without running any:
        ``deeptoolbox experiment worker STORE NAME`` processes (on any machines) then run
        them. Returns the run number."""
        return self._prepare(check_loadable=True)[1]

    def _prepare(self, check_loadable: bool) -> tuple[Store, int]:
        if _code.LOADING["active"]:
            raise ExperimentError(
                "an experiment was run while a worker loaded the setup's file: put the call "
                "under `if __name__ == '__main__':` in that file."
            )
        snapshot = self._live_code()
        if check_loadable:
            load_function(snapshot.setup)  # a fresh interpreter must find it: fail now if not
        if self.artifacts is not None:
            self.artifacts.mkdir(parents=True, exist_ok=True)
        store = self._store(create=True)
        run = store.prepare(self._definition(), snapshot.to_dict())
        self._setup_record = snapshot.setup
        return store, run

    def stop(self, trial: int) -> None:
        """Ask running trial ``trial`` to stop; it keeps what it reached (MATLAB's Stop)."""
        record = self._trial_object(trial)
        if record.state.name != "RUNNING":
            raise ExperimentError(f"trial {trial} of {self.name!r} is not running "
                                  f"({record.state.name.lower()}).")  # fmt: skip
        try:
            self._store().set_trial(record._trial_id, stop_requested=True)
        except Exception as err:
            raise ExperimentError(f"trial {trial} of {self.name!r} ended meanwhile.") from err

    def cancel(self) -> None:
        """Start no more trials and stop the running ones; a later run() resumes."""
        self._store().set(keys.CANCEL, __import__("time").time())

    # -- results --------------------------------------------------------------------------------
    @property
    def study(self) -> Any:
        """The Optuna study behind the experiment."""
        return self._store().study

    def records(self) -> list[TrialRecord]:
        """Every trial, as :class:`TrialRecord` objects, by trial number."""
        store = self._store()
        prefix = keys.ANNOTATION_PREFIX
        notes = {int(k[len(prefix) :]): v for k, v in store.attrs().items() if k.startswith(prefix)}
        return results_module.records(store.trials(), self.metric, notes)

    def trial(self, number: int) -> TrialRecord:
        """The record of trial ``number``."""
        for record in self.records():
            if record.number == number:
                return record
        raise ExperimentError(f"experiment {self.name!r} has no trial {number}.")

    def _trial_object(self, number: int) -> Any:
        for trial in self._store().trials():
            if trial.number == number:
                return trial
        raise ExperimentError(f"experiment {self.name!r} has no trial {number}.")

    def results(
        self,
        *,
        sort_by: str | None = None,
        ascending: bool | None = None,
        status: str | Sequence[str] | None = None,
        where: Callable[[dict], bool] | Mapping[str, Any] | None = None,
        as_records: bool = False,
    ) -> Any:
        """The results table: one row per trial (number, status, parameters, final and
        best metrics, duration, artifacts folder, annotation, error).

        A pandas DataFrame when pandas is installed (else, or with ``as_records=True``, a
        list of dicts). ``status`` keeps those statuses, ``where`` keeps rows matching a dict
        of values or a function of the row, ``sort_by`` sorts (the experiment's metric sorts
        best first by default).
        """
        if ascending is None:
            ascending = not (sort_by in (self.metric, f"best_{self.metric}")
                             and self.direction == "maximize")  # fmt: skip
        rows = [r.row() for r in self.records()]
        return results_module.table(rows, sort_by=sort_by, ascending=ascending, status=status,
                                    where=where, as_records=as_records)  # fmt: skip

    def best_or_none(self) -> TrialRecord | None:
        done = [r for r in self.records() if r.status in ("completed", "stopped")
                and r.value is not None]  # fmt: skip
        if not done:
            return None
        pick = max if self.direction == "maximize" else min
        return pick(done, key=lambda r: r.value)

    @property
    def best(self) -> TrialRecord:
        """The completed trial with the best value of the experiment's metric."""
        best = self.best_or_none()
        if best is None:
            raise ExperimentError(f"experiment {self.name!r} has no completed trial yet.")
        return best

    def counts(self) -> dict[str, int]:
        """How many trials have each status."""
        counts: dict[str, int] = {}
        for record in self.records():
            counts[record.status] = counts.get(record.status, 0) + 1
        return counts

    def export_csv(self, path: str | os.PathLike) -> Path:
        """Write the results table to a CSV file."""
        return results_module.export_csv(self.results(as_records=True), path)

    def annotate(self, trial: int, text: str) -> None:
        """Attach a note to a trial (shown in the results table; "" removes it)."""
        self._trial_object(trial)
        self._store().set(f"{keys.ANNOTATION_PREFIX}{trial}", str(text))

    def compare(
        self,
        trials: Sequence[int] | None = None,
        metric: str | None = None,
        path: str | os.PathLike = "compare.png",
    ) -> Path:
        """Plot ``metric`` (default: the experiment's) over iterations for several trials
        on one figure (default: the five best completed ones); returns the PNG path."""
        metric = metric or self.metric
        if trials is None:
            done = [
                r
                for r in self.records()
                if r.status in ("completed", "stopped") and r.value is not None
            ]
            chosen = sorted(done, key=lambda r: r.value, reverse=self.direction == "maximize")[:5]
        else:
            chosen = [self.trial(n) for n in trials]
        return results_module.plot_compare(chosen, metric, path)

    def plot_parallel_coordinates(self, path: str | os.PathLike = "parallel-coordinates.png",
                                  params: Sequence[str] | None = None) -> Path:  # fmt: skip
        """Optuna's parallel-coordinate plot of parameters against the metric, as a PNG."""
        return results_module.plot_optuna("parallel", self.study, path, params=params,
                                          target_name=self.metric)  # fmt: skip

    def plot_importance(self, path: str | os.PathLike = "parameter-importance.png",
                        evaluator: Any = None) -> Path:  # fmt: skip
        """Optuna's parameter-importance plot (default evaluator: PED-ANOVA), as a PNG."""
        return results_module.plot_optuna("importance", self.study, path, evaluator=evaluator,
                                          target_name=self.metric)  # fmt: skip

    def importance(self, evaluator: Any = None) -> dict[str, float]:
        """Importance of each swept parameter for the metric (Optuna's evaluators)."""
        import optuna

        try:
            return dict(optuna.importance.get_param_importances(self.study, evaluator=evaluator))
        except (RuntimeError, ValueError) as err:
            raise ExperimentError(f"parameter importance: {err}") from err

    # -- code and reproducibility ---------------------------------------------------------------
    def runs(self) -> list[int]:
        """Numbers of the runs recorded in the store."""
        return list(self._store().runs())

    def code(self, run: int | None = None) -> CodeSnapshot:
        """The code snapshot of run ``run`` (default: the latest; the current definition when
        never run): setup source, its file and SHA-256, parameters, package versions."""
        runs = self._store().runs() if _exists(self.url, self.name) else {}
        if run is None and not runs:
            return self._live_code()
        number = run if run is not None else max(runs)
        if number not in runs:
            raise ExperimentError(f"experiment {self.name!r} has no run {number}; runs: "
                                  f"{sorted(runs)}.")  # fmt: skip
        return CodeSnapshot.from_dict({k: v for k, v in runs[number].items()
                                       if k in CodeSnapshot.__dataclass_fields__})  # fmt: skip

    def rerun(self, trial: int, *, folder: str | os.PathLike | None = None) -> TrialRecord:
        """Run trial ``trial`` again in this process, exactly as recorded: its run's stored
        setup code, parameters, seed and CPU threads. Writes its files into ``folder`` (a new
        temporary folder by default); the store is not changed. Returns the new record."""
        import torch

        from deeptoolbox.experiments._monitor import Monitor
        from deeptoolbox.experiments._trial import run_body

        record = self.trial(trial)
        if record.seed is None:
            raise ExperimentError(f"trial {trial} of {self.name!r} never started; nothing to "
                                  "re-run.")  # fmt: skip
        setup = load_function(self.code(run=record.run).setup)
        folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        threads = torch.get_num_threads()
        torch.set_num_threads(record.threads or threads)
        try:
            outcome = run_body(setup, self.setup_kind, record.params, Monitor(artifacts=folder),
                               seed=record.seed, metric=self.metric, folder=folder,
                               direction=self.direction)  # fmt: skip
        finally:
            torch.set_num_threads(threads)
        return TrialRecord(number=record.number, status=outcome.status, params=record.params,
                           metrics=outcome.metrics, best=outcome.best,
                           value=outcome.metrics.get(self.metric), artifacts=folder,
                           run=record.run, seed=record.seed)  # fmt: skip

    def __repr__(self) -> str:
        return (f"Experiment({self.name!r}, strategy={self.strategy!r}, metric={self.metric!r}, "
                f"store={str(self.store)!r})")  # fmt: skip

    @classmethod
    def _from_store(cls, name: str, url: str, definition: dict, snapshot: dict) -> Experiment:
        experiment = cls.__new__(cls)
        sampler = definition.get("sampler") if definition.get("sampler") in ("tpe", "gp") else "tpe"
        pruner = "median" if definition.get("pruner") == "median" else None
        experiment._configure(
            name, definition["strategy"], definition.get("trials"), definition["metric"],
            definition["direction"], url, definition["seed"], definition.get("max_time"),
            definition.get("trial_max_time"), pruner, sampler, definition.get("artifacts") or False,
            definition.get("description", ""),
        )  # fmt: skip
        experiment.table = ParameterTable.from_dict(
            definition["parameters"], definition["strategy"]
        )
        experiment.setup_kind = definition["setup_kind"]
        experiment._setup = None
        experiment._setup_record = snapshot.get("setup")
        experiment._constraints = None
        experiment._constraint_records = list(snapshot.get("constraints") or [])
        return experiment


def _runner_can_fork() -> bool:
    from deeptoolbox.experiments._runner import can_fork

    return can_fork()


def _exists(url: str, name: str) -> bool:
    path = keys.sqlite_path(url)
    if path is not None and not path.exists():
        return False
    try:
        storage = open_storage(url)
        storage.get_study_id_from_name(name)
    except KeyError:
        return False
    return True


def load_experiment(name: str, store: str | os.PathLike = "experiments.db") -> Experiment:
    """Read experiment ``name`` back from ``store``: its results, code and, to run it again
    (or as a worker), its setup function from the stored code.

    Example:
        >>> import tempfile, pathlib
        >>> def setup(params, monitor):
        ...     return {"score": params["x"]}
        >>> store = pathlib.Path(tempfile.mkdtemp()) / "e.db"
        >>> _ = Experiment("x", setup, {"x": [1, 2]}, metric="score", store=store).run(
        ...     workers=0, verbose=False)
        >>> load_experiment("x", store=store).best.value
        2.0
    """
    url = store_url(store)
    storage = open_storage(url, create=False)
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        names = [s.study_name for s in storage.get_all_studies()]
        raise ExperimentError(f"the store {str(store)!r} holds no experiment {name!r}; it "
                              f"holds: {names}.") from None  # fmt: skip
    attrs = storage.get_study_user_attrs(study_id)
    definition = attrs.get(keys.DEFINITION)
    if definition is None:
        raise ExperimentError(f"{name!r} in {str(store)!r} is an Optuna study that deeptoolbox "
                              "did not create; open it with optuna.load_study.")  # fmt: skip
    runs = sorted(k for k in attrs if k.startswith(keys.RUN_PREFIX))
    snapshot = attrs[runs[-1]] if runs else {}
    return Experiment._from_store(name, url, definition, snapshot)


def list_experiments(store: str | os.PathLike = "experiments.db") -> list[dict[str, Any]]:
    """One summary per experiment in ``store``: name, strategy, metric, trial counts, best.

    Example:
        >>> import tempfile, pathlib
        >>> list_experiments(pathlib.Path(tempfile.mkdtemp()) / "none.db")
        []
    """
    url = store_url(store)
    if keys.sqlite_path(url) is not None and not keys.sqlite_path(url).exists():
        return []
    storage = open_storage(url)
    summaries = []
    for study in storage.get_all_studies():
        definition = study.user_attrs.get(keys.DEFINITION)
        if definition is None:
            continue
        experiment = load_experiment(study.study_name, store)
        best = experiment.best_or_none()
        summaries.append({
            "name": study.study_name, "strategy": definition["strategy"],
            "metric": definition["metric"], "direction": definition["direction"],
            "counts": experiment.counts(), "best": best.value if best else None,
            "best_trial": best.number if best else None, "created": definition.get("created"),
            "runs": len(experiment.runs()),
        })  # fmt: skip
    return summaries


def delete_experiment(name: str, store: str | os.PathLike = "experiments.db") -> None:
    """Remove experiment ``name`` and its trials from ``store`` (its files stay on disk).

    Example:
        >>> import tempfile, pathlib
        >>> store = pathlib.Path(tempfile.mkdtemp()) / "e.db"
        >>> def setup(params, monitor):
        ...     return {"score": 1.0}
        >>> _ = Experiment("gone", setup, {"x": [1]}, metric="score", store=store).run(
        ...     workers=0, verbose=False)
        >>> delete_experiment("gone", store); list_experiments(store)
        []
    """
    storage = open_storage(store_url(store), create=False)
    try:
        storage.delete_study(storage.get_study_id_from_name(name))
    except KeyError:
        raise ExperimentError(f"the store {str(store)!r} holds no experiment {name!r}.") from None
