"""ImageAugmenter (MATLAB ``imageDataAugmenter``): random flips, affine warps (rotation,
zoom, translation in fractions or pixels, shear), crops and colour jitter on torchvision
transforms v2."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from deeptoolbox.errors import OptionError

__all__ = ["ImageAugmenter"]

Range = tuple[float, float]
_AFFINE_OPTIONS = ("rotation", "scale", "translation", "translation_pixels", "shear")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _symmetric(name: str, value: Any, limit: float, unit: str) -> Range:
    """A (min, max) range from one number r, meaning (-|r|, |r|), or from a (min, max) pair."""
    if _is_number(value):
        pair: tuple[Any, ...] = (-abs(value), abs(value))
    elif isinstance(value, Sequence) and not isinstance(value, str):
        pair = tuple(value)
    else:
        pair = ()
    if (
        len(pair) != 2
        or not all(_is_number(v) for v in pair)
        or not (-limit <= pair[0] <= pair[1] <= limit)
    ):
        raise OptionError(
            f"ImageAugmenter: `{name}` must be a number r ({unit}, meaning a random value in "
            f"[-|r|, |r|]) or a (min, max) pair with {-limit:g} <= min <= max <= {limit:g}. "
            f"Received: {name}={value!r}. Example: {name}=10 or {name}=(-5, 15)."
        )
    return float(pair[0]), float(pair[1])


def _scale_range(scale: Any) -> Range:
    pair = tuple(scale) if isinstance(scale, Sequence) and not isinstance(scale, str) else ()
    if (
        len(pair) != 2
        or not all(_is_number(v) for v in pair)
        or not (1e-3 <= pair[0] <= pair[1] <= 100)
    ):
        raise OptionError(
            "ImageAugmenter: `scale` must be a (min, max) pair of zoom factors with "
            "0.001 <= min <= max <= 100 (1 keeps the size). Received: "
            f"scale={scale!r}. Example: scale=(0.9, 1.1)."
        )
    return float(pair[0]), float(pair[1])


def _fractions(translation: Any) -> tuple[float, float]:
    """(fx, fy) from one number (both axes) or a pair; each the largest shift either way."""
    pair = (translation, translation) if _is_number(translation) else translation
    pair = tuple(pair) if isinstance(pair, Sequence) and not isinstance(pair, str) else ()
    if len(pair) != 2 or not all(_is_number(v) and 0 <= v <= 1 for v in pair):
        raise OptionError(
            "ImageAugmenter: `translation` must be f or (fx, fy): the largest shift either way "
            "as a fraction of the width and height, each in [0, 1] (0.1 shifts by up to "
            f"±10 %). Received: translation={translation!r}. For shifts in pixels, or "
            "asymmetric ranges, use translation_pixels=(x, y)."
        )
    return float(pair[0]), float(pair[1])


def _pixel_ranges(translation_pixels: Any) -> tuple[Range, Range]:
    """x and y shift ranges in pixels: p (both axes, ±|p|), or (x, y), each p or (min, max)."""
    value = translation_pixels
    axes = (value, value) if _is_number(value) else value
    if not isinstance(axes, Sequence) or isinstance(axes, str) or len(axes) != 2:
        raise OptionError(
            "ImageAugmenter: `translation_pixels` must be p or (x, y), where each of p, x, y "
            "is a number (a shift in [-|p|, |p|] pixels) or a (min, max) pair of pixels. "
            f"Received: translation_pixels={value!r}. Example: translation_pixels=(3, 5), "
            "or ((-3, 3), (0, 10)) for MATLAB's RandXTranslation=[-3 3], "
            "RandYTranslation=[0 10]."
        )
    x_range, y_range = (_symmetric("translation_pixels", a, 1e6, "pixels") for a in axes)
    return x_range, y_range


class RandomAffine:
    """A random affine warp: rotation, zoom, shear and shift (fractions or pixel ranges).

    Parameters are drawn from torch's global generator (as torchvision's ``RandomAffine``),
    so ``torch.manual_seed`` makes them repeatable; empty corners are filled with 0.
    """

    def __init__(
        self,
        degrees: Range,
        scale: Range | None,
        shear: Range | None,
        fractions: tuple[float, float] | None,
        pixels: tuple[Range, Range] | None,
    ) -> None:
        self.degrees, self.scale, self.shear = degrees, scale, shear
        self.fractions, self.pixels = fractions, pixels

    @staticmethod
    def _uniform(low: float, high: float) -> float:
        return float(torch.empty(1).uniform_(low, high).item())

    def _shift(self, height: int, width: int) -> list[int]:
        if self.pixels is not None:
            (x_low, x_high), (y_low, y_high) = self.pixels
        elif self.fractions is not None:
            x_high, y_high = self.fractions[0] * width, self.fractions[1] * height
            x_low, y_low = -x_high, -y_high
        else:
            return [0, 0]
        return [round(self._uniform(x_low, x_high)), round(self._uniform(y_low, y_high))]

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as F

        angle = self._uniform(*self.degrees)
        translate = self._shift(int(image.shape[-2]), int(image.shape[-1]))
        scale = 1.0 if self.scale is None else self._uniform(*self.scale)
        shear = 0.0 if self.shear is None else self._uniform(*self.shear)
        return F.affine(image, angle=angle, translate=translate, scale=scale, shear=[shear, 0.0])


class ImageAugmenter:
    """Random image augmentation (MATLAB ``imageDataAugmenter``) on torchvision transforms v2.

    Args:
        flip: None (or "none"), "horizontal", "vertical" or "both" (each flip with
            probability 0.5).
        rotation: degrees: r (a random angle in [-|r|, |r|]) or a (min, max) pair.
        scale: (min, max) zoom factor, e.g. (0.9, 1.1).
        translation: f or (fx, fy): the largest shift either way as a fraction of the width
            and height (0.1: up to ±10 %).
        translation_pixels: shifts in pixels (MATLAB's ``RandXTranslation`` and
            ``RandYTranslation``): p (x and y in [-|p|, |p|]) or (x, y), each a number p or a
            (min, max) pair, e.g. ``((-3, 3), (0, 10))``. Not together with ``translation``.
        shear: degrees along x: r (in [-|r|, |r|]) or a (min, max) pair.
        crop: an int or (H, W): size of a random crop (padded when the image is smaller).
        color_jitter: brightness/contrast/saturation strength (one number) or a dict of
            ``torchvision.transforms.v2.ColorJitter`` arguments.
        extra: more torchvision v2 transforms, applied last.

    Steps run in this order: flips, the affine warp, the crop, colour jitter, ``extra``.
    A datastore applies its augmenter only while ``ds.training`` is True (the default;
    ``ds.eval()`` turns it off; ``predict``/``classify`` read in eval mode).

    Example:
        >>> import torch
        >>> aug = ImageAugmenter(flip="horizontal", rotation=-10, translation_pixels=(3, 2))
        >>> aug(torch.zeros(3, 16, 16, dtype=torch.uint8)).shape
        torch.Size([3, 16, 16])
        >>> aug.options["rotation"]
        (-10.0, 10.0)
    """

    def __init__(
        self,
        *,
        flip: str | None = None,
        rotation: float | Sequence[float] | None = None,
        scale: Sequence[float] | None = None,
        translation: float | Sequence[float] | None = None,
        translation_pixels: float | Sequence[Any] | None = None,
        shear: float | Sequence[float] | None = None,
        crop: int | Sequence[int] | None = None,
        color_jitter: float | dict[str, Any] | None = None,
        extra: Sequence[Any] = (),
    ) -> None:
        from torchvision.transforms import v2

        if flip == "none":
            flip = None
        if flip not in (None, "horizontal", "vertical", "both"):
            raise OptionError(
                "ImageAugmenter: `flip` must be None ('none'), 'horizontal', 'vertical' or 'both'. "
                f"Received: flip={flip!r}."
            )
        if translation is not None and translation_pixels is not None:
            raise OptionError(
                "ImageAugmenter: give `translation` (fractions) or `translation_pixels`, not "
                f"both. Received: translation={translation!r}, "
                f"translation_pixels={translation_pixels!r}."
            )
        checks = {
            "rotation": lambda v: _symmetric("rotation", v, 360, "degrees"),
            "scale": _scale_range,
            "translation": _fractions,
            "translation_pixels": _pixel_ranges,
            "shear": lambda v: _symmetric("shear", v, 89, "degrees"),
            "crop": _crop_size,
        }
        given = {"rotation": rotation, "scale": scale, "translation": translation,
                 "translation_pixels": translation_pixels, "shear": shear, "crop": crop}  # fmt: skip
        checked = {k: None if v is None else checks[k](v) for k, v in given.items()}
        self.options: dict[str, Any] = {"flip": flip, **checked, "color_jitter": color_jitter}
        steps: list[Any] = []
        if flip in ("horizontal", "both"):
            steps.append(v2.RandomHorizontalFlip())
        if flip in ("vertical", "both"):
            steps.append(v2.RandomVerticalFlip())
        if any(checked[k] is not None for k in _AFFINE_OPTIONS):
            steps.append(RandomAffine(
                checked["rotation"] or (0.0, 0.0), checked["scale"], checked["shear"],
                checked["translation"], checked["translation_pixels"],
            ))  # fmt: skip
        if checked["crop"] is not None:
            steps.append(v2.RandomCrop(checked["crop"], pad_if_needed=True))
        if color_jitter is not None:
            steps.append(_jitter(color_jitter))
        steps.extend(extra)
        self.transform = v2.Compose(steps or [v2.Identity()])  # no option set: a no-op

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.transform(image)

    def __repr__(self) -> str:
        used = ", ".join(f"{k}={v!r}" for k, v in self.options.items() if v is not None)
        return f"ImageAugmenter({used})"


def _crop_size(crop: Any) -> tuple[int, int]:
    size = (crop, crop) if isinstance(crop, int) and not isinstance(crop, bool) else crop
    size = tuple(size) if isinstance(size, Sequence) and not isinstance(size, str) else ()
    if len(size) != 2 or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in size):
        raise OptionError(
            f"ImageAugmenter: `crop` must be a positive int or (H, W) positive ints. "
            f"Received: crop={crop!r}."
        )
    return size  # type: ignore[return-value]


def _jitter(color_jitter: Any) -> Any:
    from torchvision.transforms import v2

    if _is_number(color_jitter):
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
