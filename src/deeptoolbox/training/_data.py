"""Turning what users pass as data into mini-batches, in a reproducible and resumable order.

Arrays (``(inputs, targets)``) are sliced directly, without a DataLoader. A ``Dataset`` gets a
DataLoader whose batches follow an index order computed here (so the order only depends on the
seed and the epoch, and a resumed run can skip to any batch). A DataLoader or any other
iterable of batches is used as it is; with several processes a DataLoader's dataset is
sharded with a DistributedSampler (its batch size is then per process).

:func:`data_source` adds what comes from the network: lists of sequences become padded
batches, sequence options override a datastore's padding, class-index targets are mapped by
class name onto the network's classes, and a network with a mask input gets the mask.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, RandomSampler
from torch.utils.data.distributed import DistributedSampler

from deeptoolbox.errors import InputSizeError, OptionError
from deeptoolbox.inference import (
    SequencePadding,
    as_sequence_data,
    count_inputs,
    has_mask_input,
    sequence_collate,
)
from deeptoolbox.training._losses import class_axis

__all__ = ["Batch", "BatchSource", "make_source", "split_batch", "data_source", "class_names"]

ClassMap = tuple[torch.Tensor, int]  # network index of each data class, network class count


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


def split_batch(
    batch: Any, num_inputs: int, where: str = "data", *, mask_input: bool = False
) -> Batch:
    """Split a batch (tuple, tensor or dict) into inputs, target and mask.

    In a tuple the first ``num_inputs`` items (the network's input count) are the inputs; one
    item after them is the target, several are a tuple of targets, one per network output
    (``combine(x, t1, t2)``). With ``mask_input``, a dict batch with one input less than the
    network takes gets its padding mask (as float) as the last input.

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
        if mask_input and mask is not None and len(inputs) == num_inputs - 1:
            inputs = (*inputs, mask.float())
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
        self.collate = getattr(payload, "collate_fn", None) if kind == "dataset" else None
        self.mask_input = False
        self.class_map: ClassMap | None = None

    def configure(self, batch_size: int, shuffle: str, seed: int, rank: int = 0, world: int = 1):
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world = rank, world
        if world > 1 and self.kind == "iterable":
            self.payload = _distributed_loader(self.payload, rank, world, seed)
        return self

    def _batch(self, batch: Any) -> Batch:
        parsed = split_batch(batch, self.num_inputs, mask_input=self.mask_input)
        parsed.target = map_classes(parsed.target, self.class_map)
        return parsed

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
            sampler = getattr(self.payload, "sampler", None)
            if isinstance(sampler, DistributedSampler):
                sampler.set_epoch(epoch)
            for number, batch in enumerate(self.payload):
                if number >= skip:
                    parsed = self._batch(batch)
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
                target = map_classes(target, self.class_map)
                yield Batch(tuple(parts[: self.num_inputs]), target), len(index)
            return
        dataset = self.payload
        groups = [order[s : s + self.batch_size] for s in starts]
        sizes = [len(g) for g in groups]
        sampler = [_shard(g, self.rank, self.world).tolist() for g in groups]
        loader = DataLoader(
            dataset, batch_sampler=sampler, num_workers=self.num_workers, collate_fn=self.collate,
        )  # fmt: skip
        for batch, size in zip(loader, sizes, strict=True):
            yield self._batch(batch), size


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


def _distributed_loader(data: Any, rank: int, world: int, seed: int) -> DataLoader:
    """The user's DataLoader with its dataset sharded over the processes (a DistributedSampler),
    keeping its batch size, collate function and workers; an OptionError where that cannot be.
    """
    how = (
        "Pass a map-style Dataset or (inputs, targets) arrays instead (train() then shards "
        "them), or give the DataLoader a torch.utils.data.DistributedSampler yourself."
    )
    if not isinstance(data, DataLoader):
        raise OptionError(
            f"train: with {world} processes, `data` of type {type(data).__name__} would be read "
            f"whole by every process (each would train on all of it). {how}"
        )
    sampler = data.sampler if data.batch_size is not None else None
    if isinstance(sampler, DistributedSampler) or isinstance(
        getattr(data.batch_sampler, "sampler", None), DistributedSampler
    ):
        return data
    if isinstance(data.dataset, IterableDataset) or data.batch_size is None:
        kind = "an IterableDataset" if isinstance(data.dataset, IterableDataset) else (
            "its own batch_sampler")  # fmt: skip
        raise OptionError(
            f"train: with {world} processes, the DataLoader reads {kind}, which train() cannot "
            f"shard, so every process would read all the data. {how}"
        )
    sampler = DistributedSampler(
        data.dataset, num_replicas=world, rank=rank, seed=seed, drop_last=data.drop_last,
        shuffle=isinstance(data.sampler, RandomSampler),
    )  # fmt: skip
    return DataLoader(
        data.dataset, batch_size=data.batch_size, sampler=sampler, num_workers=data.num_workers,
        collate_fn=data.collate_fn, pin_memory=data.pin_memory, drop_last=data.drop_last,
        timeout=data.timeout, worker_init_fn=data.worker_init_fn,
        multiprocessing_context=data.multiprocessing_context, generator=data.generator,
        prefetch_factor=data.prefetch_factor, persistent_workers=data.persistent_workers,
    )  # fmt: skip


def class_names(data: Any) -> list[str] | None:
    """The class names of a datastore or Dataset (its ``classes``), or of a DataLoader's
    dataset; None when the data has none or its classes are not names (class indices).

    Example:
        >>> from deeptoolbox.data import ArrayDatastore
        >>> class_names(ArrayDatastore(np.zeros((2, 1)), targets=["b", "a"]))
        ['a', 'b']
    """
    if isinstance(data, DataLoader):
        data = data.dataset
    names = getattr(data, "classes", None) if isinstance(data, Dataset) else None
    if not isinstance(names, list | tuple) or not names:
        return None
    return list(names) if all(isinstance(n, str) for n in names) else None


def class_map(net: torch.nn.Module, data: Any, where: str) -> ClassMap | None:
    """Index of each of the data's classes among ``net.classes`` (None: same order)."""
    names, known = class_names(data), getattr(net, "classes", None)
    if names is None or known is None or list(known) == names:
        return None
    unknown = [n for n in names if n not in known]
    if unknown:
        raise OptionError(
            f"{where}: the data has classes {unknown[:10]} that the network does not know. The "
            f"network's classes are {list(known)[:20]}; the data's are {names[:20]}. Targets are "
            "matched to the network's classes by name: give the network all the data's classes "
            "(Network(..., classes=[...]), or leave them out and train() takes the data's)."
        )
    return torch.tensor([list(known).index(n) for n in names]), len(known)


def map_classes(target: Any, mapping: ClassMap | None) -> Any:
    """Class-index targets (or one-hot rows) renumbered by ``mapping`` (data -> network).

    Example:
        >>> map_classes(torch.tensor([0, 1, -100]), (torch.tensor([2, 0]), 3)).tolist()
        [2, 0, -100]
    """
    if mapping is None or not isinstance(target, torch.Tensor):
        return target
    index, count = mapping
    if target.is_floating_point():  # one-hot or probabilities: move the class columns
        axis = class_axis(target) % target.dim()
        shape = list(target.shape)
        shape[axis] = count
        moved = target.new_zeros(shape)
        return moved.index_copy_(axis, index.to(target.device), target)
    real = target >= 0  # negative values mark padded steps
    mapped = target.clone()
    mapped[real] = index.to(target.device)[target[real]]
    return mapped


def data_source(
    net: torch.nn.Module, data: Any, padding: SequencePadding, where: str
) -> BatchSource:
    """A BatchSource for ``net``: sequence lists padded, a datastore's padding overridden by
    ``padding``, targets mapped onto ``net.classes`` by name, the mask passed to a mask input.

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(1), L.Dense(2)], classes=["b", "a"])
        >>> from deeptoolbox.data import ArrayDatastore
        >>> ds = ArrayDatastore(np.zeros((2, 1)), targets=["a", "b"])
        >>> source = data_source(net, ds, SequencePadding(), "data").configure(2, "never", 0)
        >>> next(source.epoch(0))[0].target.tolist()
        [1, 0]
    """
    data = as_sequence_data(net, data, padding)
    source = make_source(data, count_inputs(net), where)
    if source.kind == "dataset":
        source.collate = sequence_collate(data, padding)
    source.mask_input = has_mask_input(net)
    source.class_map = class_map(net, data, where)
    return source
