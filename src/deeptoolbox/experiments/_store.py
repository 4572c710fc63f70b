"""The experiment store: Optuna's RDB storage on SQLite (a local file) or any SQLAlchemy URL.

What deeptoolbox keeps besides Optuna's own tables (docs/experiments.md, "The store"):

- study user attributes ``dtb.definition`` (strategy, metric, parameter table...),
  ``dtb.run.NNNN`` (code snapshot of each run), ``dtb.annotation.N``, and the control flags
  ``dtb.cancel``, ``dtb.deadline``, ``dtb.halt``;
- trial user attributes: see :data:`TRIAL_ATTRIBUTES`.
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path
from typing import Any

from deeptoolbox.errors import StoreError

__all__ = ["store_url", "open_storage", "default_artifacts", "TRIAL_ATTRIBUTES"]

HEARTBEAT_SECONDS = 5
GRACE_SECONDS = 30
DEFINITION = "dtb.definition"
RUN_PREFIX = "dtb.run."
ANNOTATION_PREFIX = "dtb.annotation."
CANCEL, DEADLINE, HALT = "dtb.cancel", "dtb.deadline", "dtb.halt"
HOST = socket.gethostname()

# trial user attribute -> meaning (kept here so the browser UI of a later issue reads the same)
TRIAL_ATTRIBUTES = {
    "status": "completed, stopped, pruned, failed, crashed, skipped or cancelled",
    "params": "every parameter given to setup, fixed values included",
    "metrics": "metric values {name: value}: the latest while the trial runs, then the final",
    "best": "best value of each metric during the trial {name: value}",
    "error": "one-line reason of a failure",
    "traceback": "the Python traceback of a failure",
    "artifacts": "folder of the trial's files (network, history, plots, params)",
    "host": "machine that ran the trial",
    "pid": "process id of the worker",
    "run": "number of the run (exp.run call) that started the trial",
    "seed": "random seed given to the trial",
    "threads": "torch CPU threads used (a re-run uses the same)",
    "progress": "percent done, as set by the monitor",
    "info": "information fields of the monitor {name: value}",
    "curves": "recorded metric rows [{iteration, name: value...}] (at most 1000, sent live)",
    "stop_requested": "set by exp.stop(trial)",
    "requeue_of": "number of the crashed trial this one repeats",
    "duration": "seconds the trial ran",
    "heartbeat": "time (seconds since 1970) the worker last said it is alive",
    "requeued": "True when a copy of this crashed or cancelled trial was queued again",
}


def store_url(store: str | os.PathLike) -> str:
    """The SQLAlchemy URL of ``store``: a SQLite file path, or a URL given as is.

    Example:
        >>> store_url("postgresql://user@localhost:5432/experiments")
        'postgresql://user@localhost:5432/experiments'
        >>> store_url("/tmp/experiments.db")
        'sqlite:////tmp/experiments.db'
    """
    if not isinstance(store, str | os.PathLike):
        raise StoreError(
            "Experiment: `store` must be a file path or a database URL. Received: "
            f"{store!r}. Example: store='experiments.db' or "
            "store='postgresql://user@host/dbname'."
        )
    text = os.fspath(store)
    if "://" in text:
        return text
    path = Path(text).expanduser().resolve()
    if not path.parent.is_dir():
        raise StoreError(
            f"Experiment: the store {text!r} is in a folder that does not exist "
            f"({str(path.parent)!r}). Create the folder first, or give another path."
        )
    if path.is_dir():
        raise StoreError(f"Experiment: the store {text!r} is a folder; give a file path.")
    return f"sqlite:///{path}"


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for other databases)."""
    return Path(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else None


def default_artifacts(url: str) -> Path:
    """Where trial folders go by default: beside a SQLite file, else ./experiments-artifacts."""
    path = sqlite_path(url)
    if path is not None:
        return path.with_name(path.stem + "-artifacts")
    return Path("experiments-artifacts").resolve()


def _serialize_sqlite(engine: Any) -> None:
    """Every transaction takes SQLite's write lock at its start (BEGIN IMMEDIATE), so that
    two workers never both pop one queued trial; waits up to a minute for the lock."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _connect(connection, _record):
        connection.isolation_level = None  # let SQLAlchemy's "begin" below open transactions
        connection.execute("PRAGMA busy_timeout = 60000")
        connection.execute("PRAGMA synchronous = NORMAL")

    @event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()


def _wal(path: Path) -> None:
    import sqlite3

    try:
        connection = sqlite3.connect(path, timeout=60)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
        finally:
            connection.close()
    except sqlite3.DatabaseError as err:  # not a database, damaged, locked, read-only
        raise StoreError(f"experiment store {str(path)!r} cannot be opened: {err}.") from err


def open_storage(url: str, *, create: bool = True) -> Any:
    """An Optuna ``RDBStorage`` on ``url`` (SQLite files in WAL mode, serialized writes).

    Example:
        >>> import tempfile, pathlib
        >>> url = store_url(pathlib.Path(tempfile.mkdtemp()) / "e.db")
        >>> type(open_storage(url)).__name__
        'RDBStorage'
    """
    try:
        import optuna
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise StoreError(
            "deeptoolbox.experiments needs Optuna and SQLAlchemy: "
            "pip install 'deeptoolbox[experiments]'."
        ) from err
    path = sqlite_path(url)
    if path is not None:
        if not create and not path.exists():
            raise StoreError(f"experiment store {str(path)!r} does not exist.")
        _wal(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            storage = optuna.storages.RDBStorage(
                url,
                engine_kwargs={"connect_args": {"timeout": 60}} if path is not None else {},
                skip_table_creation=not create,
            )
        except ImportError as err:
            raise StoreError(
                f"experiment store {url!r}: the database driver is not installed ({err}). "
                "For PostgreSQL: pip install 'psycopg[binary]' (URL postgresql+psycopg://...) "
                "or psycopg2-binary."
            ) from err
        except Exception as err:  # sqlalchemy errors: bad URL, server down, no permission
            raise StoreError(f"experiment store {url!r} cannot be opened: {err}") from err
    if path is not None:
        _serialize_sqlite(storage.engine)
    return storage


def quiet_optuna() -> None:
    """Optuna logs each trial at INFO; deeptoolbox prints its own lines."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
