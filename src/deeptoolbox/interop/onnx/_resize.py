"""The ONNX Resize operator (every mode and coordinate transformation of opset 19), written as
separable interpolation matrices so that nearest, linear, cubic and anti-aliased resizing share
one code path."""

from __future__ import annotations

import math

import torch

from deeptoolbox.errors import ModelImportError
from deeptoolbox.interop.onnx._opset import Inputs, Operator, Tensor, registrar
from deeptoolbox.interop.onnx._opset import int_list as _ints

OPERATORS: dict[str, Operator] = {}
operator = registrar(OPERATORS)

# -- resizing -----------------------------------------------------------------------------------


def _source_coordinates(out_len: int, in_len: int, scale: float, attrs: dict, roi) -> Tensor:
    """Input coordinate of each output position along one axis (ONNX opset 19 formulas).

    ``length_resized`` in the formulas is ``scale * in_len``, which is fractional when the
    target comes from ``scales`` (e.g. 4 * 0.6 = 2.4 for 2 output positions); it equals the
    output length when the target comes from ``sizes``. This is how the ONNX reference and its
    backend test data read the formulas.
    """
    x = torch.arange(out_len, dtype=torch.float64)
    resized = scale * in_len
    mode = attrs.get("coordinate_transformation_mode", "half_pixel")
    if mode == "asymmetric":
        return x / scale
    if mode == "align_corners":
        return x * 0 if resized == 1 else x * (in_len - 1) / (resized - 1)
    if mode == "pytorch_half_pixel":  # the spec's 0 for a single output (onnxruntime agrees)
        return x * 0 if resized == 1 else (x + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        offset = in_len / 2 * (1 - out_len / resized)
        return offset + (x + 0.5) / scale - 0.5
    if mode == "tf_crop_and_resize":
        start, end = roi
        if resized == 1:
            return x * 0 + 0.5 * (start + end) * (in_len - 1)
        return start * (in_len - 1) + x * (end - start) * (in_len - 1) / (resized - 1)
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    raise ModelImportError(
        f"ONNX Resize: coordinate_transformation_mode={mode!r} is not one of the ONNX modes "
        "'half_pixel', 'half_pixel_symmetric', 'pytorch_half_pixel', 'align_corners', "
        "'asymmetric', 'tf_crop_and_resize'."
    )


def _cubic(d: Tensor, a: float) -> Tensor:
    d = d.abs()
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return torch.where(d <= 1, near, torch.where(d < 2, far, torch.zeros_like(d)))


def _nearest_matrix(source: Tensor, in_len: int, attrs: dict) -> Tensor:
    rounding = attrs.get("nearest_mode", "round_prefer_floor")
    index = {
        "round_prefer_floor": lambda v: torch.ceil(v - 0.5),
        "round_prefer_ceil": lambda v: torch.floor(v + 0.5),
        "floor": torch.floor,
        "ceil": torch.ceil,
    }[rounding](source)
    matrix = torch.zeros(len(source), in_len, dtype=torch.float64)
    matrix[torch.arange(len(source)), index.long().clamp(0, in_len - 1)] = 1.0
    return matrix


def _filter_matrix(source: Tensor, in_len: int, scale: float, attrs: dict) -> Tensor:
    """Linear or cubic weights; with antialias, the filter is stretched by 1 / scale when
    downsampling and its weights normalized to sum 1.

    Each output position uses the taps ``base + start ... base + start + count - 1`` around its
    source coordinate (``base`` the integer just below it, the one below for an exact integer);
    taps outside the input repeat the edge value, or get weight 0 (then the weights are
    renormalized) with ``exclude_outside=1``.
    """
    antialias = bool(attrs.get("antialias", 0))
    stretch = min(scale, 1.0) if antialias else 1.0
    support = 1.0 if attrs.get("mode") == "linear" else 2.0
    start = math.floor(-support / stretch) + 1
    offsets = torch.arange(start, 2 - start, dtype=torch.float64)
    taps = (torch.ceil(source) - 1).unsqueeze(1) + offsets  # (out, count)
    distance = (taps - source.unsqueeze(1)) * stretch
    if support == 1.0:
        weights = (1 - distance.abs()).clamp(0, 1)
    else:
        weights = _cubic(distance, attrs.get("cubic_coeff_a", -0.75))
    if antialias:
        weights = weights / weights.sum(1, keepdim=True)
    if attrs.get("exclude_outside", 0):
        weights = weights * ((taps >= 0) & (taps <= in_len - 1))
        total = weights.sum(1, keepdim=True)
        weights = weights / torch.where(total == 0, torch.ones_like(total), total)
    columns = taps.long().clamp(0, in_len - 1)
    rows = torch.arange(len(source)).unsqueeze(1).expand_as(columns)
    matrix = torch.zeros(len(source), in_len, dtype=torch.float64)
    return matrix.index_put_((rows, columns), weights, accumulate=True)


def _resize_matrix(
    in_len: int, out_len: int, scale: float, attrs: dict, roi
) -> tuple[Tensor, Tensor]:
    """(out_len, in_len) interpolation weights along one axis, and a mask of outside points."""
    source = _source_coordinates(out_len, in_len, scale, attrs, roi)
    outside = (source < 0) | (source > in_len - 1)
    mode = attrs.get("mode", "nearest")
    if mode == "nearest":
        if attrs.get("antialias", 0):
            raise ModelImportError(
                "ONNX Resize: antialias=1 applies to mode 'linear' and 'cubic' only. "
                "Received: mode='nearest', antialias=1."
            )
        return _nearest_matrix(source, in_len, attrs), outside
    if mode not in ("linear", "cubic"):
        raise ModelImportError(
            f"ONNX Resize: mode={mode!r} is not one of 'nearest', 'linear', 'cubic'."
        )
    return _filter_matrix(source, in_len, scale, attrs), outside


def _resize_targets(x: Tensor, inputs: Inputs, attrs: dict) -> tuple[list[int], list[float]]:
    rank = x.dim()
    axes = [a % rank for a in attrs.get("axes", range(rank))]
    scales = inputs[2] if len(inputs) > 2 and inputs[2] is not None and inputs[2].numel() else None
    sizes = _ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else None
    out, factors = list(x.shape), [1.0] * rank
    if sizes is not None:
        policy = attrs.get("keep_aspect_ratio_policy", "stretch")
        ratios = [sizes[i] / x.shape[a] for i, a in enumerate(axes)]
        if policy != "stretch":
            common = min(ratios) if policy == "not_larger" else max(ratios)
            ratios = [common] * len(axes)
            sizes = [int(math.floor(common * x.shape[a] + 0.5)) for a in axes]
        for i, a in enumerate(axes):
            out[a], factors[a] = sizes[i], ratios[i]
    else:
        values = [float(v) for v in scales.tolist()]
        for i, a in enumerate(axes):
            out[a], factors[a] = int(math.floor(x.shape[a] * values[i])), values[i]
    return out, factors


@operator("Resize")
def _resize(inputs: Inputs, attrs: dict) -> Tensor:
    x = inputs[0]
    out, factors = _resize_targets(x, inputs, attrs)
    rank = x.dim()
    roi = inputs[1] if len(inputs) > 1 and inputs[1] is not None and inputs[1].numel() else None
    axes = [a % rank for a in attrs.get("axes", range(rank))]
    y = x.double()
    outside_any = torch.zeros(out, dtype=torch.bool)
    for a in range(rank):
        if out[a] == x.shape[a] and factors[a] == 1.0 and roi is None:
            continue
        bounds = (0.0, 1.0)
        if roi is not None and a in axes:
            i = axes.index(a)
            bounds = (float(roi[i]), float(roi[i + len(axes)]))
        matrix, outside = _resize_matrix(x.shape[a], out[a], factors[a], attrs, bounds)
        y = torch.movedim(torch.tensordot(matrix, torch.movedim(y, a, 0), dims=1), 0, a)
        shape = [1] * rank
        shape[a] = out[a]
        outside_any = outside_any | outside.reshape(shape)
    if attrs.get("coordinate_transformation_mode") == "tf_crop_and_resize":
        y = torch.where(outside_any, attrs.get("extrapolation_value", 0.0), y)
    return y.to(x.dtype)
