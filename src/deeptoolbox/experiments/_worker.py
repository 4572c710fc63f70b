"""A worker: claims trials of one experiment from its store and runs them, one at a time.

Started by ``exp.run(workers=N)`` (forked, or as ``python -m deeptoolbox.experiments._worker_entry``)
or by ``deeptoolbox experiment worker STORE_URL NAME`` on any machine that reaches the store.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

from deeptoolbox.errors import MetricMissing
from deeptoolbox.experiments import _store as keys
from deeptoolbox.experiments._ddp import TrialGroup
from deeptoolbox.experiments._engine import Store, artifacts_folder, trial_seed
from deeptoolbox.experiments._monitor import Monitor
from deeptoolbox.experiments._parameters import satisfies
from deeptoolbox.experiments._trial import run_body

__all__ = ["WorkerJob", "work", "forked_worker"]

POLL_SECONDS = 1.0
PUSH_SECONDS = 2.0


@dataclass
class WorkerJob:
    """How one worker runs: which run it belongs to, its slot, threads, limits."""

    run: int | None = None
    slot: int = 0
    threads: int | None = None
    parent_pid: int | None = None
    max_trials: int | None = None
    stale: str = "requeue"
    gpu: str | None = None
    processes_per_trial: int = 1


class _Link:
    """Between a trial's Monitor and the store: reports, progress, stop requests, heartbeat."""

    def __init__(self, store: Store, trial: Any, metric: str, time_limit: float | None) -> None:
        self.store, self.trial, self.metric, self.time_limit = store, trial, metric, time_limit
        self.started = time.monotonic()
        self.reason: str | None = None
        self.last_poll = self.last_push = 0.0
        self.done = threading.Event()
        self.beat = threading.Thread(target=self._heartbeat, daemon=True)
        self.beat.start()

    def _heartbeat(self) -> None:
        while not self.done.wait(keys.HEARTBEAT_SECONDS):
            # the trial may have ended meanwhile, or the store be briefly away
            with contextlib.suppress(Exception):
                self.store.set_trial(self.trial._trial_id, heartbeat=time.time())

    def report(self, step: int, value: float, prune: bool) -> bool:
        self.trial.report(value, step)
        return prune and self.trial.should_prune()

    def push(self, monitor: Monitor, force: bool) -> None:
        """Send the monitor's progress, info, latest metric values and curves to the store
        (at most every PUSH_SECONDS unless forced), so a running trial shows its progress."""
        now = time.monotonic()
        if not force and now - self.last_push < PUSH_SECONDS:
            return
        self.last_push = now
        plain = json.loads(json.dumps(monitor.info_values, default=str))
        self.store.set_trial(self.trial._trial_id, progress=monitor.progress, info=plain,
                             metrics=monitor.latest(), curves=monitor.curves())  # fmt: skip

    def stop_reason(self) -> str | None:
        now = time.monotonic()
        if self.reason is not None or now - self.last_poll < POLL_SECONDS:
            return self.reason
        self.last_poll = now
        if self.time_limit is not None and now - self.started > self.time_limit:
            self.reason = "trial time limit"
        elif self.store.storage.get_trial(self.trial._trial_id).user_attrs.get("stop_requested"):
            self.reason = "stopped by user"
        else:
            halted = self.store.halted()
            if halted is not None:
                self.reason = "experiment time limit" if "time limit" in halted else "cancelled"
        return self.reason

    def close(self) -> None:
        self.done.set()


def _suggest(trial: Any, name: str, distribution: Any) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(name, distribution.low, distribution.high,
                                   log=distribution.log, step=distribution.step)  # fmt: skip
    return trial.suggest_int(name, distribution.low, distribution.high, log=distribution.log,
                             step=distribution.step)  # fmt: skip


