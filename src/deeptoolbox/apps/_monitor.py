"""The Training Monitor's data: a train() callback that writes each run's events to a folder
the app follows, and the reader the app serves them with.

One run is one folder ``<runs>/<run id>/`` holding ``events.jsonl`` (one JSON object a line:
``start``, ``iteration``, ``validation``, ``end``) and, when someone presses Stop, a ``stop``
file that the callback sees at the next iteration and answers by ending training cleanly
(the result keeps the network, as MATLAB's Stop button does). Writer and reader only share
files, so training can run in any process.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

from deeptoolbox.errors import OptionError
from deeptoolbox.training import Callback

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
        >>> import tempfile, torch
        >>> from deeptoolbox import Network, layers as L
        >>> from deeptoolbox.training import TrainingOptions, train
        >>> log = TrainingMonitorLog(tempfile.mkdtemp(), name="demo")
        >>> x = torch.randn(32, 2)
        >>> _ = train(Network([L.FeatureInput(2), L.Dense(1)]), (x, x[:, :1]), "mse",
        ...           TrainingOptions(max_epochs=2, verbose=False, callbacks=[log]))
        >>> [e["event"] for e in read_events(log.folder)][-1]
        'end'
    """

    callback_name = "TrainingMonitorLog (stopped from the Training Monitor)"

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

    def _write(self, event: dict[str, Any]) -> None:
        with open(self.folder / EVENTS, "a", encoding="utf-8") as stream:
            stream.write(json.dumps({"time": time.time(), **event}, default=str) + "\n")

    def on_train_start(self, state: Any) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / STOP).unlink(missing_ok=True)
        self._write({"event": "start", "name": self.name, "pid": os.getpid()})

    def on_iteration_end(self, state: Any, info: dict[str, Any]) -> bool:
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
        })  # fmt: skip


def _plain(info: dict[str, Any]) -> dict[str, Any]:
    keys = ("iteration", "epoch", "max_epochs", "total_iterations", "loss", "learn_rate",
            "metrics", "validation", "elapsed", "remaining", "device")  # fmt: skip
    return {k: info.get(k) for k in keys}


def read_events(folder: Path, since: int = 0) -> list[dict[str, Any]]:
    """The events of one run from line ``since`` on (a half-written last line is left for
    the next read).

    Example:
        >>> import tempfile
        >>> read_events(Path(tempfile.mkdtemp()))
        []
    """
    path = Path(folder) / EVENTS
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as stream:
        lines = stream.read().split("\n")
    events = []
    for line in lines[since:-1]:  # the text after the last newline may be incomplete
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            events.append({"event": "unreadable"})
    return events


def list_runs(runs: Path) -> list[dict[str, Any]]:
    """Every run under ``runs``, newest first: id, name, state and last iteration."""
    if not runs.is_dir():
        return []
    found = []
    for folder in runs.iterdir():
        if not (folder / EVENTS).is_file():
            continue
        events = read_events(folder)
        start = next((e for e in events if e.get("event") == "start"), {})
        end = next((e for e in reversed(events) if e.get("event") == "end"), None)
        last = next((e for e in reversed(events) if e.get("event") == "iteration"), {})
        found.append({
            "id": folder.name,
            "name": start.get("name", folder.name),
            "started": start.get("time"),
            "running": end is None,
            "stop_requested": (folder / STOP).exists(),
            "stop_reason": end.get("stop_reason") if end else None,
            "iteration": last.get("iteration"),
        })  # fmt: skip
    return sorted(found, key=lambda r: r["started"] or 0, reverse=True)


def run_folder(runs: Path, run_id: str) -> Path:
    """The folder of run ``run_id`` (OptionError for an id that is not a plain name)."""
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise OptionError(f"Training Monitor: {run_id!r} is not a run id.")
    folder = runs / run_id
    if not (folder / EVENTS).is_file():
        from deeptoolbox.errors import NetworkFileError

        raise NetworkFileError(f"Training Monitor: no run {run_id!r} in {runs}.")
    return folder


def request_stop(folder: Path) -> None:
    """Ask the run in ``folder`` to stop at its next iteration."""
    (folder / STOP).write_text("stop requested from the Training Monitor\n", encoding="utf-8")
