"""How well an anomaly detector does (MATLAB's ``evaluateAnomalyDetection``): image AUROC,
pixel AUROC, and precision / recall / F1 at the detector's threshold; and the anomaly map
drawn over the image (MATLAB's ``anomalyMapOverlay``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from deeptoolbox.errors import DataError, NotInitializedError, OptionError
from deeptoolbox.vision._anomaly import AnomalyDetector, anomaly_map, as_images

__all__ = ["AnomalyMetrics", "evaluate_anomaly_detection", "anomaly_overlay"]


@dataclass(frozen=True)
class AnomalyMetrics:
    """Anomaly detection quality, built by :func:`evaluate_anomaly_detection`.

    Attributes:
        image_auroc: area under the ROC curve of the image scores (anomalous vs normal).
        pixel_auroc: area under the ROC curve of the map values over all pixels of all
            images (defect pixels vs the rest); None without masks.
        threshold: the image-score threshold the next numbers use.
        precision, recall, f1, false_positive_rate: of "anomalous" decisions at the threshold.
        confusion_matrix: 2x2 image counts, rows the truth (normal, anomalous), columns the
            decision.
        scores: (N,) the image scores.

    Example:
        >>> m = AnomalyMetrics(1.0, None, 0.5, 1.0, 0.5, 2 / 3, 0.0, np.array([[2, 0], [1, 1]]),
        ...                    np.zeros(4))
        >>> round(m.f1, 3)
        0.667
    """

    image_auroc: float
    pixel_auroc: float | None
    threshold: float
    precision: float
    recall: float
    f1: float
    false_positive_rate: float
    confusion_matrix: np.ndarray
    scores: np.ndarray


def _auroc(scores: torch.Tensor, truth: torch.Tensor) -> float:
    from torchmetrics.functional.classification import binary_auroc

    return float(binary_auroc(scores.double(), truth.long()))


def _labels(labels: Any, n: int) -> torch.Tensor:
    values = np.asarray(labels)
    if values.ndim != 1 or len(values) != n:
        raise DataError(
            f"evaluate_anomaly_detection: `labels` must give one label per image ({n} images). "
            f"Received shape {values.shape}."
        )
    if values.dtype.kind in "USO":
        return torch.as_tensor(values.astype(str) != "normal")
    if values.dtype.kind == "b" or set(np.unique(values).tolist()) <= {0, 1}:
        return torch.as_tensor(values.astype(bool))
    raise DataError(
        "evaluate_anomaly_detection: `labels` must be bool / 0-1 (1: anomalous) or names "
        f"('normal' or a defect name). Received values {np.unique(values)[:6].tolist()}."
    )


def _masks(masks: Any, images: torch.Tensor, anomalous: torch.Tensor) -> torch.Tensor:
    values = torch.as_tensor(np.asarray(masks))
    expected = (images.shape[0], *images.shape[-2:])
    if tuple(values.shape) != expected:
        raise DataError(
            f"evaluate_anomaly_detection: `masks` must be (N, H, W) = {expected}, one per image "
            f"and of its height and width. Received shape {tuple(values.shape)}."
        )
    if values.dtype != torch.bool:
        bad = ~((values == 0) | (values == 1))
        if bool(bad.any()):
            index = int(bad.flatten(1).any(1).nonzero()[0])
            raise DataError(
                f"evaluate_anomaly_detection: mask {index} has values other than 0 and 1 "
                f"(e.g. {values[index][bad[index]][0].item()!r}); masks are True/1 on defects."
            )
        values = values.bool()
    wrong = (values.flatten(1).any(1) & ~anomalous).nonzero().flatten()
    if len(wrong):
        raise DataError(
            f"evaluate_anomaly_detection: image {int(wrong[0])} is labelled normal but its mask "
            "marks defect pixels; check the labels and masks."
        )
    return values


def evaluate_anomaly_detection(
    detector: AnomalyDetector,
    images: Any,
    labels: Any,
    masks: Any = None,
    *,
    threshold: float | None = None,
    batch_size: int = 32,
) -> AnomalyMetrics:
    """Score a detector on test images with known answers (MATLAB's
    ``evaluateAnomalyDetection``): image AUROC, pixel AUROC (with ``masks``), and
    precision, recall, F1 and false-positive rate of the decision ``score > threshold``.

    ``labels`` marks the anomalous images: bool or 0/1, or names where "normal" is normal
    (as :func:`datasets.inspection` gives). ``masks`` (N, H, W), bool or 0/1, mark the
    defect pixels. ``threshold`` defaults to the detector's (see :func:`fit_threshold`).
    AUROCs are torchmetrics' ``binary_auroc``; both classes must be present.

    Example:
        >>> from deeptoolbox import datasets
        >>> from deeptoolbox.vision import PatchCoreDetector, fit_threshold, train_anomaly_detector
        >>> detector = train_anomaly_detector(PatchCoreDetector(), datasets.inspection(8, 0, image_size=32).images)
        >>> _ = fit_threshold(detector, datasets.inspection(8, 0, image_size=32, seed=1).images)
        >>> test = datasets.inspection(4, 4, image_size=32, seed=2)
        >>> m = evaluate_anomaly_detection(detector, test.images, test.labels, test.masks)
        >>> 0 <= m.image_auroc <= 1 and 0 <= m.pixel_auroc <= 1, int(m.confusion_matrix.sum())
        (True, 8)
    """
    x = as_images(images, "evaluate_anomaly_detection")
    anomalous = _labels(labels, len(x))
    if bool(anomalous.all()) or not bool(anomalous.any()):
        raise DataError(
            "evaluate_anomaly_detection: the test images must include both normal and anomalous "
            f"ones (AUROC compares them). Received {int(anomalous.sum())} anomalous of {len(x)}."
        )
    truth_masks = None if masks is None else _masks(masks, x, anomalous)
    threshold = getattr(detector, "threshold", None) if threshold is None else threshold
    if threshold is None:
        raise NotInitializedError(
            "evaluate_anomaly_detection: the detector has no threshold. Set one with "
            "fit_threshold(detector, normal_validation_images), or pass threshold=value."
        )
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise OptionError(
            f"evaluate_anomaly_detection: `threshold` must be a number. Received: {threshold!r}."
        )
    maps = anomaly_map(detector, x, batch_size=batch_size)
    scores = maps.flatten(1).amax(dim=1)
    pixel = None if truth_masks is None else _auroc(maps.flatten(), truth_masks.flatten())
    decided = scores > threshold
    tp, fp = int((decided & anomalous).sum()), int((decided & ~anomalous).sum())
    fn, tn = int((~decided & anomalous).sum()), int((~decided & ~anomalous).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn)
    f1 = 2 * tp / (2 * tp + fp + fn)
    return AnomalyMetrics(
        image_auroc=_auroc(scores, anomalous),
        pixel_auroc=pixel,
        threshold=float(threshold),
        precision=precision,
        recall=recall,
        f1=f1,
        false_positive_rate=fp / (fp + tn),
        confusion_matrix=np.array([[tn, fp], [fn, tp]]),
        scores=scores.numpy(),
    )


def _unit_image(image: Any) -> torch.Tensor:
    picture = image if isinstance(image, torch.Tensor) else torch.as_tensor(np.asarray(image))
    picture = picture[None] if picture.dim() == 2 else picture
    if picture.dim() != 3 or picture.shape[0] not in (1, 3):
        raise DataError(
            "anomaly_overlay: `image` must be (C, H, W) with C = 1 or 3, or (H, W). Received "
            f"shape {tuple(picture.shape)}."
        )
    picture = picture.float() / 255 if picture.dtype == torch.uint8 else picture.float()
    return picture.clamp(0, 1).expand(3, -1, -1).cpu()


def anomaly_overlay(
    image: Any,
    anomaly: Any,
    *,
    blend: float = 0.5,
    map_range: tuple[float, float] | None = None,
    colormap: str = "jet",
) -> torch.Tensor:
    """An image with its anomaly map drawn over it as a heat map (MATLAB's
    ``anomalyMapOverlay``): a uint8 (3, H, W) tensor (``.permute(1, 2, 0)`` for ``imshow``).

    ``image`` is (C, H, W) or (H, W), float in [0, 1] or uint8; ``anomaly`` an (H, W) map.
    Map values are scaled from ``map_range`` (default: the map's own minimum and maximum;
    pass the same range for several images, e.g. ``(0, 2 * threshold)``) to the colours of
    matplotlib's ``colormap``, then mixed with the image: ``blend`` is the heat map's share.

    Example:
        >>> import torch
        >>> heat = torch.zeros(4, 4); heat[0, 0] = 1.0
        >>> out = anomaly_overlay(torch.zeros(3, 4, 4), heat, blend=1.0)
        >>> out[:, 0, 0].tolist(), out[:, 3, 3].tolist()  # jet: dark red high, dark blue low
        ([128, 0, 0], [0, 0, 128])
    """
    import matplotlib

    if isinstance(blend, bool) or not isinstance(blend, int | float) or not 0 <= blend <= 1:
        raise OptionError(
            f"anomaly_overlay: `blend` must be a number in [0, 1]. Received: {blend!r}."
        )
    picture = _unit_image(image)
    heat = torch.as_tensor(
        np.asarray(anomaly) if not isinstance(anomaly, torch.Tensor) else anomaly
    )
    heat = (
        heat.detach().float().cpu().squeeze(0) if heat.dim() == 3 else heat.detach().float().cpu()
    )
    if heat.shape != picture.shape[1:]:
        raise DataError(
            f"anomaly_overlay: the anomaly map is {tuple(heat.shape)} but the image is "
            f"{tuple(picture.shape[1:])} (H, W); they must match."
        )
    low, high = (float(heat.min()), float(heat.max())) if map_range is None else map_range
    if not high > low:
        high = low + 1.0  # a constant map: all at the bottom colour
    if colormap not in matplotlib.colormaps:
        raise OptionError(
            f"anomaly_overlay: `colormap` must be a matplotlib colormap name ('jet', 'inferno'...). "
            f"Received: {colormap!r}."
        )
    level = ((heat - low) / (high - low)).clamp(0, 1).numpy()
    colours = torch.as_tensor(matplotlib.colormaps[colormap](level)[..., :3], dtype=torch.float32)
    mixed = (1 - blend) * picture + blend * colours.permute(2, 0, 1)
    return (mixed * 255).round().to(torch.uint8)
