"""File collections shared by the file datastores: listing (local folders and fsspec URLs),
reading bytes (remote files through fsspec, optionally cached on local disk: :class:`Remote`),
labels from folder names, and skipping unreadable files."""

from __future__ import annotations

import contextlib
import os
import posixpath
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deeptoolbox.errors import (
    DataError,
    DeepToolboxError,
    MissingDependencyError,
    OptionError,
    ResourceLimitError,
)

Location = str | os.PathLike | Sequence[str | os.PathLike]


def is_url(path: str) -> bool:
    """True for an fsspec URL such as ``memory://x`` or ``s3://bucket/key``."""
    return "://" in path


def _extension(path: str) -> str:
    return os.path.splitext(path)[1].lower()


# the package fsspec needs for each protocol (installed by the `remote` extra)
_PROTOCOL_PACKAGES = {
    "s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs",
    "abfss": "adlfs", "adl": "adlfs", "http": "aiohttp", "https": "aiohttp",
}  # fmt: skip


def _protocol(url: str) -> str:
    return url.split("://", 1)[0].split("::")[-1].lower()


def _refused_option(url: str, storage_options: dict[str, Any] | None, err: Exception):
    return OptionError(
        f"cannot open '{url}': the {_protocol(url)}:// filesystem does not take one of the "
        f"storage_options given (keys {sorted(storage_options or {})}): {err}."
    )


@contextlib.contextmanager
def reaching(url: str, storage_options: dict[str, Any] | None) -> Iterator[None]:
    """Errors of a remote filesystem (botocore, aiohttp, ...) as DataError, and an option it
    does not take as OptionError, naming the URL and the storage options given (their keys
    only: values may be secrets). OSError passes: readers report it per file."""
    keys = sorted(storage_options or {})
    given = f"storage_options keys {keys}" if keys else "no storage_options"
    try:
        yield
    except (DeepToolboxError, OSError):
        raise
    except TypeError as err:  # s3fs passes unknown options on to its session, at first use
        if "argument" not in str(err):
            raise
        raise _refused_option(url, storage_options, err) from err
    except Exception as err:  # each backend raises its own types (botocore, aiohttp, ...)
        raise DataError(
            f"cannot reach '{url}': {type(err).__name__}: {err}. Check the URL, the network "
            f"and the credentials/endpoint in storage_options ({given})."
        ) from err


@dataclass(frozen=True)
class Remote:
    """How a file datastore reaches fsspec URLs (``s3://``, ``gs://``, ``az://``,
    ``http(s)://``, ``memory://``...): ``storage_options`` go to the protocol's filesystem
    (credentials, ``endpoint_url``...), and with ``cache_dir`` each remote file is copied to
    that folder on its first read (fsspec's ``filecache``) and read from there afterwards,
    in this process and in later ones. Local paths are read directly.

    Example:
        >>> import fsspec
        >>> with fsspec.open("memory://remote-doc/a.txt", "wb") as f:
        ...     _ = f.write(b"hello")
        >>> Remote().read_bytes("memory://remote-doc/a.txt")
        b'hello'
    """

    storage_options: dict[str, Any] | None = field(default=None, repr=False)  # secrets
    cache_dir: str | None = None

    def filesystem(self, url: str, cached: bool = False) -> tuple[Any, str]:
        """The fsspec filesystem for ``url`` and the path in it; with ``cached`` (and a
        ``cache_dir``), the caching filesystem in front of it."""
        import fsspec

        protocol = _protocol(url)
        options = dict(self.storage_options or {})
        try:
            if cached and self.cache_dir is not None:
                fs = fsspec.filesystem(
                    "filecache", target_protocol=protocol, target_options=options,
                    cache_storage=self.cache_dir,
                )  # fmt: skip
                return fs, fs._strip_protocol(url)
            return fsspec.core.url_to_fs(url, **options)
        except TypeError as err:  # a storage option the filesystem does not take
            raise _refused_option(url, options, err) from err
        except ImportError as err:
            package = _PROTOCOL_PACKAGES.get(protocol, f"the fsspec package for {protocol}://")
            raise MissingDependencyError(
                f'{protocol}:// needs {package}: pip install "deeptoolbox[remote]" (or pip '
                f"install {package}). Reading '{url}' failed: {err}"
            ) from err
        except ValueError as err:
            if "protocol" not in str(err).lower():
                raise
            raise OptionError(
                f"cannot read '{url}': fsspec knows no protocol '{protocol}://'. Use a local "
                "path or an fsspec URL such as s3://, gs://, az://, http(s):// or memory://."
            ) from err

    @contextlib.contextmanager
    def open(self, path: str) -> Iterator[Any]:
        """A binary file object for a URL (through the cache when there is one); a local
        path is given back as it is (readers open it themselves)."""
        if not is_url(path):
            yield path
            return
        fs, inner = self.filesystem(path, cached=True)
        with reaching(path, self.storage_options), fs.open(inner, "rb") as handle:
            yield handle

    def read_bytes(self, path: str) -> bytes:
        """The content of a local file or URL."""
        if not is_url(path):
            with open(path, "rb") as handle:
                return handle.read()
        with self.open(path) as handle:
            return handle.read()

    def local_path(self, path: str) -> str:
        """A local path holding the file: the path itself, or (with ``cache_dir``) the cached
        copy of a URL, fetched on first use; a URL without ``cache_dir`` comes back as is."""
        if not is_url(path) or self.cache_dir is None:
            return path
        import fsspec

        self.filesystem(path)  # the clear error when the protocol's package is missing
        with reaching(path, self.storage_options):
            return fsspec.open_local(
                f"filecache::{path}", filecache={"cache_storage": self.cache_dir},
                **{_protocol(path): dict(self.storage_options or {})},
            )  # fmt: skip


