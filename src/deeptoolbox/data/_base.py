"""The Datastore base class: indexing, sequential reading, views (shuffle, subset, partition,
split), labels, lazy transforms, combine() and loader()."""

from __future__ import annotations

import copy
import gc
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset
from torch.utils.data import default_collate as _default_collate

from deeptoolbox.data import _split
from deeptoolbox.errors import DataError, OptionError

__all__ = [
    "Datastore", "CombinedDatastore", "combine", "loader", "make_dataloader", "default_collate",
]  # fmt: skip


def default_collate(items: list[Any]) -> Any:
    """Stack observations into a batch (PyTorch's ``default_collate``) with a clear error.

    Example:
        >>> import torch
        >>> default_collate([(torch.zeros(2), 0), (torch.ones(2), 1)])[0].shape
        torch.Size([2, 2])
    """
    try:
        return _default_collate(items)
    except RuntimeError as err:
        raise DataError(
            "cannot stack the observations of a batch: they differ in size "
            f"({err}). Give the datastore an `output_size` (images; `color='rgb'` or "
            "'gray' when a folder mixes gray and colour files) or a padding "
            "`sequence_length` (sequences), or a `transform` that makes sizes equal."
        ) from err


class Datastore(Dataset):
    """Base class of every deeptoolbox datastore: a map-style ``torch.utils.data.Dataset``.

    A datastore holds a list of *source items* (files, array rows...) and a view on them
    (``_order``), so ``shuffle``, ``subset``, ``partition`` and ``split`` return cheap new
    datastores of the same type that share the source. Subclasses implement ``_count()``,
    ``_load(j)`` (observation of source item ``j``) and, when they have labels,
    ``_source_labels()``; they call ``_init_view()`` at the end of ``__init__``.

    ``ds[i]`` returns one observation: the input alone, or ``(input_1, ..., target)``.
    ``training`` (True by default) switches random augmentation on; ``eval()`` and
    ``train()`` set it in place, as for an ``nn.Module``. ``predict``/``classify`` read in
    eval mode and restore the mode afterwards.

    Example:
        >>> from deeptoolbox.data import ArrayDatastore
        >>> ds = ArrayDatastore(np.arange(12.0).reshape(6, 2), targets=list("aabbcc"))
        >>> len(ds), ds.classes, ds.count_each_label()
        (6, ['a', 'b', 'c'], {'a': 2, 'b': 2, 'c': 2})
        >>> train_ds, test_ds = ds.split(0.5, seed=0)
        >>> len(train_ds), len(test_ds)
        (3, 3)
    """

    collate_fn: Callable[[list[Any]], Any] | None = None
    _classes: list[Any] | None = None

    # ----------------------------------------------------------------- subclass hooks
    def _count(self) -> int:
        raise NotImplementedError

    def _load(self, j: int) -> Any:
        raise NotImplementedError

    def _source_labels(self) -> np.ndarray | None:
        return None

    def _init_view(self) -> None:
        self._order = np.arange(self._count(), dtype=np.int64)
        self._transforms: tuple[Callable[[Any], Any], ...] = ()
        self._cursor = 0
        self.training = True

    # ----------------------------------------------------------------- indexing
    def __len__(self) -> int:
        return len(self._order)

    def __getitem__(self, index: int) -> Any:
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise TypeError(
                f"{self._name()}: index with an int; for several items use subset(). "
                f"Received: {type(index).__name__}."
            )
        n = len(self._order)
        if not -n <= index < n:
            raise IndexError(f"{self._name()}: index {index} out of range for {n} items.")
        observation = self._load(int(self._order[index]))
        for fn in self._transforms:
            observation = fn(observation)
        return observation

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def _name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        classes = "" if self.classes is None else f", classes={self.classes!r}"
        return f"{self._name()}({len(self)} items{classes})"

    # ----------------------------------------------------------------- sequential reading
    def read(self) -> Any:
        """Return the next observation and advance (MATLAB ``read``); see ``has_data``.

        Example:
            >>> from deeptoolbox.data import ArrayDatastore
            >>> ds = ArrayDatastore(np.arange(3.0))
            >>> float(ds.read()), float(ds.read()), ds.has_data()
            (0.0, 1.0, True)
        """
        if not self.has_data():
            raise DataError(f"{self._name()}: no more data to read. Call reset() first.")
        observation = self[self._cursor]
        self._cursor += 1
        return observation

    def has_data(self) -> bool:
        """True while ``read()`` has observations left.

        Example:
            >>> from deeptoolbox.data import ArrayDatastore
            >>> ArrayDatastore(np.zeros(0)).has_data()
            False
        """
        return self._cursor < len(self)

    def reset(self) -> None:
        """Go back to the first observation for ``read()``.

        Example:
            >>> from deeptoolbox.data import ArrayDatastore
            >>> ds = ArrayDatastore(np.arange(2.0)); _ = ds.read(); ds.reset(); float(ds.read())
            0.0
        """
        self._cursor = 0

    def readall(self) -> Any:
        """Every observation, collated into one batch (stacked tensors, or a padded dict).

        Example:
            >>> from deeptoolbox.data import ArrayDatastore
            >>> ArrayDatastore(np.ones((4, 3))).readall().shape
            torch.Size([4, 3])
        """
        if len(self) == 0:
            raise DataError(f"{self._name()}: the datastore is empty; nothing to read.")
        collate = self.collate_fn or default_collate
        return collate([self[i] for i in range(len(self))])

    def preview(self) -> Any:
        """The first observation, without moving the ``read()`` position.

        Example:
            >>> from deeptoolbox.data import ArrayDatastore
            >>> ArrayDatastore(np.ones((4, 3))).preview().shape
            torch.Size([3])
        """
        if len(self) == 0:
            raise DataError(f"{self._name()}: the datastore is empty; nothing to preview.")
        return self[0]

    # ----------------------------------------------------------------- training mode
    def train(self, mode: bool = True) -> Datastore:
        """Switch random augmentation on (``mode=True``) or off, in place; returns ``self``.

        Example:
            >>> from deeptoolbox.data import ArrayDatastore
            >>> ArrayDatastore(np.ones(2)).eval().training
            False
        """
        self.training = bool(mode)
        return self

    def eval(self) -> Datastore:
        """Switch random augmentation off, in place (same as ``train(False)``); returns ``self``.

        Example:
            >>> from deeptoolbox.data import ArrayDatastore
            >>> ArrayDatastore(np.ones(2)).eval().train().training
            True
        """
        return self.train(False)

    # ----------------------------------------------------------------- labels
    @property
    def labels(self) -> np.ndarray | None:
        """The label of each observation, in datastore order (None without labels)."""
        source = self._source_labels()
        return None if source is None else source[self._order]

    @property
    def classes(self) -> list[Any] | None:
        """The class names, in the order of the target indices (None without labels)."""
        return None if self._classes is None else list(self._classes)

    def _require_labels(self, method: str) -> np.ndarray:
        labels = self.labels
        if labels is None:
            raise DataError(
                f"{self._name()}.{method}: the datastore has no labels. Give `labels=` (or "
                "`targets=` for arrays) when you build it."
            )
        return labels

    def count_each_label(self) -> dict[Any, int]:
        """Number of observations of each class (MATLAB ``countEachLabel``).

        Example:
            >>> from deeptoolbox.data import ArrayDatastore
            >>> ArrayDatastore(np.ones((3, 1)), targets=["x", "y", "x"]).count_each_label()
            {'x': 2, 'y': 1}
        """
        labels = self._require_labels("count_each_label")
        classes = self.classes if self.classes is not None else sorted(set(labels.tolist()))
        return {c: int(np.count_nonzero(labels == c)) for c in classes}

    # ----------------------------------------------------------------- views
    def _view(self, order: np.ndarray) -> Datastore:
        new = copy.copy(self)
        new._order = np.asarray(order, dtype=np.int64)
        new._cursor = 0
        return new

    def shuffle(self, seed: int | None = None) -> Datastore:
        """A new datastore with the observations in random order (reproducible with ``seed``;
        ``seed=None`` draws from torch's global generator, see ``torch.manual_seed``).

        Example:
            >>> from deeptoolbox.data import ArrayDatastore
            >>> ds = ArrayDatastore(np.arange(5.0)).shuffle(seed=1)
            >>> sorted(float(x) for x in ds)
            [0.0, 1.0, 2.0, 3.0, 4.0]
        """
        rng = np.random.default_rng(_draw_seed(seed))
        return self._view(self._order[rng.permutation(len(self))])

    def subset(self, indices: Sequence[int] | np.ndarray | slice | torch.Tensor) -> Datastore:
        """A new datastore with the observations at ``indices`` (ints, a bool mask or a slice).

        Example:
            >>> from deeptoolbox.data import ArrayDatastore
            >>> [float(x) for x in ArrayDatastore(np.arange(5.0)).subset([4, 0])]
            [4.0, 0.0]
        """
        n = len(self)
        if isinstance(indices, slice):
            return self._view(self._order[indices])
        index = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices)
        if index.dtype == bool:
            if index.shape != (n,):
                raise DataError(
                    f"{self._name()}.subset: a boolean mask must have one entry per "
                    f"observation ({n}). Received a mask of shape {index.shape}."
                )
            index = np.flatnonzero(index)
        if index.size and not np.issubdtype(index.dtype, np.integer):
            raise DataError(
                f"{self._name()}.subset: `indices` must be ints, a bool mask or a slice. "
                f"Received dtype {index.dtype}."
            )
        index = index.astype(np.int64).reshape(-1)
        bad = index[(index < -n) | (index >= n)]
        if bad.size:
            raise DataError(
                f"{self._name()}.subset: indices must lie in [{-n}, {n}). "
                f"Received: {bad[:5].tolist()}."
            )
        return self._view(self._order[index])

    def partition(self, n: int, i: int) -> Datastore:
        """Part ``i`` (0-based) of ``n`` contiguous, near-equal parts (MATLAB ``partition``).

        The ``n`` parts cover every observation exactly once.

        Example:
            >>> from deeptoolbox.data import ArrayDatastore
            >>> ds = ArrayDatastore(np.arange(7.0))
            >>> [len(ds.partition(3, i)) for i in range(3)]
            [3, 2, 2]
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise OptionError(
                f"{self._name()}.partition: `n` must be a positive int. Received: {n!r}."
            )
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n:
            raise OptionError(
                f"{self._name()}.partition: `i` must be an int in [0, {n}). Received: {i!r}."
            )
        return self._view(np.array_split(self._order, n)[i])

    def shard(self, num_shards: int, index: int) -> Datastore:
        """The part of process ``index`` among ``num_shards``: ``partition(num_shards,
        index)`` under the name PyTorch and tf.data use. ``train()`` with several processes
        shards each mini-batch itself; this is for loops of your own.

        Example:
            >>> from deeptoolbox.data import ArrayDatastore
            >>> ArrayDatastore(np.arange(5.0)).shard(2, 1).readall().tolist()
            [3.0, 4.0]
        """
        return self.partition(num_shards, index)

    def split(
        self,
        *amounts: float | int | Sequence[float | int],
        stratify: bool = True,
        shuffle: bool = True,
        seed: int | None = None,
    ) -> tuple[Datastore, ...]:
        """Split into parts by fractions or counts (MATLAB ``splitEachLabel``).

        ``amounts`` are fractions (floats in (0, 1], summing to at most 1) or counts (ints):
        ``split(0.8)``, ``split(0.7, 0.15)`` (or ``split([0.7, 0.15])``), ``split(40)``,
        ``split(40, 10)``. The result has one part per amount plus a last part with the rest
        (always for counts; for fractions when they sum to less than 1). With
        ``stratify=True`` (and labels) each class is split on its own: fractions of each
        class, or that many observations *of each class*; without labels or with
        ``stratify=False``, fractions and counts apply to the whole datastore.

        ``shuffle=True`` (the default) shuffles each class first, with ``seed``; with
        ``seed=None`` the shuffle comes from torch's global generator, so it differs between
        calls unless you call ``torch.manual_seed`` first. ``shuffle=False`` takes the
        observations in datastore order, like MATLAB's ``splitEachLabel`` without
        ``"randomized"``. Within each part, observations keep the datastore's order.

        A warning names every class missing from a part (e.g. a class with one image has
        nothing for validation) and every class with fewer observations than the counts ask
        for (it gets what it has, in order of the parts).

        Example:
            >>> from deeptoolbox.data import ArrayDatastore
            >>> ds = ArrayDatastore(np.zeros((10, 1)), targets=list("aaaaaabbbb"))
            >>> a, b = ds.split(0.5, seed=0)
            >>> a.count_each_label(), b.count_each_label()
            ({'a': 3, 'b': 2}, {'a': 3, 'b': 2})
            >>> first, rest = ds.split(3, shuffle=False)
            >>> first.count_each_label(), rest.count_each_label()
            ({'a': 3, 'b': 3}, {'a': 3, 'b': 1})
        """
        parsed = _split.parse_amounts(self._name(), amounts)
        rng = np.random.default_rng(_draw_seed(seed)) if shuffle else None
        labels = self.labels
        positions = np.arange(len(self))
        groups: list[tuple[Any, np.ndarray]] = (
            [(None, positions)]
            if labels is None or not stratify
            else [(c, positions[labels == c]) for c in _unique_in_order(labels)]
        )
        parts, short = _split.split_positions(parsed, groups, rng)
        notes = _split.missing_notes(parsed, parts, labels)
        if short:
            warnings.warn(
                f"{self._name()}.split: fewer observations than the counts ask for: "
                f"{'; '.join(short)}. The parts take them in order; later parts get fewer.",
                UserWarning,
                stacklevel=2,
            )
        if notes:
            warnings.warn(
                f"{self._name()}.split: {'; '.join(notes)}. A part cannot train or test on what "
                "it lacks: change the fractions or counts, or add data.",
                UserWarning,
                stacklevel=2,
            )
        return tuple(self._view(self._order[p]) for p in parts)

    # ----------------------------------------------------------------- transforms
    def transform(self, fn: Callable[[Any], Any]) -> Datastore:
        """A new datastore that applies ``fn`` to each observation when it is read (lazy).

        ``fn`` gets what ``ds[i]`` gives (the input, or the ``(input, ..., target)`` tuple)
        and returns the new observation. Use a named function (not a lambda) with
        ``workers > 0`` on platforms that start workers by spawning.

        Example:
            >>> from deeptoolbox.data import ArrayDatastore
            >>> ds = ArrayDatastore(np.arange(3.0)).transform(lambda x: x * 10)
            >>> float(ds[2])
            20.0
        """
        if not callable(fn):
            raise OptionError(
                f"{self._name()}.transform: `fn` must be callable. Received: {type(fn).__name__}."
            )
        new = self._view(self._order)
        new._transforms = (*self._transforms, fn)
        return new


def _check_fractions(name: str, fractions: float | Sequence[float]) -> list[float]:
    values = [fractions] if isinstance(fractions, int | float) else list(fractions)
    if not values or any(
        isinstance(f, bool) or not isinstance(f, int | float) or not 0 < f < 1 + 1e-9
        for f in values
    ):
        raise OptionError(
            f"{name}.split: `fractions` must be a fraction in (0, 1) or a list of them. "
            f"Received: {fractions!r}. Example: split([0.7, 0.15]) gives three parts."
        )
    total = float(sum(values))
    if total > 1 + 1e-9:
        raise OptionError(f"{name}.split: `fractions` must sum to at most 1. Received sum {total}.")
    bounds = [0.0, *np.cumsum(values).tolist()]
    if total < 1 - 1e-9:
        bounds.append(1.0)
    bounds[-1] = 1.0
    return bounds


def _draw_seed(seed: int | None) -> int | None:
    """``seed`` itself, or one drawn from torch's global generator (``torch.manual_seed``)."""
    if seed is not None:
        return seed
    return int(torch.randint(0, 2**62, (1,)).item())


