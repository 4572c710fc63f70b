"""The Training Monitor's data: the runs that :class:`~deeptoolbox.training.TrainingMonitorLog`
writes (one folder per run: ``events.jsonl`` and, once Stop is pressed, a ``stop`` file), read
for the app.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from deeptoolbox.errors import OptionError
from deeptoolbox.training import TrainingMonitorLog

EVENTS = TrainingMonitorLog.EVENTS_FILE
STOP = TrainingMonitorLog.STOP_FILE
_RUN_ID = TrainingMonitorLog.RUN_ID


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


def run_state(events: list[dict[str, Any]]) -> dict[str, Any]:
    """What a run's events say of it: ``state`` (running, finished, stopped or failed), the
    final (or last) ``iteration``, the ``stop_reason`` and, for a failed run, the ``error``.

    A run without an end event whose process is gone (same host, no such process) failed.

    Example:
        >>> run_state([{"event": "start"}, {"event": "iteration", "iteration": 3},
        ...            {"event": "end", "stop_reason": "max epochs completed", "iteration": 3}])
        {'state': 'finished', 'iteration': 3, 'stop_reason': 'max epochs completed', 'error': None}
    """
    start = next((e for e in events if e.get("event") == "start"), {})
    end = next((e for e in reversed(events) if e.get("event") == "end"), None)
    error = next((e for e in reversed(events) if e.get("event") == "error"), None)
    last = next((e for e in reversed(events) if e.get("event") == "iteration"), {})
    iteration = last.get("iteration")
    for final in (error, end):
        if final is not None and final.get("iteration") is not None:
            iteration = final["iteration"]
    reason = end.get("stop_reason") if end else None
    if error is not None:
        state, message = "failed", error.get("error")
    elif end is not None:
        stopped = isinstance(reason, str) and reason.startswith("stopped by callback")
        state, message = ("stopped" if stopped else "finished"), None
    elif _process_gone(start):
        state = "failed"
        message = f"the training process {start.get('pid')} ended without finishing the run"
    else:
        state, message = "running", None
    return {"state": state, "iteration": iteration, "stop_reason": reason, "error": message}


def _process_gone(start: dict[str, Any]) -> bool:
    pid, host = start.get("pid"), start.get("host")
    if not isinstance(pid, int) or host != socket.gethostname():
        return False  # another machine's run (or an older log): nothing to check it against
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, another user's
        return False
    return False


def list_runs(runs: Path) -> list[dict[str, Any]]:
    """Every run under ``runs``, newest first: id, name, state (running, finished, stopped,
    failed), stop reason or error and final iteration."""
    if not runs.is_dir():
        return []
    found = []
    for folder in runs.iterdir():
        if not (folder / EVENTS).is_file():
            continue
        events = read_events(folder)
        start = next((e for e in events if e.get("event") == "start"), {})
        state = run_state(events)
        found.append({
            "id": folder.name,
            "name": start.get("name", folder.name),
            "started": start.get("time"),
            "host": start.get("host"),
            "running": state["state"] == "running",
            "stop_requested": (folder / STOP).exists(),
            **state,
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
