"""Interval rules and linear relaxations of the non-linear layers (the building blocks of CROWN).

A relaxation of ``y = f(x)`` for ``x`` in ``[l, u]`` is four tensors ``(sl, bl, su, bu)`` with
``sl * x + bl <= f(x) <= su * x + bu`` for every ``x`` in the interval.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

Relaxation = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def leaky_slope(module: nn.Module) -> float:
    """Negative-side slope of a LeakyReLU (toolbox ``scale`` or torch ``negative_slope``)."""
    return float(getattr(module, "scale", getattr(module, "negative_slope", 0.01)))


def affine_interval(
    module: nn.Module, lows: list[torch.Tensor], highs: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Interval of an affine layer: centre through the layer, radius through |weights|.

    Every affine layer supported keeps the sign of its linear part in parameters called
    ``weight`` (other coefficients, such as 1/std or pooling weights, are non-negative), so
    ``|L| r = f_abs(r) - f_abs(0)`` with ``f_abs`` the layer with absolute weights.

    Example:
        >>> import torch
        >>> layer = torch.nn.Linear(2, 1)
        >>> with torch.no_grad():
        ...     _ = layer.weight.copy_(torch.tensor([[1.0, -2.0]])), layer.bias.zero_()
        >>> lo, hi = affine_interval(layer, [torch.zeros(1, 2)], [torch.ones(1, 2)])
        >>> lo.item(), hi.item()
        (-2.0, 1.0)
    """
    centers = [(lo + hi) / 2 for lo, hi in zip(lows, highs, strict=True)]
    radii = [(hi - lo) / 2 for lo, hi in zip(lows, highs, strict=True)]
    if getattr(module, "normalization", None) is not None:  # an input layer: s * x + t
        return _diagonal_interval(module, centers[0], radii[0])
    absolute = {
        name: p.abs() for name, p in module.named_parameters() if name.split(".")[-1] == "weight"
    }
    center = module(*centers)
    radius = functional_call(module, absolute, tuple(radii))
    radius = radius - functional_call(module, absolute, tuple(torch.zeros_like(r) for r in radii))
    radius = radius.clamp_min(0)
    return center - radius, center + radius


def _diagonal_interval(module: nn.Module, center: torch.Tensor, radius: torch.Tensor):
    """Interval of an element-wise affine layer, whatever the signs of its factors (an input
    layer's ``std`` may be negative: ONNX ``Div`` by a negative constant folds into it)."""
    scale = module(torch.ones_like(center[:1])) - module(torch.zeros_like(center[:1]))
    mid = module(center)  # the layer's own arithmetic, as its forward pass rounds it
    spread = radius * scale.abs() * (1 + 1e-6) + 1e-7 * mid.abs()  # f(1) - f(0) is rounded
    return mid - spread, mid + spread


def softmax_axis(module: nn.Module, rank: int) -> int:
    """The axis a softmax layer normalizes over, for a batch of the given rank."""
    if isinstance(module, nn.Softmax):
        return module.dim if module.dim is not None else 1
    return -1 if rank <= 3 else 1


def softmax_interval(
    module: nn.Module, lo: torch.Tensor, hi: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sound interval of softmax: p_i >= 1 / (1 + sum_{j != i} exp(u_j - l_i)), likewise above.

    Example:
        >>> import torch
        >>> lo, hi = softmax_interval(torch.nn.Softmax(1), torch.zeros(1, 2), torch.zeros(1, 2))
        >>> lo.tolist(), hi.tolist()
        ([[0.5, 0.5]], [[0.5, 0.5]])
    """
    axis = softmax_axis(module, lo.dim())
    lo, hi = lo.movedim(axis, -1), hi.movedim(axis, -1)
    k = lo.shape[-1]
    eye = torch.eye(k, dtype=torch.bool, device=lo.device)

    def others(v: torch.Tensor) -> torch.Tensor:
        grid = v.unsqueeze(-2).expand(*v.shape[:-1], k, k)
        return torch.logsumexp(grid.masked_fill(eye, float("-inf")), dim=-1)

    lower = torch.sigmoid(lo - others(hi))
    upper = torch.sigmoid(hi - others(lo))
    return lower.movedim(-1, axis), upper.movedim(-1, axis)


def default_lower_slope(kind: str, module: nn.Module, lo: torch.Tensor, hi: torch.Tensor):
    """CROWN's adaptive lower slope for (leaky) ReLU: 1 where u > -l, else the negative slope."""
    negative = 0.0 if kind == "relu" else leaky_slope(module)
    return torch.where(hi > -lo, torch.ones_like(lo), torch.full_like(lo, negative))


def relax(
    kind: str,
    module: nn.Module,
    lo: torch.Tensor,
    hi: torch.Tensor,
    alpha: torch.Tensor | None = None,
) -> Relaxation:
    """Linear lower and upper bounds of an activation over ``[lo, hi]``.

    ``alpha`` (optional, broadcastable to ``lo``) is the lower slope of unstable (leaky) ReLUs.

    Example:
        >>> import torch
        >>> sl, bl, su, bu = relax("relu", None, torch.tensor([-1.0]), torch.tensor([3.0]))
        >>> su.item(), bu.item(), sl.item()
        (0.75, 0.75, 1.0)
    """
    if kind in ("relu", "leaky_relu"):
        negative = 0.0 if kind == "relu" else leaky_slope(module)
        return _relax_piecewise(negative, module, kind, lo, hi, alpha)
    if kind == "sigmoid":
        return _relax_s_shaped(
            torch.sigmoid, lambda v: torch.sigmoid(v) * (1 - torch.sigmoid(v)), lo, hi
        )
    return _relax_s_shaped(torch.tanh, lambda v: 1 - torch.tanh(v) ** 2, lo, hi)


def _relax_piecewise(negative, module, kind, lo, hi, alpha) -> Relaxation:
    active, inactive = lo >= 0, hi <= 0
    unstable = ~active & ~inactive
    one = torch.ones_like(lo)
    neg = torch.full_like(lo, negative)
    span = (hi - lo).where(unstable, one)
    chord = ((hi - negative * lo) / span).where(unstable, one)
    su = torch.where(active, one, torch.where(inactive, neg, chord))
    bu = torch.where(unstable, hi - chord * hi, torch.zeros_like(lo))
    default = default_lower_slope(kind, module, lo, hi)
    slope = default if alpha is None else alpha
    sl = torch.where(active, one, torch.where(inactive, neg, slope))
    return sl, torch.zeros_like(sl), su, bu


def _relax_s_shaped(f, df, lo, hi) -> Relaxation:
    fl, fu = f(lo), f(hi)
    width = hi - lo
    narrow = width < 1e-6
    k = torch.minimum(df(lo), df(hi))  # smallest slope on [l, u]: f - k x is increasing
    chord = (fu - fl) / width.clamp_min(1e-6)
    mid = (lo + hi) / 2
    dm, fm = df(mid), f(mid)
    convex = (hi <= 0) & ~narrow
    concave = (lo >= 0) & ~narrow
    sl = torch.where(convex, dm, torch.where(concave, chord, k))
    bl = torch.where(convex, fm - dm * mid, torch.where(concave, fl - chord * lo, fl - k * lo))
    su = torch.where(convex, chord, torch.where(concave, dm, k))
    bu = torch.where(convex, fl - chord * lo, torch.where(concave, fm - dm * mid, fu - k * hi))
    return sl, bl, su, bu
