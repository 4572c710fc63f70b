"""Resources of a bound computation: a memory budget, a deadline, progress reports and notes.

The bound engine sizes its work (how many input boxes and how many neurons are bounded at
once) from a :class:`Budget`, checks a :class:`Deadline` between layers and chunks, and writes
what it had to give up (a cheaper method for some layers) into the budget's ``notes``, which
end up in the result.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field

import torch

from deeptoolbox.errors import OptionError, OutOfTime

__all__ = [
    "Budget", "Deadline", "OutOfTime", "Progress", "answer_margin", "default_max_memory",
    "parse_memory",
]  # fmt: skip

DEFAULT_FRACTION = 0.4  # of the memory available when the computation starts
WORK_CAP = 64 * 2**20  # bytes per chunk of work: larger chunks are not faster, only bigger
_UNITS = {"b": 1, "kb": 2**10, "mb": 2**20, "gb": 2**30, "tb": 2**40}


def _available_ram() -> int:
    try:
        with open("/proc/meminfo") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        return 4 * 2**30


def default_max_memory(device: torch.device) -> int:
    """A fraction (40%) of the memory free on ``device`` now: GPU memory for CUDA, else RAM.

    Example:
        >>> default_max_memory(torch.device("cpu")) > 0
        True
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * DEFAULT_FRACTION)
    return int(_available_ram() * DEFAULT_FRACTION)


def parse_memory(value, where: str) -> int | None:
    """``None``, a number of bytes, or a string such as ``"500MB"`` / ``"2 GB"``, as bytes.

    Example:
        >>> parse_memory("1.5GB", "f"), parse_memory(1024, "f"), parse_memory(None, "f")
        (1610612736, 1024, None)
    """
    if value is None:
        return None
    number = None
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "").replace("ib", "b")
        unit = next((u for u in ("tb", "gb", "mb", "kb", "b") if text.endswith(u)), "b")
        try:
            number = float(text[: len(text) - len(unit)]) * _UNITS[unit]
        except ValueError:
            number = None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    if number is None or not math.isfinite(number) or number <= 0:
        raise OptionError(
            f"{where}: `max_memory` must be a positive number of bytes or a size such as "
            f"'500MB' or '2GB', or None for 40% of the free memory. Received: {value!r}."
        )
    return int(number)


def answer_margin(seconds: float) -> float:
    """Time kept back from a time limit for what follows the last deadline check (stopping a
    bound computation, checking a counterexample, building the result): 5% of the limit plus
    50 ms, at most 1 s.

    Example:
        >>> answer_margin(10.0), answer_margin(100.0)
        (0.55, 1.0)
    """
    return min(0.05 * seconds + 0.05, 1.0)


class Deadline:
    """A point in time (``time.monotonic``) after which the engine stops and answers early.

    Example:
        >>> Deadline(None).passed, Deadline(0.0).passed
        (False, True)
    """

    def __init__(self, seconds: float | None, start: float | None = None) -> None:
        start = time.monotonic() if start is None else start
        self.at = math.inf if seconds is None else start + float(seconds)

    @property
    def passed(self) -> bool:
        return time.monotonic() >= self.at

    @property
    def finite(self) -> bool:
        return self.at != math.inf

    def check(self) -> None:
        """Raise :class:`OutOfTime` when the deadline has passed."""
        if time.monotonic() >= self.at:
            raise OutOfTime

    def left(self) -> float:
        return self.at - time.monotonic()


@dataclass
class Budget:
    """Memory budget (bytes), deadline and the notes of one bound computation.

    Example:
        >>> b = Budget(2**20)
        >>> b.rows_that_fit(bytes_per_row=1000), b.notes
        (1048, [])
    """

    max_memory: int
    deadline: Deadline = field(default_factory=lambda: Deadline(None))
    notes: list[str] = field(default_factory=list)
    progress: Progress | None = None

    @property
    def work(self) -> int:
        """Bytes one chunk of work may use."""
        return min(self.max_memory, WORK_CAP)

    def rows_that_fit(self, bytes_per_row: float, reserved: float = 0.0) -> int:
        """How many rows of ``bytes_per_row`` fit in the work budget after ``reserved`` bytes."""
        room = min(self.work, self.max_memory - reserved)
        return int(room // max(bytes_per_row, 1.0))

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


class Progress:
    """Progress lines on stderr for long runs, at most one every ``every`` seconds.

    ``enabled=None`` reports only once the run has lasted ``after`` seconds; True reports from
    the start; False never.

    Example:
        >>> p = Progress("verify_robustness", enabled=False)
        >>> p.update(1, 10, "1 verified")
    """

    def __init__(self, what: str, enabled: bool | None = None, *, after: float = 2.0,
                 every: float = 2.0, stream=None) -> None:  # fmt: skip
        self.what, self.enabled, self.after, self.every = what, enabled, after, every
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.monotonic()
        self.last = -math.inf
        self.printed = False
        self._shown: tuple | None = None

    def update(self, done: int, total: int, detail: str = "", *, final: bool = False) -> None:
        """Report ``done`` of ``total`` (printed when due, and always at the end once started)."""
        if self.enabled is False:
            return
        now = time.monotonic()
        elapsed = now - self.started
        if self.enabled is None and elapsed < self.after and not self.printed:
            return
        if not final and now - self.last < self.every:
            return
        if final and (not self.printed or self._shown == (done, total, detail)):
            return
        self.last, self.printed, self._shown = now, True, (done, total, detail)
        left = ""
        if 0 < done < total:
            left = f", about {elapsed / done * (total - done):.0f} s left"
        detail = f" ({detail})" if detail else ""
        end = "\n"
        line = f"{self.what}: {done}/{total}{detail}, {elapsed:.1f} s{left}"
        if getattr(self.stream, "isatty", lambda: False)() and not final:
            line, end = "\r" + line, ""
        elif getattr(self.stream, "isatty", lambda: False)():
            line = "\r" + line
        print(line, end=end, file=self.stream, flush=True)


def element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
