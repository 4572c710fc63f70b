"""Operator layers that hold what :func:`from_torch` cannot map onto a toolbox layer.

:class:`TorchFunction` calls one torch function, tensor method or operator;
:class:`TorchModule` runs one built-in ``torch.nn`` module rebuilt from its constructor
arguments. Both are registered, so networks holding them save and load like any other: the
function is stored by name (resolved on load only to tensor operations of torch,
``torch.nn.functional``, ``operator``, ``math`` and tensor methods, never to functions that
reach files or call arbitrary objects: no code is ever loaded from a file), constant arguments as
JSON, and tensors the operation owns as weights. :class:`OpaqueModule` wraps any other module
as it is; a network holding one runs, trains and exports to TorchScript, but cannot be saved
with :func:`deeptoolbox.save` (its code is not data).

Arguments are described by a small JSON language: ``{"input": k}`` is the layer's k-th input
(port ``in{k+1}``), ``{"size": k, "dim": d}`` the size of dimension ``d`` of input k at run time
(``{"size": k}`` the whole size), ``{"tensor": "t0"}`` a tensor the layer owns, and constants
are JSON values, ``{"list": [...]}``, ``{"tuple": [...]}``, ``{"slice": [a, b, c]}``,
``{"dtype": "float32"}``, ``{"ellipsis": true}``, ``{"float": "inf"}``,
``{"memory_format": "contiguous_format"}``, ``{"layout": "strided"}`` or ``{"device": "cpu"}``
(at run time: the device of the layer's inputs, or of its own tensors). A value computed at
run time, such as a relative position bias made from a parameter table, is
``{"call": name, "args": [...], "kwargs": {...}}``: the allowed function ``name`` called on the
decoded arguments at each forward (so gradients reach the owned parameters it reads).
"""

from __future__ import annotations

import builtins
import functools
import inspect
import json
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deeptoolbox.errors import OptionError, SizeMismatchError, UnregisteredLayerError
from deeptoolbox.layers._base import Layer, Shape, format_shape, register_layer

_NAMESPACES: dict[str, Any] = {
    "torch.nn.functional": F,
    "torch": torch,
    "torch.Tensor": torch.Tensor,
    "operator": operator,
    "math": math,
}
_BUILTINS = {"getattr": builtins.getattr}
# Names a file may ask for are data, not code: nothing that reaches files, processes or
# arbitrary callables. In ``torch``, only tensor operations (and the symbolic-size helpers
# the tracer writes); in ``operator``, not the helpers that call or fetch arbitrary things.
_TORCH_EXTRAS = {"sym_int", "sym_float", "sym_max", "sym_min", "sym_not", "_assert"}
_REFUSED = {"torch.from_file", "operator.call", "operator.methodcaller", "operator.attrgetter"}


def _is_tensor_operation(short: str) -> bool:
    return (
        hasattr(torch._C._VariableFunctions, short)
        or short in torch.functional.__all__
        or short in _TORCH_EXTRAS
    )


def _public_getattr(value: Any, name: str, *default: Any) -> Any:
    """``getattr`` for stored calls: public attributes only (``x.shape``, ``x.dtype``...)."""
    if not isinstance(name, str) or name.startswith("_"):
        raise OptionError(
            f"TorchFunction: stored getattr may read public attributes only. Received: {name!r}."
        )
    return getattr(value, name, *default)


_PROBE_LENGTHS = (7, 11)
_MODES = (None, "training", "evaluation")


def function_name(function: Callable) -> str | None:
    """The name under which a torch function, tensor method or operator can be stored.

    Returns None for anything that cannot be found again by name in an allowed namespace.

    Example:
        >>> function_name(torch.flatten), function_name(operator.add)
        ('torch.flatten', 'operator.add')
    """
    if isinstance(function, torch._ops.OpOverload | torch._ops.OpOverloadPacket):
        name = f"torch.ops.{function}"
        return name if resolve_function(name, strict=False) is function else None
    short = getattr(function, "__name__", None)
    if short is None:
        return None
    for prefix, namespace in _NAMESPACES.items():
        candidate = f"{prefix}.{short}"
        if getattr(namespace, short, None) is function:
            return candidate if resolve_function(candidate, strict=False) is function else None
    if _BUILTINS.get(short) is function:
        return f"builtins.{short}"
    return None


