"""train_gan(): generative adversarial training with the non-saturating loss.

The discriminator gives one logit per observation (a final Sigmoid layer is skipped during
training, as train() does with Softmax). Each iteration updates the discriminator on real and
generated images, then the generator to make the discriminator call its images real
(``-log D(G(z))``, the non-saturating loss of Goodfellow et al.).
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deeptoolbox.errors import OptionError, TrainingError
from deeptoolbox.network._network import Network
from deeptoolbox.training._data import make_source
from deeptoolbox.training._devices import place
from deeptoolbox.training._losses import Loss, loss_forward
from deeptoolbox.training._progress import ConsoleDisplay, TrainingHistory

__all__ = ["GanOptions", "GanResult", "train_gan"]

_CHOICES = {
    "execution_environment": ("auto", "cpu", "gpu"),
    "plots": ("training-progress", "none"),
    "shuffle": ("once", "every-epoch", "never"),
}


@dataclass
class GanOptions:
    """Settings for :func:`train_gan` (Adam for both networks, separate learn rates).

    Defaults follow the DCGAN recipe: learn rate 2e-4, gradient decay 0.5.

    Example:
        >>> GanOptions(max_epochs=5).generator_learn_rate
        0.0002
    """

    max_epochs: int = 50
    mini_batch_size: int = 128
    generator_learn_rate: float = 2e-4
    discriminator_learn_rate: float = 2e-4
    gradient_decay_factor: float = 0.5
    squared_gradient_decay_factor: float = 0.999
    latent_size: int | None = None
    flip_factor: float = 0.0
    shuffle: str = "every-epoch"
    verbose: bool = True
    verbose_frequency: int = 50
    plots: str = "none"
    plot_path: str | os.PathLike | None = None
    plot_frequency: float = 10.0
    num_samples: int = 25
    execution_environment: str = "auto"
    seed: int | None = None

    def __post_init__(self) -> None:
        for option, allowed in _CHOICES.items():
            if getattr(self, option) not in allowed:
                raise OptionError(
                    f"GanOptions: `{option}` must be one of {', '.join(map(repr, allowed))}. "
                    f"Received: {option}={getattr(self, option)!r}."
                )
        for option in ("max_epochs", "mini_batch_size", "verbose_frequency", "num_samples"):
            value = getattr(self, option)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionError(
                    f"GanOptions: `{option}` must be an int >= 1. Received: {option}={value!r}."
                )
        for option in ("generator_learn_rate", "discriminator_learn_rate"):
            value = getattr(self, option)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise OptionError(
                    f"GanOptions: `{option}` must be a number > 0. Received: {option}={value!r}."
                )
        if not 0 <= self.flip_factor < 0.5:
            raise OptionError(
                f"GanOptions: `flip_factor` must be in [0, 0.5). Received: {self.flip_factor!r}."
            )


@dataclass
class GanResult:
    """Trained generator and discriminator, their history, and fixed-latent samples.

    Example:
        >>> import torch
        >>> result = GanResult(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1), TrainingHistory(), 2)
        >>> result.generate(4).shape
        torch.Size([4, 3])
    """

    generator: torch.nn.Module
    discriminator: torch.nn.Module
    history: TrainingHistory
    latent_size: int
    samples: list[torch.Tensor] = field(default_factory=list)

    @torch.no_grad()
    def generate(self, count: int, *, seed: int | None = None) -> torch.Tensor:
        """``count`` new observations from the generator (on the CPU)."""
        device = next(self.generator.parameters()).device
        generator = torch.Generator(device=device)
        generator.manual_seed(seed if seed is not None else random.randrange(2**31))
        latent = torch.randn(count, self.latent_size, generator=generator, device=device)
        was_training = self.generator.training
        self.generator.eval()
        try:
            return self.generator(latent).float().cpu()
        finally:
            self.generator.train(was_training)

    def plot(self, path: str | os.PathLike = "gan-progress.png") -> Path:
        """Write losses, discriminator scores and the latest generated samples to a PNG."""
        return _draw(self.history, self.samples[-1] if self.samples else None, path)


def _grid(images: torch.Tensor) -> np.ndarray:
    images = images.float()
    if images.dim() == 2:  # flat features: show as one row image each
        images = images[:, None, None, :]
    count = images.shape[0]
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    c, h, w = images.shape[1:]
    low, high = float(images.min()), float(images.max())
    images = (images - low) / max(high - low, 1e-12)
    canvas = torch.ones(c, rows * (h + 1), columns * (w + 1))
    for index in range(count):
        r, q = divmod(index, columns)
        canvas[:, r * (h + 1) : r * (h + 1) + h, q * (w + 1) : q * (w + 1) + w] = images[index]
    array = canvas.permute(1, 2, 0).numpy()
    return array[..., 0] if c == 1 else array[..., :3]


def _draw(history: TrainingHistory, samples: torch.Tensor | None, path: Any) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from deeptoolbox.training._progress import _atomic_png

    figure = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2, 2, width_ratios=[2, 1])
    iterations = history.column("iteration")
    for row, (title, names) in enumerate([
        ("Loss", ("generator_loss", "discriminator_loss")), ("Score", ("real_score", "fake_score"))
    ]):  # fmt: skip
        axes = figure.add_subplot(grid[row, 0])
        for name in names:
            axes.plot(iterations, history.column(name), label=name.replace("_", " "))
        axes.set_title(title, fontsize=9)
        axes.legend(fontsize=7)
        axes.grid(alpha=0.3)
    axes = figure.add_subplot(grid[:, 1])
    if samples is not None:
        axes.imshow(_grid(samples), cmap="gray")
    axes.set_title("Generated samples", fontsize=9)
    axes.axis("off")
    figure.tight_layout()
    return _atomic_png(figure, path)


def _latent_size(generator: torch.nn.Module, option: int | None) -> int:
    if option is not None:
        return option
    if isinstance(generator, Network) and len(generator.input_names) == 1:
        size = getattr(generator.layer(generator.input_names[0]), "shape", None)
        if size is not None and len(size) == 1:
            return int(size[0])
    raise OptionError(
        "train_gan: cannot tell the generator's latent size. Set GanOptions(latent_size=...) "
        "or give the generator a FeatureInput layer."
    )


_COLUMNS = [("Epoch", "epoch"), ("Iteration", "iteration"), ("Time Elapsed", None),
            ("Generator Loss", "generator_loss"), ("Discriminator Loss", "discriminator_loss"),
            ("Real Score", "real_score"), ("Fake Score", "fake_score")]  # fmt: skip


class _GanStep:
    """One adversarial iteration: discriminator update, then generator update."""

    def __init__(self, generator, discriminator, options: GanOptions, latent: int, device):
        betas = (options.gradient_decay_factor, options.squared_gradient_decay_factor)
        self.g, self.options, self.latent, self.device = generator, options, latent, device
        self.d = loss_forward(discriminator, Loss("binary-crossentropy"))  # logits
        self.g_optimizer = torch.optim.Adam(
            [p for p in generator.parameters() if p.requires_grad],
            lr=options.generator_learn_rate, betas=betas,
        )  # fmt: skip
        self.d_optimizer = torch.optim.Adam(
            [p for p in discriminator.parameters() if p.requires_grad],
            lr=options.discriminator_learn_rate, betas=betas,
        )  # fmt: skip

    def __call__(self, real: torch.Tensor) -> torch.Tensor:
        count = real.shape[0]
        noise = torch.randn(count, self.latent, device=self.device)
        fake = self.g(noise)
        real_logits = self.d(real).reshape(count, -1).mean(1)
        fake_logits = self.d(fake.detach()).reshape(count, -1).mean(1)
        real_labels = torch.ones_like(real_logits)
        if self.options.flip_factor:
            flip = torch.rand(count, device=self.device) < self.options.flip_factor
            real_labels = torch.where(flip, 0.0, real_labels)
        d_loss = F.binary_cross_entropy_with_logits(real_logits, real_labels) + (
            F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        )
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()
        generated_logits = self.d(fake).reshape(count, -1).mean(1)
        g_loss = F.binary_cross_entropy_with_logits(  # non-saturating: -log D(G(z))
            generated_logits, torch.ones_like(generated_logits)
        )
        self.g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_optimizer.step()
        return torch.stack([g_loss.detach(), d_loss.detach(),
                            torch.sigmoid(real_logits.detach()).mean(),
                            torch.sigmoid(fake_logits.detach()).mean()])  # fmt: skip


def _seed(options: GanOptions) -> int:
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**31)
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    return seed


def _record(values: torch.Tensor, iteration: int, epoch: int, elapsed: float) -> dict[str, Any]:
    g_loss, d_loss, real, fake = values.tolist()
    if not (math.isfinite(g_loss) and math.isfinite(d_loss)):
        raise TrainingError(
            f"train_gan: the loss became NaN/Inf at iteration {iteration}. Hint: lower the learn "
            "rates, or normalize the images to [-1, 1] to match a Tanh generator output."
        )
    return {"iteration": iteration, "epoch": epoch, "generator_loss": g_loss,
            "discriminator_loss": d_loss, "real_score": real, "fake_score": fake,
            "time": elapsed}  # fmt: skip


def train_gan(
    generator: torch.nn.Module,
    discriminator: torch.nn.Module,
    data: Any,
    options: GanOptions | None = None,
) -> GanResult:
    """Train a generative adversarial network on real observations ``data``.

    ``data`` holds real observations only: a tensor or array, a Dataset, a DataLoader or an
    iterable of batches (targets, if present, are ignored). The generator maps latent vectors
    (``latent_size``, read from its FeatureInput) to observations; the discriminator gives one
    logit (or probability, through a final Sigmoid) per observation. Both are trained in place
    with Adam at their own learn rates; the non-saturating generator loss is used.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> generator = Network([L.FeatureInput(2), L.Dense(8), L.ReLU(), L.Dense(1)])
        >>> discriminator = Network([L.FeatureInput(1), L.Dense(8), L.ReLU(), L.Dense(1),
        ...                          L.Sigmoid()])
        >>> real = torch.randn(256, 1) * 0.5 + 2.0
        >>> result = train_gan(generator, discriminator, real,
        ...                    GanOptions(max_epochs=2, mini_batch_size=64, verbose=False, seed=0))
        >>> result.generate(10).shape, len(result.history.iterations)
        (torch.Size([10, 1]), 8)
    """
    options = options or GanOptions()
    if not isinstance(options, GanOptions):
        raise OptionError(
            f"train_gan: `options` must be GanOptions. Received: {type(options).__name__}."
        )
    latent = _latent_size(generator, options.latent_size)
    seed = _seed(options)
    device = place(options.execution_environment, "32").device
    generator.to(device).train()
    discriminator.to(device).train()
    source = make_source(data, 1, "train_gan: `data`").configure(
        options.mini_batch_size, options.shuffle, seed
    )
    step = _GanStep(generator, discriminator, options, latent, device)
    fixed = torch.randn(options.num_samples, latent, device=device)
    result = GanResult(generator, discriminator, TrainingHistory(), latent)
    _loop(step, source, options, result, fixed)
    generator.eval()
    discriminator.eval()
    return result


def _loop(step: _GanStep, source, options: GanOptions, result: GanResult, fixed) -> None:
    per_epoch = source.batches_per_epoch()
    display = ConsoleDisplay(
        options.verbose, _COLUMNS, per_epoch and per_epoch * options.max_epochs
    )
    display.start(str(step.device), "float32")
    start, last_plot, iteration = time.perf_counter(), 0.0, 0
    path = Path(options.plot_path or "gan-progress.png")
    for epoch in range(1, options.max_epochs + 1):
        for batch, _ in source.epoch(epoch - 1):
            iteration += 1
            values = step(batch.inputs[0].to(step.device, non_blocking=True).float())
            record = _record(values, iteration, epoch, time.perf_counter() - start)
            result.history.iterations.append(record)
            display.advance(iteration)
            if iteration == 1 or iteration % options.verbose_frequency == 0:
                display.row(record, record["time"])
            if options.plots != "none" and time.perf_counter() - last_plot > options.plot_frequency:
                _snapshot_samples(step, fixed, result)
                result.plot(path)
                last_plot = time.perf_counter()
        epoch_rows = [r for r in result.history.iterations if r["epoch"] == epoch]
        result.history.epochs.append({
            "epoch": epoch, "iteration": iteration,
            **{k: float(np.mean([r[k] for r in epoch_rows])) for k in
               ("generator_loss", "discriminator_loss", "real_score", "fake_score")},
        })  # fmt: skip
    _snapshot_samples(step, fixed, result)
    display.finish("max epochs completed")
    if options.plots != "none":
        result.plot(path)


@torch.no_grad()
def _snapshot_samples(step: _GanStep, fixed: torch.Tensor, result: GanResult) -> None:
    step.g.eval()
    result.samples.append(step.g(fixed).float().cpu())
    step.g.train()
