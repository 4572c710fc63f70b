"""FileDatastore: any files, read by a function of your own (MATLAB ``fileDatastore``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from deeptoolbox.data import _files
from deeptoolbox.data._base import Datastore
from deeptoolbox.errors import DataError, OptionError

__all__ = ["FileDatastore"]


class FileDatastore(Datastore):
    """Files read by ``read_fn(path) -> observation`` (MATLAB ``fileDatastore``).

    ``ds[i]`` is ``read_fn(file)`` — with the class index appended when labelled. Paths are
    local paths or fsspec URLs (``read_fn`` can open both with ``fsspec.open``). An
    exception in ``read_fn`` becomes a DataError naming the file; ``on_error="skip"`` reads
    every file once up front and drops the failing ones with one warning.

    Args:
        location, labels, classes, recursive, on_error: as for :class:`ImageDatastore`.
        read_fn: a function of the path giving one observation (picklable for workers).
        extensions: file extensions to read from folders (None: every file).
        storage_options: fsspec options for URLs (credentials, ``endpoint_url``...).
        cache_dir: a folder for local copies of remote files: ``read_fn`` then gets the
            path of the local copy (fetched on first use) instead of the URL.

    Example:
        >>> import tempfile, os
        >>> root = tempfile.mkdtemp()
        >>> for name in ("a", "b"):
        ...     os.makedirs(os.path.join(root, name))
        ...     _ = open(os.path.join(root, name, "x.dat"), "wb").write(bytes(range(4)))
        >>> def read(path):
        ...     return torch.tensor(list(open(path, "rb").read()), dtype=torch.float32)
        >>> ds = FileDatastore(root, read, extensions=[".dat"])
        >>> ds[1][0].tolist(), ds.classes
        ([0.0, 1.0, 2.0, 3.0], ['a', 'b'])
    """

    def __init__(
        self,
        location: _files.Location,
        read_fn: Callable[[str], Any],
        *,
        extensions: Sequence[str] | None = None,
        labels: str | Sequence[Any] | np.ndarray | None = "auto",
        classes: Sequence[Any] | None = None,
        recursive: bool = True,
        on_error: str = "raise",
        storage_options: dict[str, Any] | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        if not callable(read_fn):
            raise OptionError(
                f"FileDatastore: `read_fn` must be callable. Received: {type(read_fn).__name__}."
            )
        _files.check_on_error("FileDatastore", on_error)
        self._remote = _files.remote_access("FileDatastore", storage_options, cache_dir)
        self.read_fn = read_fn
        self._files, self._labels, self._classes, self._codes = _files.labelled_files(
            "FileDatastore", location, extensions, recursive, labels, classes, on_error,
            self._read, self._remote,
        )  # fmt: skip
        self._init_view()

    @property
    def files(self) -> list[str]:
        """The file of each observation, in datastore order."""
        return [self._files[j] for j in self._order]

    def _read(self, path: str) -> Any:
        given = self._remote.local_path(path)
        try:
            return self.read_fn(given)
        except DataError:
            raise
        except Exception as err:  # a user function may raise anything
            hint = ""
            if _files.is_url(given) and isinstance(err, OSError):
                hint = (
                    " read_fn was given the URL itself: open it with fsspec.open(path), or pass "
                    "cache_dir= so that read_fn gets a local copy's path."
                )
            raise DataError(
                f"FileDatastore: cannot read '{path}': {type(err).__name__}: {err}.{hint}"
            ) from err

    def _count(self) -> int:
        return len(self._files)

    def _source_labels(self) -> np.ndarray | None:
        return self._labels

    def _load(self, j: int) -> Any:
        observation = self._read(self._files[j])
        if self._codes is None:
            return observation
        return observation, torch.tensor(self._codes[j])
