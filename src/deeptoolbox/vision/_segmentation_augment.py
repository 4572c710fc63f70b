"""SegmentationAugmenter: the same random geometric transform on an image and its label map
(torchvision transforms v2 with ``tv_tensors.Image`` and ``tv_tensors.Mask``)."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from deeptoolbox.data._augment import ImageAugmenter, RandomAffine
from deeptoolbox.errors import OptionError
from deeptoolbox.vision._pixel_labels import IGNORE_INDEX

__all__ = ["SegmentationAugmenter"]

# ImageAugmenter's options, less `extra` (transforms that may not know about label maps)
_OPTIONS = tuple(name for name in inspect.signature(ImageAugmenter).parameters if name != "extra")


class _JointAffine(RandomAffine):
    """One random affine warp drawn per call and applied to the image (bilinear) and to the
    label map (nearest neighbour: labels stay labels); corners of the map get ``fill``."""

    def __init__(self, base: RandomAffine, fill: int) -> None:
        super().__init__(base.degrees, base.scale, base.shear, base.fractions, base.pixels)
        self.fill = fill

    def __call__(self, image: Any, mask: Any = None) -> Any:  # type: ignore[override]
        from torchvision.transforms.v2 import functional as F

        angle = self._uniform(*self.degrees)
        translate = self._shift(int(image.shape[-2]), int(image.shape[-1]))
        scale = 1.0 if self.scale is None else self._uniform(*self.scale)
        shear = [0.0 if self.shear is None else self._uniform(*self.shear), 0.0]
        warp = {"angle": angle, "translate": translate, "scale": scale, "shear": shear}
        image = F.affine(image, **warp)
        return image if mask is None else (image, F.affine(mask, **warp, fill=self.fill))


class SegmentationAugmenter:
    """Random augmentation of an image together with its label map (MATLAB's
    ``imageDataAugmenter`` applied by ``pixelLabelImageDatastore``, or ``transform`` on a
    combined datastore).

    Takes :class:`~deeptoolbox.data.ImageAugmenter`'s options. Each geometric step (flips,
    the affine warp, the crop) draws its random parameters once per observation and moves
    the image and the labels by the same transform, pixel for pixel: the image is
    interpolated bilinearly, the label map by nearest neighbour, so it keeps only class
    indices. Pixels that come from outside the map get ``fill`` (default
    :data:`IGNORE_INDEX`: left out of the losses and metrics; use 0 for "background").
    Colour jitter changes the image only.

    Args:
        fill: the label of pixels brought in by warps and crop padding.
        **options: ImageAugmenter's options (flip, rotation, scale, translation,
            translation_pixels, shear, crop, color_jitter), checked by it; not ``extra``.

    Example:
        >>> import torch
        >>> aug = SegmentationAugmenter(flip="horizontal", rotation=10)
        >>> image, labels = aug(torch.rand(3, 16, 16), torch.zeros(16, 16, dtype=torch.int64))
        >>> tuple(image.shape), labels.dtype
        ((3, 16, 16), torch.int64)
    """

    def __init__(self, *, fill: int = IGNORE_INDEX, **options: Any) -> None:
        from torchvision import tv_tensors
        from torchvision.transforms import v2

        if isinstance(fill, bool) or not isinstance(fill, int):
            raise OptionError(
                f"SegmentationAugmenter: `fill` must be an int label (a class index, or "
                f"IGNORE_INDEX = {IGNORE_INDEX}). Received: fill={fill!r}."
            )
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise OptionError(
                f"SegmentationAugmenter: unknown option(s) {', '.join(unknown)}. It takes "
                f"ImageAugmenter's options {', '.join(_OPTIONS)}, and `fill`."
            )
        # ImageAugmenter validates the options (with its messages) and orders the steps
        checked = ImageAugmenter(**options)
        self.options = {**checked.options, "fill": fill}
        self.fill = fill
        steps: list[Any] = []
        for step in checked.transform.transforms:
            if isinstance(step, RandomAffine):
                steps.append(_JointAffine(step, fill))
            elif isinstance(step, v2.RandomCrop):
                steps.append(
                    v2.RandomCrop(
                        step.size,
                        pad_if_needed=True,
                        fill={tv_tensors.Image: 0, tv_tensors.Mask: fill},
                    )  # fmt: skip
                )
            else:
                steps.append(step)
        self.transform = v2.Compose(steps)

    def __call__(
        self, image: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        from torchvision import tv_tensors

        out_image, out_labels = self.transform(tv_tensors.Image(image), tv_tensors.Mask(labels))
        return out_image.as_subclass(torch.Tensor), out_labels.as_subclass(torch.Tensor)

    def __repr__(self) -> str:
        used = ", ".join(f"{k}={v!r}" for k, v in self.options.items() if v is not None)
        return f"SegmentationAugmenter({used})"
