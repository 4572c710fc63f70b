"""Segmentation losses for train(): per-pixel weighted cross-entropy, Dice, focal, and
cross-entropy + Dice, on class scores (N, K, H, W) and class-index maps (N, H, W)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from deeptoolbox.errors import InputSizeError, OptionError
from deeptoolbox.training._losses import Loss, checked_class_weights, class_weighted_mean
from deeptoolbox.vision._pixel_labels import IGNORE_INDEX

__all__ = ["SEGMENTATION_LOSSES", "SegmentationLoss", "segmentation_loss"]

SEGMENTATION_LOSSES = ("crossentropy", "dice", "focal", "crossentropy+dice")


class SegmentationLoss(Loss):
    """A per-pixel classification loss for semantic segmentation; see :func:`segmentation_loss`.

    Called as ``loss(scores, labels)`` with scores (N, K, H, W) (logits: a Network ending
    in Softmax is trained on the scores before it, as with "crossentropy") and labels
    (N, H, W) class indices; pixels labelled :data:`IGNORE_INDEX` are left out.

    Example:
        >>> import torch
        >>> loss = SegmentationLoss("dice")
        >>> perfect = torch.tensor([[[[9.0]], [[-9.0]]]])  # class 0 everywhere, surely
        >>> round(float(loss(perfect, torch.zeros(1, 1, 1, dtype=torch.long))), 3)
        0.0
    """

    logits_like = "crossentropy"  # train() feeds it class scores, as to crossentropy

    def __init__(
        self,
        name: str = "crossentropy",
        *,
        class_weights: Sequence[float] | torch.Tensor | None = None,
        gamma: float = 2.0,
        smooth: float = 1.0,
    ) -> None:
        if name not in SEGMENTATION_LOSSES:
            raise OptionError(
                f"segmentation_loss: `name` must be one of {', '.join(map(repr, SEGMENTATION_LOSSES))}. "
                f"Received: name={name!r}."
            )
        for option, value in (("gamma", gamma), ("smooth", smooth)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise OptionError(
                    f"segmentation_loss: `{option}` must be a number >= 0. Received: {option}={value!r}."
                )
        weights = (
            None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        )
        if weights is not None and (weights.dim() != 1 or bool((weights < 0).any())):
            raise OptionError(
                "segmentation_loss: `class_weights` must be one number >= 0 per class. "
                f"Received: class_weights={class_weights!r}."
            )
        self.name, self.class_weights = name, weights
        self.gamma, self.smooth = float(gamma), float(smooth)
        self.huber_delta = 1.0

    def __repr__(self) -> str:
        return f"SegmentationLoss({self.name!r})"

    def __call__(
        self, outputs: Any, targets: Any, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        scores, labels, weights = self._checked(outputs, targets)
        valid = labels != IGNORE_INDEX
        safe = labels.clamp_min(0)
        if self.name in ("crossentropy", "crossentropy+dice"):
            value = class_weighted_mean(
                F.cross_entropy(scores, labels, reduction="none"), labels, weights
            )
            return (
                value + self._dice(scores, safe, valid, weights) if "dice" in self.name else value
            )
        if self.name == "dice":
            return self._dice(scores, safe, valid, weights)
        log_p = F.log_softmax(scores, dim=1).gather(1, safe[:, None])[:, 0]
        values = -((1 - log_p.exp()) ** self.gamma) * log_p
        return class_weighted_mean(values, labels, weights)

    def _checked(self, outputs: Any, targets: Any) -> tuple[torch.Tensor, torch.Tensor, Any]:
        if not isinstance(outputs, torch.Tensor) or outputs.dim() != 4:
            shape = (
                tuple(outputs.shape)
                if isinstance(outputs, torch.Tensor)
                else type(outputs).__name__
            )
            raise InputSizeError(
                f"segmentation_loss({self.name!r}): the network must give class scores "
                f"(N, K, H, W). Received: {shape}."
            )
        scores = outputs.float()
        labels = torch.as_tensor(targets, device=scores.device).long()
        if labels.dim() == 4 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.shape != scores.shape[:1] + scores.shape[2:]:
            raise InputSizeError(
                f"segmentation_loss({self.name!r}): labels must be (N, H, W) class indices "
                f"matching scores {tuple(scores.shape)}. Received labels {tuple(labels.shape)}."
            )
        k = scores.shape[1]
        real = labels[labels != IGNORE_INDEX]
        if real.numel() and (int(real.min()) < 0 or int(real.max()) >= k):
            raise InputSizeError(
                f"segmentation_loss({self.name!r}): class indices must be in 0..{k - 1} for a "
                f"network with {k} classes (or {IGNORE_INDEX} for pixels to ignore). Received "
                f"indices from {int(real.min())} to {int(real.max())}."
            )
        weights = checked_class_weights(self.class_weights, k, scores.device, "segmentation_loss")
        return scores, labels, weights

    def _dice(self, scores, labels, valid, weights) -> torch.Tensor:
        """1 - the (weighted) mean over classes of the soft Dice coefficient of the batch."""
        k = scores.shape[1]
        p = torch.softmax(scores, dim=1) * valid[:, None]
        t = F.one_hot(labels, k).movedim(-1, 1).to(p.dtype) * valid[:, None]
        dims = (0, 2, 3)
        dice = (2 * (p * t).sum(dims) + self.smooth) / (p.sum(dims) + t.sum(dims) + self.smooth)
        if weights is None:
            return 1 - dice.mean()
        return 1 - (dice * weights).sum() / weights.sum().clamp_min(1e-12)


def segmentation_loss(
    name: str = "crossentropy",
    *,
    class_weights: Sequence[float] | torch.Tensor | None = None,
    gamma: float = 2.0,
    smooth: float = 1.0,
) -> SegmentationLoss:
    """A loss for training segmentation networks with :func:`~deeptoolbox.train`.

    - ``"crossentropy"``: per-pixel cross-entropy, each pixel weighted by the weight of its
      true class (``class_weights``, e.g. from ``PixelLabelDatastore.class_weights()``);
      the mean is over the weights of the pixels (ignored pixels excluded).
    - ``"dice"``: 1 - the mean over classes (weighted by ``class_weights``) of the soft Dice
      coefficient ``(2 sum(p t) + smooth) / (sum(p) + sum(t) + smooth)`` over the batch,
      with ``p`` the softmax probabilities and ``t`` the one-hot labels (MATLAB's
      ``generalizedDice`` without its automatic weights).
    - ``"focal"``: ``-(1 - p_t)^gamma log p_t`` per pixel (Lin et al. 2017; MATLAB's
      ``focalCrossEntropy``), weighted as the cross-entropy.
    - ``"crossentropy+dice"``: their sum, a common choice for small structures.

    Example:
        >>> import torch
        >>> scores, labels = torch.zeros(1, 2, 2, 2), torch.tensor([[[0, 1], [1, -100]]])
        >>> round(float(segmentation_loss("crossentropy")(scores, labels)), 4)  # log 2
        0.6931
        >>> round(float(segmentation_loss("focal", gamma=0)(scores, labels)), 4)  # gamma 0: CE
        0.6931
    """
    return SegmentationLoss(name, class_weights=class_weights, gamma=gamma, smooth=smooth)
