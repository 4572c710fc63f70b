"""Likely label errors by confident learning (Northcutt et al., JAIR 2021): cleanlab when it is
installed, else the same "confident learning" rule written out here."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from deeptoolbox.errors import DataError, OptionError

__all__ = ["LabelIssues", "find_label_issues", "confident_learning_issues", "METHODS"]

METHODS = ("auto", "prune_by_noise_rate", "confident_learning")


def confident_learning_issues(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Observations off the diagonal of the confident joint (cleanlab's
    ``filter_by="confident_learning"``), as a bool mask.

    Each class's threshold is the mean probability of that class over the observations
    labelled with it; an observation is *confidently* of every class whose probability
    reaches its threshold (of the most probable one when several do). It is an issue when
    it is confidently of a class other than its label.

    Example:
        >>> p = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.95, 0.05]])
        >>> confident_learning_issues(np.array([0, 0, 1, 1]), p).tolist()
        [False, False, False, True]
    """
    classes = probabilities.shape[1]
    thresholds = np.array([
        probabilities[labels == k, k].mean() if np.any(labels == k) else np.inf
        for k in range(classes)
    ])  # fmt: skip
    confident = probabilities >= thresholds - 1e-6
    count = confident.sum(axis=1)
    guess = np.where(count > 1, probabilities.argmax(axis=1), confident.argmax(axis=1))
    return (count > 0) & (guess != labels)


def _cleanlab_issues(labels: np.ndarray, probabilities: np.ndarray, method: str) -> np.ndarray:
    from cleanlab.filter import find_label_issues as cleanlab_find

    return np.asarray(cleanlab_find(labels, probabilities, filter_by=method), dtype=bool)


def _engine(method: str) -> tuple[str, str]:
    try:
        import cleanlab  # noqa: F401
    except ImportError:
        if method == "prune_by_noise_rate":
            from deeptoolbox.errors import MissingDependencyError

            raise MissingDependencyError(
                'find_label_issues: method="prune_by_noise_rate" needs cleanlab: pip install '
                '"deeptoolbox[quality]" (or method="confident_learning", built in).'
            ) from None
        return "builtin", "confident_learning"
    return "cleanlab", "prune_by_noise_rate" if method == "auto" else method


