"""Semantic segmentation of circles, squares and triangles with a U-Net.

The MATLAB workflow of "Semantic Segmentation Using Deep Learning", on data the toolbox
generates (``datasets.shapes``: one shape per image, with its mask):

1. write the images and their label maps as PNG files, and read them back with an
   ImageDatastore and a PixelLabelDatastore (gray value k = class k), paired by a
   PixelLabelImageDatastore that augments image and labels together (flips, rotation,
   zoom);
2. weight the classes by median frequency (the background covers most pixels);
3. build a U-Net (``vision.unet``) and train it with ``train`` and the weighted per-pixel
   cross-entropy plus Dice loss;
4. segment held-out images (``vision.segment``), score them with
   ``vision.evaluate_segmentation`` (global accuracy, mean IoU, per-class IoU...) and draw
   the label overlays.

Writes ``segmentation-overlay.png`` and ``segmentation-augmentation.png`` into ``--output``
(printed at the end); ``--images``, ``--epochs``... reduce the run (the smoke test).
Run: ``python examples/segmentation_shapes.py`` (a few minutes on two CPU cores).
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
from deeptoolbox.vision import (
    PixelLabelDatastore,
    PixelLabelImageDatastore,
    SegmentationAugmenter,
    evaluate_segmentation,
    label_overlay,
    segment,
    segmentation_loss,
    unet,
    write_pixel_labels,
)

CLASSES = ["background", "circle", "square", "triangle"]


def labelled_files(folder: Path, n: int, size: int, seed: int) -> PixelLabelImageDatastore:
    """Generated shapes written as image and label files, read back as one datastore."""
    data = datasets.shapes(n, image_size=size, noise=0.08, seed=seed)
    datasets.write_image_folder(folder / "images", data.images, ["all"] * n)
    write_pixel_labels(folder / "labels", data.masks)
    images = ImageDatastore(folder / "images", labels=None)
    labels = PixelLabelDatastore(folder / "labels", CLASSES, label_ids=[0, 1, 2, 3])
    augmenter = SegmentationAugmenter(flip="both", rotation=20, scale=(0.8, 1.2))
    return PixelLabelImageDatastore(images, labels, augmenter=augmenter)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--output", default="segmentation-output")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    torch.manual_seed(0)  # the augmentation draws from torch's generator
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        ds = labelled_files(Path(folder), args.images, args.image_size, seed=0)
        n_test = max(8, args.images // 5)
        train_ds, test_ds = ds.subset(np.arange(n_test, len(ds))), ds.subset(np.arange(n_test))
        weights = ds.pixel_labels.class_weights("median-frequency")
        size = args.image_size
        net = unet((3, size, size), len(CLASSES), depth=args.depth, filters=args.filters,
                   classes=CLASSES)  # fmt: skip
        options = TrainingOptions(solver="adam", initial_learn_rate=3e-3, max_epochs=args.epochs,
                                  mini_batch_size=16, verbose=False, seed=0)  # fmt: skip
        loss = segmentation_loss("crossentropy+dice", class_weights=weights)
        result = train(net, train_ds, loss, options)
        predicted = segment(net, test_ds)
        metrics = evaluate_segmentation(predicted, test_ds, classes=CLASSES)
        test_ds.eval()
        shown = [test_ds[i] for i in range(4)]
        image_grid(output / "segmentation-overlay.png",
             [[(img * 255).round().to(torch.uint8), label_overlay(img, truth, included_labels=[1, 2, 3]),
               label_overlay(img, predicted[i], included_labels=[1, 2, 3])]
              for i, (img, truth) in enumerate(shown)],
             ["image", "truth", "U-Net"])  # fmt: skip
        train_ds.train()
        torch.manual_seed(1)
        image, truth = train_ds.eval()[0]
        augmented = [train_ds.train()[0] for _ in range(4)]
        image_grid(output / "segmentation-augmentation.png",
             [[(img * 255).round().to(torch.uint8) for img, _ in [(image, truth), *augmented]],
              [label_overlay(torch.zeros_like(img), lab, included_labels=[1, 2, 3], transparency=0)
               for img, lab in [(image, truth), *augmented]]],
             ["original", "augmented", "augmented", "augmented", "augmented"])  # fmt: skip
    print(metrics)
    summary = {
        "mean_iou": metrics.mean_iou,
        "global_accuracy": metrics.global_accuracy,
        "weighted_iou": metrics.weighted_iou,
        "iou": dict(zip(CLASSES, metrics.iou.round(4).tolist(), strict=True)),
        "class_weights": [round(w, 3) for w in weights],
        "final_loss": result.history.epochs[-1]["loss"],
        "test_images": n_test,
        "seconds": round(time.perf_counter() - start, 1),
        "output": output,
    }
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()})
    print(f"pictures written to {output.resolve()}/ ({summary['seconds']} s)")
    return summary


if __name__ == "__main__":
    main()
