"""Object detection of circles, squares and triangles with FCOS and a small backbone.

The MATLAB workflow of "Object Detection Using YOLO v4 Deep Learning", on data the toolbox
generates (``datasets.detection_shapes``: several shapes per image, with their boxes):

1. write the boxes as a CSV table (one row per box) and read them back with a
   BoxLabelDatastore, paired with the images by a BoxLabelImageDatastore that augments
   images and boxes together (flips, zoom, colour);
2. build an ObjectDetector (FCOS over torchvision, a small toolbox backbone, no
   downloads) and train it with ``train(detector, data, "model")``: the detector's own
   losses;
3. detect objects in held-out images (``vision.detect``), score them with
   ``vision.evaluate_detection`` (COCO mAP@[0.5:0.95], mAP@0.5, per-class AP,
   precision-recall curves) and draw the boxes;
4. explain one detection with D-RISE (``vision.drise``).

Writes ``detection-boxes.png``, ``detection-augmentation.png``,
``detection-precision-recall.png`` and ``detection-drise.png`` into ``--output`` (printed
at the end); ``--images``, ``--epochs``... reduce the run (the smoke test).
Run: ``python examples/detection_shapes.py`` (a few minutes on one CPU core).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _figures import image_grid  # examples/_figures.py

from deeptoolbox import datasets, train
from deeptoolbox.training import TrainingOptions
from deeptoolbox.vision import (
    BoxLabelDatastore,
    BoxLabelImageDatastore,
    DetectionAugmenter,
    ObjectDetector,
    box_overlay,
    detect,
    drise,
    evaluate_detection,
)


def write_box_table(path: Path, data: datasets.DetectionShapesData) -> Path:
    """The generated boxes as a CSV table, one row per box (as a labelling tool exports)."""
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["file", "x_min", "y_min", "x_max", "y_max", "label"])
        for i, (boxes, labels) in enumerate(zip(data.boxes, data.labels, strict=True)):
            for box, label in zip(boxes, labels, strict=True):
                writer.writerow([f"{i:05d}.png", *box.tolist(), label])
    return path


def heat(saliency: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """The saliency map (scaled to its range) as a red overlay on the image."""
    scaled = (saliency - saliency.min()) / (saliency.max() - saliency.min() + 1e-12)
    red = torch.stack([scaled, torch.zeros_like(scaled), 1 - scaled])
    return 0.45 * image + 0.55 * red


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=360)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--masks", type=int, default=1000)
    parser.add_argument("--output", default="detection-output")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    torch.manual_seed(0)  # the detector's initial weights and the augmentation draw from it
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    size = args.image_size
    data = datasets.detection_shapes(args.images, image_size=size, seed=0)
    with tempfile.TemporaryDirectory() as folder:
        boxes = BoxLabelDatastore.from_csv(write_box_table(Path(folder) / "boxes.csv", data),
                                           classes=list(data.classes))  # fmt: skip
    augmenter = DetectionAugmenter(flip="both")
    ds = BoxLabelImageDatastore(data.images, boxes, augmenter=augmenter)
    n_test = max(8, args.images // 6)
    train_ds, test_ds = ds.subset(np.arange(n_test, len(ds))), ds.subset(np.arange(n_test))
    detector = ObjectDetector(ds.classes, "fcos", backbone="small", input_size=(size, size))
    options = TrainingOptions(solver="adam", initial_learn_rate=3e-3, max_epochs=args.epochs,
                              mini_batch_size=16, verbose=False, seed=0)  # fmt: skip
    result = train(detector, train_ds, "model", options)
    trained = time.perf_counter() - start
    found = detect(detector, test_ds, threshold=0.05)  # low: the whole precision-recall curve
    metrics = evaluate_detection(found, test_ds)
    metrics.plot_precision_recall(output / "detection-precision-recall.png")
    test_ds.eval()
    shown = [test_ds[i] for i in range(4)]
    confident = [{k: v[f["scores"] >= 0.5] if torch.is_tensor(v) else
                  [n for n, s in zip(v, f["scores"], strict=True) if s >= 0.5]
                  for k, v in f.items()} for f in found[:4]]  # fmt: skip
    image_grid(output / "detection-boxes.png",
               [[box_overlay(img, t["boxes"], t["labels"], classes=ds.classes),
                 box_overlay(img, f, classes=ds.classes)]
                for (img, t), f in zip(shown, confident, strict=True)],
               ["truth", "FCOS (score >= 0.5)"])  # fmt: skip
    train_ds.train()
    image, target = train_ds.eval()[0]
    augmented = [train_ds.train()[0] for _ in range(4)]
    image_grid(output / "detection-augmentation.png",
               [[box_overlay(img, t["boxes"], t["labels"], classes=ds.classes)
                 for img, t in [(image, target), *augmented]]],
               ["original", "augmented", "augmented", "augmented", "augmented"])  # fmt: skip
    best = confident[0]
    explained = None
    if len(best["scores"]):
        box, label = best["boxes"][0], int(best["labels"][0])
        saliency = drise(detector, shown[0][0], box, label, num_masks=args.masks, seed=0)
        peak_y, peak_x = divmod(int(saliency.argmax()), saliency.shape[1])
        margin = 2
        explained = {
            "box": [round(v, 1) for v in box.tolist()], "class": ds.classes[label],
            "peak": (peak_x, peak_y),
            "peak_in_box": bool(box[0] - margin <= peak_x <= box[2] + margin
                                and box[1] - margin <= peak_y <= box[3] + margin),
        }  # fmt: skip
        image_grid(output / "detection-drise.png",
                   [[box_overlay(shown[0][0], box[None], [ds.classes[label]], classes=ds.classes),
                     heat(saliency, shown[0][0])]],
                   ["detection", "D-RISE saliency"])  # fmt: skip
    print(metrics)
    summary = {
        "map_50": metrics.map_50,
        "map": metrics.map,
        "map_75": metrics.map_75,
        "ap_50": {k: round(v, 4) for k, v in metrics.ap_50.items()},
        "final_loss": result.history.epochs[-1]["loss"],
        "test_images": n_test,
        "objects": int(sum(len(b) for b in data.boxes)),
        "drise": explained,
        "training_seconds": round(trained, 1),
        "seconds": round(time.perf_counter() - start, 1),
        "output": output,
    }
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()})
    print(f"pictures written to {output.resolve()}/ ({summary['seconds']} s)")
    return summary


if __name__ == "__main__":
    torch.set_num_threads(1)  # a small network: threads on a shared CPU only wait for each other
    main()
