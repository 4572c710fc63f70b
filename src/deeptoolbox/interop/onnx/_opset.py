"""What every module of ONNX operator implementations shares: the types, the ``@operator``
decorator of a module's own table, and small helpers for operands and padding.

Each operator module (``_ops``, ``_ops_tensor``, ``_resize``,
``_recurrent``) fills its own ``OPERATORS`` table; :mod:`._registry` joins them into
the one registry the importer and the operator layers read, whatever the import order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

Tensor = torch.Tensor
Inputs = list[Tensor | None]
Operator = Callable[[Inputs, dict], Tensor | tuple[Tensor, ...]]


def registrar(table: dict[str, Operator]) -> Callable[..., Callable[[Operator], Operator]]:
    """The ``@operator("Name", ...)`` decorator that puts functions into ``table``.

    Example:
        >>> table = {}
        >>> operator = registrar(table)
        >>> @operator("Identity")
        ... def _identity(inputs, attrs):
        ...     return inputs[0]
        >>> list(table)
        ['Identity']
    """

    def operator(*names: str) -> Callable[[Operator], Operator]:
        def decorate(function: Operator) -> Operator:
            for name in names:
                table[name] = function
            return function

        return decorate

    return operator


def int_list(value: Tensor | None) -> list[int] | None:
    """A constant integer operand (shape, axes, sizes) as a list of ints; None stays None.

    Example:
        >>> int_list(torch.tensor([[2, 3]]))
        [2, 3]
    """
    return None if value is None else [int(v) for v in value.reshape(-1).tolist()]


def axes_of(inputs: Inputs, attrs: dict, position: int) -> list[int] | None:
    """The axes of a node: its input at ``position`` (opset 13+) or its ``axes`` attribute.

    Example:
        >>> axes_of([None, torch.tensor([1])], {}, 1), axes_of([None], {"axes": [0]}, 1)
        ([1], [0])
    """
    if len(inputs) > position and inputs[position] is not None:
        return int_list(inputs[position])
    return attrs.get("axes")


def torch_pad(pads: list[int]) -> list[int]:
    """ONNX (b1, b2, ..., e1, e2, ...) to torch's (b_last, e_last, ..., b_first, e_first).

    Example:
        >>> torch_pad([1, 2, 3, 4])
        [2, 4, 1, 3]
    """
    dims = len(pads) // 2
    result: list[int] = []
    for axis in reversed(range(dims)):
        result += [pads[axis], pads[axis + dims]]
    return result


def as_tensor(array: np.ndarray) -> torch.Tensor:
    """A torch tensor copy of a numpy array from an ONNX file.

    Example:
        >>> as_tensor(np.arange(3)).tolist()
        [0, 1, 2]
    """
    return torch.from_numpy(np.array(array, copy=True))
