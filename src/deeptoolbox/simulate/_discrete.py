"""Discrete blocks: UnitDelay, ZeroOrderHold, RateLimiter (updated at each sample hit, their
outputs held in between)."""

from __future__ import annotations

from typing import Any

import torch

from deeptoolbox.simulate._block import Block, as_signal, check_number, expand

__all__ = ["UnitDelay", "ZeroOrderHold", "RateLimiter"]


class _Discrete(Block):
    kind = "discrete"

    def __init__(self, sample_time: float | None) -> None:
        super().__init__()
        self.sample_time = check_number(
            type(self).__name__, "sample_time", sample_time, positive=True, allow_none=True
        )


class UnitDelay(_Discrete):
    """``y[k] = u[k-1]``, ``y[0] = initial`` (Simulink's Unit Delay, z^-1). ``sample_time``
    None: every simulation step.

    Example:
        >>> from deeptoolbox.simulate import Diagram, Ramp, simulate
        >>> d = Diagram().add("r", Ramp(1.0)).add("z", UnitDelay()).connect("r", "z")
        >>> [round(v, 6) for v in simulate(d, 0.3, dt=0.1)["z/out"].flatten().tolist()]
        [0.0, 0.0, 0.1, 0.2]
    """

    feedthrough = False

    def __init__(self, initial: Any = 0.0, *, sample_time: float | None = None) -> None:
        super().__init__(sample_time)
        self.initial = as_signal(initial, "UnitDelay", "initial")

    def start(self, context):
        return expand(context.tensor(self.initial), context)

    def output(self, t, state, u):
        return {"out": state}

    def update(self, t, state, u, y):
        return u["in"]


class ZeroOrderHold(_Discrete):
    """Samples its input every ``sample_time`` and holds it (Simulink's Zero-Order Hold).

    Example:
        >>> from deeptoolbox.simulate import Diagram, Ramp, simulate
        >>> d = Diagram().add("r", Ramp(1.0)).add("h", ZeroOrderHold(0.2)).connect("r", "h")
        >>> [round(v, 6) for v in simulate(d, 0.4, dt=0.1)["h/out"].flatten().tolist()]
        [0.0, 0.0, 0.2, 0.2, 0.4]
    """

    def __init__(self, sample_time: float | None = None) -> None:
        super().__init__(sample_time)

    def output(self, t, state, u):
        return {"out": u["in"]}


class RateLimiter(_Discrete):
    """Limits how fast the signal moves: each sample changes by at most ``rising`` *
    period up and ``falling`` * period down (units per second; Simulink's Rate Limiter).

    Example:
        >>> from deeptoolbox.simulate import Diagram, Step, simulate
        >>> d = Diagram().add("s", Step(0.0)).add("l", RateLimiter(2.0)).connect("s", "l")
        >>> [round(v, 6) for v in simulate(d, 0.4, dt=0.1)["l/out"].flatten().tolist()]
        [0.2, 0.4, 0.6, 0.8, 1.0]
    """

    def __init__(self, rising: Any = 1.0, falling: Any = None, *, initial: Any = 0.0,
                 sample_time: float | None = None) -> None:  # fmt: skip
        super().__init__(sample_time)
        self.rising = as_signal(rising, "RateLimiter", "rising")
        self.falling = self.rising if falling is None else as_signal(falling, "RateLimiter")
        self.initial = as_signal(initial, "RateLimiter", "initial")

    def start(self, context):
        period = context.dt if self.sample_time is None else self.sample_time
        return {"y": expand(context.tensor(self.initial), context),
                "up": context.tensor(self.rising) * period,
                "down": context.tensor(self.falling).abs() * period}  # fmt: skip

    def output(self, t, state, u):
        change = torch.clamp(u["in"] - state["y"], -state["down"], state["up"])
        return {"out": state["y"] + change}

    def update(self, t, state, u, y):
        return {**state, "y": y["out"]}
