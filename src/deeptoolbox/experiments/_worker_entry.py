"""A worker's command line: ``deeptoolbox experiment worker STORE NAME`` and
``python -m deeptoolbox.experiments._worker_entry`` (how exp.run starts workers that are not
forked). The worker itself is :mod:`deeptoolbox.experiments._worker`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from deeptoolbox.experiments import _store as keys
from deeptoolbox.experiments._experiment import load_experiment
from deeptoolbox.experiments._worker import WorkerJob, work
from deeptoolbox.experiments._worker_args import add_worker_arguments


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m deeptoolbox.experiments._worker_entry STORE NAME [options]``."""
    parser = argparse.ArgumentParser(prog="deeptoolbox experiment worker")
    add_worker_arguments(parser)
    return run_worker_command(parser.parse_args(argv))


def run_worker_command(args: argparse.Namespace) -> int:
    experiment = load_experiment(args.name, store=args.store)
    job = WorkerJob(run=args.run, slot=args.slot, threads=args.threads, parent_pid=args.parent,
                    max_trials=args.max_trials, stale=args.stale,
                    processes_per_trial=args.processes_per_trial)  # fmt: skip
    count = work(experiment, job)
    print(f"worker {keys.HOST}:{os.getpid()} ran {count} trial(s) of {args.name!r}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
