"""ImageDatastore (image files in folders, lists or fsspec URLs) and ImageAugmenter."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from deeptoolbox.data import _files
from deeptoolbox.data._base import Datastore
from deeptoolbox.errors import DataError, OptionError

__all__ = ["ImageDatastore", "ImageAugmenter", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".pgm",
    ".ppm",
)


def _pair(name: str, value: Any, low: float, high: float) -> tuple[float, float]:
    """A (min, max) range from one number (symmetric) or a pair."""
    pair = (-value, value) if isinstance(value, int | float) else tuple(value)
    ok = len(pair) == 2 and all(isinstance(v, int | float) for v in pair)
    if not ok or not low <= pair[0] <= pair[1] <= high:
        raise OptionError(
            f"ImageAugmenter: `{name}` must be a number or a (min, max) pair within "
            f"[{low}, {high}]. Received: {name}={value!r}."
        )
    return float(pair[0]), float(pair[1])


class ImageAugmenter:
    """Random image augmentation (MATLAB ``imageDataAugmenter``) on torchvision transforms v2.

    Args:
        flip: None, "horizontal", "vertical" or "both" (each flip with probability 0.5).
        rotation: degrees, ±value or a (min, max) pair.
        scale: (min, max) zoom factor, e.g. (0.9, 1.1).
        translation: (fx, fy): largest shift as a fraction of width and height.
        shear: degrees, ±value or a (min, max) pair (along x).
        crop: (H, W) of a random crop (padded when the image is smaller).
        color_jitter: brightness/contrast/saturation strength (one number) or a dict of
            ``torchvision.transforms.v2.ColorJitter`` arguments.
        extra: more torchvision v2 transforms, applied last.

    A datastore applies its augmenter only while ``ds.training`` is True (the default;
    ``ds.eval()`` turns it off; ``predict``/``classify`` read in eval mode).

    Example:
        >>> import torch
        >>> aug = ImageAugmenter(flip="horizontal", rotation=10, scale=(0.9, 1.1))
        >>> aug(torch.zeros(3, 16, 16, dtype=torch.uint8)).shape
        torch.Size([3, 16, 16])
    """

    def __init__(
        self,
        *,
        flip: str | None = None,
        rotation: float | Sequence[float] | None = None,
        scale: Sequence[float] | None = None,
        translation: Sequence[float] | None = None,
        shear: float | Sequence[float] | None = None,
        crop: Sequence[int] | None = None,
        color_jitter: float | dict[str, Any] | None = None,
        extra: Sequence[Any] = (),
    ) -> None:
        from torchvision.transforms import v2

        steps: list[Any] = []
        if flip not in (None, "horizontal", "vertical", "both"):
            raise OptionError(
                "ImageAugmenter: `flip` must be None, 'horizontal', 'vertical' or 'both'. "
                f"Received: flip={flip!r}."
            )
        if flip in ("horizontal", "both"):
            steps.append(v2.RandomHorizontalFlip())
        if flip in ("vertical", "both"):
            steps.append(v2.RandomVerticalFlip())
        if any(v is not None for v in (rotation, scale, translation, shear)):
            steps.append(self._affine(rotation, scale, translation, shear))
        if crop is not None:
            if len(tuple(crop)) != 2 or any(not isinstance(c, int) or c < 1 for c in crop):
                raise OptionError(
                    f"ImageAugmenter: `crop` must be (H, W) ints. Received: {crop!r}."
                )
            steps.append(v2.RandomCrop(tuple(crop), pad_if_needed=True))
        if color_jitter is not None:
            steps.append(self._jitter(color_jitter))
        steps.extend(extra)
        self.options = {
            "flip": flip,
            "rotation": rotation,
            "scale": scale,
            "translation": translation,
            "shear": shear,
            "crop": crop,
            "color_jitter": color_jitter,
        }
        self.transform = v2.Compose(steps)

    @staticmethod
    def _affine(rotation: Any, scale: Any, translation: Any, shear: Any) -> Any:
        from torchvision.transforms import v2

        degrees = _pair("rotation", rotation, -360, 360) if rotation is not None else (0.0, 0.0)
        if translation is not None:
            translate = tuple(translation)
            if len(translate) != 2 or not all(0 <= float(t) <= 1 for t in translate):
                raise OptionError(
                    "ImageAugmenter: `translation` must be (fx, fy) fractions in [0, 1]. "
                    f"Received: translation={translation!r}."
                )
        return v2.RandomAffine(
            degrees=degrees,
            translate=None if translation is None else tuple(float(t) for t in translation),
            scale=None if scale is None else _pair("scale", scale, 1e-3, 100),
            shear=None if shear is None else _pair("shear", shear, -89, 89),
        )

    @staticmethod
    def _jitter(color_jitter: Any) -> Any:
        from torchvision.transforms import v2

        if isinstance(color_jitter, int | float) and not isinstance(color_jitter, bool):
            if color_jitter < 0:
                raise OptionError(
                    f"ImageAugmenter: `color_jitter` must be >= 0. Received: {color_jitter!r}."
                )
            value = float(color_jitter)
            return v2.ColorJitter(brightness=value, contrast=value, saturation=value)
        if isinstance(color_jitter, dict):
            try:
                return v2.ColorJitter(**color_jitter)
            except (TypeError, ValueError) as err:
                raise OptionError(f"ImageAugmenter: bad `color_jitter` options: {err}") from err
        raise OptionError(
            "ImageAugmenter: `color_jitter` must be a number or a dict of ColorJitter options. "
            f"Received: {color_jitter!r}."
        )

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.transform(image)

    def __repr__(self) -> str:
        used = ", ".join(f"{k}={v!r}" for k, v in self.options.items() if v is not None)
        return f"ImageAugmenter({used})"


def decode_image(data: bytes, color: str, path: str) -> torch.Tensor:
    """Decode image bytes to a (C, H, W) uint8 tensor: torchvision first, Pillow as fallback."""
    from torchvision.io import ImageReadMode
    from torchvision.io import decode_image as tv_decode

    mode = ImageReadMode.RGB if color == "rgb" else ImageReadMode.GRAY
    try:  # torchvision's decoders: ~2.5x faster than Pillow on small PNGs
        with warnings.catch_warnings():  # deprecated for torchcodec since 0.29, still working
            warnings.simplefilter("ignore", DeprecationWarning)
            return tv_decode(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=mode)
    except (RuntimeError, ValueError):
        pass
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            array = np.asarray(image.convert("RGB" if color == "rgb" else "L"))
    except Image.UnidentifiedImageError as err:
        reason = "not an image, or corrupt: neither torchvision nor Pillow can decode it"
        raise DataError(f"ImageDatastore: cannot read image '{path}': {reason}.") from err
    except Exception as err:  # Pillow raises many types for truncated or damaged files
        reason = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        raise DataError(f"ImageDatastore: cannot read image '{path}': {reason}.") from err
    tensor = torch.from_numpy(array.copy())
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()


class ImageDatastore(Datastore):
    """Image files read lazily (MATLAB ``imageDatastore`` / ``augmentedImageDatastore``).

    ``ds[i]`` is a float32 (C, H, W) tensor in [0, 1] (8- and 16-bit files alike) —
    ``(image, class_index)`` when the datastore has labels.

    Args:
        location: a folder (searched recursively), a file, an fsspec URL
            (``memory://``, ``s3://``...) or a list of them.
        labels: "auto" (folder names when the files sit in subfolders), "folders" (always
            the parent folder's name), None, or one label per file.
        classes: the class order (default: sorted labels).
        extensions: file extensions to read from folders.
        recursive: search subfolders of the folders given (default True).
        output_size: (H, W) every image is brought to (None: keep the size).
        color: "rgb" (3 channels) or "gray" (1 channel).
        size_mode: "resize" (stretch to ``output_size``) or "center-crop" (crop, or pad with
            zeros, around the centre).
        augmenter: an :class:`ImageAugmenter` (or any callable on a uint8 (C, H, W) tensor),
            applied after decoding and before sizing, only while ``training`` is True.
        on_error: "raise" (reading a bad file raises DataError) or "skip" (every file is
            decoded once now; unreadable ones are dropped with one warning).

    Example:
        >>> import tempfile
        >>> from deeptoolbox.datasets import digits, write_image_folder
        >>> images, labels = digits()
        >>> folder = write_image_folder(tempfile.mkdtemp(), images[:30], labels[:30])
        >>> ds = ImageDatastore(folder, output_size=(16, 16), color="gray")
        >>> image, label = ds[0]
        >>> image.shape, ds.classes[:3]
        (torch.Size([1, 16, 16]), ['0', '1', '2'])
    """

    def __init__(
        self,
        location: _files.Location,
        *,
        labels: str | Sequence[Any] | np.ndarray | None = "auto",
        classes: Sequence[Any] | None = None,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        recursive: bool = True,
        output_size: int | Sequence[int] | None = None,
        color: str = "rgb",
        size_mode: str = "resize",
        augmenter: Any = None,
        on_error: str = "raise",
    ) -> None:
        if color not in ("rgb", "gray"):
            raise OptionError(
                f"ImageDatastore: `color` must be 'rgb' or 'gray'. Received: {color!r}."
            )
        if size_mode not in ("resize", "center-crop"):
            raise OptionError(
                "ImageDatastore: `size_mode` must be 'resize' or 'center-crop'. "
                f"Received: {size_mode!r}."
            )
        if augmenter is not None and not callable(augmenter):
            raise OptionError(
                f"ImageDatastore: `augmenter` must be an ImageAugmenter or a callable. "
                f"Received: {type(augmenter).__name__}."
            )
        _files.check_on_error("ImageDatastore", on_error)
        self.output_size = _check_size(output_size)
        self.color, self.size_mode, self.augmenter = color, size_mode, augmenter
        self._files, self._labels, self._classes, self._codes = _files.labelled_files(
            "ImageDatastore",
            location,
            extensions,
            recursive,
            labels,
            classes,
            on_error,
            self._decode,
        )
        self._init_view()

    @property
    def files(self) -> list[str]:
        """The file of each observation, in datastore order."""
        return [self._files[j] for j in self._order]

    def _count(self) -> int:
        return len(self._files)

    def _source_labels(self) -> np.ndarray | None:
        return self._labels

    def _decode(self, path: str) -> torch.Tensor:
        try:
            data = _files.read_bytes(path)
        except OSError as err:
            raise DataError(f"ImageDatastore: cannot read image '{path}': {err}.") from err
        return decode_image(data, self.color, path)

    def _fit_size(self, image: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as F

        if self.output_size is None or tuple(image.shape[-2:]) == self.output_size:
            return image
        if self.size_mode == "resize":
            return F.resize(image, list(self.output_size), antialias=True)
        return F.center_crop(image, list(self.output_size))

    def _load(self, j: int) -> Any:
        image = self._decode(self._files[j])
        if image.dtype == torch.uint16:  # 16-bit PNG/TIFF: scale to [0, 1] now
            image = image.to(torch.float32).div_(65535.0)
        if self.augmenter is not None and self.training:
            image = self.augmenter(image)
        image = self._fit_size(image)
        image = image.to(torch.float32).div_(255.0) if image.dtype == torch.uint8 else image
        if self._codes is None:
            return image
        return image, torch.tensor(self._codes[j])


def _check_size(output_size: Any) -> tuple[int, int] | None:
    if output_size is None:
        return None
    size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
        raise OptionError(
            f"ImageDatastore: `output_size` must be (H, W) positive ints. Received: {output_size!r}."
        )
    return size  # type: ignore[return-value]
