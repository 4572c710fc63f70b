"""Image preprocessing that travels with a pretrained network.

A network from :func:`pretrained` carries ``net.metadata["preprocessing"]``: a JSON-safe spec of
the resize, center crop and mean / std normalization its weights were trained with (taken
from torchvision's ``weights.transforms()``). :func:`preprocess` applies it; predict() and
classify() apply it automatically to image files, PIL images and uint8 arrays (see
:func:`prepare_images`, which also prepares images for any network with an ``ImageInput``).
Float tensors are taken as already preprocessed and pass through untouched.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from deeptoolbox.data._image_input import image_transform, prepare_images
from deeptoolbox.data._image_input import spec_of as _spec_of
from deeptoolbox.errors import DataError, OptionError

__all__ = ["preprocess", "image_transform", "prepare_images", "include_normalization"]


def preprocess(net: Any, images: Any) -> torch.Tensor:
    """Apply a pretrained network's resize / crop / normalization to images.

    ``images``: an image file path, a PIL image, a list of those, or a uint8 array (H, W, C) /
    (N, H, W, C) (numpy) or (C, H, W) / (N, C, H, W) (torch). Returns a float batch
    (N, 3, crop, crop) ready for the network.

    Example:
        >>> import numpy as np
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
