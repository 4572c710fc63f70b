"""Semantic segmentation results: ``segment`` (MATLAB's ``semanticseg``), the metrics of
``evaluate_segmentation`` (MATLAB's ``evaluateSemanticSegmentation``) and ``label_overlay``
(MATLAB's ``labeloverlay``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from deeptoolbox.data._reading import reading_without_augmentation
from deeptoolbox.errors import DataError, OptionError
from deeptoolbox.inference import predict
from deeptoolbox.vision._pixel_labels import IGNORE_INDEX

__all__ = ["segment", "SegmentationMetrics", "evaluate_segmentation", "label_overlay"]


def segment(
    net: torch.nn.Module, images: Any, *, batch_size: int = 32, device: str = "auto"
) -> torch.Tensor:
    """The class of every pixel: an int64 (N, H, W) tensor of class indices (MATLAB's
    ``semanticseg``); ``net.classes[k]`` names class ``k`` when the network has classes.

    ``net`` gives class scores or probabilities (N, K, H, W): a :func:`unet`, a
    :func:`deeplabv3`, or any module. ``images`` is anything :func:`~deeptoolbox.predict`
    reads: an (N, C, H, W) tensor or array, an ImageDatastore, or a
    :class:`PixelLabelImageDatastore` (its label maps are not used).

    Example:
        >>> import torch
        >>> from deeptoolbox.vision import unet
        >>> net = unet((1, 8, 8), 3, depth=1, filters=4)
        >>> segment(net, torch.rand(2, 1, 8, 8)).shape
        torch.Size([2, 8, 8])
    """
    scores = predict(net, images, batch_size=batch_size, device=device)
    if isinstance(scores, tuple | list):
        scores = scores[0]
    if not isinstance(scores, torch.Tensor) or scores.dim() != 4:
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise DataError(
            "segment: the network must give class scores of size (N, K, H, W) for images. "
            f"Received outputs of size {shape}."
        )
    return scores.argmax(dim=1)


@dataclass(frozen=True)
class SegmentationMetrics:
    """Segmentation quality (MATLAB's ``semanticSegmentationMetrics``), built by
    :func:`evaluate_segmentation`.

    Attributes:
        classes: class names, in index order.
        confusion_matrix: (K, K) pixel counts, rows the true class, columns the predicted
            one (pixels labelled IGNORE_INDEX are not counted).
        global_accuracy: correct pixels over all pixels.
        mean_accuracy: the mean over classes (present in the truth) of each class's accuracy.
        mean_iou: the mean over classes of the intersection over union (classes absent from
            both the truth and the prediction are left out).
        weighted_iou: the IoU of each class weighted by its pixel count in the truth.
        class_accuracy, iou, dice: per class (NaN where undefined); ``dice`` is the F1 score
            ``2 TP / (2 TP + FP + FN)``.
        image_accuracy, image_mean_iou: global accuracy and mean IoU of each image.

    Example:
        >>> import numpy as np
        >>> truth = np.array([[[0, 0], [1, 1]]]); predicted = np.array([[[0, 1], [1, 1]]])
        >>> m = evaluate_segmentation(predicted, truth, classes=["bg", "fg"])
        >>> m.global_accuracy, m.iou.tolist(), m.confusion_matrix.tolist()
        (0.75, [0.5, 0.6666666666666666], [[1, 1], [0, 2]])
    """

    classes: list[str]
    confusion_matrix: np.ndarray
    global_accuracy: float
    mean_accuracy: float
    mean_iou: float
    weighted_iou: float
    class_accuracy: np.ndarray
    iou: np.ndarray
    dice: np.ndarray
    image_accuracy: np.ndarray
    image_mean_iou: np.ndarray

    @property
    def dataset_metrics(self) -> dict[str, float]:
        """The data-set-wide metrics (MATLAB's ``DataSetMetrics`` table) as a dict."""
        return {
            "global_accuracy": self.global_accuracy, "mean_accuracy": self.mean_accuracy,
            "mean_iou": self.mean_iou, "weighted_iou": self.weighted_iou,
            "mean_dice": float(np.nanmean(self.dice)) if np.isfinite(self.dice).any() else float("nan"),
        }  # fmt: skip

    @property
    def class_metrics(self) -> dict[str, dict[str, float]]:
        """Per class (MATLAB's ``ClassMetrics``): accuracy, IoU and Dice."""
        return {
            name: {"accuracy": float(a), "iou": float(i), "dice": float(d)}
            for name, a, i, d in zip(
                self.classes, self.class_accuracy, self.iou, self.dice, strict=True
            )
        }

    def __str__(self) -> str:
        rows = [f"{k:>16}: {v:.4f}" for k, v in self.dataset_metrics.items()]
        width = max(len(c) for c in self.classes)
        rows.append(f"{'class':>{width}}  accuracy     IoU    Dice")
        for name, values in self.class_metrics.items():
            rows.append(f"{name:>{width}}  {values['accuracy']:8.4f} {values['iou']:7.4f} "
                        f"{values['dice']:7.4f}")  # fmt: skip
        return "\n".join(rows)


def _maps(value: Any, what: str) -> list[torch.Tensor]:
    """Label maps as a list of int64 (H, W) tensors, from arrays, lists or a Dataset."""
    if isinstance(value, Dataset):
        with reading_without_augmentation(value):  # its mode is restored afterwards
            items = [value[i] for i in range(len(value))]  # type: ignore[arg-type]
        value = [item[-1] if isinstance(item, tuple | list) else item for item in items]
    if isinstance(value, np.ndarray | torch.Tensor):
        tensor = torch.as_tensor(value)
        if tensor.dim() == 2:
            tensor = tensor[None]
        if tensor.dim() != 3:
            raise DataError(
                f"evaluate_segmentation: `{what}` must be (N, H, W) label maps (or (H, W) for "
                f"one image). Received shape {tuple(tensor.shape)}."
            )
        value = list(tensor)
    if not isinstance(value, Sequence) or not value:
        raise DataError(
            f"evaluate_segmentation: `{what}` must be (N, H, W) label maps, a list of (H, W) "
            f"maps or a Dataset of them. Received: {type(value).__name__}."
        )
    maps = [torch.as_tensor(v) for v in value]
    for i, m in enumerate(maps):
        if m.dim() != 2 or m.is_floating_point():
            raise DataError(
                f"evaluate_segmentation: `{what}` observation {i} must be an (H, W) int map of "
                f"class indices. Received dtype {m.dtype}, shape {tuple(m.shape)}."
            )
    return [m.long().cpu() for m in maps]


def _class_names(classes: Sequence[str] | None, k: int | None, largest: int) -> list[str]:
    if classes is not None:
        names = [str(c) for c in classes]
        if k is not None and len(names) != k:
            raise OptionError(
                f"evaluate_segmentation: `classes` names {len(names)} classes but num_classes={k}."
            )
        return names
    if k is None:
        k = largest + 1
    return [str(i) for i in range(k)]


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(bottom > 0, top / np.maximum(bottom, 1), np.nan)


def evaluate_segmentation(
    predicted: Any,
    truth: Any,
    *,
    classes: Sequence[str] | None = None,
    num_classes: int | None = None,
) -> SegmentationMetrics:
    """Compare predicted label maps with the ground truth (MATLAB's
    ``evaluateSemanticSegmentation``): global and mean accuracy, per-class and mean IoU,
    weighted IoU, Dice (F1) per class, the confusion matrix, and per-image scores.

    ``predicted`` and ``truth`` are (N, H, W) int arrays or tensors of class indices, lists
    of (H, W) maps (sizes may differ between images), or Datasets of them (for a
    :class:`PixelLabelImageDatastore` the label maps are used). Truth pixels labelled
    IGNORE_INDEX (-100) are left out. ``classes`` names the classes (their count is K);
    otherwise ``num_classes``, the truth datastore's class names, or the largest index found
    + 1.

    Raises:
        DataError: the two disagree in count or in an image's size (naming the
            observation), or an index lies outside 0..K-1.

    Example:
        >>> import numpy as np
        >>> truth = np.zeros((1, 4, 4), int); truth[0, :2] = 1
        >>> evaluate_segmentation(truth, truth).mean_iou
        1.0
    """
    pred_maps, true_maps = _maps(predicted, "predicted"), _maps(truth, "truth")
    if len(pred_maps) != len(true_maps):
        raise DataError(
            f"evaluate_segmentation: {len(pred_maps)} predicted maps but {len(true_maps)} truth "
            "maps; give one prediction per image."
        )
    largest = max(int(m.max()) for m in [*pred_maps, *true_maps] if m.numel())
    if classes is None and num_classes is None and isinstance(truth, Dataset):
        classes = getattr(truth, "classes", None)  # a pixel-label datastore names its classes
    names = _class_names(classes, num_classes, largest)
    k = len(names)
    total = np.zeros((k, k), np.int64)
    image_accuracy, image_iou = [], []
    for i, (p, t) in enumerate(zip(pred_maps, true_maps, strict=True)):
        if p.shape != t.shape:
            raise DataError(
                f"evaluate_segmentation: observation {i}: the predicted map is "
                f"{tuple(p.shape)} but the truth is {tuple(t.shape)}; they must match."
            )
        keep = t != IGNORE_INDEX
        p, t = p[keep], t[keep]
        negative = torch.unique(p[p < 0])[:5].tolist()
        if negative:
            raise DataError(
                f"evaluate_segmentation: observation {i}: the predicted map holds {negative}, "
                f"but a prediction must give every pixel a class in 0..{k - 1}; only the truth "
                f"may mark pixels to leave out (IGNORE_INDEX, {IGNORE_INDEX})."
            )
        both = torch.cat([p, t])
        bad = torch.unique(both[(both < 0) | (both >= k)])[:5].tolist()
        if bad:
            raise DataError(
                f"evaluate_segmentation: observation {i} has class indices {bad} outside "
                f"0..{k - 1} (classes {names[:10]}): the maps hold indices up to {largest}, so "
                f"they have at least {largest + 1} classes; name all of them in `classes` (or "
                "give `num_classes`)."
            )
        counts = torch.bincount(t * k + p, minlength=k * k).reshape(k, k).numpy()
        total += counts
        image_accuracy.append(_ratio(np.trace(counts), counts.sum()))
        image_iou.append(np.nanmean(_iou(counts)) if counts.sum() else np.nan)
    return _metrics(names, total, np.asarray(image_accuracy, float), np.asarray(image_iou, float))


def _iou(confusion: np.ndarray) -> np.ndarray:
    tp = np.diag(confusion).astype(float)
    return _ratio(tp, confusion.sum(0) + confusion.sum(1) - tp)


def _metrics(
    names: list[str], confusion: np.ndarray, image_accuracy, image_iou
) -> SegmentationMetrics:
    tp = np.diag(confusion).astype(float)
    in_truth = confusion.sum(1).astype(float)
    in_prediction = confusion.sum(0).astype(float)
    accuracy = _ratio(tp, in_truth)
    iou = _iou(confusion)
    dice = _ratio(2 * tp, in_truth + in_prediction)
    present = in_truth > 0
    weighted = (
        float((iou[present] * in_truth[present]).sum() / in_truth.sum())
        if present.any()
        else float("nan")
    )
    return SegmentationMetrics(
        classes=names,
        confusion_matrix=confusion,
        global_accuracy=float(_ratio(tp.sum(), confusion.sum())),
        mean_accuracy=float(np.nanmean(accuracy)) if present.any() else float("nan"),
        mean_iou=float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        weighted_iou=weighted,
        class_accuracy=accuracy,
        iou=iou,
        dice=dice,
        image_accuracy=image_accuracy,
        image_mean_iou=image_iou,
    )


def _default_colors(k: int) -> list[tuple[int, int, int]]:
    from matplotlib import colormaps

    table = colormaps["tab10" if k <= 10 else "tab20"]
    return [tuple(int(255 * c) for c in table(i % table.N)[:3]) for i in range(k)]


def label_overlay(
    image: Any,
    labels: Any,
    *,
    colors: Sequence[Sequence[int]] | None = None,
    transparency: float = 0.5,
    included_labels: Sequence[int] | None = None,
) -> torch.Tensor:
    """An image with its label map drawn over it in colour (MATLAB's ``labeloverlay``):
    a uint8 (3, H, W) tensor (``.permute(1, 2, 0)`` for ``plt.imshow``).

    ``image`` is (C, H, W) or (H, W), float in [0, 1] or uint8; ``labels`` an (H, W) map of
    class indices. Each class ``k`` gets ``colors[k]`` (an RGB triple: integers 0..255, or
    floats in [0, 1] as in MATLAB's ``Colormap``; default
    matplotlib's tab10/tab20), blended with ``transparency`` (0: opaque colour, 1: the
    image alone). ``included_labels`` lists the classes to draw (default: all; IGNORE_INDEX
    pixels are never drawn). Drawing is ``torchvision.utils.draw_segmentation_masks``.

    Example:
        >>> import torch
        >>> labels = torch.zeros(4, 4, dtype=torch.long); labels[:2] = 1
        >>> out = label_overlay(torch.zeros(3, 4, 4), labels, colors=[(0, 0, 0), (255, 0, 0)],
        ...                     transparency=0)
        >>> out[:, 0, 0].tolist(), out[:, 3, 3].tolist()
        ([255, 0, 0], [0, 0, 0])
    """
    from torchvision.utils import draw_segmentation_masks

    if (
        isinstance(transparency, bool)
        or not isinstance(transparency, int | float)
        or not 0 <= transparency <= 1
    ):
        raise OptionError(
            f"label_overlay: `transparency` must be a number in [0, 1]. Received: {transparency!r}."
        )
    picture = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
    picture = picture[None] if picture.dim() == 2 else picture
    if picture.dim() != 3 or picture.shape[0] not in (1, 3):
        raise DataError(
            f"label_overlay: `image` must be (C, H, W) with C = 1 or 3, or (H, W). Received "
            f"shape {tuple(picture.shape)}."
        )
    if picture.dtype != torch.uint8:
        if picture.numel() and float(picture.float().max()) > 1:
            raise DataError(
                "label_overlay: a float `image` must be in [0, 1]; this one goes up to "
                f"{float(picture.float().max()):g}. Divide 0..255 images by 255 (or pass uint8)."
            )
        picture = (picture.float().clamp(0, 1) * 255).round().to(torch.uint8)
    picture = picture.expand(3, -1, -1).cpu()
    label_map = torch.as_tensor(labels).long().cpu()
    if label_map.shape != picture.shape[1:]:
        raise DataError(
            f"label_overlay: `labels` is {tuple(label_map.shape)} but the image is "
            f"{tuple(picture.shape[1:])} (H, W); they must match."
        )
    k = int(label_map.max()) + 1 if label_map.numel() else 1
    k = max(k, len(colors)) if colors is not None else k
    palette = _default_colors(k) if colors is None else _palette(colors)
    if len(palette) < k:
        raise OptionError(
            f"label_overlay: `colors` has {len(palette)} colours but the labels go up to class "
            f"{k - 1}; give one RGB triple per class."
        )
    chosen = range(k) if included_labels is None else [int(c) for c in included_labels]
    chosen = [c for c in chosen if 0 <= c < k and bool((label_map == c).any())]
    if not chosen:
        return picture.clone()
    masks = torch.stack([label_map == c for c in chosen])
    return draw_segmentation_masks(picture, masks, alpha=1 - float(transparency),
                                   colors=[palette[c] for c in chosen])  # fmt: skip


def _palette(colors: Any) -> list[tuple[int, int, int]]:
    """RGB triples 0..255 from integer triples 0..255 or float triples in [0, 1] (MATLAB)."""
    values = np.asarray(colors, dtype=np.float64) if len(colors) else np.zeros((0, 3))
    if values.ndim != 2 or values.shape[1] != 3:
        raise OptionError(
            f"label_overlay: `colors` must be a list of RGB triples. Received shape {values.shape}."
        )
    floats = any(isinstance(v, float | np.floating) for c in colors for v in c)
    if floats and values.size and values.max() <= 1:
        values = values * 255
    if values.size and (values.min() < 0 or values.max() > 255):
        raise OptionError(
            "label_overlay: `colors` must be integers 0..255 or floats in [0, 1]. Received "
            f"values from {values.min():g} to {values.max():g}."
        )
    return [tuple(int(round(v)) for v in c) for c in values]
