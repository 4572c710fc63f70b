"""Callbacks: how train() reports progress and how code joins in (MATLAB's ``OutputFcn``).

A callback is any object with one or more of these methods (all optional):

- ``on_train_start(state)``: after set-up (and resume), before the first iteration.
- ``on_batch_start(state, inputs, targets)``: before each forward pass; may return a
  replacement list of inputs (one per network input), or None to keep them.
- ``on_iteration_end(state, info)``: after each iteration.
- ``on_validation_end(state, info)``: after each validation.
- ``on_epoch_end(state, info)``: after each complete epoch.
- ``on_train_end(result)``: with the :class:`TrainingResult` (also when a NaN/Inf loss
  stopped training: the result the TrainingError carries).
- ``on_train_error(error)``: with the exception that is about to leave train() (a NaN/Inf
  loss's TrainingError, after ``on_train_end``; an error in the data, a layer or a callback).

``state`` is the live :class:`LoopState`; ``info`` a dict of plain JSON values. Returning
True from ``on_iteration_end``, ``on_validation_end`` or ``on_epoch_end`` stops training
cleanly. The progress table, the progress plot, ``TrainingProgressMonitor`` and the
adversarial-training option are callbacks too. :class:`Callback` is an optional base class
that documents the hooks; any object with one of the methods works.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deeptoolbox.errors import OptionError

__all__ = [
    "HOOKS",
    "STOPPING_HOOKS",
    "Callback",
    "Callbacks",
    "callback_name",
    "check_callbacks",
    "hook_method",
]

HOOKS = (
    "on_train_start",
    "on_batch_start",
    "on_iteration_end",
    "on_validation_end",
    "on_epoch_end",
    "on_train_end",
    "on_train_error",
)
STOPPING_HOOKS = ("on_iteration_end", "on_validation_end", "on_epoch_end")


class Callback:
    """Base class for train() callbacks (MATLAB's ``OutputFcn``); subclassing is optional.

    Pass callbacks as ``TrainingOptions(callbacks=[...])``. train() calls the hooks a
    callback overrides (the ones here do nothing, and are not called), in the order of the
    list, after the built-in ones (adversarial inputs, progress table, progress plot):

    - ``on_train_start(state)``: after set-up (and resume), before the first iteration.
    - ``on_batch_start(state, inputs, targets)``: before each forward pass; returns a list
      of replacement inputs (one per network input), or None to keep them.
    - ``on_iteration_end(state, info)``: after each iteration (``info["logged"]`` tells
      whether its loss was read: every ``verbose_frequency`` iterations, at validations and
      at the last iteration; otherwise ``info["loss"]`` is None).
    - ``on_validation_end(state, info)``: after each validation, before that iteration's
      ``on_iteration_end``; ``info["validation"]`` holds the loss and metrics.
    - ``on_epoch_end(state, info)``: after each complete epoch (mean loss of the epoch).
    - ``on_train_end(result)``: with the :class:`TrainingResult`; also when a NaN/Inf loss
      stopped training (the result the TrainingError carries).
    - ``on_train_error(error)``: with the exception about to leave train() (after
      ``on_train_end`` for a NaN/Inf loss); an exception in this hook is ignored, so the
      training error is the one raised.

    ``state`` is the live :class:`LoopState` (read it, do not change it); ``info`` a dict of
    plain JSON values: ``iteration``, ``epoch``, ``iteration_in_epoch``,
    ``iterations_per_epoch``, ``total_iterations``, ``max_epochs``, ``logged``, ``loss``,
    ``learn_rate``, ``metrics``, ``validation``, ``best``, ``elapsed``, ``remaining``,
    ``device``, ``precision``. Returning True from ``on_iteration_end``,
    ``on_validation_end`` or ``on_epoch_end`` stops training cleanly (``stop_reason``
    names the callback). An exception in a hook stops training and carries a note naming
    the callback and the hook. Messages name a callback by its ``callback_name`` attribute
    or its class name.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> from deeptoolbox.training import TrainingOptions, train
        >>> class StopBelow(Callback):
        ...     def on_iteration_end(self, state, info):
        ...         return info["logged"] and info["loss"] < 0.5
        >>> x = torch.randn(64, 2); y = (x[:, 0] > 0).long()
        >>> net = Network([L.FeatureInput(2), L.Dense(2), L.Softmax()])
        >>> options = TrainingOptions(solver="adam", initial_learn_rate=0.1, max_epochs=50,
        ...                           verbose=False, verbose_frequency=1, seed=0,
        ...                           callbacks=[StopBelow()])
        >>> train(net, (x, y), "crossentropy", options).stop_reason
        'stopped by callback StopBelow (on_iteration_end)'
    """

    def on_train_start(self, state: Any) -> None:
        """After set-up, before the first iteration."""

    def on_batch_start(self, state: Any, inputs: list[Any], targets: Any) -> list[Any] | None:
        """Before each forward pass: replacement inputs, or None to keep them."""

    def on_iteration_end(self, state: Any, info: dict[str, Any]) -> bool | None:
        """After each iteration; True stops training."""

    def on_validation_end(self, state: Any, info: dict[str, Any]) -> bool | None:
        """After each validation; True stops training."""

    def on_epoch_end(self, state: Any, info: dict[str, Any]) -> bool | None:
        """After each complete epoch; True stops training."""

    def on_train_end(self, result: Any) -> None:
        """With the TrainingResult, at the end."""

    def on_train_error(self, error: BaseException) -> None:
        """With the exception that ends train() (training failed)."""


def hook_method(callback: Any, hook: str) -> Any:
    """``callback``'s bound ``hook`` method, or None when it has none (the no-op methods of
    :class:`Callback` count as none).

    Example:
        >>> class Quiet(Callback):
        ...     def on_epoch_end(self, state, info):
        ...         return None
        >>> hook_method(Quiet(), "on_epoch_end") is not None, hook_method(Quiet(), "on_train_end")
        (True, None)
    """
    method = getattr(callback, hook, None)
    if not callable(method) or getattr(method, "__func__", None) is getattr(Callback, hook):
        return None
    return method


def callback_name(callback: Any) -> str:
    """How messages name a callback: its ``callback_name`` attribute, else its class name.

    Example:
        >>> class StopEarly:
        ...     def on_iteration_end(self, state, info):
        ...         return False
        >>> callback_name(StopEarly())
        'StopEarly'
    """
    name = getattr(callback, "callback_name", None)
    return name if isinstance(name, str) else type(callback).__name__


def check_callbacks(value: Any) -> tuple:
    """``value`` as a tuple of callbacks, each with at least one hook; else an OptionError.

    Example:
        >>> check_callbacks([])
        ()
        >>> try:
        ...     check_callbacks([print])
        ... except ValueError as err:
        ...     print(str(err)[:61])
        TrainingOptions: `callbacks` must be objects with one or more
    """
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise OptionError(
            f"TrainingOptions: `callbacks` must be a list of callback objects. Received: "
            f"callbacks={value!r}."
        )
    for callback in value:
        if not any(hook_method(callback, hook) is not None for hook in HOOKS):
            raise OptionError(
                f"TrainingOptions: `callbacks` must be objects with one or more of the methods "
                f"{', '.join(HOOKS)}. Received: {callback!r} ({type(callback).__name__}), which "
                "has none. Hint: wrap a function in a class with an on_iteration_end(self, "
                "state, info) method, or subclass deeptoolbox.training.Callback."
            )
    return tuple(value)


class Callbacks:
    """The callbacks of one train() run, called in order; built-in ones first.

    Example:
        >>> class Stop:
        ...     def on_iteration_end(self, state, info):
        ...         return info["iteration"] >= 2
        >>> callbacks = Callbacks([Stop()])
        >>> callbacks.call("on_iteration_end", None, {"iteration": 1}), callbacks.call(
        ...     "on_iteration_end", None, {"iteration": 2})
        (None, 'Stop (on_iteration_end)')
    """

    def __init__(self, callbacks: Sequence[Any]) -> None:
        self.callbacks = list(callbacks)
        self.bound = {
            hook: [(c, m) for c in callbacks if (m := hook_method(c, hook)) is not None]
            for hook in HOOKS
        }

    def has(self, hook: str) -> bool:
        """True when some callback has ``hook``."""
        return bool(self.bound[hook])

    def call(self, hook: str, *args: Any) -> str | None:
        """Call ``hook`` on every callback that has it; returns who asked to stop, or None.

        An exception in a callback propagates with a note naming the callback and the hook.
        """
        stop = None
        for callback, method in self.bound[hook]:
            answer = _guarded(callback, hook, method, *args)
            if answer is True and stop is None and hook in STOPPING_HOOKS:
                stop = f"{callback_name(callback)} ({hook})"
        return stop

    def batch_inputs(self, state: Any, inputs: list[Any], targets: Any) -> list[Any]:
        """The inputs after every ``on_batch_start`` (each may replace them)."""
        for callback, method in self.bound["on_batch_start"]:
            replaced = _guarded(callback, "on_batch_start", method, state, inputs, targets)
            if replaced is not None:
                inputs = _checked_replacement(callback, replaced, len(inputs))
        return inputs


def _checked_replacement(callback: Any, replaced: Any, count: int) -> list[Any]:
    if isinstance(replaced, list | tuple) and len(replaced) == count:
        return list(replaced)
    found = (
        f"a {type(replaced).__name__} of {len(replaced)} items"
        if isinstance(replaced, list | tuple)
        else f"a {type(replaced).__name__}"
    )
    raise OptionError(
        f"train(): the callback {callback_name(callback)}.on_batch_start must return None or a "
        f"list of {count} replacement input(s), one per network input. Received {found}. "
        "Hint: for one input, return [new_inputs] (a list), not the tensor itself."
    )


def _guarded(callback: Any, hook: str, method: Any, *args: Any) -> Any:
    try:
        return method(*args)
    except Exception as err:
        err.add_note(f"(raised in the train() callback {callback_name(callback)}.{hook})")
        raise


class AdversarialInputs:
    """``TrainingOptions(adversarial=...)`` as a callback: replaces the first input of each
    batch by ``attack(net, inputs, targets)`` before the forward pass.

    Example:
        >>> import torch
        >>> zeros = AdversarialInputs(lambda net, x, y: torch.zeros_like(x), net=None)
        >>> zeros.on_batch_start(None, [torch.ones(2, 3)], torch.tensor([0, 1]))[0].sum().item()
        0.0
    """

    callback_name = "TrainingOptions.adversarial"

    def __init__(self, attack: Any, net: Any) -> None:
        self.attack, self.net = attack, net

    def on_batch_start(self, state: Any, inputs: list[Any], targets: Any) -> list[Any] | None:
        if targets is None:
            return None
        return [self.attack(self.net, inputs[0], targets), *inputs[1:]]
