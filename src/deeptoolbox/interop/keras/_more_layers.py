"""More Keras layer converters: the layers keras.applications and Keras 3 models use beyond
the core set in ``_layers`` (depthwise and separable convolutions, transposed
convolutions, upsampling, cropping, preprocessing layers, noise layers, SimpleRNN,
TimeDistributed...). Same contract: ``(config, weights, shapes) -> chain``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from deeptoolbox import layers as L
from deeptoolbox.interop._operators import TorchFunction
from deeptoolbox.interop.keras._common import Chain
from deeptoolbox.interop.keras._common import channels_last as _channels_last
from deeptoolbox.interop.keras._common import require as _require
from deeptoolbox.interop.keras._common import with_activation as _with_activation
from deeptoolbox.layers import ScaleOffset
from deeptoolbox.layers._base import Shape


def _conv_padding(config: dict[str, Any]) -> str:
    padding = config.get("padding", "valid")
    _require(padding in ("same", "valid"), f"padding={padding!r} (only 'same' and 'valid')")
    return padding


def keras_sample_shape(shape: Shape) -> tuple:
    """A toolbox size (batch excluded) in Keras's layout: images (C, H, W) -> (H, W, C),
    volumes (C, D, H, W) -> (D, H, W, C)."""
    return (*shape[1:], shape[0]) if len(shape) >= 3 else tuple(shape)


def toolbox_layout(values: np.ndarray, rank: int) -> np.ndarray:
    """Values broadcast over a Keras sample (channels last) in the toolbox's layout."""
    values = np.asarray(values, np.float32)
    values = values.reshape((1,) * (rank - values.ndim) + values.shape)
    return np.moveaxis(values, -1, 0) if rank >= 3 else values


# -- convolutions ------------------------------------------------------------------------------
def _depthwise_layer(config: dict, channels: int, dims: int, bias: bool) -> Any:
    multiplier = int(config.get("depth_multiplier", 1))
    cls = L.Conv1d if dims == 1 else L.Conv2d
    return cls(
        channels * multiplier, tuple(config["kernel_size"]), stride=tuple(config["strides"]),
        padding=_conv_padding(config), dilation=tuple(config.get("dilation_rate", 1)),
        groups=channels, bias=bias,
    )  # fmt: skip


def _depthwise_weight(kernel: np.ndarray, dims: int) -> np.ndarray:
    """Keras's (k..., C, multiplier) -> torch's (C * multiplier, 1, k...): output c*m + j."""
    flat = kernel.reshape(*kernel.shape[:dims], -1)
    return np.transpose(flat, (dims, *range(dims)))[:, None]


def _depthwise(config: dict, weights: list, shapes: list[Shape], dims: int) -> Chain:
    _channels_last(config)
    kernel = weights[0]
    bias = bool(config.get("use_bias", True))
    layer = _depthwise_layer(config, kernel.shape[dims], dims, bias)
    params = {"weight": _depthwise_weight(kernel, dims)}
    if bias:
        params["bias"] = weights[1]
    return _with_activation([("", layer, params)], config)


def _separable(config: dict, weights: list, shapes: list[Shape], dims: int) -> Chain:
    """A depthwise convolution (no bias) and a 1 x 1 pointwise convolution."""
    _channels_last(config)
    depthwise, pointwise = weights[0], weights[1]
    bias = bool(config.get("use_bias", True))
    first = _depthwise_layer(config, depthwise.shape[dims], dims, False)
    cls = L.Conv1d if dims == 1 else L.Conv2d
    second = cls(int(config["filters"]), 1, padding="valid", bias=bias)
    params = {"weight": np.transpose(pointwise, (dims + 1, dims, *range(dims)))}
    if bias:
        params["bias"] = weights[2]
    chain = [("depthwise", first, {"weight": _depthwise_weight(depthwise, dims)})]
    return _with_activation([*chain, ("", second, params)], config)


