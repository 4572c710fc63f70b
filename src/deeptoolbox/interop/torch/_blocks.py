"""Torch modules that become several toolbox layers: transformer encoders and attention.

``nn.TransformerEncoderLayer`` (post- or pre-norm, relu or gelu, batch first), a stack of them
in ``nn.TransformerEncoder`` (with its final norm) and ``nn.MultiheadAttention`` used as
self-attention (the same tensor as query, key and value) map onto ``SelfAttention``,
``LayerNorm``, ``Dense``, activation, ``Dropout`` and ``Addition`` layers, with the weights
copied (``in_proj_weight`` split into the query, key and value weights), so the network saves,
exports and is analyzed like one built from those layers. A boolean ``src_key_padding_mask``
/ ``key_padding_mask`` (True for padding) is turned into the ``mask`` input of
``SelfAttention`` (1 for data) by a ``torch.logical_not`` layer. ``nn.TransformerEncoder``
running on nested tensors (its fast path, in evaluation with a padding mask) gives zeros at
padded steps: so does the network in evaluation (a ``ModeSwitch`` keeps the training values).
Anything else (attention masks, ``kdim``/``vdim``, ``add_bias_kv``, other activations) is left
to the generic conversion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from deeptoolbox import layers as L
from deeptoolbox.interop._operators import TorchFunction
from deeptoolbox.interop.torch._map import Call, Loader, Part
from deeptoolbox.layers._combine import ModeSwitch

Source = int | str  # a port of the traced call (its k-th input), or an earlier entry's suffix


@dataclass
class Block:
    """Layers standing for one traced call: (suffix, layer, sources, tensors to copy)."""

    entries: list[tuple[str, nn.Module, list[Source], Loader]] = field(default_factory=list)

    def add(self, suffix: str, layer: nn.Module, sources: list[Source], load: Loader = None) -> str:
        """Append a layer; returns its suffix (to use as a source)."""
        self.entries.append((suffix, layer, sources, load))
        return suffix


def _copy(tensors: dict[str, Any]) -> Loader:
    return {key: value for key, value in tensors.items() if value is not None}


def _given(call: Call, names: tuple[str, ...]) -> dict[str, Any]:
    return dict(zip(names, call.arguments, strict=False)) | call.keywords


def _plain_attention(m: nn.MultiheadAttention) -> bool:
    return (
        m.batch_first
        and m._qkv_same_embed_dim
        and m.in_proj_bias is not None
        and m.out_proj.bias is not None
        and m.bias_k is None
        and not m.add_zero_attn
    )


def _plain_norm(m: nn.Module) -> bool:
    return (
        isinstance(m, nn.LayerNorm)
        and len(m.normalized_shape) == 1
        and m.elementwise_affine
        and m.bias is not None
    )


def _attention(
    block: Block, prefix: str, m: nn.MultiheadAttention, x: Source, mask: Source | None,
    suffix: str = "self_attn",
) -> str:  # fmt: skip
    embed = m.embed_dim
    layer = L.SelfAttention(m.num_heads, has_padding_mask=mask is not None, dropout=m.dropout)
    load: Loader = {}
    for k, part in enumerate(("query", "key", "value")):
        load[f"{part}_weight"] = Part(m.in_proj_weight, k * embed, (k + 1) * embed)
        load[f"{part}_bias"] = Part(m.in_proj_bias, k * embed, (k + 1) * embed)
    load |= {"output_weight": m.out_proj.weight, "output_bias": m.out_proj.bias}
    return block.add(f"{prefix}{suffix}", layer, [x] if mask is None else [x, mask], load)


def _norm(block: Block, suffix: str, m: nn.LayerNorm, x: Source) -> str:
    return block.add(
        suffix, L.LayerNorm(epsilon=m.eps), [x], _copy({"weight": m.weight, "bias": m.bias})
    )


def _linear(block: Block, suffix: str, m: nn.Linear, x: Source) -> str:
    layer = L.Dense(m.out_features, bias=m.bias is not None)
    return block.add(suffix, layer, [x], _copy({"weight": m.weight, "bias": m.bias}))


def _dropout(block: Block, suffix: str, p: float, x: Source) -> str:
    return block.add(suffix, L.Dropout(p), [x]) if p > 0 else x  # type: ignore[return-value]


def _feed_forward(block: Block, prefix: str, m: nn.TransformerEncoderLayer, x: Source) -> str:
    h = _linear(block, f"{prefix}linear1", m.linear1, x)
    act = L.ReLU() if m.activation_relu_or_gelu == 1 else L.GELU()
    h = block.add(f"{prefix}activation", act, [h])
    h = _dropout(block, f"{prefix}dropout", m.dropout.p, h)
    h = _linear(block, f"{prefix}linear2", m.linear2, h)
    return _dropout(block, f"{prefix}dropout2", m.dropout2.p, h)


def _encoder_layer(
    block: Block, prefix: str, m: nn.TransformerEncoderLayer, x: Source, mask: Source | None
) -> str:
    if m.norm_first:
        h = _norm(block, f"{prefix}norm1", m.norm1, x)
        h = _dropout(
            block,
            f"{prefix}dropout1",
            m.dropout1.p,
            _attention(block, prefix, m.self_attn, h, mask),
        )
        x = block.add(f"{prefix}add1", L.Addition(), [x, h])
        h = _feed_forward(block, prefix, m, _norm(block, f"{prefix}norm2", m.norm2, x))
        return block.add(f"{prefix}add2", L.Addition(), [x, h])
    h = _dropout(
        block, f"{prefix}dropout1", m.dropout1.p, _attention(block, prefix, m.self_attn, x, mask)
    )
    x = _norm(block, f"{prefix}norm1", m.norm1, block.add(f"{prefix}add1", L.Addition(), [x, h]))
    h = _feed_forward(block, prefix, m, x)
    return _norm(block, f"{prefix}norm2", m.norm2, block.add(f"{prefix}add2", L.Addition(), [x, h]))


def _plain_layer(m: nn.Module) -> bool:
    return (
        isinstance(m, nn.TransformerEncoderLayer)
        and m.activation_relu_or_gelu in (1, 2)
        and _plain_attention(m.self_attn)
        and _plain_norm(m.norm1)
        and _plain_norm(m.norm2)
        and isinstance(m.linear1, nn.Linear)
        and isinstance(m.linear2, nn.Linear)
    )


def _keep_mask(block: Block, port: int) -> str:
    return block.add("keep", TorchFunction("torch.logical_not", input_dtypes=["bool"]), [port])


def _mask_port(given: dict[str, Any], key: str, dtypes: list[str]) -> int | None | bool:
    """The port of a boolean padding mask, None without one, False for what is not supported."""
    value = given.get(key)
    if value is None:
        return None
    if isinstance(value, dict) and set(value) == {"input"} and dtypes[value["input"]] == "bool":
        return value["input"]
    return False


def map_block(module: nn.Module, call: Call, dtypes: list[str], index: Any) -> Block | None:
    """The layers standing for a transformer encoder (layer) or self-attention call, or None.

    Example:
        >>> layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
        >>> call = Call([{"input": 0}], {}, [(2, 5, 8)], (2, 5, 8))
        >>> [suffix for suffix, *_ in map_block(layer, call, ["float32"], None).entries][:3]
        ['self_attn', 'dropout1', 'add1']
    """
    if call.rank != 3 or dtypes[:1] != ["float32"]:
        return None
    if isinstance(module, nn.MultiheadAttention) and index == 0:
        return _map_attention(module, call, dtypes)
    if index is not None:
        return None
    if isinstance(module, nn.TransformerEncoderLayer) and _plain_layer(module):
        given = _given(call, ("src", "src_mask", "src_key_padding_mask", "is_causal"))
        return _map_stack(given, [("", module)], None, dtypes, nested=False)
    if isinstance(module, nn.TransformerEncoder) and all(_plain_layer(m) for m in module.layers):
        if module.norm is not None and not _plain_norm(module.norm):
            return None
        given = _given(call, ("src", "mask", "src_key_padding_mask", "is_causal"))
        layers = [(f"layers_{k}_", m) for k, m in enumerate(module.layers)]
        return _map_stack(given, layers, module.norm, dtypes, nested=module.use_nested_tensor)
    return None


def _map_stack(
    given: dict[str, Any], layers: list, norm: nn.Module | None, dtypes: list[str], *, nested: bool
) -> Block | None:
    mask = _mask_port(given, "src_key_padding_mask", dtypes)
    extra = set(given) - {"src", "src_key_padding_mask", "src_mask", "mask", "is_causal"}
    masked = given.get("src_mask", given.get("mask")) is not None
    if (
        given.get("src") != {"input": 0}
        or mask is False
        or extra
        or masked
        or given.get("is_causal")
    ):
        return None
    block = Block()
    keep = None if mask is None else _keep_mask(block, mask)
    x: Source = 0
    for prefix, layer in layers:
        x = _encoder_layer(block, prefix, layer, x, keep)
    if norm is not None:
        x = _norm(block, "norm", norm, x)
    if nested and mask is not None:
        padded = block.add("padded_zeros", _padded_zeros(), [x, mask])
        block.add("padded", ModeSwitch(), [x, padded])
    return block


def _call(name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"call": name, "args": list(args), "kwargs": kwargs}


def _padded_zeros() -> TorchFunction:
    """Zeros at padded steps when every sequence's padding is at its end (PyTorch's nested-
    tensor fast path of ``nn.TransformerEncoder``, taken in evaluation without gradients)."""
    mask = {"input": 1}
    at_end = _call(
        "torch.Tensor.all",
        _call(
            "operator.ge", _call("torch.Tensor.diff", _call("torch.Tensor.long", mask), dim=1), 0
        ),
    )
    where = _call("operator.and_", _call("torch.Tensor.unsqueeze", mask, -1), at_end)
    return TorchFunction(
        "torch.Tensor.masked_fill", num_inputs=2, mode="evaluation",
        arguments=[{"input": 0}, where, 0.0], input_dtypes=["float32", "bool"],
    )  # fmt: skip


def _map_attention(m: nn.MultiheadAttention, call: Call, dtypes: list[str]) -> Block | None:
    names = ("query", "key", "value", "key_padding_mask", "need_weights", "attn_mask",
             "average_attn_weights", "is_causal")  # fmt: skip
    given = _given(call, names)
    same = given.get("query") == given.get("key") == given.get("value") == {"input": 0}
    mask = _mask_port(given, "key_padding_mask", dtypes)
    unsupported = given.get("attn_mask") is not None or given.get("is_causal")
    if not same or mask is False or unsupported or not _plain_attention(m):
        return None
    block = Block()
    keep = None if mask is None else _keep_mask(block, mask)
    _attention(block, "", m, 0, keep, suffix="")  # named after the module itself
    return block


def is_block(module: nn.Module) -> bool:
    """True for the modules :func:`map_block` may expand (kept whole while tracing).

    Example:
        >>> is_block(nn.TransformerEncoderLayer(8, 2, batch_first=True)), is_block(nn.Linear(2, 2))
        (True, False)
    """
    return isinstance(
        module, nn.TransformerEncoder | nn.TransformerEncoderLayer | nn.MultiheadAttention
    )
