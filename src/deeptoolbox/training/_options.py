"""TrainingOptions: every setting of train(), validated in one place when it is built."""

from __future__ import annotations

import difflib
import functools
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from deeptoolbox.data._reading import check_sequence_options
from deeptoolbox.errors import OptionError
from deeptoolbox.training._callbacks import callback_name, check_callbacks
from deeptoolbox.training._metrics import TRAINING_METRIC_NAMES
from deeptoolbox.training._schedules import resolve_schedule

__all__ = ["TrainingOptions", "SOLVERS", "DEFAULT_LEARN_RATES"]

SOLVERS = ("sgdm", "adam", "adamw", "rmsprop", "lbfgs")
DEFAULT_LEARN_RATES = {"sgdm": 0.01, "adam": 0.001, "adamw": 0.001, "rmsprop": 0.001, "lbfgs": 1.0}
METRIC_NAMES = TRAINING_METRIC_NAMES
_CHOICES = {
    "solver": SOLVERS,
    "gradient_threshold_method": ("l2norm", "global-l2norm", "absolute-value"),
    "shuffle": ("once", "every-epoch", "never"),
    "output_network": ("auto", "last-iteration", "best-validation"),
    "plots": ("training-progress", "monitor", "none"),
    "checkpoint_frequency_unit": ("epoch", "iteration"),
    "execution_environment": ("auto", "cpu", "gpu", "multi-gpu", "parallel"),
    "precision": ("auto", "32", "bf16-mixed", "16-mixed"),
    "batch_normalization_statistics": ("auto", "population", "moving"),
    "memory_format": ("auto", "channels_last", "contiguous"),
    # several processes: "auto"/"ddp" replicate the network, "fsdp" shards it (FSDP2)
    "strategy": ("auto", "ddp", "fsdp"),
}
# device switches: "auto" (decided from the device, see training/_acceleration.py) or a bool
_SWITCHES = ("compile", "cudnn_benchmark", "tf32", "pin_memory")
# option -> (minimum, minimum allowed?, integer?, infinity allowed?)
_NUMBERS = {
    "initial_learn_rate": (0.0, False, False, False),
    "learn_rate_drop_factor": (0.0, True, False, False),
    "learn_rate_drop_period": (0.0, False, False, False),
    "momentum": (0.0, True, False, False),
    "gradient_decay_factor": (0.0, True, False, False),
    "squared_gradient_decay_factor": (0.0, True, False, False),
    "epsilon": (0.0, False, False, False),
    "l2_regularization": (0.0, True, False, False),
    "gradient_threshold": (0.0, False, False, True),
    "max_epochs": (1, True, True, False),
    "mini_batch_size": (1, True, True, False),
    "validation_frequency": (1, True, True, False),
    "validation_patience": (1, True, True, True),
    "verbose_frequency": (1, True, True, False),
    "checkpoint_frequency": (1, True, True, False),
    "plot_frequency": (0.0, True, False, False),
    "num_workers": (0, True, True, False),
}


def _fail(option: str, value: Any, allowed: str, hint: str = "") -> OptionError:
    message = f"TrainingOptions: `{option}` must be {allowed}. Received: {option}={value!r}."
    return OptionError(f"{message} {hint}".rstrip())


