"""The Labeler's signal mode (MATLAB's Signal Labeler): region-of-interest labels (start,
end, label, in seconds) on the time series of one folder (``.npy`` files, (T,) or (T, C),
or one-column ``.csv`` files), saved at every change to ``regions.csv`` (``file, start,
end, label``) atomically, with undo; and the waveform as min/max per pixel column, so a
10⁶-sample signal draws as fast as a short one."""

from __future__ import annotations

import csv
import io
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from deeptoolbox.apps._labeler import write_atomic
from deeptoolbox.errors import DataError, OptionError

SIGNAL_SUFFIXES = (".npy", ".csv")
REGIONS_FILE = "regions.csv"


def min_max_waveform(x: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """The minimum and maximum of ``x`` in ``bins`` equal spans (fewer when ``x`` is shorter):
    what a waveform view draws, one vertical line per pixel column.

    Example:
        >>> lo, hi = min_max_waveform(np.array([0., 5., -1., 2., 3., 4.]), 3)
        >>> lo.tolist(), hi.tolist()
        ([0.0, -1.0, 3.0], [5.0, 2.0, 4.0])
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    bins = max(1, min(int(bins), x.size))
    edges = np.linspace(0, x.size, bins + 1).astype(np.int64)
    return np.minimum.reduceat(x, edges[:-1]), np.maximum.reduceat(x, edges[:-1])


class SignalRegions:
    """Region labels of the signals of one folder.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> np.save(folder / "rec1.npy", np.sin(np.arange(1000) / 10))
        >>> session = SignalRegions(folder, classes=["seizure"], sample_rate=100)
        >>> _ = session.set_regions("rec1.npy", [{"start": 1.5, "end": 2.25, "label": "seizure"}])
        >>> (folder / "regions.csv").read_text().splitlines()
        ['file,start,end,label', 'rec1.npy,1.5,2.25,seizure']
    """

    def __init__(self, folder: str | os.PathLike, *, classes: list[str] | None = None,
                 sample_rate: float = 1.0) -> None:  # fmt: skip
        self.folder = Path(folder).resolve()
        if not self.folder.is_dir():
            raise OptionError(f"Labeler: {str(folder)!r} is not a folder of signals.")
        if not sample_rate > 0:
            raise OptionError(f"Labeler: sample_rate must be positive. Received: {sample_rate}.")
        self.sample_rate = float(sample_rate)
        self.files = sorted(p.name for p in self.folder.iterdir() if p.is_file()
                            and p.suffix.lower() in SIGNAL_SUFFIXES and p.name != REGIONS_FILE)  # fmt: skip
        self.path = self.folder / REGIONS_FILE
        self.regions: dict[str, list[dict[str, Any]]] = self._read()
        found = sorted({r["label"] for rs in self.regions.values() for r in rs})
        self.classes = list(classes) if classes is not None else found
        unknown = sorted(set(found) - set(self.classes))
        if unknown:
            raise DataError(f"Labeler: the region file '{self.path}' has classes {unknown} "
                            f"that are not in classes={self.classes}.")  # fmt: skip
        self._history: list[tuple[str, list[dict[str, Any]]]] = []
        self._lock = threading.Lock()
        self._cache: dict[str, np.ndarray] = {}

    def signal(self, file: str) -> np.ndarray:
        """The signal ``file`` as a (T, C) float array."""
        if file not in self.files:
            raise DataError(f"Labeler: {file!r} is not a signal of {self.folder}.")
        if file not in self._cache:
            path = self.folder / file
            try:
                x = (
                    np.load(path, allow_pickle=False)
                    if file.lower().endswith(".npy")
                    else np.loadtxt(path, delimiter=",", ndmin=1)
                )
            except (OSError, ValueError) as err:
                raise DataError(f"Labeler: cannot read the signal '{path}': {err}.") from err
            x = np.asarray(x, dtype=np.float64)
            if x.ndim not in (1, 2) or x.shape[0] == 0:
                raise DataError(f"Labeler: the signal '{path}' must be (T,) or (T, C). "
                                f"Found shape {x.shape}.")  # fmt: skip
            self._cache = {file: x.reshape(x.shape[0], -1)}  # keep one signal in memory
        return self._cache[file]

    def describe(self) -> dict[str, Any]:
        """The page's view: files with their length in seconds and regions, classes."""
        return {"folder": str(self.folder), "classes": self.classes,
                "sample_rate": self.sample_rate, "can_undo": bool(self._history),
                "signals": [{"file": f, "regions": self.regions.get(f, [])} for f in self.files]}  # fmt: skip

    def waveform(self, file: str, start: float = 0.0, end: float | None = None,
                 bins: int = 1000) -> dict[str, Any]:  # fmt: skip
        """Min/max per bin of each channel between ``start`` and ``end`` seconds."""
        x = self.signal(file)
        first = max(0, int(start * self.sample_rate))
        last = x.shape[0] if end is None else min(x.shape[0], int(np.ceil(end * self.sample_rate)))
        if last <= first:
            raise OptionError(f"Labeler: the window {start}..{end} s of {file!r} is empty.")
        pieces = [min_max_waveform(x[first:last, c], min(bins, 4000)) for c in range(x.shape[1])]
        return {"file": file, "start": first / self.sample_rate, "end": last / self.sample_rate,
                "duration": x.shape[0] / self.sample_rate,
                "min": [lo.tolist() for lo, _ in pieces], "max": [hi.tolist() for _, hi in pieces]}  # fmt: skip

    def set_regions(self, file: str, regions: list[dict[str, Any]]) -> dict[str, Any]:
        """Replace the regions of ``file`` and save ``regions.csv``; undoable."""
        duration = self.signal(file).shape[0] / self.sample_rate
        checked = []
        for region in regions:
            try:
                start, end, label = (
                    float(region["start"]),
                    float(region["end"]),
                    str(region["label"]),
                )
            except (KeyError, TypeError, ValueError) as err:
                raise OptionError(f"Labeler: a region of {file!r} needs start, end and label. "
                                  f"Received: {region!r}.") from err  # fmt: skip
            if label not in self.classes:
                raise OptionError(f"Labeler: a region of {file!r} has the unknown class "
                                  f"{label!r}. Allowed: {self.classes}.")  # fmt: skip
            if not 0 <= start < end <= duration:
                raise DataError(f"Labeler: the region {start}..{end} s of {file!r} is empty or "
                                f"outside the signal (0..{duration} s).")  # fmt: skip
            checked.append({"start": start, "end": end, "label": label})
        with self._lock:
            before = self.regions.get(file, [])
            updated = {**self.regions, file: sorted(checked, key=lambda r: r["start"])}
            self._write(updated)
            self.regions = updated
            self._history.append((file, before))
        return self.describe()

    def undo(self) -> dict[str, Any]:
        """Undo the last region change and save."""
        with self._lock:
            if not self._history:
                raise OptionError("Labeler: nothing to undo.")
            file, before = self._history.pop()
            updated = {**self.regions, file: before}
            self._write(updated)
            self.regions = updated
        return self.describe()

    def _write(self, regions: dict[str, list[dict[str, Any]]]) -> None:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["file", "start", "end", "label"])
        for file in self.files:
            writer.writerows(
                [file, r["start"], r["end"], r["label"]] for r in regions.get(file, [])
            )
        write_atomic(self.path, out.getvalue())

    def _read(self) -> dict[str, list[dict[str, Any]]]:
        if not self.path.is_file():
            return {}
        regions: dict[str, list[dict[str, Any]]] = {}
        try:
            rows = list(csv.DictReader(io.StringIO(self.path.read_text(encoding="utf-8"))))
            for line, row in enumerate(rows, start=2):
                if row["file"] not in self.files:
                    raise DataError(f"Labeler: line {line} of '{self.path}' names "
                                    f"{row['file']!r}, which is not a signal of the folder.")  # fmt: skip
                regions.setdefault(row["file"], []).append(
                    {"start": float(row["start"]), "end": float(row["end"]), "label": row["label"]}
                )
        except (OSError, KeyError, ValueError, csv.Error) as err:
            if isinstance(err, DataError):
                raise
            raise DataError(f"Labeler: cannot read the region file '{self.path}' (columns "
                            f"file, start, end, label): {type(err).__name__}: {err}.") from err  # fmt: skip
        return regions


