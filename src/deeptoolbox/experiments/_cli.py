"""``deeptoolbox experiment ...``: run, list, show, export, diff, resume, worker, stop, cancel.

Only argparse is imported here; the experiment code loads when a command runs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import types
from pathlib import Path
from typing import Any

from deeptoolbox.experiments._worker_args import add_worker_arguments

__all__ = ["add_experiment_parser", "run_experiment_command", "load_spec"]

DEFAULT_STORE = "experiments.db"


def add_experiment_parser(commands: Any) -> None:
    """Add the ``experiment`` command group to the top-level subparsers."""
    group = commands.add_parser("experiment", help="run and inspect experiments (sweeps)")
    sub = group.add_subparsers(dest="experiment_command", required=True)

    def store_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--store", default=None, help="SQLite file or database URL "
                            f"(default: the spec's, else {DEFAULT_STORE})")  # fmt: skip

    run = sub.add_parser("run", help="run the experiment(s) a spec file defines")
    run.add_argument("spec", help="a .py file defining Experiment objects")
    run.add_argument("--workers", type=int, default=1, help="worker processes (0: this one)")
    run.add_argument(
        "--processes-per-trial",
        type=int,
        default=1,
        help="processes that train each trial data-parallel (default: 1)",
    )
    run.add_argument("--name", default=None, help="only the experiment with this name")
    run.add_argument(
        "--stale",
        choices=("requeue", "fail"),
        default="requeue",
        help="trials left running by a dead run (default: requeue)",
    )
    run.add_argument(
        "--create-only",
        action="store_true",
        help="record and queue the trials; `experiment worker` processes run them",
    )
    run.add_argument("--quiet", action="store_true", help="no line per trial")
    store_option(run)

    listing = sub.add_parser("list", help="the experiments in a store")
    store_option(listing)

    show = sub.add_parser("show", help="the results table and best trial of an experiment")
    show.add_argument("name")
    show.add_argument("--sort", default=None, help="sort by this column")
    store_option(show)

    export = sub.add_parser("export", help="write an experiment's results table")
    export.add_argument("name")
    export.add_argument("--csv", required=True, help="CSV file to write")
    store_option(export)

    diff = sub.add_parser("diff", help="unified diff of two experiments' code (NAME or NAME:RUN)")
    diff.add_argument("first")
    diff.add_argument("second")
    store_option(diff)

    resume = sub.add_parser("resume", help="finish an experiment from its stored code")
    resume.add_argument("name")
    resume.add_argument("--workers", type=int, default=1)
    resume.add_argument("--processes-per-trial", type=int, default=1)
    resume.add_argument("--stale", choices=("requeue", "fail"), default="requeue")
    resume.add_argument("--quiet", action="store_true")
    store_option(resume)

    worker = sub.add_parser("worker", help="pull trials from a shared store (any machine)")
    add_worker_arguments(worker)

    stop = sub.add_parser("stop", help="ask a running trial to stop")
    stop.add_argument("name")
    stop.add_argument("trial", type=int)
    store_option(stop)

    cancel = sub.add_parser("cancel", help="start no more trials and stop the running ones")
    cancel.add_argument("name")
    store_option(cancel)


def load_spec(path: str | os.PathLike) -> list[Any]:
    """The Experiment objects a spec file defines (it runs as a module, not as __main__)."""
    from deeptoolbox.errors import ExperimentError
    from deeptoolbox.experiments._experiment import Experiment

    path = Path(path).resolve()
    if not path.is_file():
        raise ExperimentError(f"experiment run: the spec file {str(path)!r} does not exist.")
    source = path.read_text()
    name = f"deeptoolbox_spec_{hashlib.sha256(source.encode()).hexdigest()[:12]}"
    module = sys.modules.get(name) or types.ModuleType(name)
    if name not in sys.modules:
        module.__file__ = str(path)
        sys.modules[name] = module
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        exec(compile(source, str(path), "exec"), module.__dict__)
    found = [v for v in vars(module).values() if isinstance(v, Experiment)]
    if not found:
        raise ExperimentError(
            f"experiment run: {str(path)!r} defines no Experiment. Define one at the top level, "
            "e.g. `experiment = Experiment('name', setup, {'lr': [0.01, 0.1]})`."
        )
    return found


def _store(args: argparse.Namespace) -> str:
    return args.store or DEFAULT_STORE


def run_experiment_command(args: argparse.Namespace) -> int:
    """Run one ``deeptoolbox experiment`` subcommand; returns the exit status."""
    command = args.experiment_command
    handlers = {
        "run": _run,
        "list": _list,
        "show": _show,
        "export": _export,
        "diff": _diff,
        "resume": _resume,
        "worker": _worker,
        "stop": _stop,
        "cancel": _cancel,
    }
    return handlers[command](args)


def _run(args: argparse.Namespace) -> int:
    from deeptoolbox.errors import ExperimentError

    experiments = load_spec(args.spec)
    if args.name is not None:
        experiments = [e for e in experiments if e.name == args.name]
        if not experiments:
            raise ExperimentError(f"experiment run: {args.spec!r} defines no {args.name!r}.")
    for experiment in experiments:
        if args.store:
            experiment = _with_store(experiment, args.store)
        if args.create_only:
            run = experiment.create()
            print(
                f"{experiment.name}: run {run} created in {experiment.url}; start workers "
                f"with: deeptoolbox experiment worker {experiment.url} {experiment.name}"
            )
            continue
        experiment.run(workers=args.workers, stale=args.stale, verbose=not args.quiet,
                       processes_per_trial=args.processes_per_trial)  # fmt: skip
    return 0


def _with_store(experiment: Any, store: str) -> Any:
    from deeptoolbox.experiments._store import default_artifacts, store_url

    experiment.store, experiment.url = store, store_url(store)
    if experiment.artifacts is not None:
        experiment.artifacts = default_artifacts(experiment.url)
    experiment._stores = {}
    return experiment


def _load(name: str, args: argparse.Namespace) -> Any:
    from deeptoolbox.experiments._experiment import load_experiment

    return load_experiment(name, store=_store(args))


def _list(args: argparse.Namespace) -> int:
    from deeptoolbox.experiments._experiment import list_experiments

    rows = list_experiments(_store(args))
    if not rows:
        print(f"no experiments in {_store(args)}")
    for row in rows:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(row["counts"].items())) or "no trials"
        best = "-" if row["best"] is None else f"{row['best']:.6g} (trial {row['best_trial']})"
        print(f"{row['name']}  {row['strategy']}  {row['metric']} ({row['direction']}): "
              f"best {best}; {counts}; {row['runs']} run(s)")  # fmt: skip
    return 0


def _show(args: argparse.Namespace) -> int:
    experiment = _load(args.name, args)
    rows = experiment.results(sort_by=args.sort, as_records=True)
    columns = [c for c in dict.fromkeys(k for r in rows for k in r)
               if c not in ("artifacts", "started", "run", "error", "annotation")
               and not c.startswith("best_")]  # fmt: skip
    print(f"{experiment.name}: {experiment.strategy}, {experiment.metric} "
          f"({experiment.direction}), store {experiment.url}")  # fmt: skip
    _print_table(rows, columns)
    best = experiment.best_or_none()
    if best is not None:
        print(f"best: trial {best.number} {experiment.metric}={best.value:.6g} {best.params} "
              f"({best.artifacts})")  # fmt: skip
    return 0


def _print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else "" if value is None else str(value)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def _export(args: argparse.Namespace) -> int:
    path = _load(args.name, args).export_csv(args.csv)
    print(f"wrote {path}")
    return 0


def _snapshot(reference: str, args: argparse.Namespace) -> Any:
    name, _, run = reference.partition(":")
    return _load(name, args).code(run=int(run) if run else None)


def _diff(args: argparse.Namespace) -> int:
    from deeptoolbox.experiments._code import compare_code

    text = compare_code(_snapshot(args.first, args), _snapshot(args.second, args))
    print(text if text else f"{args.first} and {args.second}: same code and parameters", end="")
    if text == "":
        print()
    return 0


def _resume(args: argparse.Namespace) -> int:
    experiment = _load(args.name, args)
    experiment.run(workers=args.workers, stale=args.stale, verbose=not args.quiet,
                   processes_per_trial=args.processes_per_trial)  # fmt: skip
    return 0


def _worker(args: argparse.Namespace) -> int:
    from deeptoolbox.experiments._worker_entry import run_worker_command

    return run_worker_command(args)


def _stop(args: argparse.Namespace) -> int:
    _load(args.name, args).stop(args.trial)
    print(f"asked trial {args.trial} of {args.name} to stop")
    return 0


def _cancel(args: argparse.Namespace) -> int:
    _load(args.name, args).cancel()
    print(f"cancelled {args.name}: no new trials start, running ones are asked to stop")
    return 0
