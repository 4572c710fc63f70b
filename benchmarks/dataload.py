"""Image loading throughput: ImageDatastore + loader against torchvision ImageFolder + DataLoader.

Both read the same generated folder of small PNGs (class subfolders), with the same batch size
and number of workers, and give float32 (N, 3, H, W) batches in [0, 1] with int64 labels
(ImageFolder with ``transforms.ToTensor()``, the usual recipe). Runs alternate (datastore,
ImageFolder, datastore, ...) in one process; the printed figure is the median images/s over
the rounds and the ratio datastore / ImageFolder (above 1: the datastore is faster).
A noise-floor row times ImageFolder against itself. Target (issue 3): ratio >= 1.

Run: ``.venv/bin/python benchmarks/dataload.py [--images 2400] [--rounds 5] [--size 32]``.
Recorded figures live in docs/performance.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import datasets as tv_datasets
from torchvision import transforms

from deeptoolbox.data import ImageDatastore, loader


def make_folder(root: Path, images: int, size: int, classes: int = 10) -> Path:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(classes, size, size, 3), dtype=np.uint8)
    for i in range(images):
        folder = root / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        noise = rng.integers(0, 32, size=(size, size, 3), dtype=np.uint8)
        Image.fromarray(base[i % classes] // 2 + noise).save(folder / f"{i:05d}.png")
    return root


def epoch(batches: Callable[[], object]) -> tuple[float, int]:
    start = time.perf_counter()
    count = 0
    for _images, labels in batches():  # type: ignore[attr-defined]
        count += len(labels)
    return time.perf_counter() - start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2400)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)  # decoding, not math: keep the comparison about the pipeline
    with tempfile.TemporaryDirectory() as temp:
        root = make_folder(Path(temp), args.images, args.size)
        datastore = ImageDatastore(root)
        folder = tv_datasets.ImageFolder(str(root), transform=transforms.ToTensor())
        first_ds, first_tv = datastore[0], folder[0]
        assert torch.equal(first_ds[0], first_tv[0]) and int(first_ds[1]) == first_tv[1]
        print(
            f"{args.images} PNGs of {args.size}x{args.size}, batch {args.batch_size}, "
            f"{args.rounds} interleaved rounds, torch {torch.__version__}"
        )
        print(
            f"{'workers':>7} | {'ImageDatastore':>16} | {'ImageFolder':>14} | ratio | noise floor"
        )
        for workers in args.workers:
            runs: dict[str, list[float]] = {"ds": [], "tv": [], "tv2": []}

            def ds_batches(w: int = workers) -> object:
                return loader(datastore, args.batch_size, shuffle=True, workers=w)

            def tv_batches(w: int = workers) -> object:
                return DataLoader(folder, args.batch_size, shuffle=True, num_workers=w)

            for _ in range(args.rounds):
                for name, batches in (("ds", ds_batches), ("tv", tv_batches), ("tv2", tv_batches)):
                    seconds, count = epoch(batches)
                    runs[name].append(count / seconds)
            ds_rate, tv_rate = statistics.median(runs["ds"]), statistics.median(runs["tv"])
            floor = statistics.median(runs["tv2"]) / tv_rate
            print(
                f"{workers:>7} | {ds_rate:>10.0f} img/s | {tv_rate:>8.0f} img/s | "
                f"{ds_rate / tv_rate:5.2f} | {floor:5.2f}"
            )


if __name__ == "__main__":
    main()
