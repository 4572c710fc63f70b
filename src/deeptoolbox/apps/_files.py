"""Files the apps may touch: paths confined to the folder the app was started with, and the
formats the designer opens and saves."""

from __future__ import annotations

import os
from pathlib import Path

from deeptoolbox.errors import NetworkFileError, OptionError, PathOutsideRootError
from deeptoolbox.network import Network, save, to_python

OPEN_SUFFIXES = (".zip", ".onnx", ".keras", ".h5")
# .pt / .pt2 files can run code when loaded (import_pytorch(trust_code=True)): not from a browser
CODE_HINT = (
    " .pt and .pt2 files can run code when loaded: convert a trusted one first, e.g. "
    "`deeptoolbox convert --trust-code model.pt2 model.zip`."
)
SAVE_FORMATS = ("toolbox", "onnx", "python")


def confined(root: Path, path: str) -> Path:
    """``path`` (relative to ``root``, or absolute) resolved, if it lies inside ``root``.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp()).resolve()
        >>> confined(root, "nets/a.zip") == root / "nets" / "a.zip"
        True
        >>> try:
        ...     confined(root, "../secret.txt")
        ... except PathOutsideRootError as err:
        ...     print("refused")
        refused
    """
    if not isinstance(path, str) or not path or "\x00" in path:
        raise OptionError(f"apps: `path` must be a non-empty file path. Received: {path!r}.")
    candidate = Path(path)
    full = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if full != root and root not in full.parents:
        raise PathOutsideRootError(
            f"apps: the path {path!r} is outside the folder the app may use ({root}). Give a "
            "path inside it, or start the app with --root pointing at the folder you need."
        )
    return full


def open_network(path: Path) -> Network:
    """Read a model file or saved-network folder as a Network (format from the extension)."""
    from deeptoolbox.interop import read_model

    if not path.exists():
        raise NetworkFileError(f"apps: no file or folder {path}.")
    if path.is_file() and path.suffix.lower() not in OPEN_SUFFIXES:
        raise OptionError(
            f"apps: cannot open {path.name}: the designer opens {', '.join(OPEN_SUFFIXES)} files "
            f"and saved-network folders.{CODE_HINT}"
        )
    return read_model(path)


_SUFFIXES = {"toolbox": ".zip or a folder", "onnx": ".onnx", "python": ".py"}


def save_network(net: Network, path: Path, kind: str) -> Path:
    """Write ``net`` as a toolbox file (``.zip`` or folder), ONNX or Python code."""
    if kind not in SAVE_FORMATS:
        raise OptionError(
            f"apps: unknown save format {kind!r}. Allowed: {', '.join(SAVE_FORMATS)}."
        )
    implied = {".onnx": "onnx", ".py": "python", ".zip": "toolbox"}.get(path.suffix.lower())
    if implied is not None and implied != kind:
        raise OptionError(
            f"apps: '{path.name}' ends in {path.suffix}, which is a {implied} file, but the "
            f"format chosen is {kind!r}. Choose the format {implied!r}, or a name that fits "
            f"{kind!r} ({_SUFFIXES[kind]})."
        )
    os.makedirs(path.parent, exist_ok=True)
    if kind == "python":
        to_python(net, path)
        return path
    if kind == "onnx":
        from deeptoolbox.interop import export_onnx

        return export_onnx(net, path)
    return save(net, path)
