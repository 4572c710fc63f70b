"""Which layer types C generation supports, and why not when it does not (no sizes needed,
no lowering: the lowering itself asks these rules)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from deeptoolbox import layers as L

_SEQUENCE_PADDING = "a padding option C generation does not understand"


def _padding_reason(layer: nn.Module) -> str | None:
    padding, dims = layer.padding, len(layer.kernel_size)
    if padding in ("same", "valid"):
        return None
    if isinstance(padding, tuple | list):
        flat = all(isinstance(p, int) for p in padding) and len(padding) in (dims, 2 * dims)
        pairs = len(padding) == dims and all(
            isinstance(p, tuple | list) and len(p) == 2 for p in padding
        )
        if flat or pairs:
            return None
    return f"padding={padding!r} is {_SEQUENCE_PADDING}"


def _recurrent_reason(layer: nn.Module) -> str | None:
    if layer.has_padding_mask:
        return "a padding-mask input is not supported (generate for fixed-length sequences)"
    if getattr(layer, "stateful", False):
        return (
            "stateful mode is not supported (NAME_predict starts every call from a zero "
            "state; NAME_step and NAME_reset keep the state in C): set stateful=False"
        )
    return None


def _pool_reason(layer: nn.Module) -> str | None:
    padding = layer.padding
    if padding == "same" or (
        isinstance(padding, tuple) and all(isinstance(p, int) for p in padding)
    ):
        return None
    return f"padding={padding!r} is {_SEQUENCE_PADDING}"


def _no_reason(layer: nn.Module) -> str | None:
    return None


CHECKS: dict[type, Callable[[nn.Module], str | None]] = {
    L.FeatureInput: _no_reason,
    L.ImageInput: _no_reason,
    L.SequenceInput: _no_reason,
    L.VolumeInput: _no_reason,
    L.Dense: _no_reason,
    L.Conv1d: _padding_reason,
    L.Conv2d: _padding_reason,
    L.TransposedConv2d: _no_reason,
    L.MaxPool1d: _pool_reason,
    L.MaxPool2d: _pool_reason,
    L.AvgPool1d: _pool_reason,
    L.AvgPool2d: _pool_reason,
    L.GlobalAvgPool: _no_reason,
    L.GlobalMaxPool: _no_reason,
    L.BatchNorm: _no_reason,
    L.ReLU: _no_reason,
    L.LeakyReLU: _no_reason,
    L.ELU: _no_reason,
    L.GELU: _no_reason,
    L.Sigmoid: _no_reason,
    L.Tanh: _no_reason,
    L.Swish: _no_reason,
    L.Softmax: _no_reason,
    L.Dropout: _no_reason,
    L.Addition: _no_reason,
    L.Multiplication: _no_reason,
    L.Concatenation: _no_reason,
    L.Flatten: _no_reason,
    L.Reshape: _no_reason,
    L.LSTM: _recurrent_reason,
    L.GRU: _recurrent_reason,
}
"""Exact layer classes C generation handles; a subclass may compute something else."""

_NOT_YET = {
    L.Conv3d: "3-D convolution is not supported (Conv1d, Conv2d and TransposedConv2d are)",
    L.LayerNorm: "layer normalization is not supported (BatchNorm is, folded into convolutions)",
    L.GroupNorm: "group normalization is not supported (BatchNorm is)",
    L.Resize2d: "resizing is not supported (TransposedConv2d upsamples)",
    L.Embedding: "embeddings are not supported",
    L.SelfAttention: "attention is not supported",
    L.PositionEmbedding: "position embeddings are not supported",
    L.TransposedConv1d: "1-D transposed convolution is not supported (TransposedConv2d is)",
    L.TransposedConv3d: "3-D transposed convolution is not supported (TransposedConv2d is)",
    L.AdaptiveAvgPool1d: "adaptive pooling is not supported (AvgPool1d is)",
    L.AdaptiveAvgPool2d: "adaptive pooling is not supported (AvgPool2d and GlobalAvgPool are)",
    L.AdaptiveAvgPool3d: "adaptive pooling is not supported",
    L.Resize3d: "resizing is not supported",
    L.MaxUnpooling2d: "max unpooling is not supported (TransposedConv2d upsamples)",
}


def unsupported_reason(layer: nn.Module) -> str | None:
    """Why C generation cannot handle ``layer``, or None when it can."""
    check = CHECKS.get(type(layer))
    if check is not None:
        return check(layer)
    if type(layer) in _NOT_YET:
        return _NOT_YET[type(layer)]
    for known in CHECKS:
        if isinstance(layer, known):
            return (
                f"a subclass of {known.__name__} ({type(layer).__name__}) may compute something "
                "else; only the toolbox's own layer classes are generated"
            )
    return f"{type(layer).__name__} is not a layer type C generation knows"


def check_arguments(where: str, net, sequence_length) -> None:
    """OptionError unless ``net`` is a Network and ``sequence_length`` None or a positive int."""
    from deeptoolbox.errors import OptionError
    from deeptoolbox.network import Network

    if not isinstance(net, Network):
        raise OptionError(
            f"{where} expects a deeptoolbox Network. Received: {type(net).__name__}. "
            "Bring a PyTorch module in with deeptoolbox.from_torch first."
        )
    if sequence_length is not None and (
        isinstance(sequence_length, bool)
        or not isinstance(sequence_length, int)
        or sequence_length < 1
    ):
        raise OptionError(
            f"{where}: `sequence_length` must be a positive int or None. "
            f"Received: sequence_length={sequence_length!r}."
        )


def supported_layer_types() -> list[str]:
    """Names of the layer types C generation supports.

    Example:
        >>> "Conv2d" in supported_layer_types()
        True
    """
    return sorted(cls.__name__ for cls in CHECKS)
