"""Out-of-fold class probabilities by k-fold cross-training with ``train()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from deeptoolbox.errors import DataError, OptionError
from deeptoolbox.inference import classify
from deeptoolbox.training import TrainingOptions, train

__all__ = ["cross_val_probabilities", "stratified_folds"]


def stratified_folds(labels: np.ndarray, folds: int, seed: int | None = 0) -> np.ndarray:
    """The fold (0 .. folds-1) of each observation: each class shuffled (with ``seed``) and
    dealt round the folds, so every fold holds about the same share of every class.

    Example:
        >>> np.bincount(stratified_folds(np.array([0] * 6 + [1] * 3), 3))
        array([3, 3, 3])
    """
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    start = 0
    for value in sorted(set(labels.tolist()), key=str):
        members = rng.permutation(np.flatnonzero(labels == value))
        fold[members] = (np.arange(len(members)) + start) % folds
        start += len(members)
    return fold


def _split_data(data: Any) -> tuple[Callable[[np.ndarray], Any], np.ndarray, list | None]:
    """A function of indices giving that part of ``data``, the labels, and the class names."""
    if isinstance(data, tuple) and len(data) == 2:
        inputs, targets = data
        inputs = inputs if isinstance(inputs, torch.Tensor) else torch.as_tensor(np.asarray(inputs))
        values = np.asarray(targets.cpu() if isinstance(targets, torch.Tensor) else targets)
        if values.ndim != 1 or len(values) != len(inputs):
            raise DataError(
                "cross_val_probabilities: targets must be one class index per observation; "
                f"found shape {values.shape} for {len(inputs)} inputs."
            )
        if values.dtype.kind not in "iu":
            raise DataError(
                "cross_val_probabilities: targets must be class indices (ints); use a datastore "
                f"for class names. Received dtype {values.dtype}."
            )
        index = torch.as_tensor(values, dtype=torch.int64)
        return (lambda rows: (inputs[rows], index[rows])), values, None
    labels = getattr(data, "labels", None)
    if labels is None or not hasattr(data, "subset"):
        raise OptionError(
            "cross_val_probabilities: `data` must be a labelled datastore or (inputs, class "
            f"indices). Received: {type(data).__name__}."
        )
    lookup = {c: i for i, c in enumerate(data.classes)}
    return data.subset, np.array([lookup[v] for v in labels.tolist()]), list(data.classes)


def _columns(net: torch.nn.Module, scores: np.ndarray, classes: list | None) -> np.ndarray:
    """The probability columns in the data's class order (the network's may differ)."""
    own = getattr(net, "classes", None)
    if classes is None or not own or list(own) == classes:
        return scores
    where = {str(c): i for i, c in enumerate(own)}
    missing = [c for c in classes if str(c) not in where]
    if missing:
        raise DataError(
            f"cross_val_probabilities: the network's classes {list(own)[:10]} lack {missing[:10]}."
        )
    return scores[:, [where[str(c)] for c in classes]]


def cross_val_probabilities(
    make_network: Callable[[], torch.nn.Module],
    data: Any,
    *,
    folds: int = 5,
    loss: Any = "crossentropy",
    options: TrainingOptions | None = None,
    seed: int | None = 0,
) -> np.ndarray:
    """Out-of-fold class probabilities: for each of ``folds`` stratified folds, a new network
    from ``make_network()`` is trained with :func:`~deeptoolbox.training.train` on the other
    folds and classifies this one. Every observation is thus scored by a network that never
    saw its label: what :func:`find_label_issues` needs.

    ``data`` is a labelled datastore or ``(inputs, class_indices)``; ``options`` are the
    :class:`~deeptoolbox.training.TrainingOptions` of each fold (default: ``verbose=False``);
    ``seed`` fixes the folds. Returns an (observations, classes) numpy array, columns in the
    data's class order (class index order for arrays).

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> x = torch.randn(40, 2); y = (x[:, 0] > 0).long()
        >>> def make():
        ...     return Network([L.FeatureInput(2), L.Dense(2), L.Softmax()])
        >>> p = cross_val_probabilities(make, (x, y), folds=4,
        ...                             options=TrainingOptions(max_epochs=2, verbose=False))
        >>> p.shape, bool(np.allclose(p.sum(axis=1), 1))
        ((40, 2), True)
    """
    if not callable(make_network) or isinstance(make_network, torch.nn.Module):
        raise OptionError(
            "cross_val_probabilities: `make_network` must be a function that builds a new, "
            "untrained network (each fold trains its own). Received: "
            f"{type(make_network).__name__}."
        )
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise OptionError(
            f"cross_val_probabilities: `folds` must be an int >= 2. Received: {folds!r}."
        )
    part, labels, classes = _split_data(data)
    if len(labels) < folds:
        raise DataError(
            f"cross_val_probabilities: {len(labels)} observations cannot fill {folds} folds."
        )
    options = options or TrainingOptions(verbose=False)
    fold = stratified_folds(labels, folds, seed)
    probabilities: np.ndarray | None = None
    for k in range(folds):
        held_out = np.flatnonzero(fold == k)
        net = make_network()
        trained = train(net, part(np.flatnonzero(fold != k)), loss, options).network
        scores = _columns(trained, classify(trained, part(held_out))[1].numpy(), classes)
        if probabilities is None:
            probabilities = np.zeros((len(labels), scores.shape[1]), dtype=np.float64)
        probabilities[held_out] = scores
    assert probabilities is not None  # folds >= 2
    return probabilities
