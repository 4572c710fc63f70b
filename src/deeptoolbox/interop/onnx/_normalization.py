"""Constant element-wise affine nodes right after a graph input become input normalization.

Exporters (MATLAB's among them, and torch.onnx for a toolbox input layer) write an input
layer's normalization as ``Sub``/``Add``/``Mul``/``Div`` nodes with a constant operand (one
value, one per channel or one per element) between the graph input and the first layer. At
import such a chain is folded into the input layer: ``x - c`` is ``"zerocenter"`` with mean
``c``; any other ``x * s + b`` (scale ``s`` nowhere zero) is ``"zscore"`` with mean ``-b / s``
and standard deviation ``1 / s`` (negative values allowed), so the network has its
normalization back where MATLAB users expect it, and output bounds treat it as the affine map
it is. Nodes that cannot be folded (a scale of zero, a constant of another shape, an input
that feeds other layers too, a graph output) stay operator layers.
"""

from __future__ import annotations

from typing import Any

import torch

from deeptoolbox import layers as L

__all__ = ["fold_input_normalization", "elementwise_affine"]

_OPS = ("Add", "Sub", "Mul", "Div")
_FOLDABLE_INPUTS = (L.FeatureInput, L.ImageInput, L.VolumeInput)


def elementwise_affine(layer: Any, port: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(scale, offset)`` when ``layer`` is an ONNX Add/Sub/Mul/Div of its input ``port`` and
    a floating constant (output = input * scale + offset); None otherwise.

    Example:
        >>> from deeptoolbox.interop.onnx._layers import OnnxOperator
        >>> op = OnnxOperator("Sub", slots=["in1", "const1"], output_size=(2,),
        ...                   input_sizes=[(2,)],
        ...                   constants={"const1": {"shape": [2], "dtype": "float32"}})
        >>> _ = op.const1.copy_(torch.tensor([1.0, 2.0]))
        >>> [t.tolist() for t in elementwise_affine(op, "in1")]
        [[1.0, 1.0], [-1.0, -2.0]]
    """
    if type(layer).__name__ != "OnnxOperator" or layer.op_type not in _OPS:
        return None
    slots = list(layer.slots)
    if len(slots) != 2 or port not in slots or layer.output_size != _first(layer.input_sizes):
        return None
    other = slots[1 - slots.index(port)]
    constant = getattr(layer, other, None) if other and other.startswith("const") else None
    if not isinstance(constant, torch.Tensor) or not constant.is_floating_point():
        return None
    c = constant.detach().to(torch.float64)
    one, zero = torch.ones_like(c), torch.zeros_like(c)
    first = slots[0] == port
    op = layer.op_type
    if op == "Add":
        return one, c
    if op == "Sub":
        return (one, -c) if first else (-one, c)
    if op == "Mul":
        return c, zero
    if op == "Div" and first and bool((c != 0).all()):
        return 1.0 / c, zero
    return None


def _first(sizes):
    return tuple(sizes[0]) if sizes else None


def _full(value: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor | None:
    """``value`` broadcast to (1, *shape) as (shape); None if it would change the size."""
    try:
        out = torch.broadcast_shapes(value.shape, (1, *shape))
    except RuntimeError:
        return None
    if tuple(out) != (1, *shape):
        return None
    return value.expand(1, *shape)[0].clone()


def _dimension(scale: torch.Tensor, offset: torch.Tensor) -> str:
    """The coarsest normalization_dimension that holds both statistics exactly."""
    both = torch.stack([scale, offset])
    if bool((both == both.flatten(1)[:, :1].reshape(2, *([1] * scale.dim()))).all()):
        return "all"
    if scale.dim() >= 2:
        per_channel = both.flatten(2)
        if bool((per_channel == per_channel[:, :, :1]).all()):
            return "channel"
    return "element" if scale.dim() >= 2 else "channel"


def _statistic(value: torch.Tensor, dimension: str) -> torch.Tensor:
    if dimension == "all":
        return value.flatten()[:1].reshape(())
    if dimension == "channel" and value.dim() >= 2:
        return value.flatten(1)[:, 0].reshape(-1, *([1] * (value.dim() - 1)))
    return value


def _normalized_input(layer, scale: torch.Tensor, offset: torch.Tensor):
    """A copy of input ``layer`` that computes ``x * scale + offset``."""
    dimension = _dimension(scale, offset)
    shape = tuple(layer.shape)
    if bool((scale == 1).all()):
        options = {"normalization": "zerocenter", "mean": _statistic(-offset, dimension)}
    else:
        options = {"normalization": "zscore", "mean": _statistic(-offset / scale, dimension),
                   "std": _statistic(1.0 / scale, dimension)}  # fmt: skip
    options = {k: v.float().numpy() if isinstance(v, torch.Tensor) else v
               for k, v in options.items()}  # fmt: skip
    size = shape[0] if isinstance(layer, L.FeatureInput) else shape
    return type(layer)(size, name=layer.name, normalization_dimension=dimension, **options)


def fold_input_normalization(build: Any, output_values: list[str]) -> list[str]:
    """Fold the constant affine nodes after each graph input of ``build`` into the input
    layer (see the module docstring); returns the names of the folded layers."""
    outputs = {build.values[o].layer for o in output_values if o in build.values}
    folded_all: list[str] = []
    for name, layer in list(build.layers.items()):
        if not isinstance(layer, _FOLDABLE_INPUTS) or layer.normalization != "none":
            continue
        if any(d is None for d in layer.shape):
            continue
        shape = tuple(int(d) for d in layer.shape)
        scale, offset = (
            torch.ones(shape, dtype=torch.float64),
            torch.zeros(shape, dtype=torch.float64),
        )
        current, folded = name, []
        while True:
            step = _next_affine(build, current, outputs, shape)
            if step is None:
                break
            current, s, b = step
            scale, offset = scale * s, offset * s + b
            folded.append(current)
        if not folded or not bool((scale != 0).all()):
            continue
        _replace(build, name, folded, _normalized_input(layer, scale, offset))
        folded_all += folded
    return folded_all


def _next_affine(build: Any, current: str, outputs: set, shape: tuple[int, ...]):
    consumers = [dst for src, dst in build.edges if src == current]
    if len(consumers) != 1 or current in outputs:
        return None
    target, _, port = consumers[0].partition("/")
    if target in outputs:
        return None
    affine = elementwise_affine(build.layers[target], port)
    if affine is None:
        return None
    scale, offset = (_full(t, shape) for t in affine)
    if scale is None or offset is None:
        return None
    return target, scale, offset


def _replace(build: Any, name: str, folded: list[str], layer) -> None:
    """Put ``layer`` in place of input ``name`` and drop the ``folded`` layers after it."""
    last = folded[-1]
    gone = set(folded)
    build.layers[name] = layer
    for key in folded:
        del build.layers[key]
    edges = []
    for src, dst in build.edges:
        if src in gone or dst.partition("/")[0] in gone and src == name:
            if src == last:
                edges.append((name, dst))
            continue
        edges.append((src, dst))
    build.edges[:] = edges
    for value in build.values.values():
        if getattr(value, "layer", None) in gone:
            value.layer = name
