"""Linear functions of one node's values, as CROWN carries them backwards through a network.

A :class:`Form` holds, for every input box ``b`` and every *row* ``r`` (one linear function
being bounded, for instance one neuron's lower bound), the coefficients of that function on
the node's values. Two layouts:

- **dense**: ``values`` is (B, R, *node_shape), a coefficient for every value of the node;
- **patches**: for image-like nodes (channels and 1-3 spatial axes), ``values`` is
  (B, R, C, *window.size) and row ``r`` only covers the spatial window that starts at
  ``positions[r] * window.stride - window.pad``; coefficients outside are zero. A neuron of a
  convolution depends on a small window of the layers before it, so this is far smaller than
  the dense form while the window is smaller than the image (Xu et al., 2020, "Automatic
  perturbation analysis for scalable certified robustness and beyond", call these patches).

``B`` may be 1 while the coefficients do not depend on the box yet. Patches always store
channels first; ``channels_last`` says how the node itself is laid out ((N, T, C) sequences).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

__all__ = [
    "Window", "Form", "Diagonal", "Cut", "Allowance", "windows", "densify", "add_forms",
    "concretize",
]  # fmt: skip


@dataclass(frozen=True)
class Window:
    """Row ``r`` covers spatial positions ``positions[r] * stride - pad + [0, size)``."""

    size: tuple[int, ...]
    stride: tuple[int, ...]
    pad: tuple[int, ...]


@dataclass
class Form:
    """Coefficients of R linear functions on one node, for each box (see the module doc).

    Example:
        >>> import torch
        >>> f = Form(torch.ones(1, 2, 3))
        >>> f.is_patches, f.numel
        (False, 6)
    """

    values: torch.Tensor
    window: Window | None = None
    positions: torch.Tensor | None = None  # (R, spatial dims), long
    channels_last: bool = False
    reach: tuple[int, ...] = ()  # largest position on each spatial axis

    @property
    def is_patches(self) -> bool:
        return self.window is not None

    @property
    def numel(self) -> int:
        return self.values.numel()

    @property
    def rows(self) -> int:
        return self.values.shape[1]

    def with_values(self, values: torch.Tensor) -> Form:
        return replace(self, values=values)


def channels_first(t: torch.Tensor, channels_last: bool, lead: int = 1) -> torch.Tensor:
    """(lead..., *spatial, C) -> (lead..., C, *spatial) for channels-last nodes."""
    return t.movedim(-1, lead) if channels_last else t


def node_layout(t: torch.Tensor, channels_last: bool, lead: int = 1) -> torch.Tensor:
    """Inverse of :func:`channels_first`."""
    return t.movedim(lead, -1) if channels_last else t


def windows(
    t: torch.Tensor,
    form: Form,
    fill: float = 0.0,
    window: Window | None = None,
    grids: dict | None = None,
    allowance: Allowance | None = None,
) -> torch.Tensor:
    """The window of every row of ``form`` cut from ``t`` (B, *node_shape): (B, R, C, *size).

    Positions outside the node get ``fill``. With many rows, every window of the grid is cut
    once and rows pick theirs; ``grids`` (a dict) keeps those grids for the next call, as
    far as ``allowance`` lets it.

    Example:
        >>> import torch
        >>> t = torch.arange(5.0).reshape(1, 1, 5)
        >>> f = Form(torch.zeros(1, 2, 1, 3), Window((3,), (2,), (1,)), torch.tensor([[0], [2]]),
        ...          reach=(2,))
        >>> windows(t, f)[0, :, 0].tolist()
        [[0.0, 0.0, 1.0], [3.0, 4.0, 0.0]]
    """
    window = form.window if window is None else window
    assert window is not None and form.positions is not None
    t = channels_first(t, form.channels_last)
    spatial = t.shape[2:]
    pads: list[int] = []
    for axis in reversed(range(len(spatial))):
        end = form.reach[axis] * window.stride[axis] - window.pad[axis] + window.size[axis]
        pads += [window.pad[axis], max(0, end - spatial[axis])]
    padded = F.pad(t, pads, value=fill) if any(pads) else t
    for axis in range(len(spatial)):
        padded = padded.unfold(2 + axis, window.size[axis], window.stride[axis])
    grid = padded.shape[2 : 2 + len(spatial)]
    if form.rows < math.prod(grid):  # few rows: cut their windows only
        index = tuple(form.positions[:, axis] for axis in range(len(spatial)))
        return padded[(slice(None), slice(None), *index)].movedim(2, 1)
    # many rows share each position: cut every window once, then pick rows (much faster)
    dims = len(spatial)
    key = (window, form.reach, fill)
    every = None if grids is None else grids.get(key)
    if every is None:
        every = padded.permute(0, *range(2, 2 + dims), 1, *range(2 + dims, 2 + 2 * dims))
        every = every.reshape(t.shape[0], math.prod(grid), t.shape[1], *window.size)
        if grids is not None and (allowance is None or allowance.take(every.numel())):
            grids[key] = every
    flat = form.positions[:, 0]
    for axis in range(1, dims):
        flat = flat * grid[axis] + form.positions[:, axis]
    return every.index_select(1, flat)


class Allowance:
    """How many elements the kept grids of windows may hold together.

    Example:
        >>> a = Allowance(10)
        >>> a.take(6), a.take(6), a.left
        (True, False, 4)
    """

    def __init__(self, limit: int) -> None:
        self.limit, self.left = limit, limit

    def take(self, count: int) -> bool:
        if count > self.left:
            return False
        self.left -= count
        return True

    def give_back(self, count: int) -> None:
        self.left = min(self.limit, self.left + count)


class Cut:
    """A tensor (B, *node_shape) to cut windows from, keeping the grids of windows between
    chunks of rows that share a window geometry (call :meth:`clear` when done)."""

    def __init__(self, t: torch.Tensor, allowance: Allowance | None = None) -> None:
        self.t = t
        self.allowance = allowance
        self._first: dict[bool, torch.Tensor] = {}
        self._grids: dict = {}

    def __call__(self, form: Form, fill: float = 0.0) -> torch.Tensor:
        last = form.channels_last
        if last not in self._first:
            self._first[last] = channels_first(self.t, last)
        flat = replace(form, channels_last=False)
        grids = self._grids.setdefault(last, {})
        return windows(self._first[last], flat, fill, grids=grids, allowance=self.allowance)

    def clear(self) -> None:
        if self.allowance is not None:
            self.allowance.give_back(self.kept)
        self._grids.clear()

    @property
    def kept(self) -> int:
        """Elements held in kept grids."""
        return sum(g.numel() for grids in self._grids.values() for g in grids.values())


def mask(form: Form, spatial: tuple[int, ...]) -> torch.Tensor:
    """1 where a row's window lies inside the node, 0 outside: (1, R, 1, *size)."""
    ones = torch.ones(1, 1, *spatial, dtype=form.values.dtype, device=form.values.device)
    return windows(ones, replace(form, channels_last=False))


