"""Images of several shapes each, with one box and one label per shape: object detection
data (:func:`detection_shapes`), deterministic for a given ``seed``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from deeptoolbox.datasets._synthetic import SHAPE_CLASSES, _positive_int, _shape_mask
from deeptoolbox.errors import OptionError

__all__ = ["DetectionShapesData", "detection_shapes"]


@dataclass(frozen=True)
class DetectionShapesData:
    """Images of several shapes each with their boxes, labels and instance masks (see
    :func:`detection_shapes`).

    Attributes:
        images: float32 (N, 3, H, W) in [0, 1].
        boxes: N float32 (K_i, 4) arrays of boxes ``(x_min, y_min, x_max, y_max)`` in
            pixels (``x_max`` = last column + 1), one row per shape of image i.
        labels: N (K_i,) arrays of class names, in the order of the boxes.
        masks: int64 (N, H, W) instance masks: 0 for background, ``j + 1`` on shape j.
        classes: the class names, in index order.

    Example:
        >>> data = detection_shapes(3, image_size=32, seed=0)
        >>> data.images.shape, len(data.boxes), data.boxes[0].shape[1]
        ((3, 3, 32, 32), 3, 4)
    """

    images: np.ndarray
    boxes: list[np.ndarray]
    labels: list[np.ndarray]
    masks: np.ndarray
    classes: tuple[str, ...]


def _objects_range(objects: object) -> tuple[int, int]:
    if isinstance(objects, int) and not isinstance(objects, bool) and objects >= 1:
        return objects, objects
    if (
        isinstance(objects, tuple)
        and len(objects) == 2
        and all(isinstance(k, int) and not isinstance(k, bool) for k in objects)
        and 1 <= objects[0] <= objects[1]
    ):
        return objects
    raise OptionError(
        "detection_shapes: `objects` must be an int >= 1 or a (min, max) pair of them. "
        f"Received: objects={objects!r}."
    )


def _place(rng: np.random.Generator, size: int, taken: list[tuple], sizes: tuple[float, float]):
    """A shape (radius, centre) whose box keeps a pixel from every box already placed, or
    None after 50 tries."""
    for _ in range(50):
        r = rng.uniform(*sizes) * size
        cx, cy = rng.uniform(r + 1, size - r - 1, size=2)
        box = (cx - r - 1, cy - r - 1, cx + r + 1, cy + r + 1)
        if all(box[2] < t[0] or t[2] < box[0] or box[3] < t[1] or t[3] < box[1] for t in taken):
            taken.append(box)
            return r, cx, cy
    return None


def detection_shapes(
    n: int = 200,
    *,
    image_size: int = 64,
    objects: int | tuple[int, int] = (1, 4),
    classes: Sequence[str] = SHAPE_CLASSES,
    object_size: tuple[float, float] = (0.08, 0.18),
    noise: float = 0.05,
    seed: int = 0,
) -> DetectionShapesData:
    """Images of several circles, squares and triangles, each with a box and a label — for
    object detection examples and tests (boxes as MATLAB's ``boxLabelDatastore`` holds them).

    Each image gets between ``objects[0]`` and ``objects[1]`` shapes (fewer where no free
    place is found), of random classes and colours on a random dark background, whose
    boxes do not touch. ``object_size`` is the range of shape radii as fractions of the
    image size; ``noise`` the standard deviation of Gaussian pixel noise. The same
    ``seed`` gives the same data.

    Example:
        >>> data = detection_shapes(4, image_size=48, objects=(2, 3), seed=1)
        >>> [len(b) for b in data.boxes], data.labels[1].tolist()
        ([3, 2, 2, 3], ['square', 'circle'])
    """
    n = _positive_int("detection_shapes", "n", n)
    size = _positive_int("detection_shapes", "image_size", image_size, 16)
    low, high = _objects_range(objects)
    classes = tuple(classes)
    unknown = [c for c in classes if c not in SHAPE_CLASSES]
    if not classes or unknown:
        raise OptionError(
            f"detection_shapes: `classes` must be drawn from {SHAPE_CLASSES}. Received: "
            f"{classes!r}."
        )
    if not (
        len(object_size) == 2 and 0.02 <= object_size[0] <= object_size[1] <= 0.45
    ):  # fmt: skip
        raise OptionError(
            "detection_shapes: `object_size` must be (min, max) radii as fractions of the image "
            f"size, 0.02 <= min <= max <= 0.45. Received: object_size={object_size!r}."
        )
    rng = np.random.default_rng(seed)
    images = np.empty((n, 3, size, size), np.float32)
    masks = np.zeros((n, size, size), np.int64)
    all_boxes, all_labels = [], []
    for i in range(n):
        background = rng.uniform(0.0, 0.35, size=3)
        images[i] = background[:, None, None]
        taken: list[tuple] = []
        boxes, labels = [], []
        for _ in range(int(rng.integers(low, high + 1))):
            placed = _place(rng, size, taken, object_size)
            if placed is None:
                break
            r, cx, cy = placed
            k = int(rng.integers(len(classes)))
            shape = _shape_mask(classes[k], size, cx, cy, r)
            colour = rng.uniform(0.6, 1.0, size=3)
            images[i][:, shape] = colour[:, None]
            masks[i][shape] = len(boxes) + 1
            rows, cols = np.nonzero(shape)
            boxes.append((cols.min(), rows.min(), cols.max() + 1, rows.max() + 1))
            labels.append(classes[k])
        all_boxes.append(np.asarray(boxes, np.float32).reshape(-1, 4))
        all_labels.append(np.asarray(labels, dtype=str))
    images += rng.normal(0.0, noise, size=images.shape).astype(np.float32)
    np.clip(images, 0.0, 1.0, out=images)
    return DetectionShapesData(images, all_boxes, all_labels, masks, classes)
