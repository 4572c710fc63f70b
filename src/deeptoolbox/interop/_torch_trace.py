"""Trace a module with ``torch.fx`` and turn its graph into a Network.

Tracing goes down into every submodule it can; a submodule whose own ``forward`` cannot be
traced (data-dependent control flow, for example) is kept whole as a leaf. The graph is run on
the example inputs twice, with two batch sizes, to learn every tensor's size and which
integer values (sizes used in ``view`` calls) follow the batch size. Tensors computed from
parameters and constants alone (relative position biases) become ``{"call": ...}`` expressions
inside the layers that use them; a graph with calls no layer can store is retried through
``torch.export``.
"""

from __future__ import annotations

import copy
import inspect
import operator
import re
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from deeptoolbox import layers as L
from deeptoolbox.errors import DeepToolboxError
from deeptoolbox.interop._torch_layers import (
    OpaqueModule,
    TorchFunction,
    TorchModule,
    encode_constant,
    function_name,
    module_arguments,
)
from deeptoolbox.interop._torch_map import (
    Call,
    is_flatten,
    is_mapped_leaf,
    map_aten,
    map_function,
    map_module,
    map_recurrent,
    traced_functions,
)
from deeptoolbox.layers._input import InputLayer
from deeptoolbox.network import Network
from deeptoolbox.network._shapes import input_ports


class ConversionError(DeepToolboxError, ValueError):
    """Part of a traced graph has no layer form (caught by from_torch, which then wraps)."""


@dataclass(frozen=True)
class Meta:
    """Size and dtype of one tensor seen while running the traced graph."""

    shape: tuple[int, ...]
    dtype: torch.dtype


class _Tracer(fx.Tracer):
    def __init__(self, leaves: frozenset[str]) -> None:
        super().__init__(autowrap_functions=traced_functions())
        self.leaves = leaves

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return (
            qualified_name in self.leaves
            or is_mapped_leaf(module)
            or super().is_leaf_module(module, qualified_name)
        )


def _concrete_arguments(module: nn.Module, count: int) -> dict[str, Any]:
    try:
        parameters = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in parameters[count:] if p.default is not p.empty}


def _trace(module: nn.Module, count: int, leaves: frozenset[str]) -> fx.GraphModule:
    tracer = _Tracer(leaves)
    graph = tracer.trace(module, concrete_args=_concrete_arguments(module, count) or None)
    return fx.GraphModule(tracer.root, graph)


def _leaves(module: nn.Module, count: int) -> frozenset[str] | None:
    """Qualified names of submodules to keep whole; None when ``module`` itself cannot be traced."""
    try:
        _trace(module, count, frozenset())
        return frozenset()
    except Exception:  # noqa: BLE001 - any tracing failure: look deeper
        pass
    found: set[str] = set()
    for name, child in module.named_children():
        inner = _leaves(child, _required(child))
        found |= {name} if inner is None else {f"{name}.{leaf}" for leaf in inner}
    try:
        _trace(module, count, frozenset(found))
    except Exception:  # noqa: BLE001
        return None
    return frozenset(found)


def _required(module: nn.Module) -> int:
    try:
        parameters = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in parameters if p.kind in kinds and p.default is p.empty)


def trace(module: nn.Module, count: int) -> fx.GraphModule | None:
    """Trace ``module`` taking ``count`` inputs, keeping untraceable submodules whole.

    Returns None when the module's own ``forward`` cannot be traced.

    Example:
        >>> trace(nn.Sequential(nn.Linear(2, 3), nn.ReLU()), 1).graph.find_nodes(op="call_module")[0].target
        '0'
    """
    leaves = _leaves(module, count)
    return None if leaves is None else _trace(module, count, leaves)


class _Recorder(fx.Interpreter):
    def __init__(self, module: fx.GraphModule) -> None:
        super().__init__(module)
        self.seen: dict[fx.Node, Any] = {}

    def run_node(self, node: fx.Node) -> Any:
        result = super().run_node(node)
        self.seen[node] = _describe(result)
        return result


def _describe(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return Meta(tuple(value.shape), value.dtype)
    if isinstance(value, tuple | list) and any(isinstance(v, torch.Tensor) for v in value):
        return tuple(_describe(v) for v in value)
    return copy.copy(value)


def record(gm: fx.GraphModule, inputs: tuple[torch.Tensor, ...]) -> dict[fx.Node, Any]:
    """Run the graph and return, per node, a Meta for tensors or the (copied) value otherwise."""
    recorder = _Recorder(gm)
    with torch.no_grad():
        recorder.run(*inputs)
    return recorder.seen


def _grown(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x[:1]]) if x.dim() else x


