"""Images given to predict() / classify(): files, PIL images and uint8 arrays made ready.

predict() and classify() run :func:`prepare_images` on their data before batching:

- a network that carries an image preprocessing spec (``net.metadata["preprocessing"]``, as
  networks from :func:`deeptoolbox.hub.pretrained` do) gets its resize / center crop /
  mean-std normalization (torchvision's ``ImageClassification`` preset);
- any other network with one :class:`~deeptoolbox.layers.ImageInput` gets what an
  :class:`~deeptoolbox.data.ImageDatastore` with ``output_size`` set to the input size would
  give it: the image decoded the same way, resized (antialiased) to the input's height and
  width, brought to its number of channels, and scaled to [0, 1]. The input layer then
  applies its own normalization, as during training.

Float tensors and arrays are taken as ready and pass through untouched.
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

__all__ = ["prepare_images", "image_transform", "spec_of"]

_KEYS = ("resize_size", "crop_size", "mean", "std")
_LAYOUT_CHANNELS = (1, 3, 4)  # channel counts an image array can have (gray, RGB, RGBA)


def spec_of(source: Any) -> dict[str, Any] | None:
    """The image preprocessing spec of a network (or the spec dict itself), else None."""
    spec = source if isinstance(source, Mapping) else getattr(source, "metadata", {}) or {}
    if not isinstance(source, Mapping):
        spec = spec.get("preprocessing")
    if isinstance(spec, Mapping) and spec.get("type") == "image_classification":
        return dict(spec)
    return None


def image_transform(source: Any):
    """The torchvision transform (resize, center crop, scale to [0, 1], normalize) of a network
    from :func:`deeptoolbox.hub.pretrained`, or of a preprocessing spec dict.

    Example:
        >>> spec = {"type": "image_classification", "resize_size": 36, "crop_size": 32,
        ...         "mean": [0.5] * 3, "std": [0.25] * 3, "interpolation": "bilinear"}
        >>> image_transform(spec)(torch.zeros(3, 40, 50, dtype=torch.uint8)).shape
        torch.Size([3, 32, 32])
    """
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms._presets import ImageClassification

    spec = spec_of(source)
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


def _is_pil_image(item: Any) -> bool:
    if not type(item).__module__.startswith("PIL."):
        return False
    from PIL import Image

    return isinstance(item, Image.Image)


def _is_image_item(item: Any) -> bool:
    return isinstance(item, str | os.PathLike) or _is_pil_image(item)


def _is_uint8(data: Any) -> bool:
    return isinstance(data, np.ndarray | torch.Tensor) and data.dtype in (np.uint8, torch.uint8)


def _channels_last(array: np.ndarray | torch.Tensor, wanted: int | None) -> bool:
    """Is a (.., A, B, C) image array channels-last? numpy arrays are unless only the first
    axis can be channels; torch tensors are channels-first unless only the last can be."""
    if array.ndim == 2:
        return False
    counts = {*_LAYOUT_CHANNELS, wanted}
    first, last = array.shape[-3] in counts, array.shape[-1] in counts
    if isinstance(array, np.ndarray):
        return last or not first
    return last and not first


def _to_chw(array: np.ndarray | torch.Tensor, channels_last: bool) -> torch.Tensor:
    """One uint8 image (H, W), (H, W, C) or (C, H, W) as a (C, H, W) tensor."""
    if isinstance(array, np.ndarray):
        array = torch.from_numpy(np.array(array, copy=True))  # the caller's array may be read-only
    if array.dim() == 2:
        return array.unsqueeze(0)
    return array.permute(2, 0, 1) if channels_last else array


def _spec_chw(image: torch.Tensor, size: tuple) -> torch.Tensor:
    """Bring an image to the 3 RGB channels a pretrained network's preset expects."""
    if image.shape[0] == 1:
        return image.expand(3, -1, -1)
    if image.shape[0] == 4:
        return image[:3]  # drop alpha
    if image.shape[0] != 3:
        raise DataError(
            f"preprocess: an image must have 1, 3 or 4 channels; received one of size {size}."
        )
    return image


def _load_rgb(item: Any) -> Any:
    from PIL import Image, UnidentifiedImageError

    if _is_pil_image(item):
        return item.convert("RGB")
    path = Path(item)
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"preprocess: cannot read image file {path}: {err}") from err


class _ImageList(Dataset):
    """Image files / PIL images, read and prepared one by one (for batched predict)."""

    def __init__(self, items: Sequence[Any], prepare: Any) -> None:
        self.items = list(items)
        self.prepare = prepare

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.prepare(self.items[index])


def _check_rank(data: np.ndarray | torch.Tensor, who: str) -> None:
    if data.ndim not in (2, 3, 4):
        raise DataError(
            f"{who}: a uint8 image array must have 2 to 4 dimensions (H x W, one image with "
            f"channels, or a batch); received size {tuple(data.shape)}."
        )


def _images_of(data: np.ndarray | torch.Tensor, wanted: int | None) -> list[torch.Tensor]:
    """Split a uint8 image or batch into (C, H, W) tensors (the layout found from the sizes)."""
    single = data.ndim in (2, 3)
    batch = [data] if single else list(data)
    channels_last = _channels_last(data, wanted) if data.ndim >= 3 else False
    return [_to_chw(image, channels_last) for image in batch]


