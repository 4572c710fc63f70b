"""The Training Monitor's events: a train() callback that writes each run's events to a folder
that the Training Monitor app (``deeptoolbox.apps``) follows.

One run is one folder ``<runs>/<run id>/`` holding ``events.jsonl`` (one JSON object a line:
``start`` (with host and process id), ``iteration``, ``validation``, ``end`` (with the stop
reason and the last iteration) or ``error`` (train() raised: the error and the iteration it
reached)) and, when someone presses Stop, a ``stop``
file that the callback sees at the next iteration and answers by ending training cleanly
(the result keeps the network, as MATLAB's Stop button does). Writer and reader only share
files, so training can run in any process.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from deeptoolbox.errors import OptionError
from deeptoolbox.training._callbacks import Callback

__all__ = ["TrainingMonitorLog", "default_runs_folder"]

EVENTS = "events.jsonl"
STOP = "stop"
_RUN_ID = re.compile(r"^[A-Za-z0-9_\-]{1,80}$")


def default_runs_folder() -> Path:
    """Where runs go when no folder is given: ``$DEEPTOOLBOX_RUNS``, else ``./deeptoolbox-runs``.

    Example:
        >>> default_runs_folder().name in ("deeptoolbox-runs", os.environ.get("DEEPTOOLBOX_RUNS", ""))
        True
    """
    return Path(os.environ.get("DEEPTOOLBOX_RUNS", "deeptoolbox-runs"))


class TrainingMonitorLog(Callback):
    """A train() callback that records a run for the Training Monitor app.

    Pass it in ``TrainingOptions(callbacks=[TrainingMonitorLog()])``; open the monitor with
    ``deeptoolbox app --root FOLDER`` (the runs folder, default ``./deeptoolbox-runs``,
    inside it). Pressing Stop in the app ends training at the next iteration, keeping the
    network (``result.stop_reason`` names this callback).

    Example:
        >>> import json, tempfile, torch
        >>> from deeptoolbox import Network, layers as L
        >>> from deeptoolbox.training import TrainingOptions, train
        >>> log = TrainingMonitorLog(tempfile.mkdtemp(), name="demo")
        >>> x = torch.randn(32, 2)
        >>> _ = train(Network([L.FeatureInput(2), L.Dense(1)]), (x, x[:, :1]), "mse",
        ...           TrainingOptions(max_epochs=2, verbose=False, callbacks=[log]))
        >>> lines = (log.folder / "events.jsonl").read_text().splitlines()
        >>> [json.loads(line)["event"] for line in lines][-1]
        'end'
    """

    callback_name = "TrainingMonitorLog (stopped from the Training Monitor)"
    EVENTS_FILE = EVENTS
    STOP_FILE = STOP
    RUN_ID = _RUN_ID

    def __init__(self, runs: str | os.PathLike | None = None, *, name: str | None = None) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_id = f"{stamp}-{uuid.uuid4().hex[:6]}"
        if name is not None and not _RUN_ID.match(name):
            raise OptionError(
                "TrainingMonitorLog: `name` may hold letters, digits, '_' and '-' (at most 80). "
                f"Received: {name!r}."
            )
        self.name = name or run_id
        self.folder = Path(runs if runs is not None else default_runs_folder()) / (
            f"{name}-{run_id}" if name else run_id
        )
        self.iteration: int | None = None  # the last iteration seen, for the end event

    def _write(self, event: dict[str, Any]) -> None:
        with open(self.folder / EVENTS, "a", encoding="utf-8") as stream:
            stream.write(json.dumps({"time": time.time(), **event}, default=str) + "\n")

    def on_train_start(self, state: Any) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / STOP).unlink(missing_ok=True)
        self._write({"event": "start", "name": self.name, "pid": os.getpid(),
                     "host": socket.gethostname()})  # fmt: skip

    def on_iteration_end(self, state: Any, info: dict[str, Any]) -> bool:
        self.iteration = info.get("iteration", self.iteration)
        if info.get("logged"):
            self._write({"event": "iteration", **_plain(info)})
        return (self.folder / STOP).exists()

    def on_validation_end(self, state: Any, info: dict[str, Any]) -> bool:
        self._write({"event": "validation", **_plain(info)})
        return (self.folder / STOP).exists()

    def on_train_end(self, result: Any) -> None:
        self._write({
            "event": "end",
            "stop_reason": getattr(result, "stop_reason", None),
            "iteration": self.iteration,
        })  # fmt: skip

    def on_train_error(self, error: BaseException) -> None:
        if not (self.folder / EVENTS).exists():
            return  # failed before the run started: nothing to follow
        self._write({
            "event": "error",
            "error": f"{type(error).__name__}: {error}",
            "iteration": self.iteration,
        })  # fmt: skip


def _plain(info: dict[str, Any]) -> dict[str, Any]:
    keys = ("iteration", "epoch", "max_epochs", "total_iterations", "loss", "learn_rate",
            "metrics", "validation", "elapsed", "remaining", "device")  # fmt: skip
    return {k: info.get(k) for k in keys}
