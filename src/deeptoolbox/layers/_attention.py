"""Transformer building blocks: token Embedding, PositionEmbedding, SelfAttention and
CrossAttention."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deeptoolbox.errors import InputSizeError, OptionError, SizeMismatchError
from deeptoolbox.layers._base import (
    Layer,
    Shape,
    check_choice,
    check_positive_int,
    check_probability,
    format_shape,
    known,
    register_layer,
    require_rank,
)
from deeptoolbox.layers._masking import check_mask, keep_steps, large_negative


@register_layer
class Embedding(Layer):
    """Map integer token ids (0-based) to learned vectors: (N, T) or (N, T, 1) -> (N, T, D).

    Example:
        >>> import torch
        >>> layer = Embedding(100, 8)
        >>> layer.build([(None, 1)])
        >>> layer(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 8])
    """

    def __init__(
        self,
        vocabulary_size: int,
        dimension: int,
        *,
        padding_index: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.vocabulary_size = check_positive_int(
            "Embedding", "vocabulary_size", vocabulary_size, "Embedding(10000, 64)"
        )
        self.dimension = check_positive_int(
            "Embedding", "dimension", dimension, "Embedding(10000, 64)"
        )
        if padding_index is not None and not (
            isinstance(padding_index, int) and 0 <= padding_index < vocabulary_size
        ):
            raise OptionError(
                f"Embedding: `padding_index` must be None or an int in [0, {vocabulary_size}). "
                f"Received: padding_index={padding_index!r}."
            )
        self.padding_index = padding_index

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        rank = require_rank(self, shape, [1, 2], "token ids (T,) or (T, 1)")
        if rank == 2 and shape[1] != 1:
            raise SizeMismatchError(
                f"Embedding expects one token id per time step (T, 1); received "
                f"{format_shape(shape)}."
            )
        return (shape[0], self.dimension)

    def build(self, input_shapes: list[Shape]) -> None:
        self.output_shape(input_shapes)
        self.weight = nn.Parameter(torch.randn(self.vocabulary_size, self.dimension) * 0.02)
        if self.padding_index is not None:
            with torch.no_grad():
                self.weight[self.padding_index].zero_()
        super().build(input_shapes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.squeeze(-1)
        return F.embedding(x.long(), self.weight, self.padding_index)


def sinusoidal_table(length: int, channels: int) -> torch.Tensor:
    """Return the (length, channels) sinusoidal position table of Vaswani et al. (2017).

    Example:
        >>> sinusoidal_table(4, 6).shape
        torch.Size([4, 6])
    """
    positions = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    frequencies = torch.exp(
        torch.arange(0, channels, 2, dtype=torch.float32) * (-math.log(10000.0) / channels)
    )
    table = torch.zeros(length, channels + channels % 2)
    table[:, 0::2] = torch.sin(positions * frequencies)
    table[:, 1::2] = torch.cos(positions * frequencies)
    return table[:, :channels]


@register_layer
class PositionEmbedding(Layer):
    """Add (or output) a position embedding for sequences (N, T, C).

    ``kind="learned"`` learns one vector per position up to ``max_position``;
    ``kind="sinusoidal"`` uses fixed sines and cosines. With ``combine="add"`` (default) the
    layer returns input + embedding, so it fits in a chain; with ``combine="none"`` it returns
    the embedding alone (N, T, C) for an :class:`Addition` elsewhere.

    Example:
        >>> import torch
        >>> layer = PositionEmbedding(50, kind="sinusoidal")
        >>> layer.build([(None, 8)])
        >>> layer(torch.zeros(2, 10, 8)).shape
        torch.Size([2, 10, 8])
    """

    def __init__(
        self,
        max_position: int,
        *,
        kind: str = "learned",
        combine: str = "add",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.max_position = check_positive_int(
            "PositionEmbedding", "max_position", max_position, "PositionEmbedding(512)"
        )
        self.kind = check_choice("PositionEmbedding", "kind", kind, ("learned", "sinusoidal"))
        self.combine = check_choice("PositionEmbedding", "combine", combine, ("add", "none"))

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        require_rank(self, shape, [2], "sequences (T, C)")
        known(self, shape, [1], "number of channels")
        if shape[0] is not None and shape[0] > self.max_position:
            raise SizeMismatchError(
                f"PositionEmbedding: sequences of length {shape[0]} exceed max_position="
                f"{self.max_position}."
            )
        return shape

    def build(self, input_shapes: list[Shape]) -> None:
        self.output_shape(input_shapes)
        channels = int(input_shapes[0][1])  # type: ignore[arg-type]
        if self.kind == "learned":
            self.weight = nn.Parameter(torch.randn(self.max_position, channels) * 0.02)
        else:
            self.register_buffer(
                "weight", sinusoidal_table(self.max_position, channels), persistent=False
            )
        super().build(input_shapes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        if length > self.max_position:
            raise InputSizeError(
                f"PositionEmbedding '{self.name}': a sequence of length {length} is longer than "
                f"max_position={self.max_position}. Build the layer with a larger max_position."
            )
        positions = self.weight[:length]
        if self.combine == "add":
            return x + positions
        return positions.unsqueeze(0).expand(x.shape[0], -1, -1)


@register_layer
class SelfAttention(Layer):
    """Multi-head self-attention on sequences (N, T, C) (MATLAB's selfAttentionLayer).

    ``key_channels`` (default: input channels) is split across ``num_heads``;
    ``output_channels`` defaults to the input channels. ``causal=True`` lets each step attend
    only to earlier steps. With ``has_padding_mask=True`` the layer gets a second input port,
    ``mask``: (N, T) or (N, T, 1), 1 for data and 0 for padding; padded steps are not attended.

    Example:
        >>> import torch
        >>> layer = SelfAttention(num_heads=2, causal=True)
        >>> layer.build([(None, 8)])
        >>> layer(torch.zeros(3, 5, 8)).shape
        torch.Size([3, 5, 8])
    """

    def __init__(
        self,
        num_heads: int,
        *,
        key_channels: int | None = None,
        output_channels: int | None = None,
        causal: bool = False,
        has_padding_mask: bool = False,
        dropout: float = 0.0,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.num_heads = check_positive_int(
            "SelfAttention", "num_heads", num_heads, "SelfAttention(4)"
        )
        for option, value in (("key_channels", key_channels), ("output_channels", output_channels)):
            if value is not None:
                check_positive_int("SelfAttention", option, value, f"SelfAttention(4, {option}=64)")
        if key_channels is not None and key_channels % num_heads:
            raise OptionError(
                f"SelfAttention: `key_channels` ({key_channels}) must be divisible by "
                f"`num_heads` ({num_heads})."
            )
        self.key_channels = key_channels
        self.output_channels = output_channels
        self.causal = bool(causal)
        self.has_padding_mask = bool(has_padding_mask)
        self.dropout = check_probability("SelfAttention", "dropout", dropout)
        if self.has_padding_mask:
            self.input_names = ("in", "mask")

    def _sizes(self, channels: int) -> tuple[int, int]:
        keys = self.key_channels or channels
        if keys % self.num_heads:
            raise SizeMismatchError(
                f"SelfAttention: {keys} key channels (the input's channel count) cannot be split "
                f"into {self.num_heads} heads; set key_channels to a multiple of num_heads."
            )
        return keys, self.output_channels or channels

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        shape = input_shapes[0]
        require_rank(self, shape, [2], "sequences (T, C)")
        known(self, shape, [1], "number of channels")
        _, out = self._sizes(int(shape[1]))  # type: ignore[arg-type]
        if self.has_padding_mask:
            mask = input_shapes[1]
            if len(mask) not in (1, 2) or (len(mask) == 2 and mask[1] != 1):
                raise SizeMismatchError(
                    f"SelfAttention: the mask input must be (T,) or (T, 1); received "
                    f"{format_shape(mask)}."
                )
        return (shape[0], out)

    def build(self, input_shapes: list[Shape]) -> None:
        self.output_shape(input_shapes)
        channels = int(input_shapes[0][1])  # type: ignore[arg-type]
        keys, out = self._sizes(channels)
        for part in ("query", "key", "value"):
            weight = nn.Parameter(torch.empty(keys, channels))
            nn.init.xavier_uniform_(weight)
            setattr(self, f"{part}_weight", weight)
            setattr(self, f"{part}_bias", nn.Parameter(torch.zeros(keys)))
        self.output_weight = nn.Parameter(torch.empty(out, keys))
        nn.init.xavier_uniform_(self.output_weight)
        self.output_bias = nn.Parameter(torch.zeros(out))
        super().build(input_shapes)

    def _attention_mask(self, mask: torch.Tensor | None, length: int) -> torch.Tensor | None:
        if mask is None:
            return None
        keep = (mask.reshape(mask.shape[0], -1) != 0)[:, None, None, :]  # (N, 1, 1, T)
        if self.causal:
            causal = torch.ones(length, length, dtype=torch.bool, device=keep.device).tril()
            keep = keep & causal
        return keep | ~keep.any(-1, keepdim=True)  # rows with nothing to attend stay finite

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        n, t, _ = x.shape
        heads = self.num_heads

        def split(weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
            return F.linear(x, weight, bias).view(n, t, heads, -1).transpose(1, 2)

        q = split(self.query_weight, self.query_bias)
        k = split(self.key_weight, self.key_bias)
        v = split(self.value_weight, self.value_bias)
        attn_mask = self._attention_mask(mask, t)
        y = F.scaled_dot_product_attention(
            q, k, v,
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=self.causal and attn_mask is None,
        )  # fmt: skip
        y = y.transpose(1, 2).reshape(n, t, -1)
        return F.linear(y, self.output_weight, self.output_bias)


MASK_PORTS = ("query_mask", "value_mask", "key_mask", "attention_mask")
"""The mask ports a :class:`CrossAttention` may have, in the order they follow its inputs."""


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
                check_mask(self, shape, port)
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
