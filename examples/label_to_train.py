"""From partly labelled images to a trained classifier, with the labels kept in a CSV.

The loop of labeling a data set with a model's help (MATLAB's Image Labeler with an
auto-labeling algorithm), on scikit-learn's digits written as one flat folder of PNG files:

1. a ``labels.csv`` (``file,label``: the Labeler's format) labels ``--labelled`` of the
   training images; ``ImageDatastore(folder)`` opens it in CSV mode and holds just those;
2. a small network is trained on them with ``train()`` and classifies the unlabelled images;
   its predictions are appended to the CSV as labels;
3. the ``--review`` least confident predictions are checked (here against the true digits,
   standing in for a person in the Labeler) and the wrong ones fixed with ``ds.relabel``,
   which rewrites the CSV atomically;
4. the folder is opened again as an ``ImageDatastore`` (every image labelled now) and the
   network retrained; both networks are scored on held-out test images.

Run: ``python examples/label_to_train.py`` (about a minute on two CPU cores); ``--images``
and ``--epochs`` reduce the run (the smoke test).
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from deeptoolbox import Network, datasets, train
from deeptoolbox import layers as L
from deeptoolbox.data import ImageDatastore
from deeptoolbox.inference import classify
from deeptoolbox.training import TrainingOptions


def write_images(folder: Path, images: np.ndarray) -> list[str]:
    """Write (N, 1, 8, 8) images in [0, 1] as ``folder/00000.png``...; returns the names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{i:05d}.png" for i in range(len(images))]
    for name, image in zip(names, images, strict=True):
        Image.fromarray(np.round(image[0] * 255).astype(np.uint8)).save(folder / name)
    return names


def small_network() -> Network:
    return Network([L.ImageInput((1, 8, 8)), L.Flatten(), L.Dense(64), L.ReLU(), L.Dense(10),
                    L.Softmax()])  # fmt: skip


def accuracy(net: Network, test: ImageDatastore) -> float:
    labels, _ = classify(net, test)
    return float(np.mean(labels == test.labels))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1797, help="digits used (train + test)")
    parser.add_argument("--labelled", type=float, default=0.1, help="share labelled by hand")
    parser.add_argument("--review", type=int, default=40, help="predictions checked by hand")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    images, truth = datasets.digits()
    order = np.random.default_rng(args.seed).permutation(len(images))[: args.images]
    images, truth = images[order], truth[order]
    n_test = len(images) // 5
    options = TrainingOptions(solver="adam", initial_learn_rate=0.01, max_epochs=args.epochs,
                              mini_batch_size=32, verbose=False, seed=args.seed)  # fmt: skip
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        test_names = write_images(root / "test", images[:n_test])
        test = ImageDatastore([str(root / "test" / n) for n in test_names],
                              labels=truth[:n_test])  # fmt: skip
        folder = root / "train"
        names = write_images(folder, images[n_test:])
        true_label = dict(zip(names, truth[n_test:].tolist(), strict=True))
        n_given = max(10, int(round(args.labelled * len(names))))
        with open(folder / "labels.csv", "w", newline="") as stream:  # what the Labeler saves
            csv.writer(stream).writerows([["file", "label"],
                                          *[[n, true_label[n]] for n in names[:n_given]]])  # fmt: skip

        # 1-2. train on the labelled part, classify the rest, write the predictions back
        labelled = ImageDatastore(folder, classes=[str(d) for d in range(10)])
        net = train(small_network(), labelled, "crossentropy", options).network
        before = accuracy(net, test)
        unlabelled = [n for n in names if str(folder / n) not in set(labelled.files)]
        predicted, scores = classify(net, ImageDatastore([str(folder / n) for n in unlabelled],
                                                         labels=None))  # fmt: skip
        with open(folder / "labels.csv", "a", newline="") as stream:
            csv.writer(stream).writerows(zip(unlabelled, predicted.tolist(), strict=True))
        wrong = sum(true_label[n] != p for n, p in zip(unlabelled, predicted, strict=True))

        # 3. review the least confident predictions; fix the wrong ones in the CSV
        ds = ImageDatastore(folder, classes=[str(d) for d in range(10)])
        confidence = scores.max(dim=1).values.numpy()
        reviewed = [unlabelled[i] for i in np.argsort(confidence)[: args.review]]
        fixes = {str(folder / n): true_label[n] for n in reviewed
                 if ds.labels[ds.files.index(str(folder / n))] != true_label[n]}  # fmt: skip
        ds.relabel(fixes)

        # 4. reopen (the CSV is the truth now) and retrain on every image
        fixed = ImageDatastore(folder)
        assert fixed.label_file == str(folder / "labels.csv") and len(fixed) == len(names)
        wrong_after = int(sum(true_label[os.path.basename(f)] != lbl
                              for f, lbl in zip(fixed.files, fixed.labels, strict=True)))  # fmt: skip
        retrained = train(small_network(), fixed, "crossentropy", options).network
        after = accuracy(retrained, test)

    result = {
        "train_images": len(names), "labelled_by_hand": n_given, "predicted": len(unlabelled),
        "wrong_predictions": int(wrong), "reviewed": len(reviewed), "fixed": len(fixes),
        "wrong_labels_left": wrong_after, "test_images": n_test,
        "test_accuracy_hand_labels": before, "test_accuracy_all_labels": after,
    }  # fmt: skip
    print(
        f"{n_given} of {len(names)} training images labelled by hand; the network trained "
        f"on them labels the other {len(unlabelled)} ({wrong} wrong)."
    )
    print(
        f"Reviewing the {len(reviewed)} least confident fixes {len(fixes)}; "
        f"{wrong_after} wrong labels are left in labels.csv."
    )
    print(
        f"Test accuracy ({n_test} images): {before:.3f} trained on the hand labels, "
        f"{after:.3f} retrained on all labels."
    )
    return result


if __name__ == "__main__":
    main()
