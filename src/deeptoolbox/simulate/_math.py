"""Math and nonlinearity blocks: Gain, Sum, Product, Saturation, DeadZone; loggers."""

from __future__ import annotations

from typing import Any

import torch

from deeptoolbox.errors import OptionError
from deeptoolbox.simulate._block import Block, as_signal, cast

__all__ = ["Gain", "Sum", "Product", "Mux", "Saturation", "DeadZone", "Scope", "ToWorkspace"]


class Gain(Block):
    """``y = k * u`` element-wise (``k`` a number, one per channel, or (batch, channels));
    ``matrix=True``: ``y = K u`` with ``K`` (outputs, inputs). ``k`` may be a
    ``torch.nn.Parameter`` to learn it.

    Example:
        >>> import torch
        >>> Gain(3.0).output(0.0, None, {"in": torch.ones(1, 2)})["out"]
        tensor([[3., 3.]])
        >>> Gain([[1.0, 2.0]], matrix=True).output(0.0, None, {"in": torch.ones(1, 2)})["out"]
        tensor([[3.]])
    """

    def __init__(self, k: Any = 1.0, *, matrix: bool = False) -> None:
        super().__init__()
        self.matrix = bool(matrix)
        if isinstance(k, torch.nn.Parameter):
            self.k = k
        elif matrix:
            k = torch.as_tensor(k, dtype=torch.float64)
            if k.dim() != 2:
                raise OptionError(f"Gain: with matrix=True `k` must be a 2-D (outputs, inputs) "
                                  f"matrix. Received shape {tuple(k.shape)}.")  # fmt: skip
            self.k = k
        else:
            self.k = as_signal(k, "Gain", "k")

    def output(self, t, state, u):
        x = u["in"]
        k = cast(self, "k", x)
        return {"out": x @ k.T if self.matrix else x * k}


class Sum(Block):
    """Adds and subtracts its inputs ``in1``, ``in2``...: ``signs`` is a string of ``+`` and
    ``-``, one per input (Simulink's Sum, e.g. ``"+-"`` for a feedback error).

    Example:
        >>> import torch
        >>> s = Sum("+-")
        >>> s.output(0.0, None, {"in1": torch.ones(1, 1), "in2": 3 * torch.ones(1, 1)})["out"]
        tensor([[-2.]])
    """

    def __init__(self, signs: str = "++") -> None:
        super().__init__()
        if not isinstance(signs, str) or not signs or set(signs) - {"+", "-"}:
            raise OptionError(
                f"Sum: `signs` must be a non-empty string of '+' and '-', one per input. "
                f"Received: signs={signs!r}. Example: Sum('+-')."
            )
        self.signs = signs
        self.input_ports = tuple(f"in{i + 1}" for i in range(len(signs)))

    def output(self, t, state, u):
        total = None
        for port, sign in zip(self.input_ports, self.signs, strict=True):
            term = u[port] if sign == "+" else -u[port]
            total = term if total is None else total + term
        return {"out": total}


class Product(Block):
    """Multiplies (``*``) and divides (``/``) its inputs element-wise, one operator per
    input (Simulink's Product).

    Example:
        >>> import torch
        >>> p = Product("*/")
        >>> p.output(0.0, None, {"in1": torch.full((1, 1), 6.0), "in2": torch.full((1, 1), 3.0)})
        {'out': tensor([[2.]])}
    """

    def __init__(self, operations: str = "**") -> None:
        super().__init__()
        if not isinstance(operations, str) or not operations or set(operations) - {"*", "/"}:
            raise OptionError(
                f"Product: `operations` must be a non-empty string of '*' and '/', one per "
                f"input. Received: operations={operations!r}. Example: Product('*/')."
            )
        self.operations = operations
        self.input_ports = tuple(f"in{i + 1}" for i in range(len(operations)))

    def output(self, t, state, u):
        result = None
        for port, op in zip(self.input_ports, self.operations, strict=True):
            term = u[port] if op == "*" else 1.0 / u[port]
            result = term if result is None else result * term
        return {"out": result}


