"""The Network: a named graph of layers that is also a ``torch.nn.Module``."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from deeptoolbox.errors import (
    DeepToolboxError,
    InputSizeError,
    LayerNotFoundError,
    NetworkError,
    NotInitializedError,
    OptionError,
)
from deeptoolbox.layers._base import Layer, Shape, format_shape, layer_type_name
from deeptoolbox.layers._input import InputLayer
from deeptoolbox.network import _state
from deeptoolbox.network._analyze import analyze
from deeptoolbox.network._graph import Connection, name_layers
from deeptoolbox.network._layer_dict import LayerDict
from deeptoolbox.network._plan import (
    Plan,
    compile_plan,
    symbolic,
    traced_layer_call,
)
from deeptoolbox.network._resolution import Issue, Resolution, resolve
from deeptoolbox.network._serialize import from_json, to_json
from deeptoolbox.network._shapes import input_ports, input_size_message

LayerSpec = nn.Module | Sequence[nn.Module] | Mapping[str, nn.Module]


class Network(nn.Module):
    """A network of named layers connected as a directed acyclic graph.

    Build a chain from a list, or add branches with :meth:`add_layers` and :meth:`connect`.
    Sizes are resolved from the input layers' declared sizes whenever the graph changes, so
    layers never ask for input channels; group many edits in ``with net.editing():`` to
    resolve them once. The network is an ``nn.Module``: use it in any
    PyTorch code. Its outputs are the layers nothing else consumes.

    Example:
        >>> import torch
        >>> from deeptoolbox import layers as L
        >>> net = Network([L.FeatureInput(4), L.Dense(8), L.ReLU(), L.Dense(3), L.Softmax()])
        >>> net(torch.zeros(2, 4)).shape
        torch.Size([2, 3])
        >>> net.layer_names
        ['featureinput_1', 'dense_1', 'relu_1', 'dense_2', 'softmax_1']
    """

    def __init__(
        self,
        layers: LayerSpec | None = None,
        *,
        classes: Sequence[str] | None = None,
        name: str = "network",
    ) -> None:
        super().__init__()
        self.layers = LayerDict(self)
        if not isinstance(name, str) or not name:
            raise OptionError(
                f"Network: `name` must be a non-empty string. Received: name={name!r}."
            )
        self.name = name
        self._connections: list[Connection] = []
        self._frozen: set[str] = set()
        self._learn_rate_factors: dict[str, float] = {}
        self._classes: list[str] | None = None
        self._plan: Plan | None = None
        self._resolution = Resolution()
        self._dirty = False  # the graph changed since the last resolution
        self._editing = 0  # depth of editing() blocks: resolve lazily
        self._deferring = 0  # depth of _deferred() blocks: resolve only on leaving
        self._unplaced: set[str] = set()  # layers added since the last resolution
        self.metadata: dict[str, Any] = {}
        with self.editing():
            if layers is not None:
                self.add_layers(layers)
            self.classes = classes

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "layers" and not isinstance(value, LayerDict):
            raise NetworkError(
                "net.layers cannot be replaced as a whole; edit it layer by layer "
                "(net.layers['fc'] = layer, net.replace_layer, net.add_layers, "
                "net.remove_layers) or build a new Network."
            )
        super().__setattr__(name, value)

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("_dirty", False)
        state.setdefault("_unplaced", set())
        state["_editing"] = state["_deferring"] = 0  # a copy is in no editing block
        super().__setstate__(state)
        self.layers._link_network(self)  # copies and unpickled networks edit themselves

    def __prepare_scriptable__(self) -> nn.Module:
        raise NetworkError(
            f"torch.jit.script cannot compile Network '{self.name}': its forward runs a graph "
            "of layers kept in Python objects, which TorchScript cannot type. Use "
            "torch.jit.trace(net, example) or torch.export.export(net, (example,)) instead; "
            "deeptoolbox.export_pytorch(net, path) writes either."
        )

    # -- reading the graph -------------------------------------------------------------------
    @property
    def layer_names(self) -> list[str]:
        """Layer names in table order: as added, with inserted or replacing layers in place."""
        return list(self.layers.keys())

    @property
    def connections(self) -> list[Connection]:
        """All connections, in the order they were made, as :class:`Connection` records: each
        goes from a source port (``c.source_port``, ``"layer/out"``) to a destination port
        (``c.destination_port``, ``"layer/in2"``).

        Example:
            >>> from deeptoolbox import layers as L
            >>> net = Network([L.FeatureInput(2, name="x"), L.Dense(1, name="fc")])
            >>> [(c.source_port, c.destination_port) for c in net.connections]
            [('x/out', 'fc/in')]
        """
        return list(self._connections)

    @property
    def execution_order(self) -> list[str]:
        """Layer names in the order ``forward`` runs them (every source before the layers it
        feeds; ties keep table order). Layers on a cycle are left out (see :attr:`issues`).

        Example:
            >>> from deeptoolbox import layers as L
            >>> net = Network([L.FeatureInput(2, name="x")])
            >>> _ = net.add_layers(L.Dense(1, name="late")).add_layers(L.ReLU(name="early"))
            >>> _ = net.connect("x", "early").connect("early", "late")
            >>> net.layer_names, net.execution_order
            (['x', 'late', 'early'], ['x', 'early', 'late'])
        """
        return list(self._resolved().order)

    def input_sizes(self, name: str) -> dict[str, Shape | None]:
        """Size (batch excluded) arriving at each input port of layer ``name``: ``{port:
        size}``, None where the port is unconnected or its source has no size. Input layers
        have no ports (``{}``). MATLAB's ``analyzeNetwork`` shows these as activation sizes.

        Example:
            >>> from deeptoolbox import layers as L
            >>> net = Network([L.FeatureInput(3, name="x"), L.Dense(4, name="a")])
            >>> _ = net.add_layers(L.Addition(name="add")).connect("a", "add")
            >>> net.input_sizes("add")
            {'in1': (4,), 'in2': None}
        """
        layer = self.layer(name)
        resolution = self._resolved()
        shapes = resolution.input_shapes.get(name)
        if shapes is None:  # on a cycle: never reached
            return {port: None for port in input_ports(layer)}
        return dict(zip(resolution.sources[name], shapes, strict=True))

    def output_sizes(self, name: str) -> dict[str, Shape | None]:
        """Size (batch excluded) of the output of layer ``name``, as ``{"out": size}`` (every
        layer has one output port, ``out``); None when it cannot be resolved.

        Example:
            >>> from deeptoolbox import layers as L
            >>> Network([L.ImageInput((1, 8, 8)), L.Flatten(name="flat")]).output_sizes("flat")
            {'out': (64,)}
        """
        self.layer(name)
        return {"out": self._resolved().output_shapes.get(name)}

    @property
    def input_names(self) -> list[str]:
        """Names of the input layers, in the order ``forward`` takes its inputs."""
        return [n for n, m in self.layers.items() if isinstance(m, InputLayer)]

    @property
    def output_names(self) -> list[str]:
        """Names of the output layers (no outgoing connection), in insertion order."""
        used = {c.source for c in self._connections}
        return [
            n for n, m in self.layers.items() if n not in used and not isinstance(m, InputLayer)
        ]

    def layer(self, name: str) -> nn.Module:
        """Return the layer called ``name``.

        Example:
            >>> from deeptoolbox import layers as L
            >>> Network([L.FeatureInput(2), L.Dense(1, name="fc")]).layer("fc")
            Dense(units=1)
        """
        if name not in self.layers:
            raise LayerNotFoundError(self._unknown(name))
        return self.layers[name]

    def sources(self, name: str) -> dict[str, str | None]:
        """Map each input port of layer ``name`` to the layer feeding it (None if unconnected)."""
        layer = self.layer(name)
        feeding = {c.port: c.source for c in self._connections if c.destination == name}
        return {port: feeding.get(port) for port in input_ports(layer)}

    def destinations(self, name: str) -> list[str]:
        """Ports (``layer/port``) that layer ``name`` feeds."""
        self.layer(name)
        return [c.destination_port for c in self._connections if c.source == name]

    @property
    def classes(self) -> list[str] | None:
        """Class names of a classification network, in output order (or None)."""
        return self._classes

    @classes.setter
    def classes(self, value: Sequence[str] | None) -> None:
        if value is None:
            self._classes = None
            self._changed()
            return
        if isinstance(value, str) or not isinstance(value, Iterable):
            raise OptionError(
                f"Network.classes must be a list of class names. Received: {value!r}."
            )
        names = [str(v) for v in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise OptionError(f"Network.classes has repeated names: {duplicates}.")
        self._classes = names
        self._changed()

    def output_shape(self, name: str | None = None) -> Shape | None:
        """Resolved output size of layer ``name`` (default: the first output), batch excluded."""
        if name is None:
            outputs = self.output_names
            if not outputs:
                return None
            name = outputs[0]
        self.layer(name)
        return self._resolved().output_shapes.get(name)

    @property
    def issues(self) -> list[Issue]:
        """Problems found in the graph as it is now (see :func:`deeptoolbox.analyze`)."""
        return list(self._resolved().issues)

    @property
    def is_initialized(self) -> bool:
        """True when the graph is complete, sizes resolve and every layer has its weights."""
        return not self._resolved().errors and bool(self.input_names) and bool(self.output_names)

    # -- editing -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def editing(self) -> Iterator[Network]:
        """Group edits: inside the block, edits only mark the graph as changed; sizes are
        resolved once, when something needs them (a forward call, :func:`deeptoolbox.analyze`,
        a size query such as :meth:`output_sizes`) or on leaving the block.

        Outside a block each edit resolves sizes at once. Blocks nest; the outermost one
        resolves. Building a large graph one call at a time inside a block costs about what
        building it from a list costs. Errors in an edit (an unknown layer, a taken port) are
        raised by that edit, block or not.

        Example:
            >>> from deeptoolbox import layers as L
            >>> net = Network(name="mlp")
            >>> with net.editing():
            ...     _ = net.add_layers(L.FeatureInput(4, name="x"))
            ...     for k in range(1, 4):
            ...         _ = net.add_layers(L.Dense(8, name=f"fc{k}"))
            ...         _ = net.connect("x" if k == 1 else f"fc{k - 1}", f"fc{k}")
            >>> net.output_shape(), net.execution_order
            ((8,), ['x', 'fc1', 'fc2', 'fc3'])
        """
        self._editing += 1
        try:
            yield self
        finally:
            self._editing -= 1
            if not self._editing and not self._deferring:
                self._resolved()

    def add_layers(self, layers: LayerSpec) -> Network:
        """Add one layer, or a list / dict of layers that are connected one after another.

        Returns the network, so calls can be chained. Names come from each layer's ``name``,
        the dict keys, or are generated from the type (``conv2d_1``).

        Example:
            >>> from deeptoolbox import layers as L
            >>> net = Network([L.FeatureInput(3), L.Dense(4, name="a")])
            >>> _ = net.add_layers([L.Dense(4, name="b"), L.Addition(name="add")])
            >>> _ = net.connect("a", "b").connect("a", "add/in2")
            >>> net.sources("add")
            {'in1': 'b', 'in2': 'a'}
        """
        named = self._name_layers(layers)
        for layer_name, module in named:
            self._adopt(layer_name, module)
            self.layers._store(layer_name, module)
        self._chain(named)
        return self._changed()

    def connect(self, source: str, destination: str) -> Network:
        """Connect layer ``source`` to ``destination`` (``"layer"`` or ``"layer/port"``).

        ``"layer"`` alone means its first unconnected input port.

        Example:
            >>> from deeptoolbox import layers as L
            >>> net = Network([L.FeatureInput(2, name="x")])
            >>> _ = net.add_layers(L.Dense(1, name="fc")).connect("x", "fc")
            >>> net.output_names
            ['fc']
        """
        source = self._source_name(source)
        layer_name, port = self._destination(destination)
        self._connect(source, layer_name, port)
        return self._changed()

    def disconnect(self, source: str, destination: str) -> Network:
        """Remove the connection from ``source`` to ``destination`` (``layer`` or ``layer/port``).

        Example:
            >>> from deeptoolbox import layers as L
            >>> net = Network([L.FeatureInput(2, name="x"), L.Dense(1, name="fc")])
            >>> net.disconnect("x", "fc").sources("fc")
            {'in': None}
        """
        source = self._source_name(source)
        layer_name, _, port = destination.partition("/")
        self.layer(layer_name)
        matches = [
            c
            for c in self._connections
            if c.source == source and c.destination == layer_name and (not port or c.port == port)
        ]
        if not matches:
            raise NetworkError(
                f"No connection from '{source}' to '{destination}'. Connections into "
                f"'{layer_name}': {self.sources(layer_name)}."
            )
        self._connections = [c for c in self._connections if c not in matches]
        return self._changed()

    def remove_layers(self, names: str | Iterable[str], *, bridge: bool = False) -> Network:
        """Remove layers and their connections.

        With ``bridge=True``, a removed layer with one input is bypassed: its source is
        connected to everything it fed (handy for dropping a Dropout or BatchNorm).

        Example:
            >>> from deeptoolbox import layers as L
            >>> net = Network([L.FeatureInput(2), L.Dropout(name="drop"), L.Dense(1, name="fc")])
            >>> net.remove_layers("drop", bridge=True).sources("fc")
            {'in': 'featureinput_1'}
        """
        names = [names] if isinstance(names, str) else list(names)
        for name in names:
            self.layer(name)
        for name in names:
            feeding = [c for c in self._connections if c.destination == name]
            fed = [c for c in self._connections if c.source == name]
            self._connections = [c for c in self._connections if c not in feeding + fed]
            if bridge and len(feeding) == 1:
                for edge in fed:
                    self._connect(feeding[0].source, edge.destination, edge.port)
            self.layers._discard(name)
            self._frozen.discard(name)
            self._learn_rate_factors.pop(name, None)
        return self._changed()

    def replace_layer(self, name: str, layers: LayerSpec) -> Network:
        """Replace layer ``name`` by a layer or chain of layers, keeping its connections.

        A replacement without a name of its own takes the old name.

        Example:
            >>> from deeptoolbox import layers as L
            >>> net = Network([L.FeatureInput(2), L.Dense(4, name="fc"), L.ReLU(name="act")])
            >>> net.replace_layer("act", L.GELU()).layer("act")
            GELU()
        """
        self.layer(name)
        if isinstance(layers, Layer) and layers.name is None:
            layers.name = name
        named = self._name_layers(layers, free={name})
        feeding = [c for c in self._connections if c.destination == name]
        fed = [c for c in self._connections if c.source == name]
        self._connections = [c for c in self._connections if c not in feeding + fed]
        entries: list[tuple[str, nn.Module]] = []
        for key, module in self.layers.items():
            entries.extend(named if key == name else [(key, module)])
        for layer_name, module in named:
            self._adopt(layer_name, module)
        self.layers = LayerDict(self, entries)
        self._frozen.discard(name)
        self._learn_rate_factors.pop(name, None)
        self._chain(named)
        first, last = named[0], named[-1]
        first_ports = input_ports(first[1])
        for edge in feeding:
            self._connect(edge.source, first[0], edge.port if edge.port in first_ports else None)
        for edge in fed:
            self._connect(last[0], edge.destination, edge.port)
        return self._changed()

    def insert_layer(self, after: str, layers: LayerSpec) -> Network:
        """Insert a layer or chain right after layer ``after``, taking over what it fed.

        Example:
            >>> from deeptoolbox import layers as L
            >>> net = Network([L.FeatureInput(2, name="x"), L.Dense(1, name="fc")])
            >>> net.insert_layer("x", L.LayerNorm(name="norm")).sources("fc")
            {'in': 'norm'}
        """
        self.layer(after)
        fed = [c for c in self._connections if c.source == after]
        named = self._name_layers(layers)
        self._connections = [c for c in self._connections if c not in fed]
        entries: list[tuple[str, nn.Module]] = []
        for key, module in self.layers.items():
            entries.extend([(key, module), *named] if key == after else [(key, module)])
        for layer_name, module in named:
            self._adopt(layer_name, module)
        self.layers = LayerDict(self, entries)
        self._chain(named)
        self._connect(after, named[0][0], None)
        for edge in fed:
            self._connect(named[-1][0], edge.destination, edge.port)
        return self._changed()

    # -- freezing and learn-rate factors ----------------------------------------------------------
    def freeze(self, names: str | Iterable[str] | None = None) -> Network:
        """Stop training the named layers (all layers when ``names`` is None).

        Example:
            >>> from deeptoolbox import layers as L
            >>> net = Network([L.FeatureInput(2), L.Dense(1, name="fc")]).freeze("fc")
            >>> net.layer("fc").weight.requires_grad, net.frozen_layers
            (False, ['fc'])
        """
        for name in self._names(names):
            self._frozen.add(name)
            self._set_trainable(name, False)
        return self

    def unfreeze(self, names: str | Iterable[str] | None = None) -> Network:
        """Train the named layers again (all layers when ``names`` is None).

        Example:
            >>> from deeptoolbox import layers as L
            >>> net = Network([L.FeatureInput(2), L.Dense(1, name="fc")]).freeze().unfreeze("fc")
            >>> net.layer("fc").weight.requires_grad
            True
        """
        for name in self._names(names):
            self._frozen.discard(name)
            self._set_trainable(name, True)
        return self

    @property
    def frozen_layers(self) -> list[str]:
        """Names of the frozen layers, in insertion order."""
        return [n for n in self.layers if n in self._frozen]

    def set_learn_rate_factor(self, names: str | Iterable[str], factor: float) -> Network:
        """Scale the learning rate of the named layers' parameters by ``factor`` in training.

        Example:
            >>> from deeptoolbox import layers as L
            >>> net = Network([L.FeatureInput(2), L.Dense(1, name="fc")])
            >>> net.set_learn_rate_factor("fc", 10).learn_rate_factor("fc")
            10.0
        """
        if isinstance(factor, bool) or not isinstance(factor, int | float) or factor < 0:
            raise OptionError(
                f"set_learn_rate_factor: `factor` must be a number >= 0. Received: {factor!r}."
            )
        for name in self._names(names):
            self._learn_rate_factors[name] = float(factor)
        return self

    def learn_rate_factor(self, name: str) -> float:
        """The learn-rate factor of layer ``name`` (1.0 unless set)."""
        self.layer(name)
        return self._learn_rate_factors.get(name, 1.0)

    # -- running --------------------------------------------------------------------------------
    def initialize(self) -> Network:
        """Check that the network can run; raise NotInitializedError listing every problem.

        Sizes and weights are resolved automatically whenever the graph changes; this call
        only makes the outcome explicit.

        Example:
            >>> from deeptoolbox import layers as L
            >>> Network([L.FeatureInput(2), L.Dense(1)]).initialize().is_initialized
            True
        """
        problems = [str(i) for i in self._resolved().errors]
        if problems:
            raise NotInitializedError(
                f"Network '{self.name}' cannot run yet:\n  "
                + "\n  ".join(problems)
                + "\nRun deeptoolbox.analyze(net) for the full table."
            )
        return self

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        plan = self._plan or self._compile()
        if not isinstance(inputs, tuple) or (inputs and isinstance(inputs[0], torch.fx.Proxy)):
            return self._run_traced(plan, inputs)  # torch.fx.symbolic_trace: proxies
        if len(inputs) != plan.num_inputs:
            raise InputSizeError(
                f"Network '{self.name}' takes {plan.num_inputs} input(s) "
                f"({', '.join(self.input_names)}); received {len(inputs)}."
            )
        if plan.chain is not None:
            x = inputs[0]
            if symbolic() or not isinstance(x, torch.Tensor) or x.shape != plan.accepted[0]:
                self._accept(plan, inputs)
            try:
                if plan.hooks_active():
                    for module in plan.chain:
                        x = module(x)
                else:  # skip nn.Module.__call__'s bookkeeping: nothing is hooked
                    for module in plan.chain:
                        x = module.forward(x)
            except (RuntimeError, ValueError, IndexError, TypeError) as err:
                self._explain(err, inputs, module)
            return x
        if (
            symbolic()
            or any(not isinstance(x, torch.Tensor) for x in inputs)
            or [x.shape for x in inputs] != plan.accepted
        ):
            self._accept(plan, inputs)
        values: list[Any] = [*inputs, *([None] * len(plan.steps))]
        direct = not plan.hooks_active()
        try:
            for module, sources, target, release in plan.steps:
                call = module.forward if direct else module
                values[target] = call(*[values[i] for i in sources])
                for slot in release:  # free intermediates as soon as nothing needs them
                    values[slot] = None
        except (RuntimeError, ValueError, IndexError, TypeError) as err:
            self._explain(err, inputs, module)
        if len(plan.outputs) == 1:
            return values[plan.outputs[0]]
        return tuple(values[i] for i in plan.outputs)

    def forward_logits(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """The output before a final Softmax or Sigmoid layer: the logits a loss wants.

        A network with several outputs, or whose output layer is neither, gives what
        ``forward`` gives. ``train()`` computes classification losses from these.

        Example:
            >>> import torch
            >>> from deeptoolbox import layers as L
            >>> net = Network([L.FeatureInput(2), L.Dense(3), L.Softmax()])
            >>> x = torch.ones(4, 2)
            >>> bool(torch.allclose(net.forward_logits(x).softmax(-1), net(x)))
            True
        """
        from deeptoolbox.layers._activation import Sigmoid, Softmax

        plan = self._plan or self._compile()
        final = plan.steps[-1] if plan.steps and len(plan.outputs) == 1 else None
        if (
            final is None
            or final[2] != plan.outputs[0]
            or not isinstance(final[0], Softmax | Sigmoid)
            or len(inputs) != plan.num_inputs
        ):
            return self(*inputs)
        if (
            symbolic()
            or any(not isinstance(x, torch.Tensor) for x in inputs)
            or [x.shape for x in inputs] != plan.accepted
        ):
            self._accept(plan, inputs)
        values: list[Any] = [*inputs, *([None] * len(plan.steps))]
        direct = not plan.hooks_active()
        try:
            for module, sources, target, release in plan.steps[:-1]:
                call = module.forward if direct else module
                values[target] = call(*[values[i] for i in sources])
                for slot in release:
                    values[slot] = None
        except (RuntimeError, ValueError, IndexError, TypeError) as err:
            self._explain(err, inputs, module)
        return values[final[1][0]]

    def check_inputs(self, inputs: Sequence[torch.Tensor]) -> None:
        """Raise InputSizeError if ``inputs`` do not match the input layers' declared sizes.

        Example:
            >>> import torch
            >>> from deeptoolbox import layers as L
            >>> net = Network([L.ImageInput((1, 8, 8)), L.Flatten()])
            >>> try:
            ...     net.check_inputs([torch.zeros(2, 8, 8)])
            ... except InputSizeError as err:
            ...     print(str(err).splitlines()[0])
            Input layer 'imageinput_1' expects images of size N x C x H x W with C x H x W = 1 x 8 x 8; received a batch of size (2, 8, 8).
        """
        names = self.input_names
        if len(inputs) != len(names):
            raise InputSizeError(
                f"Network '{self.name}' takes {len(names)} input(s) ({', '.join(names)}); "
                f"received {len(inputs)}."
            )
        for name, x in zip(names, inputs, strict=True):
            layer: InputLayer = self.layers[name]  # type: ignore[assignment]
            size = tuple(x.shape[1:])
            if not layer.accepts(size):
                raise InputSizeError(input_size_message(name, layer, tuple(x.shape)))

    # -- recurrent state ------------------------------------------------------------------------
    @property
    def stateful(self) -> bool:
        """Stateful mode of the recurrent layers (LSTM, GRU): when True, each call starts from
        the state the previous call ended in and keeps its final state, so a long sequence can
        be fed in pieces, step by step (MATLAB's ``predictAndUpdateState``). False (the
        default): each call starts from zeros. Setting it sets every recurrent layer's mode.

        Example:
            >>> import torch
            >>> from deeptoolbox import layers as L
            >>> net = Network([L.SequenceInput(2), L.LSTM(3, name="lstm"), L.Dense(1)])
            >>> net.stateful = True
            >>> x = torch.randn(4, 10, 2)
            >>> pieces = torch.cat([net(x[:, :6]), net(x[:, 6:])], dim=1)
            >>> _ = net.reset_state()
            >>> net.stateful = False
            >>> torch.allclose(pieces, net(x), atol=1e-6)
            True
        """
        layers = _state.stateful_layers(self)
        return bool(layers) and all(layer.stateful for layer in layers.values())

    @stateful.setter
    def stateful(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise OptionError(f"Network.stateful must be True or False. Received: {value!r}.")
        for layer in _state.stateful_layers(self).values():
            layer.stateful = value

    @property
    def state(self) -> dict[str, dict[str, torch.Tensor] | None]:
        """The recurrent state (MATLAB's ``net.State``): layer name -> ``{"hidden", "cell"}``
        tensors (GRU: ``"hidden"``), each (N, layers x directions, hidden size); None for a
        layer with no state kept (zeros). Copies: change it with :meth:`set_state`.

        Example:
            >>> import torch
            >>> from deeptoolbox import layers as L
            >>> net = Network([L.SequenceInput(2), L.GRU(3, name="gru")])
            >>> net.stateful = True
            >>> _ = net(torch.randn(5, 7, 2))
            >>> net.state["gru"]["hidden"].shape
            torch.Size([5, 1, 3])
        """
        return _state.get_state(self)

    @state.setter
    def state(self, value: Mapping[str, Any] | None) -> None:
        self.set_state(value)

    def set_state(self, state: Mapping[str, Any] | None) -> Network:
        """Set the recurrent state that the next stateful call starts from (``net.State =
        state`` in MATLAB); ``state`` as :attr:`state` returns it, for some or all layers.

        Example:
            >>> import torch
            >>> from deeptoolbox import layers as L
            >>> net = Network([L.SequenceInput(2), L.LSTM(3, name="lstm")])
            >>> zeros = {"hidden": torch.zeros(1, 1, 3), "cell": torch.zeros(1, 1, 3)}
            >>> net.set_state({"lstm": zeros}).state["lstm"]["cell"].shape
            torch.Size([1, 1, 3])
        """
        _state.set_state(self, state)
        return self

    def state_gradients(self) -> contextlib.AbstractContextManager[None]:
        """A block within which the recurrent state stays on the autograd graph from one
        stateful call to the next: a loss after several calls backpropagates through all of
        them (full backpropagation through time; outside it kept states are detached).

        Example:
            >>> import torch
            >>> from deeptoolbox import layers as L
            >>> net = Network([L.SequenceInput(1), L.LSTM(2), L.Dense(1)])
            >>> net.stateful = True
            >>> x = torch.randn(1, 1, 1, requires_grad=True)
            >>> with net.state_gradients():
            ...     _ = net(x)
            ...     net(torch.zeros(1, 1, 1)).sum().backward()
            >>> x.grad is not None
            True
        """
        return _state.state_gradients(self)

    def reset_state(self) -> Network:
        """Forget the recurrent state: the next stateful call starts from zeros (MATLAB's
        ``resetState``).

        Example:
            >>> from deeptoolbox import layers as L
            >>> net = Network([L.SequenceInput(2), L.LSTM(3, name="lstm")])
            >>> net.reset_state().state
            {'lstm': None}
        """
        _state.set_state(self, None)
        return self

    # -- internals ------------------------------------------------------------------------------
    def _run_traced(self, plan: Plan, inputs: Any) -> Any:
        """Record each toolbox layer as one ``call_module`` node for torch.fx (other modules
        as the tracer decides), so a traced network runs its layers' own forward."""
        values: list[Any] = [inputs[i] for i in range(plan.num_inputs)]
        values += [None] * len(plan.steps)
        for module, sources, target, _ in plan.steps:
            arguments = [values[i] for i in sources]
            proxy = next((a for a in arguments if isinstance(a, torch.fx.Proxy)), None)
            if isinstance(module, Layer) and proxy is not None:
                values[target] = traced_layer_call(proxy.tracer, module, arguments)
            else:
                values[target] = module(*arguments)
        if len(plan.outputs) == 1:
            return values[plan.outputs[0]]
        return tuple(values[i] for i in plan.outputs)

    def _accept(self, plan: Plan, inputs: Sequence[torch.Tensor]) -> None:
        """Check inputs whose sizes differ from the last accepted ones, then remember them."""
        for name, x in zip(self.input_names, inputs, strict=True):
            if not isinstance(x, torch.Tensor):
                raise InputSizeError(
                    f"Input layer '{name}' expects a torch.Tensor; received {type(x).__name__}. "
                    "Convert with torch.as_tensor(x), or use deeptoolbox.predict(net, x)."
                )
        self.check_inputs(inputs)
        if not symbolic():  # symbolic sizes: keep checking, never pin them
            plan.accepted = [tuple(int(d) for d in x.shape) for x in inputs]

    def _explain(self, err: Exception, inputs: Sequence[torch.Tensor], module: nn.Module) -> None:
        if isinstance(err, DeepToolboxError):
            raise err
        for name, x in zip(self.input_names, inputs, strict=False):
            layer: InputLayer = self.layers[name]  # type: ignore[assignment]
            if isinstance(x, torch.Tensor) and not layer.accepts(tuple(x.shape[1:])):
                raise InputSizeError(input_size_message(name, layer, tuple(x.shape))) from err
        layer_name = getattr(module, "name", None) or type(module).__name__
        err.add_note(
            f"(raised in layer '{layer_name}' ({layer_type_name(module)}) of network '{self.name}')"
        )
        raise err

    def _compile(self) -> Plan:
        self.initialize()
        resolution = self._resolved()
        steps = [
            (name, self.layers[name], list(resolution.sources[name].values()))
            for name in resolution.order
        ]
        self._plan = compile_plan(steps, self.input_names, self.output_names)
        return self._plan

    def _changed(self) -> Network:
        """Mark the graph as edited: resolve now, or later inside editing() / _deferred()."""
        if self._plan is not None:  # (setting nn.Module attributes is slow: only on change)
            self._plan = None
        if not self._dirty:
            self._dirty = True
        if not self._editing and not self._deferring:
            self._resolve()
        return self

    def _resolved(self) -> Resolution:
        """The resolution of the graph as it is now (resolving first if it changed), except
        inside _deferred(), which keeps the last one until it ends."""
        if self._dirty and not self._deferring:
            self._resolve()
        return self._resolution

    @contextlib.contextmanager
    def _deferred(self) -> Iterator[Network]:
        """Like editing(), but queries inside see the last resolution: sizes are resolved
        only on leaving the outermost block."""
        self._deferring += 1
        try:
            yield self
        finally:
            self._deferring -= 1
            if not self._deferring and not self._editing:
                self._resolved()

    def _resolve(self) -> None:
        reference = self._placement()
        built = {n for n, m in self.layers.items() if isinstance(m, Layer)}
        before = {n: self.layers[n].built_shapes for n in built}
        result = resolve(self.layers, self._connections, self._classes)
        self._resolution, self._dirty = result, False
        rebuilt = {n for n in built if self.layers[n].built_shapes != before[n]}
        self._place(self._unplaced | rebuilt, reference)
        self._unplaced = set()
        if result.reinitialized:
            names = ", ".join(f"'{n}'" for n in result.reinitialized)
            warnings.warn(
                f"Network '{self.name}': layers {names} were re-initialized: their parameter "
                "sizes changed with their input sizes. Every other layer kept its weights.",
                stacklevel=4,
            )
        for name in rebuilt & self._frozen:  # new parameters of a frozen layer stay frozen
            self._set_trainable(name, False)

    def _placement(self) -> torch.Tensor | None:
        """A parameter or buffer of a layer already in place: new layers follow its device
        and (floating) dtype."""
        for name, module in self.layers.items():
            if name not in self._unplaced:
                tensor = next(module.parameters(), None)
                if tensor is not None:
                    return tensor
        return None

    def _place(self, names: set[str], reference: torch.Tensor | None) -> None:
        if reference is None:
            return
        dtype = reference.dtype if reference.is_floating_point() else None
        for name in names:
            if name in self.layers:
                self.layers[name].to(device=reference.device, dtype=dtype)

    def _connect(self, source: str, destination: str, port: str | None) -> None:
        self.layer(source)
        ports = input_ports(self.layer(destination))
        taken = {c.port for c in self._connections if c.destination == destination}
        if port is None:
            free = [p for p in ports if p not in taken]
            if not free:
                raise NetworkError(
                    f"Layer '{destination}' has no free input port to connect '{source}' to; its "
                    f"ports are {list(ports)}, fed by {self.sources(destination)}. Disconnect one first."
                )
            port = free[0]
        elif port not in ports:
            raise NetworkError(
                f"Layer '{destination}' ({layer_type_name(self.layers[destination])}) has no input "
                f"port '{port}'. Its ports: {list(ports) or 'none (it is an input layer)'}."
            )
        elif port in taken:
            current = self.sources(destination)[port]
            raise NetworkError(
                f"Port '{destination}/{port}' is already fed by '{current}'. Disconnect it first: "
                f"net.disconnect('{current}', '{destination}/{port}')."
            )
        self._connections.append(Connection(source, destination, port))

    def _destination(self, destination: str) -> tuple[str, str | None]:
        layer_name, _, port = destination.partition("/")
        self.layer(layer_name)
        return layer_name, port or None

    def _source_name(self, source: str) -> str:
        layer_name, _, port = source.partition("/")
        if port and port != "out":
            raise NetworkError(
                f"Layers have one output, 'out'; received source {source!r}. Use '{layer_name}'."
            )
        self.layer(layer_name)
        return layer_name

    def _chain(self, named: list[tuple[str, nn.Module]]) -> None:
        for (before, _), (after, _) in zip(named, named[1:], strict=False):
            self._connect(before, after, None)

    def _adopt(self, name: str, module: nn.Module) -> None:
        if isinstance(module, Layer) or getattr(module, "name", None) is None:
            module.name = name
        self._unplaced.add(name)

    def _name_layers(
        self, layers: LayerSpec, free: set[str] = frozenset()
    ) -> list[tuple[str, nn.Module]]:
        if any(isinstance(m, Network) for m in _modules_in(layers)):
            raise NetworkError(
                "A Network cannot be added as a layer of another Network; add its layers instead."
            )
        return name_layers(layers, self.layers, self.name, free)

    def _names(self, names: str | Iterable[str] | None) -> list[str]:
        if names is None:
            return self.layer_names
        names = [names] if isinstance(names, str) else list(names)
        for name in names:
            self.layer(name)
        return names

    def _set_trainable(self, name: str, trainable: bool) -> None:
        for parameter in self.layers[name].parameters():
            parameter.requires_grad_(trainable)

    def _unknown(self, name: str) -> str:
        import difflib

        close = difflib.get_close_matches(str(name), self.layer_names, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        return (
            f"Network '{self.name}' has no layer named {name!r}.{hint} Layers: {self.layer_names}."
        )

    def __repr__(self) -> str:
        lines = [f"Network('{self.name}', {len(self.layers)} layers)"]
        resolution = self._resolved()
        for name in self.layer_names:
            shape = resolution.output_shapes.get(name)
            lines.append(f"  {name}: {self.layers[name]!r} -> {format_shape(shape)}")
        return "\n".join(lines)

    def to_json(self) -> str:
        """Return the architecture (layers, connections, frozen layers, learn-rate factors) as JSON.

        Example:
            >>> from deeptoolbox import layers as L
            >>> net = Network([L.FeatureInput(2), L.Dense(1)])
            >>> Network.from_json(net.to_json()).layer_names
            ['featureinput_1', 'dense_1']
        """
        return to_json(self)

    @classmethod
    def from_json(cls, text: str) -> Network:
        """Rebuild a network with fresh weights from :meth:`to_json` output."""
        return from_json(text, cls)

    def summary(self) -> None:
        """Print the analysis table of this network (see :func:`deeptoolbox.analyze`).

        Example:
            >>> from deeptoolbox import layers as L
            >>> Network([L.FeatureInput(2), L.Dense(1)]).summary()  # doctest: +ELLIPSIS
            Network 'network': 2 layers, 3 learnables...
        """
        print(analyze(self))


def _modules_in(layers: Any) -> list[Any]:
    if isinstance(layers, Mapping):
        return list(layers.values())
    if isinstance(layers, Sequence) and not isinstance(layers, str):
        return list(layers)
    return [layers]
