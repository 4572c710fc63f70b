"""detect() (MATLAB's ``detect``): boxes, scores and labels per image from a trained
detector; box_overlay() (MATLAB's ``insertObjectAnnotation``): boxes and labels drawn."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from deeptoolbox.errors import OptionError
from deeptoolbox.vision._detector import as_image_list, check_classes

__all__ = ["detect", "box_overlay"]


def _threshold(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise OptionError(
            f"detect: `threshold` must be a score in [0, 1]. Received: threshold={value!r}."
        )
    return float(value)


@torch.no_grad()
def detect(
    detector: torch.nn.Module,
    images: Any,
    threshold: float = 0.5,
    *,
    classes: Sequence[str] | str | None = None,
    batch_size: int = 16,
) -> list[dict[str, Any]]:
    """Detect objects: for each image a dict with ``boxes`` (float (K, 4), pixel corners
    ``[x_min, y_min, x_max, y_max]``), ``scores`` (K,), ``labels`` (int64 (K,), indices of
    ``detector.classes``) and ``names`` (the class names), best score first (MATLAB's
    ``[bboxes, scores, labels] = detect(detector, I)``).

    ``images`` is one (C, H, W) image, an (N, C, H, W) batch (uint8 scaled to [0, 1]), a
    list of images or a Dataset (a BoxLabelImageDatastore: read without augmentation).
    Detections scoring below ``threshold`` are left out; ``classes`` keeps only those
    classes (names the detector was trained on; others raise :class:`OptionError`). The
    detector runs in eval mode on its own device; its mode is restored afterwards.

    Example:
        >>> from deeptoolbox.vision import ObjectDetector
        >>> detector = ObjectDetector(["circle", "square"], input_size=32)
        >>> found = detect(detector, torch.rand(2, 3, 32, 32), threshold=0.0)
        >>> len(found), sorted(found[0])
        (2, ['boxes', 'labels', 'names', 'scores'])
        >>> detect(detector, torch.rand(3, 32, 32), classes=["cat"])
        Traceback (most recent call last):
        ...
        deeptoolbox.errors.OptionError: detect: the detector was not trained on class(es) ['cat']; it detects ['circle', 'square']. Pass `classes` from these, or train a detector with the classes you need.
    """
    threshold = _threshold(threshold)
    wanted = check_classes(detector, classes)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise OptionError(f"detect: `batch_size` must be an int >= 1. Received: {batch_size!r}.")
    pictures = as_image_list(images, "detect")
    names = list(getattr(detector, "classes", None) or [])
    device = next(detector.parameters()).device
    was_training = detector.training
    detector.eval()
    results = []
    try:
        for start in range(0, len(pictures), batch_size):
            batch = [p.to(device) for p in pictures[start : start + batch_size]]
            for found in detector(batch):
                keep = found["scores"] >= threshold
                if wanted is not None:
                    keep &= torch.isin(found["labels"], torch.tensor(wanted, device=device))
                labels = found["labels"][keep].cpu()
                results.append({
                    "boxes": found["boxes"][keep].cpu(), "scores": found["scores"][keep].cpu(),
                    "labels": labels,
                    "names": [names[i] if i < len(names) else str(i) for i in labels.tolist()],
                })  # fmt: skip
    finally:
        detector.train(was_training)
    return results


def box_overlay(
    image: Any,
    boxes: Any,
    labels: Sequence[str] | torch.Tensor | None = None,
    *,
    scores: torch.Tensor | None = None,
    classes: Sequence[str] | None = None,
    colors: Sequence[Sequence[int]] | None = None,
    width: int = 1,
) -> torch.Tensor:
    """An image with boxes drawn and labelled (MATLAB's ``insertObjectAnnotation``), as a
    uint8 (3, H, W) tensor (torchvision's ``draw_bounding_boxes``).

    ``boxes`` is a (K, 4) array of corners, or a detection / target dict (its ``boxes``,
    ``labels`` and ``scores`` are used). ``labels`` are names, or class indices named by
    ``classes``; each class gets one colour (matplotlib's tab10, or ``colors``), and a
    label reads "name 0.93" when ``scores`` are given.

    Example:
        >>> picture = box_overlay(torch.rand(3, 24, 24), torch.tensor([[2.0, 2.0, 12.0, 10.0]]),
        ...                       ["circle"], scores=torch.tensor([0.9]))
        >>> picture.dtype, tuple(picture.shape)
        (torch.uint8, (3, 24, 24))
    """
    from torchvision.utils import draw_bounding_boxes

    from deeptoolbox.vision._segmentation import _default_colors
    from deeptoolbox.vision._unit import unit_images

    if isinstance(boxes, dict):
        found = boxes
        boxes = found["boxes"]
        labels = found.get("names", found.get("labels")) if labels is None else labels
        scores = found.get("scores") if scores is None else scores
    picture = unit_images(image)
    if picture.dim() != 3:
        raise OptionError(
            f"box_overlay: `image` must be one (C, H, W) image. Received size {tuple(picture.shape)}."
        )
    picture = picture.expand(3, -1, -1) if picture.shape[0] == 1 else picture
    picture = (picture.clamp(0, 1) * 255).round().to(torch.uint8)
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    if isinstance(labels, torch.Tensor):
        index = labels.tolist()
        labels = [classes[i] if classes is not None else str(i) for i in index]
    names = list(labels) if labels is not None else [""] * len(boxes)
    if len(names) != len(boxes):
        raise OptionError(
            f"box_overlay: {len(boxes)} boxes but {len(names)} labels; give one label per box."
        )
    order = list(classes) if classes is not None else sorted(set(names))
    palette = [tuple(c) for c in colors] if colors is not None else _default_colors(len(order))
    box_colors = [palette[order.index(n) % len(palette)] if n in order else (255, 255, 255)
                  for n in names]  # fmt: skip
    if scores is not None:
        names = [f"{n} {float(s):.2f}".strip() for n, s in zip(names, scores, strict=True)]
    if not len(boxes):
        return picture
    return draw_bounding_boxes(picture, boxes, labels=names, colors=box_colors, width=width)
