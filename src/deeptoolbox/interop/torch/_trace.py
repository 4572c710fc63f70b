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
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from deeptoolbox.errors import ConversionError, DeepToolboxError
from deeptoolbox.interop._operators import (
    OpaqueModule,
    TorchFunction,
    TorchModule,
    encode_constant,
    function_name,
    module_arguments,
)
from deeptoolbox.interop.torch._blocks import Block, map_block
from deeptoolbox.interop.torch._map import (
    Call,
    Part,
    is_flatten,
    is_mapped_leaf,
    map_aten,
    map_function,
    map_module,
    map_recurrent,
    traced_functions,
)
from deeptoolbox.interop.torch._modes import (
    EVALUATION,
    EVALUATION_GRAPH,
    MODE,
    TRAINING,
    ModeError,
    has_modes,
    merge_modes,
    mode_calls,
    mode_select,
    running_in,
)
from deeptoolbox.interop.torch._values import (
    Meta,
    describe,
    input_layer,
    is_structure,
    output_label,
    output_leaves,
    resized,
)
from deeptoolbox.layers._combine import ModeSwitch
from deeptoolbox.network import Network, input_ports


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

    Returns None when the module's own ``forward`` cannot be traced. The module is traced in
    evaluation mode and in training mode; when its ``forward`` reads ``self.training`` the two
    graphs differ and are merged (see :mod:`deeptoolbox.interop.torch._modes`), so what it does
    in training only is kept.

    Example:
        >>> trace(nn.Sequential(nn.Linear(2, 3), nn.ReLU()), 1).graph.find_nodes(op="call_module")[0].target
        '0'
    """
    leaves = _leaves(module, count)
    if leaves is None:
        return None
    in_evaluation = _trace(module, count, leaves)
    was_training = module.training
    try:
        module.train(True)
        in_training = _trace(module, count, leaves)
    except Exception as err:  # noqa: BLE001 - the modes differ in a way fx cannot follow
        raise ModeError(
            f"its forward cannot be traced in training mode ({type(err).__name__}), so what it "
            "does in training cannot be kept"
        ) from err
    finally:
        module.train(was_training)
    return merge_modes(in_evaluation, in_training)


class _Recorder(fx.Interpreter):
    def __init__(self, module: fx.GraphModule, mode: str) -> None:
        super().__init__(module)
        self.seen: dict[fx.Node, Any] = {}
        self.mode = mode

    def run_node(self, node: fx.Node) -> Any:
        if node.meta.get(MODE) not in (None, self.mode):
            return None  # the other side of `if self.training:`
        result = super().run_node(node)
        self.seen[node] = describe(result)
        return result


def record(gm: fx.GraphModule, inputs: tuple[torch.Tensor, ...]) -> dict[fx.Node, Any]:
    """Run the graph and return, per node, a Meta for tensors or the (copied) value otherwise.

    A graph with calls for training only is run in both modes (running statistics and the
    random generator are put back after the training run).
    """
    recorder = _Recorder(gm, EVALUATION)
    with torch.no_grad(), running_in(gm, False):
        recorder.run(*inputs)
    if not has_modes(gm.graph):
        return recorder.seen
    in_training = _Recorder(gm, TRAINING)
    with torch.no_grad(), running_in(gm, True):
        in_training.run(*inputs)
    return recorder.seen | {
        n: v for n, v in in_training.seen.items() if n.meta.get(MODE) == TRAINING
    }


def _grown(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x[:1]]) if x.dim() else x


_NAME = re.compile(r"[^A-Za-z0-9_\-]")


class Converter:
    """Builds a Network from a traced graph and the sizes recorded on two runs."""

    def __init__(
        self,
        gm: fx.GraphModule,
        inputs: tuple[torch.Tensor, ...],
        free: dict[int, tuple[int, ...]] | None = None,
        runs: tuple[dict, dict] | None = None,
    ) -> None:
        self.gm = gm
        self.inputs = inputs
        self.free_dims = dict(free or {})  # input index -> dimensions left free
        if runs is not None:  # recorded already, by another converter of the same graph
            self.seen, self.seen_grown = runs
        else:
            self.seen = record(gm, inputs)
            try:
                self.seen_grown = record(gm, tuple(_grown(x) for x in inputs))
            except Exception:  # noqa: BLE001 - a graph fixed to one batch size: constants
                self.seen_grown = self.seen
        self.seen_resized = self.seen
        if self.free_dims:  # a third run at other sizes tells which values follow them
            self.resized_inputs = tuple(
                resized(x, self.free_dims.get(k, ())) for k, x in enumerate(inputs)
            )
            self.seen_resized = record(gm, self.resized_inputs)
        self.name = "network"
        self.source: dict[fx.Node, str] = {}
        self.loaders: list[tuple[str, Any]] = []
        self.origins: dict[str, Any] = {}  # network state_dict key -> original tensor (or Part)
        self.taken: set[str] = set()
        self.entries: list[tuple[str, nn.Module, list[str]]] = []
        self.consumed: set[str] = set()
        self.input_names: list[str] = []
        self.free = _input_free(gm.graph)
        self.reads_mode = _reads_mode(gm.graph)

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
        if node.op == "get_attr" and node.target == "training":
            return {"training": True}  # the layer's own mode
        if node in self.reads_mode and node in self.free:
            return self._expression(node, ports, owned)  # e.g. `not self.training`
        if node.op == "get_attr":
            return {"tensor": _own(self._attribute(node.target), owned)}
        value = self.seen.get(node)
        tensors = isinstance(value, Meta) or (isinstance(value, tuple) and _all_meta(value))
        if tensors and node in self.free:
            return self._expression(node, ports, owned)
        if isinstance(value, Meta):
            return {"input": self._port(node, ports)}
        if _same(value, self.seen_grown.get(node)) and _same(value, self.seen_resized.get(node)):
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
            if self.free_dims:
                raise  # torch.export keeps the example sizes: from_torch retries with those
            source = self.gm.__dict__.get(EVALUATION_GRAPH, self.gm)  # no training-only calls
            gm = None if _is_aten(source.graph) else _exported(source, self.inputs, self.free_dims)
            if gm is None:
                raise
            converter = Converter(gm, self.inputs, self.free_dims)
            converter.name = self.name
            network = converter._convert()
            self.origins = converter.origins
            _warn_training_only(self.gm, self.name, mode_calls(self.gm.graph))
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
            else:
                continue  # plain values are folded into the calls that use them; structures
                # (tuples, dicts) become layers where their tensors are read
        self._outputs(_output_node(self.gm.graph))
        return self._assemble()

    def _placeholder(self, node: fx.Node) -> None:
        meta = self.seen.get(node)
        free = self.free_dims.get(len(self.input_names), ())
        tokens = bool(node.users) and all(self._is_embedding(user) for user in node.users)
        layer = input_layer(meta, free, token_ids=tokens) if isinstance(meta, Meta) else None
        if layer is None:
            raise ConversionError(f"input '{node.name}' has no input layer form")
        self._add(self._name(node.name), layer, [])
        self.source[node] = self._last
        self.input_names.append(self._last)

    def _producer(self, node: fx.Node) -> tuple[fx.Node, list[Any]]:
        """The call a chain of ``getitem`` on tuple (or dict) results starts from, and the keys.

        ``out, (h, c) = self.lstm(x)`` reads ``h`` as ``lstm(x)[1][0]``: the LSTM call, [1, 0].
        """
        path: list[Any] = []
        producer = node
        while producer.op == "call_function" and producer.target is operator.getitem:
            parent = producer.args[0]
            if not (isinstance(parent, fx.Node) and is_structure(self.seen.get(parent))):
                break
            path.insert(0, producer.args[1])
            producer = parent
        return producer, path

    def _is_embedding(self, node: fx.Node) -> bool:
        """A call of an ``nn.Embedding`` that becomes a toolbox Embedding (takes (N, T, 1))."""
        if node.op != "call_module" or node.meta.get(MODE):
            return False
        module = self.gm.get_submodule(node.target)
        return isinstance(module, nn.Embedding) and (
            module.max_norm is None and not module.scale_grad_by_freq and not module.sparse
        )

    def _operation(self, node: fx.Node) -> None:
        producer, path = self._producer(node)
        self._emit(node, producer, path, self.seen[node])

    def _emit(self, key: Any, producer: fx.Node, path: list[Any], meta: Meta) -> None:
        """Add the layer computing ``producer``'s result (at ``path`` inside it) as ``key``."""
        index = None if not path else path[0] if len(path) == 1 else list(path)
        node = key if isinstance(key, fx.Node) else producer
        ports: list[fx.Node] = []
        owned: dict[str, Any] = {}
        args = [self._encode(a, ports, owned) for a in producer.args]
        kwargs = {k: self._encode(v, ports, owned) for k, v in producer.kwargs.items()}
        if not ports:
            raise ConversionError(f"node '{node.name}' makes a tensor from no input tensor")
        call = Call(
            args, kwargs, [self.seen[p].shape for p in ports], meta.shape,
            flatten_users=isinstance(key, fx.Node) and self._flatten_users(node),
        )  # fmt: skip
        if producer.op == "call_module" and producer.target and _is_identity(self.gm, producer):
            self.source[key] = self.source[ports[0]]
            return
        dtypes = [str(self.seen[p].dtype).removeprefix("torch.") for p in ports]
        base = str(producer.target) if producer.op == "call_module" else _path_name(node)
        if producer.op == "call_module" and not producer.meta.get(MODE):
            block = map_block(self.gm.get_submodule(producer.target), call, dtypes, index)
            if block is not None:
                self._add_block(key, base, block, ports)
                return
        layer, loader = self._layer(
            producer, call, owned, index, dtypes, self._leading(ports), self._probes(ports)
        )
        self._add(self._name(base), layer, [self.source[p] for p in ports])
        if loader is not None:
            self.loaders.append((self._last, loader))
        self.source[key] = self._last

    def _add_block(self, key: Any, base: str, block: Block, ports: list[fx.Node]) -> None:
        """Add the layers one call maps onto, named ``<module path>_<suffix>``."""
        names: dict[str, str] = {}
        for suffix, layer, sources, loader in block.entries:
            inputs = [self.source[ports[s]] if isinstance(s, int) else names[s] for s in sources]
            self._add(self._name(f"{base}_{suffix}" if suffix else base), layer, inputs)
            names[suffix] = self._last
            if loader:
                self.loaders.append((self._last, loader))
        self.source[key] = self._last

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

    def _probes(self, ports: list[fx.Node]) -> list[list[list[int]]] | None:
        """The sizes of the inputs at both example sizes recorded, when they differ: the layer
        finds its output size by running on these (free sizes follow; so do first dimensions
        such as ``batch * length`` that the batch alone does not give)."""
        if self.seen_resized is self.seen:
            return None
        first = [list(self.seen[p].shape) for p in ports]
        second = [list(self.seen_resized[p].shape) for p in ports]
        return None if first == second else [first, second]

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
        leading: list[list[int]] | None = None, probes: list | None = None,
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
        if probes is not None:
            common["probe_shapes"] = probes
        mode = node.meta.get(MODE)  # one side of `if self.training:`: runs in that mode only
        if mode is not None:
            common["mode"] = mode
        if node.op == "call_function" and node.target is mode_select:
            if call.arguments != [{"training": True}, {"input": 0}, {"input": 1}]:
                raise ConversionError(f"node '{node.name}' selects a value that is not a tensor")
            return ModeSwitch(), None
        if node.op == "call_module":
            return self._module_layer(self.gm.get_submodule(node.target), call, index, common)
        target = _target(node)
        mapped = None
        if index is None and mode is None and isinstance(target, torch._ops.OpOverload):
            mapped = map_aten(target, call, owned)
        elif index is None and mode is None and not owned:
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
        return layer, dict(owned) or None

    def _module_layer(
        self, module: nn.Module, call: Call, index: Any, common: dict[str, Any]
    ) -> tuple:
        """A toolbox layer for a module call, else a TorchModule, else an OpaqueModule."""
        plain = "mode" not in common  # one side of `if self.training:` must stay gated
        mapped = map_module(module, call) if index is None and plain else None
        if index == 0 and plain:
            mapped = map_recurrent(module, call)
        if mapped is not None:
            return mapped
        arguments = module_arguments(module)
        if arguments is None:
            _warn_parametrized(module)
            copied = _copied(module)
            state = module.state_dict(keep_vars=True) if copied is not module else {}
            return OpaqueModule(copied, **common), {f"module.{k}": v for k, v in state.items()}
        layer = TorchModule(f"torch.nn.{type(module).__name__}", module_arguments=arguments,
                            **common)  # fmt: skip
        return layer, {f"module.{k}": v for k, v in module.state_dict(keep_vars=True).items()}

    def _outputs(self, node: fx.Node) -> None:
        """Output layers, one per tensor returned (nested tuples and dicts flattened in order).

        Several outputs get a layer each, named after their dict key or position
        (``output_1``, ``output_2_1`` for ``result[1][0]``), so the network returns them in
        the module's order.
        """
        leaves = output_leaves(node.args[0])
        if leaves is None:
            raise ConversionError("the module returns something other than tensors")
        names = []
        for path, item in leaves:
            if not isinstance(item, fx.Node):
                raise ConversionError("the module returns something other than tensors")
            names.extend(self._output_sources(item, path))
        single = names[0][1] if len(names) == 1 else None
        if single is not None and single not in self.consumed and single not in self.input_names:
            return
        for label, name in names:
            self._add(self._name(label), TorchFunction("torch.clone"), [name])

    def _output_sources(self, item: fx.Node, path: tuple) -> list[tuple[str, str]]:
        """(output label, layer) for each tensor of one returned value (a structure: each leaf)."""
        if item in self.source:
            return [(output_label(path), self.source[item])]
        value = self.seen.get(item)
        inner = output_leaves(value, leaf=Meta) if is_structure(value) else None
        if inner is None:
            raise ConversionError(f"the returned value '{item.name}' is not made of tensors")
        producer, keys = self._producer(item)
        found = []
        for sub, meta in inner:
            self._emit((item, sub), producer, [*keys, *sub], meta)
            found.append((output_label((*path, *sub)), self.source[(item, sub)]))
        return found

    # -- assembly -------------------------------------------------------------------------
    def _add(self, name: str, layer: nn.Module, sources: list[str]) -> None:
        self.entries.append((name, layer, sources))
        self.consumed.update(sources)
        self._last = name

    def _assemble(self) -> Network:
        net = Network(name=self.name)
        with net.editing():  # sizes are resolved once, at the end
            for name, layer, sources in self.entries:
                net.add_layers({name: layer})
                for port, source in zip(input_ports(layer), sources, strict=True):
                    net.connect(source, f"{name}/{port}")
        net.initialize()
        self._load(net)
        return net

    def _load(self, net: Network) -> None:
        """Copy the original tensors into the layers; a tensor several layers use is tied.

        A module called at several places (a siamese encoder) or a parameter shared by several
        modules (tied embeddings) becomes layers that hold the same tensor object, so it trains
        as one (and ``dtb.save`` writes it once). ``self.origins`` maps each network
        ``state_dict`` key to the original tensor.
        """
        first: dict[tuple, tuple[nn.Module, str]] = {}
        with torch.no_grad():
            for name, loader in self.loaders:
                layer = net.layer(name)
                for path, value in (loader or {}).items():
                    owner_path, _, attribute = path.rpartition(".")
                    owner = layer.get_submodule(owner_path)
                    self.origins[f"layers.{name}.{path}"] = value
                    identity = (
                        (id(value.tensor), value.start, value.stop)
                        if isinstance(value, Part)
                        else (id(value),)
                    )
                    if identity in first and _tie(owner, attribute, *first[identity]):
                        continue
                    getattr(owner, attribute).copy_(
                        value.value() if isinstance(value, Part) else value
                    )
                    first.setdefault(identity, (owner, attribute))