def densify(form: Form, shape: tuple[int, ...]) -> Form:
    """The dense form of ``form`` on a node of size ``shape`` (a dense form is returned as is).

    Example:
        >>> import torch
        >>> f = Form(torch.ones(1, 1, 1, 2), Window((2,), (1,), (1,)), torch.tensor([[0]]),
        ...          reach=(0,))
        >>> densify(f, (1, 3)).values.tolist()
        [[[[1.0, 0.0, 0.0]]]]
    """
    if not form.is_patches:
        return form
    window, values = form.window, form.values
    assert window is not None and form.positions is not None
    batch, rows, channels = values.shape[:3]
    dims = len(window.size)
    spatial = shape[:-1] if form.channels_last else shape[1:]
    padded = [
        max(spatial[a] + window.pad[a], form.reach[a] * window.stride[a] + window.size[a])
        for a in range(dims)
    ]
    canvas = values.new_zeros(rows, *padded, batch, channels)
    index = [torch.arange(rows, device=values.device).reshape(rows, *([1] * dims))]
    for axis in range(dims):
        start = form.positions[:, axis] * window.stride[axis]
        offsets = torch.arange(window.size[axis], device=values.device)
        view = [rows] + [1] * dims
        view[1 + axis] = window.size[axis]
        index.append((start[:, None] + offsets).reshape(view))
    canvas.index_put_(tuple(index), values.permute(1, *range(3, 3 + dims), 0, 2))
    crop = [slice(None)] + [slice(window.pad[a], window.pad[a] + spatial[a]) for a in range(dims)]
    dense = canvas[tuple(crop)].permute(dims + 1, 0, dims + 2, *range(1, dims + 1))
    return Form(node_layout(dense, form.channels_last, lead=2).contiguous())


