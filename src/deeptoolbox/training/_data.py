"""Turning what users pass as data into mini-batches, in a reproducible and resumable order.

Arrays (``(inputs, targets)``) are sliced directly, without a DataLoader. A ``Dataset`` gets a
DataLoader whose batches follow an index order computed here (so the order only depends on the
seed and the epoch, and a resumed run can skip to any batch). A DataLoader or any other
iterable of batches is used as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from deeptoolbox.errors import InputSizeError, OptionError

__all__ = ["Batch", "BatchSource", "make_source", "split_batch"]


@dataclass
class Batch:
    """One mini-batch: input tensors, target (or None) and an optional (N, T) bool mask."""

    inputs: tuple[torch.Tensor, ...]
    target: Any
    mask: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return int(self.inputs[0].shape[0])


def _tensor(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if isinstance(value, torch.Tensor) and value.dtype == torch.float64:
        value = value.float()
    return value


def split_batch(batch: Any, num_inputs: int, where: str = "data") -> Batch:
    """Split a batch (tuple, tensor or dict) into inputs, target and mask.

    In a tuple the first ``num_inputs`` items (the network's input count) are the inputs; one
    item after them is the target, several are a tuple of targets, one per network output
    (``combine(x, t1, t2)``).

    Example:
        >>> import torch
        >>> b = split_batch((torch.zeros(4, 2), torch.ones(4)), 1)
        >>> b.inputs[0].shape, b.target.shape
        (torch.Size([4, 2]), torch.Size([4]))
        >>> len(split_batch((torch.zeros(4, 2), torch.ones(4), torch.ones(4, 3)), 1).target)
        2
    """
    if isinstance(batch, dict):
        if "inputs" not in batch:
            raise OptionError(
                f"{where}: a batch given as a dict needs the key 'inputs' (and 'targets', and "
                f"'mask' for padded sequences). Received keys: {sorted(batch)}."
            )
        inputs = batch["inputs"]
        inputs = tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)
        mask = batch.get("mask")
        return Batch(tuple(_tensor(x) for x in inputs), _tensor(batch.get("targets")), mask)
    if isinstance(batch, torch.Tensor | np.ndarray):
        return Batch((_tensor(batch),), None)
    if isinstance(batch, tuple | list) and len(batch) >= num_inputs:
        inputs = tuple(_tensor(x) for x in batch[:num_inputs])
        targets = tuple(_tensor(t) for t in batch[num_inputs:])
        return Batch(inputs, targets[0] if len(targets) == 1 else (targets or None))
    raise OptionError(
        f"{where}: each batch must be a tensor, a tuple (input_1, ..., input_{num_inputs}, "
        f"target) or a dict with 'inputs' and 'targets'. Received a batch of type "
        f"{type(batch).__name__}."
    )


def _epoch_order(count: int, shuffle: str, seed: int, epoch: int) -> torch.Tensor:
    if shuffle == "never":
        return torch.arange(count)
    generator = torch.Generator().manual_seed(seed + (epoch if shuffle == "every-epoch" else 0))
    return torch.randperm(count, generator=generator)


def _shard(index: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    return index[rank::world] if world > 1 else index


class BatchSource:
    """Mini-batches for one epoch, possibly starting after ``skip`` batches."""

    def __init__(self, kind: str, payload: Any, count: int | None, num_inputs: int) -> None:
        self.kind, self.payload, self.count, self.num_inputs = kind, payload, count, num_inputs
        self.batch_size, self.shuffle, self.seed = 1, "never", 0
        self.rank, self.world, self.num_workers = 0, 1, 0

    def configure(self, batch_size: int, shuffle: str, seed: int, rank: int = 0, world: int = 1):
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world = rank, world
        return self

    def batches_per_epoch(self) -> int | None:
        if self.count is None:
            try:
                return len(self.payload)
            except TypeError:
                return None
        return -(-self.count // self.batch_size)

    def global_batch_sizes(self, epoch: int) -> Iterator[int]:
        """The size of every global batch of an epoch (all ranks together)."""
        assert self.count is not None
        for start in range(0, self.count, self.batch_size):
            yield min(self.batch_size, self.count - start)

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[tuple[Batch, int]]:
        """Yield ``(batch, global_batch_size)`` for ``epoch``, skipping the first ``skip``."""
        if self.kind == "iterable":
            for number, batch in enumerate(self.payload):
                if number >= skip:
                    parsed = split_batch(batch, self.num_inputs)
                    yield parsed, parsed.size * self.world
            return
        order = _epoch_order(self.count, self.shuffle, self.seed, epoch)  # type: ignore[arg-type]
        starts = range(skip * self.batch_size, self.count, self.batch_size)  # type: ignore[arg-type]
        if self.kind == "arrays":
            for start in starts:
                index = order[start : start + self.batch_size]
                local = _shard(index, self.rank, self.world)
                parts = [a[local] for a in self.payload]
                target = parts[self.num_inputs] if len(parts) > self.num_inputs else None
                yield Batch(tuple(parts[: self.num_inputs]), target), len(index)
            return
        dataset = self.payload
        groups = [order[s : s + self.batch_size] for s in starts]
        sizes = [len(g) for g in groups]
        sampler = [_shard(g, self.rank, self.world).tolist() for g in groups]
        loader = DataLoader(
            dataset, batch_sampler=sampler, num_workers=self.num_workers,
            collate_fn=getattr(dataset, "collate_fn", None),
        )  # fmt: skip
        for batch, size in zip(loader, sizes, strict=True):
            yield split_batch(batch, self.num_inputs), size


def _arrays(data: Any, num_inputs: int, where: str) -> list[torch.Tensor] | None:
    if isinstance(data, torch.Tensor | np.ndarray):
        data = (data,)  # inputs alone, no targets
    if not isinstance(data, tuple | list) or len(data) not in (num_inputs, num_inputs + 1):
        return None
    if not all(isinstance(a, torch.Tensor | np.ndarray) for a in data):
        return None
    arrays = [_tensor(a) for a in data]
    counts = [len(a) for a in arrays]
    if len(set(counts)) != 1:
        raise InputSizeError(
            f"{where}: inputs and targets must have the same number of observations (first "
            f"dimension). Received: {counts}."
        )
    if counts[0] == 0:
        raise InputSizeError(f"{where}: the data holds no observations.")
    return arrays


def make_source(data: Any, num_inputs: int, where: str = "train: `data`") -> BatchSource:
    """Wrap arrays, a Dataset, a DataLoader or an iterable of batches as a BatchSource.

    Example:
        >>> import torch
        >>> source = make_source((torch.zeros(10, 3), torch.zeros(10)), 1).configure(4, "never", 0)
        >>> [b.size for b, _ in source.epoch(0)]
        [4, 4, 2]
    """
    arrays = _arrays(data, num_inputs, where)
    if arrays is not None:
        return BatchSource("arrays", arrays, len(arrays[0]), num_inputs)
    if isinstance(data, Dataset) and not isinstance(data, IterableDataset | DataLoader):
        try:
            count = len(data)  # type: ignore[arg-type]
        except TypeError:
            count = None
        if count is not None:
            if count == 0:
                raise InputSizeError(f"{where}: the dataset holds no observations.")
            return BatchSource("dataset", data, count, num_inputs)
    if isinstance(data, Iterable) and not isinstance(data, str | torch.Tensor | np.ndarray):
        return BatchSource("iterable", data, None, num_inputs)
    raise OptionError(
        f"{where} must be (inputs, targets) arrays ({num_inputs} input(s) then the targets), a "
        f"torch Dataset, a DataLoader or an iterable of batches. Received: {type(data).__name__}."
    )