def input_layer(meta: Meta) -> InputLayer | None:
    """The input layer that declares a tensor's example size (batch free), or None.

    Example:
        >>> input_layer(Meta((2, 3, 8, 8), torch.float32))
        ImageInput(size=(3, 8, 8))
    """
    size = meta.shape[1:]
    integers = not meta.dtype.is_floating_point
    if len(size) == 1:
        return L.SequenceInput(1, length=size[0]) if integers else L.FeatureInput(size[0])
    if len(size) == 2:
        return L.SequenceInput(size[1], length=size[0])
    if len(size) == 3:
        return L.ImageInput(size)
    if len(size) == 4:
        return L.VolumeInput(size)
    return None


_NAME = re.compile(r"[^A-Za-z0-9_\-]")


class Converter:
    """Builds a Network from a traced graph and the sizes recorded on two runs."""

    def __init__(self, gm: fx.GraphModule, inputs: tuple[torch.Tensor, ...]) -> None:
        self.gm = gm
        self.inputs = inputs
        self.seen = record(gm, inputs)
        try:
            self.seen_grown = record(gm, tuple(_grown(x) for x in inputs))
        except Exception:  # noqa: BLE001 - a graph fixed to one batch size: all values constant
            self.seen_grown = self.seen
        self.name = "network"
        self.source: dict[fx.Node, str] = {}
        self.loaders: list[tuple[str, Any]] = []
        self.taken: set[str] = set()
        self.entries: list[tuple[str, nn.Module, list[str]]] = []
        self.consumed: set[str] = set()
        self.input_names: list[str] = []
        self.free = _input_free(gm.graph)

    # -- names ----------------------------------------------------------------------------
    def _name(self, base: str) -> str:
        name = _NAME.sub("_", base.replace(".", "_")) or "layer"
        if not (name[0].isalpha() or name[0] == "_"):
            name = f"layer_{name}"
        if hasattr(nn.ModuleDict, name):
            name = f"{name}_op"
        unique, k = name, 1
        while unique in self.taken:
            unique, k = f"{name}_{k}", k + 1
        self.taken.add(unique)
        return unique

    # -- arguments ------------------------------------------------------------------------
    def _encode(self, value: Any, ports: list[fx.Node], owned: dict[str, Any]) -> Any:
        if isinstance(value, fx.Node):
            return self._encode_node(value, ports, owned)
        if isinstance(value, tuple | list):
            items = [self._encode(v, ports, owned) for v in value]
            return {"tuple": items} if isinstance(value, tuple) else {"list": items}
        if isinstance(value, slice):
            items = [self._encode(v, ports, owned) for v in (value.start, value.stop, value.step)]
            return {"slice": items}
        if isinstance(value, dict):
            return {"dict": {k: self._encode(v, ports, owned) for k, v in value.items()}}
        try:
            return encode_constant(value)
        except DeepToolboxError as err:
            raise ConversionError(str(err)) from err

    def _port(self, node: fx.Node, ports: list[fx.Node]) -> int:
        if node not in ports:
            ports.append(node)
        return ports.index(node)

    def _encode_node(self, node: fx.Node, ports: list[fx.Node], owned: dict[str, Any]) -> Any:
        if node.op == "get_attr":
            return {"tensor": _own(self._attribute(node.target), owned)}
        value = self.seen.get(node)
        tensors = isinstance(value, Meta) or (isinstance(value, tuple) and _all_meta(value))
        if tensors and node in self.free:
            return self._expression(node, ports, owned)
        if isinstance(value, Meta):
            return {"input": self._port(node, ports)}
        if _same(value, self.seen_grown.get(node)):
            return self._encode(value, ports, owned)
        return self._size_spec(node, ports, owned)

    def _expression(self, node: fx.Node, ports: list[fx.Node], owned: dict[str, Any]) -> Any:
        """A call evaluated at run time, e.g. a bias computed from parameters alone."""
        target = _target(node)
        name = function_name(target) if node.op in ("call_function", "call_method") else None
        if name is None:
            raise ConversionError(
                f"node '{node.name}' computes a value from parameters or sizes with "
                f"{target!r}, which a layer cannot store (allowed: torch functions, tensor "
                "methods and operators)"
            )
        return {
            "call": name,
            "args": [self._encode(a, ports, owned) for a in node.args],
            "kwargs": {k: self._encode(v, ports, owned) for k, v in node.kwargs.items()},
        }

    def _size_spec(self, node: fx.Node, ports: list[fx.Node], owned: dict[str, Any]) -> Any:
        """A value that follows the batch size: sizes of tensors and arithmetic on them."""
        target, args = node.target, node.args
        if node.op == "call_method" and target == "size" and isinstance(args[0], fx.Node):
            spec: dict[str, Any] = {"size": self._port(args[0], ports)}
            dim = args[1] if len(args) > 1 else node.kwargs.get("dim")
            return spec if dim is None else spec | {"dim": dim}
        if node.op == "call_function" and target is torch.ops.aten.sym_size.int:
            return {"size": self._port(args[0], ports), "dim": args[1]}
        if node.op == "call_function" and target is getattr and args[1] == "shape":
            return {"size": self._port(args[0], ports)}
        if node.op == "call_function" and target is operator.getitem:
            inner = self._size_spec(args[0], ports, owned)
            if "size" in inner and "dim" not in inner and isinstance(args[1], int):
                return inner | {"dim": args[1]}
        if node.op in ("call_function", "call_method") and _is_arithmetic(_target(node)):
            return self._expression(node, ports, owned)
        raise ConversionError(
            f"node '{node.name}' computes a value from the batch size that a layer cannot store"
        )

    def _attribute(self, target: str) -> torch.Tensor:
        owner, _, attr = target.rpartition(".")
        value = getattr(self.gm.get_submodule(owner) if owner else self.gm, attr)
        if not isinstance(value, torch.Tensor):
            raise ConversionError(f"attribute '{target}' is a {type(value).__name__}")
        return value

    # -- nodes ----------------------------------------------------------------------------
    def convert(self) -> Network:
        """The Network; a graph with calls that cannot be stored is retried through torch.export.

        ``torch.export`` traces into library functions that ``torch.fx`` keeps whole (Swin's
        windowed attention) and into modules with shape-dependent control flow (Hugging Face
        models), giving ATen calls with the batch size kept symbolic.
        """
        try:
            return self._convert()
        except ConversionError:
            gm = None if _is_aten(self.gm.graph) else _exported(self.gm, self.inputs)
            if gm is None:
                raise
            converter = Converter(gm, self.inputs)
            converter.name = self.name
            network = converter._convert()
            _warn_training_only(self.gm, self.name)
            return network

    def _convert(self) -> Network:
        needed = _needed(self.gm.graph)
        for node in self.gm.graph.nodes:
            if node not in needed or node.op in ("get_attr", "output"):
                continue
            if node.op == "placeholder":
                self._placeholder(node)
            elif node in self.free:
                continue  # computed from parameters alone: folded into the calls that use it
            elif isinstance(self.seen.get(node), Meta):
                self._operation(node)
            elif not isinstance(self.seen.get(node), tuple) or not _all_meta(self.seen[node]):
                continue  # plain values are folded into the calls that use them
        self._outputs(_output_node(self.gm.graph))
        return self._assemble()

    def _placeholder(self, node: fx.Node) -> None:
        meta = self.seen.get(node)
        layer = input_layer(meta) if isinstance(meta, Meta) else None
        if layer is None:
            raise ConversionError(f"input '{node.name}' has no input layer form")
        self._add(self._name(node.name), layer, [])
        self.source[node] = self._last
        self.input_names.append(self._last)

    def _operation(self, node: fx.Node) -> None:
        index = None
        producer = node
        if node.op == "call_function" and node.target is operator.getitem:
            parent = node.args[0]
            if isinstance(parent, fx.Node) and isinstance(self.seen.get(parent), tuple):
                producer, index = parent, node.args[1]
        ports: list[fx.Node] = []
        owned: dict[str, Any] = {}
        args = [self._encode(a, ports, owned) for a in producer.args]
        kwargs = {k: self._encode(v, ports, owned) for k, v in producer.kwargs.items()}
        if not ports:
            raise ConversionError(f"node '{node.name}' makes a tensor from no input tensor")
        call = Call(
            args, kwargs, [self.seen[p].shape for p in ports], self.seen[node].shape,
            flatten_users=self._flatten_users(node),
        )  # fmt: skip
        if producer.op == "call_module" and producer.target and _is_identity(self.gm, producer):
            self.source[node] = self.source[ports[0]]
            return
        dtypes = [str(self.seen[p].dtype).removeprefix("torch.") for p in ports]
        layer, loader = self._layer(producer, call, owned, index, dtypes, self._leading(ports))
        base = str(producer.target) if producer.op == "call_module" else _path_name(node)
        self._add(self._name(base), layer, [self.source[p] for p in ports])
        if loader is not None:
            self.loaders.append((self._last, loader))
        self.source[node] = self._last

    def _leading(self, ports: list[fx.Node]) -> list[list[int]] | None:
        """Per input, ``[a, b]`` when its first dimension is ``a * batch + b`` (not the batch).

        Swin's attention runs on ``batch * windows`` rows, and masks have a fixed first size.
        """
        n1 = self.inputs[0].shape[0] if self.inputs else 1
        n2 = n1 + 1 if self.seen_grown is not self.seen else n1
        found = []
        for port in ports:
            s, g = self.seen[port].shape, self.seen_grown[port].shape
            if not s or not g or n1 == n2 or (g[0] - s[0]) % (n2 - n1):
                found.append([1, 0])
                continue
            a = (g[0] - s[0]) // (n2 - n1)
            found.append([a, s[0] - a * n1])
        return None if all(f == [1, 0] for f in found) else found

    def _flatten_users(self, node: fx.Node) -> bool:
        users = list(node.users)
        return bool(users) and all(self._is_flatten_node(u) for u in users)

    def _is_flatten_node(self, node: fx.Node) -> bool:
        if node.op == "call_module":
            module = self.gm.get_submodule(node.target)
            return isinstance(module, nn.Flatten) and (module.start_dim, module.end_dim) == (1, -1)
        target = _target(node)
        try:
            ports: list[fx.Node] = []
            args = [self._encode(a, ports, {}) for a in node.args]
            kwargs = {k: self._encode(v, ports, {}) for k, v in node.kwargs.items()}
        except ConversionError:
            return False
        aten_flatten = target is torch.ops.aten.flatten.using_ints and args[1:] == [1]
        return aten_flatten or is_flatten(target, args, kwargs)

    def _layer(
        self, node: fx.Node, call: Call, owned: dict[str, Any], index: Any, dtypes: list[str],
        leading: list[list[int]] | None = None,
    ) -> tuple:  # fmt: skip
        common: dict[str, Any] = {
            "arguments": call.arguments,
            "keywords": call.keywords,
            "num_inputs": len(call.input_shapes),
            "output_index": index,
            "input_dtypes": dtypes or None,
        }
        if leading is not None:
            common["input_leading"] = leading
        if node.op == "call_module":
            module = self.gm.get_submodule(node.target)
            mapped = map_module(module, call) if index is None else None
            if index == 0:
                mapped = map_recurrent(module, call)
            if mapped is not None:
                return mapped
            arguments = module_arguments(module)
            if arguments is None:
                return OpaqueModule(_copied(module), **common), None
            layer = TorchModule(f"torch.nn.{type(module).__name__}", module_arguments=arguments,
                                **common)  # fmt: skip
            state = module.state_dict()
            return layer, lambda built: built.module.load_state_dict(state)
        target = _target(node)
        mapped = None
        if index is None and isinstance(target, torch._ops.OpOverload):
            mapped = map_aten(target, call, owned)
        elif index is None and not owned:
            mapped = map_function(target, call)
        if mapped is not None:
            return mapped
        name = function_name(target)
        if name is None:
            raise ConversionError(f"function {target!r} of node '{node.name}' cannot be stored")
        tensors = {
            key: {"shape": list(value.shape), "dtype": str(value.dtype).removeprefix("torch."),
                  "parameter": isinstance(value, nn.Parameter)}
            for key, value in owned.items()
        }  # fmt: skip
        layer = TorchFunction(name, tensors=tensors, **common)

        def load(built: nn.Module) -> None:
            with torch.no_grad():
                for key, value in owned.items():
                    getattr(built, key).copy_(value)

        return layer, load if owned else None

    def _outputs(self, node: fx.Node) -> None:
        result = node.args[0]
        items = list(result) if isinstance(result, tuple | list) else [result]
        if not all(isinstance(i, fx.Node) and i in self.source for i in items):
            raise ConversionError("the module returns something other than tensors")
        names = [self.source[i] for i in items]
        if len(items) == 1 and names[0] not in self.consumed and names[0] not in self.input_names:
            return
        for k, name in enumerate(names):
            self._add(self._name(f"output_{k + 1}"), TorchFunction("torch.clone"), [name])

    # -- assembly -------------------------------------------------------------------------
    def _add(self, name: str, layer: nn.Module, sources: list[str]) -> None:
        self.entries.append((name, layer, sources))
        self.consumed.update(sources)
        self._last = name

    def _assemble(self) -> Network:
        net = Network(name=self.name)
        with net._deferred():  # sizes are resolved once, at the end
            for name, layer, sources in self.entries:
                net.add_layers({name: layer})
                for port, source in zip(input_ports(layer), sources, strict=True):
                    net.connect(source, f"{name}/{port}")
        net.initialize()
        for name, load in self.loaders:
            load(net.layer(name))
        return net


