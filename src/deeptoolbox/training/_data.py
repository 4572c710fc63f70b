"""Training's names for the data adapter (``deeptoolbox.data._adapter``), where the code lives.

Kept so that code written against ``deeptoolbox.training._data`` keeps working: training,
inference, the explainers, robustness and compression all read data through the one adapter.

Example:
    >>> import torch
    >>> source = make_source((torch.zeros(10, 3), torch.zeros(10)), 1).configure(4, "never", 0)
    >>> [b.size for b, _ in source.epoch(0)]
    [4, 4, 2]
"""

from __future__ import annotations

from typing import Any

import torch

from deeptoolbox.data._adapter import Batch, BatchSource, adapt, network_source, split_batch
from deeptoolbox.data._reading import (
    SequencePadding,
    as_labelled_arrays,
    class_map,
    class_names,
    map_classes,
)

__all__ = [
    "Batch", "BatchSource", "make_source", "split_batch", "data_source", "class_names",
    "class_map", "map_classes", "as_labelled_arrays",
]  # fmt: skip


def make_source(data: Any, num_inputs: int, where: str = "train: `data`") -> BatchSource:
    """:func:`deeptoolbox.data._adapter.adapt` for training data (targets, float64 as float32).

    Example:
        >>> make_source(torch.zeros(6, 2), 1).kind
        'arrays'
    """
    return adapt(data, num_inputs, where)


def data_source(
    net: torch.nn.Module, data: Any, padding: SequencePadding, where: str
) -> BatchSource:
    """:func:`deeptoolbox.data._adapter.network_source` for labelled data.

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(1)])
        >>> data_source(net, torch.zeros(4, 2), SequencePadding(), "data").count
        4
    """
    return network_source(net, data, padding, where)
