"""What every anomaly detector shares: the detector base (maps at the image size, the image
score, the threshold), training on normal images, ``anomaly_map``, ``anomaly_scores``,
``fit_threshold`` and ``is_anomaly``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from deeptoolbox.errors import DataError, InputSizeError, NotInitializedError, OptionError
from deeptoolbox.vision._unit import unit_images

__all__ = [
    "AnomalyDetector",
    "train_anomaly_detector",
    "anomaly_map",
    "anomaly_scores",
    "fit_threshold",
    "is_anomaly",
]


def as_images(images: Any, what: str) -> torch.Tensor:
    """A float (N, C, H, W) tensor of ``images``: an array/tensor ((C, H, W) for one image,
    uint8 / uint16 scaled to [0, 1]) or a Dataset of images or (image, label...) items."""
    if isinstance(images, Dataset) and not isinstance(images, torch.Tensor):
        items = [images[i] for i in range(len(images))]  # type: ignore[arg-type]
        images = torch.stack(
            [unit_images(x[0] if isinstance(x, tuple | list) else x) for x in items]
        )
    x = unit_images(images)
    x = x[None] if x.dim() == 3 else x
    if x.dim() != 4 or x.shape[0] == 0:
        raise DataError(
            f"{what}: `images` must be (N, C, H, W) (or one (C, H, W) image), N >= 1. "
            f"Received shape {tuple(x.shape)}."
        )
    return x


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def smooth(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian smoothing of (N, 1, H, W) maps, separable, borders replicated."""
    if sigma <= 0:
        return maps
    kernel = _gaussian_kernel(sigma).to(maps)
    radius = kernel.numel() // 2
    x = nn.functional.pad(maps, (radius, radius, 0, 0), mode="replicate")
    x = nn.functional.conv2d(x, kernel.view(1, 1, 1, -1))
    x = nn.functional.pad(x, (0, 0, radius, radius), mode="replicate")
    return nn.functional.conv2d(x, kernel.view(1, 1, -1, 1))


