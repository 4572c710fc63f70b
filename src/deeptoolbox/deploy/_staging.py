"""Writing export results atomically: into a temporary file or folder beside the target, then
renamed into place (:mod:`deeptoolbox._atomic`), so a failed export never leaves a
half-written file where a good one was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from deeptoolbox._atomic import atomic_folder, atomic_path
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
    with atomic_path(path) as temporary:
        yield temporary


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
    with atomic_folder(path) as temporary:
        yield temporary


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
