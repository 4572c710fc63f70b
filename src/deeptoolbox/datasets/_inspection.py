"""Synthetic visual-inspection data: textured surfaces of manufactured parts (a woven,
brushed-metal like pattern) with scratches, holes and stains, and the pixel mask of every
defect. Deterministic for a given ``seed``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from deeptoolbox.errors import OptionError

__all__ = ["InspectionData", "inspection", "DEFECTS"]

DEFECTS = ("scratch", "hole", "stain")


@dataclass(frozen=True)
class InspectionData:
    """Images of textured parts, some with a defect, from :func:`inspection`.

    Attributes:
        images: float32 (N, 3, H, W) in [0, 1].
        masks: bool (N, H, W): True on the defect's pixels (all False on normal parts).
        labels: (N,) ``"normal"`` or the defect's name (``"scratch"``, ``"hole"``, ``"stain"``).

    Example:
        >>> data = inspection(2, 2, image_size=32)
        >>> data.images.shape, data.masks.shape, data.anomalous.tolist()
        ((4, 3, 32, 32), (4, 32, 32), [False, False, True, True])
    """

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray

    @property
    def anomalous(self) -> np.ndarray:
        """bool (N,): True for the parts with a defect.

        Example:
            >>> inspection(1, 1, image_size=16).anomalous.tolist()
            [False, True]
        """
        return self.labels != "normal"

    def subset(self, index: Sequence[int] | np.ndarray) -> InspectionData:
        """The observations at ``index`` (ints, or a bool array of length N).

        Example:
            >>> data = inspection(3, 2, image_size=16)
            >>> data.subset(~data.anomalous).labels.tolist()
            ['normal', 'normal', 'normal']
        """
        index = np.asarray(index)
        return InspectionData(self.images[index], self.masks[index], self.labels[index])


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise OptionError(f"inspection: `{name}` must be an int >= 0. Received: {name}={value!r}.")
    return value


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A woven surface: two crossed gratings of a fixed period (a small random rotation and
    phase per part), fine grain, and a gentle illumination gradient."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    theta = rng.uniform(-0.08, 0.08)
    u = x * np.cos(theta) + y * np.sin(theta)
    v = -x * np.sin(theta) + y * np.cos(theta)
    period = 6.0 * rng.uniform(0.97, 1.03)
    weave = np.sin(2 * np.pi * u / period + rng.uniform(0, 2 * np.pi)) * np.sin(
        2 * np.pi * v / period + rng.uniform(0, 2 * np.pi)
    )
    gx, gy = rng.uniform(-0.08, 0.08, size=2)
    light = 1.0 + gx * (x / size - 0.5) + gy * (y / size - 0.5)
    base = np.array([0.55, 0.56, 0.58]) + rng.uniform(-0.03, 0.03)
    grain = rng.normal(0.0, 0.02, size=(size, size))
    tone = (0.09 * weave + grain) * light
    return base[:, None, None] * light + tone[None]


def _scratch(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """A thin bright curve (a quadratic Bezier) across the surface."""
    size = image.shape[-1]
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    length = rng.uniform(0.3, 0.55) * size
    angle = rng.uniform(0, np.pi)
    start = rng.uniform(0.2, 0.8, size=2) * size
    end = np.clip(start + length * np.array([np.cos(angle), np.sin(angle)]), 2, size - 2)
    middle = (start + end) / 2 + rng.normal(0, 0.08 * size, size=2)
    t = np.linspace(0, 1, 200)[:, None]
    curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * middle + t**2 * end
    distance = np.min(np.hypot(x[..., None] - curve[:, 0], y[..., None] - curve[:, 1]), axis=-1)
    width = rng.uniform(0.7, 1.3)
    strength = np.clip(1.0 - (distance - width) / 1.0, 0, 1)
    image += 0.3 * strength[None]
    return strength > 0.3


def _blob(rng: np.random.Generator, size: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """An irregular round region: the distance to its edge (negative inside), and its centre."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    centre = rng.uniform(radius + 2, size - radius - 2, size=2)
    angle = np.arctan2(y - centre[1], x - centre[0])
    edge = radius * (1 + sum(rng.uniform(-0.15, 0.15) * np.cos(k * angle + rng.uniform(0, 6.3))
                             for k in (2, 3, 5)))  # fmt: skip
    return np.hypot(x - centre[0], y - centre[1]) - edge, centre


