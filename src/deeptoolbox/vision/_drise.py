"""D-RISE (MATLAB's ``drise``; Petsiuk et al., "Black-box Explanation of Object Detectors via
Saliency Maps", CVPR 2021): which pixels a detection depends on, from random masks."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

from deeptoolbox.errors import OptionError
from deeptoolbox.vision._detector import as_image_list, check_classes

__all__ = ["drise", "random_masks"]


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionError(f"drise: `{name}` must be an int >= 1. Received: {name}={value!r}.")
    return value


def random_masks(
    count: int,
    size: tuple[int, int],
    *,
    grid_size: int = 16,
    probability: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """RISE's random masks: a ``grid_size`` x ``grid_size`` grid of cells kept with
    ``probability``, upsampled bilinearly to a little more than ``size`` (H, W) and cropped
    at a random offset, so the masks are smooth and not aligned to the grid. Returns float
    (count, H, W) in [0, 1].

    Example:
        >>> masks = random_masks(8, (32, 24), generator=torch.Generator().manual_seed(0))
        >>> tuple(masks.shape), bool(masks.min() >= 0 and masks.max() <= 1)
        ((8, 32, 24), True)
    """
    height, width = size
    cell_h, cell_w = -(-height // grid_size), -(-width // grid_size)
    grid = (torch.rand(count, 1, grid_size, grid_size, generator=generator) < probability).float()
    big = torch.nn.functional.interpolate(
        grid, size=((grid_size + 1) * cell_h, (grid_size + 1) * cell_w), mode="bilinear",
        align_corners=False,
    )[:, 0].clamp(0.0, 1.0)  # fmt: skip
    dy = torch.randint(0, cell_h, (count,), generator=generator)
    dx = torch.randint(0, cell_w, (count,), generator=generator)
    return torch.stack([big[i, y : y + height, x : x + width]
                        for i, (y, x) in enumerate(zip(dy.tolist(), dx.tolist(), strict=True))])  # fmt: skip


def _similarity(found: dict[str, torch.Tensor], box: torch.Tensor, label: int) -> float:
    """D-RISE's weight of one masked image: the best IoU x score over the detections of the
    target's class (the class term of the paper's similarity, the cosine of the class
    probability vectors, is 1 for the same class and 0 otherwise when a detector gives one
    label and score per box)."""
    from torchvision.ops import box_iou

    same = found["labels"] == label
    if not bool(same.any()):
        return 0.0
    overlap = box_iou(box[None], found["boxes"][same].float())[0]
    return float((overlap * found["scores"][same]).max())


@torch.no_grad()
def drise(
    detector: torch.nn.Module | Callable[[list[torch.Tensor]], list[dict]],
    image: Any,
    target_box: Any,
    target_label: int | str,
    *,
    num_masks: int = 1000,
    grid_size: int = 16,
    probability: float = 0.5,
    batch_size: int = 32,
    score_threshold: float = 0.01,
    seed: int = 0,
) -> torch.Tensor:
    """The D-RISE saliency map of one detection (MATLAB's ``drise``): how much each pixel
    supports finding ``target_box`` with ``target_label``.

    The image is multiplied by ``num_masks`` random smooth masks (:func:`random_masks`); the
    detector runs on each masked image, and each mask is weighted by how well the detections
    there match the target (the best IoU x score among detections of its class). The map is
    the weighted mean of the masks, ``sum_i w_i M_i / (num_masks * probability)``, so a
    pixel the detection needs gets about the detection's score and a pixel it ignores gets
    about the mean weight.

    Args:
        detector: an :class:`ObjectDetector` (its own score threshold is lowered to
            ``score_threshold`` meanwhile), or any callable taking a list of (C, H, W)
            images and returning ``{"boxes", "scores", "labels"}`` dicts.
        image: one (C, H, W) image (uint8 scaled to [0, 1]).
        target_box: [x_min, y_min, x_max, y_max] of the detection to explain.
        target_label: its class, an index or a name of ``detector.classes``.
        num_masks, grid_size, probability: the masks (MATLAB's ``NumSamples``,
            ``MaskResolution`` and the keep probability).
        seed: the masks are the same for the same seed.

    Returns:
        float (H, W) saliency.

    Example:
        >>> def finds_bright_square(images):  # the score of [8, 8, 16, 16] reads its light
        ...     return [{"boxes": torch.tensor([[8.0, 8.0, 16.0, 16.0]]), "labels": torch.tensor([0]),
        ...              "scores": im[:, 8:16, 8:16].mean().reshape(1) ** 2} for im in images]
        >>> image = torch.zeros(3, 24, 24); image[:, 8:16, 8:16] = 1.0
        >>> saliency = drise(finds_bright_square, image, [8, 8, 16, 16], 0, grid_size=4,
        ...                  num_masks=500)
        >>> inside, corner = saliency[8:16, 8:16].mean(), saliency[:4, :4].mean()
        >>> bool(inside > 1.2 * corner)
        True
    """
    num_masks = _positive_int("num_masks", num_masks)
    batch_size = _positive_int("batch_size", batch_size)
    grid_size = _positive_int("grid_size", grid_size)
    if not 0 < probability < 1:
        raise OptionError(f"drise: `probability` must be in (0, 1). Received: {probability!r}.")
    pictures = as_image_list(image, "drise")
    if len(pictures) != 1:
        raise OptionError(f"drise: explain one image at a time. Received {len(pictures)} images.")
    picture = pictures[0]
    box = torch.as_tensor(target_box, dtype=torch.float32).reshape(-1)
    if box.numel() != 4 or not (box[2] > box[0] and box[3] > box[1]):
        raise OptionError(
            "drise: `target_box` must be [x_min, y_min, x_max, y_max] with x_max > x_min and "
            f"y_max > y_min. Received: {target_box!r}."
        )
    if isinstance(target_label, str):
        label = check_classes(detector, [target_label])[0]  # type: ignore[index]
    else:
        label = int(target_label)
    masks = random_masks(num_masks, tuple(picture.shape[-2:]), grid_size=grid_size,
                         probability=probability,
                         generator=torch.Generator().manual_seed(seed))  # fmt: skip
    weights = torch.zeros(num_masks)
    module = detector if isinstance(detector, torch.nn.Module) else None
    device = next(module.parameters()).device if module is not None else picture.device
    was_training = module.training if module is not None else False
    lowered = getattr(module, "score_threshold", None)
    context = lowered(score_threshold) if callable(lowered) else contextlib.nullcontext()
    if module is not None:
        module.eval()
    try:
        with context:
            for start in range(0, num_masks, batch_size):
                chunk = masks[start : start + batch_size]
                batch = [(picture * m).to(device) for m in chunk]
                for k, found in enumerate(detector(batch)):
                    found = {key: v.cpu() for key, v in found.items() if key != "names"}
                    weights[start + k] = _similarity(found, box, label)
    finally:
        if module is not None:
            module.train(was_training)
    return torch.einsum("n,nhw->hw", weights, masks) / (num_masks * probability)
