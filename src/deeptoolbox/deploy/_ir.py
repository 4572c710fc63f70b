"""The intermediate form C generation works on: values (tensors of fixed size) and ops.

A :class:`Graph` is a network lowered to a flat list of ops in execution order. Sizes are per
observation (no batch dimension) and fully known; the data layout is the toolbox's: features
(C,), sequences (T, C), images (C, H, W). Parameters are numpy arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ELEMENTWISE = frozenset({"act", "affine", "add", "mul"})
"""Op kinds whose output element i depends only on input element i (can run in place)."""


@dataclass
class Value:
    """A tensor flowing between ops: its name and its size per observation."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "f32"  # "f32" or, in int8 code, "i8"

    @property
    def numel(self) -> int:
        """Number of elements per observation."""
        return math.prod(self.shape)


@dataclass
class Op:
    """One step of the lowered network.

    ``layers`` lists the network layers the op stands for (several after folding), ``attrs``
    its integer/str settings and ``params`` its arrays (weights, biases, tables).
    """

    kind: str
    inputs: list[str]
    output: str
    layers: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The layers of the op, joined for messages and reports: ``conv1 + bn1 + relu1``."""
        return " + ".join(self.layers)


@dataclass
class Graph:
    """A network lowered to ops: ``inputs`` / ``outputs`` name values in the network's order."""

    values: dict[str, Value]
    ops: list[Op]
    inputs: list[str]
    outputs: list[str]
    input_layers: list[str]
    output_layers: list[str]

    def consumers(self, value: str) -> list[Op]:
        """The ops that read ``value``."""
        return [op for op in self.ops if value in op.inputs]

    def producer(self, value: str) -> Op | None:
        """The op that writes ``value`` (None for a network input)."""
        return next((op for op in self.ops if op.output == value), None)

    def add_value(self, name: str, shape: tuple[int, ...], dtype: str = "f32") -> Value:
        """Declare a value (replacing one of the same name)."""
        value = Value(name, tuple(int(d) for d in shape), dtype)
        self.values[name] = value
        return value
