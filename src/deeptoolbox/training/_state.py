"""LoopState: where a train() run stands, as one resumable unit.

Everything a run needs to continue exactly, apart from the weights, the optimizer and the
gradient scaler: the counters, the best validation result, the patience counter, the random
generators and the history. Checkpoints write it as one entry (``state_dict()``) and read it
back with ``load_state_dict()``; callbacks receive the live object.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

from deeptoolbox.errors import OptionError
from deeptoolbox.training._progress import TrainingHistory

__all__ = ["LoopState", "rng_state", "set_rng_state"]


def rng_state() -> dict[str, Any]:
    """Every random generator's state as plain values (safe for weights_only loading).

    Example:
        >>> state = rng_state()
        >>> first = torch.rand(2)
        >>> set_rng_state(state)
        >>> bool(torch.equal(first, torch.rand(2)))
        True
    """
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class LoopState:
    """The counters, best result, patience, random generators and history of a train() run.

    ``epoch`` counts completed epochs, ``iteration`` completed iterations and ``position``
    the iterations done in the epoch in progress. ``best_*`` describe the lowest validation
    loss so far (``best_validation`` its loss and metrics), ``patience`` the validations
    since it, ``validation`` the latest validation's values and ``validated_iteration``
    when it ran. ``elapsed`` is the training time in seconds, ``seed`` the run's seed and
    ``epoch_rng`` the generators' states when the epoch in progress began (to replay its
    data order on resume). Callbacks get the live object: read it, do not change it.

    ``state_dict()`` also captures the global random generators (torch, NumPy, ``random``,
    CUDA) as they are at that moment; ``load_state_dict()`` restores them.

    Example:
        >>> state = LoopState(epoch=1, iteration=4, seed=7)
        >>> state.history.iterations.append({"iteration": 4, "loss": 0.5})
        >>> copy = LoopState()
        >>> copy.load_state_dict(state.state_dict())
        >>> copy.iteration, copy.seed, copy.history.column("loss")
        (4, 7, [0.5])
    """

    epoch: int = 0
    iteration: int = 0
    position: int = 0
    seed: int = 0
    elapsed: float = 0.0
    best_loss: float = math.inf
    best_epoch: int | None = None
    best_iteration: int | None = None
    best_validation: dict[str, float] = field(default_factory=dict)
    patience: int = 0
    validation: dict[str, float] = field(default_factory=dict)
    validated_iteration: int | None = None
    epoch_rng: dict[str, Any] | None = None
    history: TrainingHistory = field(default_factory=TrainingHistory)

    def track_validation(self, values: dict[str, float]) -> bool:
        """Record a validation result; True when its loss is the best so far.

        Example:
            >>> state = LoopState(iteration=3)
            >>> state.track_validation({"loss": 0.4}), state.track_validation({"loss": 0.5})
            (True, False)
            >>> state.best_iteration, state.patience
            (3, 1)
        """
        self.validation = dict(values)
        self.validated_iteration = self.iteration
        if values["loss"] < self.best_loss:
            self.best_loss, self.patience = values["loss"], 0
            self.best_epoch, self.best_iteration = self.epoch + 1, self.iteration
            self.best_validation = dict(values)
            return True
        self.patience += 1
        return False

    def state_dict(self) -> dict[str, Any]:
        """Plain values (numbers, strings, lists, dicts, CPU tensors) for a checkpoint."""
        plain = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "history"}
        plain["best_validation"] = dict(self.best_validation)
        plain["validation"] = dict(self.validation)
        plain["history"] = {
            "iterations": [dict(r) for r in self.history.iterations],
            "epochs": [dict(r) for r in self.history.epochs],
        }
        plain["rng"] = rng_state()
        return plain

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take the values of :meth:`state_dict` and restore the random generators."""
        names = [f.name for f in fields(self)]
        missing = [name for name in [*names, "rng"] if name not in state]
        if missing:
            raise OptionError(
                f"LoopState.load_state_dict: the state lacks {missing}. Pass what "
                "LoopState.state_dict() returned (or a checkpoint's loop state)."
            )
        for name in names:
            if name != "history":
                setattr(self, name, state[name])
        self.best_validation = dict(state["best_validation"])
        self.validation = dict(state["validation"])
        history = state["history"]
        self.history = TrainingHistory(history["iterations"], history["epochs"])
        set_rng_state(state["rng"])