def _spec_preparer(spec: dict[str, Any]) -> Any:
    transform = image_transform(spec)

    def prepare(data: Any) -> Any:
        if _is_uint8(data):
            _check_rank(data, "preprocess")
            size = tuple(data.shape)
            return torch.stack([transform(_spec_chw(x, size)) for x in _images_of(data, 3)])
        if _is_image_item(data):
            return transform(_load_rgb(data)).unsqueeze(0)
        if isinstance(data, list | tuple) and data and all(_is_image_item(d) for d in data):
            return _ImageList(data, lambda item: transform(_load_rgb(item)))
        return None

    return prepare


def _fit_channels(image: torch.Tensor, wanted: int, layer: Any, size: tuple) -> torch.Tensor:
    """Bring a (C, H, W) uint8 image to the input layer's number of channels."""
    found = image.shape[0]
    if found == wanted:
        return image
    if wanted == 3 and found in (1, 4):
        return image.expand(3, -1, -1) if found == 1 else image[:3]  # gray to RGB; drop alpha
    if wanted == 1 and found in (3, 4):
        from torchvision.transforms.v2 import functional as F

        return F.rgb_to_grayscale(image[:3])
    raise DataError(
        f"Input layer '{layer.name}' takes images with {wanted} channel(s) "
        f"({layer.describe_input()}); received a uint8 image of size {size} with {found} "
        "channel(s). Give images with that many channels (the channel axis first for a "
        "tensor, last for a numpy array)."
    )


def _fit_image(image: torch.Tensor, layer: Any, size: tuple) -> torch.Tensor:
    """What ImageDatastore(output_size=(H, W)) yields: resized uint8, then float in [0, 1]."""
    from torchvision.transforms.v2 import functional as F

    channels, height, width = layer.shape
    if channels is not None:
        image = _fit_channels(image, int(channels), layer, size)
    if height is not None and width is not None and tuple(image.shape[-2:]) != (height, width):
        image = F.resize(image, [int(height), int(width)], antialias=True)
    return image.to(torch.float32).div_(255.0)


def _read_for(layer: Any, item: Any) -> torch.Tensor:
    """An image file, PIL image or uint8 image, decoded as ImageDatastore does, for ``layer``."""
    from deeptoolbox.data import _files
    from deeptoolbox.data._image import decode_image

    channels = layer.shape[0]
    color = "gray" if channels == 1 else "rgb"
    if _is_uint8(item):
        _check_rank(item, "predict")
        (image,) = _images_of(item, channels)
    elif _is_pil_image(item):
        array = np.asarray(item.convert("L" if color == "gray" else "RGB"))
        image = _to_chw(array, channels_last=True)
    else:
        try:
            data = _files.read_bytes(str(item))
        except OSError as err:
            raise DataError(f"predict: cannot read image file '{item}': {err}.") from err
        image = decode_image(data, color, str(item))
    return _fit_image(image, layer, tuple(image.shape))


def _layer_preparer(layer: Any) -> Any:
    def prepare(data: Any) -> Any:
        if _is_uint8(data):
            _check_rank(data, "predict")
            size = tuple(data.shape)
            images = _images_of(data, layer.shape[0])
            return torch.stack([_fit_image(x, layer, size) for x in images])
        if _is_image_item(data):
            return _read_for(layer, data).unsqueeze(0)
        if isinstance(data, list | tuple) and data and all(_is_list_item(d) for d in data):
            return _ImageList(data, lambda item: _read_for(layer, item))
        return None

    return prepare


def _is_list_item(item: Any) -> bool:
    return _is_image_item(item) or (_is_uint8(item) and item.ndim in (2, 3))


def prepare_images(net: Any, data: Any) -> Any:
    """Input preparer run by predict/classify: images in, float tensors (or a Dataset) out.

    Returns None (leave ``data`` alone) unless ``data`` is an image file path, a PIL image, a
    list of those, or a uint8 array / tensor, and ``net`` carries an image preprocessing spec
    or has one :class:`~deeptoolbox.layers.ImageInput` (see the module docstring for what is
    applied in each case). Numpy arrays are read channels-last (H, W, C) / (N, H, W, C) as
    image libraries give them, tensors channels-first, unless only the other layout fits.

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.ImageInput((3, 8, 8)), L.Flatten(), L.Dense(2)])
        >>> prepare_images(net, np.full((20, 30, 3), 255, dtype=np.uint8)).shape
        torch.Size([1, 3, 8, 8])
        >>> prepare_images(net, torch.zeros(2, 3, 8, 8)) is None
        True
    """
    spec = spec_of(net)
    if spec is not None:
        return _spec_preparer(spec)(data)
    if not (_is_uint8(data) or _is_image_item(data) or isinstance(data, list | tuple)):
        return None
    layer = _image_input_of(net)
    return None if layer is None else _layer_preparer(layer)(data)


def _image_input_of(net: Any) -> Any:
    """The ImageInput layer of a one-input Network, else None."""
    from deeptoolbox.layers import ImageInput
    from deeptoolbox.network import Network

    if not isinstance(net, Network) or len(net.input_names) != 1:
        return None
    layer = net.layer(net.input_names[0])
    return layer if isinstance(layer, ImageInput) else None
