"""Setup functions the experiment tests run (a module of their own, as users would write).

Workers started as fresh interpreters find these functions through the stored code.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

import deeptoolbox as dtb
from deeptoolbox import layers as L
from deeptoolbox.datasets import digits

_DATA: dict[str, tuple] = {}


def digits_split():
    """The bundled digits as class indices: 1,400 for training, 397 for validation."""
    if "digits" not in _DATA:
        images, labels = digits()
        order = np.random.default_rng(0).permutation(len(images))
        x = torch.tensor(images[order])
        y = torch.tensor(labels[order].astype(np.int64))
        _DATA["digits"] = (x[:1400], y[:1400]), (x[1400:], y[1400:])
    return _DATA["digits"]


def digits_network(filters: int, dropout: float = 0.0) -> dtb.Network:
    return dtb.Network(
        [L.ImageInput((1, 8, 8)), L.Conv2d(filters, 3, padding=1), L.ReLU(), L.Flatten(),
         L.Dropout(dropout), L.Dense(10), L.Softmax()],
        classes=[str(d) for d in range(10)],
    )  # fmt: skip


def digits_setup(params):
    """Built-in training: a small CNN on digits, one epoch."""
    train_data, validation = digits_split()
    net = digits_network(params["filters"], params.get("dropout", 0.0))
    options = dtb.TrainingOptions(
        solver="adam",
        initial_learn_rate=params["lr"],
        max_epochs=params.get("epochs", 1),
        mini_batch_size=64,
        validation_data=validation,
        metrics=["accuracy"],
        validation_frequency=params.get("validation_frequency", 10),
        verbose_frequency=params.get("verbose_frequency", 50),
    )
    return net, train_data, "crossentropy", options


def slow_digits_setup(params):
    """Like digits_setup but each trial lasts a few seconds (for the kill tests)."""
    time.sleep(params.get("sleep", 3.0))
    return digits_setup(params)


def quadratic_setup(params, monitor):
    """Custom training: 'loss' falls towards (x - 0.3)^2 over a few iterations."""
    monitor.metrics = ["loss", "score"]
    monitor.info = ["x"]
    monitor.update_info(x=params["x"])
    target = (params["x"] - 0.3) ** 2
    for iteration in range(1, 6):
        monitor.record(iteration, loss=target + 1.0 / iteration)
        monitor.progress = 20 * iteration
    return {"score": -target}


def sleepy_setup(params, monitor):
    """Custom training that runs until asked to stop (or for `seconds`)."""
    monitor.metrics = ["score"]
    started = time.monotonic()
    iteration = 0
    while time.monotonic() - started < params.get("seconds", 60):
        iteration += 1
        monitor.record(iteration, score=float(iteration))
        if monitor.stop_requested:
            break
        time.sleep(0.1)
    return {"reason_code": 1.0 if monitor.stop_reason else 0.0}


def failing_setup(params, monitor):
    """Raises for x == 2, works otherwise."""
    if params["x"] == 2:
        raise ValueError("x=2 is not allowed in this setup")
    return {"score": float(params["x"])}


def wrong_metric_setup(params, monitor):
    monitor.metrics = ["training_loss"]
    monitor.record(1, training_loss=0.5)
    return {"validation_loss": 0.4}


def pruned_setup(params, monitor):
    """Bad values of x keep a poor score for many iterations (the median pruner stops them)."""
    monitor.metrics = ["score"]
    for iteration in range(1, 21):
        monitor.record(iteration, score=params["x"] * iteration)
        if monitor.stop_requested:
            break
    return {}


def branin(params, monitor):
    """The Branin function (minimum 0.397887 at three points), negated for maximizing."""
    x, y = params["x"], params["y"]
    value = (
        (y - 5.1 / (4 * math.pi**2) * x**2 + 5 / math.pi * x - 6) ** 2
        + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x)
        + 10
    )
    return {"branin": value}


def slow_quadratic_setup(params, monitor):
    """quadratic_setup that takes `sleep` seconds (so several workers share the trials)."""
    time.sleep(params.get("sleep", 1.0))
    return quadratic_setup(params, monitor)


def controlling_setup(params, monitor):
    """Calls exp.stop / exp.cancel on its own running trial, as a user in another process
    would, then waits for the request to arrive through the store."""
    from deeptoolbox.experiments import load_experiment

    monitor.metrics = ["score"]
    monitor.record(1, score=params["x"])
    marker = Path(params["store"] + "." + params["action"])
    if params["x"] == 2 and not marker.exists():
        marker.touch()  # once: the copy of a cancelled trial then runs to its end
        experiment = load_experiment(params["name"], store=params["store"])
        running = [r for r in experiment.records() if r.status == "running"]
        if params["action"] == "stop":
            experiment.stop(running[0].number)
        else:
            experiment.cancel()
        started = time.monotonic()
        while not monitor.stop_requested and time.monotonic() - started < 30:
            time.sleep(0.1)
    return {}


class StoreSpy:
    """The setup's own train() callback: what the store shows of its running trial at each
    validation (optionally asking to stop it), and how train() ended, written to a JSON file."""

    def __init__(self, params):
        self.params, self.seen, self.asked = params, [], False

    def on_validation_end(self, state, info):
        from deeptoolbox.experiments import load_experiment

        experiment = load_experiment(self.params["name"], store=self.params["store"])
        running = [r for r in experiment.records() if r.status == "running"]
        self.seen.append({"iteration": info["iteration"], "running": len(running),
                          "history": running[0].history() if running else [],
                          "progress": running[0].attributes.get("progress") if running else None,
                          "metrics": running[0].metrics if running else {}})  # fmt: skip
        stop_at = self.params.get("stop_at")
        if stop_at and info["iteration"] >= stop_at and not self.asked:
            self.asked = True
            experiment.stop(running[0].number)

    def on_train_end(self, result):
        Path(self.params["spy"]).write_text(json.dumps({
            "seen": self.seen, "stop_reason": result.stop_reason,
            "last_iteration": result.history.iterations[-1]["iteration"],
            "losses": [[r["iteration"], r["loss"]] for r in result.history.iterations],
        }))  # fmt: skip


def spied_digits_setup(params):
    """digits_setup with a StoreSpy among the TrainingOptions' callbacks."""
    net, data, loss, options = digits_setup(params)
    return net, data, loss, dataclasses.replace(options, callbacks=[StoreSpy(params)])


