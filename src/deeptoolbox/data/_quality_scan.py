"""Reading every observation once for the data-quality report: what each one is (file, split,
label), whether it can be read, and the few numbers the checks compare (content hash,
perceptual hash, size, channels, format, mean and spread, NaN and constant channels)."""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from deeptoolbox.data import _files
from deeptoolbox.data._base import Datastore
from deeptoolbox.data._image import IMAGE_EXTENSIONS, ImageDatastore, decode_image
from deeptoolbox.data._sequence import SIGNAL_EXTENSIONS, SignalDatastore
from deeptoolbox.errors import DataError, MissingDependencyError, OptionError, ResourceLimitError

__all__ = ["Scanned", "scan", "SPLIT_NAMES"]

# top-level folder names read as the splits of a data set (train/validation/test layout)
SPLIT_NAMES = {
    "train": "train", "training": "train", "val": "validation", "valid": "validation",
    "validation": "validation", "test": "test", "testing": "test",
}  # fmt: skip
_SAMPLE_RATE_NAMES = ("fs", "Fs", "sample_rate", "sampling_rate", "SampleRate")


@dataclass
class Scanned:
    """One observation as the checks see it: ``name`` (its file, or ``#index``), ``split``,
    ``label``, ``kind`` ("image", "signal" or "array"), ``error`` (why it cannot be read,
    None when it can), and the numbers read from it."""

    name: str
    split: str
    label: Any = None
    kind: str = "array"
    error: str | None = None
    digest: str = ""
    phash: int | None = None
    shape: tuple[int, ...] = ()
    format: str = ""
    mean: float = 0.0
    std: float = 0.0
    nan_channels: list[int] = field(default_factory=list)
    constant_channels: list[int] = field(default_factory=list)
    sample_rate: float | None = None
    thumbnail: np.ndarray | None = field(default=None, repr=False)
    position: int = 0


def _digest(array: np.ndarray) -> str:
    contiguous = np.ascontiguousarray(array)
    header = f"{contiguous.dtype.str}{contiguous.shape}".encode()
    return hashlib.sha1(header + contiguous.tobytes()).hexdigest()


def _perceptual_hash(image: np.ndarray) -> tuple[int, np.ndarray]:
    """pHash (ImageHash) of a (C, H, W) float image in [0, 1], as a 64-bit int, and a
    16 x 16 gray uint8 thumbnail that confirms near duplicates."""
    try:
        import imagehash
    except ImportError as err:
        raise MissingDependencyError(
            "quality_report needs ImageHash for near-duplicate images: pip install "
            '"deeptoolbox[quality]" (or pip install ImageHash).'
        ) from err
    from PIL import Image

    pixels = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    gray = Image.fromarray(pixels.mean(axis=0).astype(np.uint8))
    thumbnail = np.asarray(gray.resize((16, 16), Image.BILINEAR), dtype=np.uint8)
    return int(str(imagehash.phash(gray)), 16), thumbnail


def _image_numbers(item: Scanned, image: np.ndarray) -> None:
    """Fill ``item`` from a (C, H, W) float image in [0, 1]."""
    item.kind, item.shape = "image", tuple(image.shape)
    item.digest = _digest(image)
    item.mean, item.std = float(image.mean()), float(image.std())
    item.nan_channels = [int(c) for c in np.flatnonzero(~np.isfinite(image).all(axis=(1, 2)))]
    if not item.nan_channels and item.std * 255.0 >= 1.0:
        item.phash, item.thumbnail = _perceptual_hash(image)


