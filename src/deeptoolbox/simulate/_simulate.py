"""simulate(): fixed-step (Euler, RK4) and adaptive (dopri5, through torchdiffeq) simulation
of a Diagram, batched and differentiable.

Each step k at ``t = k dt`` is a major step: every block's outputs are computed and logged,
discrete blocks whose sample time hits run ``output`` then ``update`` (their outputs are held
until the next hit), then the continuous states are integrated to ``t + dt``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from deeptoolbox.errors import DeepToolboxError, DiagramError, OptionError, SimulationError
from deeptoolbox.simulate._block import Block, SimulationContext, check_number
from deeptoolbox.simulate._diagram import Diagram, compile_diagram
from deeptoolbox.simulate._math import Scope, ToWorkspace
from deeptoolbox.simulate._result import SimulationResult

__all__ = ["simulate", "Simulator", "SOLVERS"]

SOLVERS = ("euler", "rk4", "dopri5")


@dataclass
class SimulationState:
    """The state between two major steps: continuous and discrete states, held outputs."""

    continuous: dict[str, torch.Tensor]
    discrete: dict[str, Any]
    held: dict[str, dict[str, torch.Tensor]]


def _check(diagram: Any, t_end: Any, dt: Any, solver: Any, batch: Any) -> None:
    if not isinstance(diagram, Diagram):
        raise OptionError(f"simulate: `diagram` must be a deeptoolbox.simulate.Diagram. "
                          f"Received: {type(diagram).__name__}.")  # fmt: skip
    check_number("simulate", "dt", dt, positive=True)
    check_number("simulate", "t_end", t_end, positive=True)
    if solver not in SOLVERS:
        raise OptionError(f"simulate: `solver` must be one of {', '.join(map(repr, SOLVERS))}. "
                          f"Received: solver={solver!r}.")  # fmt: skip
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise OptionError(f"simulate: `batch` must be an int >= 1. Received: batch={batch!r}.")
    steps = t_end / dt
    if abs(steps - round(steps)) > 1e-6 * max(1.0, steps):
        raise OptionError(f"simulate: `t_end` must be a whole number of steps `dt`. Received: "
                          f"t_end={t_end!r}, dt={dt!r} ({steps:g} steps).")  # fmt: skip


def _check_tolerances(solver: str, rtol: Any, atol: Any) -> None:
    given = [f"{name}={value!r}" for name, value in (("rtol", rtol), ("atol", atol))
             if value is not None]  # fmt: skip
    if given and solver != "dopri5":
        raise OptionError(
            f"simulate: {', '.join(given)} only applies to the adaptive solver 'dopri5'; "
            f"solver={solver!r} takes fixed steps of dt. Use solver='dopri5', or leave the "
            "tolerances out and choose dt."
        )
    for name, value in (("rtol", rtol), ("atol", atol)):
        if value is not None:
            check_number("simulate", name, value, positive=True)


class Simulator:
    """A compiled diagram ready to run step by step (what :func:`simulate` and
    ``train_closed_loop`` drive).

    Example:
        >>> from deeptoolbox.simulate import Constant, Diagram, Integrator
        >>> d = Diagram().add("c", Constant(1.0)).add("x", Integrator()).connect("c", "x")
        >>> sim = Simulator(d, 1.0, 0.5)
        >>> result = sim.run()
        >>> result["x/out"].flatten().tolist()
        [0.0, 0.5, 1.0]
    """

    def __init__(self, diagram: Diagram, t_end: float, dt: float, *, solver: str = "euler",
                 batch: int = 1, dtype: torch.dtype | None = None, device: Any = None,
                 log: Sequence[str] | None = None, rtol: float | None = None,
                 atol: float | None = None) -> None:  # fmt: skip
        _check(diagram, t_end, dt, solver, batch)
        _check_tolerances(solver, rtol, atol)
        self.compiled = compile_diagram(diagram)
        self.context = SimulationContext(
            batch, dtype or torch.get_default_dtype(), torch.device(device or "cpu"),
            float(t_end), float(dt),
        )  # fmt: skip
        wide = self.context.dtype == torch.float64  # tolerances float32 can still resolve
        self.solver = solver
        self.rtol = rtol if rtol is not None else 1e-7 if wide else 1e-5
        self.atol = atol if atol is not None else 1e-9 if wide else 1e-7
        self.steps = self.context.steps
        self.periods = {path: self._period(path, b) for path, b in self.blocks.items()
                        if b.kind == "discrete"}  # fmt: skip
        self.continuous = [p for p in self.compiled.order if self.blocks[p].kind == "continuous"]
        self.logged = self._log_plan(log)

    @property
    def blocks(self) -> dict[str, Block]:
        return self.compiled.blocks

    def _period(self, path: str, block: Block) -> int:
        if block.sample_time is None:
            return 1
        ratio = block.sample_time / self.context.dt
        if ratio < 1 - 1e-9 or abs(ratio - round(ratio)) > 1e-6:
            raise OptionError(
                f"simulate: block '{path}' has sample_time={block.sample_time:g}, which is not a "
                f"whole multiple of dt={self.context.dt:g}. Choose dt so that every sample time "
                "is a multiple of it."
            )
        return int(round(ratio))

    def _log_plan(self, log: Sequence[str] | None) -> dict[str, tuple[str, str]]:
        available: dict[str, tuple[str, str]] = {}
        for path in self.compiled.order:
            block = self.blocks[path]
            if isinstance(block, Scope):
                name = block.variable_name if isinstance(block, ToWorkspace) else None
                available[name or path] = self.compiled.sources[path]["in"]
            for port in block.output_ports:
                available[f"{path}/{port}"] = (path, port)
        available.update(self.compiled.outputs)  # subsystem outputs, by the subsystem's port
        if log is None:
            return available
        unknown = [name for name in log if name not in available]
        if unknown:
            raise DiagramError(f"simulate: cannot log {unknown}: no such signal. Signals: "
                               f"{', '.join(available)}.")  # fmt: skip
        return {name: available[name] for name in log}

    # -- running ---------------------------------------------------------------------------
    def start(self) -> SimulationState:
        """The initial states of every block."""
        continuous, discrete = {}, {}
        for path in self.compiled.order:
            block = self.blocks[path]
            state = block.start(self.context)
            if (
                isinstance(state, torch.Tensor)
                and state.dim() == 2
                and (state.shape[0] != self.context.batch)
            ):
                raise OptionError(
                    f"simulate: block '{path}' starts with {state.shape[0]} cases (rows of its "
                    f"initial value) but batch={self.context.batch}. Pass batch="
                    f"{state.shape[0]} to simulate, or give one row."
                )
            (continuous if block.kind == "continuous" else discrete)[path] = state
        return SimulationState(continuous, discrete, {})

    def _call(self, path: str, method: str, t: float, *args: Any) -> Any:
        try:
            return getattr(self.blocks[path], method)(t, *args)
        except DeepToolboxError:
            raise
        except (RuntimeError, ValueError, TypeError, IndexError) as err:
            block = self.blocks[path]
            raise SimulationError(
                f"simulate: block '{path}' ({type(block).__name__}) failed in {method}() at "
                f"t={t:g}: {err}"
            ) from err

    def _inputs(self, path: str, signals: dict) -> dict[str, torch.Tensor]:
        return {port: signals[src] for port, src in self.compiled.sources[path].items()}

    def evaluate(self, t: float, state: SimulationState, continuous: dict | None = None,
                 hits: set[str] | None = None) -> dict[tuple[str, str], torch.Tensor]:  # fmt: skip
        """Every output port's value at ``t``; ``hits``: discrete blocks sampled now (None:
        a minor step, discrete outputs held)."""
        continuous = state.continuous if continuous is None else continuous
        signals: dict[tuple[str, str], torch.Tensor] = {}
        for path in self.compiled.order:
            block = self.blocks[path]
            if block.kind == "discrete" and (hits is None or path not in hits):
                outputs = state.held[path]
            elif hits is None and block.piecewise_constant and path in state.held:
                outputs = state.held[path]  # held over the solver's stages
            else:
                u = self._inputs(path, signals) if block.feedthrough else None
                own = continuous[path] if block.kind == "continuous" else state.discrete[path]
                outputs = self._call(path, "output", t, own, u)
                if block.kind == "discrete" or block.piecewise_constant:
                    state.held[path] = outputs
            for port in block.output_ports:
                signals[(path, port)] = outputs[port]
        return signals

    def _derivatives(self, t: float, x: torch.Tensor, state: SimulationState) -> torch.Tensor:
        continuous = self._unpack(x, state)
        signals = self.evaluate(t, state, continuous)
        parts = []
        for p in self.continuous:
            value = self._call(p, "derivative", t, continuous[p], self._inputs(p, signals))
            expected = tuple(continuous[p].shape)
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != expected:
                found = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value)
                raise SimulationError(
                    f"simulate: block '{p}' ({type(self.blocks[p]).__name__}) gave a "
                    f"derivative of shape {found} at t={t:g}; its state is {expected} (batch, "
                    "states), and the derivative must be the same shape."
                )
            parts.append(value)
        return torch.cat(parts, dim=1)

    def _unpack(self, x: torch.Tensor, state: SimulationState) -> dict[str, torch.Tensor]:
        widths = [state.continuous[p].shape[1] for p in self.continuous]
        return dict(zip(self.continuous, torch.split(x, widths, dim=1), strict=True))

    def _integrate(self, t: float, state: SimulationState) -> None:
        if not self.continuous:
            return
        dt = self.context.dt
        x = torch.cat([state.continuous[p] for p in self.continuous], dim=1)

        def f(time: Any, value: torch.Tensor) -> torch.Tensor:
            moment = float(time.detach()) if isinstance(time, torch.Tensor) else float(time)
            return self._derivatives(moment, value, state)

        if self.solver == "euler":
            x = x + dt * f(t, x)
        elif self.solver == "rk4":
            k1 = f(t, x)
            k2 = f(t + dt / 2, x + dt / 2 * k1)
            k3 = f(t + dt / 2, x + dt / 2 * k2)
            k4 = f(t + dt, x + dt * k3)
            x = x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        else:
            from torchdiffeq import odeint

            times = torch.tensor([t, t + dt], dtype=torch.float64)
            try:
                x = odeint(f, x, times, method=self.solver, rtol=self.rtol, atol=self.atol)[-1]
            except AssertionError as err:  # torchdiffeq: "underflow in dt ..."
                raise SimulationError(
                    f"simulate: {self.solver} could not step from t={t:g} to t={t + dt:g} "
                    f"({err}): the solution changes faster than any step can follow (it may "
                    "blow up). Check the plant near that time, or bound its states (Saturation)."
                ) from err
        if not bool(torch.isfinite(x).all()):
            self._not_finite(self._unpack(x, state), t + dt)
        state.continuous = self._unpack(x, state)

    def _not_finite(self, states: dict[str, Any], t: float) -> None:
        for path, value in states.items():
            if isinstance(value, torch.Tensor) and not bool(torch.isfinite(value).all()):
                raise SimulationError(
                    f"simulate: the state of block '{path}' ({type(self.blocks[path]).__name__})"
                    f" became NaN or infinite at t={t:g}. Hint: a smaller dt, a stiffer solver "
                    "('rk4', 'dopri5'), or limits (Saturation) on the signals feeding it."
                )

    def step(self, k: int, state: SimulationState) -> dict[tuple[str, str], torch.Tensor]:
        """Major step ``k``: outputs (returned), discrete updates, and (below the last step)
        integration to step ``k + 1``; ``state`` is updated in place."""
        t = k * self.context.dt
        hits = {p for p, period in self.periods.items() if k % period == 0}
        signals = self.evaluate(t, state, hits=hits)
        if k >= self.steps:
            return signals
        for path in self.compiled.order:
            if path in hits:
                u = self._inputs(path, signals)
                new = self._call(path, "update", t, state.discrete[path], u, state.held[path])
                state.discrete[path] = new
        self._not_finite({p: state.discrete[p] for p in hits}, t)
        self._integrate(t, state)
        return signals

    def record(self, signals: dict, logs: dict[str, list]) -> None:
        """Append the logged signals of one major step to ``logs``."""
        for name, port in self.logged.items():
            logs.setdefault(name, []).append(signals[port])

    def result(self, logs: dict[str, list], first: int = 0) -> SimulationResult:
        """The logs as a :class:`SimulationResult` (steps ``first``...)."""
        count = len(next(iter(logs.values()))) if logs else 0
        time = torch.arange(first, first + count, dtype=torch.float64) * self.context.dt
        signals = {name: torch.stack(values, dim=1) for name, values in logs.items()}
        return SimulationResult(time, signals)

    def finish(self, state: SimulationState) -> None:
        """Let every block release what it holds (FMU instances)."""
        for path in self.compiled.order:
            own = state.continuous.get(path, state.discrete.get(path))
            self.blocks[path].finish(own)

    def run(self) -> SimulationResult:
        """Simulate from the start to ``t_end``."""
        state, logs = self.start(), {}
        try:
            for k in range(self.steps + 1):
                self.record(self.step(k, state), logs)
        finally:
            self.finish(state)
        return self.result(logs)


def simulate(
    diagram: Diagram,
    t_end: float,
    *,
    dt: float = 0.01,
    solver: str = "euler",
    batch: int = 1,
    log: Sequence[str] | None = None,
    dtype: torch.dtype | None = None,
    device: Any = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> SimulationResult:
    """Simulate ``diagram`` from 0 to ``t_end`` (Simulink's ``sim``); returns the logged
    signals as tensors (batch x time x channels), at ``0, dt, ..., t_end``.

    Args:
        diagram: the :class:`Diagram`.
        t_end: the stop time, a whole number of steps.
        dt: the step (and the output grid); every discrete sample time must be a multiple.
        solver: ``"euler"``, ``"rk4"`` (fixed step) or ``"dopri5"`` (adaptive within each
            step, through ``torchdiffeq``, with ``rtol`` / ``atol``; default 1e-7 / 1e-9 in
            float64, 1e-5 / 1e-7 in float32, whose rounding finer tolerances only add to).
        batch: cases simulated at once; block values given as (batch, channels) matrices
            (initial conditions, parameters) give each case its own.
        log: the signals to log (``"block/port"``, ``"subsystem.block/port"``, Scope names);
            default every output and Scope.
        dtype, device: of every signal (default: torch's default dtype, the CPU).

    Raises:
        OptionError: ``dt <= 0``, an unknown solver, a sample time that is no multiple of dt,
            ``rtol`` / ``atol`` with a fixed-step solver.
        DiagramError: unconnected ports, an algebraic loop, an unknown signal in ``log``.
        SimulationError: a state became NaN or infinite (names the block and the time).

    Example:
        >>> from deeptoolbox.simulate import Diagram, Gain, Integrator, Sum, Step
        >>> d = (Diagram().add("r", Step(0.0)).add("e", Sum("+-")).add("k", Gain(2.0))
        ...      .add("x", Integrator()))
        >>> d = d.connect("r", "e/in1").connect("x", "e/in2").connect("e", "k").connect("k", "x")
        >>> r = simulate(d, 3.0, dt=0.01, solver="rk4")
        >>> round(r["x/out"][0, -1, 0].item(), 4)  # 1 - exp(-2 t)
        0.9975
    """
    simulator = Simulator(diagram, t_end, dt, solver=solver, batch=batch, dtype=dtype,
                          device=device, log=log, rtol=rtol, atol=atol)  # fmt: skip
    return simulator.run()
