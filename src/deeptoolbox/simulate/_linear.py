"""Dynamic blocks: Integrator, StateSpace, TransferFunction (continuous or discrete), PID,
and ODEBlock for a plant written as ``dx/dt = f(t, x, u)``."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from deeptoolbox.errors import OptionError
from deeptoolbox.simulate._block import Block, as_signal, cast, check_number, expand

__all__ = ["Integrator", "StateSpace", "TransferFunction", "PID", "ODEBlock"]

ANTI_WINDUP = ("none", "clamping", "back-calculation")


def _matrix(owner: str, option: str, value: Any, rows: int | None = None) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(value, dtype=np.float64))
    if tensor.dim() < 2:
        tensor = tensor.reshape(1, -1) if rows is None or rows == 1 else tensor.reshape(-1, 1)
    if tensor.dim() != 2:
        raise OptionError(f"{owner}: `{option}` must be a matrix. Received shape "
                          f"{tuple(tensor.shape)}.")  # fmt: skip
    return tensor


class Integrator(Block):
    """``y = x``, ``dx/dt = u``, ``x(0) = initial`` (Simulink's Integrator, 1/s). ``initial``
    may be (batch, channels): one initial condition per simulated case.

    Example:
        >>> from deeptoolbox.simulate import Constant, Diagram, simulate
        >>> d = Diagram().add("c", Constant(2.0)).add("x", Integrator()).connect("c", "x")
        >>> round(simulate(d, 1.0, dt=0.1)["x/out"][0, -1, 0].item(), 6)
        2.0
    """

    kind = "continuous"
    feedthrough = False

    def __init__(self, initial: Any = 0.0) -> None:
        super().__init__()
        self.initial = as_signal(initial, "Integrator", "initial")

    def start(self, context):
        return expand(context.tensor(self.initial), context).clone()

    def output(self, t, state, u):
        return {"out": state}

    def derivative(self, t, state, u):
        return u["in"].expand_as(state)


class StateSpace(Block):
    """``dx/dt = A x + B u, y = C x + D u`` (continuous), or with ``sample_time`` the
    difference equations ``x[k+1] = A x[k] + B u[k]`` (Simulink's State-Space /
    Discrete State-Space). ``initial``: x(0), may be (batch, states).

    Example:
        >>> from deeptoolbox.simulate import Diagram, Step, simulate
        >>> plant = StateSpace([[-1.0]], [[1.0]], [[1.0]], [[0.0]])
        >>> d = Diagram().add("u", Step(0.0)).add("p", plant).connect("u", "p")
        >>> round(simulate(d, 5.0, dt=0.01, solver="rk4")["p/out"][0, -1, 0].item(), 4)
        0.9933
    """

    def __init__(self, A: Any, B: Any, C: Any, D: Any = 0.0, *, initial: Any = 0.0,
                 sample_time: float | None = None) -> None:  # fmt: skip
        super().__init__()
        A = _matrix("StateSpace", "A", A)
        n = A.shape[0]
        B, C = _matrix("StateSpace", "B", B, rows=n), _matrix("StateSpace", "C", C)
        m, p = B.shape[1], C.shape[0]
        D = torch.as_tensor(np.asarray(D, dtype=np.float64))
        D = D.expand(p, m).clone() if D.dim() < 2 and D.numel() == 1 else _matrix("", "D", D)
        if A.shape != (n, n) or B.shape[0] != n or C.shape[1] != n or D.shape != (p, m):
            raise OptionError(
                f"StateSpace: sizes do not fit: A {tuple(A.shape)} must be (n, n), B "
                f"{tuple(B.shape)} (n, inputs), C {tuple(C.shape)} (outputs, n), D "
                f"{tuple(D.shape)} (outputs, inputs)."
            )
        self.A, self.B, self.C, self.D = A, B, C, D
        self.initial = as_signal(initial, "StateSpace", "initial")
        self.sample_time = check_number("StateSpace", "sample_time", sample_time,
                                        positive=True, allow_none=True)  # fmt: skip
        self.kind = "continuous" if self.sample_time is None else "discrete"
        self.feedthrough = bool((D != 0).any())

    def start(self, context):
        x0 = expand(context.tensor(self.initial), context)
        n = self.A.shape[0]
        if x0.shape[1] == 1 and n > 1:
            x0 = x0.expand(-1, n)
        if x0.shape[1] != n:
            raise OptionError(f"StateSpace: `initial` must have {n} states. Received "
                              f"{x0.shape[1]}.")  # fmt: skip
        if self.kind == "discrete":
            return x0.clone()
        return x0.clone()

    def _m(self, name: str, like: torch.Tensor) -> torch.Tensor:
        return cast(self, name, like)

    def output(self, t, state, u):
        y = state @ self._m("C", state).T
        if self.feedthrough:
            y = y + u["in"] @ self._m("D", state).T
        return {"out": y}

    def derivative(self, t, state, u):
        return state @ self._m("A", state).T + u["in"] @ self._m("B", state).T

    def update(self, t, state, u, y):
        return self.derivative(t, state, u)


class TransferFunction(StateSpace):
    """A single-input single-output transfer function ``num(s) / den(s)`` (coefficients in
    descending powers of s), or of z with ``sample_time`` (Simulink's Transfer Fcn /
    Discrete Transfer Fcn); realized in controllable canonical form (scipy's ``tf2ss``).

    Example:
        >>> from deeptoolbox.simulate import Diagram, Step, simulate
        >>> d = Diagram().add("u", Step(0.0)).add("g", TransferFunction([1.0], [1.0, 1.0]))
        >>> d = d.connect("u", "g")
        >>> round(simulate(d, 5.0, dt=0.01, solver="rk4")["g/out"][0, -1, 0].item(), 4)
        0.9933
    """

    def __init__(self, numerator: Any, denominator: Any, *,
                 sample_time: float | None = None) -> None:  # fmt: skip
        from scipy import signal

        num = np.atleast_1d(np.asarray(numerator, dtype=np.float64))
        den = np.atleast_1d(np.asarray(denominator, dtype=np.float64))
        if den.ndim != 1 or num.ndim != 1 or den[0] == 0 or len(num) > len(den):
            raise OptionError(
                "TransferFunction: `numerator` and `denominator` are 1-D coefficient lists "
                "(descending powers), the denominator's first one non-zero and at least as "
                f"long as the numerator (proper). Received: {numerator!r} / {denominator!r}."
            )
        A, B, C, D = signal.tf2ss(num, den)
        if A.size == 0:  # a pure gain
            A, B, C = np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1))
        super().__init__(A, B, C, D, sample_time=sample_time)
        self.numerator, self.denominator = num.tolist(), den.tolist()


class PID(Block):
    """A PID controller on the error ``in`` (Simulink's PID Controller, parallel form):
    ``u = Kp e + Ki \u222be + Kd N (e - f)``, ``df/dt = N (e - f)`` (the derivative filtered
    with coefficient ``N``), limited to [``lower``, ``upper``]. Anti-windup:
    ``"back-calculation"`` (integrator fed back ``Kb`` (u - v)), ``"clamping"`` (integration
    stops while the output saturates in the direction of the error) or ``"none"``.

    Example:
        >>> import torch
        >>> pid = PID(2.0, 1.0, 0.0)
        >>> pid.output(0.0, torch.zeros(1, 2), {"in": torch.ones(1, 1)})["out"]
        tensor([[2.]])
    """

    kind = "continuous"

    def __init__(self, Kp: Any = 1.0, Ki: Any = 0.0, Kd: Any = 0.0, *, N: Any = 100.0,
                 lower: float = -float("inf"), upper: float = float("inf"),
                 anti_windup: str = "back-calculation", Kb: Any = 1.0) -> None:  # fmt: skip
        super().__init__()
        self.Kp, self.Ki, self.Kd = (as_signal(v, "PID", k) for k, v in
                                     (("Kp", Kp), ("Ki", Ki), ("Kd", Kd)))  # fmt: skip
        self.N, self.Kb = as_signal(N, "PID", "N"), as_signal(Kb, "PID", "Kb")
        if anti_windup not in ANTI_WINDUP:
            raise OptionError(f"PID: `anti_windup` must be one of {ANTI_WINDUP}. Received: "
                              f"anti_windup={anti_windup!r}.")  # fmt: skip
        if not lower < upper:
            raise OptionError(f"PID: `lower` must be < `upper`. Received: {lower!r}, {upper!r}.")
        self.lower, self.upper, self.anti_windup = float(lower), float(upper), anti_windup
        self._derivative_used = isinstance(Kd, torch.Tensor) or bool((self.Kd != 0).any())

    def start(self, context):  # state: [integral term, derivative filter]
        stiffness = float(torch.as_tensor(self.N).max()) * context.dt
        if self._derivative_used and stiffness > 2.0:
            warnings.warn(
                f"PID: the derivative filter (pole at -N, N = {float(torch.as_tensor(self.N).max()):g}) "
                f"is unstable under a fixed step: N * dt = {stiffness:g} > 2 (euler; about 2.8 "
                "for rk4), so the output oscillates and grows. Use a smaller dt, a smaller N, "
                "or solver='dopri5'.",
                stacklevel=2,
            )
        return torch.zeros(context.batch, 2, dtype=context.dtype, device=context.device)

    def _p(self, name: str, like: torch.Tensor) -> torch.Tensor:
        return cast(self, name, like)

    def _unlimited(self, state, e):
        integral, filtered = state[:, :1], state[:, 1:]
        derivative = self._p("Kd", e) * self._p("N", e) * (e - filtered)
        return self._p("Kp", e) * e + integral + derivative

    def output(self, t, state, u):
        return {"out": torch.clamp(self._unlimited(state, u["in"]), self.lower, self.upper)}

    def derivative(self, t, state, u):
        e = u["in"]
        v = self._unlimited(state, e)
        y = torch.clamp(v, self.lower, self.upper)
        d_integral = self._p("Ki", e) * e
        if self.anti_windup == "back-calculation":
            d_integral = d_integral + self._p("Kb", e) * (y - v)
        elif self.anti_windup == "clamping":
            winding = (v != y) & (torch.sign(e) == torch.sign(v))
            d_integral = torch.where(winding, torch.zeros_like(d_integral), d_integral)
        d_filter = self._p("N", e) * (e - state[:, 1:])
        if not self._derivative_used:  # a PI: keep the unused (fast) filter state still
            d_filter = torch.zeros_like(d_filter)
        return torch.cat([d_integral, d_filter], dim=1)


class ODEBlock(Block):
    """A plant given as ``dx/dt = f(t, x, u)`` with ``x(0) = x0`` (``x0`` may be (batch,
    states)); the output is the state, or ``output(t, x, u)`` when given. Written in torch,
    ``f`` is batched and differentiable; ``inputs=0`` makes an autonomous system (``u`` is
    None).

    Example:
        >>> from deeptoolbox.simulate import Diagram, simulate
        >>> decay = ODEBlock(lambda t, x, u: -x, x0=1.0, inputs=0)
        >>> x = simulate(Diagram().add("p", decay), 1.0, dt=0.01, solver="rk4")["p/out"]
        >>> round(x[0, -1, 0].item(), 5)  # exp(-1)
        0.36788
    """

    kind = "continuous"

    def __init__(self, f: Callable, x0: Any, *, output: Callable | None = None,
                 inputs: int = 1) -> None:  # fmt: skip
        super().__init__()
        if not callable(f) or (output is not None and not callable(output)):
            raise OptionError("ODEBlock: `f` (and `output`, when given) must be callables "
                              "f(t, x, u) -> tensor.")  # fmt: skip
        if inputs not in (0, 1):
            raise OptionError(f"ODEBlock: `inputs` must be 0 or 1. Received: {inputs!r}.")
        self.f, self.h = f, output
        self.x0 = as_signal(x0, "ODEBlock", "x0")
        self.input_ports = ("in",) if inputs else ()
        self.feedthrough = output is not None and inputs == 1

    def start(self, context):
        return expand(context.tensor(self.x0), context).clone()

    def _u(self, u):
        return None if not self.input_ports or u is None else u["in"]

    def output(self, t, state, u):
        return {"out": state if self.h is None else self.h(t, state, self._u(u))}

    def derivative(self, t, state, u):
        return self.f(t, state, self._u(u))
