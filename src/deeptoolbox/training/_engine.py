"""The training engine behind train(): explicit state, one iteration-end step, callbacks.

All resumable progress lives in one :class:`LoopState`; the engine's other fields are fixed
in ``__init__`` (configuration) or filled once by ``setup()`` (optimizer, wrapped forward).

The hot path (one iteration) does: move the batch, set the learn rate, forward under
autocast, loss, backward, optional clipping, optimizer step, and keeps the loss on the
device. Nothing reads a value back to the host there: losses are read, and checked for
NaN/Inf, when they are flushed (``flush``: logged iterations, validations, checkpoints,
epoch ends), one transfer per flush. Everything that happens at the end of an iteration —
logging, validation, callbacks (table, plot, monitors), checkpoints, stop decisions — happens
in ``iteration_end``.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeptoolbox.data._reading import (
    SequencePadding,
    as_sequence_data,
    padding_mask,
    reading_without_augmentation,
)
from deeptoolbox.errors import NonFiniteLoss, OptionError, TrainingError
from deeptoolbox.network._network import Network
from deeptoolbox.training import _checkpoint as ckpt
from deeptoolbox.training._acceleration import DeviceFacts, applied, choose_acceleration
from deeptoolbox.training._callbacks import AdversarialInputs, Callbacks
from deeptoolbox.training._data import Batch, as_labelled_arrays, class_names, data_source
from deeptoolbox.training._devices import autocast_context, place
from deeptoolbox.training._failures import RunFailures
from deeptoolbox.training._losses import (
    Loss,
    logits_like,
    loss_forward,
    loss_function,
    model_losses_mode,
)
from deeptoolbox.training._metrics import compute_metrics, metric_name, real_steps
from deeptoolbox.training._monitor_log import TrainingMonitorLog
from deeptoolbox.training._optim import clip_gradients, frozen_norm_layers, make_optimizer
from deeptoolbox.training._options import TrainingOptions
from deeptoolbox.training._progress import ConsoleDisplay, ProgressPlot, ProgressTable
from deeptoolbox.training._result import TrainingResult
from deeptoolbox.training._schedules import resolve_schedule
from deeptoolbox.training._sharding import (
    FullNetwork,
    is_sharded_checkpoint,
    load_sharded,
    local_state,
    save_sharded,
    shard,
)
from deeptoolbox.training._snapshots import WeightSnapshots, snapshot
from deeptoolbox.training._state import LoopState
from deeptoolbox.training._statistics import (
    compute_input_statistics,
    population_batch_norm_statistics,
)
from deeptoolbox.training._user_optim import UserScheduler

__all__ = ["Engine", "NonFiniteLoss"]


def _task(loss: Loss) -> str:
    kind = logits_like(loss)
    if kind == "crossentropy":
        return "multiclass"
    return "binary" if kind == "binary-crossentropy" else "regression"


def _to(value: Any, device: torch.device, channels_last: bool = False) -> Any:
    if isinstance(value, tuple):  # several targets, one per network output
        return tuple(_to(v, device) for v in value)
    if isinstance(value, list):  # one target per observation (detection: a dict of boxes...)
        return [_to(v, device) for v in value]
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    if not isinstance(value, torch.Tensor):
        return value
    if channels_last and value.dim() == 4:
        return value.to(device, non_blocking=True, memory_format=torch.channels_last)
    return value.to(device, non_blocking=True)


def _padding(options: TrainingOptions) -> SequencePadding:
    return SequencePadding(
        options.sequence_length, options.sequence_padding_direction, options.sequence_padding_value
    )


def _prefixed(values: dict[str, float]) -> dict[str, float]:
    return {f"validation_{k}": v for k, v in values.items()}


def _no_mask(mask: torch.Tensor | None) -> None:
    return None


def _image_network(net: torch.nn.Module) -> bool:
    """A network that reads 2-D images: a Network with a (C, H, W) input, or a module with
    2-D convolutions (the ones that run faster in channels_last)."""
    if isinstance(net, Network):
        return any(len(getattr(net.layer(n), "shape", ()) or ()) == 3 for n in net.input_names)
    return any(isinstance(m, torch.nn.Conv2d) for m in net.modules())


def _local_processes(world: int) -> int:
    """Training processes on this machine (torchrun sets LOCAL_WORLD_SIZE)."""
    try:
        return int(os.environ.get("LOCAL_WORLD_SIZE", world))
    except ValueError:
        return world


def _check_takes_targets(net: torch.nn.Module) -> None:
    """loss='model' calls ``net(*inputs, targets)``: its forward must take the targets."""
    import inspect

    try:
        parameters = list(inspect.signature(net.forward).parameters.values())
    except (TypeError, ValueError):
        return
    if any(p.kind == p.VAR_POSITIONAL for p in parameters) or len(parameters) >= 2:
        return
    raise OptionError(
        f"train: loss='model' calls the model as model(inputs..., targets) and reads the "
        f"losses it returns, but {type(net).__name__}.forward takes "
        f"{[p.name for p in parameters]} (no targets). Use a model that computes its own "
        "losses (vision.ObjectDetector, torchvision's detection models) or another loss."
    )


class Engine:
    """One train() call. Methods are the steps of the loop."""

    def __init__(
        self,
        net: torch.nn.Module,
        data: Any,
        loss: Any,
        options: TrainingOptions,
        optimizer: torch.optim.Optimizer | None,
        scheduler: UserScheduler | None,
    ) -> None:
        self.net, self.options = net, options
        self.user_optimizer, self.scheduler = optimizer, scheduler
        self.loss = loss_function(loss)
        self.task = _task(self.loss)
        self.model_loss = bool(getattr(self.loss, "takes_targets", False))  # loss="model"
        if self.model_loss and options.metrics:
            raise OptionError(
                f"train: `metrics` {list(options.metrics)} need the model's predictions, but "
                "with loss='model' it returns its losses while training. Leave metrics out "
                "and evaluate the trained model afterwards (vision.evaluate_detection for a "
                "detector)."
            )
        self.placement = place(options.execution_environment, options.precision)
        # several processes: a failure on one stops the others within seconds (_failures)
        self.failures = RunFailures.start(self.placement.rank, self.placement.world)
        try:
            self._configure(net, data, options, optimizer)
        except BaseException as err:
            failure = self.process_failure(err)
            if failure is err:
                raise
            raise failure from err

    def _configure(
        self,
        net: torch.nn.Module,
        data: Any,
        options: TrainingOptions,
        optimizer: torch.optim.Optimizer | None,
    ) -> None:
        self.device = self.placement.device
        # strategy="fsdp": sharded when the run has a process group (any size), see _sharding
        self.sharded = options.strategy == "fsdp" and self.placement.distributed
        if options.strategy == "fsdp" and optimizer is not None:
            raise OptionError(
                "train: strategy='fsdp' builds the optimizer on the sharded parameters, so it "
                "cannot take a ready-made `optimizer`; leave it out and choose `solver` in "
                "TrainingOptions, or use strategy='ddp'."
            )
        seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**31)
        self.state = LoopState(seed=seed)
        if self.model_loss:
            _check_takes_targets(net)
        padding = _padding(options)
        data = as_labelled_arrays(net, as_sequence_data(net, data, padding))
        if isinstance(net, Network) and net.classes is None and class_names(data):
            net.classes = class_names(data)  # the network takes the data's class names
        self.source = data_source(net, data, padding, "train: `data`").configure(
            options.mini_batch_size, options.shuffle, seed,
            self.placement.rank, self.placement.world,
        )  # fmt: skip
        self.validation, self.validation_reduced = None, False
        if options.validation_data is not None:
            self.validation = data_source(
                net, options.validation_data, padding, "TrainingOptions: `validation_data`"
            ).configure(options.mini_batch_size, "never", 0)
            # several processes: each validates every world-th batch of arrays / a Dataset, or
            # the batches a plain iterable gives it (its own part, or all of it), and the values
            # are reduced over the processes (sharded: every process validates every batch,
            # since each forward is a collective)
            if self.placement.distributed and not self.sharded:
                self.validation.deal_batches(self.placement.rank, self.placement.world)
                self.validation_reduced = True
        self.metrics = [metric_name(m) for m in options.metrics]
        self.per_epoch = self.source.batches_per_epoch()
        self.total = self.per_epoch * options.max_epochs if self.per_epoch else None
        self.schedule = resolve_schedule(
            options.learn_rate_schedule, options.max_epochs,
            options.learn_rate_drop_factor, options.learn_rate_drop_period,
        )  # fmt: skip
        self.acceleration = choose_acceleration(
            options, DeviceFacts.of(self.device, _local_processes(self.placement.world)),
            image_network=_image_network(net), iterations=self.total,
            lbfgs=isinstance(optimizer, torch.optim.LBFGS) or (
                optimizer is None and options.solver == "lbfgs"
            ),
        )  # fmt: skip
        self.source.num_workers = self.acceleration.num_workers
        self.source.pin_memory = self.acceleration.pin_memory
        self.output_best = options.output_network == "best-validation" or (
            options.output_network == "auto" and options.validation_data is not None
        )
        self.model = loss_forward(net, self.loss)  # what the loss reads: logits where it can
        self.forward: torch.nn.Module = self.model  # wrapped for DDP / compile by setup()
        self.optimizer: torch.optim.Optimizer | None = None  # built by setup()
        self.scaler: torch.amp.GradScaler | None = None
        self.channels_last = False
        self.frozen_norms: list[torch.nn.Module] = []
        self.set_mask = _no_mask  # the padding-mask setter while session() is open
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.final_validation: dict[str, float] = {}
        self.last_checkpoint: Path | None = None
        self.pending: list[tuple[int, torch.Tensor, float, float]] = []
        self.snapshots = WeightSnapshots(local_state if self.sharded else None)
        self.full_network: FullNetwork | None = None  # sharded: the network to return
        self.stop_request: str | None = None  # "Callback (hook)" that asked to stop
        self.stop_agreed = False  # several processes: every one has seen the request
        self.bad_processes: list[int] = []  # several processes: where a NaN/Inf loss came from
        self.started, self.elapsed_base, self.start_iteration = 0.0, 0.0, 0
        self.device_name = str(self.device)
        self.display = self._progress_table()
        self.callbacks = Callbacks(self._builtin_callbacks() + list(options.callbacks))

    def _progress_table(self) -> ProgressTable | None:
        if not (self.options.verbose and self.placement.is_main):
            return None
        columns = ConsoleDisplay.training_columns(self.metrics, self.validation is not None)
        display = ConsoleDisplay(True, columns, self.total)
        details = self.acceleration.describe()
        if self.placement.world > 1:
            details += f", {self.placement.world} processes"
        if self.sharded:
            details += ", fsdp"
        return ProgressTable(display, self.device_name, details, self.output_best)

    def _builtin_callbacks(self) -> list[Any]:
        callbacks: list[Any] = []
        if self.options.adversarial is not None:
            # the attack sees what the loss sees: logits for a Network ending in Softmax/Sigmoid
            callbacks.append(AdversarialInputs(self.options.adversarial, self.model))
        if self.display is not None:
            callbacks.append(self.display)
        if self.options.plots == "training-progress" and self.placement.is_main:
            path = self.options.plot_path or "training-progress.png"
            callbacks.append(ProgressPlot(path, self.options.plot_frequency, self.metrics))
        if self.options.plots == "monitor" and self.placement.is_main:
            callbacks.append(self._monitor_log())
        return callbacks

    def _monitor_log(self) -> TrainingMonitorLog:
        """plots="monitor": the run's events for the Training Monitor app, in ``plot_path``
        (a runs folder; default ``$DEEPTOOLBOX_RUNS`` or ``./deeptoolbox-runs``)."""
        log = TrainingMonitorLog(self.options.plot_path)
        if self.options.verbose:
            runs = log.folder.parent.resolve()
            print(f"Training Monitor: this run writes to {log.folder}; watch it with "
                  f"`deeptoolbox app --root {runs.parent} --runs {runs.name}` (Training Monitor "
                  "tab; its Stop button ends this run, keeping the network).")  # fmt: skip
        return log

    # -- set-up ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Padding masks for recurrent layers while open; the progress bar stopped after."""
        try:
            with applied(self.acceleration), padding_mask(self.net) as set_mask:
                self.set_mask = set_mask
                yield
        finally:
            self.set_mask = _no_mask
            if self.display is not None:
                self.display.close()

    def setup(self) -> None:
        seed = self.state.seed
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        self.channels_last = self.acceleration.channels_last
        self.net.to(self.device)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if self.options.resume_from is None:
            compute_input_statistics(self.net, self.source, self.options.reset_input_normalization)
        if self.sharded:  # before the optimizer: it must hold the sharded parameters
            self.full_network = FullNetwork(self.net)
            shard(self.model, self.net, self.placement.precision)
        elif self.options.strategy == "fsdp" and self.options.verbose:
            print("strategy='fsdp': this run is one process, so the network is not sharded "
                  "(same results; checkpoints are still sharded folders). Shard it over N "
                  "processes with execution_environment='multi-gpu' or 'parallel' and "
                  "`deeptoolbox train --nproc N script.py` / torchrun.")  # fmt: skip
        self.optimizer = self.user_optimizer or make_optimizer(self.net, self.options)
        use_scaler = self.placement.precision == "16-mixed"
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=use_scaler)
        if self.placement.distributed and not self.sharded:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward = DistributedDataParallel(self.model, device_ids=ids)
        if self.acceleration.compile:
            self.forward = torch.compile(self.forward)
        self.frozen_norms = frozen_norm_layers(self.net)
        if self.options.resume_from is not None:
            self.resume(self.options.resume_from)
        self.snapshots.take(self.net, self.state.iteration)

    def train_mode(self) -> None:
        self.net.train()
        for layer in self.frozen_norms:
            layer.eval()

    # -- one iteration ---------------------------------------------------------------------------
    def set_learn_rate(self) -> float:
        if self.user_optimizer is not None:  # the user's optimizer and scheduler set it
            return float(self.optimizer.param_groups[0]["lr"])
        state = self.state
        t = state.epoch + (state.position / self.per_epoch if self.per_epoch else 0.0)
        rate = self.options.learn_rate * self.schedule(t)
        for group in self.optimizer.param_groups:
            group["lr"] = rate * group.get("lr_factor", 1.0)
        return rate

    def inputs(self, batch: Batch) -> list[Any]:
        return [_to(x, self.device, self.channels_last) for x in batch.inputs]

    def run_batch(self, batch: Batch) -> Any:
        """The outputs the loss reads on one batch (no loss, no update)."""
        self.set_mask(_to(batch.mask, self.device))
        if self.model_loss:
            return self.model(*self.inputs(batch), _to(batch.target, self.device))
        return self.model(*self.inputs(batch))

    def _forward(self, inputs: list[Any], target: Any) -> Any:
        """The forward pass the loss reads: the model's own losses take the targets too."""
        if self.model_loss:
            return self.forward(*inputs, target)
        return self.forward(*inputs)

    def step(self, batch: Batch, global_size: int) -> tuple[torch.Tensor, Any]:
        inputs = self.inputs(batch)
        target, mask = _to(batch.target, self.device), _to(batch.mask, self.device)
        weight = batch.size * self.placement.world / global_size
        inputs = self.callbacks.batch_inputs(self.state, inputs, target)
        self.set_mask(mask)
        if isinstance(self.optimizer, torch.optim.LBFGS):
            return self._lbfgs_step(inputs, target, mask)
        with autocast_context(self.placement):
            outputs = self._forward(inputs, target)
            loss = self.loss(outputs, target, mask)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss * weight if weight != 1 else loss).backward()
        if not math.isinf(self.options.gradient_threshold):
            self.scaler.unscale_(self.optimizer)
            clip_gradients(self.optimizer, self.options.gradient_threshold,
                           self.options.gradient_threshold_method)  # fmt: skip
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), outputs

    def _lbfgs_step(self, inputs, target, mask):
        record: dict[str, Any] = {}

        def closure():
            self.optimizer.zero_grad(set_to_none=True)
            outputs = self._forward(inputs, target)
            loss = self.loss(outputs, target, mask)
            if "loss" not in record:
                record["loss"], record["outputs"] = loss.detach(), outputs
            loss.backward()
            return self._agreed_loss(loss)

        self.optimizer.step(closure)
        return record["loss"], record["outputs"]

    def _agreed_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss L-BFGS reads: under DDP, the mean over the processes. Gradients are already
        averaged, so with the same loss every process's line search takes the same steps and
        the same number of closure evaluations (each a collective); with its own loss a process
        could step differently, drift from its peers or wait on a collective they never make."""
        if not self.placement.distributed or self.sharded:
            return loss
        import torch.distributed as dist

        agreed = loss.detach().clone()
        dist.all_reduce(agreed)
        return agreed / self.placement.world

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> str:
        self.started = time.perf_counter()
        self.elapsed_base, self.start_iteration = self.state.elapsed, self.state.iteration
        self.callbacks.call("on_train_start", self.state)
        while self.state.epoch < self.options.max_epochs:
            reason = self.run_epoch()
            if reason:
                return reason
        return "max epochs completed"

    def _epoch_batches(self):
        state = self.state
        if state.position == 0 or state.epoch_rng is None:
            state.epoch_rng = ckpt.rng_state()
            yield from self.source.epoch(state.epoch)
            return
        resumed_rng = ckpt.rng_state()  # restored by resume(): the state at the checkpoint
        ckpt.set_rng_state(state.epoch_rng)  # replay the data order of the interrupted epoch
        iterator = self.source.epoch(state.epoch, skip=state.position)
        first = next(iterator, None)
        ckpt.set_rng_state(resumed_rng)
        if first is not None:
            yield first
            yield from iterator

    def run_epoch(self) -> str | None:
        self.train_mode()
        state = self.state
        for batch, global_size in self._epoch_batches():
            state.iteration += 1
            rate = self.set_learn_rate()
            loss, outputs = self.step(batch, global_size)
            if self.scheduler is not None and self.scheduler.interval == "iteration":
                self.scheduler.step(loss)
            state.position += 1
            self.pending.append((state.iteration, loss, rate, time.perf_counter()))
            reason = self.iteration_end(batch, outputs, rate)
            if reason:
                self.end_epoch(partial=True)
                return reason
        return self.end_epoch()

    def iteration_end(self, batch: Batch, outputs: Any, rate: float) -> str | None:
        """Everything after an iteration, in one place: flush and log, metrics, validation,
        callbacks (table, plot, monitors, user code), stop decisions, checkpoint."""
        state, options = self.state, self.options
        iteration = state.iteration
        last = self.total is not None and iteration == self.total
        validate = self.validation is not None and (
            iteration == 1 or iteration % options.validation_frequency == 0 or last
        )
        logged = iteration == 1 or iteration % options.verbose_frequency == 0 or validate or last
        loss, metrics, validation, improved = None, {}, None, False
        if logged:
            record = self.flush()
            loss = record["loss"]
            if self.metrics:
                metrics = self.batch_metrics(batch, outputs)
                record.update(metrics)
            if validate:
                validation, improved = self.validate()
                record.update(_prefixed(validation))
        if self.callbacks.has("on_iteration_end") or (
            validate and self.callbacks.has("on_validation_end")
        ):
            state.elapsed = self.elapsed()
            info = self.info(loss=loss, learn_rate=rate, logged=logged, metrics=metrics,
                             validation=validation, best=improved)  # fmt: skip
            if validate:
                self.request_stop(self.callbacks.call("on_validation_end", state, info))
            self.request_stop(self.callbacks.call("on_iteration_end", state, info))
        if validate and state.patience >= options.validation_patience:
            return f"validation loss did not improve for {state.patience} validations"
        reason = self.stop_reason()
        if reason:
            return reason
        if options.checkpoint_frequency_unit == "iteration" and (
            iteration % options.checkpoint_frequency == 0
        ):
            self.checkpoint()
        return None

    @torch.no_grad()
    def batch_metrics(self, batch: Batch, outputs: Any) -> dict[str, float]:
        target, mask = _to(batch.target, self.device), _to(batch.mask, self.device)
        return compute_metrics(self.options.metrics, outputs, target, mask, task=self.task)

    def info(self, **values: Any) -> dict[str, Any]:
        """What callbacks get: plain JSON values (documented in docs/training.md)."""
        state = self.state
        elapsed = self.elapsed()
        done = state.iteration - self.start_iteration
        remaining = None
        if self.total is not None and done > 0:
            remaining = (elapsed - self.elapsed_base) / done * (self.total - state.iteration)
        info = {
            "iteration": state.iteration, "epoch": state.epoch + 1,
            "iteration_in_epoch": state.position, "iterations_per_epoch": self.per_epoch,
            "total_iterations": self.total, "max_epochs": self.options.max_epochs,
            "logged": False, "loss": None, "learn_rate": None, "metrics": {},
            "validation": None, "best": False, "elapsed": elapsed, "remaining": remaining,
            "device": self.device_name, "precision": self.placement.precision,
            "setup": self.acceleration.describe(),
        }  # fmt: skip
        info.update(values)
        return info

    def request_stop(self, who: str | None) -> None:
        if who is not None and self.stop_request is None:
            self.stop_request = who

    def stop_reason(self) -> str | None:
        """The reason to stop now for a callback's request (several processes: once all of
        them have seen it, at a flush, so they stop at the same iteration)."""
        if self.stop_request is None or (self.placement.distributed and not self.stop_agreed):
            return None
        return f"stopped by callback {self.stop_request}"

    def elapsed(self) -> float:
        return self.elapsed_base + time.perf_counter() - self.started

    def flush(self) -> dict[str, Any] | None:
        """Move pending losses to the history with one host transfer; returns the last record.

        A NaN or Inf loss raises NonFiniteLoss (the records before it are kept). Otherwise
        the weights are snapshotted, as the last good network to roll back to.
        """
        history = self.state.history
        if not self.pending:
            return history.iterations[-1] if history.iterations else None
        values = torch.stack([loss.float() for _, loss, _, _ in self.pending])
        if self.placement.distributed:
            values = self._reduce(values)
        numbers = values.tolist()  # the one device -> host transfer of this flush
        if self.placement.distributed:
            firsts = numbers[-self.placement.world :]  # per process: its first bad loss
            del numbers[-self.placement.world :]
            bad = [p for p, first in enumerate(firsts) if first > 0]
            if bad:
                earliest = min(firsts[p] for p in bad)
                self.bad_processes = [p for p in bad if firsts[p] == earliest]
            if numbers.pop() > 0:
                self.stop_agreed = True
                self.request_stop("in another process")
        pending, self.pending = self.pending, []
        offset = self.elapsed_base - self.started
        for (iteration, _, rate, stamp), value in zip(pending, numbers, strict=True):
            if not math.isfinite(value):
                raise NonFiniteLoss(iteration, self.state.epoch + 1, value)
            history.iterations.append({
                "iteration": iteration, "epoch": self.state.epoch + 1, "loss": value,
                "learn_rate": rate, "time": stamp + offset,
            })  # fmt: skip
        self.snapshots.take(self.net, pending[-1][0])
        return history.iterations[-1]

    def _reduce(self, losses: torch.Tensor) -> torch.Tensor:
        """Mean losses over the processes, then whether any process's callback asked to stop,
        then, per process, the position (from 1; 0: none) of its first NaN/Inf loss: one
        collective, read back with the losses. A NaN on one process makes the mean NaN, so
        every process stops at the same flush; the positions say which process it was."""
        import torch.distributed as dist

        world = self.placement.world
        flag = torch.tensor([1.0 if self.stop_request else 0.0], device=losses.device)
        bad = ~torch.isfinite(losses)
        positions = torch.arange(1, len(losses) + 1, device=losses.device, dtype=losses.dtype)
        first = torch.where(bad, positions, torch.full_like(positions, math.inf)).min()
        firsts = torch.zeros(world, device=losses.device, dtype=losses.dtype)
        firsts[self.placement.rank] = torch.where(bad.any(), first, torch.zeros_like(first))
        values = torch.cat([losses / world, flag / world, firsts])
        dist.all_reduce(values)
        return values

    def end_epoch(self, partial: bool = False) -> str | None:
        self.flush()
        state = self.state
        rows = []
        for record in reversed(state.history.iterations):
            if record["epoch"] != state.epoch + 1:
                break
            rows.append(record)
        mean = math.fsum(r["loss"] for r in rows) / len(rows) if rows else None
        if rows:
            state.history.epochs.append({
                "epoch": state.epoch + 1, "iteration": state.iteration, "loss": mean,
                "learn_rate": rows[0]["learn_rate"], "time": self.elapsed(),
                **_prefixed(state.validation),
            })  # fmt: skip
        if partial:
            return None
        if self.scheduler is not None and self.scheduler.interval == "epoch":
            self.scheduler.step(state.validation.get("loss", mean))
        state.epoch, state.position = state.epoch + 1, 0
        options = self.options
        if options.checkpoint_frequency_unit == "epoch" and (
            state.epoch % options.checkpoint_frequency == 0
        ):
            self.checkpoint()
        if self.callbacks.has("on_epoch_end"):
            state.elapsed = self.elapsed()
            info = self.info(epoch=state.epoch, iteration_in_epoch=len(rows), loss=mean,
                             learn_rate=rows[0]["learn_rate"] if rows else None,
                             validation=dict(state.validation) or None)  # fmt: skip
            self.request_stop(self.callbacks.call("on_epoch_end", state, info))
            if self.placement.distributed:
                self.stop_agreed = self._agree(self.stop_request is not None)
        return self.stop_reason()

    def _agree(self, requested: bool) -> bool:
        import torch.distributed as dist

        flag = torch.tensor([1.0 if requested else 0.0], device=self.device)
        dist.all_reduce(flag)
        if float(flag) > 0:
            self.request_stop("in another process")
            return True
        return False

    # -- validation, checkpoints -----------------------------------------------------------------
    @torch.no_grad()
    def validation_values(self) -> dict[str, float]:
        """Loss and metrics of the network as it is now on the validation data."""
        self.net.eval()
        outputs, targets, losses, sizes = [], [], [], []
        try:
            with reading_without_augmentation(self.validation.payload):
                for batch, _ in self.validation.epoch(0):
                    target, mask = _to(batch.target, self.device), _to(batch.mask, self.device)
                    self.set_mask(mask)
                    with autocast_context(self.placement), self._validation_mode():
                        inputs = self.inputs(batch)
                        if self.model_loss:
                            output = self.model(*inputs, target)
                        else:
                            output = self.model(*inputs)
                    losses.append(self.loss(output, target, mask).detach().float())
                    sizes.append(batch.size)
                    if self.metrics:
                        output, target = real_steps(output, target, mask)
                        outputs.append(output)
                        targets.append(target)
        finally:
            self.train_mode()
        if self.validation_reduced:
            return self._reduced_validation(losses, sizes, outputs, targets)
        read = torch.stack(losses).tolist() if losses else []  # one transfer per validation
        total = sum(v * n for v, n in zip(read, sizes, strict=True))
        values = {"loss": total / max(sum(sizes), 1)}
        if self.metrics:
            values.update(_metrics_over_batches(self.options.metrics, outputs, targets, self.task))
        return values

    def _reduced_validation(self, losses, sizes, outputs, targets) -> dict[str, float]:
        """The validation values over every process's batches: the loss from one all-reduce
        of (sum, count); metrics over the outputs and targets gathered from all processes."""
        import torch.distributed as dist

        weights = torch.tensor(sizes, dtype=torch.float32, device=self.device)
        total = (torch.stack(losses) * weights).sum() if losses else weights.sum()
        sums = torch.stack([total, weights.sum()])
        dist.all_reduce(sums)
        loss, count = sums.tolist()
        values = {"loss": loss / max(count, 1.0)}
        if self.metrics:
            local = _joined(outputs, targets)
            gathered: list[Any] = [None] * self.placement.world
            dist.all_gather_object(gathered, local)
            parts = [part for part in gathered if part is not None]
            outputs = [_to(o, self.device) for part in parts for o in part[0]]
            targets = [_to(t, self.device) for part in parts for t in part[1]]
            values.update(_metrics_over_batches(self.options.metrics, outputs, targets, self.task))
        return values

    def _validation_mode(self) -> Any:
        """The model's own losses are computed in train mode (norms and dropout fixed)."""
        return model_losses_mode(self.net) if self.model_loss else contextlib.nullcontext()

    def validate(self) -> tuple[dict[str, float], bool]:
        """Validate now: the values, and whether the loss is the best yet."""
        values = self.validation_values()
        improved = self.state.track_validation(values)
        if improved and self.output_best:
            self.best_weights = snapshot(self.net)
        return values, improved

    def checkpoint(self) -> None:
        if self.options.checkpoint_path is None:
            return
        self.flush()
        if self.options.strategy == "fsdp":
            self.state.elapsed = self.elapsed()
            training = {"scaler": self.scaler.state_dict(), "options": self.options.to_dict()}
            self.last_checkpoint = save_sharded(
                self.options.checkpoint_path, self.net, self.optimizer, self.state.state_dict(),
                training, self.best_weights, self.placement.is_main,
            )  # fmt: skip
            return
        if not self.placement.is_main:
            return
        self.state.elapsed = self.elapsed()
        training = {
            "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
            "options": self.options.to_dict(),
        }  # fmt: skip
        if self.scheduler is not None:
            training["scheduler"] = self.scheduler.scheduler.state_dict()
        self.last_checkpoint = ckpt.save_checkpoint(
            self.options.checkpoint_path, self.net, self.state.state_dict(), training,
            self.best_weights,
        )  # fmt: skip

    def resume(self, path: Any) -> None:
        chosen = Path(path)
        if chosen.is_dir() and not is_sharded_checkpoint(chosen):
            chosen = ckpt.latest_checkpoint(chosen) or chosen
        if is_sharded_checkpoint(chosen):
            self._resume_sharded(chosen)
            return
        if self.sharded:
            raise OptionError(
                f"TrainingOptions: `resume_from` {str(chosen)!r} is a single-file checkpoint; "
                "strategy='fsdp' resumes from the sharded checkpoint folders it writes "
                "(checkpoint-epochNNNN-iterationNNNNNNN/). Resume this one with strategy='ddp'."
            )
        loaded = ckpt.load_checkpoint(path)
        try:
            self.net.load_state_dict(loaded["weights"])
        except RuntimeError as err:
            raise OptionError(
                f"TrainingOptions: `resume_from` {str(loaded['path'])!r} holds weights of another "
                f"network: {err}"
            ) from err
        self.optimizer.load_state_dict(loaded["optimizer"])
        self.scaler.load_state_dict(loaded["scaler"])
        if self.scheduler is not None and loaded["scheduler"] is not None:
            self.scheduler.scheduler.load_state_dict(loaded["scheduler"])
        self.best_weights = loaded["best"]
        self.state.load_state_dict(loaded["state"])  # last: it also restores the generators
        self.source.seed = self.state.seed

    def _resume_sharded(self, path: Path) -> None:
        """A sharded checkpoint, resharded onto this run's processes (any number)."""
        try:
            loaded = load_sharded(path, self.net, self.optimizer)
        except (RuntimeError, KeyError, ValueError) as err:
            raise OptionError(
                f"TrainingOptions: `resume_from` {str(path)!r} holds weights of another network "
                f"or optimizer: {err}"
            ) from err
        self.scaler.load_state_dict(loaded["scaler"])
        self.best_weights = loaded["best"]
        self.state.load_state_dict(loaded["loop"])  # last: it also restores the generators
        self.source.seed = self.state.seed

    # -- the end ---------------------------------------------------------------------------------
    def finalize(self) -> int:
        """Make the network the one to return; its iteration. Its validation figures are set
        in ``final_validation`` (validated again when they would describe other weights)."""
        state = self.state
        returned = state.iteration
        self.final_validation = dict(state.validation)
        if self.output_best and self.best_weights is not None:
            self.net.load_state_dict(self.best_weights)
            returned = state.best_iteration
            self.final_validation = dict(state.best_validation)
        recomputed = self.options.uses_population_statistics and population_batch_norm_statistics(
            self.net, self.source, self.run_batch, self.frozen_norms
        )
        stale = state.validated_iteration != returned and not self.output_best
        if self.validation is not None and (recomputed or stale or not self.final_validation):
            self.final_validation = self.validation_values()
        return returned

    def result(self, reason: str, returned: int | None) -> TrainingResult:
        if self.full_network is not None:  # sharded: every process gets the full network
            self.net = self.full_network.build(self.net, self.device)
            self.full_network = None
        self.net.eval()
        state = self.state
        return TrainingResult(
            network=self.net, history=state.history, metrics=self.metrics,
            best_epoch=state.best_epoch, best_iteration=state.best_iteration, stop_reason=reason,
            checkpoint=self.last_checkpoint, final_validation=self.final_validation,
            device=self.device_name, precision=self.placement.precision,
            returned_iteration=returned,
        )  # fmt: skip

    def fail(self, bad: NonFiniteLoss) -> TrainingError:
        """The TrainingError for a NaN/Inf loss, with the network rolled back in its result."""
        returned = self.snapshots.restore(self.net)
        kept = (
            f"the result keeps the network of iteration {returned}, the last one checked"
            if returned is not None else "no checked network was finite; the result keeps the last"
        )  # fmt: skip
        where = ""
        if self.bad_processes:
            names = " and ".join(str(p) for p in self.bad_processes)
            where = (f" in process {names} of {self.placement.world} (every process "
                     "stopped)")  # fmt: skip
        error = TrainingError(
            f"train: the loss became {bad.value} at iteration {bad.iteration} (epoch "
            f"{bad.epoch}){where}. Training stopped; {kept} (losses are read and checked every "
            f"`verbose_frequency`={self.options.verbose_frequency} iterations, at "
            f"validations, checkpoints and epoch ends). Hint: lower `initial_learn_rate` (now "
            f"{self.options.learn_rate:g}), set `gradient_threshold`, check the data for NaN/Inf "
            "values or unnormalized inputs, or use precision='32'."
        )
        error.result = self.result(
            f"stopped: non-finite loss at iteration {bad.iteration}", returned
        )
        return error

    def process_failure(self, err: BaseException) -> BaseException:
        """The exception to raise for ``err`` raised in this process (see ``_failures``):
        with several processes, ``err`` is recorded and the group aborted, or, when ``err``
        follows from another process's failure, a TrainingError naming that process."""
        if self.failures is None:
            return err
        state = getattr(self, "state", None)
        return self.failures.handle(err, state.iteration if state is not None else 0)

    def close(self, failed: bool = False) -> None:
        """The end of the call. Several processes: a barrier after every rank's last
        collective (none after a failure: the group is aborted then). The process group is
        kept for later train() calls, whoever created it (train() destroys the one it
        created when the interpreter exits; a user's group is the user's to destroy)."""
        if self.failures is not None:
            self.failures.close()
        if failed or not self.placement.distributed:
            return
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()


def _joined(outputs: list, targets: list) -> tuple[list, list] | None:
    """This process's validation outputs and targets on the CPU, for gathering: one tensor
    each when the batches can be joined, else the batches; None without any batch."""
    if not outputs:
        return None
    try:
        return [torch.cat(outputs).cpu()], [torch.cat(targets).cpu()]
    except (RuntimeError, TypeError):
        cpu = torch.device("cpu")
        return [_to(o, cpu) for o in outputs], [_to(t, cpu) for t in targets]


def _metrics_over_batches(metrics, outputs: list, targets: list, task: str) -> dict[str, float]:
    """Metrics over every validation observation; when batches cannot be joined (time lengths
    differ), the mean of the per-batch values."""
    try:
        return compute_metrics(metrics, torch.cat(outputs), torch.cat(targets), task=task)
    except (RuntimeError, TypeError):
        values: dict[str, float] = {}
        for output, target in zip(outputs, targets, strict=True):
            for k, v in compute_metrics(metrics, output, target, task=task).items():
                values[k] = values.get(k, 0.0) + v / len(outputs)
        return values