@dataclass
class TrainingOptions:
    """Settings for :func:`train` (MATLAB's ``trainingOptions``), checked when built.

    Learn rates default per solver as in MATLAB (sgdm 0.01, adam/adamw/rmsprop 0.001, lbfgs 1).
    Every option is documented in docs/training.md. A bad value raises an ``OptionError``
    naming the option, the value and what is allowed.

    Example:
        >>> options = TrainingOptions(solver="adam", max_epochs=5, mini_batch_size=32)
        >>> options.learn_rate
        0.001
        >>> try:
        ...     TrainingOptions(shuffle="sometimes")
        ... except ValueError as err:
        ...     print(str(err)[:60])
        TrainingOptions: `shuffle` must be one of 'once', 'every-epo
    """

    solver: str = "sgdm"
    initial_learn_rate: float | None = None
    learn_rate_schedule: Any = "none"
    learn_rate_drop_factor: float = 0.1
    learn_rate_drop_period: float = 10
    momentum: float = 0.9
    gradient_decay_factor: float = 0.9
    squared_gradient_decay_factor: float | None = None
    epsilon: float = 1e-8
    l2_regularization: float = 1e-4
    gradient_threshold: float = math.inf
    gradient_threshold_method: str = "l2norm"
    max_epochs: int = 30
    mini_batch_size: int = 128
    shuffle: str = "once"
    validation_data: Any = None
    validation_frequency: int = 50
    validation_patience: float = math.inf
    output_network: str = "auto"
    metrics: Sequence[str | Callable[..., Any]] = field(default_factory=tuple)
    verbose: bool = True
    verbose_frequency: int = 50
    plots: str = "none"
    plot_path: str | os.PathLike | None = None
    plot_frequency: float = 10.0
    checkpoint_path: str | os.PathLike | None = None
    checkpoint_frequency: int = 1
    checkpoint_frequency_unit: str = "epoch"
    resume_from: str | os.PathLike | None = None
    execution_environment: str = "auto"
    strategy: str = "auto"
    precision: str = "auto"
    compile: bool | str = "auto"
    seed: int | None = None
    num_workers: int | str = "auto"
    memory_format: str = "auto"
    cudnn_benchmark: bool | str = "auto"
    tf32: bool | str = "auto"
    pin_memory: bool | str = "auto"
    adversarial: Any = None
    callbacks: Sequence[Any] = field(default_factory=tuple)
    batch_normalization_statistics: str = "auto"
    reset_input_normalization: bool = True
    sequence_length: str | int | None = None
    sequence_padding_direction: str | None = None
    sequence_padding_value: float | None = None

    def __post_init__(self) -> None:
        for option, allowed in _CHOICES.items():
            value = getattr(self, option)
            if value not in allowed:
                raise _fail(option, value, "one of " + ", ".join(repr(a) for a in allowed))
        for option, rule in _NUMBERS.items():
            if (
                option == "num_workers"
                and isinstance(self.num_workers, str)
                and (self.num_workers == "auto")
            ):
                continue
            self._check_number(option, *rule)
        for option in _SWITCHES:
            value = getattr(self, option)
            if not isinstance(value, bool) and not (isinstance(value, str) and value == "auto"):
                raise _fail(option, value, "'auto', True or False")
        check_sequence_options(
            "TrainingOptions", self.sequence_length, self.sequence_padding_direction,
            self.sequence_padding_value,
        )  # fmt: skip
        for option in ("verbose", "reset_input_normalization"):
            if not isinstance(getattr(self, option), bool):
                raise _fail(option, getattr(self, option), "True or False")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise _fail("seed", self.seed, "an int or None")
        if self.adversarial is not None and not callable(self.adversarial):
            raise _fail(
                "adversarial",
                self.adversarial,
                "None or a callable (net, inputs, targets) -> inputs, e.g. "
                "deeptoolbox.robustness.AdversarialTraining(method='pgd', epsilon=0.03)",
            )
        self.callbacks = check_callbacks(self.callbacks)
        if self.solver != "lbfgs" and self.momentum >= 1:
            raise _fail("momentum", self.momentum, "a number in [0, 1)")
        if self.strategy == "fsdp" and self.solver == "lbfgs":
            raise OptionError(
                "TrainingOptions: `solver`='lbfgs' cannot run with `strategy`='fsdp': L-BFGS "
                "keeps a history of whole flattened gradients and decides its line search on "
                "them, which sharded parameters do not give. Use solver='lbfgs' with "
                "strategy='ddp' (or 'auto'), or another solver ('sgdm', 'adam', 'adamw', "
                "'rmsprop') with strategy='fsdp'. Received: solver='lbfgs', strategy='fsdp'."
            )
        self._check_metrics()
        resolve_schedule(self.learn_rate_schedule, self.max_epochs)  # validates the schedule
        if self.output_network == "best-validation" and self.validation_data is None:
            raise _fail(
                "output_network", self.output_network, "'auto' or 'last-iteration'",
                "'best-validation' needs `validation_data`.",
            )  # fmt: skip

    def _check_number(self, option: str, low: float, inclusive: bool, integer: bool, inf: bool):
        value = getattr(self, option)
        if value is None and option in ("initial_learn_rate", "squared_gradient_decay_factor"):
            return
        kind = "an int" if integer else "a number"
        if option == "num_workers":
            kind = "'auto' or an int"
        bound = f">= {low}" if inclusive else f"> {low}"
        allowed = f"{kind} {bound}" + (" (or math.inf)" if inf else "")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(option, value, allowed)
        if value == math.inf and inf:
            return
        if integer and not isinstance(value, int):
            raise _fail(option, value, allowed)
        if not math.isfinite(value) or value < low or (value == low and not inclusive):
            raise _fail(option, value, allowed)

    def _check_metrics(self) -> None:
        metrics = self.metrics
        if isinstance(metrics, str) or callable(metrics):
            metrics = (metrics,)
        if not isinstance(metrics, Sequence):
            raise _fail("metrics", self.metrics, "a list of metric names or callables")
        for metric in metrics:
            if not callable(metric) and metric not in METRIC_NAMES:
                raise _fail(
                    "metrics", metric, "a callable or one of " + ", ".join(map(repr, METRIC_NAMES))
                )
        self.metrics = tuple(metrics)

    @property
    def uses_population_statistics(self) -> bool:
        """True when batch-norm statistics are recomputed over the training data at the end:
        "population", or "auto" when the last iteration's network is returned (MATLAB)."""
        if self.batch_normalization_statistics != "auto":
            return self.batch_normalization_statistics == "population"
        return self.output_network == "last-iteration" or (
            self.output_network == "auto" and self.validation_data is None
        )

    @property
    def learn_rate(self) -> float:
        """The initial learn rate in use: the option, or the solver's default."""
        if self.initial_learn_rate is not None:
            return float(self.initial_learn_rate)
        return DEFAULT_LEARN_RATES[self.solver]

    def to_dict(self) -> dict[str, Any]:
        """The options as a plain dict (validation data and callables shown by type name)."""
        plain: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, str | int | float | bool | type(None)):
                plain[item.name] = value
            elif item.name == "callbacks":
                plain[item.name] = [callback_name(c) for c in value]
            else:
                plain[item.name] = (
                    repr(value) if not hasattr(value, "__len__") else type(value).__name__
                )
        return plain