def _signal_numbers(item: Scanned, signal: np.ndarray) -> None:
    """Fill ``item`` from a (T, C) signal."""
    item.kind, item.shape = "signal", tuple(signal.shape)
    item.digest = _digest(signal)
    finite = np.isfinite(signal)
    item.nan_channels = [int(c) for c in np.flatnonzero(~finite.all(axis=0))]
    clean = np.where(finite, signal, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN channels
        spread = np.nanmax(clean, axis=0) - np.nanmin(clean, axis=0) if len(signal) else None
    if spread is not None and len(signal) > 1:
        item.constant_channels = [
            int(c) for c in np.flatnonzero(spread == 0) if c not in item.nan_channels
        ]
    values = signal[finite]
    item.mean = float(values.mean()) if values.size else float("nan")
    item.std = float(np.sqrt(np.mean(values**2))) if values.size else float("nan")  # RMS


def _image_format(data: bytes) -> str:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return f"{image.format} {image.mode}"
    except Exception:  # noqa: BLE001 - decoded by torchvision, unknown to Pillow: no format
        return "unknown"


def _as_float_image(tensor: torch.Tensor) -> np.ndarray:
    scale = 65535.0 if tensor.dtype == torch.uint16 else 255.0
    array = tensor.to(torch.float32).numpy()
    return array / scale if tensor.dtype in (torch.uint8, torch.uint16) else array


def _scan_image_file(ds: ImageDatastore, path: str, item: Scanned) -> None:
    data = _files.read_bytes(path, ds._remote)
    image = decode_image(data, "stored", path)
    item.format = _image_format(data)
    _image_numbers(item, _as_float_image(image))


def _mat_sample_rate(path: str, remote: _files.Remote) -> float | None:
    if not path.lower().endswith(".mat"):
        return None
    import scipy.io

    try:
        contents = scipy.io.loadmat(io.BytesIO(_files.read_bytes(path, remote)))
    except Exception:  # noqa: BLE001 - v7.3 (HDF5) files or others: no rate found
        return None
    for name in _SAMPLE_RATE_NAMES:
        value = np.asarray(contents.get(name, []))
        if value.size == 1 and value.dtype.kind in "iuf":
            return float(value.reshape(-1)[0])
    return None


def _scan_signal_file(ds: SignalDatastore, path: str, item: Scanned) -> None:
    signal = ds._read(path).numpy()
    item.format = os.path.splitext(path)[1].lower().lstrip(".")
    item.sample_rate = _mat_sample_rate(path, ds._remote)
    _signal_numbers(item, signal)


def _scan_observation(ds: Dataset, index: int, item: Scanned) -> None:
    observation = ds[index]
    value = observation[0] if isinstance(observation, tuple | list) else observation
    array = (value.detach().cpu() if isinstance(value, torch.Tensor) else torch.as_tensor(
        np.asarray(value))).to(torch.float32).numpy()  # fmt: skip
    if array.ndim == 3 and array.shape[0] in (1, 3) and np.nanmax(np.abs(array)) <= 1.0:
        _image_numbers(item, array)
    elif array.ndim in (1, 2):
        _signal_numbers(item, array.reshape(len(array), -1))
    else:
        item.shape, item.digest = tuple(array.shape), _digest(array)
        item.mean, item.std = float(np.nanmean(array)), float(np.nanstd(array))


def _labels_of(ds: Dataset) -> list[Any]:
    labels = getattr(ds, "labels", None)
    return [None] * len(ds) if labels is None else list(np.asarray(labels).tolist())


def _reader(ds: Dataset) -> Callable[[int, Scanned], None]:
    if isinstance(ds, ImageDatastore):
        files = ds.files
        return lambda i, item: _scan_image_file(ds, files[i], item)
    if isinstance(ds, SignalDatastore):
        files = ds.files
        return lambda i, item: _scan_signal_file(ds, files[i], item)
    return lambda i, item: _scan_observation(ds, i, item)


def _scan_datastore(ds: Dataset, split: str) -> list[Scanned]:
    if not isinstance(ds, Dataset) or not hasattr(ds, "__len__"):
        raise OptionError(
            "quality_report: `data` must be a folder, a datastore (a map-style Dataset) or a "
            f"dict of them by split name. Received: {type(ds).__name__}."
        )
    names = list(getattr(ds, "files", None) or [f"#{i}" for i in range(len(ds))])
    labels, read = _labels_of(ds), _reader(ds)
    mode = ds.training if isinstance(ds, Datastore) else None
    if isinstance(ds, Datastore):
        ds.eval()  # no random augmentation while reading for the report
    items = []
    try:
        for i, name in enumerate(names):
            item = Scanned(name=str(name), split=split, label=labels[i], position=i)
            try:
                read(i, item)
            except (DataError, ResourceLimitError) as err:
                item.error = str(err)
            items.append(item)
    finally:
        if mode is not None:
            ds.train(mode)
    return items


def _folder_datastore(folder: Path) -> Datastore:
    files = [p for p in folder.rglob("*") if p.is_file()]
    images = sum(p.suffix.lower() in IMAGE_EXTENSIONS for p in files)
    signals = sum(p.suffix.lower() in SIGNAL_EXTENSIONS for p in files)
    if images == 0 and signals == 0:
        raise DataError(
            f"quality_report: folder '{folder}' holds no image files ({list(IMAGE_EXTENSIONS)})"
            f" and no signal files ({list(SIGNAL_EXTENSIONS)})."
        )
    if images >= signals:
        return ImageDatastore(folder)
    return SignalDatastore(folder)


def _split_folders(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for child in sorted(root.iterdir()):
        name = SPLIT_NAMES.get(child.name.lower())
        if child.is_dir() and name is not None:
            found.setdefault(name, child)
    return found


def _as_splits(data: Any) -> dict[str, Any]:
    if isinstance(data, str | os.PathLike):
        root = Path(data)
        if not root.is_dir():
            raise DataError(f"quality_report: cannot find folder '{root}'.")
        splits = _split_folders(root)
        return {n: _folder_datastore(f) for n, f in splits.items()} or {
            "all": _folder_datastore(root)
        }
    if isinstance(data, Mapping):
        if not data:
            raise OptionError("quality_report: the dict of splits is empty.")
        return {str(name): ds for name, ds in data.items()}
    return {"all": data}


def scan(data: Any) -> tuple[list[Scanned], dict[str, Any]]:
    """Every observation of ``data`` (a folder, a datastore or a dict of them by split), read
    once; also returns the datastores by split."""
    splits = _as_splits(data)
    items: list[Scanned] = []
    for split, ds in splits.items():
        items.extend(_scan_datastore(ds, split))
    return items, splits
