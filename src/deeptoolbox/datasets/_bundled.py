"""Bundled data (scikit-learn's 8x8 digits) and writing images out as a class-folder tree."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeptoolbox._atomic import atomic_path
from deeptoolbox.errors import DataError, OptionError

__all__ = ["digits", "write_image_folder"]


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled handwritten digits (1,797 images of 8x8 pixels, no download).

    Returns ``(images, labels)``: float32 images (N, 1, 8, 8) in [0, 1] and string labels
    '0'..'9'. Needs scikit-learn (the ``demo`` or ``data`` extra).

    Example:
        >>> images, labels = digits()
        >>> images.shape, labels[:3].tolist()
        ((1797, 1, 8, 8), ['0', '1', '2'])
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise DataError(
            "digits() needs scikit-learn, which ships the data: pip install scikit-learn."
        ) from err
    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None]
    return images, bunch.target.astype(str)


def _as_uint8(images: Any) -> np.ndarray:
    array = images.cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.ndim != 4:
        raise DataError(
            f"write_image_folder: `images` must be (N, C, H, W). Received shape {array.shape}."
        )
    if array.dtype.kind == "f":
        array = np.clip(np.rint(array * 255.0), 0, 255)
    return array.astype(np.uint8)


def write_image_folder(
    folder: str | os.PathLike,
    images: Any,
    labels: Sequence[Any] | np.ndarray,
    *,
    format: str = "png",
) -> Path:
    """Write ``images`` as files in one subfolder per label (``folder/<label>/00012.png``).

    ``images`` is (N, C, H, W) with C = 1 or 3: float in [0, 1] or uint8. Useful to try
    :class:`~deeptoolbox.data.ImageDatastore` on real files. Returns the folder.

    Example:
        >>> import tempfile
        >>> images, labels = digits()
        >>> root = write_image_folder(tempfile.mkdtemp(), images[:20], labels[:20])
        >>> sorted(p.name for p in root.iterdir())[:3]
        ['0', '1', '2']
    """
    from PIL import Image

    if format not in ("png", "jpg", "bmp"):
        raise OptionError(
            f"write_image_folder: `format` must be 'png', 'jpg' or 'bmp'. Received: {format!r}."
        )
    array = _as_uint8(images)
    labels = np.asarray(labels)
    if len(labels) != len(array):
        raise DataError(
            f"write_image_folder: {len(array)} images but {len(labels)} labels; give one per image."
        )
    if array.shape[1] not in (1, 3):
        raise DataError(
            f"write_image_folder: images need 1 or 3 channels. Received {array.shape[1]}."
        )
    root = Path(folder)
    for index, (image, label) in enumerate(zip(array, labels, strict=True)):
        target = root / str(label)
        target.mkdir(parents=True, exist_ok=True)
        pixels = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        with atomic_path(target / f"{index:05d}.{format}", suffix=".part") as temp:
            Image.fromarray(pixels).save(temp, format="JPEG" if format == "jpg" else format.upper())
    return root
