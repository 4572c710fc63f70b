"""Physically remove channels and heads: new layers with the new sizes, weights sliced.

The result is a copy of the network in which every pruned layer is an ordinary layer whose
hyperparameters are the new sizes (``Conv2d(12, 3)``), so it saves and reloads from its
configuration alone. Only the public editing API of the Network is used.
"""

from __future__ import annotations

import copy
import re
import warnings

import torch
from torch import nn

from deeptoolbox import layers as L
from deeptoolbox.compress._channels import _CONVOLUTIONS, _RECURRENT, ChannelGraph
from deeptoolbox.network import Network

State = dict[str, torch.Tensor]


def _rows(tensor: torch.Tensor, index: list[int]) -> torch.Tensor:
    return tensor[torch.as_tensor(index, dtype=torch.long, device=tensor.device)]


def _columns(tensor: torch.Tensor, index: list[int]) -> torch.Tensor:
    return tensor[:, torch.as_tensor(index, dtype=torch.long, device=tensor.device)]


def _input_columns(net: Network, source: str, kept: list[int], flatten: bool) -> list[int]:
    """Columns of a consumer's weight that read the kept channels of ``source``."""
    if not flatten:
        return kept
    shape = net.output_shape(source)
    positions = 1
    for d in shape[1:]:
        positions *= int(d)
    return [c * positions + p for c in kept for p in range(positions)]


def _convolution(module, state: State, kept_in: list[int], kept_out: list[int], channels: int):
    config = module.get_config()
    weight = _rows(state["weight"], kept_out)
    if module.groups == 1:
        weight = _columns(weight, kept_in)
    elif module.groups == channels:
        config["groups"] = len(kept_in)
    else:  # grouped: the same positions are kept in every group
        per_group = channels // module.groups
        positions = sorted({c % per_group for c in kept_in})
        weight = _columns(weight, positions)
    config["filters"] = len(kept_out)
    new_state = {"weight": weight}
    if "bias" in state:
        new_state["bias"] = _rows(state["bias"], kept_out)
    return type(module).from_config(config), new_state


def _dense(net, name, module, state, kept_in, kept_out, source):
    columns = _input_columns(net, source, kept_in, module.flatten_input)
    new_state = {"weight": _columns(_rows(state["weight"], kept_out), columns)}
    if "bias" in state:
        new_state["bias"] = _rows(state["bias"], kept_out)
    return L.Dense.from_config({**module.get_config(), "units": len(kept_out)}), new_state


def _gate_rows(units: list[int], hidden: int, gates: int) -> list[int]:
    return [g * hidden + u for g in range(gates) for u in units]


def _recurrent(module, state: State, kept_in: list[int], kept_out: list[int]):
    hidden, gates = module.hidden_size, 4 if module.cell == "lstm" else 3
    units = [u for u in kept_out if u < hidden] if module.num_layers == 1 else list(range(hidden))
    rows = _gate_rows(units, hidden, gates)
    new_state: State = {}
    for key, value in state.items():
        first_layer = "_l0" in key
        if module.num_layers > 1 and not (first_layer and "weight_ih" in key):
            new_state[key] = value
            continue
        if module.num_layers > 1:
            new_state[key] = _columns(value, kept_in)
        elif "weight_ih" in key:
            new_state[key] = _columns(_rows(value, rows), kept_in)
        elif "weight_hh" in key:
            new_state[key] = _columns(_rows(value, rows), units)
        else:
            new_state[key] = _rows(value, rows)
    config = {**module.get_config(), "hidden_size": len(units)}
    return type(module).from_config(config), new_state


def _attention(module, state: State, kept_in, kept_out, kept_heads: list[int], channels: int):
    keys = module.key_channels or channels
    head = keys // module.num_heads
    rows = [h * head + j for h in kept_heads for j in range(head)]
    new_state: State = {}
    for part in ("query", "key", "value"):
        new_state[f"{part}_weight"] = _columns(_rows(state[f"{part}_weight"], rows), kept_in)
        new_state[f"{part}_bias"] = _rows(state[f"{part}_bias"], rows)
    new_state["output_weight"] = _columns(_rows(state["output_weight"], kept_out), rows)
    new_state["output_bias"] = _rows(state["output_bias"], kept_out)
    config = {
        **module.get_config(),
        "num_heads": len(kept_heads),
        "key_channels": head * len(kept_heads),
        "output_channels": len(kept_out),
    }
    return L.SelfAttention.from_config(config), new_state


