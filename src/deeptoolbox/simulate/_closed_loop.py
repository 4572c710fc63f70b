"""train_closed_loop(): train network blocks by backpropagation through the simulation."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from deeptoolbox.errors import OptionError, TrainingError
from deeptoolbox.simulate._block import Block
from deeptoolbox.simulate._diagram import Diagram
from deeptoolbox.simulate._result import SimulationResult
from deeptoolbox.simulate._simulate import SimulationState, Simulator
from deeptoolbox.training import TrainingHistory, TrainingOptions, TrainingResult
from deeptoolbox.training._devices import place
from deeptoolbox.training._optim import clip_gradients, make_optimizer
from deeptoolbox.training._progress import ConsoleDisplay
from deeptoolbox.training._schedules import resolve_schedule

__all__ = ["train_closed_loop"]


def _find(diagram: Diagram, path: str) -> Block:
    block: Block = diagram
    for part in path.split("."):
        if not isinstance(block, Diagram):
            raise OptionError(f"train_closed_loop: '{path}': '{part}' is inside a block that "
                              "is not a subsystem.")  # fmt: skip
        block = block.block(part)
    return block


def _trainable(diagram: Diagram, names: Sequence[str]) -> nn.ModuleList:
    if isinstance(names, str) or not names:
        raise OptionError(
            "train_closed_loop: `trainable` must be a non-empty list of block names, e.g. "
            f"trainable=['controller']. Received: {names!r}."
        )
    blocks = nn.ModuleList(_find(diagram, name) for name in names)
    if not any(p.requires_grad for p in blocks.parameters()):
        raise OptionError(f"train_closed_loop: the blocks {list(names)} have no trainable "
                          "parameters (wrap a network in NetworkBlock).")  # fmt: skip
    return blocks


def _detach(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, dict):
        return {k: _detach(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_detach(v) for v in value)
    return value


def _detached(state: SimulationState) -> SimulationState:
    return SimulationState(_detach(state.continuous), _detach(state.discrete), _detach(state.held))


def _chunks(steps: int, truncation: int | None) -> list[tuple[int, int]]:
    """Major steps per backward pass: [first, last) pairs; the last chunk logs step ``steps``."""
    size = steps + 1 if truncation is None else truncation
    return [(a, min(a + size, steps + 1)) for a in range(0, steps + 1, size)]


def _check(cost: Any, truncation: Any, options: Any) -> TrainingOptions:
    if not callable(cost):
        raise OptionError("train_closed_loop: `cost` must be a function of the simulation "
                          "result returning a scalar tensor, e.g. lambda r: "
                          "(r['plant/out'] - 1).pow(2).mean().")  # fmt: skip
    if truncation is not None and (
        isinstance(truncation, bool) or not isinstance(truncation, int) or truncation < 1
    ):
        raise OptionError(f"train_closed_loop: `truncation` must be None or an int >= 1 (steps"
                          f" per backward pass). Received: truncation={truncation!r}.")  # fmt: skip
    options = options or TrainingOptions(solver="adam")
    if not isinstance(options, TrainingOptions):
        raise OptionError(f"train_closed_loop: `options` must be TrainingOptions. Received: "
                          f"{type(options).__name__}.")  # fmt: skip
    if options.execution_environment in ("multi-gpu", "parallel"):
        raise OptionError("train_closed_loop: execution_environment must be 'auto', 'cpu' or "
                          f"'gpu'. Received: {options.execution_environment!r}.")  # fmt: skip
    return options


class _Loop:
    def __init__(self, simulator: Simulator, blocks: nn.ModuleList, names: Sequence[str],
                 cost: Callable, options: TrainingOptions,
                 truncation: int | None) -> None:  # fmt: skip
        self.simulator, self.cost, self.options = simulator, cost, options
        self.optimizer = make_optimizer(blocks, options)
        self.schedule = resolve_schedule(
            options.learn_rate_schedule, options.max_epochs, options.learn_rate_drop_factor,
            options.learn_rate_drop_period,
        )  # fmt: skip
        self.chunks = _chunks(simulator.steps, truncation)
        self.history, self.iteration, self.start = TrainingHistory(), 0, time.perf_counter()
        self.blocks, self.names, self.reached = blocks, names, False

    def _set_learn_rate(self, epoch: int, index: int) -> float:
        progress = epoch - 1 + index / len(self.chunks)
        rate = self.options.learn_rate * self.schedule(progress)
        for group in self.optimizer.param_groups:
            group["lr"] = rate * group.get("lr_factor", 1.0)
        return rate

    def chunk_cost(self, state: SimulationState, first: int, last: int) -> torch.Tensor:
        logs: dict[str, list] = {}
        for k in range(first, last):
            self.simulator.record(self.simulator.step(k, state), logs)
        value = self.cost(self.simulator.result(logs, first))
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            found = (f"a tensor of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor)
                     else type(value).__name__)  # fmt: skip
            raise OptionError(f"train_closed_loop: `cost` must return a scalar tensor (reduce "
                              f"it, e.g. with .mean()). Received: {found}.")  # fmt: skip
        return value.reshape(())

    def epoch(self, epoch: int) -> list[dict]:
        state = self.simulator.start()
        try:
            records = self._chunks(epoch, state)
        finally:
            self.simulator.finish(state)
        if not self.reached:
            raise OptionError(
                f"train_closed_loop: the cost does not depend on the trained blocks "
                f"{list(self.names)}: no gradient reached their parameters in epoch {epoch}. "
                "Use signals downstream of them in the cost (e.g. the plant output they drive), "
                "and check that the blocks are connected."
            )
        return records

    def _chunks(self, epoch: int, state: SimulationState) -> list[dict]:
        records = []
        for index, (first, last) in enumerate(self.chunks):
            rate = self._set_learn_rate(epoch, index)
            value = self.chunk_cost(state, first, last)
            loss = float(value.detach())
            self.iteration += 1
            if not math.isfinite(loss):
                raise TrainingError(
                    f"train_closed_loop: the cost became {loss} at iteration {self.iteration}. "
                    "Hint: lower the learn rate, clip gradients (gradient_threshold=1), or "
                    "bound the controller's output with a Saturation block."
                )
            self.optimizer.zero_grad(set_to_none=True)
            if value.requires_grad:
                value.backward()
                self.reached = self.reached or any(
                    p.grad is not None for p in self.blocks.parameters()
                )
            clip_gradients(self.optimizer, self.options.gradient_threshold,
                           self.options.gradient_threshold_method)  # fmt: skip
            self.optimizer.step()
            detached = _detached(state)
            state.continuous, state.discrete, state.held = (
                detached.continuous, detached.discrete, detached.held)  # fmt: skip
            records.append({"iteration": self.iteration, "epoch": epoch, "loss": loss,
                            "learn_rate": rate, "time": time.perf_counter() - self.start})  # fmt: skip
        return records


def train_closed_loop(
    diagram: Diagram,
    trainable: Sequence[str],
    cost: Callable[[SimulationResult], torch.Tensor],
    t_end: float,
    *,
    dt: float = 0.01,
    solver: str = "euler",
    batch: int = 1,
    options: TrainingOptions | None = None,
    truncation: int | None = None,
    log: Sequence[str] | None = None,
    dtype: torch.dtype | None = None,
) -> TrainingResult:
    """Train the blocks named in ``trainable`` (network blocks, or any block with
    parameters) by backpropagation through the simulation of ``diagram``.

    Each epoch simulates ``batch`` cases from 0 to ``t_end`` and minimizes ``cost(result)``
    (a scalar from the :class:`SimulationResult`); with ``truncation=K`` (truncated
    backpropagation through time) each K steps are one iteration: the cost of those steps is
    minimized and the simulation goes on from the reached, detached state. ``options``
    (``TrainingOptions``) gives the solver, learn rate and schedule, gradient clipping,
    ``max_epochs``, ``verbose``, ``seed``; the progress table and the result are those of
    :func:`deeptoolbox.training.train` (``result.network`` is the trained block's network
    when one block is trained, else the diagram).

    Raises:
        DiagramError: an unknown block name in ``trainable``.
        OptionError: blocks without parameters, a bad option, a cost that is not a scalar
            tensor, or one that does not depend on the trained blocks over a whole epoch.
        TrainingError: the cost became NaN or infinite.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> from deeptoolbox.simulate import Diagram, Integrator, NetworkBlock
        >>> from deeptoolbox.training import TrainingOptions
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> ctrl = NetworkBlock(Network([L.FeatureInput(1), L.Dense(1)]))
        >>> d = Diagram().add("x", Integrator(2.0)).add("ctrl", ctrl)
        >>> d = d.connect("x", "ctrl").connect("ctrl", "x")
        >>> options = TrainingOptions(solver="adam", initial_learn_rate=0.1, max_epochs=20,
        ...                           verbose=False)
        >>> result = train_closed_loop(d, ["ctrl"], lambda r: r["x/out"].pow(2).mean(), 2.0,
        ...                            dt=0.1, options=options)
        >>> losses = result.history.column("loss")
        >>> losses[-1] < 0.3 * losses[0]
        True
    """
    options = _check(cost, truncation, options)
    blocks = _trainable(diagram, trainable)
    if options.seed is not None:
        torch.manual_seed(options.seed)
    device = place(options.execution_environment, "32").device
    diagram.to(device)
    simulator = Simulator(diagram, t_end, dt, solver=solver, batch=batch, dtype=dtype,
                          device=device, log=log)  # fmt: skip
    loop = _Loop(simulator, blocks, trainable, cost, options, truncation)
    display = ConsoleDisplay(options.verbose, ConsoleDisplay.training_columns([], False),
                             options.max_epochs * len(loop.chunks))  # fmt: skip
    display.start(str(device), "32")
    diagram.train()
    for epoch in range(1, options.max_epochs + 1):
        records = loop.epoch(epoch)
        for record in records:
            loop.history.iterations.append(record)
            display.advance(record["iteration"])
            if record["iteration"] == 1 or record["iteration"] % options.verbose_frequency == 0:
                display.row(record, record["time"])
        loop.history.epochs.append({"epoch": epoch, "iteration": loop.iteration,
                                    "loss": sum(r["loss"] for r in records) / len(records)})  # fmt: skip
    diagram.eval()
    display.finish("max epochs completed")
    nets = [getattr(b, "net", None) for b in blocks]
    network = nets[0] if len(nets) == 1 and nets[0] is not None else diagram
    result = TrainingResult(network, loop.history, stop_reason="max epochs completed",
                            device=str(device), returned_iteration=loop.iteration)  # fmt: skip
    if options.plots != "none":
        result.plot(options.plot_path or "training-progress.png")
    return result
