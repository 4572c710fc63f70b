"""Shared machinery of the explainers: inputs, targets, scores before softmax, layer choice."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deeptoolbox.data._adapter import empty_error, input_tensor
from deeptoolbox.errors import (
    InputSizeError,
    LayerChoiceError,
    LayerNotFoundError,
    OptionError,
    TargetError,
)
from deeptoolbox.layers._activation import Softmax
from deeptoolbox.layers._base import Layer, format_shape
from deeptoolbox.layers._input import (
    FeatureInput,
    ImageInput,
    InputLayer,
    SequenceInput,
    VolumeInput,
)
from deeptoolbox.layers._pool import _Pooling
from deeptoolbox.network._network import Network

Target = Any  # int | str | sequence of those | tensor | bool mask | (class, mask)


@dataclass
class Prepared:
    """A batch ready to explain: on the network's device, with its data kind."""

    x: torch.Tensor  # (N, ...) on the network's device
    kind: str  # "image", "volume", "sequence" or "features"
    batched: bool  # False when the caller gave one observation without batch axis
    device: torch.device  # where the caller's data lives; results go back there

    @property
    def spatial_size(self) -> tuple[int, ...]:
        """Size of the map: (H, W), (D, H, W), (T,) or (C,) for features."""
        if self.kind in ("image", "volume"):
            return tuple(self.x.shape[2:])
        return (int(self.x.shape[1]),)

    @property
    def channel_axis(self) -> int | None:
        """The axis summed to make a map, or None when there is none."""
        if self.kind in ("image", "volume"):
            return 1
        if self.kind == "sequence" and self.x.dim() == 3:
            return 2
        return None

    def to_map(self, attribution: torch.Tensor, reduce: str | None = "sum") -> torch.Tensor:
        """Reduce an attribution of the input's shape over channels, for the caller."""
        axis = self.channel_axis
        if reduce == "sum" and axis is not None:
            attribution = attribution.sum(axis)
        return self.finish(attribution)

    def finish(self, result: torch.Tensor) -> torch.Tensor:
        """Detach, move to the caller's device, drop the batch axis if the caller gave none."""
        result = result.detach().to(self.device)
        return result if self.batched else result[0]


def network_device(net: nn.Module) -> torch.device | None:
    """Device of the first parameter or buffer (None for a module without any)."""
    for tensor in [*net.parameters(), *net.buffers()]:
        return tensor.device
    return None


def _dtype(net: nn.Module) -> torch.dtype:
    for tensor in net.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.get_default_dtype()


def check_module(func: str, net: object) -> nn.Module:
    """Raise OptionError unless ``net`` is a torch module."""
    if not isinstance(net, nn.Module):
        raise OptionError(
            f"{func}: `net` must be a deeptoolbox Network or a torch.nn.Module. "
            f"Received: {type(net).__name__}."
        )
    return net


def prepare(func: str, net: nn.Module, x: Any) -> Prepared:
    """Check ``x`` against the network and return it batched, on the network's device."""
    check_module(func, net)
    x = input_tensor(x, f"{func}: `x`")  # any form the toolbox reads, as one tensor
    device = x.device
    x = x.to(network_device(net) or device, _dtype(net) if x.is_floating_point() else None)
    if isinstance(net, Network):
        kind, x, batched = _prepare_for_network(func, net, x)
    else:
        kinds = {2: "features", 3: "sequence", 4: "image", 5: "volume"}
        if x.dim() not in kinds:
            raise InputSizeError(
                f"{func}: `x` must be a batch of features (N, C), sequences (N, T, C), images "
                f"(N, C, H, W) or volumes (N, C, D, H, W). Received a tensor of size "
                f"{tuple(x.shape)}."
            )
        kind, batched = kinds[x.dim()], True
    if len(x) == 0:
        raise empty_error(f"{func}: `x`", tuple(x.shape))
    return Prepared(x, kind, batched, device)


def _prepare_for_network(
    func: str, net: Network, x: torch.Tensor
) -> tuple[str, torch.Tensor, bool]:
    names = net.input_names
    if len(names) != 1:
        raise OptionError(
            f"{func}: explainers take networks with one input; network '{net.name}' has "
            f"{len(names)} ({', '.join(names)})."
        )
    layer: InputLayer = net.layer(names[0])  # type: ignore[assignment]
    kinds = {
        ImageInput: "image",
        VolumeInput: "volume",
        SequenceInput: "sequence",
        FeatureInput: "features",
    }
    kind = next((k for cls, k in kinds.items() if isinstance(layer, cls)), None)
    if kind is None:
        raise OptionError(
            f"{func}: input layer '{names[0]}' ({type(layer).__name__}) is not supported; "
            "supported: ImageInput, VolumeInput, SequenceInput, FeatureInput."
        )
    batched = True
    if not layer.accepts(tuple(x.shape[1:])) and layer.accepts(tuple(x.shape)):
        x, batched = x.unsqueeze(0), False
    net.check_inputs([x])
    return kind, x, batched


