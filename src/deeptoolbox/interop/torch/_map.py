"""Rules that map traced torch modules and functions onto equivalent toolbox layers.

A rule gets what the traced call does (the module, or the function with its arguments in the
JSON form of :mod:`deeptoolbox.interop._operators`) and the example sizes flowing in; it
returns a toolbox layer and the tensors to copy into it once it is built (``{"weight":
module.weight}``: the layer's tensor name, then the original tensor), or None when the toolbox
has no exact equivalent (the call then becomes a ``TorchFunction`` or ``TorchModule`` layer).
The original tensors are kept by identity, so the converter can tie a tensor used by several
layers and map the layers' tensors back to the module's ``state_dict`` keys.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deeptoolbox import layers as L
from deeptoolbox.layers._activation import StochasticDepth


@dataclass(frozen=True, eq=False)
class Part:
    """Rows ``start:stop`` of an original tensor (``in_proj_weight`` split into q, k and v)."""

    tensor: torch.Tensor
    start: int
    stop: int

    def value(self) -> torch.Tensor:
        """The rows, as a view of the original tensor."""
        return self.tensor[self.start : self.stop]


Loader = dict[str, "torch.Tensor | Part"] | None  # tensor in the built layer -> original tensor
Mapped = tuple[nn.Module, Loader] | None


@dataclass
class Call:
    """One traced call: its arguments (JSON form), the example sizes of its inputs and output."""

    arguments: list[Any]
    keywords: dict[str, Any]
    input_shapes: list[tuple[int, ...]]
    output_shape: tuple[int, ...] | None
    flatten_users: bool = False  # every consumer of the result flattens it to (N, features)

    @property
    def rank(self) -> int:
        """Rank of the first input, batch included (0 when there is none)."""
        return len(self.input_shapes[0]) if self.input_shapes else 0

    @property
    def single(self) -> bool:
        """True for a call on exactly one tensor, with no other argument."""
        return self.arguments == [{"input": 0}] and not set(self.keywords) - {"inplace"}


def _copy(source: dict[str, torch.Tensor | None]) -> Loader:
    return {key: value for key, value in source.items() if value is not None}


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _conv2d(m: nn.Conv2d, call: Call) -> Mapped:
    if call.rank != 4 or m.padding_mode != "zeros":
        return None
    padding = m.padding if isinstance(m.padding, str) else _pair(m.padding)
    layer = L.Conv2d(
        m.out_channels, m.kernel_size, stride=m.stride, padding=padding,
        dilation=m.dilation, groups=m.groups, bias=m.bias is not None,
    )  # fmt: skip
    return layer, _copy({"weight": m.weight, "bias": m.bias})


def _linear(m: nn.Linear, call: Call) -> Mapped:
    if call.rank not in (2, 3):
        return None
    return L.Dense(m.out_features, bias=m.bias is not None), _copy(
        {"weight": m.weight, "bias": m.bias}
    )


def _batchnorm(m: nn.modules.batchnorm._BatchNorm, call: Call) -> Mapped:
    rank = {nn.BatchNorm1d: 2, nn.BatchNorm2d: 4, nn.BatchNorm3d: 5}[type(m)]
    if call.rank != rank or m.momentum is None or not m.track_running_stats:
        return None
    state = {
        "running_mean": m.running_mean,
        "running_var": m.running_var,
        "num_batches_tracked": m.num_batches_tracked,
    }
    if m.affine:
        state |= {"weight": m.weight, "bias": m.bias}
    return L.BatchNorm(epsilon=m.eps, momentum=m.momentum), _copy(state)


def _layernorm(m: nn.LayerNorm, call: Call) -> Mapped:
    affine = m.elementwise_affine and m.bias is not None
    if call.rank not in (2, 3) or len(m.normalized_shape) != 1 or not affine:
        return None
    return L.LayerNorm(epsilon=m.eps), _copy({"weight": m.weight, "bias": m.bias})


def _pool(m: nn.MaxPool2d | nn.AvgPool2d, call: Call) -> Mapped:
    kernel, stride, padding = _pair(m.kernel_size), _pair(m.stride), _pair(m.padding)
    fits = (
        call.rank == 4
        and not m.ceil_mode
        and all(p <= k // 2 for p, k in zip(padding, kernel, strict=True))
    )
    if isinstance(m, nn.MaxPool2d):
        if not fits or m.return_indices or _pair(m.dilation) != (1, 1):
            return None
        return L.MaxPool2d(kernel, stride=stride, padding=padding), None
    if not fits or not m.count_include_pad or m.divisor_override is not None:
        return None
    return L.AvgPool2d(kernel, stride=stride, padding=padding), None


def _adaptive_avg(m: nn.AdaptiveAvgPool2d, call: Call) -> Mapped:
    if call.rank == 4 and _pair(m.output_size) == (1, 1) and call.flatten_users:
        return L.GlobalAvgPool(), None
    return None


def _adaptive_avg_nd(m: nn.Module, call: Call) -> Mapped:
    """``nn.AdaptiveAvgPool2d/3d`` to a fixed size (None entries keep the input's)."""
    dims = 2 if isinstance(m, nn.AdaptiveAvgPool2d) else 3
    sizes = (m.output_size,) * dims if isinstance(m.output_size, int) else tuple(m.output_size)
    if call.rank != dims + 2 or len(sizes) != dims:
        return None
    sizes = tuple(n if s is None else s for s, n in zip(sizes, call.input_shapes[0][2:],
                                                          strict=True))  # fmt: skip
    if any(s > n for s, n in zip(sizes, call.input_shapes[0][2:], strict=True)):
        return None
    kind = L.AdaptiveAvgPool2d if dims == 2 else L.AdaptiveAvgPool3d
    return kind(sizes), None


def _adaptive_avg_2d(m: nn.AdaptiveAvgPool2d, call: Call) -> Mapped:
    return _adaptive_avg(m, call) or _adaptive_avg_nd(m, call)


def _conv_transpose(m: nn.ConvTranspose2d | nn.ConvTranspose3d, call: Call) -> Mapped:
    """``nn.ConvTranspose2d/3d`` with symmetric padding and no groups, dilation or output
    padding: TransposedConv2d/3d with that cropping."""
    dims = len(m.kernel_size)
    plain = (
        m.groups == 1
        and m.padding_mode == "zeros"
        and tuple(m.dilation) == (1,) * dims
        and not any(m.output_padding)
        and not isinstance(m.padding, str)
    )
    if call.rank != dims + 2 or not plain or len(call.arguments) != 1 or call.keywords:
        return None  # output_size given in the call, options the layers do not have
    kind = L.TransposedConv2d if dims == 2 else L.TransposedConv3d
    layer = kind(m.out_channels, m.kernel_size, stride=m.stride, cropping=tuple(m.padding),
                 bias=m.bias is not None)  # fmt: skip
    return layer, _copy({"weight": m.weight, "bias": m.bias})


def _softmax(m: nn.Softmax, call: Call) -> Mapped:
    expected = -1 if call.rank <= 3 else 1
    if m.dim is None or m.dim % call.rank != expected % call.rank:
        return None
    return L.Softmax(), None


def _embedding(m: nn.Embedding, call: Call) -> Mapped:
    plain = m.max_norm is None and not m.scale_grad_by_freq and not m.sparse
    if call.rank != 2 or not plain:
        return None
    layer = L.Embedding(m.num_embeddings, m.embedding_dim, padding_index=m.padding_idx)
    return layer, _copy({"weight": m.weight})


_MODULE_RULES: dict[type, Callable[[Any, Call], Mapped]] = {
    nn.Conv2d: _conv2d,
    nn.Linear: _linear,
    nn.BatchNorm1d: _batchnorm,
    nn.BatchNorm2d: _batchnorm,
    nn.BatchNorm3d: _batchnorm,
    nn.LayerNorm: _layernorm,
    nn.MaxPool2d: _pool,
    nn.AvgPool2d: _pool,
    nn.AdaptiveAvgPool2d: _adaptive_avg_2d,
    nn.AdaptiveAvgPool3d: _adaptive_avg_nd,
    nn.ConvTranspose2d: _conv_transpose,
    nn.ConvTranspose3d: _conv_transpose,
    nn.Softmax: _softmax,
    nn.Embedding: _embedding,
    nn.ReLU: lambda m, call: (L.ReLU(), None),
    nn.Sigmoid: lambda m, call: (L.Sigmoid(), None),
    nn.Tanh: lambda m, call: (L.Tanh(), None),
    nn.SiLU: lambda m, call: (L.Swish(), None),
    nn.GELU: lambda m, call: (L.GELU(m.approximate), None),
    nn.LeakyReLU: lambda m, call: (L.LeakyReLU(m.negative_slope), None),
    nn.ELU: lambda m, call: (L.ELU(m.alpha), None) if m.alpha > 0 else None,
    nn.Dropout: lambda m, call: (L.Dropout(m.p), None) if m.p < 1 else None,
    nn.Flatten: lambda m, call: (
        (L.Flatten(), None) if (m.start_dim, m.end_dim) == (1, -1) else None
    ),
}


def _stochastic_depth(m: nn.Module, call: Call) -> Mapped:
    return StochasticDepth(m.p, m.mode), None


# modules of other libraries, by qualified class name (no import needed to recognize them);
# the tracer keeps them whole so that they map onto one layer
_NAMED_MODULE_RULES: dict[str, Callable[[Any, Call], Mapped]] = {
    "torchvision.ops.stochastic_depth.StochasticDepth": _stochastic_depth,
}


def qualified_name(thing: Any) -> str:
    """``module.qualname`` of a class or function, as used to recognize other libraries' code.

    Example:
        >>> qualified_name(nn.Linear)
        'torch.nn.modules.linear.Linear'
    """
    return f"{getattr(thing, '__module__', '')}.{getattr(thing, '__qualname__', '')}"


# functions of other libraries that map onto a layer: the tracer records calls to them as
# nodes (``torch.fx`` would otherwise run them on its proxies, and in evaluation mode
# ``stochastic_depth`` returns its input, leaving no trace of the layer)
_NAMED_FUNCTIONS = {"torchvision.ops.stochastic_depth": "stochastic_depth"}


def traced_functions() -> tuple[Callable, ...]:
    """The mapped functions of other libraries that are loaded now (to trace as nodes).

    Example:
        >>> import torchvision
        >>> [f.__name__ for f in traced_functions()]
        ['stochastic_depth']
    """
    found = []
    for module_name, attribute in _NAMED_FUNCTIONS.items():
        function = getattr(sys.modules.get(module_name), attribute, None)
        if callable(function):
            found.append(function)
    return tuple(found)


def is_mapped_leaf(module: nn.Module) -> bool:
    """True for a module of another library that maps onto one toolbox layer as a whole.

    Example:
        >>> import torchvision
        >>> is_mapped_leaf(torchvision.ops.StochasticDepth(0.1, "row"))
        True
    """
    return qualified_name(type(module)) in _NAMED_MODULE_RULES


def map_recurrent(module: nn.Module, call: Call) -> Mapped:
    """An ``nn.LSTM`` / ``nn.GRU`` (batch first) whose sequence output alone is used.

    Example:
        >>> call = Call([{"input": 0}], {}, [(2, 5, 3)], (2, 5, 4))
        >>> map_recurrent(nn.LSTM(3, 4, batch_first=True), call)[0]
        LSTM(hidden_size=4)
    """
    kinds = {nn.LSTM: L.LSTM, nn.GRU: L.GRU}
    if type(module) not in kinds:  # e.g. nn.MultiheadAttention, whose output 0 is used too
        return None
    plain = getattr(module, "proj_size", 0) == 0 and module.bias and module.batch_first
    if not plain or not call.single or call.rank != 3:
        return None
    layer = kinds[type(module)](
        module.hidden_size, bidirectional=module.bidirectional,
        num_layers=module.num_layers, dropout=module.dropout,
    )  # fmt: skip
    return layer, {f"rnn.{k}": v for k, v in module.state_dict(keep_vars=True).items()}


def map_module(module: nn.Module, call: Call) -> Mapped:
    """Return the toolbox layer equivalent to a traced module call, or None.

    Example:
        >>> call = Call([{"input": 0}], {}, [(2, 3)], (2, 4))
        >>> layer, load = map_module(nn.Linear(3, 4), call)
        >>> layer
        Dense(units=4)
    """
    rule = _MODULE_RULES.get(type(module)) or _NAMED_MODULE_RULES.get(qualified_name(type(module)))
    if rule is None or not call.single:
        return None
    return rule(module, call)


_ACTIVATIONS: dict[Any, Callable[[], nn.Module]] = {}
for _fns, _make in (
    ((F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_), L.ReLU),
    ((torch.sigmoid, F.sigmoid, torch.Tensor.sigmoid), L.Sigmoid),
    ((torch.tanh, F.tanh, torch.Tensor.tanh), L.Tanh),
    ((F.silu,), L.Swish),
    ((F.gelu,), L.GELU),
):
    for _fn in _fns:
        _ACTIVATIONS[_fn] = _make

_SUM = (operator.add, operator.iadd, torch.add, torch.Tensor.add)
_PRODUCT = (operator.mul, operator.imul, torch.mul, torch.Tensor.mul)
_FLATTEN = (torch.flatten, torch.Tensor.flatten)
_VIEW = (torch.Tensor.view, torch.Tensor.reshape, torch.reshape)
_BATCH = {"size": 0, "dim": 0}


def is_flatten(target: Any, arguments: list[Any], keywords: dict[str, Any]) -> bool:
    """True when a call flattens its input to (N, features).

    Example:
        >>> is_flatten(torch.flatten, [{"input": 0}, 1], {})
        True
    """
    if target in _FLATTEN:
        start = arguments[1] if len(arguments) > 1 else keywords.get("start_dim", 0)
        end = arguments[2] if len(arguments) > 2 else keywords.get("end_dim", -1)
        return arguments[:1] == [{"input": 0}] and start == 1 and end == -1
    if target in _VIEW and not keywords and arguments[:1] == [{"input": 0}]:
        rest = arguments[1:]
        if len(rest) == 1 and isinstance(rest[0], dict):
            rest = rest[0].get("tuple", rest[0].get("list", []))
        return rest == [_BATCH, -1]
    return False


def _join(target: Any, call: Call) -> Mapped:
    args, shapes = call.arguments, call.input_shapes
    if call.keywords or args != [{"input": 0}, {"input": 1}] or len(shapes) != 2:
        return None
    if shapes[0] != shapes[1]:
        return None
    return (L.Addition(), None) if target in _SUM else (L.Multiplication(), None)


def _concatenate(call: Call) -> Mapped:
    items = call.arguments[0] if call.arguments else None
    items = items.get("list", items.get("tuple")) if isinstance(items, dict) else None
    dim = call.arguments[1] if len(call.arguments) > 1 else call.keywords.get("dim", 0)
    count = len(call.input_shapes)
    if items != [{"input": k} for k in range(count)] or count < 2 or not isinstance(dim, int):
        return None
    dim %= call.rank
    if dim == 0 or set(call.keywords) - {"dim"}:
        return None
    return L.Concatenation(count, axis="channel" if dim == 1 and call.rank >= 4 else dim - 1), None


def _global_mean(target: Any, call: Call) -> Mapped:
    if call.rank != 4 or call.keywords.get("keepdim", False):
        return None
    if target is F.adaptive_avg_pool2d:
        size = call.arguments[1] if len(call.arguments) > 1 else None
        size = size.get("tuple", size.get("list")) if isinstance(size, dict) else size
        if size in (1, [1, 1]) and call.flatten_users:
            return L.GlobalAvgPool(), None
        return None
    dims = call.arguments[1] if len(call.arguments) == 2 else None
    dims = dims.get("tuple", dims.get("list")) if isinstance(dims, dict) else None
    if dims is not None and sorted(d % 4 for d in dims) == [2, 3]:
        return L.GlobalAvgPool(), None
    return None


def map_function(target: Any, call: Call) -> Mapped:
    """Return the toolbox layer equivalent to a traced function or method call, or None.

    Example:
        >>> call = Call([{"input": 0}, {"input": 1}], {}, [(2, 3), (2, 3)], (2, 3))
        >>> map_function(operator.add, call)[0]
        Addition()
    """
    if target in _ACTIVATIONS and call.single:
        return _ACTIVATIONS[target](), None
    if target is F.gelu and call.arguments == [{"input": 0}]:
        return L.GELU(call.keywords.get("approximate", "none")), None
    if target in _SUM or target in _PRODUCT:
        return _join(target, call)
    if target is torch.cat:
        return _concatenate(call)
    if is_flatten(target, call.arguments, call.keywords):
        return L.Flatten(), None
    if target in (F.adaptive_avg_pool2d, torch.mean, torch.Tensor.mean):
        return _global_mean(target, call)
    if qualified_name(target) == "torchvision.ops.stochastic_depth.stochastic_depth":
        return _stochastic_depth_call(call)
    if target is F.dropout:
        return _dropout_call(call)
    return None


_IN_TRAINING = {"training": True}  # the flag of a call that reads ``self.training``


def _dropout_call(call: Call) -> Mapped:
    """``F.dropout(x, p, self.training)``: a Dropout layer (dropout in training only)."""
    names = ("input", "p", "training", "inplace")
    given = dict(zip(names, call.arguments, strict=False)) | call.keywords
    p = given.get("p", 0.5)
    if (
        given.get("input") != {"input": 0}
        or set(given) - set(names)
        or given.get("training", True) != _IN_TRAINING
        or given.get("inplace", False)
        or not isinstance(p, int | float)
        or isinstance(p, bool)
        or not 0 <= p < 1
    ):
        return None  # always on (training=True) or always off: a TorchFunction keeps that
    return L.Dropout(p), None


def _stochastic_depth_call(call: Call) -> Mapped:
    """``stochastic_depth(x, p, mode, self.training)``: the flag follows the mode.

    (A graph traced in evaluation mode only, as ``torch.export``'s, has ``False`` there.)
    """
    names = ("input", "p", "mode", "training")
    given = dict(zip(names, call.arguments, strict=False)) | call.keywords
    p, mode = given.get("p"), given.get("mode")
    if given.get("input") != {"input": 0} or set(given) - set(names):
        return None
    if (
        given.get("training") not in (False, _IN_TRAINING)
        or not isinstance(p, int | float)
        or isinstance(p, bool)
        or mode not in ("row", "batch")
    ):
        return None  # applied in evaluation too: not what the layer does
    return (StochasticDepth(p, mode), None) if 0 <= p <= 1 else None


def _argument(call: Call, index: int, default: Any = None) -> Any:
    value = call.arguments[index] if len(call.arguments) > index else default
    if isinstance(value, dict) and ("list" in value or "tuple" in value):
        return value.get("list", value.get("tuple"))
    return value


def _owned(owned: dict[str, torch.Tensor], spec: Any) -> torch.Tensor | None:
    return owned[spec["tensor"]] if isinstance(spec, dict) and "tensor" in spec else None


def _aten_conv(call: Call, owned: dict[str, torch.Tensor]) -> Mapped:
    weight, bias = _owned(owned, _argument(call, 1)), _owned(owned, _argument(call, 2))
    if call.rank != 4 or weight is None or (_argument(call, 2) is not None and bias is None):
        return None
    stride, padding = _argument(call, 3, [1, 1]), _argument(call, 4, [0, 0])
    dilation, groups = _argument(call, 5, [1, 1]), _argument(call, 6, 1)
    layer = L.Conv2d(
        weight.shape[0], tuple(weight.shape[2:]), stride=_pair(stride), padding=_pair(padding),
        dilation=_pair(dilation), groups=groups, bias=bias is not None,
    )  # fmt: skip
    return layer, _copy({"weight": weight, "bias": bias})


def _aten_linear(call: Call, owned: dict[str, torch.Tensor]) -> Mapped:
    weight, bias = _owned(owned, _argument(call, 1)), _owned(owned, _argument(call, 2))
    if (
        call.rank not in (2, 3)
        or weight is None
        or (_argument(call, 2) is not None and bias is None)
    ):
        return None
    return L.Dense(weight.shape[0], bias=bias is not None), _copy({"weight": weight, "bias": bias})


def _aten_batch_norm(call: Call, owned: dict[str, torch.Tensor]) -> Mapped:
    tensors = [_owned(owned, _argument(call, k)) for k in range(1, 5)]
    training, momentum, eps = (_argument(call, k) for k in (5, 6, 7))
    if call.rank not in (2, 4) or any(t is None for t in tensors) or training is not False:
        return None
    weight, bias, mean, var = tensors
    layer = L.BatchNorm(epsilon=eps, momentum=momentum or 0.1)
    return layer, _copy({"weight": weight, "bias": bias, "running_mean": mean, "running_var": var})


def _aten_simple(target: Any, call: Call) -> Mapped:
    aten = torch.ops.aten
    if target in (aten.relu.default, aten.relu_.default) and call.arguments == [{"input": 0}]:
        return L.ReLU(), None
    if target is aten.add.Tensor:
        return _join(operator.add, call)
    if target is aten.cat.default:
        return _concatenate(call)
    if target is aten.flatten.using_ints and call.arguments[:1] == [{"input": 0}]:
        ends = (_argument(call, 1, 0), _argument(call, 2, -1))
        return (L.Flatten(), None) if ends == (1, -1) else None
    if target is aten.adaptive_avg_pool2d.default and call.flatten_users and call.rank == 4:
        return (L.GlobalAvgPool(), None) if _argument(call, 1) == [1, 1] else None
    if target is aten.dropout.default and isinstance(_argument(call, 1), float):
        return (L.Dropout(_argument(call, 1)), None) if _argument(call, 1) < 1 else None
    return None


def map_aten(target: Any, call: Call, owned: dict[str, torch.Tensor]) -> Mapped:
    """Map an ATen operator call of a ``torch.export`` graph onto a toolbox layer, or None.

    Example:
        >>> call = Call([{"input": 0}], {}, [(2, 3)], (2, 3))
        >>> map_aten(torch.ops.aten.relu.default, call, {})[0]
        ReLU()
    """
    if call.keywords:
        return None
    aten = torch.ops.aten
    if target is aten.conv2d.default:
        return _aten_conv(call, owned)
    if target is aten.linear.default:
        return _aten_linear(call, owned)
    if target is aten.batch_norm.default:
        return _aten_batch_norm(call, owned)
    return None if owned else _aten_simple(target, call)
