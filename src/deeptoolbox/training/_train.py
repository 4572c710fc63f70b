"""train(): the training engine. A small loop over composed helpers.

The hot path (one iteration) does: move the batch, set the learn rate, forward under
autocast, loss, finiteness check, backward, optional clipping, optimizer step. Everything
that needs host synchronization (loss values for the history and display, metrics) happens
only at log, validation and checkpoint points.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeptoolbox.errors import OptionError, TrainingError
from deeptoolbox.inference import (
    SequencePadding,
    as_sequence_data,
    count_inputs,
    padding_mask,
    reading_without_augmentation,
)
from deeptoolbox.network._network import Network
from deeptoolbox.training import _checkpoint as ckpt
from deeptoolbox.training._data import Batch, class_names, data_source
from deeptoolbox.training._devices import autocast_context, place
from deeptoolbox.training._losses import Loss, logits_mode, loss_function
from deeptoolbox.training._metrics import compute_metrics, metric_name, real_steps
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
from deeptoolbox.training._statistics import (
    compute_input_statistics,
    population_batch_norm_statistics,
)
from deeptoolbox.training._user_optim import UserScheduler, check_user_optimizer

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


def _padding(options: TrainingOptions) -> SequencePadding:
    return SequencePadding(
        options.sequence_length, options.sequence_padding_direction, options.sequence_padding_value
    )


class _Engine:
    """State of one train() call. Methods are the steps of the loop."""

    def __init__(self, net: torch.nn.Module, data: Any, loss: Any, options: TrainingOptions,
                 optimizer: torch.optim.Optimizer | None, scheduler: UserScheduler | None):  # fmt: skip
        self.net, self.options = net, options
        self.user_optimizer, self.scheduler = optimizer, scheduler
        self.loss = loss_function(loss)
        self.task = _task(self.loss)
        self.num_inputs = count_inputs(net)
        self.placement = place(options.execution_environment, options.precision)
        self.device = self.placement.device
        self.seed = (
            options.seed if options.seed is not None else random.SystemRandom().randrange(2**31)
        )
        padding = _padding(options)
        data = as_sequence_data(net, data, padding)
        if isinstance(net, Network) and net.classes is None and class_names(data):
            net.classes = class_names(data)  # the network takes the data's class names
        self.source = data_source(net, data, padding, "train: `data`").configure(
            options.mini_batch_size, options.shuffle, self.seed,
            self.placement.rank, self.placement.world,
        )  # fmt: skip
        self.source.num_workers = options.num_workers
        self.validation = None
        if options.validation_data is not None:
            self.validation = data_source(
                net, options.validation_data, padding, "TrainingOptions: `validation_data`"
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
        self.best_validation: dict[str, float] = {}
        self.patience_count, self.last_validation = 0, {}
        self.final_validation: dict[str, float] = {}
        self.validated_iteration: int | None = None
        self.elapsed_before, self.last_plot, self.last_checkpoint = 0.0, 0.0, None
        self.epoch_rng: dict[str, Any] | None = None
        self.output_best = options.output_network == "best-validation" or (
            options.output_network == "auto" and options.validation_data is not None
        )
        self.plot_path = Path(options.plot_path or "training-progress.png")

    # -- set-up ----------------------------------------------------------------------------------
    def setup(self) -> None:
        torch.manual_seed(self.seed)
        random.seed(self.seed)
        np.random.seed(self.seed % 2**32)
        self.channels_last = self.device.type == "cuda" and self._image_network()
        self.net.to(self.device)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if self.options.resume_from is None:
            compute_input_statistics(self.net, self.source, self.options.reset_input_normalization)
        self.optimizer = self.user_optimizer or make_optimizer(self.net, self.options)
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
        if self.user_optimizer is not None:  # the user's optimizer and scheduler set it
            return float(self.optimizer.param_groups[0]["lr"])
        t = self.epoch + (self.position / self.per_epoch if self.per_epoch else 0.0)
        rate = self.options.learn_rate * self.schedule(t)
        for group in self.optimizer.param_groups:
            group["lr"] = rate * group.get("lr_factor", 1.0)
        return rate

    def inputs(self, batch: Batch) -> list[Any]:
        return [_to(x, self.device, self.channels_last) for x in batch.inputs]

    def run_batch(self, batch: Batch) -> Any:
        """The network's outputs on one batch (no loss, no update)."""
        self.set_mask(_to(batch.mask, self.device))
        return self.net(*self.inputs(batch))

    def step(self, batch: Batch, global_size: int) -> tuple[torch.Tensor, Any]:
        inputs = self.inputs(batch)
        target, mask = _to(batch.target, self.device), _to(batch.mask, self.device)
        weight = batch.size * self.placement.world / global_size
        if self.options.adversarial is not None and target is not None:
            inputs[0] = self.options.adversarial(self.net, inputs[0], target)
        if isinstance(self.optimizer, torch.optim.LBFGS):
            self.set_mask(mask)
            return self._lbfgs_step(inputs, target, mask)
        self.set_mask(mask)
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
                record["loss"], record["outputs"] = loss.detach(), outputs
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
            if self.scheduler is not None and self.scheduler.interval == "iteration":
                self.scheduler.step(loss)
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
            if self.metrics:
                with torch.no_grad():
                    record.update(compute_metrics(
                        self.options.metrics, outputs, _to(batch.target, self.device),
                        _to(batch.mask, self.device), task=self.task,
                    ))  # fmt: skip
            improved = False
            if validate:
                values, improved = self.validate()
                record.update(values)
            self.display.row({**record, "best": improved and self.output_best}, self.elapsed())
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
        mean = None
        if losses:
            mean = float(torch.stack([v.float() for v in losses]).mean())
            record = {"epoch": self.epoch + 1, "iteration": self.iteration, "loss": mean,
                      "learn_rate": self.history.iterations[-1]["learn_rate"],
                      "time": self.elapsed(), **self.last_validation}  # fmt: skip
            self.history.epochs.append(record)
        if partial:
            return None
        if self.scheduler is not None and self.scheduler.interval == "epoch":
            self.scheduler.step(self.last_validation.get("validation_loss", mean))
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
    def validation_values(self) -> dict[str, float]:
        """Loss and metrics of the network as it is now on the validation data."""
        self.net.eval()
        outputs, targets, total, count = [], [], 0.0, 0
        try:
            with reading_without_augmentation(self.validation.payload):
                for batch, _ in self.validation.epoch(0):
                    target, mask = _to(batch.target, self.device), _to(batch.mask, self.device)
                    self.set_mask(mask)
                    with autocast_context(self.placement):
                        output = self.net(*self.inputs(batch))
                    total += float(self.loss(output, target, mask)) * batch.size
                    count += batch.size
                    if self.metrics:
                        output, target = real_steps(output, target, mask)
                        outputs.append(output)
                        targets.append(target)
        finally:
            self.train_mode()
        values = {"loss": total / max(count, 1)}
        if self.metrics:
            values.update(_metrics_over_batches(self.options.metrics, outputs, targets, self.task))
        return values

    def validate(self) -> tuple[dict[str, float], bool]:
        """Validate now: the ``validation_*`` values, and whether the loss is the best yet."""
        values = self.validation_values()
        self.validated_iteration = self.iteration
        improved = self.track_best(values)
        self.last_validation = {f"validation_{k}": v for k, v in values.items()}
        self.final_validation = values
        return self.last_validation, improved

    def track_best(self, values: dict[str, float]) -> bool:
        if values["loss"] < self.best_loss:
            self.best_loss, self.patience_count = values["loss"], 0
            self.best_epoch, self.best_iteration = self.epoch + 1, self.iteration
            self.best_validation = values
            if self.output_best:
                self.best_state = _snapshot(self.net)
            return True
        self.patience_count += 1
        return False

    def maybe_plot(self, force: bool = False, returned: int | None = None) -> None:
        if self.options.plots == "none" or not self.placement.is_main:
            return
        now = time.perf_counter()
        if force or now - self.last_plot >= self.options.plot_frequency:
            panels = history_panels(self.history, self.metrics, returned)
            plot_progress(panels, self.plot_path)
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
            "best_validation": self.best_validation,
            "last_validation": self.last_validation, "elapsed": self.elapsed(),
            "options": self.options.to_dict(),
        }  # fmt: skip
        if self.scheduler is not None:
            state["scheduler"] = self.scheduler.scheduler.state_dict()
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
        if self.scheduler is not None and "scheduler" in state:
            self.scheduler.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.position, self.iteration = (
            state["epoch"],
            state["position"],
            state["iteration"],
        )
        self.seed = state["seed"]
        self.source.seed = self.seed
        self.history = TrainingHistory(**state["history"])
        self.best_loss, self.best_epoch, self.best_iteration, self.patience_count = state["best"]
        self.best_validation = dict(state.get("best_validation", {}))
        self.best_state = loaded["best"]
        self.last_validation = dict(state["last_validation"])
        self.elapsed_before, self.epoch_rng = state["elapsed"], state["epoch_rng"]
        ckpt.set_rng_state(state["rng"])

    # -- the end ---------------------------------------------------------------------------------
    def finalize(self) -> int:
        """Make the network the one to return; its iteration. Its validation figures are set
        in ``final_validation`` (validated again when they would describe other weights)."""
        returned = self.iteration
        if self.output_best and self.best_state is not None:
            self.net.load_state_dict(self.best_state)
            returned = self.best_iteration
            self.final_validation = dict(self.best_validation)
        recomputed = self.options.uses_population_statistics and population_batch_norm_statistics(
            self.net, self.source, self.run_batch, self.frozen_norms
        )
        stale = self.validated_iteration != returned and not self.output_best
        if self.validation is not None and (recomputed or stale or not self.final_validation):
            self.final_validation = self.validation_values()
        return returned

    def result(self, reason: str, returned: int | None) -> TrainingResult:
        self.net.eval()
        return TrainingResult(
            network=self.net, history=self.history, metrics=self.metrics,
            best_epoch=self.best_epoch, best_iteration=self.best_iteration, stop_reason=reason,
            checkpoint=self.last_checkpoint, final_validation=self.final_validation,
            device=str(self.device), precision=self.placement.precision,
            returned_iteration=returned,
        )  # fmt: skip

    def returned_note(self, returned: int) -> str:
        kind = "best validation" if self.output_best and self.best_state else "last iteration"
        loss = self.final_validation.get("loss")
        shown = f", validation loss {loss:.4g}" if loss is not None else ""
        return f"Returned the network of iteration {returned} ({kind}{shown})."

    def fail(self, error: TrainingError) -> TrainingError:
        self.pending = [p for p in self.pending if p[0] < self.iteration]
        self.flush()
        weights_ok = all(torch.isfinite(v).all() for v in self.net.state_dict().values()
                         if v.is_floating_point())  # fmt: skip
        if not weights_ok:
            self.net.load_state_dict(self.last_good)
        error.result = self.result(
            f"stopped: non-finite loss at iteration {self.iteration}", self.iteration - 1
        )
        return error


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


def _close(engine: _Engine) -> None:
    display = getattr(engine, "display", None)
    if display is not None and display.progress is not None:
        display.progress.stop()
    if engine.placement.owns_group:
        import torch.distributed as dist

        try:  # let every rank finish its last collective before the group goes away
            dist.barrier()
        finally:
            dist.destroy_process_group()


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
    user_scheduler = check_user_optimizer(net, options, optimizer, scheduler)
    engine = _Engine(net, data, loss, options, optimizer, user_scheduler)
    try:
        with (
            _scoped_random_state(engine.device),
            logits_mode(net, engine.loss),
            padding_mask(net) as engine.set_mask,
        ):
            engine.setup()
            engine.last_good = _snapshot(net)
            try:
                reason = engine.run()
            except TrainingError as error:
                raise engine.fail(error) from None
            returned = engine.finalize()
            engine.display.finish(reason, engine.returned_note(returned))
            engine.maybe_plot(force=True, returned=returned)
            return engine.result(reason, returned)
    finally:
        _close(engine)
