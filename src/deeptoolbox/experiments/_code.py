"""Code snapshots: what ran (setup source, its file and hash, parameters, versions), loading a
setup function back from a snapshot (workers on other machines, re-runs), and code diffs."""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib
import inspect
import json
import linecache
import platform
import sys
import types
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deeptoolbox.errors import ExperimentError

__all__ = ["CodeSnapshot", "compare_code", "snapshot_function", "load_function", "versions"]

LOADING = {"active": False}  # True while a snapshot's file runs: exp.run() then refuses


def _sha256(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


def snapshot_function(function: Callable[..., Any]) -> dict[str, Any]:
    """Name, module, file, source and file text (with hashes) of a function.

    Example:
        >>> record = snapshot_function(snapshot_function)
        >>> record["name"], record["source"].startswith("def snapshot_function")
        ('snapshot_function', True)
    """
    try:
        file = inspect.getsourcefile(function)
    except TypeError:
        file = None
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        source = None
    file_source = None
    if file is not None:
        path = Path(file)
        if path.is_file():
            file_source = path.read_text(encoding="utf-8", errors="replace")
        elif linecache.getlines(file):  # notebooks and exec'd code keep their lines here
            file_source = "".join(linecache.getlines(file))
    return {
        "name": getattr(function, "__qualname__", getattr(function, "__name__", repr(function))),
        "module": getattr(function, "__module__", None),
        "file": file,
        "source": source,
        "source_sha256": _sha256(source),
        "file_source": file_source,
        "file_sha256": _sha256(file_source),
    }


@functools.lru_cache(maxsize=1)
def _installed() -> tuple[tuple[str, str], ...]:
    from importlib import metadata

    packages = {}
    for distribution in metadata.distributions():
        name = distribution.metadata.get("Name")
        if name:
            packages[name.lower()] = distribution.version
    return tuple(sorted(packages.items()))


def versions() -> dict[str, Any]:
    """Python, platform, the toolbox and every installed package's version."""
    from deeptoolbox._version import __version__

    packages = dict(_installed())
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "deeptoolbox": __version__,
        "torch": packages.get("torch"),
        "optuna": packages.get("optuna"),
        "packages": packages,
    }


@dataclass
class CodeSnapshot:
    """What one run of an experiment ran: setup code (function and whole file, with SHA-256
    hashes), parameter table, settings, constraints, package and toolbox versions.

    ``str(snapshot)`` is the text :func:`compare_code` diffs.

    Example:
        >>> snap = CodeSnapshot("demo", 1, setup={"name": "setup", "source": "def setup(p):\\n"})
        >>> "def setup(p):" in str(snap)
        True
    """

    experiment: str
    run: int | None
    setup: dict[str, Any]
    parameters: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    constraints: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    host: str = ""

    @property
    def source(self) -> str | None:
        """Source of the setup function."""
        return self.setup.get("source")

    @property
    def file_source(self) -> str | None:
        """Text of the file the setup function lives in."""
        return self.setup.get("file_source")

    @property
    def sha256(self) -> str | None:
        """SHA-256 of the setup function's file."""
        return self.setup.get("file_sha256")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> CodeSnapshot:
        return cls(**record)

    def label(self) -> str:
        where = self.setup.get("file") or "?"
        digest = (self.sha256 or "")[:12]
        run = f" run {self.run}" if self.run is not None else ""
        return f"{self.experiment}{run} ({where}, sha256 {digest})"

    def __str__(self) -> str:
        lines = [f"{key}: {value!r}" for key, value in self.settings.items()]
        lines.append("parameters:")
        lines += [f"  {name}: {json.dumps(spec, sort_keys=True)}"
                  for name, spec in self.parameters.items()]  # fmt: skip
        for constraint in self.constraints:
            lines.append(f"constraint {constraint.get('name')}:")
            lines += (constraint.get("source") or "<source not available>").splitlines()
        lines.append(f"setup function {self.setup.get('name')}:")
        lines += (self.source or "<source not available>").splitlines()
        return "\n".join(lines) + "\n"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def compare_code(a: Any, b: Any, *, context: int = 3) -> str:
    """Unified diff of the code and parameter tables of two experiments or two runs.

    ``a`` and ``b`` are :class:`Experiment` objects (their latest run, or their current
    definition when never run) or :class:`CodeSnapshot` objects (``exp.code(run=2)``).
    Returns ``""`` when nothing differs (MATLAB Experiment Manager's code comparison).

    Example:
        >>> one = CodeSnapshot("a", 1, {"name": "setup", "source": "def setup(p):\\n    x = 1\\n"})
        >>> two = CodeSnapshot("b", 1, {"name": "setup", "source": "def setup(p):\\n    x = 2\\n"})
        >>> [line for line in compare_code(one, two).splitlines() if line[:1] in "+-"][2:]
        ['-    x = 1', '+    x = 2']
    """
    first, second = _as_snapshot(a), _as_snapshot(b)
    diff = difflib.unified_diff(
        str(first).splitlines(keepends=True), str(second).splitlines(keepends=True),
        fromfile=first.label(), tofile=second.label(), n=context,
    )  # fmt: skip
    return "".join(diff)