class AnomalyDetector(nn.Module):
    """The base of the anomaly detectors (:class:`PatchCoreDetector`, :class:`FCDDDetector`).

    ``detector(images)`` gives (N, 1, H, W) anomaly maps at the images' size: the detector's
    patch scores, upsampled bilinearly and smoothed with a Gaussian of ``smoothing_sigma``
    pixels. The image score is the map's maximum. ``image_size`` (C, H, W) is the size the
    detector was trained on (None before training), ``threshold`` the image score above which
    an image is anomalous (set by :func:`fit_threshold`, None before). A subclass implements
    ``patch_scores(images)`` (N, 1, h, w) and ``fit(images, options)``.
    """

    def __init__(self, *, smoothing_sigma: float = 4.0) -> None:
        super().__init__()
        if (
            isinstance(smoothing_sigma, bool)
            or not isinstance(smoothing_sigma, int | float)
            or smoothing_sigma < 0
        ):
            raise OptionError(
                f"{type(self).__name__}: `smoothing_sigma` must be a number >= 0 (pixels; 0: no "
                f"smoothing). Received: smoothing_sigma={smoothing_sigma!r}."
            )
        self.smoothing_sigma = float(smoothing_sigma)
        self.image_size: tuple[int, int, int] | None = None
        self.threshold: float | None = None

    def patch_scores(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """(N, 1, h, w) anomaly scores of image regions, before upsampling."""
        raise NotImplementedError

    def fit(self, images: torch.Tensor, options: Any) -> None:  # pragma: no cover
        """Learn what normal looks like from (N, C, H, W) normal images."""
        raise NotImplementedError

    def check_images(self, images: torch.Tensor, what: str) -> None:
        """Raise unless the detector is trained and ``images`` are of its image size."""
        name = type(self).__name__
        if self.image_size is None:
            raise NotInitializedError(
                f"{what}: this {name} is not trained yet. Train it on normal images first: "
                "train_anomaly_detector(detector, normal_images)."
            )
        if tuple(images.shape[1:]) != self.image_size:
            raise InputSizeError(
                f"{what}: the {name} was trained on images of size (C, H, W) = "
                f"{self.image_size}; received {tuple(images.shape[1:])}. Resize the images "
                "(or train the detector on images of this size)."
            )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) anomaly maps of (N, C, H, W) images."""
        self.check_images(images, type(self).__name__)
        scores = self.patch_scores(images)
        maps = nn.functional.interpolate(
            scores, size=images.shape[-2:], mode="bilinear", align_corners=False
        )
        return smooth(maps, self.smoothing_sigma)


def _detector(detector: Any, what: str) -> AnomalyDetector:
    if not isinstance(detector, AnomalyDetector):
        raise OptionError(
            f"{what}: `detector` must be an anomaly detector (PatchCoreDetector, FCDDDetector). "
            f"Received: {type(detector).__name__}."
        )
    return detector


def train_anomaly_detector(
    detector: AnomalyDetector, normal_images: Any, options: Any = None
) -> AnomalyDetector:
    """Train an anomaly detector on normal images only (MATLAB's
    ``trainPatchCoreAnomalyDetector`` / ``trainFCDDAnomalyDetector``); returns it, in eval mode.

    ``normal_images`` is (N, C, H, W) (tensor or array; uint8 scaled to [0, 1]) or a Dataset
    of images (an ImageDatastore). A :class:`PatchCoreDetector` fills its memory bank (no
    gradient training, ``options`` unused); an :class:`FCDDDetector` is trained with
    :func:`~deeptoolbox.train` and ``options`` (a TrainingOptions; default: its own). The
    detector keeps the image size: later images must be of that size.

    Example:
        >>> from deeptoolbox import datasets
        >>> from deeptoolbox.vision import PatchCoreDetector
        >>> data = datasets.inspection(8, 0, image_size=32)
        >>> detector = train_anomaly_detector(PatchCoreDetector(), data.images)
        >>> detector.image_size, detector.memory_bank.shape[0] > 0
        ((3, 32, 32), True)
    """
    detector = _detector(detector, "train_anomaly_detector")
    images = as_images(normal_images, "train_anomaly_detector")
    detector.image_size = tuple(images.shape[1:])  # type: ignore[assignment]
    detector.threshold = None
    detector.fit(images, options)
    return detector.eval()


def _device(detector: AnomalyDetector) -> torch.device:
    tensor = next(iter(detector.parameters()), None)
    tensor = next(iter(detector.buffers()), None) if tensor is None else tensor
    return torch.device("cpu") if tensor is None else tensor.device


def anomaly_map(detector: AnomalyDetector, images: Any, *, batch_size: int = 32) -> torch.Tensor:
    """(N, H, W) anomaly maps of ``images`` (MATLAB's ``anomalyMap``): larger where the
    image looks less like the normal images the detector was trained on.

    ``images`` is (N, C, H, W) or one (C, H, W) image (tensor or array), or a Dataset of
    images, of the size the detector was trained on.

    Example:
        >>> from deeptoolbox import datasets
        >>> from deeptoolbox.vision import PatchCoreDetector
        >>> data = datasets.inspection(8, 1, image_size=32)
        >>> detector = train_anomaly_detector(PatchCoreDetector(), data.images[:8])
        >>> anomaly_map(detector, data.images[8:]).shape
        torch.Size([1, 32, 32])
    """
    detector = _detector(detector, "anomaly_map")
    x = as_images(images, "anomaly_map")
    detector.check_images(x, "anomaly_map")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise OptionError(
            f"anomaly_map: `batch_size` must be an int >= 1. Received: {batch_size!r}."
        )
    device, was_training = _device(detector), detector.training
    detector.eval()
    try:
        with torch.no_grad():
            maps = [
                detector(x[i : i + batch_size].to(device)).cpu()
                for i in range(0, len(x), batch_size)
            ]
    finally:
        detector.train(was_training)
    return torch.cat(maps)[:, 0]


def anomaly_scores(detector: AnomalyDetector, images: Any, *, batch_size: int = 32) -> torch.Tensor:
    """(N,) image-level anomaly scores: the maximum of each image's anomaly map.

    Example:
        >>> from deeptoolbox import datasets
        >>> from deeptoolbox.vision import PatchCoreDetector
        >>> data = datasets.inspection(8, 2, image_size=32)
        >>> detector = train_anomaly_detector(PatchCoreDetector(), data.images[:8])
        >>> anomaly_scores(detector, data.images[8:]).shape
        torch.Size([2])
    """
    return anomaly_map(detector, images, batch_size=batch_size).flatten(1).amax(dim=1)


def fit_threshold(
    detector: AnomalyDetector,
    normal_images: Any,
    *,
    false_positive_rate: float = 0.05,
    batch_size: int = 32,
) -> float:
    """Set ``detector.threshold`` from held-out normal images and return it: the image
    score that a fraction ``false_positive_rate`` of them exceed (the (1 - rate) quantile of
    their scores; ``false_positive_rate=0`` gives their largest score). Images scoring above
    it are anomalous (:func:`is_anomaly`). MATLAB's ``anomalyThreshold`` also uses anomalous
    validation images; :func:`evaluate_anomaly_detection` reports how well the threshold does.

    Example:
        >>> from deeptoolbox import datasets
        >>> from deeptoolbox.vision import PatchCoreDetector
        >>> detector = train_anomaly_detector(PatchCoreDetector(), datasets.inspection(8, 0, image_size=32).images)
        >>> t = fit_threshold(detector, datasets.inspection(10, 0, image_size=32, seed=1).images,
        ...                   false_positive_rate=0.1)
        >>> t == detector.threshold
        True
    """
    detector = _detector(detector, "fit_threshold")
    if (
        isinstance(false_positive_rate, bool)
        or not isinstance(false_positive_rate, int | float)
        or not 0 <= false_positive_rate < 1
    ):
        raise OptionError(
            "fit_threshold: `false_positive_rate` must be a number in [0, 1) (the fraction of "
            f"normal images allowed above the threshold). Received: {false_positive_rate!r}."
        )
    scores = anomaly_scores(detector, normal_images, batch_size=batch_size).double().numpy()
    detector.threshold = float(np.quantile(scores, 1 - false_positive_rate, method="higher"))
    return detector.threshold


def is_anomaly(detector: AnomalyDetector, images: Any, *, batch_size: int = 32) -> torch.Tensor:
    """(N,) bool: True where the image score is above ``detector.threshold`` (MATLAB's
    ``classify`` of an anomaly detector).

    Example:
        >>> from deeptoolbox import datasets
        >>> from deeptoolbox.vision import PatchCoreDetector
        >>> detector = train_anomaly_detector(PatchCoreDetector(), datasets.inspection(8, 0, image_size=32).images)
        >>> detector.threshold = 0.0
        >>> is_anomaly(detector, datasets.inspection(0, 2, image_size=32).images).tolist()
        [True, True]
    """
    detector = _detector(detector, "is_anomaly")
    if detector.threshold is None:
        raise NotInitializedError(
            f"is_anomaly: this {type(detector).__name__} has no threshold. Set one with "
            "fit_threshold(detector, normal_validation_images) (or detector.threshold = value)."
        )
    return anomaly_scores(detector, images, batch_size=batch_size) > detector.threshold
