"""What the traced graph computes, seen from outside: tensor sizes, returned structures and
the input layers that declare the example inputs (with the sizes left free)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx

from deeptoolbox import layers as L
from deeptoolbox.layers._input import InputLayer, TensorInput


@dataclass(frozen=True)
class Meta:
    """Size and dtype of one tensor seen while running the traced graph."""

    shape: tuple[int, ...]
    dtype: torch.dtype


def describe(value: Any) -> Any:
    """A Meta for a tensor, the same structure of Metas for tuples and dicts, else a copy.

    Example:
        >>> describe((torch.zeros(2, 3), {"h": torch.zeros(1)}))
        (Meta(shape=(2, 3), dtype=torch.float32), {'h': Meta(shape=(1,), dtype=torch.float32)})
    """
    if isinstance(value, torch.Tensor):
        return Meta(tuple(value.shape), value.dtype)
    if isinstance(value, tuple | list) and any(_holds_tensor(v) for v in value):
        return tuple(describe(v) for v in value)
    if isinstance(value, dict) and any(_holds_tensor(v) for v in value.values()):
        return {k: describe(v) for k, v in value.items()}
    return copy.copy(value)


def _holds_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, tuple | list):
        return any(_holds_tensor(v) for v in value)
    return isinstance(value, dict) and any(_holds_tensor(v) for v in value.values())


def is_structure(value: Any) -> bool:
    """A recorded tuple or dict result holding tensors (an LSTM's ``(output, (h, c))``).

    Example:
        >>> is_structure(describe((torch.zeros(1), (torch.zeros(1),)))), is_structure(3)
        (True, False)
    """
    return isinstance(value, tuple | dict) and _holds_tensor_meta(value)


def _holds_tensor_meta(value: Any) -> bool:
    if isinstance(value, Meta):
        return True
    items = value.values() if isinstance(value, dict) else value
    return isinstance(value, tuple | dict) and any(_holds_tensor_meta(v) for v in items)


def output_leaves(value: Any, leaf: type | tuple = (fx.Node, torch.Tensor)) -> list | None:
    """``[(path, leaf)]`` for a returned value: a leaf, or tuples, lists and dicts of them.

    Returns None when the value holds anything else (None, numbers...).

    Example:
        >>> t = torch.zeros(1)
        >>> [path for path, _ in output_leaves((t, {"h": t, "c": t}))]
        [(0,), (1, 'h'), (1, 'c')]
    """
    if isinstance(value, leaf):
        return [((), value)]
    if isinstance(value, tuple | list) and value:
        items = list(enumerate(value))
    elif isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
        items = list(value.items())
    else:
        return None
    found = []
    for key, item in items:
        inner = output_leaves(item, leaf)
        if inner is None:
            return None
        found.extend(((key, *path), x) for path, x in inner)
    return found


def output_label(path: tuple) -> str:
    """The name of the output layer for a path into the returned value.

    Example:
        >>> output_label((1, 0)), output_label(("logits",)), output_label(())
        ('output_2_1', 'logits', 'output_1')
    """
    if not path:
        return "output_1"
    parts = [str(k) if isinstance(k, str) else str(k + 1) for k in path]
    return "_".join(parts) if isinstance(path[0], str) else "output_" + "_".join(parts)


def input_layer(
    meta: Meta, free: tuple[int, ...] = (), *, token_ids: bool = False
) -> InputLayer | None:
    """The input layer that declares a tensor's example size (batch free), or None.

    ``free`` lists dimensions (batch included, as ``torch.export`` counts them) left free:
    a sequence's length, an image's height and width (images with free sizes are declared
    with a ``TensorInput``, as ``import_onnx`` does). Integer (N, T) inputs are a
    ``SequenceInput(1)`` when only embeddings read them (``token_ids``), else a
    ``TensorInput`` that passes them on unchanged (masks, indices).

    Example:
        >>> input_layer(Meta((2, 3, 8, 8), torch.float32))
        ImageInput(size=(3, 8, 8))
        >>> input_layer(Meta((2, 3, 8, 8), torch.float32), free=(2, 3))
        TensorInput(size=(3, None, None))
    """
    size = tuple(None if k + 1 in free else d for k, d in enumerate(meta.shape[1:]))
    integers = not meta.dtype.is_floating_point
    if len(size) == 1 and (integers or size[0] is None):
        return L.SequenceInput(1, length=size[0]) if token_ids else TensorInput(size)
    if len(size) == 1:
        return L.FeatureInput(size[0])
    if len(size) == 2 and size[1] is not None:
        return L.SequenceInput(size[1], length=size[0])
    if len(size) in (3, 4) and None not in size:
        return L.ImageInput(size) if len(size) == 3 else L.VolumeInput(size)
    return TensorInput(size) if 2 <= len(size) <= 4 else None


def free_candidates(meta: Meta) -> tuple[int, ...]:
    """The dimensions that can be free by default: lengths, heights, widths (not channels).

    Example:
        >>> free_candidates(Meta((2, 3, 8, 8), torch.float32)), free_candidates(Meta((2, 5), torch.int64))
        ((2, 3), (1,))
    """
    rank, integers = len(meta.shape), not meta.dtype.is_floating_point
    if rank == 2:
        return (1,) if integers else ()
    return {3: (1,), 4: (2, 3), 5: (2, 3, 4)}.get(rank, ())


def resized(x: torch.Tensor, free: tuple[int, ...]) -> torch.Tensor:
    """``x`` with its free dimensions grown, keeping the powers of two they are divisible by.

    A size ``s`` becomes ``s + 2**k`` for the largest ``2**k`` dividing it (32 -> 64, 224 ->
    256, 7 -> 8), so networks that halve sizes several times still divide evenly.

    Example:
        >>> resized(torch.zeros(1, 3, 224, 32), (2, 3)).shape
        torch.Size([1, 3, 256, 64])
    """
    grown = x
    for axis in free:  # the last step repeated: same dtype, valid token ids, padding at the end
        size = x.shape[axis]
        steps = torch.arange(size + (size & -size), device=x.device).clamp(max=size - 1)
        grown = grown.index_select(axis, steps)
    return grown
