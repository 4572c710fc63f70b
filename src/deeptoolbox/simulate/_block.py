"""The block protocol every simulation block follows, and the helpers blocks share.

A block is a ``torch.nn.Module`` with named input and output ports. Every signal is a tensor
(batch, channels). A block is one of three kinds:

- ``"stateless"``: ``output(t, None, u)`` only (Gain, Sum, sources...);
- ``"continuous"``: a state tensor (batch, n) from ``start``, ``output(t, x, u)`` and
  ``derivative(t, x, u)`` (Integrator, StateSpace, PID, ODEBlock...);
- ``"discrete"``: a state of any form from ``start``, ``output(t, x, u)`` at each sample hit
  and ``update(t, x, u, y)`` right after it (UnitDelay, network blocks...). Between hits the
  simulator holds the outputs, as Simulink does.

``feedthrough`` says whether the outputs depend on the inputs at the same instant; a block
without it gets ``u=None`` in ``output`` (this is what breaks algebraic loops).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from deeptoolbox.errors import OptionError

__all__ = ["Block", "SimulationContext", "Inport", "Outport", "as_signal", "check_number"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
KINDS = ("stateless", "continuous", "discrete")


@dataclass(frozen=True)
class SimulationContext:
    """What a block learns when a simulation starts: batch size, dtype, device, time grid.

    Example:
        >>> import torch
        >>> SimulationContext(4, torch.float32, torch.device("cpu"), 1.0, 0.1).steps
        10
    """

    batch: int
    dtype: torch.dtype
    device: torch.device
    t_end: float
    dt: float

    @property
    def steps(self) -> int:
        """Number of steps of the time grid (``t_end / dt``, rounded)."""
        return int(round(self.t_end / self.dt))

    def tensor(self, value: Any) -> torch.Tensor:
        """``value`` as a tensor of this simulation's dtype and device."""
        return torch.as_tensor(value, dtype=self.dtype, device=self.device)


class Block(nn.Module):
    """Base class of simulation blocks. Every signal is a tensor (batch, channels).

    Subclasses set ``input_ports``, ``output_ports``, ``kind``, ``feedthrough`` (and for
    discrete blocks ``sample_time``: seconds between hits, None for every step) and write:

    - ``start(context)``: the initial state (None for ``kind="stateless"``; a (batch, n)
      tensor for ``"continuous"``; anything for ``"discrete"``), from the
      :class:`SimulationContext` (batch, dtype, device, dt);
    - ``output(t, state, u)``: ``{port: tensor}``; ``u`` maps input ports to tensors, or is
      None when ``feedthrough`` is False (outputs that do not depend on the inputs now);
    - ``derivative(t, state, u)`` (continuous): d state / dt, the shape of ``state``;
    - ``update(t, state, u, y)`` (discrete): the state after a sample hit (``y``: its outputs,
      held until the next hit);
    - ``piecewise_constant = True`` for an output that only jumps (held through solver stages).

    Example:
        >>> import torch
        >>> class Double(Block):
        ...     def output(self, t, state, u):
        ...         return {"out": 2 * u["in"]}
        >>> Double().output(0.0, None, {"in": torch.ones(1, 1)})["out"]
        tensor([[2.]])
    """

    input_ports: tuple[str, ...] = ("in",)
    output_ports: tuple[str, ...] = ("out",)
    kind: str = "stateless"
    feedthrough: bool = True
    sample_time: float | None = None
    differentiable: bool = True
    # an output that only jumps (Step, Pulse, held samples): within a solver step the
    # integrator sees its value at the step's start, so a jump on the grid acts at that step
    # and not one stage early (the step time is a breakpoint)
    piecewise_constant: bool = False

    def start(self, context: SimulationContext) -> Any:
        """The initial state (None for stateless blocks)."""
        return None

    def output(self, t: float, state: Any, u: dict[str, torch.Tensor] | None) -> dict:
        """The outputs ``{port: (batch, channels)}`` at time ``t``."""
        raise NotImplementedError(f"{type(self).__name__} must implement output()")

    def derivative(self, t: float, state: torch.Tensor, u: dict[str, torch.Tensor]):
        """Continuous blocks: d state / dt."""
        raise NotImplementedError(f"{type(self).__name__} must implement derivative()")

    def update(self, t: float, state: Any, u: dict[str, torch.Tensor], y: dict) -> Any:
        """Discrete blocks: the state after the sample hit at ``t`` (``y``: its outputs)."""
        return state

    def finish(self, state: Any) -> None:
        """Release what ``start`` acquired (FMU instances); called when a simulation ends."""

    def extra_repr(self) -> str:
        return f"inputs={list(self.input_ports)}, outputs={list(self.output_ports)}"