@dataclass
class LabelIssues:
    """Observations ranked from the most to the least likely mislabelled.

    ``order`` are all observation indices, worst first: by rising ``quality``, the
    probability the model gives the given label (cleanlab's "self-confidence" score).
    ``is_issue`` marks those confident learning flags (:attr:`issues`, in the same order):
    :meth:`top` ``(k)`` takes the first ``k`` of ``order`` whether flagged or not. ``given`` and
    ``suggested`` are the class names of each observation (``suggested``: the most probable
    class), ``names`` its file (``#index`` without files). ``engine`` is "cleanlab" or
    "builtin", ``method`` the confident-learning filter used.

    Example:
        >>> p = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.95, 0.05]])
        >>> issues = find_label_issues(np.array([0, 0, 1, 1]), p, classes=["cat", "dog"])
        >>> issues.top(1), issues.relabels(1)
        ([3], {'#3': 'cat'})
    """

    order: np.ndarray
    is_issue: np.ndarray
    quality: np.ndarray
    given: np.ndarray
    suggested: np.ndarray
    names: list[str]
    engine: str
    method: str

    @property
    def issues(self) -> list[int]:
        """The flagged observations, worst first."""
        return [int(i) for i in self.order if self.is_issue[i]]

    def __len__(self) -> int:
        return int(self.is_issue.sum())

    def top(self, k: int | None = None) -> list[int]:
        """The ``k`` observations most likely mislabelled, by rising quality (default: the
        flagged ones).

        Example:
            >>> p = np.array([[0.6, 0.4], [0.7, 0.3]])
            >>> find_label_issues(np.array([0, 1]), p).top(2)
            [1, 0]
        """
        if k is None:
            return self.issues
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise OptionError(f"LabelIssues.top: `k` must be an int >= 0. Received: k={k!r}.")
        return [int(i) for i in self.order[:k]]

    def relabels(self, k: int | None = None) -> dict[str, Any]:
        """``{file: suggested class}`` for the :meth:`top` ``k``: what
        ``ImageDatastore.relabel`` takes (review it first).

        Example:
            >>> p = np.array([[0.9, 0.1], [0.1, 0.9], [0.95, 0.05]])
            >>> find_label_issues(np.array([0, 1, 1]), p, classes=["a", "b"]).relabels()
            {'#2': 'a'}
        """
        return {self.names[i]: _plain(self.suggested[i]) for i in self.top(k)}

    def to_records(self, k: int | None = None) -> list[dict[str, Any]]:
        """One dict per observation of :meth:`top` ``k``: ``rank``, ``index``, ``file``,
        ``given``, ``suggested``, ``quality``, ``is_issue``.

        Example:
            >>> p = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.95, 0.05]])
            >>> find_label_issues(np.array([0, 0, 1, 1]), p).to_records()[0]["quality"]
            0.05
        """
        return [
            {"rank": r, "index": i, "file": self.names[i], "given": _plain(self.given[i]),
             "suggested": _plain(self.suggested[i]), "quality": float(self.quality[i]),
             "is_issue": bool(self.is_issue[i])}
            for r, i in enumerate(self.top(k))
        ]  # fmt: skip

    def to_frame(self, k: int | None = None) -> Any:
        """:meth:`to_records` as a pandas DataFrame.

        Example:
            >>> p = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.95, 0.05]])
            >>> list(find_label_issues(np.array([0, 0, 1, 1]), p).to_frame().file)
            ['#3']
        """
        import pandas as pd

        columns = ["rank", "index", "file", "given", "suggested", "quality", "is_issue"]
        return pd.DataFrame(self.to_records(k), columns=columns)

    def plot(self, images: Any, path: str | os.PathLike | None = None, *, k: int = 16) -> Any:
        """A grid of the ``k`` worst observations, each titled "given -> suggested (quality)".
        ``images`` is the datastore (or an (N, C, H, W) array) the indices refer to. Saved
        to ``path`` when given; returns the matplotlib figure.

        Example:
            >>> import matplotlib; matplotlib.use("Agg")
            >>> p = np.array([[0.9, 0.1], [0.95, 0.05]])
            >>> issues = find_label_issues(np.array([0, 1]), p)
            >>> len(issues.plot(np.random.rand(2, 1, 8, 8), k=2).axes)
            2
        """
        from deeptoolbox.quality._plots import issue_grid

        return issue_grid(self, images, path, k)

    def __repr__(self) -> str:
        return f"LabelIssues({len(self)} flagged of {len(self.order)}, {self.engine} {self.method})"


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _as_probabilities(probabilities: Any) -> np.ndarray:
    if isinstance(probabilities, torch.Tensor):
        probabilities = probabilities.detach().cpu().numpy()
    array = np.asarray(probabilities, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] < 2:
        raise DataError(
            "find_label_issues: `probabilities` must be (observations, classes) with at least "
            f"2 classes. Received shape {array.shape}."
        )
    sums = array.sum(axis=1)
    if not np.isfinite(array).all() or (array < 0).any() or not np.allclose(sums, 1, atol=1e-3):
        raise DataError(
            "find_label_issues: every row of `probabilities` must be class probabilities (>= 0, "
            f"summing to 1); row sums lie in [{sums.min():.3g}, {sums.max():.3g}]. Apply a "
            "softmax to network outputs (classify() returns probabilities)."
        )
    return array


