"""A flat view of a network for the robustness tools: nodes in execution order, each with a kind.

Both toolbox :class:`~deeptoolbox.network.Network` objects and plain ``torch.nn.Sequential``
models are turned into a :class:`Graph`. Each node gets a *kind* that tells the bound
propagation how to treat it:

- ``"affine"``: an affine map (Dense, convolutions, BatchNorm in inference, average pooling,
  Flatten, Reshape, Addition, Concatenation, input normalization, Dropout in inference);
- ``"relu"``, ``"leaky_relu"``, ``"sigmoid"``, ``"tanh"``: element-wise activations;
- ``"max"``: max pooling, bounded by intervals;
- ``"softmax"``: a final softmax, removed for attacks and verification.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from deeptoolbox import layers as L
from deeptoolbox.errors import DeepToolboxError, NetworkError, UnsupportedLayerError
from deeptoolbox.network import Network
from deeptoolbox.robustness._relax import leaky_slope


class ScaleShift(nn.Module):
    """``x * weight + bias``, element-wise (both broadcast to the input): the form the bound
    propagation gives to ONNX input normalization (Sub, Div, Mul, Add by constants, Neg).

    ``weight`` is a (frozen) parameter so that interval bounds take its absolute value.

    Example:
        >>> import torch
        >>> layer = ScaleShift(torch.tensor([-2.0]), torch.tensor([1.0]))
        >>> layer(torch.tensor([[0.5, 1.0]]))
        tensor([[ 0., -1.]])
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone(), requires_grad=False)
        self.register_buffer("bias", bias.detach().clone().to(weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight + self.bias


def scale_shift(op: str, constant: torch.Tensor, variable_first: bool = True) -> ScaleShift | None:
    """The ScaleShift of ONNX ``op`` between the variable and ``constant`` (None: not affine).

    Example:
        >>> import torch
        >>> scale_shift("Div", torch.tensor(4.0))(torch.tensor([2.0]))
        tensor([0.5000])
        >>> scale_shift("Div", torch.tensor(4.0), variable_first=False) is None
        True
    """
    c = constant.to(torch.float32) if not constant.is_floating_point() else constant
    one, zero = torch.ones_like(c), torch.zeros_like(c)
    if op == "Add":
        return ScaleShift(one, c)
    if op == "Sub":
        return ScaleShift(one, -c) if variable_first else ScaleShift(-one, c)
    if op == "Mul":
        return ScaleShift(c, zero)
    if op == "Div" and variable_first and bool((c != 0).all()):
        return ScaleShift(1.0 / c, zero)
    return None


_ONNX_ELEMENTWISE = ("Add", "Sub", "Mul", "Div")


def _onnx_affine(module: nn.Module) -> nn.Module | None:
    """A ScaleShift equal to an imported ONNX operator that is element-wise affine in its one
    layer input (x - c, x / c, c * x, -x, ...; output the size of the input), else None."""
    if type(module).__name__ != "OnnxOperator" or module.input_sizes is None:
        return None
    ports = [s for s in module.slots if s is not None and s.startswith("in")]
    if len(ports) != 1 or module.output_size != module.input_sizes[0]:
        return None
    if module.op_type in ("Neg", "Identity") and module.slots == ["in1"]:
        sign = -1.0 if module.op_type == "Neg" else 1.0
        return ScaleShift(torch.tensor(sign), torch.tensor(0.0))
    if module.op_type not in _ONNX_ELEMENTWISE or len(module.slots) != 2:
        return None
    other = [s for s in module.slots if s != ports[0]][0]
    constant = getattr(module, other, None) if other else None
    if not isinstance(constant, torch.Tensor) or constant.dim() > len(module.input_sizes[0]) + 1:
        return None
    return scale_shift(module.op_type, constant, variable_first=module.slots[0] == ports[0])


_AFFINE = (
    L.InputLayer, L.Dense, L.Conv1d, L.Conv2d, L.Conv3d, L.TransposedConv2d, L.BatchNorm,
    L.TransposedConv1d, L.TransposedConv3d, L.AdaptiveAvgPool1d, L.AdaptiveAvgPool2d,
    L.AdaptiveAvgPool3d, L.Resize3d,
    L.AvgPool1d, L.AvgPool2d, L.GlobalAvgPool, L.Flatten, L.Reshape, L.Addition,
    L.Concatenation, L.Dropout, ScaleShift, L.Indexing1d, L.EmbeddingConcatenation,
    nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.BatchNorm1d, nn.BatchNorm2d, nn.AvgPool1d,
    nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout,
)  # fmt: skip
_KINDS: tuple[tuple[tuple[type, ...], str], ...] = (
    ((L.ReLU, nn.ReLU), "relu"),
    ((L.LeakyReLU, nn.LeakyReLU), "leaky_relu"),
    ((L.Sigmoid, nn.Sigmoid), "sigmoid"),
    ((L.Tanh, nn.Tanh), "tanh"),
    ((L.MaxPool1d, L.MaxPool2d, L.GlobalMaxPool, nn.MaxPool1d, nn.MaxPool2d), "max"),
    ((L.Softmax, nn.Softmax), "softmax"),
    (_AFFINE, "affine"),
)
SUPPORTED = (
    "Dense, Conv1d, Conv2d, Conv3d, TransposedConv1d/2d/3d, BatchNorm, AvgPool1d, AvgPool2d, "
    "AdaptiveAvgPool1d/2d/3d, Resize3d, "
    "GlobalAvgPool, MaxPool1d, MaxPool2d, GlobalMaxPool, Flatten, Reshape, Addition, "
    "Concatenation, Dropout, Indexing1d, EmbeddingConcatenation, ReLU, LeakyReLU (scale <= 1), Sigmoid, Tanh, input layers "
    "(any normalization), a final Softmax; imported ONNX Add/Sub/Mul/Div by a constant and Neg "
    "(input normalization); and their torch.nn counterparts"
)


def _kind(name: str, module: nn.Module) -> str:
    if getattr(type(module), "is_affine", False) is True:  # e.g. compress's projected layers
        return "affine"
    for types, kind in _KINDS:
        if isinstance(module, types):
            if kind == "leaky_relu" and leaky_slope(module) > 1:
                break
            return kind
    raise UnsupportedLayerError(
        f"Layer '{name}' ({_describe(module)}) is not supported by output bounds and "
        f"verification{_why(module)}. Supported layers: {SUPPORTED}. Hint: replace or remove "
        "the layer "
        "(net.replace_layer / net.remove_layers), or use find_adversarial, which works on any "
        "network."
    )


def _describe(module: nn.Module) -> str:
    op = getattr(module, "op_type", None)
    return f"ONNX operator {op}" if isinstance(op, str) else type(module).__name__


def _why(module: nn.Module) -> str:
    """Why an imported ONNX operator is not bounded (empty for other layers)."""
    op = getattr(module, "op_type", None)
    if not isinstance(op, str):
        return ""
    if op in _ONNX_ELEMENTWISE:
        return (
            f" ({op} is bounded only as an element-wise affine map: one layer input and a "
            "constant of at most its size; a variable denominator or two variable operands "
            "are not linear)"
        )
    return f" (no linear relaxation is known for ONNX operator {op})"


@dataclass
class Node:
    """One step of the graph: ``module`` applied to the outputs of ``sources``.

    A source ``-1`` is the network input.
    """

    name: str
    module: nn.Module
    sources: tuple[int, ...]
    kind: str


@dataclass
class Graph:
    """Nodes in execution order; the last node is the output.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> g = to_graph(Network([L.FeatureInput(2), L.Dense(3), L.ReLU(), L.Softmax()]))
        >>> [n.kind for n in g.nodes], g.ends_in_softmax
        (['affine', 'relu', 'softmax'], True)
        >>> g.logits(torch.zeros(4, 2)).shape
        torch.Size([4, 3])
    """

    nodes: list[Node]
    module: nn.Module
    shapes: dict = field(default_factory=dict, repr=False)  # node sizes per input size

    @property
    def ends_in_softmax(self) -> bool:
        """True when the last node is a softmax."""
        return self.nodes[-1].kind == "softmax"

    def without_softmax(self) -> Graph:
        """This graph without a final softmax (verification works on logits)."""
        return Graph(self.nodes[:-1], self.module) if self.ends_in_softmax else self

    def run(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Values of every node for input ``x``."""
        values: list[torch.Tensor] = []
        for node in self.nodes:
            args = [x if s < 0 else values[s] for s in node.sources]
            values.append(node.module(*args))
        return values

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)[-1]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Output before a final softmax (the output itself if there is none)."""
        return self.without_softmax()(x)

    def check_supported(self) -> None:
        """Raise UnsupportedLayerError for a softmax that is not the last node."""
        for node in self.nodes[:-1]:
            if node.kind == "softmax":
                raise UnsupportedLayerError(
                    f"Layer '{node.name}' (Softmax) is only supported as the last layer."
                )


def _network_graph(net: Network) -> Graph:
    if len(net.input_names) != 1 or len(net.output_names) != 1:
        raise NetworkError(
            f"Robustness tools need a network with one input and one output; network "
            f"'{net.name}' has inputs {net.input_names} and outputs {net.output_names}."
        )
    net.initialize()
    order = _topological(net)
    nodes: list[Node] = []
    first = net.layer(order[0])
    index = {order[0]: -1}
    if not first.is_identity:
        index[order[0]] = 0
        nodes.append(Node(order[0], first, (-1,), "affine"))
    for name in order[1:]:
        module = net.layer(name)
        module = _onnx_affine(module) or module
        sources = tuple(index[s] for s in net.sources(name).values())  # type: ignore[index]
        index[name] = len(nodes)
        nodes.append(Node(name, module, sources, _kind(name, module)))
    return Graph(nodes, net)


def _topological(net: Network) -> list[str]:
    remaining = {n: set(s for s in net.sources(n).values()) for n in net.layer_names}
    order: list[str] = []
    while remaining:
        ready = [n for n, deps in remaining.items() if deps <= set(order)]
        if not ready:  # pragma: no cover - Network.initialize rejects cycles first
            raise NetworkError(f"Network '{net.name}' has a cycle.")
        for name in ready:
            order.append(name)
            del remaining[name]
    return order


def to_graph(net: nn.Module) -> Graph:
    """Return the :class:`Graph` of a Network or a ``torch.nn.Sequential``.

    Example:
        >>> from torch import nn
        >>> [n.kind for n in to_graph(nn.Sequential(nn.Linear(2, 3), nn.Tanh())).nodes]
        ['affine', 'tanh']
    """
    if isinstance(net, Network):
        return _network_graph(net)
    if isinstance(net, nn.Sequential):
        modules: Sequence[tuple[str, nn.Module]] = list(net.named_children())
        nodes = [
            Node(name, module, (i - 1,), _kind(name, module))
            for i, (name, module) in enumerate(modules)
        ]
        if not nodes:
            raise NetworkError(
                "Robustness tools need a non-empty network; received nn.Sequential()."
            )
        return Graph(nodes, net)
    raise UnsupportedLayerError(
        f"Output bounds and verification need a deeptoolbox Network or a torch.nn.Sequential; "
        f"received {type(net).__name__}. Hint: convert it with deeptoolbox's from_torch, or "
        "use find_adversarial, which works on any module."
    )


def logits_function(net: nn.Module):
    """A callable giving the network's outputs before a final softmax (any module works).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> f = logits_function(nn.Sequential(nn.Linear(2, 3), nn.Softmax(dim=1)))
        >>> f(torch.zeros(1, 2)).shape
        torch.Size([1, 3])
    """
    try:
        graph = to_graph(net)
    except DeepToolboxError:
        return net
    return graph.logits if graph.ends_in_softmax else net


def device_of(net: nn.Module) -> torch.device:
    """Device of the first parameter or buffer (CPU for a module without any)."""
    for tensor in (*net.parameters(), *net.buffers()):
        return tensor.device
    return torch.device("cpu")


def dtype_of(net: nn.Module) -> torch.dtype:
    """Floating dtype of the first floating parameter (float32 otherwise)."""
    for tensor in net.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32