class Inport(Block):
    """An input port of a subsystem: a Diagram with Inport blocks is a block whose input
    ports are the Inports' names (Simulink's Inport).

    Example:
        >>> Inport().output_ports
        ('out',)
    """

    def output(self, t, state, u):
        return {"out": u["in"]}


class Outport(Block):
    """An output port of a subsystem: its input becomes the Diagram's output of that name.

    Example:
        >>> Outport().input_ports
        ('in',)
    """

    def output(self, t, state, u):
        return {"out": u["in"]}


def check_name(owner: str, name: Any) -> str:
    """A block name: letters, digits, ``_`` and ``-`` (``/`` and ``.`` separate ports and
    subsystems)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise OptionError(
            f"{owner}: a block name must be a string of letters, digits, '_' or '-', starting "
            f"with a letter (no '/' or '.': they separate ports and subsystems). "
            f"Received: {name!r}."
        )
    return name


def check_number(owner: str, option: str, value: Any, *, positive: bool = False,
                 allow_none: bool = False) -> float | None:  # fmt: skip
    """A finite real number (``positive``: > 0), or None where allowed."""
    if value is None and allow_none:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (positive and value <= 0):
        allowed = "a finite number > 0" if positive else "a finite number"
        raise OptionError(f"{owner}: `{option}` must be {allowed}. Received: {option}={value!r}.")
    return float(value)


def as_signal(value: Any, owner: str = "block", option: str = "value") -> torch.Tensor:
    """A constant as a (batch or 1, channels) tensor: a number is (1, 1), a vector (1, C), a
    matrix (B, C) one row per batch element (parameter sets, initial conditions)."""
    try:
        tensor = torch.as_tensor(value, dtype=torch.float64) if not isinstance(
            value, torch.Tensor) else value  # fmt: skip
    except (TypeError, ValueError, RuntimeError) as err:
        raise OptionError(
            f"{owner}: `{option}` must be a number, a vector or a (batch, channels) matrix. "
            f"Received: {value!r}."
        ) from err
    if tensor.dim() > 2:
        raise OptionError(
            f"{owner}: `{option}` must be a number, a vector or a (batch, channels) matrix. "
            f"Received a tensor of shape {tuple(tensor.shape)}."
        )
    return tensor.reshape(1, -1) if tensor.dim() < 2 else tensor


def expand(value: torch.Tensor, context_or_batch: Any) -> torch.Tensor:
    """A (1 or B, C) tensor as (B, C)."""
    batch = getattr(context_or_batch, "batch", context_or_batch)
    return value.expand(batch, -1) if value.shape[0] == 1 else value


def batch_of(u: dict[str, torch.Tensor]) -> int:
    """The batch size of a block's inputs."""
    return next(iter(u.values())).shape[0]


def cast(block: nn.Module, name: str, like: torch.Tensor) -> torch.Tensor:
    """Block attribute ``name`` (a tensor) in ``like``'s dtype and device; converted copies of
    constants are cached on the block, learnable tensors are converted on each call."""
    value = getattr(block, name)
    if not isinstance(value, torch.Tensor):
        return torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if value.dtype == like.dtype and value.device == like.device:
        return value
    if value.requires_grad:
        return value.to(dtype=like.dtype, device=like.device)
    cache = block.__dict__.setdefault("_cast_cache", {})
    key = (name, like.dtype, like.device)
    if key not in cache or cache[key][0] is not value:
        cache[key] = (value, value.to(dtype=like.dtype, device=like.device))
    return cache[key][1]
