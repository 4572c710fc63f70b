"""Image values on the toolbox's scale: integer images (uint8, uint16) become [0, 1] floats,
as ImageDatastore reads files; float images are kept as they are."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

_INTEGER_MAX = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
_TORCH_INTEGER_MAX = {torch.uint8: 255.0, torch.uint16: 65535.0}


def integer_max(images: Any) -> float | None:
    """The largest value of an integer image type (255 for uint8), None for floats.

    Example:
        >>> integer_max(np.zeros(3, np.uint8)), integer_max(torch.zeros(3))
        (255.0, None)
    """
    dtype = getattr(images, "dtype", None)
    if isinstance(dtype, torch.dtype):
        return _TORCH_INTEGER_MAX.get(dtype)
    return _INTEGER_MAX.get(np.dtype(dtype)) if dtype is not None else None


def unit_images(images: Any) -> torch.Tensor:
    """A float32 tensor of ``images``, integer types scaled to [0, 1].

    Example:
        >>> unit_images(np.full((1, 2, 2), 255, np.uint8)).max().item()
        1.0
    """
    peak = integer_max(images)
    if isinstance(images, torch.Tensor):
        values = images.float()
    else:
        values = torch.as_tensor(np.asarray(images, dtype=np.float32))
    return values / peak if peak is not None else values
