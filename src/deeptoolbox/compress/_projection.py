"""Projection (MATLAB's ``neuronPCA`` + ``compressNetworkUsingProjection``): PCA of each
layer's input activations, then the layer replaced by a projected pair.

For a layer computing ``W x`` on inputs ``x`` of C channels, the principal directions ``Q``
(C x k) of the inputs' second moment ``E[x x^T]`` (uncentred, so zero padding and zero inputs
stay zero) give ``W x ~ (W Q)(Q^T x)``: the projection ``Q^T`` and the smaller weight ``W Q``.
With all components kept ``Q Q^T = I`` and the result is exact.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from deeptoolbox import layers as L
from deeptoolbox.compress._data import input_batches
from deeptoolbox.compress._placeholders import check_no_placeholders
from deeptoolbox.compress._projected_layers import (
    PROJECTED,
    ProjectedConv1d,
    ProjectedConv2d,
    ProjectedDense,
    ProjectedGRU,
    ProjectedLSTM,
)
from deeptoolbox.errors import CompressionError, OptionError
from deeptoolbox.layers._base import layer_type_name, product
from deeptoolbox.network import Network

MAX_FEATURES = 8192  # larger inputs (a Dense on a big flattened image) are not analysed


def why_not_projectable(net: Network, name: str) -> str | None:
    """None if layer ``name`` can be projected, else the reason."""
    module = net.layer(name)
    kind = layer_type_name(module)
    if isinstance(module, L.Dense):
        shape = net.sources(name) and net.output_shape(next(iter(net.sources(name).values())))
        if shape and len(shape) >= 3 and product(shape) > MAX_FEATURES:
            return f"its {product(shape)} flattened inputs are too many to analyse"
        return None
    if isinstance(module, L.Conv1d | L.Conv2d):
        return None if module.groups == 1 else "grouped convolutions cannot be projected"
    if isinstance(module, L.LSTM | L.GRU):
        if module.num_layers > 1 or module.bidirectional or module.has_padding_mask:
            return f"only single-layer, one-direction {kind} layers without a mask"
        return None
    if isinstance(module, PROJECTED):
        return "it is already projected"
    return f"{kind} layers cannot be projected (Dense, Conv1d, Conv2d, LSTM and GRU can)"


def _rows(x: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """Input activations as rows of channel vectors."""
    if isinstance(module, L.Conv2d):
        return x.transpose(1, -1).reshape(-1, x.shape[1])
    if isinstance(module, L.Dense) and module.flatten_input:
        return x.flatten(1)
    return x.reshape(-1, x.shape[-1])


@dataclass
class LayerPCA:
    """Principal components of one input of one layer: eigenvalues (descending), vectors."""

    eigenvalues: torch.Tensor
    vectors: torch.Tensor

    def components_for(self, explained_variance: float) -> int:
        """The fewest components that explain ``explained_variance`` (all when it is >= 1)."""
        if explained_variance >= 1:
            return len(self.eigenvalues)
        ratio = self.explained(torch.arange(1, len(self.eigenvalues) + 1))
        return int(min(len(ratio), int((ratio < explained_variance - 1e-9).sum()) + 1))

    def explained(self, components) -> torch.Tensor:
        total = self.eigenvalues.clamp_min(0).sum()
        cumulative = self.eigenvalues.clamp_min(0).cumsum(0)
        index = torch.as_tensor(components) - 1
        return cumulative[index] / total if total > 0 else torch.ones_like(cumulative[index])


@dataclass
class NeuronPCA:
    """What :func:`neuron_pca` returns: per layer, the PCA of its input (and, for LSTM/GRU,
    of its hidden state) over the data.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(6), L.Dense(8, name="fc"), L.ReLU(), L.Dense(2)])
        >>> pca = neuron_pca(net, torch.randn(100, 6))
        >>> pca["fc"]["input"].eigenvalues.shape
        torch.Size([6])
    """

    layers: dict[str, dict[str, LayerPCA]] = field(default_factory=dict)

    def __getitem__(self, name: str) -> dict[str, LayerPCA]:
        return self.layers[name]


class _Moments:
    def __init__(self) -> None:
        self.sums: dict[tuple[str, str], torch.Tensor] = {}

    def add(self, key: tuple[str, str], rows: torch.Tensor) -> None:
        rows = rows.detach().double()
        moment = rows.T @ rows
        self.sums[key] = self.sums.get(key, 0) + moment


def _hook(moments: _Moments, name: str):
    def hook(module, inputs):
        x = inputs[0]
        moments.add((name, "input"), _rows(x, module))
        if isinstance(module, L.LSTM | L.GRU):
            hidden, _ = module.rnn(x)
            moments.add((name, "hidden"), hidden.reshape(-1, hidden.shape[-1]))

    return hook


def neuron_pca(
    net: Network, data: Any, *, layers: Sequence[str] | None = None, batch_size: int = 128,
    observations: int | None = 4096,
) -> NeuronPCA:  # fmt: skip
    """Principal components of the input activations of every projectable layer (MATLAB's
    ``neuronPCA``), from up to ``observations`` observations of ``data``.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(3), L.Dense(2, name="fc")])
        >>> x = torch.randn(50, 1) * torch.tensor([[1.0, 2.0, 0.0]])  # one direction
        >>> neuron_pca(net, x)["fc"]["input"].components_for(0.99)
        1
    """
    names = _chosen(net, layers)
    moments = _Moments()
    handles = [net.layer(n).register_forward_pre_hook(_hook(moments, n)) for n in names]
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            for inputs in input_batches(net, data, batch_size, "neuron_pca: `data`",
                                        limit=observations):  # fmt: skip
                net(*inputs)
    finally:
        for handle in handles:
            handle.remove()
        net.train(was_training)
    result = NeuronPCA()
    for (name, part), moment in moments.sums.items():
        eigenvalues, vectors = torch.linalg.eigh(moment)
        order = torch.argsort(eigenvalues, descending=True)
        result.layers.setdefault(name, {})[part] = LayerPCA(
            eigenvalues[order].float(), vectors[:, order].float()
        )
    return result


def _chosen(net: Network, layers: Sequence[str] | None) -> list[str]:
    if layers is None:
        return [n for n in net.layer_names if why_not_projectable(net, n) is None]
    names = [layers] if isinstance(layers, str) else list(layers)
    for name in names:
        reason = why_not_projectable(net, name)
        if reason is not None:
            raise CompressionError(f"project: layer '{name}' cannot be projected: {reason}.")
    return names


# -- learnables and the projected layers ------------------------------------------------------
def _sizes(net: Network, name: str) -> tuple[int, int]:
    """(input channels C, output size) of a projectable layer."""
    module = net.layer(name)
    if isinstance(module, L.LSTM | L.GRU):
        return module.rnn.input_size, module.hidden_size
    weight = module.weight
    return weight.shape[1], weight.shape[0]


def _learnables(net: Network, name: str, k_in: int, k_hidden: int | None) -> int:
    module = net.layer(name)
    channels, outputs = _sizes(net, name)
    if isinstance(module, L.LSTM | L.GRU):
        rows = (4 if isinstance(module, L.LSTM) else 3) * outputs
        return k_in * channels + rows * k_in + k_hidden * outputs + rows * k_hidden + 2 * rows
    bias = outputs if module.bias is not None else 0
    per_filter = module.weight[0, 0].numel()  # kernel positions (1 for Dense)
    return k_in * channels + outputs * k_in * per_filter + bias


def _original(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _plan(net: Network, pca: NeuronPCA, names: list[str], variance: float, forced: bool):
    plan = {}
    for name in names:
        parts = pca[name]
        k_in = parts["input"].components_for(variance)
        k_hidden = parts["hidden"].components_for(variance) if "hidden" in parts else None
        smaller = _learnables(net, name, k_in, k_hidden) < _original(net.layer(name))
        if forced or smaller:
            plan[name] = (k_in, k_hidden)
    return plan


def _plan_total(net: Network, plan: dict) -> int:
    total = sum(p.numel() for p in net.parameters())
    for name, (k_in, k_hidden) in plan.items():
        total += _learnables(net, name, k_in, k_hidden) - _original(net.layer(name))
    return total


def _projected_layer(module: nn.Module, k_in: int, k_hidden: int | None):
    if isinstance(module, L.Dense):
        return ProjectedDense(module.units, k_in, bias=module.bias is not None)
    if isinstance(module, L.Conv1d | L.Conv2d):
        kind = ProjectedConv1d if isinstance(module, L.Conv1d) else ProjectedConv2d
        config = module.get_config()
        return kind(
            module.filters, config["kernel_size"], k_in, stride=config["stride"],
            padding=config["padding"], dilation=config["dilation"], bias=config["bias"],
        )  # fmt: skip
    kind = ProjectedLSTM if isinstance(module, L.LSTM) else ProjectedGRU
    return kind(module.hidden_size, k_in, k_hidden, output_mode=module.output_mode)


def _projected_state(module: nn.Module, parts: dict[str, LayerPCA], k_in, k_hidden) -> dict:
    q_in = parts["input"].vectors[:, :k_in]  # (C, k)
    if isinstance(module, L.LSTM | L.GRU):
        q_hidden = parts["hidden"].vectors[:, :k_hidden]
        rnn = module.rnn
        return {
            "input_projection.weight": q_in.T.contiguous(),
            "hidden_projection.weight": q_hidden.T.contiguous(),
            "rnn.weight_ih_l0": rnn.weight_ih_l0.detach() @ q_in,
            "recurrent_weight": rnn.weight_hh_l0.detach() @ q_hidden,
            "rnn.bias_ih_l0": rnn.bias_ih_l0.detach().clone(),
            "rnn.bias_hh_l0": rnn.bias_hh_l0.detach().clone(),
        }
    weight = module.weight.detach()
    if isinstance(module, L.Dense):
        state = {"projection.weight": q_in.T.contiguous(), "weight": weight @ q_in}
        if module.bias is not None:
            state["bias"] = module.bias.detach().clone()
        return state
    projected = torch.einsum("fc...,ck->fk...", weight, q_in).contiguous()
    state = {"projection.weight": q_in.T.contiguous(), "conv.weight": projected}
    if module.bias is not None:
        state["conv.bias"] = module.bias.detach().clone()
    return state


@dataclass
class ProjectedLayerReport:
    """One projected layer: components kept (of how many) and the variance they explain."""

    layer: str
    type: str
    components: int
    channels: int
    explained_variance: float
    hidden_components: int | None
    learnables_before: int
    learnables_after: int


@dataclass
class ProjectionResult:
    """What :func:`project` returns: the projected network and a row per projected layer.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(16), L.Dense(16, name="fc"), L.ReLU(), L.Dense(2)])
        >>> result = project(net, torch.randn(64, 2) @ torch.randn(2, 16), explained_variance=0.99)
        >>> result.layers[0].components, result.learnables < result.original_learnables
        (2, True)
    """

    network: Network
    original_learnables: int
    learnables: int
    layers: list[ProjectedLayerReport] = field(default_factory=list)

    @property
    def learnables_reduction(self) -> float:
        return 1 - self.learnables / self.original_learnables if self.original_learnables else 0

    def __str__(self) -> str:
        lines = [
            f"Projected network '{self.network.name}': {self.original_learnables:,} -> "
            f"{self.learnables:,} learnables ({self.learnables_reduction:.1%} fewer)",
            f"  {'layer':<18} {'type':<8} {'components':>12} {'explained':>9} {'learnables':>21}",
        ]
        for r in self.layers:
            comp = f"{r.components}/{r.channels}"
            if r.hidden_components is not None:
                comp += f"+{r.hidden_components}"
            learn = f"{r.learnables_before:,} -> {r.learnables_after:,}"
            lines.append(f"  {r.layer:<18} {r.type:<8} {comp:>12} {r.explained_variance:>9.1%} "
                         f"{learn:>21}")  # fmt: skip
        return "\n".join(lines)


def project(
    net: Network,
    data: Any,
    *,
    explained_variance: float | None = None,
    learnables_reduction: float | None = None,
    layers: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
) -> ProjectionResult:
    """Replace layers by projected pairs found by PCA of their inputs (MATLAB's
    ``compressNetworkUsingProjection``).

    Args:
        net: the network (not changed).
        data: data to compute the PCA on (inputs, with or without targets), or the
            :class:`NeuronPCA` of :func:`neuron_pca`.
        explained_variance: keep, in every layer, the fewest components explaining this
            fraction of its input's variance (1.0 keeps all: the result is exact).
        learnables_reduction: alternatively, the fraction of the network's learnables to
            remove; the explained variance is lowered uniformly until it is reached.
        layers: only these layers (default: every layer that can be, and gets smaller);
            named layers are projected even when that does not make them smaller.
        exclude: layers to leave as they are.

    Returns:
        A :class:`ProjectionResult` with the network and, per layer, the components kept and
        the variance they explain.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> torch.manual_seed(0) and None
        >>> net = Network([L.FeatureInput(32), L.Dense(64, name="fc"), L.ReLU(), L.Dense(2)])
        >>> x = torch.randn(256, 4) @ torch.randn(4, 32)  # inputs that span 4 directions
        >>> result = project(net, x, explained_variance=0.999)
        >>> result.network.layer("fc").components
        4
        >>> bool(torch.allclose(result.network(x), net(x), atol=1e-4))
        True
    """
    if not isinstance(net, Network):
        raise OptionError(
            f"project works on a deeptoolbox Network. Received: {type(net).__name__}."
        )
    check_no_placeholders(net, "project")
    if (explained_variance is None) == (learnables_reduction is None):
        raise OptionError(
            "project: give exactly one of `explained_variance` and `learnables_reduction`. "
            f"Received: explained_variance={explained_variance!r}, "
            f"learnables_reduction={learnables_reduction!r}."
        )
    for option, value, high in (("explained_variance", explained_variance, 1.0),
                                ("learnables_reduction", learnables_reduction, 0.9999)):  # fmt: skip
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not 0 < value <= high):  # fmt: skip
            raise OptionError(
                f"project: `{option}` must be a number in (0, {high:g}]. Received: {value!r}."
            )
    for name in exclude:
        net.layer(name)
    names = [n for n in _chosen(net, layers) if n not in set(exclude)]
    pca = data if isinstance(data, NeuronPCA) else neuron_pca(net, data, layers=names)
    names = [n for n in names if n in pca.layers]
    forced = layers is not None
    if explained_variance is not None:
        plan = _plan(net, pca, names, float(explained_variance), forced)
    else:
        plan = _search(net, pca, names, float(learnables_reduction), forced)
    return _apply(net, pca, plan)


def _search(net, pca, names, goal, forced) -> dict:
    original = sum(p.numel() for p in net.parameters())
    low, high = 0.0, 1.0
    best = _plan(net, pca, names, low + 1e-6, forced)
    if 1 - _plan_total(net, best) / original < goal:
        raise CompressionError(
            f"project: even one component per layer removes only "
            f"{1 - _plan_total(net, best) / original:.1%} of the learnables, less than the "
            f"learnables_reduction goal {goal:.1%}. Project more layers or lower the goal."
        )
    for _ in range(30):
        middle = (low + high) / 2
        plan = _plan(net, pca, names, middle, forced)
        if 1 - _plan_total(net, plan) / original >= goal:
            best, low = plan, middle
        else:
            high = middle
    return best


def _apply(net: Network, pca: NeuronPCA, plan: dict) -> ProjectionResult:
    projected = copy.deepcopy(net)
    rows, states = [], {}
    for name, (k_in, k_hidden) in plan.items():
        module = net.layer(name)
        states[name] = _projected_state(module, pca[name], k_in, k_hidden)
        frozen = name in net.frozen_layers
        projected.replace_layer(name, _projected_layer(module, k_in, k_hidden))
        if frozen:
            projected.freeze(name)
        channels, _ = _sizes(net, name)
        rows.append(ProjectedLayerReport(
            name, layer_type_name(module), k_in, channels,
            float(pca[name]["input"].explained(k_in)), k_hidden,
            _original(module), _learnables(net, name, k_in, k_hidden),
        ))  # fmt: skip
    for name, state in states.items():
        layer = projected.layer(name)
        device = next(layer.parameters()).device
        layer.load_state_dict({k: v.to(device) for k, v in state.items()}, strict=True)
    projected.initialize()
    return ProjectionResult(projected, sum(p.numel() for p in net.parameters()),
                            sum(p.numel() for p in projected.parameters()), rows)  # fmt: skip


def unpack_projected(net: Network) -> Network:
    """A copy of ``net`` with every projected layer multiplied back into an ordinary layer
    (MATLAB's ``unpackProjectedLayers``); outputs are unchanged.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(8), ProjectedDense(4, 2, name="fc")])
        >>> plain = unpack_projected(net)
        >>> plain.layer("fc"), bool(torch.allclose(plain(torch.ones(1, 8)), net(torch.ones(1, 8))))
        (Dense(units=4), True)
    """
    unpacked = copy.deepcopy(net)
    states = {}
    for name in net.layer_names:
        module = net.layer(name)
        if isinstance(module, PROJECTED):
            layer, states[name] = _unpacked(module)
            unpacked.replace_layer(name, layer)
    for name, state in states.items():
        unpacked.layer(name).load_state_dict(state, strict=True)
    return unpacked


def _unpacked(module: nn.Module):
    p = module.projection.weight.detach() if hasattr(module, "projection") else None
    if isinstance(module, ProjectedDense):
        state = {"weight": module.weight.detach() @ p}
        if module.bias is not None:
            state["bias"] = module.bias.detach().clone()
        return L.Dense(module.units, bias=module.bias is not None), state
    if isinstance(module, ProjectedConv1d | ProjectedConv2d):
        conv = module.conv
        config = conv.get_config()
        state = {"weight": torch.einsum("fk...,kc->fc...", conv.weight.detach(), p).contiguous()}
        if conv.bias is not None:
            state["bias"] = conv.bias.detach().clone()
        return type(conv).from_config(config), state
    kind = L.LSTM if isinstance(module, ProjectedLSTM) else L.GRU
    rnn = module.rnn
    state = {
        "rnn.weight_ih_l0": rnn.weight_ih_l0.detach() @ module.input_projection.weight.detach(),
        "rnn.weight_hh_l0": module.recurrent_weight.detach()
        @ module.hidden_projection.weight.detach(),
        "rnn.bias_ih_l0": rnn.bias_ih_l0.detach().clone(),
        "rnn.bias_hh_l0": rnn.bias_hh_l0.detach().clone(),
    }
    return kind(module.hidden_size, output_mode=module.output_mode), state
