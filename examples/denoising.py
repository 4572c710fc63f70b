"""Image denoising with a DnCNN residual network trained on noisy/clean pairs made on the fly.

The MATLAB workflow of "Train and Apply Denoising Neural Networks", on images the toolbox
generates (``datasets.shapes`` without pixel noise, read back as gray PNG files):

1. write the clean images as files and read them with an ImageDatastore (``color="gray"``);
2. wrap the training images in a DenoisingImageDatastore: every read crops a random patch
   and adds Gaussian noise of a random standard deviation, so each epoch sees new pairs
   (MATLAB's ``denoisingImageDatastore``); the held-out images get fixed, seeded noise;
3. build a DnCNN (``vision.dncnn``, MATLAB's ``denoisingNetwork("DnCNN")``) and train it
   with ``train`` and the "mse" loss: the network learns the noise and subtracts it;
4. denoise the held-out images (``vision.denoise_image``, MATLAB's ``denoiseImage``) and
   score noisy and denoised images against the clean ones with PSNR and SSIM
   (``vision.evaluate_denoising``), at several noise levels.

Writes ``denoising-before-after.png`` into ``--output`` (printed at the end); ``--images``,
``--epochs``... reduce the run (the smoke test).
Run: ``python examples/denoising.py`` (a few minutes on two CPU cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _figures import image_grid  # examples/_figures.py

from deeptoolbox import datasets, train
from deeptoolbox.data import ImageDatastore
from deeptoolbox.training import TrainingOptions
from deeptoolbox.vision import DenoisingImageDatastore, denoise_image, dncnn, evaluate_denoising

TEST_NOISE = (0.05, 0.1, 0.2)  # standard deviations of the held-out noise, images in [0, 1]


def gray_images(folder: Path, n: int, size: int, seed: int) -> ImageDatastore:
    """Generated clean shapes written as PNG files and read back as 1-channel images."""
    data = datasets.shapes(n, image_size=size, noise=0.0, seed=seed)
    datasets.write_image_folder(folder, data.images, ["all"] * n)  # files in shapes' order
    return ImageDatastore(folder, labels=None, color="gray")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=320)
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--patch-size", type=int, default=32)
    parser.add_argument("--patches-per-image", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--output", default="denoising-output")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    torch.manual_seed(0)  # the training patches and noise draw from torch's generator
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        images = gray_images(Path(folder), args.images, args.image_size, seed=0)
        n_test = max(4, args.images // 5)
        train_images = images.subset(np.arange(n_test, len(images)))
        test_images = images.subset(np.arange(n_test))
        pairs = DenoisingImageDatastore(train_images, noise_std=(0.02, 0.25),
                                        patch_size=args.patch_size,
                                        patches_per_image=args.patches_per_image)  # fmt: skip
        held_out = {
            s: DenoisingImageDatastore(test_images, noise_std=s, seed=1) for s in TEST_NOISE
        }
        net = dncnn(1, depth=args.depth, filters=args.filters)
        options = TrainingOptions(solver="adam", initial_learn_rate=1e-3, max_epochs=args.epochs,
                                  mini_batch_size=16, verbose=False, seed=0)  # fmt: skip
        result = train(net, pairs, "mse", options)
        metrics = {s: evaluate_denoising(net, ds) for s, ds in held_out.items()}
        shown = [held_out[0.1][i] for i in range(4)]
        noisy = torch.stack([n for n, _ in shown])
        denoised = denoise_image(net, noisy)
        image_grid(output / "denoising-before-after.png",
             [[clean, n, d, (n - clean).abs() * 3, (d - clean).abs() * 3]
              for (n, clean), d in zip(shown, denoised, strict=True)],
             ["clean", "noisy (0.1)", "DnCNN", "|noisy - clean| x3", "|DnCNN - clean| x3"])  # fmt: skip
    for s, m in metrics.items():
        print(f"noise std {s}: PSNR {m.psnr_noisy:.2f} -> {m.psnr_denoised:.2f} dB "
              f"(gain {m.psnr_gain:.2f} dB), SSIM {m.ssim_noisy:.3f} -> {m.ssim_denoised:.3f}")  # fmt: skip
    summary = {
        "psnr_gain": {s: round(m.psnr_gain, 3) for s, m in metrics.items()},
        "psnr_noisy": {s: round(m.psnr_noisy, 3) for s, m in metrics.items()},
        "psnr_denoised": {s: round(m.psnr_denoised, 3) for s, m in metrics.items()},
        "ssim_noisy": {s: round(m.ssim_noisy, 4) for s, m in metrics.items()},
        "ssim_denoised": {s: round(m.ssim_denoised, 4) for s, m in metrics.items()},
        "final_loss": result.history.epochs[-1]["loss"],
        "train_pairs": len(pairs),
        "test_images": n_test,
        "seconds": round(time.perf_counter() - start, 1),
        "output": output,
    }
    print(f"pictures written to {output.resolve()}/ ({summary['seconds']} s)")
    return summary


if __name__ == "__main__":
    main()