def _transposed(module, state: State, kept_in: list[int], kept_out: list[int]):
    new_state = {"weight": _columns(_rows(state["weight"], kept_in), kept_out)}
    if "bias" in state:
        new_state["bias"] = _rows(state["bias"], kept_out)
    config = {**module.get_config(), "filters": len(kept_out)}
    return L.TransposedConv2d.from_config(config), new_state


def _sliced_layer(net, graph, name, kept, heads):
    """(new layer or None to keep the module, new state or None to keep it)."""
    module = net.layer(name)
    sources = [s for p, s in net.sources(name).items() if p != "mask" and s]
    source = sources[0] if sources else None
    kept_out = kept[name]
    kept_in = kept[source] if source else []
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    unchanged_in = source is None or len(kept_in) == graph.spaces[source]
    unchanged_out = len(kept_out) == graph.spaces[name]
    if unchanged_in and unchanged_out and name not in heads:
        return None, None
    if isinstance(module, _CONVOLUTIONS):
        return _convolution(module, state, kept_in, kept_out, graph.spaces[source])
    if isinstance(module, L.Dense):
        return _dense(net, name, module, state, kept_in, kept_out, source)
    if isinstance(module, _RECURRENT):
        return _recurrent(module, state, kept_in, kept_out)
    if isinstance(module, L.SelfAttention):
        all_heads = list(range(module.num_heads))
        kept_heads = heads.get(name, all_heads)
        return _attention(module, state, kept_in, kept_out, kept_heads, graph.spaces[source])
    if isinstance(module, L.TransposedConv2d):
        return _transposed(module, state, kept_in, kept_out)
    if isinstance(module, L.BatchNorm):
        sliced = {k: (_rows(v, kept_out) if v.dim() == 1 else v) for k, v in state.items()}
        return None, sliced
    return None, None  # no weights tied to channels


def remove_channels(
    net: Network,
    graph: ChannelGraph,
    removed: set[int],
    heads: dict[str, list[int]] | None = None,
) -> Network:
    """A copy of ``net`` without the components ``removed`` (and without the heads not kept).

    ``heads`` maps a SelfAttention layer to the heads it keeps. ``net`` itself is not changed.
    """
    heads = heads or {}
    kept = graph.kept(removed)
    plans = {name: _sliced_layer(net, graph, name, kept, heads) for name in net.layer_names}
    pruned = copy.deepcopy(net)
    frozen = set(net.frozen_layers)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pruned.editing():  # one size resolution for all the replaced layers
            for name, (layer, _) in plans.items():
                if layer is not None:
                    factor = net.learn_rate_factor(name)
                    pruned.replace_layer(name, layer)
                    if factor != 1.0:
                        pruned.set_learn_rate_factor(name, factor)
    _rewarn(caught, {n for n, (_, state) in plans.items() if state is None})
    for name, (_, state) in plans.items():
        if state is not None:
            _load(pruned.layer(name), state)
    if frozen:
        pruned.freeze(sorted(frozen))
    pruned.initialize()
    return pruned


def _rewarn(caught: list[warnings.WarningMessage], not_restored: set[str]) -> None:
    """Re-issue the warnings of the surgery, except that of re-initialized layers whose sliced
    weights are loaded right after (kept when it names a layer in ``not_restored``)."""
    for record in caught:
        text = str(record.message)
        if "were re-initialized" in text:
            listed = text.split("layers ", 1)[-1].split("were re-initialized")[0]
            named = set(re.findall(r"'([^']+)'", listed))
            if not named & not_restored:
                continue
        warnings.warn_explicit(record.message, record.category, record.filename, record.lineno)


def _load(module: nn.Module, state: State) -> None:
    reference = next(iter(module.state_dict().values()), None)
    if reference is not None:
        state = {k: v.to(reference.device) for k, v in state.items()}
    module.load_state_dict(state, strict=True)
