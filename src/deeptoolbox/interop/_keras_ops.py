"""Layers that reproduce Keras semantics the toolbox's own layers do not cover exactly.

import_keras uses them where a Keras model relies on behaviour with no toolbox twin: padding
masks (``Embedding(mask_zero=True)``, ``Masking``) and what Keras does at masked steps,
cross-attention with Keras's attention masks, average pooling that leaves "same" padding out
of the average, and layer normalization over other axes than the channels. They are
registered, so imported networks save, load, analyze and train like any other. Masks are
(N, T) or (N, T, 1) tensors, nonzero (True) for real steps, as the toolbox's LSTM, GRU and
SelfAttention take them on their ``mask`` port.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deeptoolbox.errors import OptionError, SizeMismatchError
from deeptoolbox.layers._base import (
    Layer,
    Shape,
    as_tuple,
    check_choice,
    check_positive_int,
    format_shape,
    known,
    register_layer,
    require_rank,
)
from deeptoolbox.layers._conv import pad_same


def large_negative(dtype: torch.dtype) -> float:
    """What Keras adds to masked attention scores: -0.7 x (about) the largest finite value.

    Example:
        >>> large_negative(torch.float16)
        -45850.0
    """
    return -0.7 * (65500.0 if dtype == torch.float16 else 3.38953e38)


MASK_PORTS = ("query_mask", "value_mask", "key_mask", "attention_mask")


def keep_steps(mask: torch.Tensor, batch: int) -> torch.Tensor:
    """A mask of any accepted layout as an (N, T) boolean tensor, True for real steps.

    Example:
        >>> keep_steps(torch.tensor([[[1.0], [0.0]]]), 1)
        tensor([[ True, False]])
    """
    return mask.reshape(batch, -1) != 0


def _check_mask(layer: Layer, shape: Shape, port: str = "mask") -> None:
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
        _check_mask(self, shape, "token")
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
        _check_mask(self, mask)
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


@register_layer
class MaskedGlobalAvgPool(Layer):
    """Average over the real steps of sequences: ports ``in`` (N, T, C) and ``mask``.

    Keras's ``GlobalAveragePooling1D`` after a padding mask; a sequence with no real step
    gives NaN, as in Keras.

    Example:
        >>> x = torch.tensor([[[1.0], [3.0], [9.0]]])
        >>> MaskedGlobalAvgPool()(x, torch.tensor([[1, 1, 0]])).tolist()
        [[2.0]]
    """

    input_names = ("in", "mask")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        shape, mask = input_shapes
        require_rank(self, shape, [2], "sequences (T, C)")
        _check_mask(self, mask)
        return (shape[1],)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = keep_steps(mask, x.shape[0]).unsqueeze(-1)
        total = torch.where(keep, x, torch.zeros_like(x)).sum(1)
        return total / keep.to(x.dtype).sum(1)


@register_layer
class CrossAttention(Layer):
    """Multi-head attention of queries (N, T, Cq) over values (N, S, Cv), as Keras computes it.

    Ports: ``query``, ``value``, then ``key`` (N, S, Ck) when ``has_key``, then the masks
    named in ``masks``: ``query_mask`` (N, T), ``value_mask`` and ``key_mask`` (N, S) (True
    for real steps) and ``attention_mask`` (N, T, S) (True where a query may attend a key).
    Masks combine with AND, as in Keras's ``MultiHeadAttention``; a query with no key left
    attends uniformly to all keys, as Keras's large negative scores make it. The output has
    ``output_channels`` channels (default: the query's).

    Example:
        >>> layer = CrossAttention(2, key_dim=4, masks=["attention_mask"])
        >>> layer.build([(5, 6), (7, 3), (5, 7)])
        >>> q, v = torch.randn(2, 5, 6), torch.randn(2, 7, 3)
        >>> layer(q, v, torch.ones(2, 5, 7, dtype=torch.bool)).shape
        torch.Size([2, 5, 6])
    """

    def __init__(
        self,
        num_heads: int,
        *,
        key_dim: int,
        value_dim: int | None = None,
        output_channels: int | None = None,
        bias: bool = True,
        causal: bool = False,
        has_key: bool = False,
        masks: Sequence[str] = (),
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        example = "CrossAttention(4, key_dim=16)"
        self.num_heads = check_positive_int("CrossAttention", "num_heads", num_heads, example)
        self.key_dim = check_positive_int("CrossAttention", "key_dim", key_dim, example)
        self.value_dim = check_positive_int(
            "CrossAttention", "value_dim", value_dim or key_dim, example
        )
        if output_channels is not None:
            check_positive_int("CrossAttention", "output_channels", output_channels, example)
        self.output_channels = output_channels
        self.bias = bool(bias)
        self.causal = bool(causal)
        self.has_key = bool(has_key)
        self.masks = tuple(masks)
        unknown = [m for m in self.masks if m not in MASK_PORTS]
        if unknown or len(set(self.masks)) != len(self.masks):
            raise OptionError(
                f"CrossAttention: `masks` lists each of {', '.join(MASK_PORTS)} at most once. "
                f"Received: masks={list(masks)!r}."
            )
        self.input_names = ("query", "value", *(("key",) if has_key else ()), *self.masks)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        query = input_shapes[0]
        for shape in input_shapes[: 3 if self.has_key else 2]:
            require_rank(self, shape, [2], "sequences (T, C)")
            known(self, shape, [1], "number of channels")
        for port, shape in zip(self.input_names[2:], input_shapes[2:], strict=True):
            if port == "attention_mask":
                require_rank(self, shape, [2], "an attention mask (T, S)")
            elif port != "key":
                _check_mask(self, shape, port)
        return (query[0], self.output_channels or query[1])

    def build(self, input_shapes: list[Shape]) -> None:
        out = self.output_shape(input_shapes)[1]
        key_shape = input_shapes[2] if self.has_key else input_shapes[1]
        sizes = {
            "query": (self.num_heads * self.key_dim, input_shapes[0][1]),
            "key": (self.num_heads * self.key_dim, key_shape[1]),
            "value": (self.num_heads * self.value_dim, input_shapes[1][1]),
            "output": (out, self.num_heads * self.value_dim),
        }
        for part, size in sizes.items():
            weight = nn.Parameter(torch.empty(size))
            nn.init.xavier_uniform_(weight)
            setattr(self, f"{part}_weight", weight)
            bias = nn.Parameter(torch.zeros(size[0])) if self.bias else None
            setattr(self, f"{part}_bias", bias)
        super().build(input_shapes)

    def _mask(self, masks: dict[str, torch.Tensor], n: int, t: int, s: int, device) -> torch.Tensor:
        keep = torch.ones(n, t, s, dtype=torch.bool, device=device)
        for port, mask in masks.items():
            if port == "query_mask":
                keep = keep & keep_steps(mask, n)[:, :, None]
            elif port == "attention_mask":
                keep = keep & (mask != 0)
            else:
                keep = keep & keep_steps(mask, n)[:, None, :]
        if self.causal:
            keep = keep & torch.ones(t, s, dtype=torch.bool, device=device).tril()
        return keep

    def forward(self, query: torch.Tensor, value: torch.Tensor, *rest: torch.Tensor):
        key = rest[0] if self.has_key else value
        masks = dict(zip(self.masks, rest[1:] if self.has_key else rest, strict=True))
        n, t, s, heads = query.shape[0], query.shape[1], value.shape[1], self.num_heads

        def project(x: torch.Tensor, part: str) -> torch.Tensor:
            y = F.linear(x, getattr(self, f"{part}_weight"), getattr(self, f"{part}_bias"))
            return y.view(n, x.shape[1], heads, -1).transpose(1, 2)

        q, k, v = project(query, "query"), project(key, "key"), project(value, "value")
        bias = None
        if masks:
            keep = self._mask(masks, n, t, s, query.device)[:, None]
            bias = torch.where(keep, 0.0, large_negative(q.dtype)).to(q.dtype)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, is_causal=self.causal and bias is None,
            scale=1.0 / math.sqrt(self.key_dim),
        )  # fmt: skip
        y = y.transpose(1, 2).reshape(n, t, -1)
        return F.linear(y, self.output_weight, self.output_bias)


@register_layer
class AvgPoolExcludingPadding(Layer):
    """Average pooling with "same" output sizes whose averages leave the padding out.

    Keras's (and TensorFlow's) ``AveragePooling1D/2D(padding="same")``: each output is the
    mean of the input values its window covers, so border outputs average fewer values.
    One spatial axis works on sequences (N, T, C), two on images (N, C, H, W).

    Example:
        >>> layer = AvgPoolExcludingPadding([3], stride=[1])
        >>> layer(torch.tensor([[[3.0], [6.0], [9.0]]])).flatten().tolist()
        [4.5, 6.0, 7.5]
    """

    def __init__(
        self,
        pool_size: Sequence[int],
        *,
        stride: Sequence[int] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        dims = len(pool_size) if isinstance(pool_size, Sequence) else 0
        if dims not in (1, 2):
            raise OptionError(
                "AvgPoolExcludingPadding: `pool_size` must list 1 (sequences) or 2 (images) "
                f"sizes. Received: pool_size={pool_size!r}."
            )
        kind = "AvgPoolExcludingPadding"
        self.pool_size = as_tuple(kind, "pool_size", tuple(pool_size), dims)
        self.stride = as_tuple(kind, "stride", tuple(stride or pool_size), dims)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        dims = len(self.pool_size)
        require_rank(self, shape, [dims + 1], "sequences (T, C)" if dims == 1 else "images")
        lengths = shape[:1] if dims == 1 else shape[1:]
        sizes = [
            None if n is None else math.ceil(n / s)
            for n, s in zip(lengths, self.stride, strict=True)
        ]
        return (*sizes, shape[1]) if dims == 1 else (shape[0], *sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        one_dim = len(self.pool_size) == 1
        if one_dim:
            x = x.transpose(1, 2)
        ones = torch.ones_like(x[:1, :1])
        pool = F.avg_pool1d if one_dim else F.avg_pool2d
        dilation = (1,) * len(self.pool_size)

        def pooled(t: torch.Tensor) -> torch.Tensor:
            return pool(pad_same(t, 2, self.pool_size, self.stride, dilation), self.pool_size,
                        self.stride)  # fmt: skip

        y = pooled(x) / pooled(ones)
        return y.transpose(1, 2) if one_dim else y


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
