"""Normalization layers: batch, layer, group, instance and cross-channel normalization.

The channel axis is the last one for features (N, C) and sequences (N, T, C), and the second
for images and volumes, following the data layout in DESIGN.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deeptoolbox.errors import OptionError, SizeMismatchError
from deeptoolbox.layers._base import (
    Layer,
    Shape,
    check_positive_int,
    format_shape,
    known,
    register_layer,
    require_rank,
)


def _channels(layer: Layer, shape: Shape) -> int:
    channels = shape[-1] if len(shape) <= 2 else shape[0]
    known(layer, shape, [len(shape) - 1 if len(shape) <= 2 else 0], "number of channels")
    return int(channels)  # type: ignore[arg-type]


def _check_positive_float(layer: str, option: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise OptionError(
            f"{layer}: `{option}` must be a positive number. Received: {option}={value!r}."
        )
    return float(value)


class _Affine(Layer):
    """A normalization with per-channel scale ``weight`` and offset ``bias``."""

    def __init__(self, *, epsilon: float = 1e-5, name: str | None = None) -> None:
        super().__init__(name=name)
        self.epsilon = _check_positive_float(type(self).__name__, "epsilon", epsilon)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        _channels(self, shape)
        return shape

    def build(self, input_shapes: list[Shape]) -> None:
        channels = _channels(self, input_shapes[0])
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        super().build(input_shapes)


@register_layer
class BatchNorm(_Affine):
    """Batch normalization over the channel axis (MATLAB's batchNormalizationLayer).

    Keeps running mean and variance for inference (``momentum`` as in PyTorch).

    Example:
        >>> import torch
        >>> layer = BatchNorm()
        >>> layer.build([(None, 4)])
        >>> layer(torch.randn(2, 10, 4)).shape
        torch.Size([2, 10, 4])
    """

    def __init__(self, *, epsilon: float = 1e-5, momentum: float = 0.1, name: str | None = None):
        super().__init__(epsilon=epsilon, name=name)
        if (
            isinstance(momentum, bool)
            or not isinstance(momentum, int | float)
            or not 0 < momentum <= 1
        ):
            raise OptionError(
                f"BatchNorm: `momentum` must be a number in (0, 1]. Received: momentum={momentum!r}."
            )
        self.momentum = float(momentum)

    def build(self, input_shapes: list[Shape]) -> None:
        super().build(input_shapes)
        channels = self.weight.numel()
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        self._sequence = len(input_shapes[0]) == 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.num_batches_tracked.add_(1)
        sequence = x.dim() == 3 and self._sequence
        if sequence:
            x = x.transpose(1, 2)
        y = F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias,
            self.training, self.momentum, self.epsilon,
        )  # fmt: skip
        return y.transpose(1, 2) if sequence else y


@register_layer
class LayerNorm(_Affine):
    """Layer normalization (MATLAB's layerNormalizationLayer).

    Features and sequences are normalized over channels at each time step; images and volumes
    over all channels and positions of each observation. Scale and offset are per channel.

    Example:
        >>> import torch
        >>> layer = LayerNorm()
        >>> layer.build([(None, 16)])
        >>> y = layer(torch.randn(2, 5, 16))
        >>> bool(y.mean(-1).abs().max() < 1e-5)
        True
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() <= 3:
            return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.epsilon)
        return F.group_norm(x, 1, self.weight, self.bias, self.epsilon)


@register_layer
class AxisLayerNorm(Layer):
    """Layer normalization over chosen axes, with a scale and offset per normalized element.

    ``axes`` are tensor dimensions, batch included (1 = channels of images); the scale and
    offset have the input's size along those axes and 1 elsewhere. ``AxisLayerNorm([1])`` on
    images (N, C, H, W) normalizes the channels at each position (Keras's
    ``LayerNormalization()`` on channels-last images); ``AxisLayerNorm([1, 2, 3])`` normalizes
    whole images with a scale per element.

    Example:
        >>> layer = AxisLayerNorm([1])
        >>> layer.build([(4, 5, 5)])
        >>> y = layer(torch.randn(2, 4, 5, 5))
        >>> bool(y.mean(1).abs().max() < 1e-5)
        True
    """

    def __init__(
        self, axes: Sequence[int], *, epsilon: float = 1e-3, name: str | None = None
    ) -> None:
        super().__init__(name=name)
        valid = isinstance(axes, Sequence) and axes and all(
            isinstance(a, int) and not isinstance(a, bool) and a >= 1 for a in axes
        )  # fmt: skip
        if not valid:
            raise OptionError(
                "AxisLayerNorm: `axes` must list tensor dimensions >= 1 (0 is the batch). "
                f"Received: axes={axes!r}."
            )
        if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or epsilon <= 0:
            raise OptionError(f"AxisLayerNorm: `epsilon` must be > 0. Received: {epsilon!r}.")
        self.axes = tuple(sorted(set(axes)))
        self.epsilon = float(epsilon)

    def _parameter_shape(self, shape: Shape) -> tuple[int, ...]:
        if self.axes[-1] > len(shape):
            raise SizeMismatchError(
                f"AxisLayerNorm: axes {list(self.axes)} do not exist in an input of size "
                f"{format_shape(shape)} (batch excluded)."
            )
        known(self, shape, [a - 1 for a in self.axes], "size along the normalized axes")
        return tuple(int(shape[d - 1]) if d in self.axes else 1 for d in range(1, len(shape) + 1))

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        self._parameter_shape(input_shapes[0])
        return input_shapes[0]

    def build(self, input_shapes: list[Shape]) -> None:
        size = self._parameter_shape(input_shapes[0])
        self.weight = nn.Parameter(torch.ones(size))
        self.bias = nn.Parameter(torch.zeros(size))
        super().build(input_shapes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, dim=self.axes, correction=0, keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.epsilon) * self.weight + self.bias


@register_layer
class GroupNorm(_Affine):
    """Group normalization: channels split into ``groups`` normalized separately.

    ``groups`` is an int, ``"channel-wise"`` (one group per channel: instance normalization)
    or ``"all-channels"`` (one group).

    Example:
        >>> GroupNorm(4).output_shape([(16, 8, 8)])
        (16, 8, 8)
    """

    def __init__(
        self, groups: int | str, *, epsilon: float = 1e-5, name: str | None = None
    ) -> None:
        super().__init__(epsilon=epsilon, name=name)
        if groups not in ("channel-wise", "all-channels"):
            example = "GroupNorm(4), GroupNorm('channel-wise') or GroupNorm('all-channels')"
            check_positive_int("GroupNorm", "groups", groups, example)
        self.groups = groups

    def _group_count(self, channels: int) -> int:
        if self.groups == "channel-wise":
            return channels
        if self.groups == "all-channels":
            return 1
        return int(self.groups)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        shape = super().output_shape(input_shapes)
        channels = _channels(self, shape)
        if channels % self._group_count(channels):
            raise SizeMismatchError(
                f"GroupNorm: {channels} input channels cannot be split into {self.groups} groups."
            )
        return shape

    def build(self, input_shapes: list[Shape]) -> None:
        super().build(input_shapes)
        self._num_groups = self._group_count(self.weight.numel())
        self._sequence = len(input_shapes[0]) == 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._sequence:
            y = F.group_norm(
                x.transpose(1, 2), self._num_groups, self.weight, self.bias, self.epsilon
            )
            return y.transpose(1, 2)
        return F.group_norm(x, self._num_groups, self.weight, self.bias, self.epsilon)


def _channels_first(x: torch.Tensor, sequence: bool) -> torch.Tensor:
    """Sequences (N, T, C) as (N, C, T) and back; other data is channels-first already."""
    return x.transpose(1, 2) if sequence else x


@register_layer
class InstanceNorm(_Affine):
    """Instance normalization (MATLAB's instanceNormalizationLayer).

    Each channel of each observation is normalized over its positions (images, volumes) or
    time steps (sequences), then scaled and offset per channel. Needs no batch statistics:
    training and inference compute the same. Exports to ONNX ``InstanceNormalization``.

    Example:
        >>> import torch
        >>> layer = InstanceNorm()
        >>> layer.build([(3, 4, 4)])
        >>> y = layer(torch.randn(2, 3, 4, 4))
        >>> bool(y.mean(dim=(2, 3)).abs().max() < 1e-5)
        True
    """

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        require_rank(self, shape, [2, 3, 4], "sequences (T, C), images or volumes")
        return super().output_shape(input_shapes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.instance_norm(
            _channels_first(x, x.dim() == 3), weight=self.weight, bias=self.bias,
            eps=self.epsilon,
        )  # fmt: skip
        return _channels_first(y, y.dim() == 3)


@register_layer
class CrossChannelNorm(Layer):
    """Local response (cross-channel) normalization (MATLAB's crossChannelNormalizationLayer).

    y = x / (k + alpha · s / window_size) ^ beta, where s sums x² over ``window_size``
    neighbouring channels: from c - floor((n-1)/2) to c + ceil((n-1)/2), as ONNX ``LRN``
    (MATLAB's ``Alpha``, ``Beta``, ``K`` options; the defaults are MATLAB's).

    Example:
        >>> import torch
        >>> layer = CrossChannelNorm(3, alpha=1.0, beta=1.0, k=1.0)
        >>> layer(torch.tensor([[3.0, 0.0, 0.0]])).tolist()  # 3 / (1 + 9 / 3)
        [[0.75, 0.0, 0.0]]
    """

    def __init__(
        self,
        window_size: int,
        *,
        alpha: float = 1e-4,
        beta: float = 0.75,
        k: float = 2.0,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        example = "CrossChannelNorm(5)"
        self.window_size = check_positive_int(
            "CrossChannelNorm", "window_size", window_size, example
        )
        self.alpha = _check_positive_float("CrossChannelNorm", "alpha", alpha)
        self.beta = _check_positive_float("CrossChannelNorm", "beta", beta)
        self.k = _check_positive_float("CrossChannelNorm", "k", k)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        require_rank(self, shape, [1, 2, 3, 4], "features, sequences, images or volumes")
        _channels(self, shape)
        return shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sequence = x.dim() == 3
        y = local_response_norm(
            _channels_first(x, sequence), self.window_size, self.alpha, self.beta, self.k
        )
        return _channels_first(y, sequence)


def local_response_norm(
    x: torch.Tensor, size: int, alpha: float, beta: float, k: float
) -> torch.Tensor:
    """ONNX ``LRN`` on channels-first data (N, C, ...): the window is c - floor((size-1)/2)
    to c + ceil((size-1)/2) (torch's own ``local_response_norm`` centres even windows the
    other way)."""
    squares = x.square().reshape(x.shape[0], 1, x.shape[1], -1, 1)
    squares = F.pad(squares, (0, 0, 0, 0, (size - 1) // 2, size // 2))
    sums = F.avg_pool3d(squares, (size, 1, 1), stride=1) * size
    return x / (sums.reshape(x.shape) * (alpha / size) + k).pow(beta)
