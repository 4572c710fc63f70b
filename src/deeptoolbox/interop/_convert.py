"""convert(): read a model file in one format and write it in another (format from extensions).

Readers and writers are tables keyed by file extension, so each format adds one line each.
A saved deeptoolbox network (a folder, or a ``.zip`` / ``.dtb`` file written by
``deeptoolbox.save``) reads and writes too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from deeptoolbox.errors import ModelImportError, OptionError
from deeptoolbox.network._network import Network


def _read_onnx(path: Path) -> Network:
    from deeptoolbox.interop.onnx._import import import_onnx

    return import_onnx(path)


def _write_onnx(net: Network, path: Path) -> None:
    from deeptoolbox.interop.onnx._export import export_onnx

    export_onnx(net, path)


def _read_saved(path: Path) -> Network:
    from deeptoolbox.network._io import load

    return load(path)


def _write_saved(net: Network, path: Path) -> None:
    from deeptoolbox.network._io import save

    save(net, path)


def _read_pytorch(path: Path, trust_code: bool = False) -> Network:
    from deeptoolbox.interop.torch._api import import_pytorch

    return import_pytorch(path, trust_code=trust_code)


def _write_torchscript(net: Network, path: Path) -> None:
    from deeptoolbox.interop.torch._api import export_pytorch

    export_pytorch(net, path, format="torchscript")


def _write_exported_program(net: Network, path: Path) -> None:
    from deeptoolbox.interop.torch._api import export_pytorch

    export_pytorch(net, path, format="exported-program")


def _read_keras(path: Path) -> Network:
    from deeptoolbox.interop.keras._import import import_keras

    return import_keras(path)


def _write_keras(net: Network, path: Path) -> None:
    from deeptoolbox.interop.keras._export import export_keras

    export_keras(net, path)


READERS: dict[str, Callable[[Path], Network]] = {
    ".pt": _read_pytorch,
    ".pt2": _read_pytorch,
    ".keras": _read_keras,
    ".h5": _read_keras,
    ".onnx": _read_onnx,
    ".zip": _read_saved,
    "": _read_saved,
}
WRITERS: dict[str, Callable[[Network, Path], None]] = {
    ".pt": _write_torchscript,
    ".pt2": _write_exported_program,
    ".keras": _write_keras,
    ".onnx": _write_onnx,
    ".zip": _write_saved,
    "": _write_saved,
}


def _kind(path: Path) -> str:
    return "" if path.is_dir() or not path.suffix else path.suffix.lower()


def read_model(path: str | os.PathLike, *, trust_code: bool = False) -> Network:
    """Read any supported model file (format from the extension) as a Network.

    ``trust_code=True`` allows TorchScript (``.pt``) and torch.export (``.pt2``) files, which
    can run code when they are loaded (see :func:`~deeptoolbox.interop.import_pytorch`).

    Example:
        >>> try:
        ...     read_model("model.xyz")
        ... except ModelImportError as err:
        ...     ".xyz" in str(err)
        True
    """
    path = Path(path)
    reader = READERS.get(_kind(path))
    if reader is None:
        raise ModelImportError(
            f"Cannot read '{path}': the extension {path.suffix!r} is not a supported model "
            f"format. Supported: {', '.join(sorted(k or 'a saved-network folder' for k in READERS))}."
        )
    return reader(path, trust_code) if reader is _read_pytorch else reader(path)


def convert(
    in_path: str | os.PathLike, out_path: str | os.PathLike, *, trust_code: bool = False
) -> Path:
    """Convert a model file to another format, chosen by the extensions (``a.onnx`` -> ``b.zip``).

    Returns the path written. A ``.pt``/``.pt2`` input needs ``trust_code=True`` (it can run
    code when loaded). Raises :class:`ModelImportError` for an unreadable input and
    :class:`OptionError` for an output extension no writer handles.

    Example:
        >>> import tempfile, os
        >>> from deeptoolbox import Network, layers as L, save
        >>> folder = tempfile.mkdtemp()
        >>> _ = save(Network([L.FeatureInput(4), L.Dense(2)]), os.path.join(folder, "net.zip"))
        >>> convert(os.path.join(folder, "net.zip"), os.path.join(folder, "net.onnx")).name
        'net.onnx'
    """
    out_path = Path(out_path)
    kind = "" if not out_path.suffix else out_path.suffix.lower()
    writer = WRITERS.get(kind)
    if writer is None:
        raise OptionError(
            f"convert: cannot write '{out_path}': the extension {out_path.suffix!r} is not a "
            f"supported model format. Supported: "
            f"{', '.join(sorted(k or 'a folder (no extension)' for k in WRITERS))}."
        )
    net = read_model(in_path, trust_code=trust_code)
    writer(net, out_path)
    return out_path