def resolve_function(name: str, *, strict: bool = True) -> Callable | None:
    """Find a stored function name again, only inside the allowed namespaces.

    Example:
        >>> resolve_function("torch.nn.functional.relu") is F.relu
        True
    """
    found: Any = None
    prefix, _, short = name.rpartition(".") if isinstance(name, str) else ("", "", "")
    if name in _REFUSED or short.startswith("__"):
        found = None
    elif name.startswith("torch.ops.aten.") or name.startswith("torch.ops.prims."):
        found = torch.ops
        for part in name.split(".")[2:]:
            found = getattr(found, part, None)
    elif name == "builtins.getattr":
        found = _public_getattr
    elif prefix == "torch" and not _is_tensor_operation(short):
        found = None
    else:
        namespace = _NAMESPACES.get(prefix)
        found = getattr(namespace, short, None) if namespace is not None else None
    if found is None and strict:
        allowed = ", ".join([*_NAMESPACES, "torch.ops.aten", "builtins.getattr"])
        raise OptionError(
            f"TorchFunction: `function` must name a function in {allowed}. Received: {name!r}."
        )
    return found


@functools.cache
def _resolved(name: str) -> Callable:
    return resolve_function(name)  # type: ignore[return-value]


def decode(
    spec: Any, inputs: Sequence[Any], tensors: dict[str, torch.Tensor], training: bool = False
) -> Any:
    """Turn an argument description into the value to call with (see the module docstring).

    ``{"training": true}`` is the layer's mode (``self.training`` of the traced module).

    Example:
        >>> decode({"tuple": [{"size": 0, "dim": 0}, -1]}, [torch.zeros(3, 4)], {})
        (3, -1)
        >>> decode({"training": True}, [], {}, training=True)
        True
    """
    if isinstance(spec, dict) and spec.keys() == {"training"}:
        return training if spec["training"] else not training
    if isinstance(spec, list | tuple) or (isinstance(spec, dict) and spec.keys() & _NESTED):
        return _decode_nested(spec, inputs, tensors, training)
    return _decode_leaf(spec, inputs, tensors)


_NESTED = {"call", "list", "tuple", "slice", "dict"}


def _decode_nested(
    spec: Any, inputs: Sequence[Any], tensors: dict[str, torch.Tensor], training: bool
) -> Any:
    def inner(item: Any) -> Any:
        return decode(item, inputs, tensors, training)

    if not isinstance(spec, dict):
        return spec
    if "call" in spec:
        args = [inner(s) for s in spec.get("args", ())]
        kwargs = {k: inner(v) for k, v in spec.get("kwargs", {}).items()}
        return _resolved(spec["call"])(*args, **kwargs)
    if "list" in spec:
        return [inner(s) for s in spec["list"]]
    if "tuple" in spec:
        return tuple(inner(s) for s in spec["tuple"])
    if "slice" in spec:
        return slice(*(inner(s) for s in spec["slice"]))
    return {k: inner(v) for k, v in spec["dict"].items()}