def remote_access(kind: str, storage_options: Any, cache_dir: Any) -> Remote:
    """Check a datastore's ``storage_options`` and ``cache_dir`` options."""
    if storage_options is not None and not isinstance(storage_options, dict):
        raise OptionError(
            f"{kind}: `storage_options` must be a dict of fsspec options (for example "
            "{'endpoint_url': 'http://127.0.0.1:9000', 'key': ..., 'secret': ...}) or None. "
            f"Received: {type(storage_options).__name__}."
        )
    if cache_dir is not None and not isinstance(cache_dir, str | os.PathLike):
        raise OptionError(
            f"{kind}: `cache_dir` must be a folder path or None. Received: {cache_dir!r}."
        )
    folder = None if cache_dir is None else os.path.abspath(os.fspath(cache_dir))
    return Remote(dict(storage_options) if storage_options else None, folder)


def _list_url(url: str, recursive: bool, remote: Remote) -> tuple[list[str], bool]:
    fs, root = remote.filesystem(url)
    with reaching(url, remote.storage_options):
        if not fs.exists(root):
            raise DataError(f"cannot find '{url}': no such file or folder.")
        if not fs.isdir(root):
            return [url], False
        found = fs.find(root) if recursive else fs.ls(root, detail=False)
        return sorted(_unstrip(fs, p) for p in found if not fs.isdir(p)), True


def _unstrip(fs: Any, path: str) -> str:
    return path if is_url(path) else fs.unstrip_protocol(path)  # http(s) lists full URLs


def _list_local(path: str, recursive: bool) -> tuple[list[str], bool]:
    folder = Path(path)
    if folder.is_file():
        return [str(folder)], False
    if not folder.is_dir():
        raise DataError(f"cannot find '{path}': no such file or folder.")
    pattern = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(str(p) for p in pattern if p.is_file()), True


def list_files(
    kind: str,
    location: Location,
    extensions: Sequence[str] | None,
    recursive: bool,
    remote: Remote | None = None,
) -> tuple[list[str], list[str | None]]:
    """Files under ``location`` (folders, files or URLs, listed with ``remote``'s storage
    options) with one of ``extensions`` (None: any file).

    Returns the files and, for each, the folder it was found under (None for a file named
    directly), for labels from folder names.
    """
    if isinstance(location, str | os.PathLike):
        entries = [os.fspath(location)]
    elif isinstance(location, Sequence) and location:
        entries = [os.fspath(e) for e in location]
    else:
        raise OptionError(
            f"{kind}: `location` must be a folder, a file, a URL or a non-empty list of them. "
            f"Received: {location!r}."
        )
    allowed = (
        None
        if extensions is None
        else tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
    )
    files: list[str] = []
    roots: list[str | None] = []
    for entry in entries:
        listed, is_folder = (
            _list_url(entry, recursive, remote or Remote())
            if is_url(entry)
            else _list_local(entry, recursive)
        )
        if not is_folder:
            if allowed is not None and _extension(entry) not in allowed:
                raise DataError(
                    f"{kind}: '{entry}' has extension '{_extension(entry)}', which this "
                    f"datastore does not read. Allowed: {list(allowed)} (option `extensions`)."
                )
            files.append(listed[0])
            roots.append(None)
            continue
        kept = [f for f in listed if allowed is None or _extension(f) in allowed]
        if not kept:
            others = sorted({_extension(f) or "(none)" for f in listed})
            found = f"it holds files with extensions {others}" if listed else "it is empty"
            wanted = "files" if allowed is None else f"files with extensions {list(allowed)}"
            raise DataError(
                f"{kind}: no {wanted} in folder '{entry}': {found}. "
                "Set `extensions` to read other files."
            )
        files.extend(kept)
        roots.extend([entry] * len(kept))
    return files, roots


def read_bytes(path: str, remote: Remote | None = None) -> bytes:
    """The content of a local file or fsspec URL (through ``remote``: storage options and
    cache)."""
    return (remote or Remote()).read_bytes(path)


def parent_name(path: str) -> str:
    """Name of the folder holding ``path`` (local path or URL)."""
    if is_url(path):
        return posixpath.basename(posixpath.dirname(path.split("://", 1)[1]))
    return os.path.basename(os.path.dirname(os.path.abspath(path)))


