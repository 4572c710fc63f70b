"""Image files sent to ``POST /v1/classify``, brought to what the network takes.

As an :class:`~deeptoolbox.data.ImageDatastore` reads them for training: decoded to 1 or 3
channels (as the input layer has), resized to the input's (H, W) and scaled to [0, 1]; the
network's input layer then applies its own normalization. A network from
:func:`deeptoolbox.hub.pretrained` gets its published resize / crop / mean-std instead.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch

from deeptoolbox.errors import RequestError

DEFAULT_MAX_PIXELS = 40_000_000  # a decompression bomb's limit: ~6300 x 6300


def _image_size(data: bytes, field: str) -> tuple[int, int]:
    """Width and height from the file header (no decoding yet)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        reason = (
            "not an image, or a damaged one"
            if isinstance(err, UnidentifiedImageError)
            else str(err)
        )
        raise RequestError(422, field, f"The file cannot be read as an image: {reason}.",
                           received=f"{len(data)} bytes", expected="a PNG, JPEG, BMP, GIF, TIFF "
                           "or WebP file") from err  # fmt: skip


def preprocess_image(
    data: bytes,
    filename: str,
    field: str,
    spec: dict[str, Any],
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """One image file as a float32 (C, H, W) array for the network described by ``spec``."""
    from torchvision.transforms.v2 import functional as F

    from deeptoolbox.data._image import decode_image
    from deeptoolbox.errors import DataError

    width, height = _image_size(data, field)
    if width * height > max_pixels:
        raise RequestError(413, field, "The image has more pixels than this server decodes.",
                           received=f"{width} x {height}", expected=f"at most {max_pixels:,} pixels")  # fmt: skip
    color = "gray" if spec["channels"] == 1 else "rgb"
    try:
        image = decode_image(data, color, filename or field)
    except DataError as err:
        raise RequestError(422, field, str(err), received=f"{len(data)} bytes",
                           expected="an image file") from err  # fmt: skip
    if spec.get("pretrained"):
        from deeptoolbox.hub._preprocess import image_transform

        rgb = image if image.shape[0] == 3 else image.expand(3, -1, -1)
        return image_transform(spec["pretrained"])(_as_uint8(rgb)).numpy().astype(np.float32)
    if image.dtype == torch.uint16:
        image = image.to(torch.float32).div_(65535.0)
    size = [spec["height"], spec["width"]]
    if list(image.shape[-2:]) != size:
        image = F.resize(image, size, antialias=True)
    if image.dtype == torch.uint8:
        image = image.to(torch.float32).div_(255.0)
    return image.numpy().astype(np.float32)


def _as_uint8(image: torch.Tensor) -> torch.Tensor:
    if image.dtype == torch.uint16:
        return (image.to(torch.float32) / 257.0).round().to(torch.uint8)
    return image


def images_supported() -> bool:
    """True when torchvision and Pillow (the ``data`` extra) are installed."""
    try:
        import PIL  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError:
        return False
    return True