def _conv_transpose(config: dict, weights: list, shapes: list[Shape], dims: int) -> Chain:
    """Conv2DTranspose / Conv3DTranspose: "same" is cropping="same"; "valid" no cropping."""
    _channels_last(config)
    padding = _conv_padding(config)
    kernel, strides = tuple(config["kernel_size"]), tuple(config["strides"])
    dilation = config.get("dilation_rate", 1)
    _require(all(d == 1 for d in (dilation if isinstance(dilation, list | tuple) else [dilation])),
             "dilation_rate")  # fmt: skip
    _require(config.get("output_padding") is None, "output_padding")
    _require(all(k >= s for k, s in zip(kernel, strides, strict=True)), "kernel_size < strides")
    bias = bool(config.get("use_bias", True))
    cls = L.TransposedConv2d if dims == 2 else L.TransposedConv3d
    layer = cls(
        int(config["filters"]), kernel, stride=strides,
        cropping="same" if padding == "same" else 0, bias=bias,
    )  # fmt: skip
    # (k..., F, C) -> (C, F, k...)
    params = {"weight": np.transpose(weights[0], (dims + 1, dims, *range(dims)))}
    if bias:
        params["bias"] = weights[1]
    return _with_activation([("", layer, params)], config)


# -- resampling and cropping ---------------------------------------------------------------------
def _upsampling(config: dict, weights: list, shapes: list[Shape], dims: int) -> Chain:
    if dims == 1:  # repeat each step `size` times
        size = int(config.get("size", 2))
        layer = TorchFunction("torch.repeat_interleave", arguments=[{"input": 0}, size],
                              keywords={"dim": 1})  # fmt: skip
        return [("", layer, {})]
    _channels_last(config)
    if dims == 3:  # UpSampling3D repeats each voxel: nearest with whole factors
        size = config.get("size", (2, 2, 2))
        size = (size,) * 3 if isinstance(size, int) else tuple(size)
        return [("", L.Resize3d(scale=tuple(float(s) for s in size), method="nearest"), {})]
    method = config.get("interpolation", "nearest")
    _require(method in ("nearest", "bilinear"), f"interpolation={method!r}")
    size = config.get("size", (2, 2))
    size = (size, size) if isinstance(size, int) else tuple(size)
    return [("", L.Resize2d(scale=tuple(float(s) for s in size), method=method), {})]


def _cropping(config: dict, weights: list, shapes: list[Shape], dims: int) -> Chain:
    if dims > 1:
        _channels_last(config)
    cls = {1: L.Crop1d, 2: L.Crop2d, 3: L.Crop3d}[dims]
    return [("", cls(config.get("cropping", 1)), {})]


# -- preprocessing: Rescaling and Normalization (also folded into input layers) -------------------
def _kept_axes(axis: Any, rank: int) -> list[int]:
    """Keras Normalization's kept axes (batch included), from its ``axis`` option."""
    if axis is None:
        return []
    axes = axis if isinstance(axis, list | tuple) else [axis]
    return sorted({int(a) % (rank + 1) for a in axes})


def _statistic(value: Any, sizes: list, broadcast: list) -> np.ndarray:
    array = np.asarray(value, np.float64)
    if array.size == int(np.prod(sizes)):
        array = array.reshape(sizes)
    return np.broadcast_to(array, sizes).reshape(broadcast)


def keras_affine(class_name: str, config: dict, weights: list, shape: Shape) -> tuple:
    """(scale, offset) of a Rescaling or Normalization layer, broadcast over a Keras sample."""
    rank = len(shape)
    if class_name == "Rescaling":
        scale = np.asarray(config.get("scale", 1.0), np.float64)
        offset = np.asarray(config.get("offset", 0.0), np.float64)
        return scale, offset
    sample = keras_sample_shape(shape)
    kept = _kept_axes(config.get("axis", -1), rank)
    _require(0 not in kept, "axis 0 (the batch)")
    sizes = [sample[a - 1] for a in kept]
    _require(None not in sizes, "normalization over a free (None) length")
    mean, variance = config.get("mean"), config.get("variance")
    if mean is None or variance is None:
        _require(len(weights) >= 2, "a Normalization without mean and variance (not adapted)")
        mean, variance = weights[0], weights[1]
    broadcast = [sample[a] if a + 1 in kept else 1 for a in range(rank)]
    mean, variance = (_statistic(v, sizes, broadcast) for v in (mean, variance))
    std = np.maximum(np.sqrt(variance), 1e-7)  # Keras: max(sqrt(variance), epsilon)
    if config.get("invert", False):
        return std, mean
    return 1.0 / std, -mean / std


