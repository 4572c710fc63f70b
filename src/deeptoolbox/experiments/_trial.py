"""One trial's work: call the setup function, train (built-in) or let it train (custom),
collect the metrics and write the trial's files. Knows nothing of the store."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import inspect
import json
import math
import os
import random
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeptoolbox.errors import ExperimentError, MetricMissing, OptionError, StopTraining
from deeptoolbox.experiments._callback import TrialCallback
from deeptoolbox.experiments._monitor import Monitor

__all__ = [
    "setup_kind",
    "run_body",
    "built_in_parts",
    "trial_options",
    "TrialOutcome",
    "MetricMissing",
    "write_json",
]


LAST_RESORT_SECONDS = 2.0  # a custom setup asked to stop and still running is ended after it


@dataclass
class TrialOutcome:
    """What a trial's body produced."""

    metrics: dict[str, float]
    best: dict[str, float]
    status: str = "completed"  # or "stopped", "pruned", "cancelled"
    reason: str | None = None
    files: dict[str, str] = field(default_factory=dict)


def setup_kind(setup: Any) -> str:
    """'training' for setup(params), 'custom' for setup(params, monitor); else an error."""
    if not callable(setup):
        raise OptionError(
            f"Experiment: `setup` must be a function. Received: {type(setup).__name__}. "
            "Example: def setup(params): ... return net, data, 'crossentropy', options."
        )
    try:
        parameters = list(inspect.signature(setup).parameters.values())
    except (TypeError, ValueError):
        return "training"
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    extra = [p for p in parameters if p.kind == p.KEYWORD_ONLY and p.default is p.empty]
    if len(required) in (1, 2) and not extra:
        return "training" if len(required) == 1 else "custom"
    shown = ", ".join(p.name for p in parameters)
    raise OptionError(
        f"Experiment: `setup` must take (params) for built-in training, returning (network, "
        f"training_data, loss, TrainingOptions), or (params, monitor) for custom training, "
        f"returning a metrics dict. Received a function of ({shown})."
    )


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def run_body(
    setup: Callable[..., Any],
    kind: str,
    params: dict[str, Any],
    monitor: Monitor,
    *,
    seed: int,
    metric: str,
    folder: Path | None,
    group: Any = None,
    direction: str = "maximize",
) -> TrialOutcome:
    """Run one trial's body and write its files into ``folder`` (None: no files); with a
    :class:`~deeptoolbox.experiments._ddp.TrialGroup`, built-in training runs in its
    processes."""
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "params.json", params)
    monitor.artifacts = folder
    seed_everything(seed)
    lower = _lower_is_better(metric, direction)
    if kind == "training":
        outcome, network, chart = _built_in(setup, params, monitor, seed, lower, group)
    else:
        outcome, network, chart = _custom(setup, params, monitor, lower)
    if metric not in outcome.metrics:
        raise MetricMissing(_missing_message(metric, outcome.metrics, kind))
    value = outcome.metrics[metric]
    if not math.isfinite(value):
        raise ExperimentError(f"the metric {metric!r} of this trial is {value}, not a number.")
    if folder is not None:
        outcome.files = _write_files(folder, monitor, network, chart, outcome)
    return outcome


def _missing_message(metric: str, metrics: Mapping[str, float], kind: str) -> str:
    hint = (
        "Add metrics=['accuracy'] and validation_data to the TrainingOptions the setup returns, "
        "or set the experiment's metric= to one of these."
        if kind == "training"
        else "Record it with monitor.record(iteration, name=value) or return it in the dict, "
        "or set the experiment's metric= to one of these."
    )
    return (
        f"the setup function never reported the metric {metric!r}. Reported metrics: "
        f"{sorted(metrics)}. {hint}"
    )


# -- custom training ------------------------------------------------------------------------------
def _custom(setup, params, monitor, lower) -> tuple[TrialOutcome, Any, Any]:
    returned = None
    with _LastResort(monitor):
        try:
            returned = setup(dict(params), monitor)
        except StopTraining:
            returned = None  # ignored the stop request: what it recorded is kept
    returned = {} if returned is None else returned
    if not isinstance(returned, Mapping):
        raise ExperimentError(
            f"a setup function with a monitor must return a dict of metrics (or None). "
            f"Returned: {type(returned).__name__}."
        )
    metrics = {name: monitor.last(name) for name in monitor.reported()}
    network = None
    for name, value in returned.items():
        if isinstance(value, torch.nn.Module):
            network = value
            continue
        try:
            metrics[str(name)] = float(value)
        except (TypeError, ValueError):
            raise ExperimentError(
                f"the setup returned {name!r}={value!r}; metric values must be numbers (a "
                "network may be returned as a torch.nn.Module too)."
            ) from None
    reason = monitor.stop_reason
    return (
        TrialOutcome(metrics, _best(monitor, metrics, lower), _status(reason), reason),
        network,
        None,
    )