class Mux(Block):
    """Joins its ``inputs`` signals ``in1``, ``in2``... into one, channels side by side
    (Simulink's Mux), e.g. to feed a network block several measurements.

    Example:
        >>> import torch
        >>> Mux(2).output(0.0, None, {"in1": torch.ones(1, 1), "in2": torch.zeros(1, 2)})
        {'out': tensor([[1., 0., 0.]])}
    """

    def __init__(self, inputs: int = 2) -> None:
        super().__init__()
        if isinstance(inputs, bool) or not isinstance(inputs, int) or inputs < 1:
            raise OptionError(f"Mux: `inputs` must be an int >= 1. Received: {inputs!r}.")
        self.input_ports = tuple(f"in{i + 1}" for i in range(inputs))

    def output(self, t, state, u):
        return {"out": torch.cat([u[p] for p in self.input_ports], dim=1)}


class Saturation(Block):
    """Limits the signal to [``lower``, ``upper``] (Simulink's Saturation).

    Example:
        >>> import torch
        >>> Saturation(-1.0, 1.0).output(0.0, None, {"in": torch.tensor([[-3.0, 0.5, 2.0]])})
        {'out': tensor([[-1.0000,  0.5000,  1.0000]])}
    """

    def __init__(self, lower: Any = -1.0, upper: Any = 1.0) -> None:
        super().__init__()
        self.lower, self.upper = as_signal(lower, "Saturation", "lower"), as_signal(upper)
        if bool((self.lower > self.upper).any()):
            raise OptionError(f"Saturation: `lower` must be <= `upper`. Received: lower="
                              f"{lower!r}, upper={upper!r}.")  # fmt: skip

    def output(self, t, state, u):
        x = u["in"]
        return {"out": torch.clamp(x, cast(self, "lower", x), cast(self, "upper", x))}


class DeadZone(Block):
    """Zero inside [``start``, ``end``], the signal minus the nearer edge outside it
    (Simulink's Dead Zone).

    Example:
        >>> import torch
        >>> DeadZone(-0.5, 0.5).output(0.0, None, {"in": torch.tensor([[-2.0, 0.2, 1.5]])})
        {'out': tensor([[-1.5000,  0.0000,  1.0000]])}
    """

    def __init__(self, start: Any = -0.5, end: Any = 0.5) -> None:
        super().__init__()
        self.start_, self.end = as_signal(start, "DeadZone", "start"), as_signal(end)
        if bool((self.start_ > self.end).any()):
            raise OptionError(f"DeadZone: `start` must be <= `end`. Received: start={start!r}, "
                              f"end={end!r}.")  # fmt: skip

    def output(self, t, state, u):
        x = u["in"]
        low, high = cast(self, "start_", x), cast(self, "end", x)
        return {"out": torch.where(x > high, x - high, torch.where(x < low, x - low, 0 * x))}


class Scope(Block):
    """Logs its input: the simulation result holds it under the block's name (Simulink's
    Scope; ``result.plot([name])`` draws it).

    Example:
        >>> from deeptoolbox.simulate import Constant, Diagram, simulate
        >>> d = Diagram().add("c", Constant(2.0)).add("scope", Scope()).connect("c", "scope")
        >>> simulate(d, 0.1, dt=0.1)["scope"].flatten().tolist()
        [2.0, 2.0]
    """

    output_ports = ()

    def output(self, t, state, u):
        return {}


class ToWorkspace(Scope):
    """Logs its input under ``variable_name`` (Simulink's To Workspace), or the block's name.

    Example:
        >>> from deeptoolbox.simulate import Constant, Diagram, simulate
        >>> d = Diagram().add("c", Constant(1.0)).add("log", ToWorkspace("y")).connect("c", "log")
        >>> sorted(simulate(d, 0.1, dt=0.1).signals)
        ['c/out', 'y']
    """

    def __init__(self, variable_name: str | None = None) -> None:
        super().__init__()
        self.variable_name = variable_name