def _as_snapshot(value: Any) -> CodeSnapshot:
    if isinstance(value, CodeSnapshot):
        return value
    code = getattr(value, "code", None)
    if callable(code):
        return code()
    raise ExperimentError(
        f"compare_code: expected an Experiment or a CodeSnapshot (exp.code()). Received: "
        f"{type(value).__name__}."
    )


def _walk(module: types.ModuleType, qualname: str) -> Any:
    target: Any = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
        if target is None:
            return None
    return target


def _exec_file(record: dict[str, Any]) -> types.ModuleType:
    digest = (record.get("file_sha256") or "0" * 12)[:12]
    name = f"_dtb_setup_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    module = types.ModuleType(name)
    file = record.get("file") or f"<{name}>"
    module.__file__ = file
    folder = str(Path(file).parent)
    if Path(folder).is_dir() and folder not in sys.path:
        sys.path.append(folder)  # sibling modules of the setup file can be imported
    sys.modules[name] = module
    LOADING["active"] = True
    try:
        exec(compile(record["file_source"], file, "exec"), module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    finally:
        LOADING["active"] = False
    return module


def load_function(record: dict[str, Any]) -> Callable[..., Any]:
    """The function a :func:`snapshot_function` record describes, exactly as recorded.

    Its module is imported when its file is unchanged; otherwise the recorded file text runs
    as a fresh module (``if __name__ == "__main__":`` blocks do not run).

    Example:
        >>> load_function(snapshot_function(snapshot_function)) is snapshot_function
        True
    """
    qualname, module_name = record.get("name", ""), record.get("module")
    if "<" in qualname:
        raise ExperimentError(
            f"the setup function {qualname!r} was defined inside another function or is a "
            "lambda, so a worker process cannot find it. Define it at the top level of a .py "
            "file, or run with workers=0 (trials in this process)."
        )
    if module_name and module_name not in ("__main__", "__mp_main__", "__docs__"):
        try:
            module = importlib.import_module(module_name)
        except Exception:
            module = None
        file = getattr(module, "__file__", None)
        unchanged = file and _sha256(_read(file)) == record.get("file_sha256")
        function = _walk(module, qualname) if module is not None else None
        if function is not None and (unchanged or record.get("file_source") is None):
            return function
    if record.get("file_source") is None:
        raise ExperimentError(
            f"the setup function {qualname!r} cannot be loaded: its module {module_name!r} does "
            "not import here and its file text was not recorded. Define it in a .py file."
        )
    function = _walk(_exec_file(record), qualname)
    if function is None:
        raise ExperimentError(
            f"the recorded file {record.get('file')!r} has no top-level {qualname!r}."
        )
    return function


def _read(file: str) -> str | None:
    try:
        return Path(file).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
