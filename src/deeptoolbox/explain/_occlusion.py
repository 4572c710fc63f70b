"""Occlusion sensitivity: how much the target score drops when a patch is hidden (Captum)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from deeptoolbox._deprecation import renamed_arguments
from deeptoolbox.errors import OptionError
from deeptoolbox.explain._common import (
    Prepared,
    Scorer,
    Target,
    captum_attr,
    check_positive_int,
    evaluation,
    fill_values,
    prepare,
    run,
    target_weights,
)

__all__ = ["occlusion_sensitivity"]


@renamed_arguments({"mask_value": "baseline"})
def occlusion_sensitivity(
    net: nn.Module,
    x: Any,
    target: Target = None,
    *,
    batch_size: int = 256,
    seed: int | None = None,
    mask_size: int | Sequence[int] | str = "auto",
    stride: int | Sequence[int] | str = "auto",
    baseline: str | float = "mean",
    use_logits: bool = True,
) -> torch.Tensor:
    """Occlusion sensitivity map: the drop of the target score when each region is hidden.

    A mask of ``mask_size`` slides over the input with ``stride``, covering every channel,
    and replaces what it covers by ``baseline``. Each element of the map is the score of
    the intact input minus the score with the mask on, averaged over the mask positions that
    cover the element; positive values mark evidence for the target. Many masked copies go
    through the network in one pass (``batch_size`` copies), which is what makes it fast.

    Args:
        net: a deeptoolbox Network or any ``torch.nn.Module``.
        x: images (N, C, H, W), volumes, sequences (N, T, C) or features (N, C); one
            observation without batch axis also works with a Network.
        target: what to explain, as for :func:`gradcam` (default: the predicted class).
        mask_size: size of the mask per position axis (an int for all); "auto": a fifth of
            each size (at least 1).
        stride: step of the mask; "auto": half the mask size (at least 1).
        baseline: "mean" (each observation's mean per channel; for features, its mean over
            the features) or a number.
        use_logits: when the network ends in a softmax, explain the score before it.
        batch_size: masked copies per forward pass.
        seed: accepted for the explainers' shared call shape; occlusion is deterministic.

    Deprecated names (they still work, with a DeprecationWarning): ``mask_value`` for
    ``baseline``.

    Returns:
        Maps (N, H, W), (N, D, H, W), (N, T) or (N, C) (features), on ``x``'s device.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> from deeptoolbox.explain import occlusion_sensitivity
        >>> net = Network([L.ImageInput((1, 8, 8)), L.Conv2d(4, 3, padding="same"), L.ReLU(),
        ...                L.GlobalAvgPool(), L.Dense(3)])
        >>> occlusion_sensitivity(net, torch.randn(2, 1, 8, 8), mask_size=3, stride=1).shape
        torch.Size([2, 8, 8])
    """
    func = "occlusion_sensitivity"
    prepared = prepare(func, net, x)
    batch_size = check_positive_int(func, "batch_size", batch_size)
    positions = prepared.spatial_size
    masks = _sizes(func, "mask_size", mask_size, positions, None)
    strides = _sizes(func, "stride", stride, positions, masks)
    window, steps = _window(prepared, masks, strides)
    scorer = Scorer(net, func)
    occlusion = captum_attr().Occlusion(scorer)
    results = []
    with evaluation(net, use_logits), torch.no_grad():
        for start in range(0, len(prepared.x), batch_size):
            chunk = prepared.x[start : start + batch_size]
            output = run(func, net, chunk)
            weights = target_weights(func, net, output, target, start, len(prepared.x))
            fill = fill_values(func, chunk, prepared.kind, baseline)
            results.append(
                occlusion.attribute(
                    chunk, sliding_window_shapes=window, strides=steps, baselines=fill,
                    additional_forward_args=(weights,),
                    perturbations_per_eval=max(1, batch_size // len(chunk)),
                )
            )  # fmt: skip
    attribution = torch.cat(results)
    axis = prepared.channel_axis
    return prepared.finish(attribution.select(axis, 0) if axis is not None else attribution)


def _sizes(
    func: str,
    option: str,
    value: object,
    positions: tuple[int, ...],
    masks: tuple[int, ...] | None,
) -> tuple[int, ...]:
    if value == "auto":
        if masks is None:
            return tuple(max(1, math.ceil(p / 5)) for p in positions)
        return tuple(max(1, m // 2) for m in masks)
    values = [value] * len(positions) if isinstance(value, int) else value
    if (
        isinstance(values, str)
        or not isinstance(values, Sequence)
        or len(values) != len(positions)
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values)
    ):
        raise OptionError(
            f"{func}: `{option}` must be 'auto', a positive int or {len(positions)} positive "
            f"ints (one per axis of an input of size {positions}). Received: {option}={value!r}."
        )
    if option == "mask_size" and any(v > p for v, p in zip(values, positions, strict=True)):
        raise OptionError(
            f"{func}: `mask_size` {tuple(values)} is larger than the input {positions}."
        )
    return tuple(values)


def _window(
    prepared: Prepared, masks: tuple[int, ...], strides: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Captum's sliding window and strides, covering every channel at once."""
    x = prepared.x
    if prepared.kind in ("image", "volume"):
        channels = int(x.shape[1])
        return (channels, *masks), (channels, *strides)
    if prepared.channel_axis == 2:
        channels = int(x.shape[2])
        return (*masks, channels), (*strides, channels)
    return masks, strides
