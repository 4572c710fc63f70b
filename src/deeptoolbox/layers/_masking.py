"""Padding masks: which steps of a batch of sequences hold data, and what masked steps give.

Masks are (N, T) or (N, T, 1) tensors, nonzero (True) for real steps, as the LSTM, GRU,
SelfAttention, CrossAttention and ``GlobalAvgPool(has_padding_mask=True)`` take them on their
``mask`` ports. ``PaddingMask`` makes one from token ids or padded sequences (Keras's
``Embedding(mask_zero=True)`` and ``Masking``); ``MaskedSteps`` gives masked steps of a
recurrent output the values Keras gives them. import_keras builds networks from these.
"""

from __future__ import annotations

import torch

from deeptoolbox.errors import OptionError, SizeMismatchError
from deeptoolbox.layers._base import (
    Layer,
    Shape,
    check_choice,
    format_shape,
    register_layer,
    require_rank,
)


def large_negative(dtype: torch.dtype) -> float:
    """What Keras adds to masked attention scores: -0.7 x (about) the largest finite value.

    Example:
        >>> large_negative(torch.float16)
        -45850.0
    """
    return -0.7 * (65500.0 if dtype == torch.float16 else 3.38953e38)


def keep_steps(mask: torch.Tensor, batch: int) -> torch.Tensor:
    """A mask of any accepted layout as an (N, T) boolean tensor, True for real steps.

    Example:
        >>> keep_steps(torch.tensor([[[1.0], [0.0]]]), 1)
        tensor([[ True, False]])
    """
    return mask.reshape(batch, -1) != 0


def check_mask(layer: Layer, shape: Shape, port: str = "mask") -> None:
    """Raise unless ``shape`` (batch excluded) is a mask's: (T,) or (T, 1).

    Example:
        >>> check_mask(PaddingMask(), (7, 1))
    """
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise SizeMismatchError(
            f"{type(layer).__name__}: the {port} input must be (T,) or (T, 1); received "
            f"{format_shape(shape)}."
        )


@register_layer
class PaddingMask(Layer):
    """The padding mask of a batch: True where a step holds data, False where it is padding.

    ``over_channels=False`` reads token ids (N, T) or (N, T, 1) and marks steps whose id
    differs from ``value`` (Keras's ``Embedding(mask_zero=True)``); ``over_channels=True``
    reads sequences (N, T, C) and marks steps where any channel differs from ``value``
    (Keras's ``Masking``), giving (N, T, 1). Feed the result to a ``mask`` port.

    Example:
        >>> layer = PaddingMask()
        >>> layer(torch.tensor([[5, 2, 0, 0]]))
        tensor([[ True,  True, False, False]])
    """

    def __init__(
        self, value: float = 0.0, *, over_channels: bool = False, name: str | None = None
    ) -> None:
        super().__init__(name=name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise OptionError(f"PaddingMask: `value` must be a number. Received: {value!r}.")
        self.value = float(value)
        self.over_channels = bool(over_channels)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        if self.over_channels:
            require_rank(self, shape, [2], "sequences (T, C)")
            return (shape[0], 1)
        require_rank(self, shape, [1, 2], "token ids (T,) or (T, 1)")
        check_mask(self, shape, "token")
        return shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = x != self.value
        return keep.any(-1, keepdim=True) if self.over_channels else keep


@register_layer
class MaskedSteps(Layer):
    """What Keras's recurrent layers give at masked steps, applied to a recurrent output.

    Ports ``in`` (the output) and ``mask``. ``mode="hold"`` repeats the output of the last
    real step over the masked steps after it (zeros before the first real step), as Keras's
    LSTM and GRU do with ``return_sequences=True``; ``mode="zero"`` sets masked steps to zero
    (Keras's Bidirectional); ``mode="last"`` zeroes the final outputs (N, H) of sequences
    without any real step.

    Example:
        >>> layer = MaskedSteps("hold")
        >>> x = torch.tensor([[[1.0], [2.0], [3.0]]])
        >>> layer(x, torch.tensor([[True, False, True]])).flatten().tolist()
        [1.0, 1.0, 3.0]
    """

    input_names = ("in", "mask")

    def __init__(self, mode: str = "hold", *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.mode = check_choice("MaskedSteps", "mode", mode, ("hold", "zero", "last"))

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        shape, mask = input_shapes
        require_rank(self, shape, [1] if self.mode == "last" else [2], "recurrent outputs")
        check_mask(self, mask)
        return shape

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = keep_steps(mask, x.shape[0])
        if self.mode == "last":
            return torch.where(keep.any(1, keepdim=True), x, torch.zeros_like(x))
        if self.mode == "zero":
            return torch.where(keep.unsqueeze(-1), x, torch.zeros_like(x))
        steps = torch.arange(keep.shape[1], device=x.device).expand_as(keep)
        real = torch.where(keep, steps, torch.full_like(steps, -1))
        if torch.onnx.is_in_onnx_export():  # ONNX has no cummax: the max over earlier steps
            earlier = torch.ones(keep.shape[1], keep.shape[1], device=x.device).tril() > 0
            last = torch.where(earlier, real.unsqueeze(1), -1).amax(-1)
        else:
            last = real.cummax(1).values
        held = x.gather(1, last.clamp(min=0).unsqueeze(-1).expand_as(x))
        return torch.where(last.unsqueeze(-1) >= 0, held, torch.zeros_like(x))