def _affine(config: dict, weights: list, shapes: list[Shape], class_name: str) -> Chain:
    scale, offset = keras_affine(class_name, config, weights, shapes[0])
    rank = len(shapes[0])
    scale, offset = toolbox_layout(scale, rank), toolbox_layout(offset, rank)
    size = np.broadcast_shapes(scale.shape, offset.shape)
    layer = ScaleOffset(tuple(int(d) for d in size))
    params = {"scale": np.broadcast_to(scale, size), "offset": np.broadcast_to(offset, size)}
    return [("", layer, params)]


def _layer_scale(config: dict, weights: list, shapes: list[Shape]) -> Chain:
    """keras.applications.convnext's LayerScale: x * gamma, one gamma per channel."""
    gamma = np.asarray(weights[0], np.float32).reshape(-1)
    rank = len(shapes[0])
    size = (gamma.size, *([1] * (rank - 1))) if rank >= 3 else (gamma.size,)
    layer = ScaleOffset(size, trainable=True)
    params = {"scale": gamma.reshape(size), "offset": np.zeros(size, np.float32)}
    return [("", layer, params)]


def _identity(config: dict, weights: list, shapes: list[Shape]) -> Chain:
    """Identity, and noise layers at inference (GaussianNoise, GaussianDropout...)."""
    return [("", TorchFunction("torch.clone"), {})]


# -- wrappers ------------------------------------------------------------------------------------
_ON_LAST_AXIS = frozenset({"Dense", "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax",
                           "Dropout", "LayerNormalization", "BatchNormalization"})  # fmt: skip


def time_distributed_over(converters: dict, config: dict, weights: list, shapes: list) -> Chain:
    """TimeDistributed over a layer that acts on the last axis of each step alone: the layer
    applied to the whole sequence (N, T, C) gives the same result."""
    inner = config["layer"]
    kind = inner.get("class_name")
    _require(len(shapes[0]) == 2, "TimeDistributed on other than sequences (T, C)")
    _require(
        kind in _ON_LAST_AXIS,
        f"TimeDistributed around {kind} (supported around {', '.join(sorted(_ON_LAST_AXIS))}; "
        "sequences of images have no toolbox input layer)",
    )
    return converters[kind](inner["config"], weights, shapes)


MORE_CONVERTERS: dict[str, Callable[[dict, list, list[Shape]], Chain]] = {
    "DepthwiseConv1D": lambda c, w, s: _depthwise(c, w, s, 1),
    "DepthwiseConv2D": lambda c, w, s: _depthwise(c, w, s, 2),
    "SeparableConv1D": lambda c, w, s: _separable(c, w, s, 1),
    "SeparableConv2D": lambda c, w, s: _separable(c, w, s, 2),
    "Conv2DTranspose": lambda c, w, s: _conv_transpose(c, w, s, 2),
    "Conv3DTranspose": lambda c, w, s: _conv_transpose(c, w, s, 3),
    "UpSampling1D": lambda c, w, s: _upsampling(c, w, s, 1),
    "UpSampling2D": lambda c, w, s: _upsampling(c, w, s, 2),
    "UpSampling3D": lambda c, w, s: _upsampling(c, w, s, 3),
    "Cropping1D": lambda c, w, s: _cropping(c, w, s, 1),
    "Cropping2D": lambda c, w, s: _cropping(c, w, s, 2),
    "Cropping3D": lambda c, w, s: _cropping(c, w, s, 3),
    "Rescaling": lambda c, w, s: _affine(c, w, s, "Rescaling"),
    "Normalization": lambda c, w, s: _affine(c, w, s, "Normalization"),
    "LayerScale": _layer_scale,
    "Identity": _identity,
    "GaussianNoise": _identity,
    "GaussianDropout": _identity,
    "AlphaDropout": _identity,
    "ActivityRegularization": _identity,
}

LAMBDA_REFUSED = (
    "is a Lambda layer: its Python code is stored in the file, and import_keras never loads "
    "or runs code from a file. Replace the Lambda with standard Keras layers and save the "
    "model again, or rebuild that step from toolbox layers after import"
)