def _warn_training_only(module: nn.Module, name: str) -> None:
    """A graph exported in evaluation mode has no dropout or stochastic depth: say so."""
    dropped = sorted(
        {type(m).__name__ for m in module.modules()
         if type(m).__name__ in ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d",
                                 "AlphaDropout", "StochasticDepth", "DropPath")
         and float(getattr(m, "p", getattr(m, "drop_prob", 0.0)) or 0.0) > 0}
    )  # fmt: skip
    if dropped:
        warnings.warn(
            f"from_torch: '{name}' was converted through torch.export in evaluation mode, so its "
            f"{', '.join(dropped)} layers are not in the network: outputs match in evaluation, "
            "but training the network does not apply them.",
            UserWarning,
            stacklevel=4,
        )


def _is_aten(graph: fx.Graph) -> bool:
    return any(isinstance(n.target, torch._ops.OpOverload) for n in graph.nodes)


def _exported(gm: fx.GraphModule, inputs: tuple[torch.Tensor, ...]) -> fx.GraphModule | None:
    """``gm`` exported to functional ATen calls with a symbolic batch size, or None."""
    examples = inputs if all(x.shape[0] > 1 for x in inputs) else tuple(map(_grown, inputs))
    batch = torch.export.Dim("batch", min=1)
    try:
        program = torch.export.export(
            gm, examples, dynamic_shapes=tuple({0: batch} for _ in examples), strict=False
        )
        return program.run_decompositions({}).module()
    except Exception:  # noqa: BLE001 - a module torch.export cannot trace keeps the first error
        return None


