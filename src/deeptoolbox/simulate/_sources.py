"""Source blocks: Constant, Step, Ramp, Sine, Pulse, FromData (interpolated), Noise.

Every value may be a number, a vector (one per channel) or a (batch, channels) matrix (one
row per simulated case). Times are in seconds, angular frequencies in rad/s (as Simulink).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from deeptoolbox.errors import OptionError
from deeptoolbox.simulate._block import Block, SimulationContext, as_signal, check_number, expand

__all__ = ["Constant", "Step", "Ramp", "Sine", "Pulse", "FromData", "FromArray", "Noise"]

INTERPOLATIONS = ("linear", "zoh", "nearest")


class _Source(Block):
    input_ports = ()
    feedthrough = False

    def _values(self, context: SimulationContext, **values: Any) -> dict[str, torch.Tensor]:
        return {k: expand(context.tensor(v), context) for k, v in values.items()}


class Constant(_Source):
    """A constant signal (Simulink's Constant).

    Example:
        >>> import torch
        >>> from deeptoolbox.simulate import Diagram, simulate
        >>> d = Diagram().add("c", Constant([1.0, 2.0]))
        >>> simulate(d, 0.2, dt=0.1)["c/out"].shape
        torch.Size([1, 3, 2])
    """

    def __init__(self, value: Any = 1.0) -> None:
        super().__init__()
        self.value = as_signal(value, "Constant", "value")

    def start(self, context):
        return self._values(context, value=self.value)

    def output(self, t, state, u):
        return {"out": state["value"]}


class Step(_Source):
    """``initial`` before ``time``, ``final`` from then on (Simulink's Step).

    Example:
        >>> from deeptoolbox.simulate import Diagram, simulate
        >>> r = simulate(Diagram().add("s", Step(time=0.1)), 0.2, dt=0.1)
        >>> r["s/out"].flatten().tolist()
        [0.0, 1.0, 1.0]
    """

    piecewise_constant = True

    def __init__(self, time: float = 1.0, *, initial: Any = 0.0, final: Any = 1.0) -> None:
        super().__init__()
        self.time = check_number("Step", "time", time)
        self.initial = as_signal(initial, "Step", "initial")
        self.final = as_signal(final, "Step", "final")

    def start(self, context):
        return self._values(context, initial=self.initial, final=self.final)

    def output(self, t, state, u):
        return {"out": state["final"] if t >= self.time - 1e-12 else state["initial"]}


class Ramp(_Source):
    """``initial`` until ``start_time``, then rising with ``slope`` per second.

    Example:
        >>> from deeptoolbox.simulate import Diagram, simulate
        >>> r = simulate(Diagram().add("r", Ramp(2.0)), 0.2, dt=0.1)
        >>> [round(v, 6) for v in r["r/out"].flatten().tolist()]
        [0.0, 0.2, 0.4]
    """

    def __init__(self, slope: Any = 1.0, *, start_time: float = 0.0, initial: Any = 0.0) -> None:
        super().__init__()
        self.slope = as_signal(slope, "Ramp", "slope")
        self.start_time = check_number("Ramp", "start_time", start_time)
        self.initial = as_signal(initial, "Ramp", "initial")

    def start(self, context):
        return self._values(context, slope=self.slope, initial=self.initial)

    def output(self, t, state, u):
        return {"out": state["initial"] + state["slope"] * max(t - self.start_time, 0.0)}


class Sine(_Source):
    """``amplitude * sin(frequency * t + phase) + bias``, frequency in rad/s.

    Example:
        >>> import math
        >>> from deeptoolbox.simulate import Diagram, simulate
        >>> r = simulate(Diagram().add("s", Sine(frequency=math.pi)), 0.5, dt=0.5)
        >>> [round(v, 6) for v in r["s/out"].flatten().tolist()]
        [0.0, 1.0]
    """

    def __init__(self, amplitude: Any = 1.0, *, frequency: Any = 1.0, phase: Any = 0.0,
                 bias: Any = 0.0) -> None:  # fmt: skip
        super().__init__()
        self.amplitude = as_signal(amplitude, "Sine", "amplitude")
        self.frequency = as_signal(frequency, "Sine", "frequency")
        self.phase = as_signal(phase, "Sine", "phase")
        self.bias = as_signal(bias, "Sine", "bias")

    def start(self, context):
        return self._values(context, amplitude=self.amplitude, frequency=self.frequency,
                            phase=self.phase, bias=self.bias)  # fmt: skip

    def output(self, t, s, u):
        return {"out": s["amplitude"] * torch.sin(s["frequency"] * t + s["phase"]) + s["bias"]}


class Pulse(_Source):
    """A pulse train: ``amplitude`` for ``width`` (a fraction of the ``period``) of each
    period, starting at ``delay``, zero otherwise (Simulink's Pulse Generator).

    Example:
        >>> from deeptoolbox.simulate import Diagram, simulate
        >>> r = simulate(Diagram().add("p", Pulse(period=0.4, width=0.5)), 0.4, dt=0.1)
        >>> r["p/out"].flatten().tolist()
        [1.0, 1.0, 0.0, 0.0, 1.0]
    """

    piecewise_constant = True

    def __init__(self, amplitude: Any = 1.0, *, period: float = 1.0, width: float = 0.5,
                 delay: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        self.amplitude = as_signal(amplitude, "Pulse", "amplitude")
        self.period = check_number("Pulse", "period", period, positive=True)
        self.width = check_number("Pulse", "width", width, positive=True)
        if self.width > 1:
            raise OptionError(f"Pulse: `width` is a fraction of the period in (0, 1]. "
                              f"Received: width={width!r}.")  # fmt: skip
        self.delay = check_number("Pulse", "delay", delay)

    def start(self, context):
        return self._values(context, amplitude=self.amplitude)

    def output(self, t, state, u):
        phase = (t - self.delay) / self.period
        on = t >= self.delay - 1e-12 and (phase - math.floor(phase + 1e-9)) < self.width - 1e-9
        return {"out": state["amplitude"] * (1.0 if on else 0.0)}


class FromData(_Source):
    """A signal given at sample ``times`` (Simulink's From Workspace): ``values`` is
    (T, C), or (B, T, C) for one signal per simulated case; between samples
    ``interpolation`` is ``"linear"``, ``"zoh"`` (hold the last sample) or ``"nearest"``;
    outside ``times`` the first or last sample is held.

    Example:
        >>> from deeptoolbox.simulate import Diagram, simulate
        >>> d = Diagram().add("x", FromData([0.0, 1.0], [[0.0], [10.0]]))
        >>> simulate(d, 1.0, dt=0.25)["x/out"].flatten().tolist()
        [0.0, 2.5, 5.0, 7.5, 10.0]
    """

    def __init__(self, times: Any, values: Any, *, interpolation: str = "linear") -> None:
        super().__init__()
        self.times = torch.as_tensor(times, dtype=torch.float64).flatten()
        values = torch.as_tensor(values)
        if values.dim() == 1:
            values = values[:, None]
        if values.dim() == 2:
            values = values[None]
        if values.dim() != 3 or values.shape[1] != len(self.times) or len(self.times) < 1:
            raise OptionError(
                f"FromData: `values` must be (T, C) or (B, T, C) with T = len(times) = "
                f"{len(self.times)}. Received values of shape {tuple(values.shape)}."
            )
        if len(self.times) > 1 and not bool((self.times[1:] > self.times[:-1]).all()):
            raise OptionError("FromData: `times` must be strictly increasing.")
        if interpolation not in INTERPOLATIONS:
            raise OptionError(f"FromData: `interpolation` must be one of {INTERPOLATIONS}. "
                              f"Received: interpolation={interpolation!r}.")  # fmt: skip
        self.values, self.interpolation = values, interpolation
        self.piecewise_constant = interpolation != "linear"
        self._spacing = float(self.times.diff().min()) if len(self.times) > 1 else 1.0

    def start(self, context):
        values = context.tensor(self.values)
        return {"values": values.expand(context.batch, -1, -1) if values.shape[0] == 1 else values}

    def output(self, t, state, u):
        values, times = state["values"], self.times.tolist()
        t_match = t + 1e-6 * self._spacing  # a sample time given in float32 still counts
        if t_match <= times[0]:
            return {"out": values[:, 0]}
        if t_match >= times[-1]:
            return {"out": values[:, -1]}
        i = int(torch.searchsorted(self.times, torch.tensor(t_match, dtype=torch.float64),
                                   right=True))  # fmt: skip
        i0, t0, t1 = i - 1, times[i - 1], times[i]
        if self.interpolation == "zoh":
            return {"out": values[:, i0]}
        if self.interpolation == "nearest":
            return {"out": values[:, i0 if t - t0 < t1 - t else i]}
        w = (t - t0) / (t1 - t0)
        return {"out": values[:, i0] * (1 - w) + values[:, i] * w}


FromArray = FromData


class Noise(_Source):
    """Gaussian noise held over each ``sample_time`` (Simulink's Band-Limited White Noise /
    Random Number): ``mean`` + ``std`` * N(0, 1), ``channels`` wide, reproducible from ``seed``:
    batch case i draws from its own stream (numpy's generator seeded with ``[seed, i]``),
    so a case's noise does not depend on the batch size or the stop time (case 0 of a batch
    is the noise of a run with ``batch=1``).

    Example:
        >>> from deeptoolbox.simulate import Diagram, simulate
        >>> d = Diagram().add("n", Noise(seed=3, sample_time=0.1))
        >>> a = simulate(d, 1.0, dt=0.05, batch=2)["n/out"]
        >>> b = simulate(d, 1.0, dt=0.05, batch=2)["n/out"]
        >>> bool((a == b).all()), bool((a[:, 0] == a[:, 1]).all())
        (True, True)
    """

    piecewise_constant = True

    def __init__(self, *, seed: int = 0, std: Any = 1.0, mean: Any = 0.0,
                 sample_time: float = 0.1, channels: int = 1) -> None:  # fmt: skip
        super().__init__()
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise OptionError(f"Noise: `seed` must be an int. Received: seed={seed!r}.")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise OptionError(f"Noise: `channels` must be an int >= 1. Received: {channels!r}.")
        self.seed, self.channels = seed, channels
        self.std, self.mean = as_signal(std, "Noise", "std"), as_signal(mean, "Noise", "mean")
        self.sample_time = check_number("Noise", "sample_time", sample_time, positive=True)

    def start(self, context):
        count = int(math.floor(context.t_end / self.sample_time + 1e-9)) + 1
        draws = torch.from_numpy(np.stack([
            np.random.default_rng([self.seed, case]).standard_normal((count, self.channels))
            for case in range(context.batch)
        ]))  # fmt: skip
        std, mean = context.tensor(self.std), context.tensor(self.mean)
        return {"values": context.tensor(draws) * std[:, None] + mean[:, None]}

    def output(self, t, state, u):
        values = state["values"]
        index = min(int(math.floor(t / self.sample_time + 1e-9)), values.shape[1] - 1)
        return {"out": values[:, index]}