def _snake_case(name: str) -> str:
    """MATLAB's option spelling in snake_case: ``InitialLearnRate`` -> ``initial_learn_rate``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _suggestion(name: str, known: list[str]) -> str | None:
    snake = _snake_case(name)
    if snake in known:
        return snake
    squashed = {k.replace("_", ""): k for k in known}
    if snake.replace("_", "") in squashed:
        return squashed[snake.replace("_", "")]
    close = difflib.get_close_matches(snake, known, n=1, cutoff=0.6)
    return close[0] if close else None


def _unknown_option(cls: type, name: str) -> OptionError:
    known = [f.name for f in fields(cls)]
    suggestion = _suggestion(name, known)
    hint = f" Did you mean `{suggestion}`?" if suggestion else ""
    return OptionError(
        f"{cls.__name__}: unknown option `{name}`.{hint} Options are snake_case versions of "
        f"MATLAB's trainingOptions names (InitialLearnRate -> initial_learn_rate); all are "
        "listed in docs/training.md."
    )


def _with_option_suggestions(cls: type) -> type:
    """Answer unknown keyword options (e.g. MATLAB's ``MaxEpochs=``) with an OptionError that
    suggests the right name, instead of dataclass's bare TypeError."""
    generated = cls.__init__

    @functools.wraps(generated)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        known = {f.name for f in fields(cls)}
        for name in kwargs:
            if name not in known:
                raise _unknown_option(cls, name)
        generated(self, *args, **kwargs)

    cls.__init__ = __init__
    return cls


TrainingOptions = _with_option_suggestions(TrainingOptions)
