"""The registry of ONNX operators: every op type ``import_onnx`` supports -> the function that
runs it, in one place.

Each operator module fills its own table (see :mod:`._opset`); this module joins them and
refuses an op type two modules both define, so what is supported never depends on which
module happened to be imported first. The importer and :class:`OnnxOperator` read
:data:`OPERATORS`; :func:`operator_table` (what ``docs/interop-onnx.md`` lists) adds the
toolbox layer each op becomes when its options fit one.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import deeptoolbox.interop.onnx._ops as _onnx_ops
import deeptoolbox.interop.onnx._ops_tensor as _onnx_ops_tensor
import deeptoolbox.interop.onnx._recurrent as _onnx_recurrent
import deeptoolbox.interop.onnx._resize as _onnx_resize
from deeptoolbox.interop.onnx._mapping import mapped_operators
from deeptoolbox.interop.onnx._opset import Operator
from deeptoolbox.interop.onnx._patterns import PATTERN_TARGETS

OPERATOR_MODULES = (_onnx_ops, _onnx_ops_tensor, _onnx_resize, _onnx_recurrent)
"""The modules whose ``OPERATORS`` tables make up the registry."""


def _join(modules) -> dict[str, Operator]:
    joined: dict[str, Operator] = {}
    where: dict[str, str] = {}
    for module in modules:
        for op_type, function in module.OPERATORS.items():
            if op_type in joined:
                raise RuntimeError(  # a programming error in the toolbox, found at import
                    f"ONNX operator {op_type!r} is defined in both {where[op_type]} and "
                    f"{module.__name__}; keep one."
                )
            joined[op_type], where[op_type] = function, module.__name__
    return dict(sorted(joined.items()))


OPERATORS: Mapping[str, Operator] = MappingProxyType(_join(OPERATOR_MODULES))
"""ONNX op type (default domain) -> ``function(inputs, attributes)``, read-only."""


def supported_operators() -> list[str]:
    """ONNX op types the importer maps or runs, sorted.

    Example:
        >>> ops = supported_operators()
        >>> "Conv" in ops, "LSTM" in ops, "Resize" in ops, "NonMaxSuppression" in ops
        (True, True, True, False)
    """
    return list(OPERATORS)


def operator_table() -> str:
    """A markdown table of the supported ONNX operators and what each becomes.

    Example:
        >>> print("\\n".join(operator_table().splitlines()[:3]))
        | ONNX operator | becomes |
        | --- | --- |
        | Abs | `OnnxOperator` |
    """
    mapped = mapped_operators()
    rows = ["| ONNX operator | becomes |", "| --- | --- |"]
    for op in supported_operators():
        targets = [f"`{mapped[op]}`"] if op in mapped else []
        if op in PATTERN_TARGETS and PATTERN_TARGETS[op] != mapped.get(op):
            targets.append(f"`{PATTERN_TARGETS[op]}` (with the nodes around it)")
        target = " or ".join(targets) + " when its options fit, else `OnnxOperator`"
        rows.append(f"| {op} | {target if targets else '`OnnxOperator`'} |")
    return "\n".join(rows)