def _labels_of(data: Any, classes: Sequence[Any] | None) -> tuple[np.ndarray, list, list[str]]:
    """Class indices, class names and observation names of a datastore or of labels."""
    ds_labels = getattr(data, "labels", None) if hasattr(data, "classes") else None
    if hasattr(data, "classes") and ds_labels is None:
        raise DataError("find_label_issues: the datastore has no labels.")
    if ds_labels is not None:
        names = list(data.classes)
        lookup = {c: i for i, c in enumerate(names)}
        files = getattr(data, "files", None) or [f"#{i}" for i in range(len(ds_labels))]
        return np.array([lookup[v] for v in ds_labels.tolist()]), names, [str(f) for f in files]
    values = np.asarray(data.detach().cpu() if isinstance(data, torch.Tensor) else data)
    if values.ndim != 1:
        raise DataError(
            f"find_label_issues: labels must be one per observation. Received shape {values.shape}."
        )
    files = [f"#{i}" for i in range(len(values))]
    if classes is not None:
        names = list(classes)
        lookup = {c: i for i, c in enumerate(names)}
        if values.dtype.kind in "iu" and not set(values.tolist()) <= set(names):
            return values.astype(np.int64), names, files  # indices into `classes`
        unknown = sorted({v for v in values.tolist() if v not in lookup}, key=str)
        if unknown:
            raise DataError(
                f"find_label_issues: labels {unknown[:10]} are not in `classes` {names}."
            )
        return np.array([lookup[v] for v in values.tolist()]), names, files
    if values.dtype.kind not in "iu":
        names = sorted(set(values.tolist()), key=str)
        lookup = {c: i for i, c in enumerate(names)}
        return np.array([lookup[v] for v in values.tolist()]), names, files
    return values.astype(np.int64), [], files


def find_label_issues(
    data: Any,
    probabilities: Any,
    *,
    classes: Sequence[Any] | None = None,
    method: str = "auto",
) -> LabelIssues:
    """Find likely mislabelled observations by confident learning.

    ``data`` is a labelled datastore (its ``labels``, ``classes`` and ``files``), or the
    labels themselves: class indices, or class names (with ``classes`` giving the column
    order; sorted names otherwise). ``probabilities`` is (observations, classes), columns
    in class order, and must be *out-of-sample*: a model's predictions on observations it
    was not trained on (:func:`cross_val_probabilities` makes them by k-fold training);
    in-sample predictions have memorised the wrong labels.

    ``method``: "prune_by_noise_rate" (cleanlab's default filter), "confident_learning"
    (the off-diagonals of the confident joint; built in, and what runs without cleanlab), or
    "auto" (the first with cleanlab installed, else the second). Returns a
    :class:`LabelIssues` ranking every observation.

    Example:
        >>> labels = np.array([0, 0, 0, 1, 1, 1])
        >>> p = np.array([[.9, .1], [.8, .2], [.1, .9], [.2, .8], [.1, .9], [.3, .7]])
        >>> find_label_issues(labels, p).issues
        [2]
    """
    if method not in METHODS:
        raise OptionError(
            f"find_label_issues: `method` must be one of {METHODS}. Received: {method!r}."
        )
    array = _as_probabilities(probabilities)
    labels, names, files = _labels_of(data, classes)
    if len(labels) != len(array):
        raise DataError(
            f"find_label_issues: {len(labels)} labels but {len(array)} rows of probabilities."
        )
    if names and len(names) != array.shape[1]:
        raise DataError(
            f"find_label_issues: {len(names)} classes {names[:10]} but {array.shape[1]} columns "
            "of probabilities; the columns must follow the class order."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= array.shape[1]):
        raise DataError(
            f"find_label_issues: class indices must lie in [0, {array.shape[1]}). Received "
            f"values in [{labels.min()}, {labels.max()}]."
        )
    engine, chosen = _engine(method)
    flagged = (
        confident_learning_issues(labels, array) if engine == "builtin"
        else _cleanlab_issues(labels, array, chosen)
    )  # fmt: skip
    quality = array[np.arange(len(labels)), labels]
    order = np.argsort(quality, kind="stable")  # the given label least probable first
    named = np.asarray(names, dtype=object) if names else None
    given = labels if named is None else named[labels]
    suggested = array.argmax(axis=1) if named is None else named[array.argmax(axis=1)]
    return LabelIssues(order, flagged, quality, given, suggested, files, engine, chosen)