def execute(experiment: Any, store: Store, trial: Any, job: WorkerJob) -> str:
    """Run one claimed trial to its end and record it. Returns its status."""
    import torch

    table = experiment.table
    swept = {n: _suggest(trial, n, d) for n, d in table.distributions().items()}
    params = {**table.fixed, **swept}
    trial_id = trial._trial_id
    if experiment.strategy == "bayesian" and not satisfies(experiment.constraint_functions,
                                                           params):  # fmt: skip
        store.set_trial(trial_id, params=params, status="skipped", error="violates a constraint")
        _tell(store, trial, "PRUNED")
        return "skipped"
    seed = trial_seed(experiment.seed, trial.number)
    folder = artifacts_folder(experiment, trial.number)
    store.set_trial(
        trial_id, params=params, host=keys.HOST, pid=os.getpid(), run=job.run, seed=seed,
        threads=torch.get_num_threads(), artifacts=str(folder) if folder else None,
        status="running",
        heartbeat=time.time(),
    )  # fmt: skip
    link = _Link(store, trial, experiment.metric, experiment.trial_max_time)
    monitor = Monitor(artifacts=folder, link=link)
    started = time.time()
    group = None
    if job.processes_per_trial > 1:
        group = TrialGroup(experiment.url, experiment.name, trial.number,
                           job.processes_per_trial, _share(job))  # fmt: skip
    try:
        outcome = run_body(experiment.setup, experiment.setup_kind, params, monitor, seed=seed,
                           metric=experiment.metric, folder=folder, group=group,
                           direction=experiment.direction)  # fmt: skip
    except MetricMissing as err:
        _fail(store, trial, "failed", err, started)
        store.set(keys.HALT, f"trial {trial.number}: {err}")
        return "halted"
    except KeyboardInterrupt:
        _fail(store, trial, "cancelled", "interrupted", started, requeue=True)
        raise
    except Exception as err:
        _fail(store, trial, "failed", err, started)
        return "failed"
    finally:
        link.close()
    from optuna.exceptions import UpdateFinishedTrialError

    try:
        return _record(experiment, store, trial, outcome, started, monitor)
    except UpdateFinishedTrialError:
        return "ended elsewhere"  # another process judged it stale meanwhile


def _share(job: WorkerJob) -> int | None:
    """Torch threads of each of a trial's processes: the worker's share, split."""
    return max(1, job.threads // job.processes_per_trial) if job.threads else None


def _record(experiment, store: Store, trial, outcome, started: float, monitor: Monitor) -> str:
    store.set_trial(
        trial._trial_id, metrics=outcome.metrics, best=outcome.best, status=outcome.status,
        duration=time.time() - started, files=outcome.files, error=outcome.reason,
        progress=monitor.progress, info=json.loads(json.dumps(monitor.info_values, default=str)),
        curves=monitor.curves(),
    )  # fmt: skip
    value = outcome.metrics.get(experiment.metric)
    if outcome.status == "pruned":
        _tell(store, trial, "PRUNED")
    elif outcome.status == "cancelled" or value is None:
        requeue = outcome.status == "cancelled"
        store.set_trial(trial._trial_id, requeued=requeue)
        _tell(store, trial, "FAIL")
        if requeue:
            store.study.enqueue_trial(
                trial.params,
                user_attrs={
                    "params": {**experiment.table.fixed, **trial.params},
                    "requeue_of": trial.number,
                },
            )
    else:
        _tell(store, trial, "COMPLETE", value)
    return outcome.status


def _fail(store: Store, trial, status: str, err: Any, started: float, requeue=False) -> None:
    text = f"{type(err).__name__}: {err}" if isinstance(err, BaseException) else str(err)
    details = traceback.format_exc() if isinstance(err, BaseException) else None
    try:
        store.set_trial(trial._trial_id, status=status, error=text, traceback=details,
                        duration=time.time() - started, requeued=requeue)  # fmt: skip
    except Exception:
        return  # ended from outside meanwhile (time limit, cancel)
    _tell(store, trial, "FAIL")
    if requeue:
        store.study.enqueue_trial(
            trial.params, user_attrs={"requeue_of": trial.number, "params": trial.params}
        )


def _tell(store: Store, trial: Any, state: str, value: float | None = None) -> None:
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        if state == "COMPLETE":
            store.study.tell(trial, value)
        else:
            store.study.tell(trial, state=getattr(TrialState, state))
    except (UpdateFinishedTrialError, RuntimeError, ValueError):
        pass  # the parent already recorded this trial (time limit, cancel)


def watch_parent(parent_pid: int) -> None:
    """End this worker when the run that started it is gone (kill -9 of the run)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(70)

    threading.Thread(target=watch, daemon=True).start()


def prepare_process(job: WorkerJob) -> None:
    if job.gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = job.gpu
    if job.threads:
        import torch

        torch.set_num_threads(job.threads)
    if job.parent_pid is not None:
        watch_parent(job.parent_pid)


def work(experiment: Any, job: WorkerJob, store: Store | None = None) -> int:
    """Run trials of ``experiment`` until none is left; returns how many this worker ran."""
    prepare_process(job)
    store = store or Store(experiment, slot=job.slot)
    if job.run is None:
        job.run = max(store.runs(), default=None)
    count = 0
    while job.max_trials is None or count < job.max_trials:
        store.sweep_stale(job.stale)
        trial = store.claim()
        if trial is None:
            break
        status = execute(experiment, store, trial, job)
        count += 1
        if status == "halted":
            break
    return count


def forked_worker(experiment: Any, job: WorkerJob) -> None:
    """Entry point of a worker forked by exp.run (it already holds the experiment)."""
    sys.exit(0 if work(experiment, job) >= 0 else 1)