def _path_name(node: fx.Node) -> str:
    """A node's name after the module path it ran in, as torch.export records it."""
    stack = list((node.meta.get("nn_module_stack") or {}).values())
    if not stack or not stack[-1][0]:
        return node.name
    path, kind = str(stack[-1][0]), str(stack[-1][1])
    if "deeptoolbox.network" in str(stack[0][1]) and path.startswith("layers."):
        path = path.removeprefix("layers.")  # a program exported from a Network
    leaf = kind.startswith("deeptoolbox.") or (
        kind.startswith("torch.nn.modules.") and ".container." not in kind
    )
    return path if leaf else f"{path}_{re.sub(r'_[0-9]+$', '', node.name)}"


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:  # noqa: BLE001 - values that cannot be compared are not the same
        return False


def _own(value: torch.Tensor, owned: dict[str, Any]) -> str:
    """The key of a tensor the layer owns, the same key each time the same tensor is used."""
    for key, known in owned.items():
        if known is value:
            return key
    key = f"t{len(owned)}"
    owned[key] = value
    return key


_ARITHMETIC = frozenset({
    operator.add, operator.sub, operator.mul, operator.floordiv, operator.truediv,
    operator.mod, operator.neg, operator.pow, operator.getitem,
})  # fmt: skip


def _is_arithmetic(target: Any) -> bool:
    return target in _ARITHMETIC or target is torch.sym_int or target is torch.sym_max