def _unique_in_order(values: np.ndarray) -> list[Any]:
    seen: dict[Any, None] = {}
    for v in values.tolist():
        seen.setdefault(v, None)
    return list(seen)


class CombinedDatastore(Datastore):
    """Several datastores read side by side: ``ds[i]`` joins their observations in one tuple.

    Built by :func:`combine`. Tuples from the parts are flattened one level, so combining an
    image datastore (inputs only) with an array datastore of targets gives
    ``(image, target)``. Labels and classes come from the last part that has them. When the
    first part pads sequences (SequenceDatastore, SignalDatastore, TextDatastore without
    targets), batches are padded the same way.

    Example:
        >>> from deeptoolbox.data import ArrayDatastore, combine
        >>> ds = combine(ArrayDatastore(np.ones((3, 2))), ArrayDatastore(np.zeros(3)))
        >>> [t.shape for t in ds[0]]
        [torch.Size([2]), torch.Size([])]
    """

    def __init__(self, *datastores: Dataset) -> None:
        if not datastores:
            raise OptionError("combine: give at least one datastore.")
        for part in datastores:
            if not isinstance(part, Dataset) or isinstance(part, IterableDataset):
                raise OptionError(
                    "combine: every part must be a map-style Dataset (with len and indexing). "
                    f"Received: {type(part).__name__}."
                )
        lengths = [len(part) for part in datastores]  # type: ignore[arg-type]
        if len(set(lengths)) != 1:
            raise DataError(
                f"combine: the datastores have different numbers of observations: {lengths}. "
                "They must match one to one (use subset() to align them)."
            )
        self.parts = tuple(datastores)
        labelled = [p for p in self.parts if getattr(p, "labels", None) is not None]
        self._label_part = labelled[-1] if labelled else None
        self._classes = None if self._label_part is None else self._label_part.classes
        first = getattr(self.parts[0], "collate_fn", None)
        if first is not None and not getattr(first, "step_targets", True):
            self.collate_fn = first  # sequences + targets from another datastore: pad the same way
        self._init_view()

    def _count(self) -> int:
        return len(self.parts[0])  # type: ignore[arg-type]

    def _load(self, j: int) -> Any:
        joined: list[Any] = []
        for part in self.parts:
            item = part[j]
            joined.extend(item if isinstance(item, tuple) else (item,))
        return tuple(joined)

    def _source_labels(self) -> np.ndarray | None:
        return None if self._label_part is None else self._label_part.labels

    def train(self, mode: bool = True) -> Datastore:
        """Set the training mode of every part (in place); returns ``self``.

        Example:
            >>> from deeptoolbox.data import ArrayDatastore, combine
            >>> combine(ArrayDatastore(np.ones(2))).eval().parts[0].training
            False
        """
        for part in self.parts:
            if isinstance(part, Datastore):
                part.train(mode)
        return super().train(mode)


