"""Layers compression cannot work on: importers' placeholders (``KerasPlaceholder``,
``OnnxPlaceholder``, anything whose ``cannot_run()`` gives a reason) and opaque modules no
quantization backend can trace. quantize, prune, project and the analyze column use these."""

from __future__ import annotations

from deeptoolbox.errors import CompressionError
from deeptoolbox.layers._base import Layer, layer_type_name
from deeptoolbox.network import Network

NO_BACKEND = ("OnnxPlaceholder", "KerasPlaceholder", "OpaqueModule")


def placeholder_reason(module: object) -> str | None:
    """Why ``module`` cannot be compressed (a placeholder to replace), or None.

    Example:
        >>> from deeptoolbox.layers import ReLU
        >>> placeholder_reason(ReLU()) is None
        True
    """
    reason = module.cannot_run() if isinstance(module, Layer) else None
    if reason:
        return reason
    kind = layer_type_name(module)
    if kind in ("OnnxPlaceholder", "KerasPlaceholder"):
        return f"a {kind}, which stands for a layer the importer could not convert"
    return None


def check_no_placeholders(net: Network, where: str, *, opaque: bool = False) -> None:
    """Raise CompressionError naming every placeholder layer of ``net`` (and, with
    ``opaque``, every OpaqueModule, which no quantization backend can trace).

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> check_no_placeholders(Network([L.FeatureInput(2), L.Dense(2)]), "prune")
    """

    def why(module: object) -> str | None:
        reason = placeholder_reason(module)
        if reason is None and opaque and layer_type_name(module) in NO_BACKEND:
            return "no quantization backend can trace it"
        return reason

    found = [(name, why(module), layer_type_name(module)) for name, module in net.layers.items()]
    listed = [f"'{name}' ({kind}: {reason})" for name, reason, kind in found if reason]
    if listed:
        raise CompressionError(
            f"{where}: network '{net.name}' cannot be compressed while it has layer(s) "
            + "; ".join(listed)
            + ". Replace them with toolbox layers first (net.replace_layer(name, layer))."
        )
