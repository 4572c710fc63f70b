"""Grad-CAM: class activation maps from a layer's activations and gradients (Selvaraju et al.)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deeptoolbox._deprecation import renamed_arguments
from deeptoolbox.explain._common import (
    Target,
    channels_first,
    check_extent,
    check_positive_int,
    evaluation,
    find_layer,
    prepare,
    run,
    target_weights,
    upsample,
)

__all__ = ["gradcam"]


@renamed_arguments(positional=("layer",))
def gradcam(
    net: nn.Module,
    x: Any,
    target: Target = None,
    *,
    batch_size: int = 64,
    seed: int | None = None,
    layer: str | nn.Module | None = None,
    relu: bool = True,
    upsample_to_input: bool = True,
    use_logits: bool = True,
) -> torch.Tensor:
    """Grad-CAM map: where the chosen layer's features drive the target score.

    The map is ``ReLU(sum_c w_c A_c)``, where ``A_c`` is channel ``c`` of ``layer``'s
    output and ``w_c`` the mean of the target score's gradient over its positions. It costs
    one forward and one backward pass per batch.

    Args:
        net: a deeptoolbox Network or any ``torch.nn.Module``.
        x: a batch of images (N, C, H, W) or volumes, or sequences (N, T, C); one
            observation without batch axis also works with a Network.
        target: what to explain. None: the predicted class (the largest output), per
            observation; for outputs with spatial or time extent (segmentation), the
            predicted class at every position. A class index or name (``net.classes``), or
            one per observation; a regression output index. For segmentation outputs a bool
            pixel mask (positions of the output) or ``(class, mask)``.
        layer: a layer name or module of ``net``. Default (Networks only): the last layer
            with spatial or time extent before pooling. Plain modules need ``layer=``.
        relu: keep only positive evidence (as in the paper). False gives the signed map.
        upsample_to_input: resize the map to the input's size (bilinear / linear).
        use_logits: when the network ends in a softmax, explain the score before it.
        batch_size: observations per forward/backward pass.
        seed: accepted for the explainers' shared call shape; Grad-CAM is deterministic.

    ``layer`` is keyword-only; passing it by position still works, with a DeprecationWarning.

    Returns:
        Maps (N, H, W) for images, (N, D, H, W) for volumes, (N, T) for sequences; without
        batch axis when ``x`` had none. On ``x``'s device.

    Raises:
        TargetError: ``target`` names no output. LayerChoiceError: ``layer`` has no spatial or
        time extent. InputSizeError: ``x`` does not fit the input layer.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> from deeptoolbox.explain import gradcam
        >>> net = Network([L.ImageInput((1, 8, 8)), L.Conv2d(4, 3, padding="same", name="conv"), L.ReLU(),
        ...                L.GlobalAvgPool(), L.Dense(3), L.Softmax()], classes=["a", "b", "c"])
        >>> gradcam(net, torch.randn(2, 1, 8, 8), target="b").shape
        torch.Size([2, 8, 8])
    """
    func = "gradcam"
    prepared = prepare(func, net, x)
    module = find_layer(func, net, layer)
    check_extent(func, net, module)
    batch_size = check_positive_int(func, "batch_size", batch_size)
    maps = []
    with evaluation(net, use_logits), torch.enable_grad():
        for start in range(0, len(prepared.x), batch_size):
            chunk = prepared.x[start : start + batch_size]
            where = (start, len(prepared.x))
            cam = _gradcam_batch(func, net, module, chunk, target, relu, where)
            if upsample_to_input:
                cam = upsample(func, cam, prepared.spatial_size)
            maps.append(cam)
    return prepared.finish(torch.cat(maps))


def _gradcam_batch(
    func: str,
    net: nn.Module,
    layer: nn.Module,
    x: torch.Tensor,
    target: Target,
    relu: bool,
    where: tuple[int, int],
) -> torch.Tensor:
    """One forward with a hook on ``layer``, one backward to its output."""
    store: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda module, inputs, output: store.append(output))
    try:
        output = run(func, net, x.detach().requires_grad_(True))
    finally:
        handle.remove()
    if not store:
        raise_unused(func, net, layer)
    activation = store[-1]
    weights = target_weights(func, net, output, target, *where)
    score = (output * weights).sum()
    (gradient,) = torch.autograd.grad(score, activation)
    activation = channels_first(func, layer, activation.detach())
    gradient = channels_first(func, layer, gradient)
    positions = tuple(range(2, activation.dim()))
    channel_weights = gradient.mean(dim=positions, keepdim=True)
    cam = (channel_weights * activation).sum(1)
    return cam.clamp_min(0) if relu else cam


def raise_unused(func: str, net: nn.Module, layer: nn.Module) -> None:
    """The chosen layer did not run in the forward pass."""
    from deeptoolbox.errors import LayerChoiceError
    from deeptoolbox.explain._common import layer_name

    raise LayerChoiceError(
        f"{func}: layer '{layer_name(net, layer)}' did not run in the forward pass, so it has "
        "no activation to explain; choose a layer on the path to the output."
    )
