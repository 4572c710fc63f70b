"""How much each prunable channel matters: weight magnitude or first-order Taylor scores."""

from __future__ import annotations

import torch
from torch import nn

from deeptoolbox import layers as L
from deeptoolbox.compress._channels import _RECURRENT, ChannelGraph, Component
from deeptoolbox.errors import OptionError

NORMS = ("l1", "l2")


def _norm(values: torch.Tensor, norm: str) -> torch.Tensor:
    """Norm of each row of ``values`` (rows: output channels)."""
    flat = values.detach().float().flatten(1)
    return flat.abs().sum(1) if norm == "l1" else flat.pow(2).sum(1).sqrt()


def producer_norms(module: nn.Module, norm: str) -> torch.Tensor:
    """Norm of the weights that make each output channel of a layer (its filters or units).

    Example:
        >>> from deeptoolbox import layers as L
        >>> conv = L.Conv2d(3, 1, padding=0); conv.build([(2, 4, 4)])
        >>> producer_norms(conv, "l1").shape
        torch.Size([3])
    """
    if isinstance(module, L.TransposedConv2d):
        return _norm(module.weight.transpose(0, 1), norm)
    if isinstance(module, L.SelfAttention):
        return _norm(module.output_weight, norm)
    if isinstance(module, _RECURRENT):
        return _recurrent_norms(module, norm)
    return _norm(module.weight, norm)


def _recurrent_norms(module: nn.Module, norm: str) -> torch.Tensor:
    hidden, gates = module.hidden_size, 4 if module.cell == "lstm" else 3
    directions = ["", "_reverse"] if module.bidirectional else [""]
    result = []
    for suffix in directions:
        rows = [getattr(module.rnn, f"weight_{w}_l0{suffix}") for w in ("ih", "hh")]
        per_unit = torch.cat([r.detach().view(gates, hidden, -1) for r in rows], dim=2)
        result.append(_norm(per_unit.transpose(0, 1), norm))
    return torch.cat(result)


def head_norms(module: L.SelfAttention, norm: str) -> torch.Tensor:
    """Norm of each head's query, key, value rows and output columns."""
    head = module.query_weight.shape[0] // module.num_heads
    parts = [getattr(module, f"{p}_weight").detach() for p in ("query", "key", "value")]
    rows = torch.cat(parts, dim=1).view(module.num_heads, head, -1)
    columns = module.output_weight.detach().t().reshape(module.num_heads, head, -1)
    return _norm(torch.cat([rows.flatten(1), columns.flatten(1)], dim=1), norm)


def component_scores(
    graph: ChannelGraph, channel_scores: dict[str, torch.Tensor]
) -> dict[int, float]:
    """Score of each prunable component: the mean over its producer channels of the channel's
    score divided by the mean score of its layer (so layers of any scale compare)."""
    normalized = {}
    for name, values in channel_scores.items():
        mean = float(values.mean())
        normalized[name] = values / mean if mean > 0 else values
    scores = {}
    for component in graph.prunable():
        values = [
            float(normalized[name][i])
            for name, indices in component.producers.items()
            if name in normalized
            for i in indices
        ]
        scores[component.index] = sum(values) / len(values) if values else 0.0
    return scores


def magnitude_scores(graph: ChannelGraph, norm: str = "l2") -> dict[int, float]:
    """Component scores from weight norms (MATLAB's magnitude pruning)."""
    if norm not in NORMS:
        raise OptionError(f"magnitude pruning: `norm` must be 'l1' or 'l2'. Received: {norm!r}.")
    producers = {n for c in graph.prunable() for n in c.producers}
    channel = {name: producer_norms(graph.net.layer(name), norm) for name in producers}
    return component_scores(graph, channel)


def taylor_channel_scores(activation: torch.Tensor, gradient: torch.Tensor, rank: int):
    """|sum over positions of activation x gradient| per observation and channel, summed over
    the batch (first-order Taylor estimate of the loss change when the channel is removed;
    Molchanov et al., 2017). ``rank`` is the size rank of the layer output (batch excluded)."""
    product = (activation * gradient).float()
    if rank <= 2:  # features (N, C) or sequences (N, T, C): channels last
        per_channel = product.reshape(product.shape[0], -1, product.shape[-1]).sum(1)
    else:
        per_channel = product.flatten(2).sum(2)
    return per_channel.abs().sum(0)


def lowest(scores: dict[int, float], count: int, among: list[Component]) -> list[int]:
    """Indices of the ``count`` components of ``among`` with the lowest scores."""
    ranked = sorted(among, key=lambda c: (scores.get(c.index, 0.0), c.index))
    return [c.index for c in ranked[:count]]
