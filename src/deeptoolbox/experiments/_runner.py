"""exp.run(): start worker processes, watch them (crashes, time limits, cancel) and report."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from deeptoolbox.errors import ExperimentError
from deeptoolbox.experiments import _store as keys
from deeptoolbox.experiments._engine import Store
from deeptoolbox.experiments._worker import WorkerJob, forked_worker, work

__all__ = ["RunSummary", "run_experiment", "gpu_assignment"]

WATCH_SECONDS = 0.5


@dataclass
class RunSummary:
    """What one ``exp.run()`` did: its number, the trials' statuses, the best trial.

    Example:
        >>> RunSummary(run=1, counts={"completed": 6}, seconds=12.0).counts["completed"]
        6
    """

    run: int
    counts: dict[str, int] = field(default_factory=dict)
    best: Any = None
    seconds: float = 0.0
    crashed: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(self.counts.items()))
        best = f"; best: trial {self.best.number} {self.best.value:.6g}" if self.best else ""
        return f"run {self.run}: {counts or 'no trials'} in {self.seconds:.1f} s{best}"


def gpu_assignment(
    workers: int, visible: str | None, count: int, per_worker: int = 1
) -> list[str | None]:
    """The CUDA_VISIBLE_DEVICES of each worker: GPUs round-robin (None without GPUs),
    ``per_worker`` of them each (a trial trained by that many processes).

    Example:
        >>> gpu_assignment(3, None, 2)
        ['0', '1', '0']
        >>> gpu_assignment(2, "4,6", 2), gpu_assignment(2, None, 0)
        (['4', '6'], [None, None])
        >>> gpu_assignment(2, None, 4, per_worker=2)
        ['0,1', '2,3']
    """
    if count <= 0:
        return [None] * workers
    ids = [v.strip() for v in visible.split(",")] if visible else [str(i) for i in range(count)]
    ids = ids[:count] or [str(i) for i in range(count)]
    return [",".join(ids[(slot * per_worker + k) % len(ids)] for k in range(per_worker))
            for slot in range(workers)]  # fmt: skip


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:
        return 0


class _Worker:
    """A worker process: forked (it inherits the experiment) or a fresh interpreter."""

    def __init__(self, experiment: Any, job: WorkerJob, fork: bool) -> None:
        self.job = job
        sys.stdout.flush()
        sys.stderr.flush()
        if fork:
            self.process = multiprocessing.get_context("fork").Process(
                target=forked_worker, args=(experiment, job), daemon=False
            )
            self.process.start()
            self.pid = self.process.pid
        else:
            env = dict(os.environ)
            if job.gpu is not None:
                env["CUDA_VISIBLE_DEVICES"] = job.gpu
            command = [sys.executable, "-m", "deeptoolbox.experiments._worker_entry", experiment.url,
                       experiment.name, "--run", str(job.run), "--slot", str(job.slot),
                       "--stale", job.stale, "--parent", str(os.getpid())]  # fmt: skip
            if job.threads:
                command += ["--threads", str(job.threads)]
            if job.processes_per_trial > 1:
                command += ["--processes-per-trial", str(job.processes_per_trial)]
            self.process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
            self.pid = self.process.pid

    def exit_code(self) -> int | None:
        if isinstance(self.process, subprocess.Popen):
            return self.process.poll()
        return None if self.process.is_alive() else self.process.exitcode

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        if isinstance(self.process, subprocess.Popen):
            self.process.wait()
        else:
            self.process.join()


def can_fork() -> bool:
    """Forking is fast (no new interpreter) but only safe before CUDA starts in this process."""
    if "fork" not in multiprocessing.get_all_start_methods() or sys.platform == "darwin":
        return False
    torch = sys.modules.get("torch")
    return torch is None or not torch.cuda.is_initialized()


def run_experiment(experiment: Any, store: Store, run: int, workers: int, stale: str,
                   verbose: bool, start_method: str | None,
                   processes: int = 1) -> RunSummary:  # fmt: skip
    """Run the trials of ``experiment`` (already prepared as run number ``run``)."""
    started = time.time()
    crashed = store.sweep_stale(stale)
    reporter = _Reporter(experiment, store, verbose)
    if workers == 0:
        import torch

        job = WorkerJob(run=run, threads=torch.get_num_threads(), stale=stale,
                        processes_per_trial=processes)  # fmt: skip
        work(experiment, job, store=store)
    else:
        crashed += _supervise(experiment, store, run, workers, stale, start_method, reporter,
                              processes)  # fmt: skip
    reporter.poll()
    halt = store.attrs().get(keys.HALT)
    if halt:
        raise ExperimentError(f"experiment {experiment.name!r} stopped: {halt}")
    summary = RunSummary(run, experiment.counts(), experiment.best_or_none(),
                         time.time() - started, crashed)  # fmt: skip
    if verbose:
        print(f"[{experiment.name}] {summary}", flush=True)
    return summary


def _warm_up() -> None:
    """Import in the parent what the first training step and the trial files import, so
    forked workers inherit it instead of each importing it again (seconds per worker)."""
    import importlib

    for name in ("torch._dynamo", "matplotlib.figure", "matplotlib.backends.backend_agg",
                 "deeptoolbox.training", "safetensors.torch"):  # fmt: skip
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _supervise(experiment, store: Store, run, workers, stale, start_method, reporter,
               processes: int = 1) -> list:  # fmt: skip
    fork = can_fork() if start_method is None else start_method == "fork"
    if fork:
        _warm_up()
    threads = max(1, (os.cpu_count() or 1) // workers)
    gpus = gpu_assignment(workers, os.environ.get("CUDA_VISIBLE_DEVICES"), _gpu_count(),
                          per_worker=processes)  # fmt: skip
    jobs = [WorkerJob(run=run, slot=s, threads=threads, parent_pid=os.getpid(), stale=stale,
                      gpu=gpus[s], processes_per_trial=processes)
            for s in range(workers)]  # fmt: skip
    pool = {job.slot: _Worker(experiment, job, fork) for job in jobs}
    crashed: list[int] = []
    restarts = 0
    try:
        while pool:
            time.sleep(WATCH_SECONDS)
            reporter.poll()
            _enforce_limits(experiment, store, pool)
            for slot, worker in list(pool.items()):
                code = worker.exit_code()
                if code is None:
                    continue
                del pool[slot]
                if code != 0:
                    crashed += store.sweep_stale(stale, dead_pids=lambda p, w=worker: p == w.pid)
                    if store.work_remains() and restarts < 3 * workers:
                        restarts += 1
                        pool[slot] = _Worker(experiment, worker.job, fork)
            if not pool and store.work_remains() and restarts < 3 * workers:
                restarts += 1  # a trial crashed after every other worker had left
                pool[0] = _Worker(experiment, jobs[0], fork)
    except KeyboardInterrupt:
        store.set(keys.CANCEL, time.time())
        _stop_all(store, pool, stale, "cancelled: interrupted")
        raise
    return crashed


def _enforce_limits(experiment, store: Store, pool: dict[int, _Worker]) -> None:
    """Kill a worker whose trial is past its time limit (plus a grace to stop by itself), or
    all of them when the experiment's time is up or it was cancelled and they do not stop."""
    from optuna.trial import TrialState

    limit = experiment.trial_max_time
    halted = store.halted()
    if limit is None and halted is None:
        return
    by_pid = {w.pid: w for w in pool.values()}
    now = time.time()
    for trial in store.trials((TrialState.RUNNING,)):
        worker = by_pid.get(trial.user_attrs.get("pid"))
        if worker is None or trial.datetime_start is None:
            continue
        elapsed = now - trial.datetime_start.timestamp()
        if limit is not None and elapsed > limit + _grace(limit):
            status, reason = "failed", f"trial time limit of {limit:g} s reached"
        elif halted is not None and now - _halted_since(store, halted) > _grace(limit or 60):
            status, reason = ("cancelled", "cancelled") if halted == "cancelled" else (
                "stopped", "experiment time limit")  # fmt: skip
        else:
            continue
        worker.kill()
        store.end_trial(trial, status, reason, requeue=status == "cancelled")


