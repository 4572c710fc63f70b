"""Writing export results atomically: into a temporary file or folder beside the target, then
renamed into place, so a failed export never leaves a half-written file where a good one was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from deeptoolbox.errors import OptionError


@contextlib.contextmanager
def staged_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; moved onto ``path`` when the block succeeds,
    deleted when it raises.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "model.bin"
        >>> with staged_file(target) as temporary:
        ...     _ = temporary.write_bytes(b"ok")
        >>> target.read_bytes()
        b'ok'
    """
    if path.is_dir():
        raise OptionError(
            f"export: '{path}' is a folder; give a file path, or pass folder=True to write a "
            "deployment folder."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


@contextlib.contextmanager
def staged_folder(path: Path, replaceable: Callable[[Path], bool]) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; it takes ``path``'s place when the block
    succeeds and is deleted when it raises.

    An existing ``path`` is replaced only when it is empty or ``replaceable(path)`` says it is
    an earlier export (never a folder of someone's other files).

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "deployment"
        >>> with staged_folder(target, lambda p: False) as temporary:
        ...     _ = (temporary / "a.txt").write_text("a")
        >>> sorted(p.name for p in target.iterdir())
        ['a.txt']
    """
    _check_replaceable(path, replaceable)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    try:
        yield temporary
        _swap_in(temporary, path)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


def _check_replaceable(path: Path, replaceable: Callable[[Path], bool]) -> None:
    if not path.exists():
        return
    if not path.is_dir():
        raise OptionError(
            f"export: '{path}' exists and is a file; a deployment folder goes there. Remove it "
            "or choose another path."
        )
    if any(path.iterdir()) and not replaceable(path):
        raise OptionError(
            f"export: the folder '{path}' exists, is not empty and is not an earlier export "
            "(no metadata.json / config.pbtxt written by deeptoolbox); it is left alone. "
            "Choose a new or empty folder."
        )


def _swap_in(temporary: Path, path: Path) -> None:
    if not path.exists():
        os.replace(temporary, path)
        return
    old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old-"))
    os.rmdir(old)
    os.replace(path, old)
    try:
        os.replace(temporary, path)
    except OSError:
        os.replace(old, path)  # put the earlier export back
        raise
    shutil.rmtree(old, ignore_errors=True)