def _decode_leaf(spec: Any, inputs: Sequence[Any], tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(spec, dict):
        if "input" in spec:
            return inputs[spec["input"]]
        if "size" in spec:
            size = inputs[spec["size"]].shape
            return size if "dim" not in spec else size[spec["dim"]]
        if "tensor" in spec:
            return tensors[spec["tensor"]]
        if "dtype" in spec:
            return getattr(torch, spec["dtype"])
        if "ellipsis" in spec:
            return Ellipsis
        if "device" in spec:
            return _device(inputs, tensors, spec["device"])
        if "memory_format" in spec or "layout" in spec:
            value = getattr(torch, str(spec.get("memory_format", spec.get("layout"))), None)
            if not isinstance(value, torch.memory_format | torch.layout):
                raise OptionError(f"{spec!r} names no torch memory format or layout.")
            return value
        if "float" in spec:
            return float(spec["float"])
    return spec


def check_calls(spec: Any, where: str) -> None:
    """Check every ``{"call": name}`` inside an argument description names an allowed function.

    Example:
        >>> check_calls({"call": "torch.Tensor.view", "args": [{"tensor": "t0"}, -1]}, "x")
        >>> check_calls({"call": "os.system", "args": []}, "x")
        Traceback (most recent call last):
        ...
        deeptoolbox.errors.OptionError: x: `call` must name a function in torch.nn.functional, torch, torch.Tensor, operator, math, torch.ops.aten, builtins.getattr. Received: 'os.system'.
    """
    if isinstance(spec, list | tuple):
        for item in spec:
            check_calls(item, where)
        return
    if not isinstance(spec, dict):
        return
    if "call" in spec:
        name = spec["call"]
        args, kwargs = spec.get("args", []), spec.get("kwargs", {})
        if not (isinstance(name, str) and isinstance(args, list) and isinstance(kwargs, dict)):
            raise OptionError(
                f"{where}: a call must be {{'call': name, 'args': [...], 'kwargs': {{...}}}}. "
                f"Received: {spec!r}."
            )
        if resolve_function(name, strict=False) is None:
            allowed = ", ".join([*_NAMESPACES, "torch.ops.aten", "builtins.getattr"])
            raise OptionError(
                f"{where}: `call` must name a function in {allowed}. Received: {name!r}."
            )
        check_calls(args, where)
        check_calls(list(kwargs.values()), where)
        return
    for key in ("list", "tuple", "slice"):
        if key in spec:
            check_calls(spec[key], where)
    if isinstance(spec.get("dict"), dict):
        check_calls(list(spec["dict"].values()), where)


def _device(inputs: Sequence[Any], tensors: dict[str, torch.Tensor], stored: str) -> torch.device:
    """A device argument follows the layer's data, so a moved network creates tensors there."""
    for value in [*inputs, *tensors.values()]:
        if isinstance(value, torch.Tensor):
            return value.device
    return torch.device(stored)


def encode_constant(value: Any) -> Any:
    """Describe a constant argument as JSON; raise OptionError for what JSON cannot hold.

    Example:
        >>> encode_constant((1, slice(None, 2, None), torch.float32))
        {'tuple': [1, {'slice': [None, 2, None]}, {'dtype': 'float32'}]}
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": str(value)}
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if value is Ellipsis:
        return {"ellipsis": True}
    if isinstance(value, torch.device):
        return {"device": str(value)}  # runs on the device of the layer's data (see decode)
    if isinstance(value, torch.memory_format | torch.layout):
        kind = "memory_format" if isinstance(value, torch.memory_format) else "layout"
        return {kind: str(value).removeprefix("torch.")}
    if isinstance(value, slice):
        return {"slice": [encode_constant(v) for v in (value.start, value.stop, value.step)]}
    if isinstance(value, torch.Size | tuple):
        return {"tuple": [encode_constant(v) for v in value]}
    if isinstance(value, list):
        return {"list": [encode_constant(v) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: encode_constant(v) for k, v in value.items()}}
    raise OptionError(f"a constant argument of type {type(value).__name__} cannot be stored.")


def _probe_inputs(
    shapes: list[Shape],
    dtypes: Sequence[str],
    length: int,
    leading: Sequence[Sequence[int]],
    examples: Sequence[Sequence[int]] | None = None,
    batch: int = 1,
) -> list[torch.Tensor]:
    fits = (
        examples is not None
        and len(examples) == len(shapes)
        and all(
            len(e) == len(s) + 1 and all(d is None or d == e[k + 1] for k, d in enumerate(s))
            for e, s in zip(examples, shapes, strict=True)
        )
    )
    tensors = []
    for index, shape in enumerate(shapes):
        dtype = getattr(torch, dtypes[index]) if index < len(dtypes) else torch.float32
        if fits:  # the sizes recorded when converting (the first one included)
            tensors.append(torch.zeros(examples[index], dtype=dtype))  # type: ignore[index]
            continue
        a, b = leading[index] if index < len(leading) else (1, 0)
        first = a * batch + b
        size = (first, *(length if d is None else d for d in shape))
        tensors.append(torch.zeros(size, dtype=dtype))
    return tensors


class _Operator(Layer):
    """Shared logic: argument decoding, an output picked from a tuple, sizes by probing."""

    def _setup(
        self,
        arguments: Sequence[Any] | None,
        keywords: dict[str, Any] | None,
        num_inputs: int,
        output_index: int | None,
        input_dtypes: Sequence[str] | None,
        input_leading: Sequence[Sequence[int]] | None = None,
        probe_shapes: Sequence[Sequence[Sequence[int]]] | None = None,
        mode: str | None = None,
    ) -> None:
        if mode not in _MODES:
            raise OptionError(
                f"{type(self).__name__}: `mode` must be None (runs in both modes), 'training' or "
                f"'evaluation'. Received: mode={mode!r}."
            )
        self.mode = mode
        if arguments is None:  # each input in order
            arguments = [{"input": k} for k in range(num_inputs)]
        self.arguments = list(arguments)
        self.keywords = dict(keywords or {})
        where = type(self).__name__ + (f" '{self.name}'" if self.name else "")
        check_calls([self.arguments, list(self.keywords.values())], where)
        self.num_inputs = int(num_inputs)
        self.output_index = (
            list(output_index) if isinstance(output_index, list | tuple) else (output_index)
        )  # a path into nested results; a loaded config may give it as a tuple
        self.input_dtypes = list(input_dtypes or [])
        self.input_leading = [[int(a), int(b)] for a, b in (input_leading or [])]
        self.probe_shapes = (
            None if probe_shapes is None
            else [[[int(d) for d in shape] for shape in run] for run in probe_shapes][:2]
        )  # fmt: skip
        self.input_names = ("in",) if num_inputs == 1 else tuple(
            f"in{i}" for i in range(1, num_inputs + 1)
        )  # fmt: skip
        self._shape_cache: dict[tuple, Shape] = {}

    def _owned(self) -> dict[str, torch.Tensor]:
        return {}

    def _call(self, *values: Any, **keywords: Any) -> Any:
        raise NotImplementedError

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.mode is not None and self.training != (self.mode == "training"):
            return None  # type: ignore[return-value] - one side of `if self.training:`, idle
        tensors, training = self._owned(), self.training
        args = [decode(spec, inputs, tensors, training) for spec in self.arguments]
        kwargs = {k: decode(spec, inputs, tensors, training) for k, spec in self.keywords.items()}
        result = self._call(*args, **kwargs)
        if self.output_index is None:
            return result
        for key in (
            self.output_index if isinstance(self.output_index, list) else [self.output_index]
        ):
            result = result[key]  # a path into nested results: [1, 0] is h of (out, (h, c))
        return result

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        key = tuple(tuple(s) for s in input_shapes)
        if key not in self._shape_cache:
            self._shape_cache[key] = self._probe(input_shapes)
        return self._shape_cache[key]

    def _probe(self, input_shapes: list[Shape]) -> Shape:
        free = any(d is None for shape in input_shapes for d in shape)
        results = []
        was_training = self.training
        self.train(self.mode == "training")
        saved = [(b, b.detach().clone()) for b in self.buffers()] if self.mode == "training" else []
        try:
            for run, length in enumerate(_PROBE_LENGTHS[: 1 + free]):
                examples = self.probe_shapes[run] if self.probe_shapes else None
                inputs = _probe_inputs(
                    input_shapes, self.input_dtypes, length, self.input_leading, examples,
                    batch=2 if self.mode == "training" else 1,  # batch statistics need two
                )  # fmt: skip
                with torch.no_grad(), torch.random.fork_rng(devices=self._cuda_devices()):
                    output = self(*inputs)
                if not isinstance(output, torch.Tensor):
                    raise TypeError(f"it returned {type(output).__name__}, not a tensor")
                results.append(tuple(output.shape[1:]))
        except Exception as err:  # any failure means these sizes do not fit the operation
            sizes = ", ".join(format_shape(s) for s in input_shapes)
            raise SizeMismatchError(
                f"{type(self).__name__} {self.describe()} could not run on inputs of size "
                f"{sizes}: {err}"
            ) from err
        finally:
            self.train(was_training)
            with torch.no_grad():
                for buffer, value in saved:  # running statistics stay as they were
                    buffer.copy_(value)
        first = results[0]
        if len(results) == 2 and len(results[1]) == len(first):
            return tuple(None if a != b else a for a, b in zip(first, results[1], strict=True))
        return first

    def describe(self) -> str:
        """A short description of the operation for messages and tables."""
        return type(self).__name__

    def _cuda_devices(self) -> list[int]:
        return sorted({t.device.index or 0 for t in self.parameters() if t.device.type == "cuda"})


@register_layer
class TorchFunction(_Operator):
    """One torch function, tensor method or operator as a layer (what ``torch.fx`` calls a node).

    ``function`` is a stored name such as ``"torch.flatten"``, ``"torch.Tensor.view"`` or
    ``"operator.mul"``; ``arguments`` and ``keywords`` describe the call (see the module
    docstring); ``tensors`` declares tensors the layer owns (``{"t0": {"shape": [3],
    "dtype": "float32", "parameter": true}}``), saved with the weights. ``input_leading``
    gives, per input, ``[a, b]`` when that input's first dimension is ``a * batch + b`` rather
    than the batch (windows folded into the batch, fixed-size masks); it only sets the sizes
    the layer is probed with to learn its output size.

    Example:
        >>> import torch
        >>> layer = TorchFunction("torch.flatten", arguments=[{"input": 0}, 1])
        >>> layer(torch.zeros(2, 3, 4)).shape
        torch.Size([2, 12])
    """

    def __init__(
        self,
        function: str,
        *,
        arguments: Sequence[Any] = ({"input": 0},),
        keywords: dict[str, Any] | None = None,
        num_inputs: int = 1,
        tensors: dict[str, dict[str, Any]] | None = None,
        output_index: int | None = None,
        input_dtypes: Sequence[str] | None = None,
        input_leading: Sequence[Sequence[int]] | None = None,
        probe_shapes: Sequence[Sequence[Sequence[int]]] | None = None,
        mode: str | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.function = function
        resolve_function(function)  # fails early, naming what is allowed
        self._setup(
            arguments, keywords or {}, num_inputs, output_index, input_dtypes, input_leading,
            probe_shapes, mode,
        )  # fmt: skip
        self.tensors = dict(tensors or {})
        for key, info in self.tensors.items():
            dtype = getattr(torch, info.get("dtype", "float32"))
            value = torch.zeros(info["shape"], dtype=dtype)
            if info.get("parameter", False):
                self.register_parameter(key, nn.Parameter(value))
            else:
                self.register_buffer(key, value)

    def _owned(self) -> dict[str, torch.Tensor]:
        return {key: getattr(self, key) for key in self.tensors}

    def _call(self, *values: Any, **keywords: Any) -> Any:
        return _resolved(self.function)(*values, **keywords)

    def describe(self) -> str:
        return self.function


def module_arguments(module: nn.Module) -> dict[str, Any] | None:
    """Constructor arguments that rebuild a built-in ``torch.nn`` module, or None.

    The arguments are read back from the module's attributes and checked by building a copy
    and comparing its description and weight sizes.

    Example:
        >>> module_arguments(nn.MaxPool2d(3, stride=2, ceil_mode=True))["ceil_mode"]
        True
    """
    cls = type(module)
    if getattr(nn, cls.__name__, None) is not cls:
        return None
    arguments: dict[str, Any] = {}
    init = nn.RNNBase.__init__ if isinstance(module, nn.RNNBase) else cls.__init__
    for key, param in inspect.signature(init).parameters.items():
        if key in ("self", "device", "dtype", "mode") or param.kind in (
            param.VAR_POSITIONAL,
            param.VAR_KEYWORD,
        ):
            continue
        if not hasattr(module, key):
            if param.default is param.empty:
                return None
            continue
        value = getattr(module, key)
        if key == "bias" and (value is None or isinstance(value, torch.Tensor)):
            value = value is not None
        if isinstance(value, torch.Tensor | nn.Module):
            return None
        try:
            arguments[key] = json.loads(json.dumps(value))
        except (TypeError, ValueError):
            return None
    try:
        rebuilt = cls(**arguments)
    except Exception:  # noqa: BLE001 - any failure means the arguments do not rebuild it
        return None
    state, expected = rebuilt.state_dict(), module.state_dict()
    same_weights = state.keys() == expected.keys() and all(
        state[k].shape == expected[k].shape for k in state
    )
    return arguments if same_weights and repr(rebuilt) == repr(module) else None


class _ModuleOperator(_Operator):
    """Shared logic of the layers that run one ``nn.Module``: call it, describe it."""

    module: nn.Module

    def _call(self, *values: Any, **keywords: Any) -> Any:
        return self.module(*values, **keywords)

    def describe(self) -> str:
        return type(self.module).__name__


@register_layer
class TorchModule(_ModuleOperator):
    """A built-in ``torch.nn`` module (``"torch.nn.ReLU6"``, ``"torch.nn.LSTM"``...) as a layer.

    ``module`` names the class in ``torch.nn``; ``module_arguments`` are its constructor
    arguments. The module's weights are the layer's weights. ``output_index`` picks one output
    of a module that returns a tuple (``0`` for an LSTM's sequence output).

    Example:
        >>> import torch
        >>> layer = TorchModule("torch.nn.ReLU6")
        >>> layer(torch.tensor([[-1.0, 9.0]])).tolist()
        [[0.0, 6.0]]
    """

    def __init__(
        self,
        module: str,
        *,
        module_arguments: dict[str, Any] | None = None,
        arguments: Sequence[Any] = ({"input": 0},),
        keywords: dict[str, Any] | None = None,
        num_inputs: int = 1,
        output_index: int | None = None,
        input_dtypes: Sequence[str] | None = None,
        input_leading: Sequence[Sequence[int]] | None = None,
        probe_shapes: Sequence[Sequence[Sequence[int]]] | None = None,
        mode: str | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        prefix, _, short = module.rpartition(".")
        cls = getattr(nn, short, None) if prefix == "torch.nn" else None
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise OptionError(
                "TorchModule: `module` must name a module class in torch.nn, e.g. "
                f"'torch.nn.ReLU6'. Received: module={module!r}."
            )
        self.module_name = module
        self.module = cls(**(module_arguments or {}))
        self._setup(
            arguments, keywords, num_inputs, output_index, input_dtypes, input_leading,
            probe_shapes, mode,
        )  # fmt: skip

    def describe(self) -> str:
        return self.module_name


class OpaqueModule(_ModuleOperator):
    """Any ``nn.Module`` kept as it is, as one layer (the fallback of :func:`from_torch`).

    The network runs it, trains its weights and exports it to TorchScript or ONNX like any
    module, but :func:`deeptoolbox.save` refuses it (``UnregisteredLayerError``): its code is not
    data. Register the module's class with ``@register_layer`` and add the module to the network
    directly to make it savable.

    Example:
        >>> import torch
        >>> layer = OpaqueModule(torch.nn.Identity())
        >>> layer(torch.ones(1, 2)).tolist()
        [[1.0, 1.0]]
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        arguments: Sequence[Any] | None = None,
        keywords: dict[str, Any] | None = None,
        num_inputs: int = 1,
        output_index: int | None = None,
        input_dtypes: Sequence[str] | None = None,
        input_leading: Sequence[Sequence[int]] | None = None,
        probe_shapes: Sequence[Sequence[Sequence[int]]] | None = None,
        mode: str | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.module = module
        self._setup(
            arguments, keywords, num_inputs, output_index, input_dtypes, input_leading,
            probe_shapes, mode,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return type(self.module).__name__

    def get_config(self) -> dict[str, Any]:
        raise UnregisteredLayerError(
            f"Layer '{self.name}' is an OpaqueModule holding a {type(self.module).__name__} "
            "module, whose code cannot be written to network.json, so the network cannot be "
            "saved. Export it with deeptoolbox.interop.export_pytorch(net, path) instead, or "
            "register the module's class with @register_layer and put the module in the "
            "network directly."
        )
