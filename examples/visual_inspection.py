"""Visual inspection: find scratches, holes and stains on textured parts, trained on normal parts only.

The workflow of MATLAB's Automated Visual Inspection Library examples ("Detect Image Anomalies
Using Explainable FCDD Network"), on parts the toolbox generates (``datasets.inspection``):

1. draw normal parts for training, other normal parts for the threshold, and a test set of
   normal and defective parts with the defects' pixel masks (three seeds);
2. train two detectors on the normal parts with one call, ``vision.train_anomaly_detector``:
   PatchCore (patch features of a fixed backbone, a greedy-coreset memory bank, distances
   to the nearest normal patch) and FCDD (a fully convolutional network trained from scratch
   with ``train()`` on the normal parts and synthetic "confetti" anomalies);
3. set each detector's threshold on the held-out normal parts (``vision.fit_threshold``,
   5% false positives);
4. score the test parts (``vision.evaluate_anomaly_detection``): image AUROC, pixel AUROC,
   F1 at the threshold, per defect kind; draw the anomaly maps over the parts
   (``vision.anomaly_overlay``) and the score distributions.

Writes ``inspection-overlays.png`` and ``inspection-scores.png`` into ``--output`` (printed
at the end); ``--train-images``, ``--epochs``... reduce the run (the smoke test).
Run: ``python examples/visual_inspection.py`` (under a minute on two CPU cores).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _figures import image_grid  # examples/_figures.py

from deeptoolbox import datasets
from deeptoolbox.training import TrainingOptions
from deeptoolbox.vision import (
    FCDDDetector,
    PatchCoreDetector,
    anomaly_map,
    anomaly_overlay,
    evaluate_anomaly_detection,
    fit_threshold,
    train_anomaly_detector,
)


def score_figure(path: Path, results: dict, anomalous: np.ndarray) -> None:
    """Histograms of the image scores of normal and defective test parts, with the threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.0), squeeze=False)
    for axis, (name, metrics) in zip(axes[0], results.items(), strict=True):
        bins = np.linspace(0, float(metrics.scores.max()) * 1.05, 30)
        axis.hist(metrics.scores[~anomalous], bins=bins, alpha=0.7, label="normal")
        axis.hist(metrics.scores[anomalous], bins=bins, alpha=0.7, label="defective")
        axis.axvline(metrics.threshold, color="k", linestyle="--", label="threshold")
        axis.set_title(f"{name}: image AUROC {metrics.image_auroc:.3f}", fontsize=9)
        axis.set_xlabel("image score (max of the anomaly map)")
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-images", type=int, default=100)
    parser.add_argument("--validation-images", type=int, default=30)
    parser.add_argument("--test-images", type=int, default=45, help="normal and defective each")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--coreset-fraction", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=10, help="FCDD training epochs")
    parser.add_argument("--views-per-image", type=int, default=8, help="FCDD: views per epoch")
    parser.add_argument("--output", default="visual-inspection-output")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    size = args.image_size
    train_parts = datasets.inspection(args.train_images, 0, image_size=size, seed=0)
    validation = datasets.inspection(args.validation_images, 0, image_size=size, seed=1)
    test = datasets.inspection(args.test_images, args.test_images, image_size=size, seed=2)
    options = TrainingOptions(solver="adam", initial_learn_rate=1e-3, max_epochs=args.epochs,
                              mini_batch_size=16, verbose=False, seed=0)  # fmt: skip
    torch.manual_seed(0)  # the FCDD network's initial weights: the same run every time
    detectors = {
        "PatchCore": (PatchCoreDetector(coreset_fraction=args.coreset_fraction), None),
        "FCDD": (FCDDDetector(views_per_image=args.views_per_image), options),
    }
    results, per_defect, seconds, maps = {}, {}, {}, {}
    for name, (detector, training_options) in detectors.items():
        began = time.perf_counter()
        train_anomaly_detector(detector, train_parts.images, training_options)
        fit_threshold(detector, validation.images, false_positive_rate=0.05)
        seconds[name] = round(time.perf_counter() - began, 1)
        results[name] = evaluate_anomaly_detection(detector, test.images, test.labels, test.masks)
        per_defect[name] = {}
        for defect in ("scratch", "hole", "stain"):
            part = test.subset((test.labels == "normal") | (test.labels == defect))
            m = evaluate_anomaly_detection(detector, part.images, part.labels, part.masks)
            per_defect[name][defect] = round(m.image_auroc, 3)
        maps[name] = anomaly_map(detector, test.images)
        m = results[name]
        print(f"{name}: image AUROC {m.image_auroc:.3f}, pixel AUROC {m.pixel_auroc:.3f}, "
              f"F1 {m.f1:.3f} at threshold {m.threshold:.3f} (precision {m.precision:.3f}, "
              f"recall {m.recall:.3f}, false positives {m.false_positive_rate:.3f}); "
              f"per defect {per_defect[name]}; trained in {seconds[name]} s")  # fmt: skip
    shown = [
        int(np.flatnonzero(test.labels == kind)[0])
        for kind in ("normal", "scratch", "hole", "stain")
    ]
    rows = []
    for i in shown:
        image = torch.as_tensor(test.images[i])
        row = [image, torch.as_tensor(test.masks[i])[None].float()]
        for name in detectors:
            high = float(maps[name].max())
            row.append(anomaly_overlay(image, maps[name][i], map_range=(0.0, high)))
        rows.append(row)
    image_grid(output / "inspection-overlays.png", rows,
               ["part", "defect mask", "PatchCore map", "FCDD map"])  # fmt: skip
    score_figure(output / "inspection-scores.png", results, test.anomalous)
    summary = {
        **{f"{name.lower()}_image_auroc": round(m.image_auroc, 4) for name, m in results.items()},
        **{f"{name.lower()}_pixel_auroc": round(m.pixel_auroc, 4) for name, m in results.items()},
        **{f"{name.lower()}_f1": round(m.f1, 4) for name, m in results.items()},
        "per_defect_image_auroc": per_defect,
        "memory_bank": tuple(detectors["PatchCore"][0].memory_bank.shape),
        "training_seconds": seconds,
        "test_images": len(test.labels),
        "seconds": round(time.perf_counter() - start, 1),
        "output": output,
    }
    print(f"pictures written to {output.resolve()}/ ({summary['seconds']} s)")
    return summary


if __name__ == "__main__":
    main()
