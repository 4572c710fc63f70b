"""train(): MATLAB's trainnet, on the engine in ``_engine.py``."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from deeptoolbox.errors import NonFiniteLoss, OptionError
from deeptoolbox.training._engine import Engine
from deeptoolbox.training._losses import Loss
from deeptoolbox.training._options import TrainingOptions
from deeptoolbox.training._result import TrainingResult
from deeptoolbox.training._user_optim import check_user_optimizer

__all__ = ["train"]


def _check_arguments(net: Any, options: Any) -> TrainingOptions:
    if not isinstance(net, torch.nn.Module):
        raise OptionError(
            f"train: `net` must be a deeptoolbox Network or a torch.nn.Module. Received: "
            f"{type(net).__name__}."
        )
    if options is None:
        return TrainingOptions()
    if not isinstance(options, TrainingOptions):
        raise OptionError(
            "train: `options` must be a deeptoolbox.TrainingOptions. Received: "
            f"{type(options).__name__}. Example: TrainingOptions(solver='adam', max_epochs=10)."
        )
    return options


@contextlib.contextmanager
def _scoped_random_state(device: torch.device) -> Iterator[None]:
    """Seed and use the global generators inside; give the caller's states back afterwards."""
    python, numpy = random.getstate(), np.random.get_state()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy)


def train(
    net: torch.nn.Module,
    data: Any,
    loss: str | Loss | Any = "crossentropy",
    options: TrainingOptions | None = None,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
) -> TrainingResult:
    """Train ``net`` on ``data`` and return a :class:`TrainingResult` (MATLAB's ``trainnet``).

    ``data`` is ``(inputs, targets)`` arrays (``(input_1, ..., input_k, targets)`` for a
    network with k inputs), a list of variable-length (T, C) sequences with their targets
    ``(sequences, targets)``, a torch ``Dataset`` whose items are ``(input..., target)`` (a
    datastore), a ``DataLoader``, or any iterable of batches (tuples, or dicts with
    ``inputs``, ``targets`` and ``mask``). ``loss`` is "crossentropy" (class indices or
    one-hot targets), "binary-crossentropy", "mse", "mae", "huber", a :func:`loss_function`
    (class weights) or a callable ``loss(outputs, targets)``. A network ending in Softmax is
    trained on its logits. Class-index targets of data with class names are matched to
    ``net.classes`` by name; a Network without classes takes the data's.

    ``optimizer`` (a torch optimizer over ``net``'s parameters) replaces the one built from
    the options, and ``scheduler`` (a torch LR scheduler on it, or ``{"scheduler": s,
    "interval": "epoch" | "iteration"}``) steps after every epoch (default) or iteration.
    The global random generators are left as they were; ``options.seed`` seeds the run.
    The network is trained in place and returned in eval mode, on the training device.
    ``options.callbacks`` are called as training goes (MATLAB's ``OutputFcn``; see
    :mod:`deeptoolbox.training._callbacks` and docs/training.md).

    Raises:
        OptionError: bad arguments or options. TrainingError: the loss became NaN or Inf
        (``err.result`` holds the last network checked good and the history before it),
        or, with several processes, another process failed (``err.failed_process`` is its
        rank; that process raises its own error; see docs/training.md).

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> torch.manual_seed(0) and None
        >>> x = torch.randn(256, 2); y = (x[:, 0] > 0).long()
        >>> net = Network([L.FeatureInput(2), L.Dense(2), L.Softmax()])
        >>> options = TrainingOptions(solver="adam", initial_learn_rate=0.05, max_epochs=10,
        ...                           verbose=False, metrics=["accuracy"], seed=0)
        >>> result = train(net, (x, y), "crossentropy", options)
        >>> result.history.epochs[-1]["loss"] < result.history.epochs[0]["loss"]
        True
    """
    options = _check_arguments(net, options)
    user_scheduler = check_user_optimizer(net, options, optimizer, scheduler)
    engine = Engine(net, data, loss, options, optimizer, user_scheduler)
    together: BaseException | None = None  # raised by every process at the same point
    failed = False
    try:
        with _scoped_random_state(engine.device), engine.session():
            engine.setup()
            try:
                reason = engine.run()
            except NonFiniteLoss as bad:
                together = engine.fail(bad)
                engine.callbacks.call("on_train_end", together.result)
                raise together from None
            returned = engine.finalize()
            result = engine.result(reason, returned)
            engine.callbacks.call("on_train_end", result)
            return result
    except BaseException as err:  # callbacks hear of the failure
        # several processes: an error of this process alone is recorded for the others and
        # raised as it is; one caused by another process's failure becomes a TrainingError
        failed = err is not together
        raised = engine.process_failure(err) if failed else err
        with contextlib.suppress(Exception):
            engine.callbacks.call("on_train_error", raised)
        if raised is err:
            raise
        raise raised from err
    finally:
        engine.close(failed)