def _grace(limit: float) -> float:
    return max(5.0, 0.1 * limit)


def _halted_since(store: Store, halted: str) -> float:
    """When trials were asked to stop (cancel time or deadline); a halt lets them finish."""
    attrs = store.attrs()
    if halted == "cancelled":
        return float(attrs.get(keys.CANCEL) or 0.0)
    if halted == "experiment time limit":
        return float(attrs.get(keys.DEADLINE) or 0.0)
    return time.time()


def _stop_all(store: Store, pool: dict[int, _Worker], stale: str, reason: str) -> None:
    deadline = time.time() + 5.0
    while time.time() < deadline and any(w.exit_code() is None for w in pool.values()):
        time.sleep(0.2)
    for worker in pool.values():
        if worker.exit_code() is None:
            worker.kill()
    store.sweep_stale(stale)


class _Reporter:
    """Prints one line per trial that ends while the run goes."""

    def __init__(self, experiment: Any, store: Store, verbose: bool) -> None:
        self.experiment, self.store, self.verbose = experiment, store, verbose
        self.seen = {t.number for t in store.trials() if t.state.is_finished()}

    def poll(self) -> None:
        if not self.verbose:
            return
        for trial in self.store.trials():
            if trial.state.is_finished() and trial.number not in self.seen:
                self.seen.add(trial.number)
                print(f"[{self.experiment.name}] {_line(self.experiment, trial)}", flush=True)


def _line(experiment: Any, trial: Any) -> str:
    attrs = trial.user_attrs
    status = attrs.get("status") or trial.state.name.lower()
    params = ", ".join(f"{k}={v!r}" for k, v in (attrs.get("params") or trial.params).items())
    value = (attrs.get("metrics") or {}).get(experiment.metric)
    shown = f" {experiment.metric}={value:.6g}" if isinstance(value, float) else ""
    error = f" ({attrs.get('error')})" if status in ("failed", "crashed") else ""
    return f"trial {trial.number} {status}{shown} [{params}]{error}"
