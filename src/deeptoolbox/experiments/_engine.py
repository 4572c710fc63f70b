"""The store side of running an experiment: the Optuna study, queueing trials, claiming the
next one, stale (crashed) trials, control flags. Shared by the parent run and the workers."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deeptoolbox.errors import ExperimentError, OptionError
from deeptoolbox.experiments import _store as keys
from deeptoolbox.experiments._parameters import satisfies
from deeptoolbox.experiments._store import open_storage, quiet_optuna

__all__ = ["Store", "pid_alive", "trial_seed"]

# definition entries that must not change between runs of one experiment
FROZEN = ("strategy", "metric", "direction", "parameters", "seed", "setup_kind")


def trial_seed(seed: int, number: int) -> int:
    """The random seed of trial ``number`` (recorded; a re-run uses it)."""
    return (seed * 1_000_003 + number) % 2**31


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` of this machine runs (zombies count as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def make_sampler(experiment: Any, slot: int = 0) -> Any:
    import optuna

    seed = experiment.seed + 7919 * slot
    if experiment.strategy in ("exhaustive", "random"):
        # every trial is queued up front with its parameters (see Store._queue): each
        # combination runs exactly once however many workers pull from the queue, which
        # Optuna's GridSampler does not promise in distributed runs
        return optuna.samplers.RandomSampler(seed=seed)
    sampler = experiment.sampler
    if not isinstance(sampler, str):
        return sampler
    if sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)


def make_pruner(experiment: Any) -> Any:
    import optuna

    pruner = experiment.pruner
    if pruner is None:
        return optuna.pruners.NopPruner()
    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    return pruner


class Store:
    """An experiment's study in its store, opened in this process."""

    def __init__(self, experiment: Any, *, create: bool = False, slot: int = 0) -> None:
        import optuna

        quiet_optuna()
        self.experiment = experiment
        self.storage = open_storage(experiment.url, create=create)
        options = {
            "study_name": experiment.name,
            "storage": self.storage,
            "sampler": make_sampler(experiment, slot),
            "pruner": make_pruner(experiment),
        }
        try:
            if create:
                self.study = optuna.create_study(
                    direction=experiment.direction, load_if_exists=True, **options
                )
            else:
                self.study = optuna.load_study(**options)
        except KeyError:
            raise ExperimentError(
                f"the store {experiment.url!r} holds no experiment {experiment.name!r}."
            ) from None
        self.storage = self.study._storage  # Optuna's cache over the RDB storage: use one view
        self.study_id = self.storage.get_study_id_from_name(experiment.name)

    # -- attributes -----------------------------------------------------------------------------
    def attrs(self) -> dict[str, Any]:
        return self.storage.get_study_user_attrs(self.study_id)

    def set(self, key: str, value: Any) -> None:
        self.storage.set_study_user_attr(self.study_id, key, value)

    def trials(self, states: tuple | None = None) -> list[Any]:
        return self.storage.get_all_trials(self.study_id, deepcopy=False, states=states)

    def set_trial(self, trial_id: int, **values: Any) -> None:
        for key, value in values.items():
            self.storage.set_trial_user_attr(trial_id, key, value)

    def halted(self) -> str | None:
        """Why no new trial may start now (None: trials may start)."""
        attrs = self.attrs()
        if attrs.get(keys.HALT):
            return f"halted: {attrs[keys.HALT]}"
        if attrs.get(keys.CANCEL):
            return "cancelled"
        deadline = attrs.get(keys.DEADLINE)
        if deadline is not None and time.time() >= deadline:
            return "experiment time limit"
        return None

    def runs(self) -> dict[int, dict[str, Any]]:
        prefix = keys.RUN_PREFIX
        return {int(k[len(prefix) :]): v for k, v in sorted(self.attrs().items())
                if k.startswith(prefix)}  # fmt: skip

    # -- preparing a run ------------------------------------------------------------------------
    def prepare(self, definition: dict[str, Any], snapshot: dict[str, Any]) -> int:
        """Record the definition (first run) or check it did not change; queue trials; record
        the run's code snapshot; clear the control flags. Returns the run number."""
        stored = self.attrs().get(keys.DEFINITION)
        if stored is None:
            self.set(keys.DEFINITION, definition)
            queued = 0
        else:
            _check_same(self.experiment.name, stored, definition)
            queued = int(stored.get("queued", 0))
        queued = self._queue(queued)
        self.set(keys.DEFINITION, {**definition, "queued": queued,
                                   "created": (stored or definition).get("created")})  # fmt: skip
        run = max(self.runs(), default=0) + 1
        self.set(f"{keys.RUN_PREFIX}{run:04d}", {**snapshot, "run": run})
        max_time = self.experiment.max_time
        self.set(keys.DEADLINE, time.time() + max_time if max_time else None)
        self.set(keys.CANCEL, False)
        self.set(keys.HALT, None)
        return run

    def _queue(self, queued: int) -> int:
        experiment = self.experiment
        if experiment.strategy == "exhaustive":
            combos = experiment.table.grid(experiment.constraint_functions)
            if not combos:
                raise OptionError(
                    f"Experiment {experiment.name!r}: the constraints reject every combination "
                    "of the parameter table."
                )
        elif experiment.strategy == "random":
            combos = _random_samples(experiment, experiment.trials)
        else:
            return 0
        for params in combos[queued:]:
            self.study.enqueue_trial(params, user_attrs={"params": {**experiment.table.fixed,
                                                                   **params}})  # fmt: skip
        return max(queued, len(combos))

    # -- claiming trials ------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Trials that count towards the budget, running, and queued."""
        from optuna.trial import TrialState

        counted = running = waiting = 0
        for trial in self.trials():
            if trial.state == TrialState.WAITING:
                waiting += 1
            elif trial.state == TrialState.RUNNING:
                running += 1
            elif not trial.user_attrs.get("requeued") and trial.user_attrs.get("status") != (
                "skipped"
            ):
                counted += 1
        return {"counted": counted, "running": running, "waiting": waiting}

    def may_sample(self) -> bool:
        """Bayesian strategy: whether the budget leaves room for a new sampled trial."""
        if self.experiment.strategy != "bayesian":
            return False
        budget = self.experiment.trials
        counts = self.counts()
        return budget is None or counts["counted"] + counts["running"] + counts["waiting"] < budget

    def work_remains(self) -> bool:
        if self.halted():
            return False
        return bool(self.counts()["waiting"]) or self.may_sample()

    def claim(self) -> Any:
        """The next trial to run (a queued one first), marked running; None when done."""
        import optuna
        from optuna.trial import TrialState

        # halted() is checked right before each claim: the slower reads (the queue, the
        # budget) come first, so a trial cannot start past the time limit they took to read
        for frozen in sorted(self.trials((TrialState.WAITING,)), key=lambda t: t.number):
            if self.halted():
                return None
            if self.storage.set_trial_state_values(frozen._trial_id, state=TrialState.RUNNING):
                return optuna.trial.Trial(self.study, frozen._trial_id)
        if self.may_sample() and not self.halted():
            return self.study.ask()
        return None

    # -- crashed trials -------------------------------------------------------------------------
    def sweep_stale(self, stale: str, dead_pids: Callable[[int], bool] | None = None) -> list:
        """Fail (and with stale='requeue' queue again) running trials whose worker is gone:
        a dead process on this machine, or no heartbeat from another machine for a while."""
        from optuna.trial import TrialState

        crashed = []
        for trial in self.trials((TrialState.RUNNING,)):
            host, pid = trial.user_attrs.get("host"), trial.user_attrs.get("pid")
            if host == keys.HOST and isinstance(pid, int):
                gone = (dead_pids(pid) if dead_pids is not None else False) or not pid_alive(pid)
            else:
                beat = trial.user_attrs.get("heartbeat") or _started(trial)
                gone = beat is not None and time.time() - beat > keys.GRACE_SECONDS
            if gone and self.end_trial(
                trial,
                "crashed",
                f"worker {host}:{pid} stopped before the trial ended",
                requeue=stale == "requeue",
            ):
                crashed.append(trial.number)
        return crashed

    def end_trial(self, trial: Any, status: str, reason: str, *, requeue: bool) -> bool:
        """Record a running trial as failed from outside its worker; queue a copy."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        try:
            self.set_trial(trial._trial_id, status=status, error=reason, requeued=requeue)
            if not self.storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                return False
        except UpdateFinishedTrialError:
            return False  # its worker or another process ended it first
        if requeue:
            # a trial that died between its claim and its first suggestion has no params yet
            params = trial.params or trial.system_attrs.get("fixed_params") or {}
            fixed = self.experiment.table.fixed
            self.study.enqueue_trial(params, user_attrs={"params": {**fixed, **params},
                                                         "requeue_of": trial.number})  # fmt: skip
        return True


def _started(trial: Any) -> float | None:
    return trial.datetime_start.timestamp() if trial.datetime_start else None


def _check_same(name: str, stored: dict[str, Any], definition: dict[str, Any]) -> None:
    changed = [key for key in FROZEN if stored.get(key) != definition.get(key)]
    if changed:
        details = "; ".join(f"{k}: stored {stored.get(k)!r}, now {definition.get(k)!r}"
                            for k in changed)  # fmt: skip
        raise ExperimentError(
            f"the store already holds an experiment {name!r} with another {', '.join(changed)} "
            f"({details}). Give this experiment another name, or delete the old one "
            "(deeptoolbox.experiments.delete_experiment)."
        )


def _random_samples(experiment: Any, count: int) -> list[dict[str, Any]]:
    """The first ``count`` parameter sets of Optuna's RandomSampler seeded with the
    experiment's seed that pass the constraints (the same list however many workers)."""
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=experiment.seed))
    distributions = experiment.table.distributions()
    samples: list[dict[str, Any]] = []
    for _attempt in range(100 * count + 1000):
        if len(samples) == count:
            break
        trial = study.ask(distributions)
        study.tell(trial, 0.0)
        if satisfies(experiment.constraint_functions, {**experiment.table.fixed, **trial.params}):
            samples.append(dict(trial.params))
    if len(samples) < count:
        raise OptionError(
            f"Experiment {experiment.name!r}: the constraints reject almost every random sample "
            f"({len(samples)} of {count} found). Loosen them or widen the ranges."
        )
    return samples


def artifacts_folder(experiment: Any, number: int) -> Path | None:
    if experiment.artifacts is None:
        return None
    return Path(experiment.artifacts) / experiment.name / f"trial-{number:04d}"