def _input_free(graph: fx.Graph) -> set[fx.Node]:
    """Calls whose value comes from parameters, buffers and constants alone (no input)."""
    free: set[fx.Node] = set()
    for node in graph.nodes:
        if node.op == "get_attr" or (
            node.op in ("call_function", "call_method")
            and all(n in free for n in node.all_input_nodes)
        ):
            free.add(node)
    return free


def _all_meta(values: tuple) -> bool:
    return all(isinstance(v, Meta) for v in values)


def _target(node: fx.Node) -> Any:
    if node.op == "call_method":
        return getattr(torch.Tensor, node.target, node.target)
    return node.target


def _is_identity(gm: fx.GraphModule, node: fx.Node) -> bool:
    return isinstance(gm.get_submodule(node.target), nn.Identity)


def _copied(module: nn.Module) -> nn.Module:
    try:
        return copy.deepcopy(module)
    except Exception:  # noqa: BLE001 - a module that cannot be copied is shared
        return module


def _output_node(graph: fx.Graph) -> fx.Node:
    return next(n for n in graph.nodes if n.op == "output")


def _needed(graph: fx.Graph) -> set[fx.Node]:
    needed: set[fx.Node] = set()
    stack = [_output_node(graph)]
    while stack:
        node = stack.pop()
        if node in needed:
            continue
        needed.add(node)
        stack.extend(node.all_input_nodes)
    needed |= {n for n in graph.nodes if n.op == "placeholder"}
    return needed