def stubborn_setup(params, monitor):
    """Custom training that never looks at monitor.stop_requested (runs `seconds`)."""
    monitor.metrics = ["score"]
    started = time.monotonic()
    iteration = 0
    while time.monotonic() - started < params.get("seconds", 15):
        iteration += 1
        monitor.record(iteration, score=float(iteration))
        time.sleep(0.1)
    return {}


class RankLog:
    """A train() callback writing the process's rank and group size when training starts."""

    def __init__(self, path):
        import os

        self.path = Path(path)
        self.setup_rank = os.environ.get("RANK")  # what the setup saw, as under torchrun

    def on_train_start(self, state):
        import torch.distributed as dist

        grouped = dist.is_available() and dist.is_initialized()
        rank, world = (dist.get_rank(), dist.get_world_size()) if grouped else (0, 1)
        with self.path.open("a") as log:
            log.write(f"{rank}/{world}/{self.setup_rank}\n")


def ranked_digits_setup(params):
    """digits_setup with a RankLog; refuses to build on the rank named by `fail_rank`."""
    import os

    if str(params.get("fail_rank")) == os.environ.get("RANK"):
        raise RuntimeError(f"rank {os.environ['RANK']} refuses to build")
    net, data, loss, options = digits_setup(params)
    return net, data, loss, dataclasses.replace(options, callbacks=[RankLog(params["ranks"])])


def error_setup(params, monitor):
    """Custom training whose 'error' dips to its lowest value in the middle."""
    monitor.metrics = ["error", "accuracy"]
    for iteration, error in enumerate([1.0, 0.4, 0.7], start=1):
        monitor.record(iteration, error=error, accuracy=1.0 - error)
    return {}
