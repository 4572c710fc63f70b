"""Deep dream: inputs that strongly activate chosen channels of a layer (gradient ascent)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deeptoolbox._deprecation import renamed_arguments
from deeptoolbox.errors import OptionError, _LayerReached
from deeptoolbox.explain._common import (
    channels_first,
    check_positive_int,
    evaluation,
    find_layer,
    layer_name,
    network_device,
)
from deeptoolbox.layers._input import ImageInput, SequenceInput, VolumeInput
from deeptoolbox.network._network import Network

__all__ = ["deep_dream"]


@renamed_arguments({"iterations": "steps"})
def deep_dream(
    net: nn.Module,
    layer: str | nn.Module,
    channels: int | Sequence[int],
    *,
    steps: int = 10,
    octaves: int = 3,
    octave_scale: float = 1.4,
    learn_rate: float = 0.05,
    jitter: int = 1,
    initial: torch.Tensor | None = None,
    rescale: bool = True,
    seed: int | None = 0,
) -> torch.Tensor:
    """Make one input per channel that strongly activates that channel of ``layer``.

    Gradient ascent on the channel's mean activation, starting from noise (or ``initial``),
    with the gradient normalized per step, a random shift of up to ``jitter`` positions each
    step (so patterns do not lock onto the pixel grid), and ``octaves`` scales: the input is
    first optimized at a coarse resolution (``octave_scale`` times smaller per octave, seen by
    the network upsampled to full size), then refined at finer ones. MATLAB's deepDreamImage.

    Args:
        net: a deeptoolbox Network or any ``torch.nn.Module``.
        layer: a layer name or module of ``net``; for Dense layers a channel is an output unit
            (a class score of the last Dense layer). A final Softmax gives its logits.
        channels: a channel index or a list of them: one result per channel.
        steps: ascent steps per octave (``iterations``, its deprecated name, still works with
            a DeprecationWarning). octaves: number of scales (1 = no pyramid).
        learn_rate: step size relative to the input's value range (1 for noise in [0, 1)).
        jitter: largest random shift per step, in positions (0 = none).
        initial: starting input (one observation, or one per channel). Default: uniform
            noise in [0, 1); needed for plain modules and inputs of free size.
        rescale: scale each result to [0, 1] (for display); False keeps the raw values.
        seed: seed of the noise and the jitter (None: not reproducible).

    Returns:
        (K, *input size) tensor, one input per channel.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> from deeptoolbox.explain import deep_dream
        >>> net = Network([L.ImageInput((1, 16, 16)), L.Conv2d(4, 3, padding="same", name="conv")])
        >>> deep_dream(net, "conv", [0, 2], steps=3).shape
        torch.Size([2, 1, 16, 16])
    """
    func = "deep_dream"
    module = find_layer(func, net, layer)
    channel_list = _channels(func, channels)
    steps = check_positive_int(func, "steps", steps)
    octaves = check_positive_int(func, "octaves", octaves)
    jitter = check_positive_int(func, "jitter", jitter, 0)
    for option, value in (("octave_scale", octave_scale), ("learn_rate", learn_rate)):
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise OptionError(f"{func}: `{option}` must be a positive number. Received: {value!r}.")
    if octave_scale < 1:
        raise OptionError(f"{func}: `octave_scale` must be >= 1. Received: {octave_scale!r}.")
    generator = torch.Generator().manual_seed(seed if seed is not None else torch.seed())
    start, sequence = _start(func, net, initial, len(channel_list), generator)
    with evaluation(net):
        result = _ascend(func, net, module, start, sequence, channel_list, steps,
                         octaves, octave_scale, learn_rate, jitter, generator)  # fmt: skip
    if rescale:
        flat = result.reshape(len(result), -1)
        low = flat.amin(1).view(-1, *[1] * (result.dim() - 1))
        high = flat.amax(1).view(-1, *[1] * (result.dim() - 1))
        result = (result - low) / (high - low).clamp_min(1e-12)
    return result.detach()


def _channels(func: str, channels: object) -> list[int]:
    values = [channels] if isinstance(channels, int) else channels
    if (
        isinstance(values, str | bool)
        or not isinstance(values, Sequence | torch.Tensor)
        or not len(values)
        or not all(isinstance(int(c) if isinstance(c, torch.Tensor) else c, int)
                   and not isinstance(c, bool) and int(c) >= 0 for c in values)
    ):  # fmt: skip
        raise OptionError(
            f"{func}: `channels` must be a channel index or a non-empty list of them. Received: "
            f"{channels!r}."
        )
    return [int(c) for c in values]


def _start(
    func: str, net: nn.Module, initial: Any, count: int, generator: torch.Generator
) -> tuple[torch.Tensor, bool]:
    """The starting batch (K, C, *positions) channels-first, and whether it is a sequence."""
    device = network_device(net) or torch.device("cpu")
    sequence = False
    shape: tuple | None = None
    if isinstance(net, Network) and len(net.input_names) == 1:
        input_layer = net.layer(net.input_names[0])
        sequence = isinstance(input_layer, SequenceInput)
        if isinstance(input_layer, ImageInput | VolumeInput | SequenceInput):
            shape = tuple(input_layer.shape)
    if initial is not None:
        x = torch.as_tensor(initial, dtype=torch.float32)
        rank = len(shape) if shape is not None else x.dim() - 1
        x = x.unsqueeze(0) if x.dim() == rank else x
        if len(x) == 1:
            x = x.expand(count, *x.shape[1:])
        if len(x) != count:
            raise OptionError(
                f"{func}: `initial` holds {len(x)} inputs for {count} channels; give one input "
                "or one per channel."
            )
        sequence = sequence or x.dim() == 3
    else:
        if shape is None or any(d is None for d in shape):
            raise OptionError(
                f"{func}: cannot tell the input size; pass `initial=` (a starting input, e.g. "
                "torch.rand(3, 224, 224))."
            )
        x = torch.rand((count, *shape), generator=generator)
    x = x.to(device).clone()
    return (x.transpose(1, 2) if sequence else x), sequence


def _ascend(
    func: str,
    net: nn.Module,
    layer: nn.Module,
    x: torch.Tensor,
    sequence: bool,
    channels: list[int],
    iterations: int,
    octaves: int,
    octave_scale: float,
    learn_rate: float,
    jitter: int,
    generator: torch.Generator,
) -> torch.Tensor:
    full = tuple(x.shape[2:])
    modes = {1: "linear", 2: "bilinear", 3: "trilinear"}
    mode = modes[len(full)]
    span = float(x.max() - x.min()) or 1.0
    index = torch.tensor(channels, device=x.device)
    for octave in range(octaves):
        factor = octave_scale ** (octaves - 1 - octave)
        size = tuple(max(1, round(s / factor)) for s in full)
        x = F.interpolate(x, size=size, mode=mode, align_corners=False).detach()
        for _ in range(iterations):
            shifts = torch.randint(-jitter, jitter + 1, (len(size),), generator=generator).tolist()
            dims = tuple(range(2, x.dim()))
            x = torch.roll(x, shifts, dims).requires_grad_(True)
            seen = (
                x if size == full else F.interpolate(x, size=full, mode=mode, align_corners=False)
            )
            activation = _activation(func, net, layer, seen.transpose(1, 2) if sequence else seen)
            score = _channel_means(func, net, layer, activation, index).sum()
            (gradient,) = torch.autograd.grad(score, x)
            scale = gradient.abs().mean(dim=tuple(range(1, x.dim())), keepdim=True) + 1e-12
            x = torch.roll(
                (x + learn_rate * span * gradient / scale).detach(), [-s for s in shifts], dims
            )
    result = (
        F.interpolate(x, size=full, mode=mode, align_corners=False) if x.shape[2:] != full else x
    )
    return result.transpose(1, 2) if sequence else result


def _activation(func: str, net: nn.Module, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    store: list[torch.Tensor] = []

    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        store.append(output)
        raise _LayerReached

    handle = layer.register_forward_hook(hook)
    try:
        net(x)
    except _LayerReached:
        pass
    finally:
        handle.remove()
    if not store or not isinstance(store[0], torch.Tensor):
        raise OptionError(
            f"{func}: layer '{layer_name(net, layer)}' did not give a tensor in the forward pass."
        )
    return store[0]


def _channel_means(
    func: str,
    net: nn.Module,
    layer: nn.Module,
    activation: torch.Tensor,
    index: torch.Tensor,
) -> torch.Tensor:
    """Each input's mean activation of its own channel."""
    if activation.dim() >= 3:  # toolbox sequences are (N, T, C)
        activation = channels_first(func, layer, activation)
    per_channel = activation.reshape(*activation.shape[:2], -1).mean(2)
    count = per_channel.shape[1]
    if int(index.max()) >= count:
        raise OptionError(
            f"{func}: channel {int(index.max())} does not exist: layer "
            f"'{layer_name(net, layer)}' has {count} channels (0 to {count - 1})."
        )
    return per_channel.gather(1, index.unsqueeze(1))
