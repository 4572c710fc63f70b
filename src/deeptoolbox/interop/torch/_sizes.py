"""Which input sizes a network converted by ``from_torch`` leaves free (``dynamic_dims``).

By default (``dynamic_dims="auto"``) the lengths of sequences and token ids are candidates;
with ``dynamic_dims="all"`` image and volume sizes too (their input layer is then a
``TensorInput``: an ``ImageInput`` declares a fixed size, which image tools resize to). The
module is run once more with those sizes grown (32 -> 64, 224 -> 256, 7 -> 8) and, if it runs,
the conversion records which values follow them (sizes read in ``view`` calls...) and checks
that the network reproduces the module at both sizes. Sizes that cannot be freed stay as in the
example (the network then refuses other sizes with an ``InputSizeError``; graphs recorded
through ``torch.export`` always keep them). An explicit ``dynamic_dims={0: (2, 3)}`` frees
exactly those dimensions, or fails saying why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from deeptoolbox.errors import OptionError
from deeptoolbox.interop.torch._values import Meta, free_candidates, output_leaves, resized

_WHAT = {3: "the length", 4: "the height and width", 5: "the depth, height and width"}


@dataclass
class Sizes:
    """The free dimensions asked for, the grown example inputs and the module's outputs there."""

    free: dict[int, tuple[int, ...]] = field(default_factory=dict)
    explicit: bool = False
    inputs: tuple[torch.Tensor, ...] = ()
    expected: list[torch.Tensor] = field(default_factory=list)

    def describe(self, inputs: tuple[torch.Tensor, ...]) -> str:
        """``input 1: (1, 3, 32, 32) -> (1, 3, 64, 64)`` for each input with free dimensions."""
        return "; ".join(
            f"input {k}: {tuple(inputs[k].shape)} -> {tuple(self.inputs[k].shape)}"
            for k in self.free
        )


def requested(dynamic_dims: Any, inputs: tuple[torch.Tensor, ...]) -> Sizes:
    """Check ``dynamic_dims`` against the example inputs; the candidates to free.

    Example:
        >>> requested("auto", (torch.zeros(1, 3, 8, 8), torch.zeros(1, 5, 2))).free
        {1: (1,)}
        >>> requested("all", (torch.zeros(1, 3, 8, 8),)).free
        {0: (2, 3)}
        >>> requested({0: 2}, (torch.zeros(1, 3, 8, 8),)).free
        {0: (2,)}
    """
    if isinstance(dynamic_dims, str) and dynamic_dims in ("auto", "all"):
        found = {k: free_candidates(Meta(tuple(x.shape), x.dtype)) for k, x in enumerate(inputs)}
        if dynamic_dims == "auto":  # lengths only: images keep the size their layer declares
            found = {k: v for k, v in found.items() if inputs[k].dim() <= 3}
        return Sizes({k: v for k, v in found.items() if v})
    if dynamic_dims is None:
        return Sizes()
    if not isinstance(dynamic_dims, Mapping):
        raise OptionError(
            "from_torch: `dynamic_dims` must be 'auto' (sequence lengths), 'all' (image sizes "
            "too), None (every size but the batch fixed) or a dict of input index -> "
            f"dimensions to leave free. Received: dynamic_dims={dynamic_dims!r}. Example: "
            "dynamic_dims={0: (2, 3)} frees the height and width of image input 0."
        )
    free: dict[int, tuple[int, ...]] = {}
    for index, dims in dynamic_dims.items():
        if not isinstance(index, int) or not 0 <= index < len(inputs):
            raise OptionError(
                f"from_torch: `dynamic_dims` names input {index!r}; the module takes "
                f"{len(inputs)} input(s), numbered from 0."
            )
        dims = (
            (dims,) if isinstance(dims, int) else tuple(dims) if isinstance(dims, Iterable) else ()
        )
        x = inputs[index]
        allowed = free_candidates(Meta(tuple(x.shape), x.dtype))
        wrong = [d for d in dims if not isinstance(d, int) or d % x.dim() not in allowed]
        if wrong or not dims:
            raise OptionError(
                f"from_torch: `dynamic_dims` asks input {index} (size {tuple(x.shape)}) to leave "
                f"dimension(s) {list(dims)} free; it can leave free {list(allowed) or 'none'} "
                f"({_WHAT.get(x.dim(), 'no size: features and channels are fixed')}, batch "
                "included in the count; the batch is always free)."
            )
        free[index] = tuple(sorted({d % x.dim() for d in dims}))
    return Sizes(free, explicit=True)


def probe(module: nn.Module, inputs: tuple[torch.Tensor, ...], sizes: Sizes, count: int) -> Sizes:
    """Run the module at the grown sizes; without success, nothing is freed (or, asked, fail)."""
    if not sizes.free:
        return sizes
    sizes.inputs = tuple(resized(x, sizes.free.get(k, ())) for k, x in enumerate(inputs))
    try:
        with torch.no_grad():
            leaves = output_leaves(module(*sizes.inputs), torch.Tensor)
        if leaves is None or len(leaves) != count:
            raise ValueError("it returns a different structure of outputs")
        sizes.expected = [x for _, x in leaves]
    except Exception as err:  # noqa: BLE001 - any failure: the module has fixed sizes
        if sizes.explicit:
            raise OptionError(
                f"from_torch: {type(module).__name__} does not run with the sizes "
                f"`dynamic_dims` frees ({sizes.describe(inputs)}): {type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}. Leave them fixed "
                "(dynamic_dims=None) or give the sizes the module runs at."
            ) from err
        return Sizes()
    return sizes


def give_up(module: nn.Module, inputs: tuple[torch.Tensor, ...], sizes: Sizes, why: str) -> None:
    """The module runs at other sizes but the network cannot: raise if they were asked for."""
    if sizes.explicit:
        raise OptionError(
            f"from_torch: `dynamic_dims` asks for free sizes, and {type(module).__name__} runs "
            f"at other sizes ({sizes.describe(inputs)}), but {why}. Leave them fixed with "
            "dynamic_dims=None."
        )
