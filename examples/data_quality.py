"""Find bad data and wrong labels in a folder of digits, fix them, and train on the fixed data.

The workflow of MATLAB's data-quality and labeling tools, on scikit-learn's digits written as
PNG files in ``train/<class>/`` and ``test/<class>/`` folders:

1. plant the problems a real folder has: corrupt files, duplicates (one of them also in the
   test split: leakage), a JPEG re-encoded copy, an all-black image, and 5% of the training
   images in the wrong class folder;
2. ``data.quality_report(folder)`` lists every planted file problem (the wrong labels need a
   model); the unreadable, blank and duplicate files are removed with its findings;
3. ``quality.cross_val_probabilities`` trains a small network per fold with ``train()`` and
   scores each training image by a network that never saw it;
   ``quality.find_label_issues`` ranks the images by confident learning;
4. ``ImageDatastore.relabel`` moves the flagged files into the suggested class folders, and a
   network trained on the fixed folder is compared with one trained before the fix (trained
   ``--final-epochs``, long enough to learn the wrong labels: with 20 epochs a small network
   shrugs off 5% of random label noise, and the fix changes nothing measurable).

Writes ``data-quality-report.png`` and ``label-issues.png`` into ``--output`` (printed at
the end); ``--images`` and ``--epochs`` reduce the run (the smoke test).
Run: ``python examples/data_quality.py`` (a few minutes on two CPU cores).
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from deeptoolbox import Network, datasets, train
from deeptoolbox import layers as L
from deeptoolbox.data import ImageDatastore, quality_report
from deeptoolbox.inference import classify
from deeptoolbox.quality import cross_val_probabilities, find_label_issues
from deeptoolbox.training import TrainingOptions


def digits_folder(root: Path, n: int, flip_fraction: float, seed: int) -> dict:
    """Digits in ``root/train`` and ``root/test`` class folders, 5% of train in the wrong
    folder, plus planted file problems. Returns the planted files by kind."""
    images, labels = datasets.digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))[:n]
    images, labels = images[order], labels[order]
    n_test = n // 5
    truth = labels[n_test:].copy()
    noisy = truth.copy()
    flipped = rng.choice(len(truth), int(round(flip_fraction * len(truth))), replace=False)
    noisy[flipped] = [str((int(t) + rng.integers(1, 10)) % 10) for t in truth[flipped]]
    datasets.write_image_folder(root / "test", images[:n_test], labels[:n_test])
    datasets.write_image_folder(root / "train", images[n_test:], noisy)
    train_files = sorted((root / "train").glob("*/*.png"))  # named by index: 00012.png
    by_index = {int(p.stem): p for p in train_files}
    planted = {"flipped": {str(by_index[int(k)]): truth[k] for k in flipped}}
    data = by_index[0].read_bytes()
    planted["corrupt"] = []
    for name, content in (("cut.png", data[: len(data) // 2]), ("notes.png", b"not an image")):
        (root / "train" / "3" / name).write_bytes(content)
        planted["corrupt"].append(str(root / "train" / "3" / name))
    planted["copies"] = []
    for k, split in ((1, "train"), (2, "train"), (3, "test")):
        source = by_index[k]
        copy = root / split / source.parent.name / f"copy-{source.name}"
        copy.write_bytes(source.read_bytes())
        planted["copies"].append(str(copy))
    jpeg = by_index[4].with_name("reencoded.jpg")
    buffer = io.BytesIO()
    Image.open(by_index[4]).save(buffer, "JPEG", quality=90)
    jpeg.write_bytes(buffer.getvalue())
    planted["jpeg"] = str(jpeg)
    black = root / "train" / "8" / "black.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(black)
    planted["black"] = str(black)
    return planted


def remove_flagged_files(report) -> list[str]:
    """Delete unreadable and blank files, and all but the first file of each duplicate group
    (the copy in the test split first, so that no test image is also a training image)."""
    removed = []
    for finding in report.findings:
        if finding.check in ("unreadable", "blank-image"):
            removed.extend(finding.files)
        elif finding.check in ("exact-duplicates", "near-duplicates"):
            in_test = [f for f in finding.files if f"{os.sep}test{os.sep}" in f]
            removed.extend(in_test or list(finding.files[1:]))
    for path in set(removed):
        os.remove(path)
    return sorted(set(removed))


def small_network() -> Network:
    return Network([L.ImageInput((1, 8, 8)), L.Flatten(), L.Dense(64), L.ReLU(), L.Dense(10),
                    L.Softmax()])  # fmt: skip


def held_out_accuracy(train_folder: Path, test_folder: Path, options: TrainingOptions) -> float:
    """Accuracy on the test folder of a network trained on the train folder."""
    net = train(small_network(), ImageDatastore(train_folder), "crossentropy", options).network
    test = ImageDatastore(test_folder)
    labels, _ = classify(net, test)
    return float(np.mean(labels == test.labels))


def fix_labels(root: Path, flipped: dict, options: TrainingOptions, folds: int,
               output: Path | None = None, final: TrainingOptions | None = None) -> dict:  # fmt: skip
    """Out-of-fold label issues of ``root/train`` (folds trained with ``options``),
    relabelled; test accuracy before and after the fix of networks trained with ``final``
    (default ``options``). ``flipped`` maps the planted wrong files to their true class."""
    ds = ImageDatastore(root / "train")
    p = cross_val_probabilities(small_network, ds, folds=folds, options=options)
    issues = find_label_issues(ds, p)
    if output is not None:
        issues.plot(ds, output / "label-issues.png", k=16)
    found = [ds.files[i] for i in issues.top(len(flipped))]
    final = final or options
    before = held_out_accuracy(root / "train", root / "test", final)
    fixes = issues.relabels()
    moved = ds.relabel(fixes)
    after = held_out_accuracy(root / "train", root / "test", final)
    return {"recovered": len(set(found) & set(flipped)) / len(flipped), "flagged": len(issues),
            "relabelled": len(moved), "accuracy_before": before, "accuracy_after": after,
            "relabelled_right": sum(flipped.get(f) == label for f, label in fixes.items())}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1797)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--final-epochs", type=int, default=100)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="data-quality-output")
    args = parser.parse_args(argv)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    options = TrainingOptions(solver="adam", initial_learn_rate=0.01, max_epochs=args.epochs,
                              mini_batch_size=64, verbose=False, seed=args.seed)  # fmt: skip
    final = replace(options, max_epochs=args.final_epochs)  # long enough to learn wrong labels
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        planted = digits_folder(root, args.images, 0.05, args.seed)
        report = quality_report(root)
        print(report)
        report.plot(output / "data-quality-report.png")
        removed = remove_flagged_files(report)
        result = fix_labels(root, planted["flipped"], options, args.folds, output, final)
    n = len(planted["flipped"])
    print(f"removed {len(removed)} files; {result['flagged']} label issues flagged, top {n} "
          f"hold {result['recovered']:.0%} of the {n} flipped labels; relabelled "
          f"{result['relabelled']} files ({result['relabelled_right']} to their true class)")  # fmt: skip
    print(f"test accuracy before the fix {result['accuracy_before']:.1%}, "
          f"after {result['accuracy_after']:.1%}")  # fmt: skip
    print(f"pictures in {output.resolve()}")
    return {"report": report, "planted": planted, "removed": removed, **result}


if __name__ == "__main__":
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    main()
