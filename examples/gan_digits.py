"""Synthesize extra 8x8 digit images with a GAN trained by deeptoolbox.train_gan.

Trains a small generator / discriminator pair on scikit-learn's bundled digits, then writes:

- ``gan-progress.png``: losses, discriminator scores and generated samples as training went;
- ``synthetic-digits.png``: a grid of new images;
- ``synthetic-digits.npy``: the new images, (count, 1, 8, 8), values in [0, 16] like the data;
- ``generator.zip``: the generator network (deeptoolbox.save format).

Run: ``python examples/gan_digits.py --epochs 300 --output gan-output`` (about two minutes
on two CPU cores). The smoke test in tests/training runs it with ``--epochs 1``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import deeptoolbox as dtb
from deeptoolbox import layers as L
from deeptoolbox.training import GanOptions, train_gan

LATENT = 16


def build_generator() -> dtb.Network:
    return dtb.Network(
        [L.FeatureInput(LATENT, name="noise"), L.Dense(128, name="fc1"), L.LeakyReLU(0.2),
         L.Dense(128, name="fc2"), L.LeakyReLU(0.2), L.Dense(64, name="fc3"), L.Tanh(),
         L.Reshape((1, 8, 8), name="image")],
        name="digit-generator",
    )  # fmt: skip


def build_discriminator() -> dtb.Network:
    return dtb.Network(
        [L.ImageInput((1, 8, 8), name="image"), L.Flatten(), L.Dense(128, name="fc1"),
         L.LeakyReLU(0.2), L.Dropout(0.3), L.Dense(64, name="fc2"), L.LeakyReLU(0.2),
         L.Dense(1, name="score"), L.Sigmoid(name="probability")],
        name="digit-discriminator",
    )  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--count", type=int, default=64, help="synthetic images to write")
    parser.add_argument("--output", default="gan-output")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from sklearn.datasets import load_digits

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    images = torch.tensor(load_digits().images, dtype=torch.float32).unsqueeze(1)
    real = images / 8.0 - 1.0  # [0, 16] -> [-1, 1], the range of the generator's Tanh
    torch.manual_seed(args.seed)
    generator, discriminator = build_generator(), build_discriminator()
    options = GanOptions(
        max_epochs=args.epochs, mini_batch_size=64, generator_learn_rate=1e-3,
        discriminator_learn_rate=5e-4, verbose_frequency=200, plots="training-progress",
        plot_path=output / "gan-progress.png", plot_frequency=20.0, seed=args.seed,
        execution_environment="cpu",
    )  # fmt: skip
    result = train_gan(generator, discriminator, real, options)
    synthetic = (result.generate(args.count, seed=args.seed) + 1.0) * 8.0
    paths = {
        "progress": output / "gan-progress.png",
        "images": output / "synthetic-digits.npy",
        "grid": output / "synthetic-digits.png",
        "generator": dtb.save(result.generator, output / "generator.zip"),
    }
    np.save(paths["images"], synthetic.numpy())
    _save_grid(synthetic, paths["grid"])
    for what, path in paths.items():
        print(f"  {what:9s} {path.resolve()}")
    return paths


def _save_grid(images: torch.Tensor, path: Path) -> None:
    from matplotlib.figure import Figure

    from deeptoolbox.training._gan import _grid

    figure = Figure(figsize=(4, 4), dpi=100)
    axes = figure.add_subplot()
    axes.imshow(_grid(images), cmap="gray_r")
    axes.axis("off")
    figure.savefig(path)


if __name__ == "__main__":
    main()
