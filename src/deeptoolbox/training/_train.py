"""train(): the training engine. A small loop over composed helpers.

The hot path (one iteration) does: move the batch, set the learn rate, forward under
autocast, loss, finiteness check, backward, optional clipping, optimizer step. Everything
that needs host synchronization (loss values for the history and display, metrics) happens
only at log, validation and checkpoint points.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeptoolbox.errors import OptionError, TrainingError
from deeptoolbox.network._network import Network
from deeptoolbox.training import _checkpoint as ckpt
from deeptoolbox.training._data import Batch, make_source
from deeptoolbox.training._devices import autocast_context, place
from deeptoolbox.training._losses import Loss, logits_mode, loss_function
from deeptoolbox.training._metrics import compute_metrics, metric_name
from deeptoolbox.training._optim import clip_gradients, frozen_norm_layers, make_optimizer
from deeptoolbox.training._options import TrainingOptions
from deeptoolbox.training._progress import (
    ConsoleDisplay,
    TrainingHistory,
    history_panels,
    plot_progress,
)
from deeptoolbox.training._result import TrainingResult
from deeptoolbox.training._schedules import resolve_schedule

__all__ = ["train"]


def _task(loss: Loss) -> str:
    if loss.name == "crossentropy":
        return "multiclass"
    return "binary" if loss.name == "binary-crossentropy" else "regression"


def _to(value: Any, device: torch.device, channels_last: bool = False) -> Any:
    if isinstance(value, tuple):  # several targets, one per network output
        return tuple(_to(v, device) for v in value)
    if not isinstance(value, torch.Tensor):
        return value
    if channels_last and value.dim() == 4:
        return value.to(device, non_blocking=True, memory_format=torch.channels_last)
    return value.to(device, non_blocking=True)


def _snapshot(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}


class _Engine:
    """State of one train() call. Methods are the steps of the loop."""

    def __init__(self, net: torch.nn.Module, data: Any, loss: Any, options: TrainingOptions):
        self.net, self.options = net, options
        self.loss = loss_function(loss)
        self.task = _task(self.loss)
        self.num_inputs = len(net.input_names) if isinstance(net, Network) else 1
        self.placement = place(options.execution_environment, options.precision)
        self.device = self.placement.device
        self.seed = (
            options.seed if options.seed is not None else random.SystemRandom().randrange(2**31)
        )
        self.source = make_source(data, self.num_inputs).configure(
            options.mini_batch_size, options.shuffle, self.seed,
            self.placement.rank, self.placement.world,
        )  # fmt: skip
        self.source.num_workers = options.num_workers
        self.validation = None
        if options.validation_data is not None:
            self.validation = make_source(
                options.validation_data, self.num_inputs, "TrainingOptions: `validation_data`"
            ).configure(options.mini_batch_size, "never", 0)
        self.metrics = [metric_name(m) for m in options.metrics]
        self.per_epoch = self.source.batches_per_epoch()
        self.schedule = resolve_schedule(
            options.learn_rate_schedule, options.max_epochs,
            options.learn_rate_drop_factor, options.learn_rate_drop_period,
        )  # fmt: skip
        self.history = TrainingHistory()
        self.epoch, self.position, self.iteration = 0, 0, 0
        self.best_loss: float = math.inf
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_epoch: int | None = None
        self.best_iteration: int | None = None
        self.patience_count, self.last_validation = 0, {}
        self.elapsed_before, self.last_plot, self.last_checkpoint = 0.0, 0.0, None
        self.epoch_rng: dict[str, Any] | None = None

    # -- set-up ----------------------------------------------------------------------------------
    def setup(self) -> None:
        torch.manual_seed(self.seed)
        random.seed(self.seed)
        np.random.seed(self.seed % 2**32)
        self.channels_last = self.device.type == "cuda" and self._image_network()
        self.net.to(self.device)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.optimizer = make_optimizer(self.net, self.options)
        use_scaler = self.placement.precision == "16-mixed"
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=use_scaler)
        self.forward = self.net
        if self.placement.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward = DistributedDataParallel(self.net, device_ids=ids)
        if self.options.compile:
            self.forward = torch.compile(self.forward)
        self.frozen_norms = frozen_norm_layers(self.net)
        if self.options.resume_from is not None:
            self.resume(self.options.resume_from)

    def _image_network(self) -> bool:
        if not isinstance(self.net, Network):
            return False
        return any(len(getattr(self.net.layer(n), "shape", ()) or ()) == 3
                   for n in self.net.input_names)  # fmt: skip

    def train_mode(self) -> None:
        self.net.train()
        for layer in self.frozen_norms:
            layer.eval()

    # -- one iteration ---------------------------------------------------------------------------
    def set_learn_rate(self) -> float:
        t = self.epoch + (self.position / self.per_epoch if self.per_epoch else 0.0)
        rate = self.options.learn_rate * self.schedule(t)
        for group in self.optimizer.param_groups:
            group["lr"] = rate * group.get("lr_factor", 1.0)
        return rate

    def step(self, batch: Batch, global_size: int) -> tuple[torch.Tensor, Any]:
        inputs = [_to(x, self.device, self.channels_last) for x in batch.inputs]
        target, mask = _to(batch.target, self.device), _to(batch.mask, self.device)
        weight = batch.size * self.placement.world / global_size
        if self.options.adversarial is not None and target is not None:
            inputs[0] = self.options.adversarial(self.net, inputs[0], target)
        if isinstance(self.optimizer, torch.optim.LBFGS):
            return self._lbfgs_step(inputs, target, mask)
        with autocast_context(self.placement):
            outputs = self.forward(*inputs)
            loss = self.loss(outputs, target, mask)
        self.check_finite(loss)
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
            outputs = self.forward(*inputs)
            loss = self.loss(outputs, target, mask)
            if "loss" not in record:
                record["loss"], record["outputs"] = loss.detach(), outputs.detach()
                self.check_finite(loss)
            loss.backward()
            return loss

        self.optimizer.step(closure)
        return record["loss"], record["outputs"]

    def check_finite(self, loss: torch.Tensor) -> None:
        if bool(torch.isfinite(loss)):
            return
        raise TrainingError(
            f"train: the loss became {float(loss.detach())} at iteration {self.iteration} (epoch "
            f"{self.epoch + 1}). Training stopped; the result keeps the network from before that "
            f"iteration. Hint: lower `initial_learn_rate` (now {self.options.learn_rate:g}), set "
            "`gradient_threshold`, check the data for NaN/Inf values or unnormalized inputs, or "
            "use precision='32'."
        )

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> str:
        options = self.options
        self.start = time.perf_counter()
        total = self.per_epoch * options.max_epochs if self.per_epoch else None
        columns = ConsoleDisplay.training_columns(self.metrics, self.validation is not None)
        self.display = ConsoleDisplay(options.verbose and self.placement.is_main, columns, total)
        self.display.start(str(self.device), self.placement.precision)
        self.pending: list[tuple[int, torch.Tensor, float, float]] = []
        while self.epoch < options.max_epochs:
            reason = self.run_epoch()
            if reason:
                return reason
        return "max epochs completed"

    def _epoch_batches(self):
        if self.position == 0 or self.epoch_rng is None:
            self.epoch_rng = ckpt.rng_state()
            yield from self.source.epoch(self.epoch)
            return
        resumed_rng = ckpt.rng_state()  # restored by resume(): the state at the checkpoint
        ckpt.set_rng_state(self.epoch_rng)  # replay the data order of the interrupted epoch
        iterator = self.source.epoch(self.epoch, skip=self.position)
        first = next(iterator, None)
        ckpt.set_rng_state(resumed_rng)
        if first is not None:
            yield first
            yield from iterator

    def run_epoch(self) -> str | None:
        self.train_mode()
        epoch_losses: list[torch.Tensor] = []
        for batch, global_size in self._epoch_batches():
            self.iteration += 1
            rate = self.set_learn_rate()
            loss, outputs = self.step(batch, global_size)
            self.position += 1
            epoch_losses.append(loss)
            self.pending.append((self.iteration, loss, rate, time.perf_counter()))
            reason = self.after_step(batch, outputs)
            if reason:
                self.end_epoch(epoch_losses, partial=True)
                return reason
        return self.end_epoch(epoch_losses)

    def after_step(self, batch: Batch, outputs: Any) -> str | None:
        options, iteration = self.options, self.iteration
        self.display.advance(iteration)
        last = self.per_epoch is not None and self.iteration == self.per_epoch * options.max_epochs
        validate = self.validation is not None and (
            iteration == 1 or iteration % options.validation_frequency == 0 or last
        )
        log = iteration == 1 or iteration % options.verbose_frequency == 0 or validate or last
        if log:
            record = self.flush()
            record.update(compute_metrics(
                self.options.metrics, outputs.detach(), _to(batch.target, self.device),
                _to(batch.mask, self.device), task=self.task,
            ) if self.metrics and not isinstance(outputs, tuple) else {})  # fmt: skip
            if validate:
                record.update(self.validate())
            self.display.row(record, self.elapsed())
            self.maybe_plot()
            if validate and self.patience_count >= options.validation_patience:
                return f"validation loss did not improve for {self.patience_count} validations"
        if options.checkpoint_frequency_unit == "iteration" and (
            iteration % options.checkpoint_frequency == 0
        ):
            self.checkpoint()
        return None

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.start

    def flush(self) -> dict[str, Any]:
        """Move pending per-iteration losses to the history (one host sync); returns the last."""
        if not self.pending:
            return dict(self.history.iterations[-1]) if self.history.iterations else {}
        losses = torch.stack([loss.float() for _, loss, _, _ in self.pending])
        if self.placement.distributed:
            import torch.distributed as dist

            dist.all_reduce(losses)
            losses /= self.placement.world
        offset = self.elapsed_before - self.start
        for (iteration, _, rate, stamp), value in zip(self.pending, losses.tolist(), strict=True):
            self.history.iterations.append({
                "iteration": iteration, "epoch": self.epoch + 1, "loss": value,
                "learn_rate": rate, "time": stamp + offset,
            })  # fmt: skip
        self.pending = []
        return self.history.iterations[-1]

    def end_epoch(self, losses: list[torch.Tensor], partial: bool = False) -> str | None:
        self.flush()
        if losses:
            mean = float(torch.stack([v.float() for v in losses]).mean())
            record = {"epoch": self.epoch + 1, "iteration": self.iteration, "loss": mean,
                      "learn_rate": self.history.iterations[-1]["learn_rate"],
                      "time": self.elapsed(), **self.last_validation}  # fmt: skip
            self.history.epochs.append(record)
        if partial:
            return None
        self.epoch, self.position = self.epoch + 1, 0
        self.last_good = _snapshot(self.net)
        options = self.options
        if (
            options.checkpoint_frequency_unit == "epoch"
            and self.epoch % options.checkpoint_frequency == 0
        ):
            self.checkpoint()
        return None

    # -- validation, plots, checkpoints ----------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        self.net.eval()
        outputs, targets, masks, total, count = [], [], [], 0.0, 0
        try:
            for batch, _ in self.validation.epoch(0):
                inputs = [_to(x, self.device, self.channels_last) for x in batch.inputs]
                target, mask = _to(batch.target, self.device), _to(batch.mask, self.device)
                with autocast_context(self.placement):
                    output = self.net(*inputs)
                total += float(self.loss(output, target, mask)) * batch.size
                count += batch.size
                outputs.append(output.float())
                targets.append(target)
                masks.append(mask)
        finally:
            self.train_mode()
        values = {"loss": total / max(count, 1)}
        if self.metrics:
            try:
                mask = None if masks[0] is None else torch.cat(masks)
                values.update(compute_metrics(
                    self.options.metrics, torch.cat(outputs), torch.cat(targets), mask,
                    task=self.task,
                ))  # fmt: skip
            except RuntimeError:  # batches of different lengths: average per batch
                for output, target, mask in zip(outputs, targets, masks, strict=True):
                    for k, v in compute_metrics(self.options.metrics, output, target, mask,
                                                task=self.task).items():  # fmt: skip
                        values[k] = values.get(k, 0.0) + v / len(outputs)
        self.track_best(values["loss"])
        self.last_validation = {f"validation_{k}": v for k, v in values.items()}
        self.final_validation = values
        return self.last_validation

    def track_best(self, loss: float) -> None:
        if loss < self.best_loss:
            self.best_loss, self.patience_count = loss, 0
            self.best_epoch, self.best_iteration = self.epoch + 1, self.iteration
            if self.output_best:
                self.best_state = _snapshot(self.net)
        else:
            self.patience_count += 1

    def maybe_plot(self, force: bool = False) -> None:
        if self.options.plots == "none" or not self.placement.is_main:
            return
        now = time.perf_counter()
        if force or now - self.last_plot >= self.options.plot_frequency:
            plot_progress(history_panels(self.history, self.metrics), self.plot_path)
            self.last_plot = time.perf_counter()

    def checkpoint(self) -> None:
        if self.options.checkpoint_path is None:
            return
        self.flush()
        if not self.placement.is_main:
            return
        state = {
            "epoch": self.epoch, "position": self.position, "iteration": self.iteration,
            "seed": self.seed, "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(), "rng": ckpt.rng_state(),
            "epoch_rng": self.epoch_rng, "history": self.history.state(),
            "best": [self.best_loss, self.best_epoch, self.best_iteration, self.patience_count],
            "last_validation": self.last_validation, "elapsed": self.elapsed(),
            "options": self.options.to_dict(),
        }  # fmt: skip
        self.last_checkpoint = ckpt.save_checkpoint(
            self.options.checkpoint_path, self.net, state, self.best_state
        )

    def resume(self, path: Any) -> None:
        loaded = ckpt.load_checkpoint(path)
        state = loaded["state"]
        try:
            self.net.load_state_dict(loaded["weights"])
        except RuntimeError as err:
            raise OptionError(
                f"TrainingOptions: `resume_from` {str(loaded['path'])!r} holds weights of another "
                f"network: {err}"
            ) from err
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.position, self.iteration = (
            state["epoch"],
            state["position"],
            state["iteration"],
        )
        self.seed = state["seed"]
        self.source.seed = self.seed
        self.history = TrainingHistory(**state["history"])
        self.best_loss, self.best_epoch, self.best_iteration, self.patience_count = state["best"]
        self.best_state = loaded["best"]
        self.last_validation = dict(state["last_validation"])
        self.elapsed_before, self.epoch_rng = state["elapsed"], state["epoch_rng"]
        ckpt.set_rng_state(state["rng"])

    # -- the end ---------------------------------------------------------------------------------
    def result(self, reason: str) -> TrainingResult:
        if self.output_best and self.best_state is not None:
            self.net.load_state_dict(self.best_state)
        self.net.eval()
        return TrainingResult(
            network=self.net, history=self.history, metrics=self.metrics,
            best_epoch=self.best_epoch, best_iteration=self.best_iteration, stop_reason=reason,
            checkpoint=self.last_checkpoint, final_validation=getattr(self, "final_validation", {}),
            device=str(self.device), precision=self.placement.precision,
        )  # fmt: skip

    def fail(self, error: TrainingError) -> TrainingError:
        self.pending = [p for p in self.pending if p[0] < self.iteration]
        self.flush()
        weights_ok = all(torch.isfinite(v).all() for v in self.net.state_dict().values()
                         if v.is_floating_point())  # fmt: skip
        if not weights_ok:
            self.net.load_state_dict(self.last_good)
        self.output_best = False
        error.result = self.result(f"stopped: non-finite loss at iteration {self.iteration}")
        return error


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


def train(
    net: torch.nn.Module,
    data: Any,
    loss: str | Loss | Any = "crossentropy",
    options: TrainingOptions | None = None,
) -> TrainingResult:
    """Train ``net`` on ``data`` and return a :class:`TrainingResult` (MATLAB's ``trainnet``).

    ``data`` is ``(inputs, targets)`` arrays (``(input_1, ..., input_k, targets)`` for a
    network with k inputs), a torch ``Dataset`` whose items are ``(input..., target)``, a
    ``DataLoader``, or any iterable of batches (tuples, or dicts with ``inputs``,
    ``targets`` and ``mask``). ``loss`` is "crossentropy" (class indices or one-hot targets),
    "binary-crossentropy", "mse", "mae", "huber", a :func:`loss_function` (class weights) or
    a callable ``loss(outputs, targets)``. A network ending in Softmax is trained on its logits.
    The network is trained in place and returned in eval mode, on the training device.

    Raises:
        OptionError: bad arguments or options. TrainingError: the loss became NaN or Inf
        (``err.result`` holds the last good network and the history).

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
    engine = _Engine(net, data, loss, options)
    engine.output_best = options.output_network == "best-validation" or (
        options.output_network == "auto" and options.validation_data is not None
    )
    engine.plot_path = Path(options.plot_path or "training-progress.png")
    try:
        with logits_mode(net, engine.loss):
            engine.setup()
            engine.last_good = _snapshot(net)
            try:
                reason = engine.run()
            except TrainingError as error:
                raise engine.fail(error) from None
            if engine.validation is not None and engine.best_iteration is None:
                engine.validate()
            engine.display.finish(reason)
            engine.maybe_plot(force=True)
            return engine.result(reason)
    finally:
        display = getattr(engine, "display", None)
        if display is not None and display.progress is not None:
            display.progress.stop()
        if engine.placement.owns_group:
            import torch.distributed as dist

            try:  # let every rank finish its last collective before the group goes away
                dist.barrier()
            finally:
                dist.destroy_process_group()
