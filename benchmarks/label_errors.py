"""Label errors on digits: test accuracy before and after fixing the labels that confident
learning flags (not a timed benchmark: a measurement of the workflow's effect).

For each seed: the digits are written as PNG files in ``train/<class>/`` and ``test/<class>/``
folders with ``--flip`` (5%) of the training images in a wrong class folder
(``examples/data_quality.py`` plants them, with file problems the data-quality report
removes first). ``quality.cross_val_probabilities`` trains a small network per fold with
``train()``; ``quality.find_label_issues`` flags and ranks; ``ImageDatastore.relabel`` moves
the flagged files to the suggested classes; a network is trained on the folder before and
after, and on the true labels (the ceiling), each for ``--final-epochs`` (100): long
enough to learn the wrong labels (with 20 epochs the network shrugs off 5% of random label
noise, so that no fix can change its test accuracy measurably). Prints one row per seed
and the means.

Run: ``.venv/bin/python benchmarks/label_errors.py`` (``--seeds 0 1 2``, ``--epochs``,
``--folds``, ``--flip``); a few minutes on two CPU cores. Recorded figures are in
docs/data-quality.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from data_quality import (  # noqa: E402  (examples/data_quality.py)
    digits_folder,
    fix_labels,
    held_out_accuracy,
    remove_flagged_files,
)

from deeptoolbox.data import quality_report  # noqa: E402
from deeptoolbox.training import TrainingOptions  # noqa: E402


def true_label_accuracy(root: Path, flipped: dict, options: TrainingOptions) -> float:
    """Test accuracy with every planted wrong file moved back to its true class folder."""
    oracle = root.parent / "oracle"
    shutil.copytree(root, oracle)
    for path, label in flipped.items():
        moved = Path(str(path).replace(str(root), str(oracle)))
        if moved.exists():
            moved.rename(moved.parent.parent / label / moved.name)
    try:
        return held_out_accuracy(oracle / "train", oracle / "test", options)
    finally:
        shutil.rmtree(oracle)


def one_seed(seed: int, args: argparse.Namespace) -> dict:
    options = TrainingOptions(solver="adam", initial_learn_rate=0.01, max_epochs=args.epochs,
                              mini_batch_size=64, verbose=False, seed=seed)  # fmt: skip
    final = replace(options, max_epochs=args.final_epochs)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "digits"
        root.mkdir()
        planted = digits_folder(root, args.images, args.flip, seed)
        remove_flagged_files(quality_report(root))
        ceiling = true_label_accuracy(root, planted["flipped"], final)
        result = fix_labels(root, planted["flipped"], options, args.folds, final=final)
    return {**result, "flipped": len(planted["flipped"]), "ceiling": ceiling}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--images", type=int, default=1797)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--final-epochs", type=int, default=100)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--flip", type=float, default=0.05)
    args = parser.parse_args(argv)
    print(
        f"digits, {args.flip:.0%} of training labels flipped, {args.folds} folds of "
        f"{args.epochs} epochs, final networks {args.final_epochs} epochs; torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(
        "seed  flipped  flagged  top-k recovered  relabelled (right)  before   after   true labels"
    )
    rows = []
    for seed in args.seeds:
        r = one_seed(seed, args)
        rows.append(r)
        print(f"{seed:4d}  {r['flipped']:7d}  {r['flagged']:7d}  {r['recovered']:15.1%}  "
              f"{r['relabelled']:10d} ({r['relabelled_right']:3d})  {r['accuracy_before']:6.1%}  "
              f"{r['accuracy_after']:6.1%}  {r['ceiling']:10.1%}", flush=True)  # fmt: skip
    means = {k: statistics.mean(r[k] for r in rows) for k in
             ("recovered", "accuracy_before", "accuracy_after", "ceiling")}  # fmt: skip
    print(
        f"mean: top-k recovered {means['recovered']:.1%}; test accuracy before "
        f"{means['accuracy_before']:.1%}, after {means['accuracy_after']:.1%}, with the true "
        f"labels {means['ceiling']:.1%}"
    )


if __name__ == "__main__":
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    main()
