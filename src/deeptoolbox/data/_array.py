"""ArrayDatastore: in-memory numpy arrays or tensors, with optional targets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from deeptoolbox.data import _files
from deeptoolbox.data._base import Datastore
from deeptoolbox.errors import DataError

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

    float64 data becomes float32 (the toolbox's default precision).

    Example:
        >>> ds = ArrayDatastore(np.random.rand(5, 3), targets=["a", "b", "a", "b", "b"])
        >>> x, y = ds[1]
        >>> x.shape, int(y), ds.classes
        (torch.Size([3]), 1, ['a', 'b'])
    """

    def __init__(
        self,
        inputs: Any,
        targets: Any = None,
        *,
        classes: Sequence[Any] | None = None,
    ) -> None:
        parts = inputs if isinstance(inputs, tuple) else (inputs,)
        self._inputs = tuple(_to_tensor("inputs", p) for p in parts)
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
        if self._targets is None and len(self._inputs) == 1:
            return self._inputs[0][j]
        items = tuple(t[j] for t in self._inputs)
        return items if self._targets is None else (*items, self._targets[j])