def _url_path(url: str) -> str:
    return url.split("://", 1)[1].strip("/")


def _in_subfolder(path: str, root: str | None) -> bool:
    if root is None:
        return False
    if is_url(path):
        return posixpath.dirname(_url_path(path)) != _url_path(root)
    return os.path.dirname(os.path.abspath(path)) != os.path.abspath(root)


def resolve_labels(
    kind: str,
    files: list[str],
    roots: list[str | None],
    labels: str | Sequence[Any] | np.ndarray | None,
    classes: Sequence[Any] | None,
) -> tuple[np.ndarray | None, list[Any] | None]:
    """Labels per file ("auto", "folders" or its MATLAB spelling "foldernames", None or a
    list) and the ordered class list."""
    if isinstance(labels, str):
        if labels not in ("auto", "folders", "foldernames"):
            raise OptionError(
                f"{kind}: `labels` must be 'auto', 'folders' (or MATLAB's 'foldernames'), None, "
                f"a label CSV (a .csv path) or one label per file. Received: {labels!r}."
            )
        if labels == "auto" and not any(
            _in_subfolder(f, r) for f, r in zip(files, roots, strict=True)
        ):
            return None, None
        values = np.asarray([parent_name(f) for f in files])
    elif labels is None:
        return None, None
    else:
        values = np.asarray(labels)
        if values.ndim != 1 or len(values) != len(files):
            raise DataError(
                f"{kind}: `labels` must give one label per file: {len(files)} files but "
                f"{values.shape[0] if values.ndim else 0} labels (shape {values.shape})."
            )
    return values, check_classes(kind, values, classes)


def labelled_files(
    kind: str,
    location: Any,
    extensions: Any,
    recursive: bool,
    labels: str | Sequence[Any] | np.ndarray | None,
    classes: Sequence[Any] | None,
    on_error: str,
    read: Callable[[str], Any],
    remote: Remote | None = None,
    keep: Callable[[list[str], list[str | None]], list[int]] | None = None,
) -> tuple[list[str], np.ndarray | None, list[Any] | None, np.ndarray | None]:
    """List files, resolve their labels, drop unreadable files when ``on_error="skip"``.
    ``keep(files, roots)`` (optional) gives the positions of the listed files to keep.

    Returns ``(files, labels, classes, codes)``: ``codes`` are the labels as class indices.
    """
    files, roots = list_files(kind, location, extensions, recursive, remote)
    if keep is not None:
        kept = keep(files, roots)
        files, roots = [files[i] for i in kept], [roots[i] for i in kept]
        if not files:
            raise DataError(f"{kind}: no image files in {location!r} outside hidden entries "
                            "and the Labeler's own files.")  # fmt: skip
    values, found = resolve_labels(kind, files, roots, labels, classes)
    if on_error == "skip":
        keep = readable(kind, files, read)
        files = [files[i] for i in keep]
        values = None if values is None else values[keep]
    codes = None if values is None else encode(values, found)
    return files, values, found, codes


def check_classes(kind: str, values: np.ndarray, classes: Sequence[Any] | None) -> list[Any]:
    """The class list: ``classes`` when given (every label must be in it), else sorted labels."""
    present = sorted(set(values.tolist()))
    if classes is None:
        return present
    classes = list(classes)
    if len(set(classes)) != len(classes):
        raise OptionError(f"{kind}: `classes` lists a class twice. Received: {classes!r}.")
    unknown = [c for c in present if c not in set(classes)]
    if unknown:
        raise DataError(
            f"{kind}: labels {unknown[:10]} are not in `classes` {classes}. Add them to "
            "`classes` or leave `classes` out to use the labels found."
        )
    return classes


def encode(values: np.ndarray, classes: list[Any]) -> np.ndarray:
    """Class index of each label."""
    lookup = {c: i for i, c in enumerate(classes)}
    return np.asarray([lookup[v] for v in values.tolist()], dtype=np.int64)


def check_on_error(kind: str, on_error: str) -> None:
    """Validate the ``on_error`` option."""
    if on_error not in ("raise", "skip"):
        raise OptionError(
            f"{kind}: `on_error` must be 'raise' or 'skip'. Received: on_error={on_error!r}."
        )


def readable(kind: str, files: list[str], read: Callable[[str], Any]) -> np.ndarray:
    """Indices of the files ``read`` can read; one warning lists the others."""
    keep: list[int] = []
    skipped: list[str] = []
    for i, path in enumerate(files):
        try:
            read(path)
        except (DataError, ResourceLimitError):  # damaged, or over the read limits
            skipped.append(path)
        else:
            keep.append(i)
    if skipped:
        warnings.warn(
            f"{kind}: skipped {len(skipped)} unreadable file(s): {skipped}",
            RuntimeWarning,
            stacklevel=3,
        )
    if not keep:
        raise DataError(f"{kind}: none of the {len(files)} files could be read.")
    return np.asarray(keep, dtype=np.int64)