def _status(reason: str | None) -> str:
    if reason is None:
        return "completed"
    return {"pruned": "pruned", "cancelled": "cancelled"}.get(reason, "stopped")


LOWER_IS_BETTER = ("loss", "error", "mse", "rmse", "mae")
"""Endings of metric names whose best value is the lowest (other than the experiment's
metric, which follows the experiment's direction)."""


def _lower_is_better(metric: str, direction: str) -> Callable[[str], bool]:
    def lower(name: str) -> bool:
        if name == metric:
            return direction == "minimize"
        return name.lower().endswith(LOWER_IS_BETTER)

    return lower


def _best(
    monitor: Monitor, final: Mapping[str, float], lower: Callable[[str], bool]
) -> dict[str, float]:
    best = {}
    for name, value in final.items():
        values = [v for v in [*monitor.values(name), value] if math.isfinite(v)]
        if values:
            best[name] = min(values) if lower(name) else max(values)
    return best


# -- built-in training ----------------------------------------------------------------------------
def built_in_parts(setup, params) -> tuple[Any, Any, Any, Any]:
    """The (network, data, loss, options) a built-in training setup returns, checked."""
    from deeptoolbox.training import TrainingOptions

    returned = setup(dict(params))
    if not (isinstance(returned, tuple | list) and len(returned) == 4):
        raise ExperimentError(
            "a setup function of (params) must return (network, training_data, loss, "
            f"TrainingOptions). Returned: {_shape(returned)}. For your own training loop, "
            "define setup(params, monitor) and return a dict of metrics."
        )
    network, data, loss, options = returned
    if not isinstance(options, TrainingOptions):
        raise ExperimentError(
            "the setup's 4th returned value must be a TrainingOptions. Returned: "
            f"{type(options).__name__}."
        )
    return network, data, loss, options


def trial_options(options, seed: int, callbacks: list, environment: str | None = None):
    """The setup's TrainingOptions as a trial trains with them: quiet, seeded, with the
    trial's callbacks (and, trained by several processes, their execution environment)."""
    changes: dict[str, Any] = dict(
        verbose=False,
        plots="none",
        seed=options.seed if options.seed is not None else seed,
        callbacks=[*options.callbacks, *callbacks],
    )
    if environment is not None:
        changes["execution_environment"] = environment
    return dataclasses.replace(options, **changes)


def _built_in(setup, params, monitor, seed, lower, group=None) -> tuple[TrialOutcome, Any, Any]:
    from deeptoolbox.training import train

    with group.rank_variables() if group is not None else contextlib.nullcontext():
        network, data, loss, options = built_in_parts(setup, params)
    live = TrialCallback(monitor)
    if group is None:
        train(network, data, loss, trial_options(options, seed, [live]))
    else:
        with group.joined(options.execution_environment) as environment:
            train(network, data, loss, trial_options(options, seed, [live], environment))
    options = trial_options(options, seed, [])
    final = {
        name: monitor.last(name) for name in monitor.reported() if name.startswith("training_")
    }
    if options.validation_data is not None:
        final.update(_validation_metrics(network, options, loss))
    reason = monitor.stop_reason if live.stopped else None
    chart = _chart(network, options, loss) if monitor.artifacts is not None else None
    return (
        TrialOutcome(final, _best(monitor, final, lower), _status(reason), reason),
        network,
        chart,
    )


def _shape(value: Any) -> str:
    if isinstance(value, tuple | list):
        return f"{type(value).__name__} of {len(value)}"
    return type(value).__name__


def _validation_metrics(network, options, loss) -> dict[str, float]:
    """Metrics of the network the trial ends with, on the validation data (what is saved)."""
    from deeptoolbox.training import evaluate

    names = [m for m in options.metrics if isinstance(m, str)]
    values = evaluate(network, options.validation_data, names, loss=loss,
                      batch_size=options.mini_batch_size)  # fmt: skip
    return {f"validation_{k}": float(v) for k, v in values.items()}


