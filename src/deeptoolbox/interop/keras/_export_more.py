"""More export_keras writers: the layers import_keras reads from Keras beyond the core set
(depthwise convolutions, transposed convolutions, upsampling, cropping, Rescaling, SimpleRNN
merge modes...), so a network imported from Keras exports back to Keras.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deeptoolbox import layers as L
from deeptoolbox.interop._operators import TorchFunction
from deeptoolbox.interop.keras._common import array as _array
from deeptoolbox.interop.keras._common import spec as _spec
from deeptoolbox.layers import MergeDirections, ScaleOffset
from deeptoolbox.layers._base import Shape


def depthwise_conv(name: str, m: L.Conv1d | L.Conv2d, padding: str) -> dict:
    """A convolution with one group per input channel as DepthwiseConv1D / DepthwiseConv2D."""
    dims = m.spatial_dims
    channels = int(m.in_channels)  # type: ignore[arg-type]
    multiplier = m.filters // channels
    weight = _array(m.weight)[:, 0]  # (C * multiplier, k...)
    kernel = np.transpose(weight, (*range(1, dims + 1), 0))  # (k..., C * multiplier)
    kernel = kernel.reshape(*kernel.shape[:dims], channels, multiplier)
    weights = [kernel] + ([_array(m.bias)] if m.bias is not None else [])
    config = {
        "kernel_size": list(m.kernel_size), "strides": list(m.stride), "padding": padding,
        "depth_multiplier": multiplier, "dilation_rate": list(m.dilation),
        "use_bias": m.bias is not None, "activation": "linear", "data_format": "channels_last",
    }  # fmt: skip
    return _spec(name, f"DepthwiseConv{dims}D", config, {"": weights})


def _transposed_conv(
    name: str, m: L.TransposedConv2d | L.TransposedConv3d, shape: Shape
) -> list[dict]:
    dims = len(m.kernel_size)  # (C, F, k...) -> (k..., F, C)
    weights = [np.transpose(_array(m.weight), (*range(2, dims + 2), 1, 0))]
    if m.bias is not None:
        weights.append(_array(m.bias))
    same = m.cropping == "same"
    config = {"filters": m.filters, "kernel_size": list(m.kernel_size),
              "strides": list(m.stride), "padding": "same" if same else "valid",
              "use_bias": m.bias is not None, "activation": "linear",
              "data_format": "channels_last"}  # fmt: skip
    out = [_spec(name if same or not any(m.padding) else f"{name}_full", f"Conv{dims}DTranspose",
                 config, {"": weights})]  # fmt: skip
    if not same and any(m.padding):  # cropping=int: Keras crops with a Cropping2D/3D after
        crop = [[p, p] for p in m.padding]
        config = {"cropping": crop, "data_format": "channels_last"}
        out.append(_spec(name, f"Cropping{dims}D", config))
    return out


def _resize(name: str, m: L.Resize2d | L.Resize3d, shape: Shape) -> list[dict]:
    dims = m.spatial_dims
    whole = m.scale is not None and all(float(s).is_integer() for s in m.scale)
    methods = ("nearest", "bilinear") if dims == 2 else ("nearest",)
    if not whole or m.method not in methods:
        raise ValueError(
            f"{type(m).__name__}(scale={m.scale}, output_size={m.output_size}, "
            f"method={m.method!r}) (Keras's UpSampling{dims}D takes whole scale factors, "
            f"{' or '.join(methods)})"
        )
    size = [int(s) for s in m.scale]  # type: ignore[union-attr]
    config = {"size": size, "data_format": "channels_last"}
    if dims == 2:
        config["interpolation"] = m.method
    return [_spec(name, f"UpSampling{dims}D", config)]


def _crop(name: str, m: Any, shape: Shape) -> list[dict]:
    if m.cropping is None:
        raise ValueError(
            "the crop-to-reference form (cropping=None; Keras's Cropping layers take fixed "
            "amounts: give Crop2d(cropping=...) the amounts)"
        )
    dims = m.spatial_dims
    cropping = [list(pair) for pair in m.cropping]
    config = {"cropping": cropping[0] if dims == 1 else cropping}
    if dims > 1:
        config["data_format"] = "channels_last"
    return [_spec(name, f"Cropping{dims}D", config)]


def _keras_layout(values: np.ndarray, rank: int) -> Any:
    """Values in the toolbox's layout, broadcast over a sample, as Keras's (channels last)."""
    values = np.moveaxis(values, 0, -1) if rank >= 3 and values.ndim == rank else values
    return values.tolist()


def _scale_offset(name: str, m: ScaleOffset, shape: Shape) -> list[dict]:
    rank = len(shape)
    scale, offset = _array(m.scale), _array(m.offset)
    if len(m.shape) < rank:  # broadcast to the sample's rank first (Keras: the last axes)
        scale = scale.reshape((1,) * (rank - scale.ndim) + scale.shape)
        offset = offset.reshape((1,) * (rank - offset.ndim) + offset.shape)
    config = {"scale": _keras_layout(scale, rank), "offset": _keras_layout(offset, rank)}
    return [_spec(name, "Rescaling", config)]


def _keras_permutation(order: list[int], rank: int) -> list[int]:
    """A permutation of the toolbox's sample axes (batch excluded) as Keras's Permute dims."""
    if rank not in (3, 4):  # features and sequences: the same layout in both
        return [d + 1 for d in order]
    # Keras (H, W, C) <-> toolbox (C, H, W), volumes alike
    to_toolbox, to_keras = (rank - 1, *range(rank - 1)), (*range(1, rank), 0)
    axes = np.arange(rank)[list(to_toolbox)][list(order)][list(to_keras)]
    return [int(d) + 1 for d in axes]


def torch_function_layer(name: str, m: TorchFunction, shape: Shape) -> list[dict] | None:
    """The Keras layer import_keras writes as this TorchFunction (None if none): UpSampling1D,
    ZeroPadding1D/2D/3D and Permute."""
    arguments, rank = m.arguments, len(shape)
    if not arguments or arguments[0] != {"input": 0} or m.tensors or m.output_index is not None:
        return None
    rest = arguments[1:]
    upsampling = m.function == "torch.repeat_interleave" and m.keywords == {"dim": 1}
    if upsampling and rank == 2 and len(rest) == 1 and isinstance(rest[0], int):
        return [_spec(name, "UpSampling1D", {"size": int(rest[0])})]
    if m.function == "torch.nn.functional.pad" and not m.keywords and len(rest) == 1:
        pads = rest[0].get("list") if isinstance(rest[0], dict) else None
        if rank == 3 and isinstance(pads, list) and len(pads) == 4:
            left, right, top, bottom = (int(p) for p in pads)
            config = {"padding": [[top, bottom], [left, right]], "data_format": "channels_last"}
            return [_spec(name, "ZeroPadding2D", config)]
        if rank == 4 and isinstance(pads, list) and len(pads) == 6:  # torch's order: W, H, D
            pairs = [[int(pads[i]), int(pads[i + 1])] for i in (4, 2, 0)]
            config = {"padding": pairs, "data_format": "channels_last"}
            return [_spec(name, "ZeroPadding3D", config)]
        if rank == 2 and isinstance(pads, list) and len(pads) == 4 and pads[:2] == [0, 0]:
            return [_spec(name, "ZeroPadding1D", {"padding": [int(pads[2]), int(pads[3])]})]
    permute = m.function == "torch.Tensor.permute" and not m.keywords and len(rest) == rank + 1
    if permute and rest[0] == 0 and sorted(rest[1:]) == list(range(1, rank + 1)):
        order = [int(d) - 1 for d in rest[1:]]
        return [_spec(name, "Permute", {"dims": _keras_permutation(order, rank)})]
    return None


def merged_directions(net: Any, name: str, m: MergeDirections, specs: list[dict]) -> list[dict]:
    """MergeDirections right after a bidirectional layer it alone reads: Keras's merge_mode."""
    source_name = net.sources(name)["in"]
    source = net.layer(source_name)
    readers = [c.destination for c in net.connections if c.source == source_name]
    recurrent = isinstance(source, L.LSTM | L.GRU | L.SimpleRNN) and source.bidirectional
    spec = next((s for s in specs if s["name"] == source_name), None)
    if m.mode not in ("sum", "mul", "ave") or not recurrent or readers != [name] or spec is None:
        raise ValueError(
            f"MergeDirections(mode={m.mode!r}) other than 'sum', 'mul' or 'ave' right after a "
            "bidirectional LSTM, GRU or SimpleRNN that nothing else reads (Keras's merge_mode)"
        )
    spec["config"]["merge_mode"] = m.mode
    copy = _spec(name, "Copy", {})
    copy["config"] = {"name": name}
    copy["operation"], copy["arguments"] = True, [None]
    return [copy]


MORE_EXPORTERS: dict[type, Any] = {
    L.TransposedConv2d: _transposed_conv,
    L.TransposedConv3d: _transposed_conv,
    L.Resize2d: _resize,
    L.Resize3d: _resize,
    L.Crop1d: _crop,
    L.Crop2d: _crop,
    L.Crop3d: _crop,
    ScaleOffset: _scale_offset,
}
