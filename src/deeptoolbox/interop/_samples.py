"""Random inputs shaped as a network's input layers, for tracing and checking exports."""

from __future__ import annotations

import torch

from deeptoolbox.layers._attention import Embedding, SelfAttention
from deeptoolbox.layers._input import InputLayer
from deeptoolbox.layers._recurrent import GRU, LSTM
from deeptoolbox.network import Network


def sample_inputs(
    net: Network, *, batch: int = 2, length: int = 9, seed: int = 0
) -> list[torch.Tensor]:
    """One random batch per input layer of ``net``, on the network's device.

    Free lengths become ``length``. Inputs read by an ``Embedding`` get token ids below its
    vocabulary size; inputs feeding only padding-mask ports get 0/1 masks with the first step
    real; all others are standard normal.

    Example:
        >>> from deeptoolbox import layers as L
        >>> net = Network([L.SequenceInput(1), L.Embedding(20, 4), L.LSTM(3)])
        >>> x = sample_inputs(net, batch=3, length=5)[0]
        >>> tuple(x.shape), bool(x.max() < 20)
        ((3, 5, 1), True)
    """
    generator = torch.Generator().manual_seed(seed)
    reference = next(net.parameters(), None)
    device = reference.device if reference is not None else torch.device("cpu")
    samples = []
    for name in net.input_names:
        layer: InputLayer = net.layers[name]  # type: ignore[assignment]
        size = (batch, *(length if d is None else d for d in layer.shape))
        readers = [net.layers[c.destination] for c in net.connections if c.source == name]
        tokens = [m for m in readers if isinstance(m, Embedding)]
        masks = [c for c in net.connections if c.source == name and c.port == "mask"] and all(
            isinstance(m, SelfAttention | LSTM | GRU) for m in readers
        )
        if tokens:
            x = torch.randint(0, tokens[0].vocabulary_size, size, generator=generator).float()
        elif masks:
            x = (torch.rand(size, generator=generator) > 0.3).float()
            x[:, 0] = 1.0
        else:
            x = torch.randn(size, generator=generator)
        samples.append(x.to(device))
    return samples
