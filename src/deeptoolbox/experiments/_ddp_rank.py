"""Rank >= 1 of a trial trained by several processes (see :mod:`deeptoolbox.experiments._ddp`):
``python -m deeptoolbox.experiments._ddp_rank STORE NAME --trial N --rank R ...``, started by
rank 0; it loads the experiment from the store and trains in the trial's process group."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Sequence
from typing import Any

import torch

from deeptoolbox.errors import ExperimentError
from deeptoolbox.experiments._ddp import group_environment, join_group, leave_group, set_group_env
from deeptoolbox.experiments._engine import Store
from deeptoolbox.experiments._experiment import load_experiment
from deeptoolbox.experiments._trial import built_in_parts, seed_everything, trial_options
from deeptoolbox.experiments._worker import watch_parent
from deeptoolbox.training import train


def _trial_values(experiment: Any, number: int) -> tuple[dict[str, Any], int]:
    store = Store(experiment)
    for trial in store.trials():
        if trial.number == number:
            return dict(trial.user_attrs["params"]), int(trial.user_attrs["seed"])
    raise ExperimentError(f"experiment {experiment.name!r} has no trial {number}.")


def run_rank(args: argparse.Namespace) -> None:
    """Rank >= 1 of a trial: the setup's network, data and options, trained in the group."""
    experiment = load_experiment(args.name, store=args.store)
    params, seed = _trial_values(experiment, args.trial)
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(seed)
    set_group_env(args.rank, args.world, args.port)  # the setup sees RANK as under torchrun
    network, data, loss, options = built_in_parts(experiment.setup, params)
    environment = group_environment(options.execution_environment, torch.cuda.device_count(),
                                    args.world)  # fmt: skip
    join_group(environment, args.rank)
    try:
        train(network, data, loss, trial_options(options, seed, [], environment))
    finally:
        leave_group()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m deeptoolbox.experiments._ddp_rank STORE NAME --trial N --rank R ...``."""
    parser = argparse.ArgumentParser(prog="deeptoolbox.experiments._ddp_rank")
    parser.add_argument("store")
    parser.add_argument("name")
    for flag in ("--trial", "--rank", "--world", "--port"):
        parser.add_argument(flag, type=int, required=True)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--parent", type=int, default=None)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # rank 0 decides when the trial stops
    if args.parent is not None:
        watch_parent(args.parent)
    run_rank(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