def _tie(owner: nn.Module, attribute: str, source: nn.Module, source_attribute: str) -> bool:
    """Make ``owner.attribute`` the very tensor ``source.source_attribute`` (same kind, size)."""
    current, shared = getattr(owner, attribute), getattr(source, source_attribute)
    same_kind = isinstance(current, nn.Parameter) == isinstance(shared, nn.Parameter)
    if not same_kind or current.shape != shared.shape or current.dtype != shared.dtype:
        return False
    setattr(owner, attribute, shared)
    return True


def _warn_parametrized(module: nn.Module) -> None:
    """A module with weight_norm / spectral_norm (torch.nn.utils.parametrize) has no toolbox
    layer: it stays one opaque layer, which runs and exports but cannot be saved. Say so."""
    if not torch.nn.utils.parametrize.is_parametrized(module):
        return
    names = sorted(getattr(module, "parametrizations", {}).keys())
    base = type(module).__mro__[1].__name__ if len(type(module).__mro__) > 1 else "module"
    warnings.warn(
        f"from_torch: a {base} with parametrized {', '.join(names) or 'weights'} "
        "(weight_norm / spectral_norm) is kept as an opaque layer: the network runs, trains and "
        "exports, but dtb.save refuses it. To get a toolbox layer, convert the module without "
        "the parametrization (torch.nn.utils.parametrize.remove_parametrizations(module, "
        "'weight')) and apply it to the converted layer afterwards; saving keeps it.",
        UserWarning,
        stacklevel=5,
    )


