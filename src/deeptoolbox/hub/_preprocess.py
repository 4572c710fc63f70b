"""Image preprocessing that travels with a pretrained network.

A network from :func:`pretrained` carries ``net.metadata["preprocessing"]``: a JSON-safe spec of
the resize, center crop and mean / std normalization its weights were trained with (taken
from torchvision's ``weights.transforms()``). :func:`preprocess` applies it; predict() and
classify() apply it automatically to image files, PIL images and uint8 arrays, through the
input-preparer hook this module registers with :mod:`deeptoolbox.inference`. Float tensors are
taken as already preprocessed and pass through untouched.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from deeptoolbox.errors import DataError, OptionError

__all__ = ["preprocess", "image_transform", "prepare_images", "include_normalization"]

_KEYS = ("resize_size", "crop_size", "mean", "std")


def _spec_of(source: Any) -> dict[str, Any] | None:
    spec = source if isinstance(source, Mapping) else getattr(source, "metadata", {}) or {}
    if not isinstance(source, Mapping):
        spec = spec.get("preprocessing")
    if isinstance(spec, Mapping) and spec.get("type") == "image_classification":
        return dict(spec)
    return None


def image_transform(source: Any):
    """The torchvision transform (resize, center crop, scale to [0, 1], normalize) of a network
    from :func:`pretrained`, or of a preprocessing spec dict.

    Example:
        >>> spec = {"type": "image_classification", "resize_size": 36, "crop_size": 32,
        ...         "mean": [0.5] * 3, "std": [0.25] * 3, "interpolation": "bilinear"}
        >>> image_transform(spec)(torch.zeros(3, 40, 50, dtype=torch.uint8)).shape
        torch.Size([3, 32, 32])
    """
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms._presets import ImageClassification

    spec = _spec_of(source)
    if spec is None or any(key not in spec for key in _KEYS):
        raise OptionError(
            "image_transform: expected a network from deeptoolbox.hub.pretrained() or a spec "
            f"with type='image_classification' and {list(_KEYS)}. Received: {source!r:.200}."
        )
    return ImageClassification(
        crop_size=int(spec["crop_size"]),
        resize_size=int(spec["resize_size"]),
        mean=tuple(spec["mean"]),
        std=tuple(spec["std"]),
        interpolation=InterpolationMode(spec.get("interpolation", "bilinear")),
    )


def _is_image_item(item: Any) -> bool:
    from PIL import Image

    return isinstance(item, str | os.PathLike | Image.Image)


def _array_to_chw(array: np.ndarray | torch.Tensor, channels_last: bool) -> torch.Tensor:
    tensor = (
        torch.from_numpy(np.ascontiguousarray(array)) if isinstance(array, np.ndarray) else array
    )
    if tensor.dim() == 2:
        tensor = tensor.unsqueeze(0 if not channels_last else -1)
    if channels_last:
        tensor = tensor.permute(2, 0, 1)
    if tensor.shape[0] == 1:
        tensor = tensor.expand(3, -1, -1)
    elif tensor.shape[0] == 4:
        tensor = tensor[:3]  # drop alpha
    if tensor.shape[0] != 3:
        raise DataError(
            f"preprocess: an image must have 1, 3 or 4 channels; received one of size "
            f"{tuple(array.shape)}."
        )
    return tensor.contiguous()


def _load(item: Any) -> Any:
    from PIL import Image, UnidentifiedImageError

    if isinstance(item, Image.Image):
        return item.convert("RGB")
    path = Path(item)
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"preprocess: cannot read image file {path}: {err}") from err


class _ImageList(Dataset):
    """Image files / PIL images, loaded and preprocessed one by one (for batched predict)."""

    def __init__(self, items: Sequence[Any], transform: Any) -> None:
        self.items = list(items)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(_load(self.items[index]))


def _uint8_batch(data: np.ndarray | torch.Tensor, transform: Any) -> torch.Tensor:
    """Preprocess a uint8 image (H, W[, C]) / (C, H, W) or batch (N, H, W, C) / (N, C, H, W)."""
    numpy_layout = isinstance(data, np.ndarray)  # numpy: channels last; torch: channels first
    single = data.ndim == 2 or data.ndim == 3
    batch = [data] if single else list(data)
    if data.ndim not in (2, 3, 4):
        raise DataError(
            f"preprocess: a uint8 image array must have 2 to 4 dimensions; received size "
            f"{tuple(data.shape)}."
        )
    channels_last = numpy_layout and not (data.ndim >= 3 and data.shape[-1] not in (1, 3, 4))
    return torch.stack([transform(_array_to_chw(image, channels_last)) for image in batch])


def prepare_images(net: Any, data: Any) -> Any:
    """Input preparer for predict/classify: images in, preprocessed tensors (or Dataset) out.

    Returns None (leave ``data`` alone) unless ``net`` carries an image preprocessing spec and
    ``data`` is an image file path, a PIL image, a list of those, or a uint8 array / tensor.

    Example:
        >>> class Net:
        ...     metadata = {"preprocessing": {"type": "image_classification", "resize_size": 8,
        ...         "crop_size": 8, "mean": [0.0] * 3, "std": [1.0] * 3}}
        >>> prepare_images(Net(), np.full((4, 10, 10, 3), 255, dtype=np.uint8)).shape
        torch.Size([4, 3, 8, 8])
        >>> prepare_images(Net(), torch.zeros(2, 3)) is None
        True
    """
    spec = _spec_of(net)
    if spec is None:
        return None
    if isinstance(data, np.ndarray | torch.Tensor) and data.dtype in (np.uint8, torch.uint8):
        return _uint8_batch(data, image_transform(spec))
    if _is_image_item(data):
        return image_transform(spec)(_load(data)).unsqueeze(0)
    if isinstance(data, list | tuple) and data and all(_is_image_item(d) for d in data):
        return _ImageList(data, image_transform(spec))
    return None


def preprocess(net: Any, images: Any) -> torch.Tensor:
    """Apply a pretrained network's resize / crop / normalization to images.

    ``images``: an image file path, a PIL image, a list of those, or a uint8 array (H, W, C) /
    (N, H, W, C) (numpy) or (C, H, W) / (N, C, H, W) (torch). Returns a float batch
    (N, 3, crop, crop) ready for the network.

    Example:
        >>> spec = {"type": "image_classification", "resize_size": 40, "crop_size": 32,
        ...         "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
        >>> preprocess(spec, np.zeros((48, 64, 3), dtype=np.uint8)).shape
        torch.Size([1, 3, 32, 32])
    """
    spec = _spec_of(net)
    if spec is None:
        raise OptionError(
            "preprocess: the network carries no image preprocessing (net.metadata"
            "['preprocessing']); networks from deeptoolbox.hub.pretrained() do."
        )
    prepared = prepare_images(_Holder({"preprocessing": spec}), images)
    if prepared is None:
        raise DataError(
            "preprocess: `images` must be an image file path, a PIL image, a list of those, or "
            f"a uint8 array. Received: {type(images).__name__}"
            + (f" of dtype {images.dtype}." if hasattr(images, "dtype") else ".")
        )
    if isinstance(prepared, Dataset):
        return torch.stack([prepared[i] for i in range(len(prepared))])
    return prepared


class _Holder:
    def __init__(self, metadata: dict[str, Any]) -> None:
        self.metadata = metadata


def include_normalization(net: Any) -> Any:
    """Move a pretrained network's mean / std normalization into its input layer.

    Afterwards the network takes images scaled to [0, 1], as an
    :class:`~deeptoolbox.data.ImageDatastore` yields them, which is what fine-tuning on an
    image folder needs (MATLAB's pretrained networks normalize in their input layer too).
    ``classify`` on files keeps working: the preprocessing spec then only resizes, crops and
    scales. Returns ``net``, changed in place.

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.ImageInput((3, 8, 8), name="in"), L.Flatten(), L.Dense(2)])
        >>> net.metadata["preprocessing"] = {"type": "image_classification", "resize_size": 8,
        ...     "crop_size": 8, "mean": [0.5] * 3, "std": [0.25] * 3}
        >>> include_normalization(net).layer("in").normalization
        'zscore'
    """
    from deeptoolbox.layers import ImageInput

    spec = _spec_of(net)
    inputs = getattr(net, "input_names", [])
    if spec is None or len(inputs) != 1:
        raise OptionError(
            "include_normalization: expected a network from deeptoolbox.hub.pretrained() (one "
            "image input and net.metadata['preprocessing'])."
        )
    old = net.layer(inputs[0])
    if not isinstance(old, ImageInput) or old.normalization != "none":
        raise OptionError(
            f"include_normalization: input layer '{inputs[0]}' must be an ImageInput without "
            f"normalization; it is {type(old).__name__} with normalization="
            f"{getattr(old, 'normalization', None)!r}."
        )
    new = ImageInput(old.size, normalization="zscore", mean=spec["mean"], std=spec["std"])
    net.replace_layer(inputs[0], new)
    channels = len(spec["mean"])
    net.metadata["preprocessing"] = {
        **spec, "mean": [0.0] * channels, "std": [1.0] * channels, "normalization": "network",
    }  # fmt: skip
    return net
