"""ArrayDatastore: in-memory numpy arrays or tensors, with optional targets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from deeptoolbox.data import _files
from deeptoolbox.data._base import Datastore
from deeptoolbox.errors import DataError, OptionError

__all__ = ["ArrayDatastore", "as_targets"]


def _to_tensor(name: str, value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        tensor = value
    else:
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise DataError(
                f"ArrayDatastore: `{name}` must hold numbers. Received dtype {array.dtype}."
            )
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.dtype == torch.float64:
        tensor = tensor.to(torch.float32)
    if tensor.dim() == 0:
        raise DataError(
            f"ArrayDatastore: `{name}` must have one row per observation; got a scalar."
        )
    return tensor


def as_targets(
    kind: str, targets: Any, classes: Sequence[Any] | None
) -> tuple[torch.Tensor, np.ndarray | None, list[Any] | None]:
    """Targets as a tensor, plus labels and classes for class targets (strings or ints)."""
    values = targets.cpu().numpy() if isinstance(targets, torch.Tensor) else np.asarray(targets)
    if (
        values.ndim == 1
        and values.dtype.kind in "USOb"
        or (values.ndim == 1 and values.dtype.kind in "iu")
    ):
        if values.dtype.kind == "O":
            values = values.astype(str)
        found = _files.check_classes(kind, values, classes)
        codes = _files.encode(values, found) if values.dtype.kind in "USb" else values
        if values.dtype.kind in "iu":
            found = [int(c) for c in found]
        return torch.as_tensor(np.asarray(codes, dtype=np.int64)), values, found
    return _to_tensor("targets", values), None, None


class ArrayDatastore(Datastore):
    """Observations held in memory: numpy arrays, tensors or nested lists (MATLAB
    ``arrayDatastore``). The first axis indexes observations.

    Args:
        inputs: one array, or a tuple of arrays (one per network input).
        targets: optional array of targets. Strings (or ints) in a 1-D array are class
            labels: ``ds[i]`` then gives the class index and ``classes`` the names. Other
            numeric arrays are regression targets.
        classes: the class order (default: sorted labels).
        augmenter: an :class:`ImageAugmenter` (or any callable on one (C, H, W) image) for
            image arrays (N, C, H, W): applied to the (first) input when it is read, only
            while ``training`` is True (as for :class:`ImageDatastore`; ``eval()``,
            validation and ``predict`` read without it). Float images should be in [0, 1]
            for colour jitter.

    float64 data becomes float32 (the toolbox's default precision). The first axis indexes
    observations (MATLAB's ``IterationDimension=1``; move a MATLAB H x W x C x N array to
    (N, C, H, W) with ``np.transpose(x, (3, 2, 0, 1))``).

    Example:
        >>> ds = ArrayDatastore(np.random.rand(5, 3), targets=["a", "b", "a", "b", "b"])
        >>> x, y = ds[1]
        >>> x.shape, int(y), ds.classes
        (torch.Size([3]), 1, ['a', 'b'])
        >>> from deeptoolbox.data import ImageAugmenter
        >>> images = ArrayDatastore(np.random.rand(4, 1, 8, 8), augmenter=ImageAugmenter(
        ...     flip="horizontal"))
        >>> images[0].shape, torch.equal(images.eval()[0], images[0])
        (torch.Size([1, 8, 8]), True)
    """

    def __init__(
        self,
        inputs: Any,
        targets: Any = None,
        *,
        classes: Sequence[Any] | None = None,
        augmenter: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        parts = inputs if isinstance(inputs, tuple) else (inputs,)
        self._inputs = tuple(_to_tensor("inputs", p) for p in parts)
        self.augmenter = _check_augmenter(augmenter, self._inputs[0])
        counts = [len(t) for t in self._inputs]
        if len(set(counts)) != 1:
            raise DataError(
                f"ArrayDatastore: the input arrays have different numbers of rows: {counts}."
            )
        self._targets: torch.Tensor | None = None
        self._labels: np.ndarray | None = None
        if targets is not None:
            self._targets, self._labels, self._classes = as_targets(
                "ArrayDatastore", targets, classes
            )
            if len(self._targets) != counts[0]:
                raise DataError(
                    f"ArrayDatastore: inputs have {counts[0]} observations but `targets` has "
                    f"{len(self._targets)}. Give one target per observation."
                )
        self._init_view()

    def _count(self) -> int:
        return len(self._inputs[0])

    def _source_labels(self) -> np.ndarray | None:
        return self._labels

    def _load(self, j: int) -> Any:
        items = tuple(t[j] for t in self._inputs)
        if self.augmenter is not None and self.training:
            items = (self.augmenter(items[0]), *items[1:])
        if self._targets is None and len(items) == 1:
            return items[0]
        return items if self._targets is None else (*items, self._targets[j])


def _check_augmenter(augmenter: Any, first: torch.Tensor) -> Any:
    if augmenter is None:
        return None
    if not callable(augmenter):
        raise OptionError(
            "ArrayDatastore: `augmenter` must be an ImageAugmenter or a callable. "
            f"Received: {type(augmenter).__name__}."
        )
    if first.dim() != 4:
        raise OptionError(
            "ArrayDatastore: `augmenter` works on image arrays (N, C, H, W); the (first) input "
            f"has shape {tuple(first.shape)}. Hint: add a channel axis with x[:, None] for "
            "(N, H, W) gray images, or move channels first for (N, H, W, C)."
        )
    return augmenter
