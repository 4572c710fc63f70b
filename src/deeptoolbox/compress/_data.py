"""Mini-batches of the data forms every toolbox function takes (the data adapter), for the
compression tools."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from deeptoolbox.data._adapter import Batch, adapt
from deeptoolbox.errors import InputSizeError
from deeptoolbox.network import Network


def batches(
    net: torch.nn.Module, data: Any, batch_size: int, where: str, *, limit: int | None = None
) -> Iterator[Batch]:
    """Mini-batches of ``data`` (arrays, ``(inputs, targets)``, a Dataset, a DataLoader...).

    Inputs are checked against ``net``'s input layers, so data of the wrong size fails with a
    message naming the input layer. ``limit`` stops after that many observations.
    """
    num_inputs = len(net.input_names) if isinstance(net, Network) else 1
    source = adapt(data, num_inputs, where).configure(batch_size, "never", 0)
    seen = 0
    for batch, _ in source.epoch(0):
        inputs = tuple(torch.as_tensor(x) for x in batch.inputs)
        inputs = tuple(x.float() if x.is_floating_point() else x for x in inputs)
        if isinstance(net, Network):
            try:
                net.check_inputs(list(inputs))
            except InputSizeError as err:
                raise InputSizeError(f"{where}: {err}") from err
        yield Batch(inputs, batch.target, batch.mask)
        seen += batch.size
        if limit is not None and seen >= limit:
            return


def input_batches(net: torch.nn.Module, data: Any, batch_size: int, where: str, **kw):
    """Only the inputs of :func:`batches`, as tuples of tensors."""
    for batch in batches(net, data, batch_size, where, **kw):
        yield batch.inputs