def _chart(network, options, loss):
    """Confusion chart on the validation data for classification networks."""
    from deeptoolbox.training import evaluate
    from deeptoolbox.training._losses import loss_function

    if options.validation_data is None or loss_function(loss).name != "crossentropy":
        return None
    seen: dict[str, Any] = {}

    def capture(outputs, targets) -> float:  # evaluate() reads the data as train() does
        seen.update(outputs=outputs, targets=targets)
        return 0.0

    evaluate(network, options.validation_data, [capture], batch_size=options.mini_batch_size)
    outputs, targets = seen["outputs"], seen["targets"]
    outputs = outputs[0] if isinstance(outputs, tuple | list) else outputs
    classes = list(getattr(network, "classes", None) or range(outputs.shape[-1]))
    predicted = outputs.argmax(-1).cpu().numpy()
    truth = targets.argmax(-1) if targets.dim() > 1 else targets
    return ([classes[int(i)] for i in truth.cpu().numpy()], [classes[int(i)] for i in predicted],
            [str(c) for c in classes])  # fmt: skip


class _LastResort:
    """Ends custom training code that does not return when its trial is asked to stop.

    Built-in training stops through its callback (:class:`TrialCallback`). A custom setup
    should check ``monitor.stop_requested``; when it has not returned ``grace`` seconds
    after a request, a watcher thread sends SIGUSR1 to the main thread, whose handler
    raises StopTraining there (POSIX main thread only). That may land anywhere, even in an
    import, so it is kept for code that would otherwise run on; the trial keeps what it
    recorded until then.
    """

    def __init__(self, monitor: Monitor, grace: float = LAST_RESORT_SECONDS,
                 interval: float = 0.5) -> None:  # fmt: skip
        self.monitor, self.grace, self.interval = monitor, grace, interval
        self.active = False
        self.usable = (
            hasattr(signal, "pthread_kill")
            and threading.current_thread() is threading.main_thread()
            and monitor._link is not None
        )

    def __enter__(self) -> _LastResort:
        if not self.usable:
            return self
        self.active, self.done = True, threading.Event()
        self.previous = signal.signal(signal.SIGUSR1, self._handler)
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _handler(self, signum, frame) -> None:
        if self.active:
            self.active = False
            raise StopTraining()

    def _watch(self) -> None:
        main = threading.main_thread().ident
        while not self.done.wait(self.interval):
            if self.monitor.stop_requested:
                if not self.done.wait(self.grace):
                    signal.pthread_kill(main, signal.SIGUSR1)
                return

    def __exit__(self, *exc) -> None:
        if not self.usable:
            return
        self.active = False
        self.done.set()
        self.thread.join()
        signal.signal(signal.SIGUSR1, self.previous)


# -- files ----------------------------------------------------------------------------------------
PREDICTIONS_FILE = "validation-predictions.json"
"""The trial file with the validation labels and predictions (classification networks):
``{"classes": [...], "truth": [...], "predicted": [...]}``; a custom setup may write it too."""


def write_json(path: Path, value: Any) -> Path:
    """Write JSON through a temporary file and a rename."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(value, indent=2, default=str))
    os.replace(temporary, path)
    return path


def _write_history_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(k for row in rows for k in row)) or ["iteration"]
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


def _write_files(folder: Path, monitor, network, chart, outcome) -> dict[str, str]:
    files = {"params": "params.json"}
    write_json(folder / "history.json", monitor.history)
    _write_history_csv(folder / "history.csv", monitor.history)
    files.update(history="history.json", history_csv="history.csv")
    monitor.plot(folder / "training-progress.png")
    files["progress_plot"] = "training-progress.png"
    if network is not None:
        files["network"] = _save_network(network, folder)
    if chart is not None:
        from deeptoolbox.training import confusion_chart

        truth, predicted, classes = chart
        confusion_chart(truth, predicted, classes=classes, path=folder / "confusion.png")
        files["confusion"] = "confusion.png"
        write_json(folder / PREDICTIONS_FILE, {"classes": classes, "truth": truth,
                                               "predicted": predicted})  # fmt: skip
        files["predictions"] = PREDICTIONS_FILE
    write_json(folder / "result.json", {"status": outcome.status, "metrics": outcome.metrics,
                                        "best": outcome.best, "files": files})  # fmt: skip
    files["result"] = "result.json"
    return files


def _save_network(network: torch.nn.Module, folder: Path) -> str:
    from deeptoolbox.network import Network, save

    network = network.cpu()
    if isinstance(network, Network):
        save(network, folder / "network.zip")
        return "network.zip"
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in network.state_dict().items()}
    save_file(state, str(folder / "weights.safetensors"))
    return "weights.safetensors"
