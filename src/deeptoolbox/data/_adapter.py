"""The one data adapter: every toolbox function that reads data reads it through here.

``train``, ``predict`` / ``classify`` / ``evaluate``, the explainers, the attacks and bounds,
out-of-distribution detection and the compression tools accept the same forms of data:

- a tensor or numpy array, observations first (a nested list of numbers works too);
- a tuple ``(input_1, ..., input_k, targets)`` of arrays, one per network input and then the
  targets (the targets are optional; ``train`` and ``evaluate`` also read a list this way);
- a list of variable-length ``(T, C)`` sequences (for a network with a SequenceInput),
  optionally as ``(sequences, targets)``: padded as the sequence options say;
- a ``Dataset`` (every datastore is one), read in mini-batches with its own collate;
- a ``DataLoader``, or any other iterable of batches: each batch a tensor, a tuple
  ``(input_1, ..., input_k, targets...)`` or a dict with ``inputs`` (``targets``, ``mask``).

Anything else fails with a :class:`~deeptoolbox.errors.DataFormError` that names the
argument, the type (or shape) found and these forms, worded the same everywhere.

:func:`adapt` turns data into a :class:`BatchSource` (mini-batches in a reproducible,
resumable order; a Dataset's batches come from :func:`~deeptoolbox.data._base.make_dataloader`,
with pinned memory on CUDA and workers kept alive across epochs when ``num_workers > 0``);
:func:`network_source` adds what comes from the network (sequence padding, class names, the
mask input); :func:`input_tensor` gathers the inputs of any form into one tensor (explainers,
attacks, bounds).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, RandomSampler
from torch.utils.data.distributed import DistributedSampler

from deeptoolbox.data._base import default_collate, make_dataloader
from deeptoolbox.data._reading import (
    ClassMap,
    SequencePadding,
    as_labelled_arrays,
    as_sequence_data,
    class_map,
    count_inputs,
    has_mask_input,
    map_classes,
    reading_without_augmentation,
    sequence_collate,
)
from deeptoolbox.errors import DataFormError, InputSizeError, OptionError

__all__ = [
    "FORMS", "Batch", "BatchSource", "adapt", "network_source", "split_batch", "input_tensor",
    "form_error", "empty_error",
]  # fmt: skip

FORMS = (
    "a tensor or numpy array (observations first), a tuple (input_1, ..., input_k, targets) "
    "of arrays, a list of (T, C) sequences, a Dataset or datastore, a DataLoader, or an "
    "iterable of batches"
)


def _found(data: Any) -> str:
    if isinstance(data, torch.Tensor | np.ndarray):
        return f"a {type(data).__name__} of size {tuple(data.shape)}"
    if isinstance(data, tuple | list):
        kinds = ", ".join(type(d).__name__ for d in data[:4]) + (", ..." if len(data) > 4 else "")
        return f"a {type(data).__name__} of {len(data)} item(s) ({kinds})"
    return f"{type(data).__name__} {data!r:.60}"


def form_error(where: str, data: Any, num_inputs: int = 1) -> DataFormError:
    """The error for data of a form the toolbox does not read (the same text everywhere).

    Example:
        >>> print(form_error("predict: `data`", 42))
        predict: `data` must be a tensor or numpy array (observations first), a tuple (input_1, ..., input_k, targets) of arrays, a list of (T, C) sequences, a Dataset or datastore, a DataLoader, or an iterable of batches (here k = 1, the network's inputs). Received: int 42.
    """
    return DataFormError(
        f"{where} must be {FORMS} (here k = {num_inputs}, the network's inputs). Received: "
        f"{_found(data)}."
    )


def empty_error(where: str, shape: tuple | None = None) -> InputSizeError:
    """The error for data without observations (the same text everywhere).

    Example:
        >>> print(empty_error("predict: `data`", (0, 4)))
        predict: `data` holds no observations (size (0, 4)). Give at least one.
    """
    size = f" (size {shape})" if shape is not None else ""
    return InputSizeError(f"{where} holds no observations{size}. Give at least one.")


@dataclass
class Batch:
    """One mini-batch: input tensors, target (or None) and an optional (N, T) bool mask."""

    inputs: tuple[torch.Tensor, ...]
    target: Any
    mask: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return int(self.inputs[0].shape[0])


def to_tensor(value: Any, cast: bool = True) -> Any:
    """A numpy array as a tensor (read-only arrays copied); with ``cast``, float64 as float32.

    Example:
        >>> to_tensor(np.zeros(2)).dtype, to_tensor(np.zeros(2), cast=False).dtype
        (torch.float32, torch.float64)
    """
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value if value.flags.writeable else value.copy())
    if cast and isinstance(value, torch.Tensor) and value.dtype == torch.float64:
        value = value.float()
    return value


def split_batch(
    batch: Any,
    num_inputs: int,
    where: str = "data",
    *,
    mask_input: bool = False,
    cast: bool = True,
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
            raise DataFormError(
                f"{where}: a batch given as a dict needs the key 'inputs' (and 'targets', and "
                f"'mask' for padded sequences). Received keys: {sorted(batch)}."
            )
        inputs = batch["inputs"]
        inputs = tuple(inputs) if isinstance(inputs, tuple | list) else (inputs,)
        mask = batch.get("mask")
        if mask_input and mask is not None and len(inputs) == num_inputs - 1:
            inputs = (*inputs, mask.float())
        target = to_tensor(batch.get("targets"), cast)
        return Batch(tuple(to_tensor(x, cast) for x in inputs), target, mask)
    if isinstance(batch, torch.Tensor | np.ndarray):
        return Batch((to_tensor(batch, cast),), None)
    if isinstance(batch, tuple | list) and len(batch) >= num_inputs:
        inputs = tuple(to_tensor(x, cast) for x in batch[:num_inputs])
        targets = tuple(to_tensor(t, cast) for t in batch[num_inputs:])
        return Batch(inputs, targets[0] if len(targets) == 1 else (targets or None))
    raise DataFormError(
        f"{where}: each batch must be a tensor, a tuple (input_1, ..., input_{num_inputs}, "
        f"target) or a dict with 'inputs' and 'targets'. Received a batch that is "
        f"{_found(batch)}."
    )


def _epoch_order(count: int, shuffle: str, seed: int, epoch: int) -> torch.Tensor:
    if shuffle == "never":
        return torch.arange(count)
    generator = torch.Generator().manual_seed(seed + (epoch if shuffle == "every-epoch" else 0))
    return torch.randperm(count, generator=generator)


def _shard(index: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    return index[rank::world] if world > 1 else index


class _EpochBatches:
    """The batch sampler of a Dataset source: the index groups of the epoch being read.

    One object for the whole run, so a DataLoader with persistent workers is built once; the
    groups change in the main process before each epoch.
    """

    def __init__(self) -> None:
        self.groups: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.groups)

    def __len__(self) -> int:
        return len(self.groups)


class BatchSource:
    """Mini-batches for one epoch, possibly starting after ``skip`` batches.

    ``kind`` is "arrays" (sliced directly, without a DataLoader), "dataset" (a DataLoader
    whose batches follow an index order computed here, so the order only depends on the seed
    and the epoch, and a resumed run can skip to any batch) or "iterable" (a DataLoader or
    other iterable of batches, read as it is; with several processes a DataLoader's dataset is
    sharded with a DistributedSampler, and a datastore that reads in chunks (an
    IterableDataset with a ``shard`` method, such as TabularDatastore) reads only its
    process's shard, the processes stepping together until the first one runs out).
    """

    def __init__(
        self, kind: str, payload: Any, count: int | None, num_inputs: int, cast: bool = True
    ) -> None:
        self.kind, self.payload, self.count, self.num_inputs = kind, payload, count, num_inputs
        self.batch_size, self.shuffle, self.seed = 1, "never", 0
        self.rank, self.world, self.num_workers = 0, 1, 0
        self.pin_memory: bool | None = None  # None: pinned when CUDA is present (DataLoaders)
        self.dealt = (0, 1)  # (rank, world): whole batches dealt out, see deal_batches()
        self.lockstep = False  # sharded chunks: every process stops when the first runs out
        self.collate = getattr(payload, "collate_fn", None) if kind == "dataset" else None
        self.mask_input, self.cast = False, cast
        self.class_map: ClassMap | None = None
        self.where = "data"
        self._sampler = _EpochBatches()
        self._loaders: dict[Any, DataLoader] = {}

    def configure(self, batch_size: int, shuffle: str, seed: int, rank: int = 0, world: int = 1):
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world = rank, world
        if world > 1 and self.kind == "iterable":
            self.lockstep = _chunked(self.payload) or (
                isinstance(self.payload, DataLoader) and _chunked(self.payload.dataset)
            )
            self.payload = _distributed_loader(self.payload, rank, world, seed)
        return self

    def deal_batches(self, rank: int, world: int) -> bool:
        """Give this process every ``world``-th whole batch, from the ``rank``-th on (the
        validation data of several processes: each reads its part, the values are summed).
        Only arrays and Datasets can be dealt; returns whether this source is.

        Example:
            >>> source = adapt(torch.zeros(10, 2), 1).configure(4, "never", 0)
            >>> source.deal_batches(1, 2), [b.size for b, _ in source.epoch(0)]
            (True, [4])
        """
        if self.kind == "iterable" or world == 1:
            return False
        self.dealt = (rank, world)
        return True

    def _batch(self, batch: Any) -> Batch:
        parsed = split_batch(
            batch, self.num_inputs, self.where, mask_input=self.mask_input, cast=self.cast
        )
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
        if self.count is None:
            raise OptionError("global_batch_sizes: the data does not say how many it holds.")
        for start in range(0, self.count, self.batch_size):
            yield min(self.batch_size, self.count - start)

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[tuple[Batch, int]]:
        """Yield ``(batch, global_batch_size)`` for ``epoch``, skipping the first ``skip``."""
        if self.kind == "iterable":
            yield from self._iterable_epoch(epoch, skip)
            return
        order = _epoch_order(self.count, self.shuffle, self.seed, epoch)  # type: ignore[arg-type]
        starts = range(skip * self.batch_size, self.count, self.batch_size)  # type: ignore[arg-type]
        starts = starts[self.dealt[0] :: self.dealt[1]]
        if self.kind == "arrays":
            yield from self._array_epoch(order, starts)
            return
        groups = [order[s : s + self.batch_size] for s in starts]
        self._sampler.groups = [_shard(g, self.rank, self.world).tolist() for g in groups]
        sizes = [len(g) for g in groups]
        for batch, size in zip(self._loader(), sizes, strict=True):
            yield self._batch(batch), size

    def _iterable_epoch(self, epoch: int, skip: int) -> Iterator[tuple[Batch, int]]:
        sampler = getattr(self.payload, "sampler", None)
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        batches = _in_lockstep(self.payload) if self.lockstep else self.payload
        for number, batch in enumerate(batches):
            if number >= skip:
                parsed = self._batch(batch)
                yield parsed, parsed.size * self.world

    def _array_epoch(self, order: torch.Tensor, starts: range) -> Iterator[tuple[Batch, int]]:
        in_order = self.shuffle == "never" and self.world == 1
        for start in starts:
            index = order[start : start + self.batch_size]
            if in_order:  # a view, no copy
                parts = [a[start : start + self.batch_size] for a in self.payload]
            else:
                parts = [a[_shard(index, self.rank, self.world)] for a in self.payload]
            if self.pin_memory and torch.cuda.is_available():  # then copies to the GPU overlap
                parts = [p if p.is_pinned() else p.pin_memory() for p in parts]
            target = parts[self.num_inputs] if len(parts) > self.num_inputs else None
            target = map_classes(target, self.class_map)
            yield Batch(tuple(parts[: self.num_inputs]), target), len(index)

    def _loader(self) -> DataLoader:
        """The DataLoader over the dataset, one per reading mode (augmentation on or off): its
        workers, kept alive across epochs, hold a copy of the dataset made in that mode."""
        mode = getattr(self.payload, "training", None)
        if mode not in self._loaders:
            self._loaders[mode] = make_dataloader(
                self.payload, batch_sampler=self._sampler, workers=self.num_workers,
                collate=self.collate or default_collate, persistent_workers=True,
                pin_memory=self.pin_memory,
            )  # fmt: skip
        return self._loaders[mode]


def _in_lockstep(batches: Iterable[Any]) -> Iterator[Any]:
    """The batches of this process while every process still has one: one small all-reduce
    per batch, so that no process waits in a collective the others never reach (the
    shards of a chunked datastore can hold a chunk more or less)."""
    import torch.distributed as dist

    nccl = dist.get_backend() == "nccl"
    device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
    iterator = iter(batches)
    while True:
        batch = next(iterator, None)
        flag = torch.tensor([0 if batch is None else 1], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        if not bool(flag.item()):
            return
        yield batch


def _is_array(value: Any) -> bool:
    return isinstance(value, torch.Tensor | np.ndarray)


def _is_nested_numbers(data: Any) -> bool:
    """True for a (nested) Python list of numbers such as [[0.1, 0.2], [0.3, 0.4]]."""
    while isinstance(data, list) and data:
        data = data[0]
    return isinstance(data, int | float) and not isinstance(data, bool)


def _array_parts(data: Any, num_inputs: int, targets: bool) -> tuple | None:
    """The arrays of ``data`` when it is arrays: inputs alone, or inputs then targets."""
    if _is_array(data):
        return (data,)
    if not isinstance(data, tuple | list) or not all(_is_array(a) for a in data):
        return None
    if len(data) == num_inputs + 1 and (targets or isinstance(data, tuple)):
        return tuple(data)
    if len(data) == num_inputs and (num_inputs > 1 or isinstance(data, tuple)):
        return tuple(data)
    return None  # a list of batches (or of sequences, handled before)


def _arrays(parts: tuple, where: str, cast: bool) -> list[torch.Tensor]:
    if any(a.dim() == 0 if isinstance(a, torch.Tensor) else a.ndim == 0 for a in parts):
        raise DataFormError(
            f"{where}: arrays must hold observations along their first dimension; received a "
            f"0-d array. Give a batch: x[None] for one observation."
        )
    arrays = [to_tensor(a, cast) for a in parts]
    counts = [len(a) for a in arrays]
    if len(set(counts)) != 1:
        raise InputSizeError(
            f"{where}: the arrays have different numbers of observations (first dimension): "
            f"{counts}. Inputs and targets must have the same number of observations."
        )
    if counts[0] == 0:
        raise empty_error(where, tuple(arrays[0].shape))
    return arrays


def adapt(
    data: Any,
    num_inputs: int,
    where: str = "train: `data`",
    *,
    targets: bool = True,
    cast: bool = True,
) -> BatchSource:
    """Wrap any accepted form of ``data`` (see the module) as a :class:`BatchSource`.

    ``where`` names the argument in errors ("predict: `data`"). ``targets=False`` (inference)
    also reads a list of ``num_inputs + 1`` arrays as batches, as predict always has. With
    ``cast``, float64 arrays are read as float32 (training); without, values are kept for
    the caller to convert to the network's dtype.

    Example:
        >>> import torch
        >>> source = adapt((torch.zeros(10, 3), torch.zeros(10)), 1).configure(4, "never", 0)
        >>> [b.size for b, _ in source.epoch(0)]
        [4, 4, 2]
        >>> adapt("images/", 1, "predict: `data`")
        Traceback (most recent call last):
        ...
        deeptoolbox.errors.DataFormError: predict: `data` must be a tensor or numpy array (observations first), a tuple (input_1, ..., input_k, targets) of arrays, a list of (T, C) sequences, a Dataset or datastore, a DataLoader, or an iterable of batches (here k = 1, the network's inputs). Received: str 'images/'.
    """
    if isinstance(data, list) and _is_nested_numbers(data):
        data = np.asarray(data)
    parts = _array_parts(data, num_inputs, targets)
    if parts is not None:
        arrays = _arrays(parts, where, cast)
        return _named(BatchSource("arrays", arrays, len(arrays[0]), num_inputs, cast), where)
    if isinstance(data, Dataset) and not isinstance(data, IterableDataset | DataLoader):
        try:
            count = len(data)  # type: ignore[arg-type]
        except TypeError:
            count = None
        if count is not None:
            if count == 0:
                raise empty_error(where)
            return _named(BatchSource("dataset", data, count, num_inputs, cast), where)
    if isinstance(data, Iterable) and not isinstance(data, str | bytes | dict):
        return _named(BatchSource("iterable", data, None, num_inputs, cast), where)
    raise form_error(where, data, num_inputs)


def _named(source: BatchSource, where: str) -> BatchSource:
    source.where = where
    return source


def network_source(
    net: torch.nn.Module,
    data: Any,
    padding: SequencePadding,
    where: str,
    *,
    targets: bool = True,
    explicit: bool = False,
    cast: bool = True,
) -> BatchSource:
    """A BatchSource for ``net``: sequence lists padded, a datastore's padding overridden by
    ``padding``, the mask passed to a mask input and, with ``targets``, string labels read as
    classes and targets mapped onto ``net.classes`` by name.

    ``explicit`` reads a list of arrays as sequences even for a plain module (predict's
    ``uniform_output=False``).

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> from deeptoolbox.data import ArrayDatastore
        >>> net = Network([L.FeatureInput(1), L.Dense(2)], classes=["b", "a"])
        >>> ds = ArrayDatastore(np.zeros((2, 1)), targets=["a", "b"])
        >>> source = network_source(net, ds, SequencePadding(), "data").configure(2, "never", 0)
        >>> next(source.epoch(0))[0].target.tolist()
        [1, 0]
    """
    data = as_sequence_data(net, data, padding, explicit=explicit)
    if targets:
        data = as_labelled_arrays(net, data)
    source = adapt(data, count_inputs(net), where, targets=targets, cast=cast)
    if source.kind == "dataset":
        source.collate = sequence_collate(data, padding)
    source.mask_input = has_mask_input(net)
    if targets:
        source.class_map = class_map(net, data, where)
    return source


def input_tensor(data: Any, where: str, *, batch_size: int = 256) -> torch.Tensor:
    """The inputs of single-input ``data`` of any accepted form, as one tensor (observations
    first): a tensor stays where it is, the inputs of a tuple, Dataset, DataLoader or
    iterable of batches are read (without augmentation) and joined.

    Example:
        >>> input_tensor(np.ones((3, 2)), "gradcam: `x`").shape
        torch.Size([3, 2])
        >>> input_tensor([(torch.ones(2, 4), 0), (torch.ones(1, 4), 1)], "x").shape
        torch.Size([3, 4])
    """
    if isinstance(data, np.ndarray) or isinstance(data, list) and _is_nested_numbers(data):
        data = to_tensor(np.asarray(data), cast=False)
    if isinstance(data, torch.Tensor):
        if data.dim() >= 1 and data.shape[0] == 0:
            raise empty_error(where, tuple(data.shape))
        return data
    source = adapt(data, 1, where, targets=False, cast=False).configure(batch_size, "never", 0)
    if source.kind == "arrays":
        return source.payload[0]
    with reading_without_augmentation(source.payload):
        parts = [batch.inputs[0] for batch, _ in source.epoch(0)]
    if not parts:
        raise empty_error(where)
    if not all(isinstance(p, torch.Tensor) for p in parts):
        raise form_error(where, data)
    try:
        return torch.cat(parts)
    except RuntimeError as err:
        sizes = sorted({tuple(p.shape[1:]) for p in parts})
        raise InputSizeError(
            f"{where}: the batches hold observations of different sizes {sizes[:4]}; they "
            "are joined into one batch here. Pad or resize them to one size."
        ) from err


def _chunked(data: Any) -> bool:
    """True for a datastore that reads in chunks and can be sharded (TabularDatastore)."""
    return isinstance(data, IterableDataset) and callable(getattr(data, "shard", None))


def _distributed_loader(data: Any, rank: int, world: int, seed: int) -> Any:
    """This process's share of ``data``: a chunked datastore's shard, or the user's
    DataLoader over its dataset's shard (a chunked datastore) or with a DistributedSampler,
    keeping its batch size, collate function and workers; an OptionError where sharding
    cannot be.
    """
    how = (
        "Pass a map-style Dataset, a datastore with a shard() method (TabularDatastore) or "
        "(inputs, targets) arrays instead (train() then shards them), or give the "
        "DataLoader a torch.utils.data.DistributedSampler yourself."
    )
    if _chunked(data):
        return data.shard(world, rank)
    if isinstance(data, DataLoader) and _chunked(data.dataset):
        return _loader_like(data, data.dataset.shard(world, rank), batch_size=data.batch_size)
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
    return _loader_like(data, data.dataset, batch_size=data.batch_size, sampler=sampler)


def _loader_like(data: DataLoader, dataset: Dataset, **sampling: Any) -> DataLoader:
    """A DataLoader over ``dataset`` with the settings of ``data`` (workers, collate...)."""
    return DataLoader(
        dataset, num_workers=data.num_workers, collate_fn=data.collate_fn,
        pin_memory=data.pin_memory, drop_last=data.drop_last, timeout=data.timeout,
        worker_init_fn=data.worker_init_fn, multiprocessing_context=data.multiprocessing_context,
        generator=data.generator, prefetch_factor=data.prefetch_factor,
        persistent_workers=data.persistent_workers, **sampling,
    )  # fmt: skip
