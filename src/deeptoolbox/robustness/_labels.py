"""Class labels given as indices or as the network's class names (``net.classes``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from deeptoolbox.errors import OptionError

__all__ = ["class_indices"]


def _values(value) -> list:
    if isinstance(value, torch.Tensor | np.ndarray):
        return np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value
                          ).reshape(-1).tolist()  # fmt: skip
    if isinstance(value, str) or not isinstance(value, Sequence):
        return [value]
    return list(value)


_FORMERLY = {"target": "`target` (formerly `label`)"}  # renamed by issue 12; say both for now


def _index(where: str, what: str, classes, value) -> int:
    what = _FORMERLY.get(what, f"`{what}`")
    if isinstance(value, str):
        if not classes:
            raise OptionError(
                f"{where}: {what} is the class name {value!r}, but the network has no class "
                "names (net.classes is None). Give class indices instead, or set net.classes."
            )
        if value not in classes:
            raise OptionError(
                f"{where}: {what} {value!r} is not a class of the network. Classes: "
                f"{list(classes)}."
            )
        return list(classes).index(value)
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise OptionError(
            f"{where}: {what} must hold class indices or class names. Received: {value!r}."
        )
    if float(value) != int(value):
        raise OptionError(f"{where}: {what} holds {value!r}, which is not a class index.")
    return int(value)


def class_indices(
    where: str, net: torch.nn.Module, value, count: int, device, what: str = "target"
) -> torch.Tensor:
    """One class index per observation from indices or names (one value is repeated).

    Example:
        >>> import torch
        >>> net = torch.nn.Linear(2, 3)
        >>> net.classes = ["cat", "dog", "fox"]
        >>> class_indices("f", net, ["fox", 0], 2, "cpu").tolist()
        [2, 0]
        >>> class_indices("f", net, "dog", 3, "cpu").tolist()
        [1, 1, 1]
    """
    classes = getattr(net, "classes", None)
    indices = [_index(where, what, classes, v) for v in _values(value)]
    shown = _FORMERLY.get(what, f"`{what}`")
    if len(indices) == 1 and count > 1:
        indices = indices * count
    if len(indices) != count:
        raise OptionError(
            f"{where}: {shown} needs one class (index or name) per observation ({count}); "
            f"received {len(indices)}."
        )
    return torch.tensor(indices, dtype=torch.long, device=device)