@contextlib.contextmanager
def evaluation(net: nn.Module, use_logits: bool = True) -> Iterator[bool]:
    """Put ``net`` in eval mode (restored after) and, with ``use_logits``, make a final Softmax
    layer pass its input through, so scores are explained before the softmax.

    Yields True when a final softmax was bypassed.
    """
    was_training = net.training
    net.eval()
    softmax = final_softmax(net) if use_logits else None
    handle = (
        softmax.register_forward_hook(lambda module, inputs, output: inputs[0])
        if softmax is not None
        else None
    )
    try:
        yield softmax is not None
    finally:
        if handle is not None:
            handle.remove()
        net.train(was_training)


def final_softmax(net: nn.Module) -> nn.Module | None:
    """The softmax layer that ends ``net`` (a Network or an nn.Sequential), or None."""
    if isinstance(net, Network):
        outputs = net.output_names
        if len(outputs) == 1 and isinstance(net.layer(outputs[0]), Softmax):
            return net.layer(outputs[0])
        return None
    if isinstance(net, nn.Sequential) and len(net) and isinstance(net[-1], nn.Softmax | Softmax):
        return net[-1]
    return None


def run(func: str, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Call ``net`` and insist on one tensor output."""
    output = net(x)
    if not isinstance(output, torch.Tensor):
        raise OptionError(
            f"{func}: the network returns {type(output).__name__}; explainers need one output "
            "tensor. Wrap the network in a module that returns the output to explain."
        )
    return output


class Scorer(nn.Module):
    """``net`` followed by a weighted sum of its outputs: one score per observation.

    The weights select the target (a one-hot vector for a class, a masked one-hot map for a
    segmentation output). Passing them as a forward argument lets perturbation and path
    methods expand them together with the inputs.
    """

    def __init__(self, net: nn.Module, func: str = "explain") -> None:
        super().__init__()
        self.net = net
        self.func = func

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        output = run(self.func, self.net, x)
        return (output * weights).reshape(len(output), -1).sum(1)


# -- targets ------------------------------------------------------------------------------------
def class_axis(output: torch.Tensor) -> int | None:
    """Axis of classes/responses in an output: last for vectors and sequences, 1 for maps."""
    if output.dim() <= 1:
        return None
    return -1 if output.dim() <= 3 else 1


def target_weights(
    func: str,
    net: nn.Module,
    output: torch.Tensor,
    target: Target,
    start: int = 0,
    total: int | None = None,
) -> torch.Tensor:
    """One weight per output element: the score explained is ``(output * weights).sum()``.

    ``target`` None picks the largest output (the predicted class) per observation, or per
    position for outputs with spatial/time extent. ``output`` may be the chunk of a batch of
    ``total`` observations starting at ``start``; per-observation targets are sliced to it.
    """
    output = output.detach()
    total = len(output) if total is None else total
    chunk = slice(start, start + len(output))
    axis = class_axis(output)
    if axis is None:  # one number per observation
        if target not in (None, 0):
            raise TargetError(
                f"{func}: the network gives one number per observation, so `target` must be "
                f"None or 0. Received: target={target!r}."
            )
        return torch.ones_like(output)
    num = output.shape[axis]
    spatial = output.dim() > 2
    mask = None
    if isinstance(target, tuple) and len(target) == 2 and _is_mask(target[1]):
        target, mask = target
    elif _is_mask(target):
        target, mask = None, target
    if mask is not None and not spatial:
        raise TargetError(
            f"{func}: a pixel mask `target` needs an output with spatial or time extent; this "
            f"network's output has size {format_shape(tuple(output.shape[1:]))}."
        )
    if target is None:
        index = output.argmax(axis, keepdim=True)
    else:
        index = _class_indices(func, net, target, num, total)[chunk].to(output.device)
        shape = list(output.shape)
        shape[axis] = 1
        index = index.view(-1, *([1] * (output.dim() - 1))).expand(shape)
    weights = torch.zeros_like(output).scatter_(axis, index, 1.0)
    if mask is not None:
        mask = _position_mask(func, mask, output, axis, total)[chunk]
        weights = weights * mask.unsqueeze(axis)
    return weights


def _is_mask(value: object) -> bool:
    if isinstance(value, np.ndarray):
        return value.dtype == bool
    return isinstance(value, torch.Tensor) and value.dtype == torch.bool


def _position_mask(
    func: str, mask: Any, output: torch.Tensor, axis: int, total: int
) -> torch.Tensor:
    mask = torch.as_tensor(mask, device=output.device)
    positions = [output.shape[d] for d in range(1, output.dim()) if d != axis % output.dim()]
    if tuple(mask.shape) == tuple(positions):
        mask = mask.unsqueeze(0).expand(total, *positions)
    if tuple(mask.shape) != (total, *positions):
        raise TargetError(
            f"{func}: a pixel-mask `target` must have size {tuple(positions)} or "
            f"{(total, *positions)} to match the output positions. Received a mask of "
            f"size {tuple(mask.shape)}."
        )
    return mask.to(output.dtype)


def _class_indices(func: str, net: nn.Module, target: Any, num: int, n: int) -> torch.Tensor:
    if isinstance(target, torch.Tensor | np.ndarray) and np.ndim(target) == 0:
        target = target.item()
    if isinstance(target, int | np.integer | str) and not isinstance(target, bool):
        values = [target] * n
    elif isinstance(target, Sequence | torch.Tensor | np.ndarray) and not isinstance(target, str):
        values = list(target.tolist() if hasattr(target, "tolist") else target)
        if len(values) != n:
            raise TargetError(
                f"{func}: `target` lists {len(values)} classes for {n} observations; give one "
                "class, or one per observation."
            )
    else:
        raise TargetError(
            f"{func}: `target` must be None, a class index, a class name, one of those per "
            f"observation, or a bool pixel mask. Received: target={target!r}."
        )
    return torch.tensor([_class_index(func, net, v, num) for v in values], dtype=torch.long)


def _class_index(func: str, net: nn.Module, value: Any, num: int) -> int:
    classes = getattr(net, "classes", None)
    if isinstance(value, str):
        if not classes:
            raise TargetError(
                f"{func}: `target` is the class name {value!r}, but the network has no class "
                "names (net.classes is None). Give a class index instead."
            )
        if value not in classes:
            raise TargetError(
                f"{func}: `target` {value!r} is not a class of the network. Classes: {classes}."
            )
        return list(classes).index(value)
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TargetError(
            f"{func}: `target` must hold class indices or names. Received: {value!r}."
        )
    if not 0 <= int(value) < num:
        names = f" ({', '.join(map(str, classes))})" if classes else ""
        raise TargetError(
            f"{func}: `target` index {int(value)} is out of range: the network has {num} "
            f"outputs, indices 0 to {num - 1}{names}."
        )
    return int(value)


# -- layers -------------------------------------------------------------------------------------
_TORCH_CHANNELS_FIRST_1D = (
    nn.Conv1d,
    nn.MaxPool1d,
    nn.AvgPool1d,
    nn.BatchNorm1d,
    nn.ConvTranspose1d,
)


def layer_name(net: nn.Module, layer: nn.Module) -> str:
    """The name of ``layer`` inside ``net`` (its Network name, or its module path)."""
    if isinstance(net, Network):
        for name in net.layer_names:
            if net.layer(name) is layer:
                return name
    for name, module in net.named_modules():
        if module is layer:
            return name or type(layer).__name__
    return type(layer).__name__


def find_layer(func: str, net: nn.Module, layer: str | nn.Module | None) -> nn.Module:
    """Resolve the ``layer`` option: a name, a module of ``net``, or None for the default."""
    if layer is None:
        if not isinstance(net, Network):
            raise LayerChoiceError(
                f"{func}: for a plain torch module, pass `layer=` as one of its modules (e.g. "
                "layer=model.layer4); only a deeptoolbox Network can pick a default layer."
            )
        return net.layer(default_layer(func, net))
    if isinstance(layer, str):
        if isinstance(net, Network):
            return net.layer(layer)
        modules = dict(net.named_modules())
        if layer not in modules or not layer:
            raise LayerNotFoundError(
                f"{func}: the module has no submodule named {layer!r}. Names: "
                f"{[n for n in modules if n][:30]}."
            )
        return modules[layer]
    if isinstance(layer, nn.Module):
        if not any(module is layer for module in net.modules()):
            raise LayerChoiceError(
                f"{func}: `layer` ({type(layer).__name__}) is not a module of the network."
            )
        return layer
    raise LayerChoiceError(
        f"{func}: `layer` must be a layer name, a module of the network or None. Received: "
        f"{layer!r}."
    )


def has_extent(shape: tuple | None) -> bool:
    """True for a layer output size with more than one position: (C, H, W) or (T, C)."""
    if shape is None or len(shape) < 2:
        return False
    positions = shape[:-1] if len(shape) == 2 else shape[1:]
    return any(p is None or p > 1 for p in positions)


def default_layer(func: str, net: Network) -> str:
    """The last layer with spatial or time extent that is not an output, before pooling."""
    outputs = set(net.output_names)
    candidates = [
        name
        for name in net.layer_names
        if name not in outputs
        and not isinstance(net.layer(name), InputLayer | Softmax)
        and has_extent(net.output_shape(name))
    ]
    if not candidates:
        raise LayerChoiceError(
            f"{func}: network '{net.name}' has no layer with spatial or time extent (an output "
            "size like (C, H, W) or (T, C)) to explain; use occlusion_sensitivity or "
            "gradient_attribution instead."
        )
    name = candidates[-1]
    while isinstance(net.layer(name), _Pooling):  # prefer the finer map before pooling
        sources = [s for s in net.sources(name).values() if s in candidates]
        if len(sources) != 1:
            break
        name = sources[0]
    return name


def check_extent(func: str, net: nn.Module, layer: nn.Module) -> None:
    """Raise LayerChoiceError when a Network layer's output has no spatial or time extent."""
    if not isinstance(net, Network):
        return
    name = layer_name(net, layer)
    shape = net.output_shape(name)
    if not has_extent(shape):
        usable = [
            n
            for n in net.layer_names
            if has_extent(net.output_shape(n)) and not isinstance(net.layer(n), InputLayer)
        ]
        raise LayerChoiceError(
            f"{func}: layer '{name}' has output size {format_shape(shape)}, without spatial or "
            f"time extent, so it cannot give a map. Layers with extent: {usable}."
        )


def channels_first(func: str, layer: nn.Module, activation: torch.Tensor) -> torch.Tensor:
    """An activation as (N, C, *positions); sequences of toolbox layers are (N, T, C)."""
    if not isinstance(activation, torch.Tensor):
        raise LayerChoiceError(
            f"{func}: layer {type(layer).__name__} returns {type(activation).__name__}, not a "
            "tensor; choose a layer with one tensor output."
        )
    if activation.dim() < 3:
        raise LayerChoiceError(
            f"{func}: layer {type(layer).__name__} gives outputs of size "
            f"{tuple(activation.shape)}, without spatial or time extent, so it cannot give a "
            "map. Choose a convolution, pooling or recurrent layer."
        )
    if activation.dim() == 3:
        torch_layout = isinstance(layer, _TORCH_CHANNELS_FIRST_1D) and not isinstance(layer, Layer)
        return activation if torch_layout else activation.transpose(1, 2)
    return activation


def upsample(func: str, maps: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Resize maps (N, *positions) to ``size`` (linear / bilinear / trilinear)."""
    if maps.dim() - 1 != len(size):
        raise LayerChoiceError(
            f"{func}: the layer's map has {maps.dim() - 1} position axes but the input has "
            f"{len(size)}; choose a layer of the same kind as the input (image or sequence)."
        )
    if tuple(maps.shape[1:]) == tuple(size):
        return maps
    modes = {1: "linear", 2: "bilinear", 3: "trilinear"}
    return F.interpolate(maps.unsqueeze(1), size=size, mode=modes[len(size)], align_corners=False)[
        :, 0
    ]


def check_positive_int(func: str, option: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` if it is an int >= ``minimum``, else raise OptionError naming it."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise OptionError(
            f"{func}: `{option}` must be an int >= {minimum}. Received: {option}={value!r}."
        )
    return int(value)


def fill_values(func: str, x: torch.Tensor, kind: str, value: object) -> torch.Tensor:
    """What hidden parts are replaced by (``baseline``): "mean" (per observation and channel) or a number."""
    if isinstance(value, str) and value == "mean":
        if kind in ("image", "volume"):
            return x.mean(dim=tuple(range(2, x.dim())), keepdim=True).expand_as(x)
        if kind == "sequence":
            return x.mean(dim=1, keepdim=True).expand_as(x)
        return x.mean(dim=1, keepdim=True).expand_as(x)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OptionError(
            f"{func}: `baseline` must be 'mean' or a number. Received: baseline={value!r}."
        )
    return torch.full_like(x, float(value))


def captum_attr() -> Any:
    """The ``captum.attr`` module, or an ImportError that says how to install it."""
    try:
        import captum.attr
    except ImportError as err:  # pragma: no cover - captum is in the "explain" extra
        raise ImportError(
            "deeptoolbox.explain uses Captum for occlusion and gradient attribution: "
            "pip install 'deeptoolbox[explain]' (or pip install captum)."
        ) from err
    return captum.attr
