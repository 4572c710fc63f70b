"""Transformer layers of MATLAB's list: PatchEmbedding, SinusoidalPositionEncoding, Attention,
EmbeddingConcatenation and Indexing1d.

Sequences are (N, T, C) as everywhere in the toolbox; PatchEmbedding turns images (N, C, H, W)
and volumes (N, C, D, H, W) into such sequences of patch tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deeptoolbox.errors import InputSizeError, OptionError, SizeMismatchError
from deeptoolbox.layers._attention import sinusoidal_table
from deeptoolbox.layers._base import (
    Layer,
    Shape,
    as_tuple,
    check_choice,
    check_positive_int,
    check_probability,
    format_shape,
    known,
    register_layer,
    require_rank,
)

_CONVOLUTION = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _exporting() -> bool:
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()


@register_layer
class PatchEmbedding(Layer):
    """Cut images into patches and map each patch to a token (MATLAB's patchEmbeddingLayer).

    Images (N, C, H, W) give sequences (N, T, output_channels) with T = (H/ph) * (W/pw)
    tokens in row-major order (row of patches after row of patches, as ViT does); volumes
    (N, C, D, H, W) likewise with 3-D patches; sequences (N, T, C) are cut along time into
    (N, T/p, output_channels). Each token is a learned linear map of its patch plus a bias (a
    convolution whose stride is its kernel). The patch size must divide the input's size.

    Example:
        >>> import torch
        >>> layer = PatchEmbedding(4, 16)
        >>> layer.output_shape([(3, 8, 12)])
        (6, 16)
        >>> layer.build([(3, 8, 12)])
        >>> layer(torch.zeros(2, 3, 8, 12)).shape
        torch.Size([2, 6, 16])
    """

    def __init__(
        self,
        patch_size: int | Sequence[int],
        output_channels: int,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if isinstance(patch_size, int) and not isinstance(patch_size, bool):
            check_positive_int(
                "PatchEmbedding", "patch_size", patch_size, "PatchEmbedding(16, 768)"
            )
        elif not (isinstance(patch_size, Sequence) and len(patch_size) in (1, 2, 3)):
            raise OptionError(
                "PatchEmbedding: `patch_size` must be a positive int or a sequence of 1 to 3 "
                f"positive ints. Received: patch_size={patch_size!r}. Example: "
                "PatchEmbedding((16, 16), 768)."
            )
        else:
            as_tuple("PatchEmbedding", "patch_size", patch_size, len(patch_size))
        self.patch_size = patch_size if isinstance(patch_size, int) else tuple(patch_size)
        self.output_channels = check_positive_int(
            "PatchEmbedding", "output_channels", output_channels, "PatchEmbedding(16, 768)"
        )

    def _patch(self, spatial: int) -> tuple[int, ...]:
        if isinstance(self.patch_size, int):
            return (self.patch_size,) * spatial
        if len(self.patch_size) != spatial:
            raise SizeMismatchError(
                f"PatchEmbedding: patch_size={self.patch_size} has {len(self.patch_size)} "
                f"sizes but the input has {spatial} spatial axes."
            )
        return self.patch_size

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        rank = require_rank(self, shape, [2, 3, 4], "sequences (T, C), images or volumes")
        known(self, shape, [1] if rank == 2 else range(rank), "size")
        spatial = shape[:1] if rank == 2 else shape[1:]
        patch = self._patch(len(spatial))
        if any(s is not None and s % p for s, p in zip(spatial, patch, strict=True)):
            raise SizeMismatchError(
                f"PatchEmbedding: patches of size {patch} do not tile an input of size "
                f"{format_shape(shape)}. Resize or crop the input to a multiple of the patch."
            )
        if spatial[0] is None:
            return (None, self.output_channels)
        tokens = math.prod(int(s) // p for s, p in zip(spatial, patch, strict=True))
        return (tokens, self.output_channels)

    def build(self, input_shapes: list[Shape]) -> None:
        self.output_shape(input_shapes)
        shape = input_shapes[0]
        channels = int(shape[1] if len(shape) == 2 else shape[0])  # type: ignore[arg-type]
        patch = self._patch(1 if len(shape) == 2 else len(shape) - 1)
        self.weight = nn.Parameter(torch.empty(self.output_channels, channels, *patch))
        nn.init.xavier_uniform_(self.weight)
        self.bias = nn.Parameter(torch.zeros(self.output_channels))
        super().build(input_shapes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:  # sequences (N, T, C): patches along time
            x = x.transpose(1, 2)
        spatial = self.weight.dim() - 2
        y = _CONVOLUTION[spatial](x, self.weight, self.bias, stride=self.weight.shape[2:])
        return y.flatten(2).transpose(1, 2)


@register_layer
class SinusoidalPositionEncoding(Layer):
    """Fixed sine/cosine position encodings of sequences (MATLAB's
    sinusoidalPositionEncodingLayer).

    For input (N, T, C) the encoding of step t (0-based) and channel pair (2i, 2i+1) is
    ``sin(t / 10000^(2i/D))``, ``cos(t / 10000^(2i/D))`` with D = ``output_channels``
    (default: C). ``combine="add"`` (default) returns input + encoding, so the layer fits in
    a chain (D must be C); ``combine="none"`` returns the encoding alone (N, T, D), as
    MATLAB's layer does, for an :class:`Addition` elsewhere. Sequences of any length work.

    Example:
        >>> import torch
        >>> layer = SinusoidalPositionEncoding(combine="none")
        >>> layer(torch.zeros(1, 3, 4))[0, 1].tolist() == sinusoidal_table(3, 4)[1].tolist()
        True
    """

    def __init__(
        self,
        output_channels: int | None = None,
        *,
        combine: str = "add",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        kind = "SinusoidalPositionEncoding"
        if output_channels is not None:
            check_positive_int(kind, "output_channels", output_channels, f"{kind}(64)")
        self.output_channels = output_channels
        self.combine = check_choice(kind, "combine", combine, ("add", "none"))

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        require_rank(self, shape, [2], "sequences (T, C)")
        known(self, shape, [1], "number of channels")
        channels = self.output_channels or int(shape[1])  # type: ignore[arg-type]
        if self.combine == "add" and channels != shape[1]:
            raise SizeMismatchError(
                f"SinusoidalPositionEncoding: combine='add' needs output_channels equal to the "
                f"input's {shape[1]} channels; received output_channels={channels}. Use "
                "combine='none' for an encoding of another width."
            )
        return (shape[0], channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = self.output_channels or x.shape[2]
        table = sinusoidal_table(x.shape[1], channels).to(dtype=x.dtype, device=x.device)
        if self.combine == "add":
            return x + table
        return table.unsqueeze(0).expand(x.shape[0], -1, -1)


@register_layer
class Attention(Layer):
    """Multi-head scaled dot-product attention of queries over keys and values (MATLAB's
    attentionLayer); no learnable parameters.

    Ports ``query`` (N, T, Ck), ``key`` (N, S, Ck) and ``value`` (N, S, Cv), plus ``mask``
    (N, S) with ``has_padding_mask=True`` (1 for data, 0 for padded keys). Channels are split
    into ``num_heads`` equal heads; each head computes
    ``softmax(scale * q k^T) v`` and the heads are concatenated: output (N, T, Cv).
    ``scale="auto"`` is 1/sqrt(Ck/num_heads). ``attention_mask="causal"`` lets query t
    attend only keys 0..t. Put :class:`Dense` layers before the ports for learned projections
    (query from one input, keys and values from another: cross-attention).

    Example:
        >>> import torch
        >>> layer = Attention(2)
        >>> layer.output_shape([(5, 8), (7, 8), (7, 6)])
        (5, 6)
        >>> q, k, v = torch.randn(1, 5, 8), torch.randn(1, 7, 8), torch.randn(1, 7, 6)
        >>> layer(q, k, v).shape
        torch.Size([1, 5, 6])
    """

    def __init__(
        self,
        num_heads: int = 1,
        *,
        scale: float | str = "auto",
        attention_mask: str = "none",
        has_padding_mask: bool = False,
        dropout: float = 0.0,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.num_heads = check_positive_int("Attention", "num_heads", num_heads, "Attention(4)")
        if scale != "auto" and (isinstance(scale, bool) or not isinstance(scale, int | float)):
            raise OptionError(
                f"Attention: `scale` must be 'auto' or a number. Received: scale={scale!r}."
            )
        self.scale = scale if scale == "auto" else float(scale)
        self.attention_mask = check_choice(
            "Attention", "attention_mask", attention_mask, ("none", "causal")
        )
        self.has_padding_mask = bool(has_padding_mask)
        self.dropout = check_probability("Attention", "dropout", dropout)
        self.input_names = ("query", "key", "value", *(("mask",) if has_padding_mask else ()))

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        query, key, value = input_shapes[:3]
        for port, shape in zip(self.input_names, (query, key, value), strict=False):
            if len(shape) != 2 or shape[1] is None:
                raise SizeMismatchError(
                    f"Attention: the {port} input must be sequences (T, C) with a known channel "
                    f"count; received {format_shape(shape)}."
                )
            if shape[1] % self.num_heads:
                raise SizeMismatchError(
                    f"Attention: the {port} input's {shape[1]} channels cannot be split into "
                    f"{self.num_heads} heads."
                )
        if query[1] != key[1]:
            raise SizeMismatchError(
                f"Attention: queries and keys need the same channel count; received query "
                f"{format_shape(query)} and key {format_shape(key)}."
            )
        if None not in (key[0], value[0]) and key[0] != value[0]:
            raise SizeMismatchError(
                f"Attention: keys and values need the same length; received key "
                f"{format_shape(key)} and value {format_shape(value)}."
            )
        if self.has_padding_mask:
            mask = input_shapes[3]
            if len(mask) not in (1, 2) or (len(mask) == 2 and mask[1] != 1):
                raise SizeMismatchError(
                    f"Attention: the mask input must be (S,) or (S, 1); received "
                    f"{format_shape(mask)}."
                )
        return (query[0], value[1])

    def _scale(self, key_channels: int) -> float:
        if self.scale == "auto":
            return 1.0 / math.sqrt(key_channels / self.num_heads)
        return float(self.scale)

    def _mask(self, mask: torch.Tensor | None, t: int, s: int) -> torch.Tensor | None:
        if mask is None:
            return None
        keep = (mask.reshape(mask.shape[0], -1) != 0)[:, None, None, :]  # (N, 1, 1, S)
        if self.attention_mask == "causal":
            keep = keep & torch.ones(t, s, dtype=torch.bool, device=keep.device).tril()
        return keep | ~keep.any(-1, keepdim=True)  # rows with nothing to attend stay finite

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        n, t, s, heads = query.shape[0], query.shape[1], key.shape[1], self.num_heads
        if value.shape[1] != s:
            raise InputSizeError(
                f"Attention '{self.name}': keys of length {s} and values of length "
                f"{value.shape[1]}; both must have the same length."
            )

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(n, x.shape[1], heads, -1).transpose(1, 2)

        attn_mask = self._mask(mask, t, s)
        y = F.scaled_dot_product_attention(
            split(query), split(key), split(value),
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=self.attention_mask == "causal" and attn_mask is None,
            scale=self._scale(query.shape[2]),
        )  # fmt: skip
        return y.transpose(1, 2).reshape(n, t, -1)


@register_layer
class EmbeddingConcatenation(Layer):
    """Prepend a learned token to every sequence: (N, T, C) -> (N, T+1, C) (MATLAB's
    embeddingConcatenationLayer, the class token of vision transformers).

    Example:
        >>> import torch
        >>> layer = EmbeddingConcatenation()
        >>> layer.build([(6, 4)])
        >>> y = layer(torch.zeros(2, 6, 4))
        >>> y.shape, bool((y[:, 0] == layer.weight).all())
        (torch.Size([2, 7, 4]), True)
    """

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        require_rank(self, shape, [2], "sequences (T, C)")
        known(self, shape, [1], "number of channels")
        return (None if shape[0] is None else shape[0] + 1, shape[1])

    def build(self, input_shapes: list[Shape]) -> None:
        self.output_shape(input_shapes)
        channels = int(input_shapes[0][1])  # type: ignore[arg-type]
        self.weight = nn.Parameter(torch.randn(channels) * 0.01)  # MATLAB's narrow-normal
        super().build(input_shapes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        token = self.weight.to(x.dtype).expand(x.shape[0], 1, -1)
        return torch.cat([token, x], dim=1)


@register_layer
class Indexing1d(Layer):
    """Pick one time step of sequences: (N, T, C) -> (N, C) (MATLAB's indexing1dLayer).

    ``index`` is ``"first"``, ``"last"`` or a 0-based int (negative counts from the end, as
    in Python).

    Example:
        >>> import torch
        >>> x = torch.arange(6.0).reshape(1, 3, 2)
        >>> Indexing1d("last")(x).tolist(), Indexing1d(1)(x).tolist()
        ([[4.0, 5.0]], [[2.0, 3.0]])
    """

    def __init__(self, index: int | str = "first", *, name: str | None = None) -> None:
        super().__init__(name=name)
        if not (
            index in ("first", "last") or (isinstance(index, int) and not isinstance(index, bool))
        ):
            raise OptionError(
                "Indexing1d: `index` must be 'first', 'last' or an int (0-based, negative "
                f"from the end). Received: index={index!r}. Example: Indexing1d('last')."
            )
        self.index = index

    @property
    def position(self) -> int:
        """The index as an int: 0 for "first", -1 for "last"."""
        return {"first": 0, "last": -1}.get(self.index, self.index)  # type: ignore[arg-type]

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        require_rank(self, shape, [2], "sequences (T, C)")
        length = shape[0]
        if length is not None and not -length <= self.position < length:
            raise SizeMismatchError(
                f"Indexing1d: index {self.index!r} is outside sequences of length {length}."
            )
        return (shape[1],)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        if not _exporting() and not -length <= self.position < length:
            raise InputSizeError(
                f"Indexing1d '{self.name}': index {self.index!r} is outside a sequence of "
                f"length {length}."
            )
        return x[:, self.position]
