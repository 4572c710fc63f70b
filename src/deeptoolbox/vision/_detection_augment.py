"""DetectionAugmenter: random flips, zoom/shift, crops and colour jitter of an image together
with its boxes (torchvision transforms v2 on ``tv_tensors.BoundingBoxes``); boxes that leave
the image are clipped, and those left too small are dropped with their labels."""

from __future__ import annotations

from typing import Any

import torch

from deeptoolbox.data._augment import ImageAugmenter
from deeptoolbox.errors import OptionError

__all__ = ["DetectionAugmenter"]

_OPTIONS = ("flip", "rotation", "scale", "translation", "shear", "crop", "color_jitter")


class DetectionAugmenter:
    """Random augmentation of an image and its boxes (MATLAB's box-aware ``transform`` with
    ``randomAffine2d`` / ``bboxwarp`` / ``bboxcrop``).

    Each geometric step draws its parameters once per observation and moves the image and
    its boxes (and instance masks, when the target holds ``"masks"``) by the same
    transform. After the steps, boxes are clipped to the image (``ClampBoundingBoxes``) and
    boxes narrower or lower than ``min_size`` pixels are dropped with their labels
    (``SanitizeBoundingBoxes``). Colour jitter changes the image only.

    Args:
        flip: None, "horizontal", "vertical" or "both" (each with probability 0.5).
        rotation: degrees, r or (min, max) — a rotated box is the box around its rotated
            corners, so it grows; keep rotations small for detection.
        scale: (min, max) zoom factor, e.g. (0.8, 1.2).
        translation: f or (fx, fy): the largest shift either way as a fraction of the size.
        shear: degrees along x, r or (min, max).
        crop: an int or (H, W): a random crop (padded when the image is smaller).
        color_jitter: brightness/contrast/saturation strength, or ColorJitter's arguments.
        min_size: boxes smaller than this (pixels, width or height) after the transform are
            dropped.

    Example:
        >>> import torch
        >>> aug = DetectionAugmenter(flip="horizontal", scale=(0.9, 1.1))
        >>> target = {"boxes": torch.tensor([[2.0, 2.0, 8.0, 8.0]]), "labels": torch.tensor([1])}
        >>> image, out = aug(torch.rand(3, 16, 16), target)
        >>> tuple(image.shape), out["boxes"].shape, out["labels"].tolist()
        ((3, 16, 16), torch.Size([1, 4]), [1])
    """

    def __init__(self, *, min_size: float = 1.0, **options: Any) -> None:
        from torchvision.transforms import v2

        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            hint = (
                " (shifts in pixels are not box-aware here: use `translation` fractions)"
                if "translation_pixels" in unknown else ""
            )  # fmt: skip
            raise OptionError(
                f"DetectionAugmenter: unknown option(s) {', '.join(unknown)}{hint}. It takes "
                f"{', '.join(_OPTIONS)} and `min_size`."
            )
        if isinstance(min_size, bool) or not isinstance(min_size, int | float) or min_size < 0:
            raise OptionError(
                f"DetectionAugmenter: `min_size` must be a number >= 0 (pixels). Received: "
                f"min_size={min_size!r}."
            )
        checked = ImageAugmenter(**options)  # validates, with ImageAugmenter's messages
        self.options = {k: checked.options.get(k) for k in _OPTIONS}
        self.options["min_size"] = float(min_size)
        o = self.options
        steps: list[Any] = []
        if o["flip"] in ("horizontal", "both"):
            steps.append(v2.RandomHorizontalFlip())
        if o["flip"] in ("vertical", "both"):
            steps.append(v2.RandomVerticalFlip())
        if any(o[k] is not None for k in ("rotation", "scale", "translation", "shear")):
            steps.append(v2.RandomAffine(
                degrees=o["rotation"] or (0.0, 0.0), translate=o["translation"],
                scale=o["scale"], shear=o["shear"],
            ))  # fmt: skip
        if o["crop"] is not None:
            steps.append(v2.RandomCrop(o["crop"], pad_if_needed=True))
        if o["color_jitter"] is not None:
            steps.append(next(s for s in checked.transform.transforms
                              if isinstance(s, v2.ColorJitter)))  # fmt: skip
        steps += [v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(min_size=float(min_size))]
        self.transform = v2.Compose(steps)

    def __call__(
        self, image: torch.Tensor, target: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        from torchvision import tv_tensors

        canvas = tuple(int(s) for s in image.shape[-2:])
        wrapped = {**target, "boxes": tv_tensors.BoundingBoxes(
            target["boxes"], format="XYXY", canvas_size=canvas)}  # fmt: skip
        if "masks" in target:
            wrapped["masks"] = tv_tensors.Mask(target["masks"])
        out_image, out = self.transform(tv_tensors.Image(image), wrapped)
        plain = {k: v.as_subclass(torch.Tensor) if isinstance(v, torch.Tensor) else v
                 for k, v in out.items()}  # fmt: skip
        return out_image.as_subclass(torch.Tensor), plain

    def __repr__(self) -> str:
        used = ", ".join(f"{k}={v!r}" for k, v in self.options.items() if v is not None)
        return f"DetectionAugmenter({used})"