def _warn_training_only(module: nn.Module, name: str, calls: list[str]) -> None:
    """A graph exported in evaluation mode has no dropout, stochastic depth or other calls
    that depend on ``self.training``: say so, naming them."""
    dropped = sorted(
        {type(m).__name__ for m in module.modules()
         if type(m).__name__ in ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d",
                                 "AlphaDropout", "StochasticDepth", "DropPath")
         and float(getattr(m, "p", getattr(m, "drop_prob", 0.0)) or 0.0) > 0}
    ) + [f"'{c}'" for c in calls]  # fmt: skip
    if dropped:
        warnings.warn(
            f"from_torch: '{name}' was converted through torch.export in evaluation mode, so its "
            f"{', '.join(dropped)} (what it does in training mode) are not in the network: "
            "outputs match in evaluation, but training the network does not apply them.",
            UserWarning,
            stacklevel=4,
        )


def _is_aten(graph: fx.Graph) -> bool:
    return any(isinstance(n.target, torch._ops.OpOverload) for n in graph.nodes)


def _exported(
    gm: fx.GraphModule, inputs: tuple[torch.Tensor, ...], free: dict[int, tuple[int, ...]]
) -> fx.GraphModule | None:
    """``gm`` exported to functional ATen calls with a symbolic batch size, or None."""
    examples = inputs if all(x.shape[0] > 1 for x in inputs) else tuple(map(_grown, inputs))
    batch = torch.export.Dim("batch", min=1)
    shapes = tuple(
        {0: batch} | dict.fromkeys(free.get(k, ()), torch.export.Dim.AUTO)
        for k in range(len(examples))
    )
    try:
        program = torch.export.export(gm, examples, dynamic_shapes=shapes, strict=False)
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


def _reads_mode(graph: fx.Graph) -> set[fx.Node]:
    """The nodes whose value depends on ``self.training`` (the ``training`` attribute)."""
    found: set[fx.Node] = set()
    for node in graph.nodes:
        if (node.op == "get_attr" and node.target == "training") or any(
            n in found for n in node.all_input_nodes
        ):
            found.add(node)
    return found


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