def _grow(values: torch.Tensor, before: tuple[int, ...], after: tuple[int, ...]) -> torch.Tensor:
    pads: list[int] = []
    for axis in reversed(range(len(before))):
        pads += [before[axis], after[axis]]
    return F.pad(values, pads) if any(pads) else values


def add_forms(a: Form, b: Form, shape: tuple[int, ...]) -> Form:
    """The sum of two forms on the same node (aligned patches when possible, else dense)."""
    if a.is_patches and b.is_patches and a.window.stride == b.window.stride:  # type: ignore[union-attr]
        wa, wb = a.window, b.window
        assert wa is not None and wb is not None
        pad = tuple(max(p, q) for p, q in zip(wa.pad, wb.pad, strict=True))
        end = tuple(
            max(sa - pa, sb - pb)
            for sa, pa, sb, pb in zip(wa.size, wa.pad, wb.size, wb.pad, strict=True)
        )
        size = tuple(p + e for p, e in zip(pad, end, strict=True))
        spatial = shape[:-1] if a.channels_last else shape[1:]
        if math.prod(size) < math.prod(spatial):
            va = _grow(
                a.values,
                tuple(p - q for p, q in zip(pad, wa.pad, strict=True)),
                tuple(e - (s - q) for e, s, q in zip(end, wa.size, wa.pad, strict=True)),
            )
            vb = _grow(
                b.values,
                tuple(p - q for p, q in zip(pad, wb.pad, strict=True)),
                tuple(e - (s - q) for e, s, q in zip(end, wb.size, wb.pad, strict=True)),
            )
            return replace(a, values=va + vb, window=Window(size, wa.stride, pad))
    return Form(densify(a, shape).values + densify(b, shape).values)


def _dot(v: torch.Tensor, t: torch.Tensor, form: Form, gathered: bool) -> torch.Tensor:
    """sum over each row of v * t: (B, R). ``t`` is (B, *node_shape), or (B, R or 1, ...)
    aligned with the rows when ``gathered``."""
    if gathered and t.shape[1] == 1:
        t, gathered = t.squeeze(1), False
    if not gathered:
        return (v.flatten(2) @ t.flatten(1).unsqueeze(-1)).squeeze(-1)
    batch, rows = max(v.shape[0], t.shape[0]), v.shape[1]
    a = v.expand(batch, *v.shape[1:]).reshape(batch * rows, 1, -1)
    b = t.expand(batch, *t.shape[1:]).reshape(batch * rows, -1, 1)
    return (a @ b).reshape(batch, rows)


