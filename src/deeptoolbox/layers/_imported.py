"""Layers the Keras importer builds where Keras computes something no other layer does
exactly: an affine map anywhere in the network (``Rescaling``, ``Normalization``, ConvNeXt's
``LayerScale``) and the merge modes of a bidirectional recurrent output.

They are ordinary registered layers: they save, load, analyze, train and export back.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from deeptoolbox.errors import OptionError, SizeMismatchError
from deeptoolbox.layers._base import (
    Layer,
    Shape,
    check_choice,
    format_shape,
    register_layer,
    require_rank,
)

__all__ = ["ScaleOffset", "MergeDirections"]


@register_layer
class ScaleOffset(Layer):
    """``x * scale + offset`` with ``scale`` and ``offset`` of size ``shape`` (broadcast).

    Keras's ``Rescaling`` and ``Normalization`` where they do not follow an input layer
    directly (there they fold into the input layer's normalization), and the ConvNeXt
    applications' ``LayerScale`` (``trainable=True``: ``scale`` and ``offset`` are
    parameters; otherwise buffers). ``shape`` excludes the batch and is in the toolbox's
    layout, e.g. (C, 1, 1) for one value per image channel. Linear, so bounds pass through.

    Example:
        >>> layer = ScaleOffset((2, 1, 1))
        >>> layer.build([(2, 3, 3)])
        >>> layer.scale.shape
        torch.Size([2, 1, 1])
    """

    is_affine = True  # bounds (deeptoolbox.robustness) pass through it exactly

    def __init__(
        self, shape: Sequence[int] = (), *, trainable: bool = False, name: str | None = None
    ) -> None:
        super().__init__(name=name)
        valid = isinstance(shape, Sequence) and all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape
        )  # fmt: skip
        if not valid:
            raise OptionError(
                "ScaleOffset: `shape` must list sizes >= 1 (batch excluded; () for one value). "
                f"Received: shape={shape!r}."
            )
        self.shape = tuple(int(d) for d in shape)
        self.trainable = bool(trainable)
        for key, value in (("scale", 1.0), ("offset", 0.0)):
            tensor = torch.full(self.shape, value)
            if self.trainable:
                setattr(self, key, nn.Parameter(tensor))
            else:
                self.register_buffer(key, tensor)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        fits = len(self.shape) <= len(shape) and all(
            p in (1, d) for p, d in zip(reversed(self.shape), reversed(shape), strict=False)
        )  # fmt: skip
        if not fits:
            raise SizeMismatchError(
                f"ScaleOffset: values of size {format_shape(self.shape)} do not broadcast over "
                f"an input of size {format_shape(shape)} (batch excluded)."
            )
        return shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.offset


@register_layer
class MergeDirections(Layer):
    """Combine the two halves (forward, backward) of a bidirectional recurrent output.

    The toolbox's bidirectional LSTM / GRU / SimpleRNN joins both directions along the
    channels, as Keras's ``Bidirectional(merge_mode="concat")``; this layer gives Keras's other
    merge modes: ``"sum"``, ``"mul"``, ``"ave"``, and ``"forward"`` / ``"backward"`` (one
    half each: the two outputs of ``merge_mode=None``).

    Example:
        >>> MergeDirections("sum")(torch.tensor([[1.0, 2.0, 10.0, 20.0]])).tolist()
        [[11.0, 22.0]]
    """

    MODES = ("sum", "mul", "ave", "forward", "backward")

    def __init__(self, mode: str = "sum", *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.mode = check_choice("MergeDirections", "mode", mode, self.MODES)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        require_rank(self, shape, [1, 2], "a recurrent output (H,) or (T, H)")
        if shape[-1] is None or shape[-1] % 2:
            raise SizeMismatchError(
                f"MergeDirections: the channels ({shape[-1]}) must hold two equal halves."
            )
        return (*shape[:-1], shape[-1] // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        forward, backward = x.chunk(2, dim=-1)
        if self.mode == "forward":
            return forward
        if self.mode == "backward":
            return backward
        if self.mode == "mul":
            return forward * backward
        total = forward + backward
        return total / 2 if self.mode == "ave" else total
