"""Random inputs shaped as a network's input layers, for tracing and checking exports."""

from __future__ import annotations

import torch

from deeptoolbox.layers._attention import Embedding, SelfAttention
from deeptoolbox.layers._input import InputLayer, SequenceInput
from deeptoolbox.layers._recurrent import GRU, LSTM
from deeptoolbox.network import Network


def sample_inputs(
    net: Network, *, batch: int = 2, length: int = 9, seed: int = 0
) -> list[torch.Tensor]:
    """One random batch per input layer of ``net``, on the network's device.

    Free lengths become ``length``. Inputs read by an ``Embedding`` get integer (int64) token
    ids below its vocabulary size, shaped (N, T) as tokenizers give them (a one-channel
    ``SequenceInput`` takes (N, T)), so traced and exported files take real token ids; inputs
    feeding only padding-mask ports get 0/1 masks with the first step real; inputs that
    layers converted by ``from_torch`` read as booleans get padding masks (True at the end of
    the first sequence), as integers zeros; all others are standard normal.

    Example:
        >>> from deeptoolbox import layers as L
        >>> net = Network([L.SequenceInput(1), L.Embedding(20, 4), L.LSTM(3)])
        >>> x = sample_inputs(net, batch=3, length=5)[0]
        >>> tuple(x.shape), x.dtype, bool(x.max() < 20)
        ((3, 5), torch.int64, True)
    """
    generator = torch.Generator().manual_seed(seed)
    reference = next(net.parameters(), None)
    device = reference.device if reference is not None else torch.device("cpu")
    samples = []
    for name in net.input_names:
        layer: InputLayer = net.layers[name]  # type: ignore[assignment]
        size = (batch, *(length if d is None else d for d in layer.shape))
        samples.append(_sample(net, name, size, generator).to(device))
    return samples


def _sample(net: Network, name: str, size: tuple[int, ...], generator: torch.Generator):
    layer = net.layers[name]
    readers = [net.layers[c.destination] for c in net.connections if c.source == name]
    tokens = [m for m in readers if isinstance(m, Embedding)]
    masks = [c for c in net.connections if c.source == name and c.port == "mask"] and all(
        isinstance(m, SelfAttention | LSTM | GRU) for m in readers
    )
    declared = None if tokens else _declared_dtype(net, name)
    if declared is not None and declared.startswith(("float", "bfloat")):
        declared = None
    if tokens or declared is not None:
        size = size[:-1] if _drops_channel(layer) else size  # (N, T) as a tokenizer gives them
    if tokens:
        high = min(m.vocabulary_size for m in tokens)
        return torch.randint(0, high, size, generator=generator)
    if declared == "bool":  # a padding mask (True at padding): the first sequence padded
        x = torch.zeros(size, dtype=torch.bool)
        if x.dim() > 1:
            x[0, -max(1, x.shape[1] // 3) :] = True
        return x
    if declared is not None and declared.startswith(("int", "uint")):
        return torch.zeros(size, dtype=getattr(torch, declared))
    if masks:
        x = (torch.rand(size, generator=generator) > 0.3).float()
        x[:, 0] = 1.0
        return x
    return torch.randn(size, generator=generator)


def _drops_channel(layer: InputLayer) -> bool:
    return isinstance(layer, SequenceInput) and layer.num_channels == 1


def _declared_dtype(net: Network, name: str) -> str | None:
    """The dtype the layers reading input ``name`` were converted with (``from_torch``)."""
    for connection in net.connections:
        if connection.source != name:
            continue
        reader = net.layers[connection.destination]
        dtypes = getattr(reader, "input_dtypes", None)
        names = list(getattr(reader, "input_names", ()))
        if dtypes and connection.port in names and names.index(connection.port) < len(dtypes):
            return str(dtypes[names.index(connection.port)])
    return None