class Diagonal:
    """Element-wise linear bounds ``sl * x + bl <= y <= su * x + bu`` of a layer's output.

    Stored as the lower slope and bias plus the upper-minus-lower differences (None when
    they are zero, as for affine layers, or the lower bias of a ReLU), all (B, *node_shape),
    or (B, R, *node_shape) with ``per_row`` (one slope per row: optimized slopes, dense only).

    Example:
        >>> import torch
        >>> d = Diagonal(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.5]]), None,
        ...              torch.tensor([[0.0, 1.0]]))
        >>> form, constant = d.backward(Form(torch.tensor([[[2.0, -2.0]]])))
        >>> form.values.tolist(), constant.tolist()
        ([[[2.0, -1.0]]], [[-2.0]])
    """

    def __init__(self, slope, slope_spread=None, bias=None, bias_spread=None, *,
                 per_row: bool = False) -> None:  # fmt: skip
        self.parts = [slope, slope_spread, bias, bias_spread]
        self.per_row = per_row
        self.allowance: Allowance | None = None  # for the windows kept between chunks
        self._packed: dict[bool, Cut] = {}

    @classmethod
    def from_bounds(cls, lower_slope, lower_bias, upper_slope, upper_bias, *, per_row=False):
        """From both relaxations (a bias may be None for zero)."""
        spread = None if upper_slope is lower_slope else upper_slope - lower_slope
        if upper_bias is lower_bias:
            bias_spread = None
        elif lower_bias is None:
            bias_spread = upper_bias
        else:
            bias_spread = upper_bias - lower_bias
        return cls(lower_slope, spread, lower_bias, bias_spread, per_row=per_row)

    def _cut(self, form: Form) -> list[torch.Tensor | None]:
        """The parts aligned with the form's values (one gather for patches)."""
        if not form.is_patches:
            return [p if p is None or self.per_row else p.unsqueeze(1) for p in self.parts]
        present = [p for p in self.parts if p is not None]
        last = form.channels_last
        if last not in self._packed:
            self._packed[last] = Cut(torch.cat(present, -1 if last else 1), self.allowance)
        cut = self._packed[last](form)
        channels = present[0].shape[-1 if last else 1]
        pieces = iter(cut.split(channels, dim=2))
        return [None if p is None else next(pieces) for p in self.parts]

    def clear(self) -> None:
        """Forget the windows kept for the last window geometry."""
        for cut in self._packed.values():
            cut.clear()

    @property
    def kept(self) -> int:
        """Elements held in kept windows."""
        return sum(cut.kept for cut in self._packed.values())

    def backward(self, form: Form) -> tuple[Form, torch.Tensor]:
        """The form on the layer's input and the constant term (B, R)."""
        slope, spread, bias, bias_spread = self._cut(form)
        v = form.values
        negative = v.clamp(max=0) if spread is not None or bias_spread is not None else None
        out = v * slope
        if spread is not None:
            out = out.addcmul_(negative, spread)
        gathered = form.is_patches or self.per_row
        constant = v.new_zeros(())
        if bias is not None:
            constant = constant + _dot(v, bias, form, gathered)
        if bias_spread is not None:
            constant = constant + _dot(negative, bias_spread, form, gathered)
        if constant.dim() == 0:
            constant = v.new_zeros(v.shape[:2])
        return form.with_values(out), constant


def concretize(
    form: Form, lo: torch.Tensor, hi: torch.Tensor, box: Cut | None = None
) -> torch.Tensor:
    """Lower bound of the form over the box [lo, hi] (B, *node_shape): (B, R).

    ``box``: a :class:`Cut` of the center and radius concatenated on the channel axis, to
    reuse windows between chunks (patches only).
    """
    v = form.values
    if not form.is_patches:
        center, radius = (hi + lo) / 2, (hi - lo) / 2
        return _dot(v, center, form, False) - _dot(v.abs(), radius, form, False)
    box = box_cut(lo, hi, form.channels_last) if box is None else box
    cut_center, cut_radius = box(form).chunk(2, dim=2)
    return _dot(v, cut_center, form, True) - _dot(v.abs(), cut_radius, form, True)


def box_cut(lo: torch.Tensor, hi: torch.Tensor, channels_last: bool,
            allowance: Allowance | None = None) -> Cut:  # fmt: skip
    """A :class:`Cut` of the box's center and radius (for :func:`concretize`)."""
    axis = -1 if channels_last else 1
    return Cut(torch.cat([(hi + lo) / 2, (hi - lo) / 2], axis), allowance)
