"""Synthetic data for tests and examples: shapes (images, boxes, masks), EEG-like signals and
a dynamic sensor system. Every generator is deterministic for a given ``seed``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from deeptoolbox.errors import OptionError

__all__ = ["ShapesData", "shapes", "signals", "sensor_system"]

SHAPE_CLASSES = ("circle", "square", "triangle")


def _positive_int(function: str, name: str, value: object, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise OptionError(
            f"{function}: `{name}` must be an int >= {low}. Received: {name}={value!r}."
        )
    return value


@dataclass(frozen=True)
class ShapesData:
    """Images of single shapes with their labels, boxes and masks (see :func:`shapes`).

    Attributes:
        images: float32 (N, 3, H, W) in [0, 1].
        labels: (N,) class names.
        boxes: float32 (N, 4) boxes ``(x_min, y_min, x_max, y_max)`` in pixels, inclusive
            of the last pixel's far edge (``x_max = last column + 1``).
        masks: int64 (N, H, W): 0 for background, ``1 + class index`` on the shape.
        classes: the class names, in index order.

    Example:
        >>> data = shapes(4, image_size=16)
        >>> data.images.shape, data.boxes.shape, data.masks.shape
        ((4, 3, 16, 16), (4, 4), (4, 16, 16))
    """

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray
    classes: tuple[str, ...]


def _shape_mask(kind: str, size: int, cx: float, cy: float, r: float) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    if kind == "circle":
        return (x - cx) ** 2 + (y - cy) ** 2 <= r**2
    if kind == "square":
        return (np.abs(x - cx) <= r) & (np.abs(y - cy) <= r)
    top = cy - r  # upward isosceles triangle, base 2r, height 2r
    return (y >= top) & (y <= cy + r) & (np.abs(x - cx) <= (y - top) / 2)


def shapes(
    n: int = 100,
    *,
    image_size: int = 32,
    classes: Sequence[str] = SHAPE_CLASSES,
    noise: float = 0.05,
    seed: int = 0,
) -> ShapesData:
    """Images of one random circle, square or triangle each, with class labels, bounding
    boxes and segmentation masks — for classification, detection and segmentation examples.

    Classes are balanced (``labels[i] = classes[i % K]`` before shuffling). ``noise`` is the
    standard deviation of Gaussian pixel noise.

    Example:
        >>> data = shapes(30, image_size=24, seed=1)
        >>> sorted(set(data.labels.tolist())), float(data.images.max()) <= 1.0
        (['circle', 'square', 'triangle'], True)
    """
    n = _positive_int("shapes", "n", n)
    size = _positive_int("shapes", "image_size", image_size, 8)
    classes = tuple(classes)
    unknown = [c for c in classes if c not in SHAPE_CLASSES]
    if not classes or unknown:
        raise OptionError(
            f"shapes: `classes` must be drawn from {SHAPE_CLASSES}. Received: {classes!r}."
        )
    rng = np.random.default_rng(seed)
    index = rng.permutation(np.arange(n) % len(classes))
    images = np.empty((n, 3, size, size), np.float32)
    masks = np.zeros((n, size, size), np.int64)
    boxes = np.zeros((n, 4), np.float32)
    for i, k in enumerate(index):
        r = rng.uniform(0.15, 0.3) * size
        cx, cy = rng.uniform(r + 1, size - r - 1, size=2)
        shape = _shape_mask(classes[k], size, cx, cy, r)
        background = rng.uniform(0.0, 0.35, size=3)
        colour = rng.uniform(0.6, 1.0, size=3)
        images[i] = np.where(shape[None], colour[:, None, None], background[:, None, None])
        masks[i][shape] = k + 1
        rows, cols = np.nonzero(shape)
        boxes[i] = (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
    images += rng.normal(0.0, noise, size=images.shape).astype(np.float32)
    np.clip(images, 0.0, 1.0, out=images)
    return ShapesData(images, np.asarray(classes)[index], boxes, masks, classes)


def _lengths(rng: np.random.Generator, n: int, length: int | tuple[int, int]) -> np.ndarray:
    if isinstance(length, int) and not isinstance(length, bool) and length >= 16:
        return np.full(n, length)
    if isinstance(length, tuple) and len(length) == 2 and 16 <= length[0] <= length[1]:
        return rng.integers(length[0], length[1] + 1, size=n)
    raise OptionError(
        f"signals: `length` must be an int >= 16 or a (min, max) pair. Received: length={length!r}."
    )


def _background(rng: np.random.Generator, t: int, channels: int, rate: float) -> np.ndarray:
    time = np.arange(t) / rate
    noise = rng.normal(0.0, 1.0, size=(t, channels))
    for step in range(1, t):  # AR(1): brownish noise, like EEG background
        noise[step] += 0.45 * noise[step - 1]
    alpha = np.sin(2 * np.pi * rng.uniform(8, 12) * time[:, None] + rng.uniform(0, 6.3, channels))
    return 0.5 * noise + 0.8 * alpha


def signals(
    n: int = 120,
    *,
    length: int | tuple[int, int] = 256,
    channels: int = 4,
    classes: Sequence[str] = ("normal", "burst", "spike"),
    sampling_rate: float = 128.0,
    seed: int = 0,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Multi-channel time series with class-dependent events, EEG-like, for sequence
    classification. Returns ``(sequences, labels)``: float32 (T, C) arrays and class names.

    Every class shares a noisy 8-12 Hz background. "burst" adds a 20-30 Hz oscillation
    burst on some channels; "spike" adds a few sharp spikes; other class names (and
    "normal") add nothing. ``length`` is fixed or a (min, max) range of lengths.

    Example:
        >>> seqs, labels = signals(6, length=(64, 96), channels=2, seed=3)
        >>> len(seqs), seqs[0].shape[1], sorted(set(labels.tolist()))
        (6, 2, ['burst', 'normal', 'spike'])
    """
    n = _positive_int("signals", "n", n)
    channels = _positive_int("signals", "channels", channels)
    classes = tuple(classes)
    if not classes:
        raise OptionError("signals: `classes` must name at least one class.")
    rng = np.random.default_rng(seed)
    lengths = _lengths(rng, n, length)
    index = rng.permutation(np.arange(n) % len(classes))
    sequences = []
    for t, k in zip(lengths, index, strict=True):
        x = _background(rng, int(t), channels, sampling_rate)
        event = classes[k]
        if event == "burst":
            width = max(8, int(t) // 4)
            start = rng.integers(0, int(t) - width + 1)
            window = np.hanning(width)
            freq = rng.uniform(20, 30)
            wave = 3.0 * window * np.sin(2 * np.pi * freq * np.arange(width) / sampling_rate)
            chosen = rng.random(channels) < 0.7
            chosen[rng.integers(channels)] = True
            x[start : start + width, chosen] += wave[:, None]
        elif event == "spike":
            for _ in range(rng.integers(2, 5)):
                at = rng.integers(2, int(t) - 2)
                x[at - 1 : at + 2] += np.array([2.0, 6.0, -2.0])[:, None] * rng.uniform(0.8, 1.2)
        sequences.append(x.astype(np.float32))
    return sequences, np.asarray(classes)[index]


def sensor_system(
    n: int = 20,
    *,
    length: int = 500,
    noise: float = 0.01,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and outputs of a simple nonlinear dynamic system, for regression (a virtual
    sensor: estimate the output from the inputs).

    Inputs are two channels, a random staircase (actuator command) and a slow sinusoid
    (ambient condition); the output is a damped second-order response to the command,
    saturated by ``tanh`` and modulated by the ambient input, plus measurement noise.
    Returns float32 ``(inputs (N, T, 2), outputs (N, T, 1))``.

    Example:
        >>> u, y = sensor_system(3, length=100)
        >>> u.shape, y.shape
        ((3, 100, 2), (3, 100, 1))
    """
    n = _positive_int("sensor_system", "n", n)
    length = _positive_int("sensor_system", "length", length, 10)
    rng = np.random.default_rng(seed)
    inputs = np.empty((n, length, 2), np.float32)
    outputs = np.empty((n, length, 1), np.float32)
    steps = np.arange(length)
    for i in range(n):
        hold = rng.integers(10, 60)
        levels = rng.uniform(-1, 1, size=length // hold + 1)
        command = levels[steps // hold]
        ambient = 0.5 * np.sin(2 * np.pi * steps / rng.uniform(150, 400) + rng.uniform(0, 6.3))
        position, velocity = 0.0, 0.0
        y = np.empty(length)
        for t in range(length):  # x'' = w^2 (u - x) - 2 z w x', discretised
            velocity += 0.04 * (command[t] - position) - 0.08 * velocity
            position += velocity
            y[t] = np.tanh(1.5 * position) * (1.0 + 0.3 * ambient[t])
        inputs[i, :, 0], inputs[i, :, 1] = command, ambient
        outputs[i, :, 0] = y + rng.normal(0.0, noise, size=length)
    return inputs, outputs