def _hole(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """A dark pit with a lighter rim."""
    size = image.shape[-1]
    distance, _ = _blob(rng, size, rng.uniform(0.04, 0.08) * size)
    inside = np.clip(0.5 - distance, 0, 1)
    rim = np.clip(1.0 - np.abs(distance - 1.0), 0, 1)
    image *= 1 - 0.8 * inside[None]
    image += 0.15 * rim[None]
    return (inside > 0.3) | (rim > 0.5)


def _stain(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """A brownish, half-transparent spot with soft edges."""
    size = image.shape[-1]
    distance, _ = _blob(rng, size, rng.uniform(0.08, 0.14) * size)
    alpha = rng.uniform(0.45, 0.7) * np.clip(0.5 - distance / 2.0, 0, 1)
    colour = np.array([0.45, 0.3, 0.12]) + rng.uniform(-0.05, 0.05, size=3)
    image[:] = image * (1 - alpha[None]) + colour[:, None, None] * alpha[None]
    return alpha > 0.2


_DRAW = {"scratch": _scratch, "hole": _hole, "stain": _stain}


def inspection(
    n_normal: int = 40,
    n_anomalous: int = 40,
    *,
    image_size: int = 64,
    defects: Sequence[str] = DEFECTS,
    seed: int = 0,
) -> InspectionData:
    """Textured parts, ``n_normal`` without and ``n_anomalous`` with a defect, and the
    defect masks — for anomaly detection (visual inspection) examples and tests.

    Every part is a woven surface (crossed gratings of period 6 px, a random small rotation,
    phase, tint and lighting, and grain noise). Anomalous parts carry one defect each, the
    kinds in ``defects`` taken in turn: a ``"scratch"`` (a thin bright curve), a ``"hole"``
    (a dark pit with a rim) or a ``"stain"`` (a brownish soft spot). The normal parts come
    first, then the anomalous ones. Draw the training, validation and test sets with
    different seeds: ``inspection(100, 0, seed=0)`` for training on normal parts only,
    ``inspection(20, 20, seed=1)`` to test.

    Example:
        >>> data = inspection(3, 3, image_size=32, seed=1)
        >>> data.labels.tolist()
        ['normal', 'normal', 'normal', 'scratch', 'hole', 'stain']
        >>> bool(data.masks[:3].any()), bool(data.masks[3:].any(axis=(1, 2)).all())
        (False, True)
    """
    n_normal, n_anomalous = _count("n_normal", n_normal), _count("n_anomalous", n_anomalous)
    if n_normal + n_anomalous == 0:
        raise OptionError("inspection: ask for at least one image (n_normal + n_anomalous > 0).")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 16:
        raise OptionError(
            f"inspection: `image_size` must be an int >= 16. Received: image_size={image_size!r}."
        )
    defects = (defects,) if isinstance(defects, str) else tuple(defects)
    if not defects or any(d not in DEFECTS for d in defects):
        raise OptionError(
            f"inspection: `defects` must be drawn from {DEFECTS}. Received: defects={defects!r}."
        )
    rng = np.random.default_rng(seed)
    n = n_normal + n_anomalous
    images = np.empty((n, 3, image_size, image_size), np.float32)
    masks = np.zeros((n, image_size, image_size), bool)
    labels = np.array(
        ["normal"] * n_normal + [defects[i % len(defects)] for i in range(n_anomalous)]
    )
    for i, label in enumerate(labels):
        image = _texture(rng, image_size)
        if label != "normal":
            masks[i] = _DRAW[label](rng, image)
        images[i] = np.clip(image, 0.0, 1.0)
    return InspectionData(images, masks, labels)
