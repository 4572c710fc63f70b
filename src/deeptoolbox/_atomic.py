"""Atomic file writes with ordinary permissions, shared by every writer in the toolbox.

Everything the toolbox writes (saved networks, exported models, checkpoints, plots) goes
through a temporary file or folder next to the target, renamed into place once complete, so
a write that fails midway leaves any earlier file intact. Unlike :func:`tempfile.mkstemp`
(always 0600) and :func:`tempfile.mkdtemp` (0700), the temporary entries here are created the
way ``open(path, "w")`` and ``os.mkdir(path)`` create them: 0666 / 0777 less the umask (0644 /
0755 under the usual umask 022), and a file that replaces an existing one keeps that file's
permissions, as overwriting it in place would.

A write that fails with an ``OSError`` (disk full, I/O error) raises
:class:`~deeptoolbox.errors.FileWriteError` naming the path and saying that what was there is
unchanged. This module depends on the standard library and ``errors`` only, so any subpackage
can import it.

Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "notes.txt")
    >>> with atomic_open(path, "w") as stream:
    ...     _ = stream.write("hello")
    >>> open(path).read()
    'hello'
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import secrets
import shutil
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from deeptoolbox.errors import DeepToolboxError, FileWriteError

__all__ = ["atomic_open", "atomic_path", "atomic_folder"]

_ATTEMPTS = 100
# the errors of a write that cannot complete; others (a missing input file the writer reads,
# say) pass through unchanged
_WRITE_FAILURES = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS,
                   errno.EACCES, errno.EPERM}  # fmt: skip


def write_error(target: str | os.PathLike, err: OSError) -> FileWriteError:
    """The FileWriteError for a failed write of ``target`` (errno and filename kept).

    Example:
        >>> str(write_error("out/net.zip", OSError(errno.ENOSPC, "No space left on device")))
        "Could not write 'out/net.zip': No space left on device (ENOSPC). What was at that path before is unchanged; free disk space or write to another location."
    """
    reason = err.strerror or str(err) or type(err).__name__
    code = errno.errorcode.get(err.errno) if err.errno is not None else None
    error = FileWriteError(
        f"Could not write '{os.fspath(target)}': {reason}"
        + (f" ({code})" if code else "")
        + ". What was at that path before is unchanged; free disk space or write to another "
        "location."
    )
    error.errno, error.strerror, error.filename = err.errno, err.strerror, os.fspath(target)
    return error


def is_write_failure(err: OSError) -> bool:
    """True for the OSErrors of a write that cannot complete (disk full, I/O error, file size
    limit, read-only or forbidden location), which become FileWriteError.

    Example:
        >>> is_write_failure(OSError(errno.ENOSPC, "No space left on device"))
        True
        >>> is_write_failure(FileNotFoundError(errno.ENOENT, "No such file"))
        False
    """
    return not isinstance(err, DeepToolboxError) and err.errno in _WRITE_FAILURES


@contextlib.contextmanager
def _write_errors_named(target: Path) -> Iterator[None]:
    """Turn a failed write of ``target`` (disk full, I/O error...) into a FileWriteError."""
    try:
        yield
    except OSError as err:
        if not is_write_failure(err):
            raise
        raise write_error(target, err) from err


def _temporary_name(target: Path, suffix: str) -> Path:
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}{suffix}")


def _existing_mode(target: Path) -> int | None:
    """The permission bits of the file or folder at ``target``, or None when there is none."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return None


def _create_file(target: Path, suffix: str) -> Path:
    """Create an empty temporary file next to ``target`` with open()'s permissions."""
    for _ in range(_ATTEMPTS):
        candidate = _temporary_name(target, suffix)
        try:
            handle = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(handle)
        return candidate
    raise FileExistsError(f"cannot create a temporary file next to {target}")


def _create_folder(target: Path, suffix: str) -> Path:
    """Create an empty temporary folder next to ``target`` with os.mkdir()'s permissions."""
    for _ in range(_ATTEMPTS):
        candidate = _temporary_name(target, suffix)
        try:
            os.mkdir(candidate, 0o777)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"cannot create a temporary folder next to {target}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary file path to write ``path`` through; renamed onto ``path`` on success.

    For writers that take a file name (``torch.save``, ``savefig``, ``onnx.save``...). The
    temporary file exists (empty) when the block starts, in the target's folder (created when
    missing), and ends in ``suffix`` (default: the target's own suffix, so writers that read
    the format from the extension still see it). On an exception it is removed and the target
    is left as it was.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "data.bin")
        >>> with atomic_path(path) as temporary:
        ...     _ = temporary.write_bytes(b"abc")
        >>> open(path, "rb").read()
        b'abc'
    """
    target = Path(path)
    with _write_errors_named(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = _existing_mode(target)
        temporary = _create_file(target, target.suffix if suffix is None else suffix)
        try:
            yield temporary
            if mode is not None:
                os.chmod(temporary, mode)
            os.replace(temporary, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(temporary)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file to write ``path`` through (``mode`` "w" or "wb", plus open()'s
    keyword arguments); it replaces ``path`` when the block ends without an exception.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "x.json")
        >>> with atomic_open(path, "w", encoding="utf-8") as stream:
        ...     _ = stream.write("{}")
        >>> os.path.getsize(path)
        2
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb'. Received: {mode!r}.")
    with atomic_path(path, suffix=".tmp") as temporary, open(temporary, mode, **kwargs) as stream:
        yield stream


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder to fill; it then replaces the folder ``path`` as a whole.

    On Linux an existing folder at ``path`` is swapped with the new one in one atomic step
    (``renameat2``), so ``path`` holds the old or the new contents at every moment, even if
    the process is killed. Elsewhere it is moved aside first and put back if the final rename
    fails.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "saved")
        >>> with atomic_folder(path) as folder:
        ...     _ = (folder / "a.txt").write_text("a")
        >>> sorted(os.listdir(path))
        ['a.txt']
    """
    target = Path(path)
    with _write_errors_named(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = _existing_mode(target)
        temporary = _create_folder(target, ".tmp")
        try:
            yield temporary
            if mode is not None:
                os.chmod(temporary, mode)
            _swap_folder(temporary, target)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise


def _swap_folder(temporary: Path, target: Path) -> None:
    if not target.exists():
        os.rename(temporary, target)
        return
    if _exchange(temporary, target):  # one atomic step: a kill -9 at any moment leaves a folder
        shutil.rmtree(temporary, ignore_errors=True)  # now holds the old contents
        return
    backup = _temporary_name(target, ".old")
    os.rename(target, backup)
    try:
        os.rename(temporary, target)
    except BaseException:
        os.rename(backup, target)
        raise
    shutil.rmtree(backup, ignore_errors=True)


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically with Linux's ``renameat2(RENAME_EXCHANGE)``; False where the
    system or the file system cannot (then the caller renames in two steps)."""
    renameat2 = getattr(_libc(), "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), str(second))


@functools.cache
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
