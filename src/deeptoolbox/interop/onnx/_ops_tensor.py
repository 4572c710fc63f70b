"""ONNX operators on tensor shapes and layout (reshape, transpose, concat, split, slice,
gather, squeeze, pad...), in this module's :data:`OPERATORS` (joined with the others' in
:mod:`._registry`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from deeptoolbox.interop.onnx._opset import Inputs, Operator, Tensor, registrar
from deeptoolbox.interop.onnx._opset import axes_of as _axes
from deeptoolbox.interop.onnx._opset import int_list as _ints
from deeptoolbox.interop.onnx._opset import torch_pad as _torch_pad

OPERATORS: dict[str, Operator] = {}
operator = registrar(OPERATORS)

# -- shapes and layout ------------------------------------------------------------------------


@operator("Flatten")
def _flatten(inputs: Inputs, attrs: dict) -> Tensor:
    x = inputs[0]
    axis = attrs.get("axis", 1)
    axis = axis + x.dim() if axis < 0 else axis
    return (
        x.reshape(math.prod(x.shape[:axis]), -1)
        if x.numel()
        else x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))
    )


@operator("Reshape")
def _reshape(inputs: Inputs, attrs: dict) -> Tensor:
    x, shape = inputs[0], _ints(inputs[1])
    if not attrs.get("allowzero", 0):
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return x.reshape(shape)


@operator("Transpose")
def _transpose(inputs: Inputs, attrs: dict) -> Tensor:
    x = inputs[0]
    return x.permute(attrs.get("perm", list(reversed(range(x.dim())))))


@operator("Concat")
def _concat(inputs: Inputs, attrs: dict) -> Tensor:
    return torch.cat([t for t in inputs if t is not None], dim=attrs["axis"])


@operator("Split")
def _split(inputs: Inputs, attrs: dict) -> tuple[Tensor, ...]:
    x, axis = inputs[0], attrs.get("axis", 0)
    sizes = _ints(inputs[1]) if len(inputs) > 1 and inputs[1] is not None else attrs.get("split")
    if sizes is None:
        count = attrs.get("num_outputs", attrs.get("_num_outputs", 1))
        chunk = math.ceil(x.shape[axis] / count)
        sizes = [min(chunk, x.shape[axis] - i * chunk) for i in range(count)]
    return tuple(torch.split(x, list(sizes), dim=axis))


@operator("Slice")
def _slice(inputs: Inputs, attrs: dict) -> Tensor:
    x = inputs[0]
    starts, ends = _ints(inputs[1]), _ints(inputs[2])
    axes = (
        _ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else list(range(len(starts)))
    )
    steps = _ints(inputs[4]) if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        axis %= x.dim()
        length = x.shape[axis]
        if step > 0:
            start = min(max(start + length if start < 0 else start, 0), length)
            end = min(max(end + length if end < 0 else end, 0), length)
            x = x.narrow(axis, start, max(end - start, 0))[
                (slice(None),) * axis + (slice(None, None, step),)
            ]
        else:
            start = min(max(start + length if start < 0 else start, -1), length - 1)
            end = min(max(end + length if end < 0 else end, -1), length - 1)
            index = torch.arange(start, end, step, device=x.device)
            x = x.index_select(axis, index)
    return x


@operator("Gather")
def _gather(inputs: Inputs, attrs: dict) -> Tensor:
    x, indices = inputs[0], inputs[1].long()
    axis = attrs.get("axis", 0) % x.dim()
    indices = torch.where(indices < 0, indices + x.shape[axis], indices)
    flat = x.index_select(axis, indices.reshape(-1))
    return flat.reshape([*x.shape[:axis], *indices.shape, *x.shape[axis + 1 :]])


@operator("Squeeze")
def _squeeze(inputs: Inputs, attrs: dict) -> Tensor:
    x, axes = inputs[0], _axes(inputs, attrs, 1)
    if axes is None:
        return x.reshape([d for d in x.shape if d != 1])
    axes = {a % x.dim() for a in axes}
    return x.reshape([d for i, d in enumerate(x.shape) if i not in axes])


@operator("Unsqueeze")
def _unsqueeze(inputs: Inputs, attrs: dict) -> Tensor:
    x, axes = inputs[0], _axes(inputs, attrs, 1)
    rank = x.dim() + len(axes)
    shape = list(x.shape)
    for axis in sorted(a % rank for a in axes):
        shape.insert(axis, 1)
    return x.reshape(shape)


@operator("Shape")
def _shape(inputs: Inputs, attrs: dict) -> Tensor:
    shape = list(inputs[0].shape)
    start, end = attrs.get("start", 0), attrs.get("end", len(shape))
    return torch.tensor(shape[start:end], dtype=torch.int64)


@operator("Size")
def _size(inputs: Inputs, attrs: dict) -> Tensor:
    return torch.tensor(inputs[0].numel(), dtype=torch.int64)


@operator("Expand")
def _expand(inputs: Inputs, attrs: dict) -> Tensor:
    x, shape = inputs[0], _ints(inputs[1])
    target = torch.broadcast_shapes(tuple(x.shape), tuple(shape))
    return x.expand(target)


@operator("Tile")
def _tile(inputs: Inputs, attrs: dict) -> Tensor:
    return inputs[0].repeat(_ints(inputs[1]))


@operator("ConstantOfShape")
def _constant_of_shape(inputs: Inputs, attrs: dict) -> Tensor:
    value = attrs.get("value")
    fill = value if isinstance(value, torch.Tensor) else torch.zeros(1)
    return torch.full(_ints(inputs[0]), fill.reshape(-1)[0].item(), dtype=fill.dtype)


@operator("Constant")
def _constant(inputs: Inputs, attrs: dict) -> Tensor:
    for key, dtype in (("value_float", torch.float32), ("value_int", torch.int64)):
        if key in attrs:
            return torch.tensor(attrs[key], dtype=dtype)
    for key, dtype in (("value_floats", torch.float32), ("value_ints", torch.int64)):
        if key in attrs:
            return torch.tensor(attrs[key], dtype=dtype)
    return attrs["value"]


@operator("Range")
def _range(inputs: Inputs, attrs: dict) -> Tensor:
    start, limit, delta = (t.item() for t in inputs[:3])
    return torch.arange(start, limit, delta, dtype=inputs[0].dtype)


@operator("Trilu")
def _trilu(inputs: Inputs, attrs: dict) -> Tensor:
    k = int(inputs[1].item()) if len(inputs) > 1 and inputs[1] is not None else 0
    return torch.triu(inputs[0], k) if attrs.get("upper", 1) else torch.tril(inputs[0], k)


@operator("DepthToSpace")
def _depth_to_space(inputs: Inputs, attrs: dict) -> Tensor:
    from deeptoolbox.layers._reshape import depth_to_space

    block = int(attrs["blocksize"])
    return depth_to_space(inputs[0], (block, block), str(attrs.get("mode", "DCR")).lower())


@operator("SpaceToDepth")
def _space_to_depth(inputs: Inputs, attrs: dict) -> Tensor:
    from deeptoolbox.layers._reshape import space_to_depth

    block = int(attrs["blocksize"])
    return space_to_depth(inputs[0], (block, block))


@operator("Pad")
def _pad(inputs: Inputs, attrs: dict) -> Tensor:
    x = inputs[0]
    pads = _ints(inputs[1]) if len(inputs) > 1 and inputs[1] is not None else attrs["pads"]
    value = inputs[2].item() if len(inputs) > 2 and inputs[2] is not None else 0.0
    axes = _ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else list(range(x.dim()))
    full = [0] * (2 * x.dim())
    for i, axis in enumerate(a % x.dim() for a in axes):
        full[axis], full[axis + x.dim()] = pads[i], pads[i + len(axes)]
    mode = attrs.get("mode", "constant")
    torch_pads = _torch_pad(full)
    if mode == "constant":
        return F.pad(x, torch_pads, value=value)
    first = next((i for i in range(x.dim()) if full[i] or full[i + x.dim()]), x.dim())
    trimmed = torch_pads[: 2 * (x.dim() - first)]
    torch_mode = {"reflect": "reflect", "edge": "replicate", "wrap": "circular"}[mode]
    lead = x.shape[:first]
    body = x.reshape(1, -1, *x.shape[first:]) if first else x.reshape(1, 1, *x.shape)
    while body.dim() < 3:
        body = body.unsqueeze(0)
    y = F.pad(body, trimmed, mode=torch_mode)
    return y.reshape(*lead, *y.shape[y.dim() - (x.dim() - first) :])


@operator("GatherElements")
def _gather_elements(inputs: Inputs, attrs: dict) -> Tensor:
    x, indices = inputs[0], inputs[1].long()
    axis = attrs.get("axis", 0) % x.dim()
    indices = torch.where(indices < 0, indices + x.shape[axis], indices)
    return torch.gather(x, axis, indices)


@operator("GatherND")
def _gather_nd(inputs: Inputs, attrs: dict) -> Tensor:
    """Slices of ``x`` at ``indices`` (..., k) into the k axes after the ``batch_dims`` first
    (shared with the indices): the output is indices.shape[:-1] + x.shape[batch_dims + k:]."""
    x, indices = inputs[0], inputs[1].long()
    batch, k = int(attrs.get("batch_dims", 0)), indices.shape[-1]
    lead = math.prod(x.shape[:batch])
    picked = x.shape[batch : batch + k]
    sizes = torch.tensor(picked, dtype=torch.long, device=indices.device)
    flat = indices.reshape(lead, -1, k)
    flat = torch.where(flat < 0, flat + sizes, flat)
    strides = torch.tensor([math.prod(picked[j + 1 :]) for j in range(k)], dtype=torch.long,
                           device=indices.device)  # fmt: skip
    rows = (flat * strides).sum(-1)  # (lead, M)
    body = x.reshape(lead, math.prod(picked), *x.shape[batch + k :])
    result = body[torch.arange(lead, device=x.device).unsqueeze(1), rows]
    return result.reshape(*indices.shape[:-1], *x.shape[batch + k :])


@operator("ScatterElements")
def _scatter_elements(inputs: Inputs, attrs: dict) -> Tensor:
    x, indices, updates = inputs[0], inputs[1].long(), inputs[2]
    axis = attrs.get("axis", 0) % x.dim()
    indices = torch.where(indices < 0, indices + x.shape[axis], indices)
    reduction = attrs.get("reduction", "none")
    if reduction == "none":
        return x.scatter(axis, indices, updates)
    how = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}[reduction]
    return x.scatter_reduce(axis, indices, updates, how, include_self=True)


@operator("ScatterND")
def _scatter_nd(inputs: Inputs, attrs: dict) -> Tensor:
    """Rows of ``x`` (its first k axes) at ``indices`` (..., k) set to, or combined with,
    ``updates`` (what torch's exporter writes for slice assignment)."""
    x, indices, updates = inputs[0], inputs[1].long(), inputs[2]
    k = indices.shape[-1]
    sizes = torch.tensor(x.shape[:k], dtype=torch.long, device=indices.device)
    indices = torch.where(indices < 0, indices + sizes, indices).reshape(-1, k)
    strides = torch.tensor([math.prod(x.shape[j + 1 : k]) for j in range(k)],
                           dtype=torch.long, device=indices.device)  # fmt: skip
    rows = (indices * strides).sum(-1)
    flat = x.reshape(-1, *x.shape[k:])
    values = updates.reshape(-1, *x.shape[k:]).to(x.dtype)
    rows = rows.reshape(-1, *[1] * (values.dim() - 1)).expand_as(values)
    reduction = attrs.get("reduction", "none")
    if reduction == "none":
        return flat.scatter(0, rows, values).reshape(x.shape)
    how = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}[reduction]
    return flat.scatter_reduce(0, rows, values, how, include_self=True).reshape(x.shape)


@operator("CumSum")
def _cumsum(inputs: Inputs, attrs: dict) -> Tensor:
    x, axis = inputs[0], int(inputs[1].item())
    if attrs.get("reverse", 0):
        x = x.flip(axis)
    y = torch.cumsum(x, axis).to(x.dtype)
    if attrs.get("exclusive", 0):
        y = y - x
    return y.flip(axis) if attrs.get("reverse", 0) else y