class RegionsRequest(BaseModel):
    """The body of ``POST /api/signals/regions``: all regions of one signal."""

    file: str
    regions: list[dict[str, Any]]


def add_signal_routes(app: Any) -> None:
    """``/api/signals``: signals and regions, the min/max waveform, save regions, undo."""
    from fastapi import Query

    def session() -> SignalRegions:
        if app.state.signal_labeler is None:
            raise OptionError("Labeler: no signal folder is open; start it with `deeptoolbox "
                              "label FOLDER --signals`.")  # fmt: skip
        return app.state.signal_labeler

    @app.get("/api/signals", summary="the signal folder, classes, signals and their regions")
    def get_signals() -> dict[str, Any]:
        if app.state.signal_labeler is None:
            return {"active": False}
        return {"active": True, **session().describe()}

    @app.get("/api/signals/waveform", summary="min/max per bin of a signal's window")
    def get_waveform(file: str = Query(...), start: float = 0.0, end: float | None = None,
                     bins: int = Query(1000, ge=1, le=4000)) -> dict[str, Any]:  # fmt: skip
        return session().waveform(file, start, end, bins)

    @app.post("/api/signals/regions", summary="replace a signal's regions; saved")
    def post_regions(request: RegionsRequest) -> dict[str, Any]:
        return {"active": True, **session().set_regions(request.file, request.regions)}

    @app.post("/api/signals/undo", summary="undo the last region change")
    def post_signals_undo() -> dict[str, Any]:
        return {"active": True, **session().undo()}
