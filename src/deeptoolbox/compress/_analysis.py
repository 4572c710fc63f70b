"""The "compression" column of :func:`deeptoolbox.analyze`: per layer, whether it can be
quantized, projected and pruned (registered with the network's analysis-check registry)."""

from __future__ import annotations

from deeptoolbox import layers as L
from deeptoolbox.compress._channels import PRODUCERS, ChannelGraph
from deeptoolbox.compress._placeholders import NO_BACKEND
from deeptoolbox.compress._projected_layers import PROJECTED
from deeptoolbox.compress._projection import why_not_projectable
from deeptoolbox.layers._base import layer_type_name
from deeptoolbox.network import Network

_INT8 = (L.Conv1d, L.Conv2d, L.Conv3d, L.TransposedConv2d, L.Dense, *PROJECTED)


def _quantize(module) -> str:
    if layer_type_name(module) in NO_BACKEND:
        return "no backend"
    if isinstance(module, _INT8):
        return "int8"
    if isinstance(module, L.BatchNorm):
        return "folded"  # into the convolution or Dense before it, when there is one
    if isinstance(module, L.InputLayer | L.ReLU | L.MaxPool1d | L.MaxPool2d | L.Flatten):
        return "int8 pass"
    return "float"


def _prune(graph: ChannelGraph | None, net: Network, name: str) -> str:
    if graph is None:
        return "-"
    if not isinstance(net.layer(name), PRODUCERS):
        return "-"
    reason = graph.why_not(name)
    if reason is not None:
        return "no"
    count = sum(1 for c in graph.prunable() if name in c.producers)
    heads = graph.heads.get(name)
    return f"{count} ch" + (f", {heads.heads} heads" if heads and not heads.blocked else "")


def compression_check(net: Network) -> dict[str, str]:
    """Per layer: ``quantize ... | project ... | prune ...`` (layers with nothing to say
    are left out).

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(4), L.Dense(8, name="fc"), L.ReLU(), L.Dense(2)])
        >>> compression_check(net)["fc"]
        'quantize int8 | project yes | prune 8 ch'
    """
    try:
        graph = ChannelGraph(net) if net.is_initialized else None
    except Exception:  # an unusual graph: say nothing about pruning rather than fail
        graph = None
    verdicts = {}
    for name in net.layer_names:
        module = net.layer(name)
        quantize = _quantize(module)
        weighted = any(True for _ in module.parameters())
        if not weighted and quantize != "no backend":
            continue
        project = "yes" if why_not_projectable(net, name) is None else "no"
        verdicts[name] = (
            f"quantize {quantize} | project {project} | prune {_prune(graph, net, name)}"
        )
    return verdicts
