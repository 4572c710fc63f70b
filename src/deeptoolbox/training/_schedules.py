"""Learn-rate schedules: factors of the initial learn rate as a function of training progress.

Progress ``t`` is measured in epochs and grows by ``1 / iterations_per_epoch`` each iteration,
so a schedule gives the same sequence whatever the mini-batch size. A list of schedules runs
them one after another: each one with a duration (``epochs``) hands over to the next.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from deeptoolbox.errors import OptionError

__all__ = ["Piecewise", "Warmup", "Cosine", "Polynomial", "resolve_schedule"]


def _positive(owner: str, option: str, value: object, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise OptionError(
            f"{owner}: `{option}` must be a positive number. Received: {option}={value!r}."
        )


@dataclass(frozen=True)
class Piecewise:
    """Multiply the learn rate by ``drop_factor`` every ``period`` epochs.

    Example:
        >>> [Piecewise(0.5, 2)(t, 10) for t in (0, 1, 2, 4)]
        [1.0, 1.0, 0.5, 0.25]
    """

    drop_factor: float = 0.1
    period: float = 10
    epochs: float | None = None

    def __post_init__(self) -> None:
        _positive("Piecewise", "drop_factor", self.drop_factor)
        _positive("Piecewise", "period", self.period)
        _positive("Piecewise", "epochs", self.epochs, allow_none=True)

    def __call__(self, t: float, total: float) -> float:
        return float(self.drop_factor ** math.floor(t / self.period + 1e-9))


@dataclass(frozen=True)
class Warmup:
    """Raise the learn rate linearly from ``initial_factor`` to 1 over ``epochs`` epochs.

    Example:
        >>> [round(Warmup(epochs=2, initial_factor=0.0)(t, 10), 2) for t in (0, 1, 2, 3)]
        [0.0, 0.5, 1.0, 1.0]
    """

    epochs: float = 5
    initial_factor: float = 0.1

    def __post_init__(self) -> None:
        _positive("Warmup", "epochs", self.epochs)
        if not 0 <= self.initial_factor <= 1:
            raise OptionError(
                f"Warmup: `initial_factor` must be in [0, 1]. Received: {self.initial_factor!r}."
            )

    def __call__(self, t: float, total: float) -> float:
        fraction = min(1.0, t / self.epochs)
        return self.initial_factor + (1.0 - self.initial_factor) * fraction


@dataclass(frozen=True)
class Cosine:
    """Cosine decay from 1 to ``min_factor`` over ``period`` epochs (default: the rest of training).

    Example:
        >>> [round(Cosine()(t, 4), 3) for t in (0, 2, 4)]
        [1.0, 0.5, 0.0]
    """

    period: float | None = None
    min_factor: float = 0.0
    epochs: float | None = None

    def __post_init__(self) -> None:
        _positive("Cosine", "period", self.period, allow_none=True)

    def __call__(self, t: float, total: float) -> float:
        period = self.period or max(total, 1e-12)
        phase = min(t / period, 1.0)
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * phase))


@dataclass(frozen=True)
class Polynomial:
    """Decay ``(1 - t / period) ** power`` from 1 to ``final_factor`` (period: rest of training).

    Example:
        >>> [Polynomial(power=1)(t, 4) for t in (0, 1, 4)]
        [1.0, 0.75, 0.0]
    """

    power: float = 1.0
    period: float | None = None
    final_factor: float = 0.0
    epochs: float | None = None

    def __post_init__(self) -> None:
        _positive("Polynomial", "power", self.power)
        _positive("Polynomial", "period", self.period, allow_none=True)

    def __call__(self, t: float, total: float) -> float:
        period = self.period or max(total, 1e-12)
        remaining = max(0.0, 1.0 - t / period)
        return self.final_factor + (1 - self.final_factor) * remaining**self.power


_NAMED = {"piecewise": Piecewise, "warmup": Warmup, "cosine": Cosine, "polynomial": Polynomial}
SCHEDULE_NAMES = ("none", *_NAMED)
Schedule = Callable[[float, float], float]


def _one(item: object, drop_factor: float, drop_period: float) -> Schedule | None:
    if isinstance(item, str):
        if item not in SCHEDULE_NAMES:
            raise OptionError(
                f"TrainingOptions: `learn_rate_schedule` must be one of {list(SCHEDULE_NAMES)}, a "
                f"schedule object, a callable or a list of them. Received: {item!r}."
            )
        if item == "none":
            return None
        if item == "piecewise":
            return Piecewise(drop_factor, drop_period)
        return _NAMED[item]()
    if callable(item):
        if isinstance(item, Piecewise | Warmup | Cosine | Polynomial):
            return item
        return lambda t, total: float(item(t))  # user callable: factor from epoch progress
    raise OptionError(
        "TrainingOptions: `learn_rate_schedule` must be 'none', 'piecewise', 'warmup', 'cosine', "
        f"'polynomial', a schedule object, a callable or a list of them. Received: {item!r}."
    )


def resolve_schedule(
    spec: object, total_epochs: float, drop_factor: float = 0.1, drop_period: float = 10
) -> Callable[[float], float]:
    """Turn the ``learn_rate_schedule`` option into ``factor(t)``, ``t`` in epochs.

    Example:
        >>> f = resolve_schedule([Warmup(epochs=1, initial_factor=0.0), "cosine"], 3)
        >>> [round(f(t), 3) for t in (0.0, 0.5, 1.0, 2.0, 3.0)]
        [0.0, 0.5, 1.0, 0.5, 0.0]
    """
    items = list(spec) if isinstance(spec, Sequence) and not isinstance(spec, str) else [spec]
    stages: list[tuple[float, float, Schedule]] = []  # (start, duration, schedule)
    start = 0.0
    for index, item in enumerate(items):
        schedule = _one(item, drop_factor, drop_period)
        if schedule is None:
            continue
        duration = getattr(schedule, "epochs", None)
        if duration is None:
            if index == len(items) - 1:
                duration = math.inf
            else:
                raise OptionError(
                    f"TrainingOptions: in a list of learn-rate schedules every schedule but the "
                    f"last needs a duration (`epochs`). Received: {item!r} at position {index}."
                )
        stages.append((start, float(duration), schedule))
        start += float(duration)

    def factor(t: float) -> float:
        for number, (begin, duration, schedule) in enumerate(stages):
            if t < begin + duration or number == len(stages) - 1:
                span = duration if math.isfinite(duration) else total_epochs - begin
                return schedule(max(0.0, t - begin), span)
        return 1.0

    return factor
