"""A user's own optimizer and learn-rate scheduler in train(), checked against the options."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch

from deeptoolbox.errors import OptionError
from deeptoolbox.training._options import TrainingOptions

__all__ = ["UserScheduler", "check_user_optimizer", "OPTIMIZER_OPTIONS"]

# TrainingOptions that configure the optimizer train() builds; a user's optimizer replaces them
OPTIMIZER_OPTIONS = (
    "solver", "initial_learn_rate", "learn_rate_schedule", "learn_rate_drop_factor",
    "learn_rate_drop_period", "momentum", "gradient_decay_factor",
    "squared_gradient_decay_factor", "epsilon", "l2_regularization",
)  # fmt: skip


@dataclass
class UserScheduler:
    """A torch learn-rate scheduler and when it steps ("epoch" or "iteration")."""

    scheduler: Any
    interval: str = "epoch"

    def step(self, metric: Any = None) -> None:
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            if metric is not None:
                self.scheduler.step(float(metric))
            return
        self.scheduler.step()


def _changed_options(options: TrainingOptions) -> list[str]:
    defaults = {f.name: f.default for f in fields(TrainingOptions)}
    return [name for name in OPTIMIZER_OPTIONS if getattr(options, name) != defaults[name]]


def _check_parameters(net: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    owned = {id(p) for p in net.parameters()}
    foreign = [p for g in optimizer.param_groups for p in g["params"] if id(p) not in owned]
    if foreign:
        raise OptionError(
            f"train: `optimizer` holds {len(foreign)} parameter tensor(s) that are not "
            "parameters of `net`. Build it from net.parameters() (e.g. "
            "torch.optim.AdamW(net.parameters(), lr=1e-3))."
        )


def _scheduler(value: Any, optimizer: torch.optim.Optimizer) -> UserScheduler:
    interval = "epoch"
    if isinstance(value, dict):
        if "scheduler" not in value or set(value) - {"scheduler", "interval"}:
            raise OptionError(
                "train: `scheduler` given as a dict takes the keys 'scheduler' and 'interval'. "
                f"Received keys: {sorted(value)}."
            )
        value, interval = value["scheduler"], value.get("interval", "epoch")
    if interval not in ("epoch", "iteration"):
        raise OptionError(
            f"train: the scheduler's `interval` must be 'epoch' or 'iteration'. Received: "
            f"{interval!r}."
        )
    if not callable(getattr(value, "step", None)):
        raise OptionError(
            "train: `scheduler` must be a torch learn-rate scheduler (with a step() method) or "
            f"{{'scheduler': ..., 'interval': 'iteration'}}. Received: {type(value).__name__}."
        )
    if getattr(value, "optimizer", optimizer) is not optimizer:
        raise OptionError("train: `scheduler` was built on another optimizer than `optimizer`.")
    return UserScheduler(value, interval)


def check_user_optimizer(
    net: torch.nn.Module, options: TrainingOptions, optimizer: Any, scheduler: Any
) -> UserScheduler | None:
    """Check a user's optimizer / scheduler; returns the scheduler with its interval.

    Options that configure the built-in optimizer (solver, learn rate and its schedule,
    momentum, decay factors, epsilon, L2 regularization) are refused when set together with
    an optimizer: they would be silently ignored.
    """
    if optimizer is None:
        if scheduler is not None:
            raise OptionError(
                "train: `scheduler` needs your `optimizer` too (train(..., optimizer=opt, "
                "scheduler=sched)); for the built-in optimizer use "
                "TrainingOptions(learn_rate_schedule=...)."
            )
        return None
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise OptionError(
            f"train: `optimizer` must be a torch.optim.Optimizer. Received: "
            f"{type(optimizer).__name__}."
        )
    changed = _changed_options(options)
    if changed:
        raise OptionError(
            f"train: with your own `optimizer`, the options {changed} would be ignored. Set "
            "them on the optimizer (and a `scheduler`) instead, and leave them at their "
            "defaults in TrainingOptions."
        )
    _check_parameters(net, optimizer)
    return None if scheduler is None else _scheduler(scheduler, optimizer)
