"""Class counts and class weights for imbalanced labels (seizure windows are rare)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from deeptoolbox.errors import DataError, OptionError
from deeptoolbox.signals._segments import SignalSegments

__all__ = ["count_each_label", "class_weights"]


def _labels_and_classes(labels: Any, classes: Sequence[str] | int | None, where: str):
    if isinstance(labels, SignalSegments):
        classes = labels.classes if classes is None else classes
        labels = labels.labels
    values = labels.cpu().numpy() if torch.is_tensor(labels) else np.asarray(labels)
    if values.ndim != 1 or (values.size and not np.issubdtype(values.dtype, np.integer)):
        raise DataError(
            f"{where}: `labels` must be a 1-D array of class indices (or SignalSegments). "
            f"Received shape {values.shape}, dtype {values.dtype}."
        )
    if classes is None:
        names = [str(k) for k in range(int(values.max()) + 1 if values.size else 0)]
    elif isinstance(classes, int) and not isinstance(classes, bool):
        names = [str(k) for k in range(classes)]
    else:
        names = [str(c) for c in classes]
    if values.size and (values.min() < 0 or values.max() >= len(names)):
        raise DataError(
            f"{where}: labels must be class indices 0 to {len(names) - 1} (classes "
            f"{names}). Received labels from {values.min()} to {values.max()}."
        )
    return values, names


def count_each_label(labels: Any, classes: Sequence[str] | int | None = None) -> dict[str, int]:
    """How many observations of each class (MATLAB's ``countEachLabel``): ``labels`` are class
    indices (or SignalSegments), ``classes`` their names (or how many there are).

    Example:
        >>> count_each_label([0, 0, 1, 0], ["background", "seizure"])
        {'background': 3, 'seizure': 1}
    """
    values, names = _labels_and_classes(labels, classes, "count_each_label")
    counts = np.bincount(values.astype(np.int64), minlength=len(names))
    return {name: int(n) for name, n in zip(names, counts, strict=True)}


def class_weights(
    labels: Any, classes: Sequence[str] | int | None = None, method: str = "inverse-frequency"
) -> list[float]:
    """One weight per class that balances the classes in a weighted loss
    (``loss_function("crossentropy", class_weights=...)``).

    ``"inverse-frequency"``: ``N / (K * n_k)`` for N observations, K classes and n_k of class
    k (scikit-learn's "balanced"; the weighted counts are then equal). ``"median-frequency"``:
    ``median(n) / n_k``. A class with no observation gets weight 0 (as
    ``PixelLabelDatastore.class_weights``).

    Example:
        >>> class_weights([0, 0, 0, 1], ["background", "seizure"])
        [0.6666666666666666, 2.0]
        >>> class_weights([0, 0, 0, 1], 2, method="median-frequency")
        [0.6666666666666666, 2.0]
    """
    if method not in ("inverse-frequency", "median-frequency"):
        raise OptionError(
            "class_weights: `method` must be 'inverse-frequency' or 'median-frequency'. "
            f"Received: method={method!r}."
        )
    values, names = _labels_and_classes(labels, classes, "class_weights")
    counts = np.bincount(values.astype(np.int64), minlength=len(names)).astype(np.float64)
    present = counts > 0
    if not present.any():
        raise DataError("class_weights: `labels` is empty; there is nothing to weight.")
    weights = np.zeros(len(names))
    if method == "inverse-frequency":
        weights[present] = counts.sum() / (len(names) * counts[present])
    else:
        weights[present] = np.median(counts[present]) / counts[present]
    return weights.tolist()
