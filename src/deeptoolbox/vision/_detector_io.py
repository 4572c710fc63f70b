"""Saved object detectors: ``detector.json`` (how to build it: classes, architecture,
backbone, input size, normalization) and ``weights.safetensors`` in one folder or zip, the
way networks are saved (no pickle is ever loaded). ``deeptoolbox label FOLDER --network
detector.zip`` opens such a file."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

from deeptoolbox.errors import NetworkFileError, OptionError

__all__ = ["save_detector", "load_detector", "is_saved_detector", "DETECTOR_FILE"]

DETECTOR_FILE = "detector.json"
WEIGHTS_FILE = "weights.safetensors"
FORMAT = "deeptoolbox-object-detector"
_MAX_JSON = 1 << 20  # bytes of detector.json read at most


def is_saved_detector(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder or zip written by :func:`save_detector`.

    Example:
        >>> import tempfile
        >>> is_saved_detector(tempfile.mkdtemp())
        False
    """
    path = Path(path)
    if path.is_dir():
        return (path / DETECTOR_FILE).is_file()
    try:
        with zipfile.ZipFile(path) as archive:
            return DETECTOR_FILE in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def save_detector(detector: Any, path: str | os.PathLike) -> Path:
    """Save an :class:`ObjectDetector` to a folder, or a zip when ``path`` ends in ``.zip``:
    ``detector.json`` (classes, architecture, backbone, input size, image mean and std) and
    ``weights.safetensors``. :func:`load_detector` builds it again. A detector with a backbone
    module of your own cannot be rebuilt from a file: save its ``state_dict`` instead.

    Example:
        >>> import tempfile, os, torch
        >>> from deeptoolbox.vision import ObjectDetector
        >>> detector = ObjectDetector(["car"], input_size=32)
        >>> path = save_detector(detector, os.path.join(tempfile.mkdtemp(), "cars.zip"))
        >>> again = load_detector(path)
        >>> again.classes, all(torch.equal(a, b) for a, b in zip(
        ...     detector.state_dict().values(), again.state_dict().values()))
        (['car'], True)
    """
    from safetensors.torch import save as to_safetensors

    from deeptoolbox._atomic import atomic_open
    from deeptoolbox.vision._detector import BACKBONES, ObjectDetector

    if not isinstance(detector, ObjectDetector):
        raise OptionError(f"save_detector: expects an ObjectDetector. Received: "
                          f"{type(detector).__name__} (save a Network with dtb.save).")  # fmt: skip
    if detector.backbone_name not in (*BACKBONES, "mobilenet_v3_large"):
        raise OptionError(
            f"save_detector: the detector's backbone is a module of your own "
            f"({detector.backbone_name}), which a file cannot rebuild. Keep its weights with "
            "torch.save(detector.state_dict(), ...) and build it in code again."
        )
    path = Path(path)
    if path.exists() and not is_saved_detector(path):
        raise NetworkFileError(f"save_detector: not overwriting {path}: it exists and is not a "
                               "saved detector. Choose another path or remove it first.")  # fmt: skip
    transform = detector.model.transform
    description = {
        "format": FORMAT, "classes": list(detector.classes),
        "architecture": detector.architecture, "backbone": detector.backbone_name,
        "input_size": list(detector.input_size),
        "image_mean": [float(v) for v in transform.image_mean],
        "image_std": [float(v) for v in transform.image_std],
    }  # fmt: skip
    state = {k: v.detach().cpu().contiguous() for k, v in detector.state_dict().items()}
    payload = {DETECTOR_FILE: json.dumps(description, indent=1).encode(),
               WEIGHTS_FILE: to_safetensors(state)}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".zip":
        with atomic_open(path, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as z:
            for member, data in payload.items():
                z.writestr(member, data)
    else:
        path.mkdir(exist_ok=True)
        for member, data in payload.items():
            with atomic_open(path / member, "wb") as stream:
                stream.write(data)
    return path


def _members(path: Path) -> tuple[bytes, bytes]:
    if path.is_dir():
        files = [path / DETECTOR_FILE, path / WEIGHTS_FILE]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise NetworkFileError(f"load_detector: the folder {path} has no {missing[0]} (a "
                                   "saved detector holds detector.json and weights.safetensors).")  # fmt: skip
        return files[0].read_bytes()[:_MAX_JSON], files[1].read_bytes()
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            missing = [m for m in (DETECTOR_FILE, WEIGHTS_FILE) if m not in names]
            if missing:
                raise NetworkFileError(f"load_detector: {path} has no {missing[0]} (a saved "
                                       "detector holds detector.json and weights.safetensors).")  # fmt: skip
            if archive.getinfo(DETECTOR_FILE).file_size > _MAX_JSON:
                raise NetworkFileError(f"load_detector: {DETECTOR_FILE} in {path} is larger "
                                       f"than {_MAX_JSON} bytes; it is no detector description.")  # fmt: skip
            return archive.read(DETECTOR_FILE), archive.read(WEIGHTS_FILE)
    except (zipfile.BadZipFile, OSError) as err:
        raise NetworkFileError(f"load_detector: cannot read {path}: {err}.") from err


def load_detector(path: str | os.PathLike) -> Any:
    """Read a detector saved by :func:`save_detector` (folder or zip) back as an
    :class:`ObjectDetector`, in eval mode.

    Example:
        >>> import tempfile, os
        >>> from deeptoolbox.vision import ObjectDetector
        >>> path = save_detector(ObjectDetector(["a", "b"], "retinanet", input_size=32),
        ...                      os.path.join(tempfile.mkdtemp(), "ab"))
        >>> load_detector(path).architecture
        'retinanet'
    """
    from safetensors import SafetensorError
    from safetensors.torch import load as from_safetensors

    from deeptoolbox.vision._detector import ObjectDetector

    path = Path(path)
    if not path.exists():
        raise NetworkFileError(f"load_detector: no file or folder {path}.")
    text, weights = _members(path)
    try:
        description = json.loads(text.decode("utf-8"))
        if description.get("format") != FORMAT:
            raise ValueError(f"format {description.get('format')!r}, expected {FORMAT!r}")
        arguments = {k: description[k] for k in ("classes", "architecture", "backbone",
                                                 "input_size", "image_mean", "image_std")}  # fmt: skip
    except (UnicodeDecodeError, ValueError, KeyError, AttributeError, TypeError) as err:
        raise NetworkFileError(f"load_detector: {DETECTOR_FILE} in {path} is not a detector "
                               f"description: {type(err).__name__}: {err}.") from err  # fmt: skip
    detector = ObjectDetector(arguments.pop("classes"), arguments.pop("architecture"),
                              **arguments)  # fmt: skip
    try:
        state = from_safetensors(weights)
        detector.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError) as err:
        raise NetworkFileError(f"load_detector: the weights in {path} do not fit the detector "
                               f"{DETECTOR_FILE} describes: {err}".strip()[:2000]) from err  # fmt: skip
    return detector.eval()