def combine(*datastores: Dataset) -> CombinedDatastore:
    """Read several datastores side by side (MATLAB ``combine``): inputs with targets, or
    several inputs for a network with several input layers.

    Example:
        >>> from deeptoolbox.data import ArrayDatastore, combine
        >>> x = ArrayDatastore(np.ones((4, 3)))
        >>> y = ArrayDatastore(np.array([0.5, 1.5, 2.5, 3.5]))
        >>> pair = combine(x, y)
        >>> len(pair), [t.shape for t in pair[0]]
        (4, [torch.Size([3]), torch.Size([])])
    """
    return CombinedDatastore(*datastores)


def loader(
    ds: Dataset,
    batch_size: int = 32,
    *,
    shuffle: bool = False,
    workers: int = 0,
    pin_memory: bool | None = None,
    drop_last: bool = False,
    seed: int | None = None,
    prefetch_factor: int | None = None,
    batch_function: Callable[[list[Any]], Any] | None = None,
) -> DataLoader:
    """A ``DataLoader`` over ``ds`` with the datastore's collate (padding for sequences)
    (MATLAB's ``minibatchqueue``).

    ``workers`` processes read in parallel (0: in this process); ``pin_memory=None`` pins
    when CUDA is present; ``seed`` makes the shuffle order reproducible; ``shuffle=True``
    draws a new order at each pass. ``drop_last=True`` leaves out a last, smaller batch
    (MATLAB's ``PartialMiniBatch="discard"``). ``batch_function(observations) -> batch``
    (MATLAB's ``MiniBatchFcn``) builds each batch from the list of observations instead of
    the datastore's collate (PyTorch's ``collate_fn``; call :func:`default_collate` inside
    to stack first). Datastores that read in chunks (TabularDatastore) already give
    batches: ``batch_size`` and ``drop_last`` are then ignored and ``batch_function`` gets
    one chunk.

    Example:
        >>> from deeptoolbox.data import ArrayDatastore
        >>> batches = list(loader(ArrayDatastore(np.ones((10, 3))), batch_size=4))
        >>> [b.shape[0] for b in batches]
        [4, 4, 2]
        >>> [b.shape[0] for b in loader(ArrayDatastore(np.ones((10, 3))), 4, drop_last=True)]
        [4, 4]
        >>> def sums(observations):
        ...     return default_collate(observations).sum(dim=1)
        >>> next(iter(loader(ArrayDatastore(np.ones((10, 3))), 4, batch_function=sums)))
        tensor([3., 3., 3., 3.])
    """
    if not isinstance(ds, Dataset):
        raise OptionError(f"loader: `ds` must be a Dataset. Received: {type(ds).__name__}.")
    if batch_function is not None and not callable(batch_function):
        raise OptionError(
            "loader: `batch_function` must be a function of the list of observations. "
            f"Received: {type(batch_function).__name__}."
        )
    for name, value, low in (("batch_size", batch_size, 1), ("workers", workers, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise OptionError(f"loader: `{name}` must be an int >= {low}. Received: {value!r}.")
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    chunked = isinstance(ds, IterableDataset)
    return make_dataloader(
        ds,
        batch_size=None if chunked else batch_size,
        shuffle=False if chunked else shuffle,
        workers=workers,
        collate=batch_function
        or getattr(ds, "collate_fn", None)
        or (None if chunked else default_collate),
        pin_memory=pin_memory,
        drop_last=False if chunked else drop_last,
        generator=generator,
        prefetch_factor=prefetch_factor,
    )


class WorkerStart:
    """A worker's first step: freeze what it inherited through ``fork``, then the user's own
    ``worker_init_fn``.

    A forked worker that garbage-collects objects of its parent (an onnxruntime session, a
    thread pool) can hang for ever in their destructors, whose locks belonged to threads that
    do not exist in the worker. ``gc.freeze()`` keeps everything inherited out of the worker's
    collections; what the worker allocates itself is collected as usual.

    Example:
        >>> seen = []
        >>> WorkerStart(seen.append)(3)
        >>> seen, gc.get_freeze_count() > 0
        ([3], True)
        >>> gc.unfreeze()
    """

    def __init__(self, user: Callable[[int], Any] | None = None) -> None:
        self.user = user

    def __call__(self, worker_id: int) -> None:
        gc.freeze()
        if self.user is not None:
            self.user(worker_id)


def make_dataloader(
    ds: Dataset,
    *,
    workers: int = 0,
    pin_memory: bool | None = None,
    persistent_workers: bool = False,
    prefetch_factor: int | None = None,
    collate: Callable[[list[Any]], Any] | None = None,
    **sampling: Any,
) -> DataLoader:
    """The one place the toolbox builds a ``DataLoader``: pinned memory when CUDA is present
    (``pin_memory=None``), worker options only with ``workers > 0``; ``sampling`` holds the
    DataLoader's own batching arguments (``batch_size``, ``shuffle``, ``batch_sampler``...).

    :func:`loader` and the data adapter (``deeptoolbox.data._adapter``) build on it; the
    adapter keeps its workers alive across epochs (``persistent_workers=True``).

    Example:
        >>> from deeptoolbox.data import ArrayDatastore
        >>> dl = make_dataloader(ArrayDatastore(np.ones((5, 2))), batch_sampler=[[0, 1], [2]])
        >>> [len(b) for b in dl]
        [2, 1]
    """
    options: dict[str, Any] = {}
    if workers > 0:
        options["persistent_workers"] = persistent_workers
        options["worker_init_fn"] = WorkerStart(sampling.pop("worker_init_fn", None))
        if prefetch_factor is not None:
            options["prefetch_factor"] = prefetch_factor
    return DataLoader(
        ds,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        **sampling,
        **options,
    )
