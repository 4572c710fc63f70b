"""The weights cache: where files live, downloading once with checksum checks, loading files.

The cache is the folder torch.hub uses (``$TORCH_HOME/hub/checkpoints``, by default
``~/.cache/torch/hub/checkpoints``) with torchvision's own file names, so weights any torch or
torchvision program downloaded before are found. ``DEEPTOOLBOX_CACHE`` or a ``cache_dir``
argument points it elsewhere. With ``DEEPTOOLBOX_OFFLINE=1`` nothing is downloaded: a missing
file is an error that says which file to put where.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from deeptoolbox._atomic import atomic_path
from deeptoolbox.errors import ChecksumError, WeightsError

__all__ = ["cache_dir", "is_offline", "fetch", "load_weights_file", "sha256_of"]

_HASH = re.compile(r"-([a-f0-9]{6,})\.")
_TRUE = {"1", "true", "yes", "on"}


def cache_dir(directory: str | os.PathLike | None = None) -> Path:
    """The weights cache folder: ``directory``, else ``$DEEPTOOLBOX_CACHE``, else torch.hub's.

    Example:
        >>> cache_dir("/tmp/weights").as_posix()
        '/tmp/weights'
    """
    if directory is not None:
        return Path(directory).expanduser()
    configured = os.environ.get("DEEPTOOLBOX_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path(torch.hub.get_dir()) / "checkpoints"


def is_offline() -> bool:
    """True when ``DEEPTOOLBOX_OFFLINE`` is set to 1 / true / yes / on.

    Example:
        >>> isinstance(is_offline(), bool)
        True
    """
    return os.environ.get("DEEPTOOLBOX_OFFLINE", "").strip().lower() in _TRUE


def sha256_of(path: str | os.PathLike) -> str:
    """The hex SHA-256 digest of a file, read in 1 MiB blocks.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "x.bin"
        >>> _ = path.write_bytes(b"abc")
        >>> sha256_of(path)[:8]
        'ba7816bf'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, destination: str) -> None:
    """Download ``url`` to ``destination`` (tests replace this function)."""
    torch.hub.download_url_to_file(url, destination, hash_prefix=None, progress=True)


def fetch(
    url: str,
    *,
    directory: str | os.PathLike | None = None,
    file_name: str | None = None,
    what: str = "weights",
) -> Path:
    """Return the cached file for ``url``, downloading it once when it is missing.

    The file is downloaded to a temporary name in the cache folder, its SHA-256 is checked
    against the prefix embedded in the file name (torchvision's ``name-<sha256 prefix>.pth``
    convention) and only then renamed into place, so an interrupted or corrupted download
    never poisons the cache. Offline (``DEEPTOOLBOX_OFFLINE=1``) a missing file raises
    :class:`WeightsError` naming the URL and the exact path to save it to.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "tiny-0123abcd.pth").write_bytes(b"cached")
        >>> fetch("https://example.org/tiny-0123abcd.pth", directory=folder).name
        'tiny-0123abcd.pth'
    """
    name = file_name or url.rsplit("/", 1)[-1]
    folder = cache_dir(directory)
    target = folder / name
    if target.is_file():
        return target
    where = f"Download {url} and save it as {target}, or pass weights='path/to/file'."
    if is_offline():
        raise WeightsError(
            f"{what}: {name} is not in the cache and DEEPTOOLBOX_OFFLINE=1 forbids downloading. "
            f"{where}"
        )
    with atomic_path(target, suffix=".part") as temporary:
        try:
            _download(url, str(temporary))
        except (OSError, RuntimeError, ValueError) as err:
            raise WeightsError(f"{what}: downloading {url} failed ({err}). {where}") from err
        _verify(str(temporary), name, url)
    return target


def _verify(path: str, name: str, url: str) -> None:
    match = _HASH.search(name)
    if match is None:
        return
    expected = match.group(1)
    actual = sha256_of(path)
    if not actual.startswith(expected):
        raise ChecksumError(
            f"The file downloaded from {url} is corrupted or not the published one: its SHA-256 "
            f"is {actual[: len(expected)]}..., the source publishes {expected}... "
            "It was discarded; try again, or download it by hand and pass weights='path'."
        )


def _unwrap(state: Any, path: Path) -> dict[str, torch.Tensor]:
    """Accept a state dict, or a checkpoint holding one under 'state_dict' / 'model'."""
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise WeightsError(
            f"{path}: expected a state dict (parameter name -> tensor); found "
            f"{type(state).__name__}. Save weights with torch.save(model.state_dict(), path) or "
            "safetensors.torch.save_file(model.state_dict(), path)."
        )
    state = dict(state)
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def load_weights_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a state dict from a safetensors file or a ``torch.save`` file (``weights_only``).

    No pickled code is ever run: ``.pth``/``.pt`` files are read with
    ``torch.load(weights_only=True)``.

    Example:
        >>> import tempfile, pathlib, torch
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.pth"
        >>> torch.save({"weight": torch.ones(2)}, path)
        >>> load_weights_file(path)["weight"].tolist()
        [1.0, 1.0]
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise WeightsError(
            f"weights: no file at {file}. Pass the path of a .safetensors or .pth file, "
            "'default' for the published weights, or None for random weights."
        )
    _refuse_model_archive(file)
    try:
        with open(file, "rb") as handle:
            is_safetensors = _looks_like_safetensors(handle.read(16))
        if is_safetensors:
            import safetensors.torch

            state = safetensors.torch.load_file(str(file))
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError) as err:
        if isinstance(err, WeightsError):
            raise
        raise WeightsError(
            f"{file}: cannot read weights ({type(err).__name__}: {err}). Expected a safetensors "
            "file or a state dict saved with torch.save (loaded with weights_only=True)."
        ) from err
    except Exception as err:  # unpickling rejects unsafe content with its own error types
        raise WeightsError(
            f"{file}: refused to load ({type(err).__name__}: {err}). Only plain state dicts "
            "are loaded (torch.load(weights_only=True)); no pickled code is run."
        ) from err
    return _unwrap(state, file)


def _refuse_model_archive(file: Path) -> None:
    """A saved deeptoolbox network or a .keras file is a zip too: say what it is instead of
    letting torch.load fail on it."""
    if file.suffix.lower() in (".pt", ".pth", ".bin", ".safetensors") or not zipfile.is_zipfile(
        file
    ):
        return
    with zipfile.ZipFile(file) as archive:
        names = set(archive.namelist())
    if "network.json" in names:
        raise WeightsError(
            f"{file} is a network saved with deeptoolbox.save, not a weights file: load it "
            "with deeptoolbox.load(path) (on the command line: deeptoolbox classify IMAGE "
            f"--model {file})."
        )
    if "config.json" in names and "model.weights.h5" in names:
        raise WeightsError(
            f"{file} is a Keras model file, not a weights file: read it with "
            "deeptoolbox.import_keras(path)."
        )


def _looks_like_safetensors(head: bytes) -> bool:
    """A safetensors file starts with an 8-byte little-endian header length, then '{'."""
    return len(head) >= 9 and head[8:9] == b"{"
