"""Transfer learning three ways: feature extraction + SVM, fine-tuning, and training from scratch.

A small CNN is "pretrained" on the handwritten digits 0-4 (standing in for a download: the
example writes its own weights file and loads it back), then reused for a new task, the digits
5-9, with only a few labelled images per class:

1. feature extraction: activations of the pretrained network + a linear SVM;
2. fine-tuning: adapt() the head to the new classes, freeze the first block, train briefly;
3. from scratch: the same network with random weights, trained with the same budget.

With a small budget (the default: 4 epochs) transfer wins clearly. This task is easy, so with
more epochs (``--epochs 15``) training from scratch catches up with fine-tuning; feature
extraction + SVM stays the most accurate and the fastest.

Run: ``python examples/transfer_learning.py`` (well under a minute on a laptop CPU). With a
downloaded model, step 0 becomes ``net = hub.pretrained("resnet18")``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import deeptoolbox as dtb
from deeptoolbox import hub
from deeptoolbox import layers as L
from deeptoolbox.datasets import digits
from deeptoolbox.training import TrainingOptions, train


def load_digits(size: int = 16) -> tuple[torch.Tensor, np.ndarray]:
    """scikit-learn's 8x8 digits, upsampled to size x size."""
    images, labels = digits()
    x = F.interpolate(torch.from_numpy(images), size=(size, size), mode="bilinear")
    return x, labels


def make_network(classes: list[str], size: int = 16) -> dtb.Network:
    return dtb.Network(
        [
            L.ImageInput((1, size, size), name="input"),
            L.Conv2d(16, 3, padding="same", name="conv1"), L.BatchNorm(name="bn1"), L.ReLU(name="relu1"),
            L.MaxPool2d(2, name="pool1"),
            L.Conv2d(32, 3, padding="same", name="conv2"), L.BatchNorm(name="bn2"), L.ReLU(name="relu2"),
            L.GlobalAvgPool(name="gap"),
            L.Dense(len(classes), name="fc"), L.Softmax(name="softmax"),
        ],
        classes=classes,
    )  # fmt: skip


def accuracy(net: dtb.Network, x: torch.Tensor, labels: np.ndarray) -> float:
    predicted, _ = dtb.classify(net, x)
    return float(np.mean(predicted == labels))


def options(epochs: int, learn_rate: float, seed: int, batch: int = 16) -> TrainingOptions:
    return TrainingOptions(
        solver="adam", initial_learn_rate=learn_rate, max_epochs=epochs, mini_batch_size=batch,
        verbose=False, seed=seed,
    )  # fmt: skip


def split(labels: np.ndarray, shots: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """``shots`` training images per class, the rest for testing."""
    train_index = np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), shots, replace=False) for c in np.unique(labels)]
    )
    test_index = np.setdiff1d(np.arange(len(labels)), train_index)
    return train_index, test_index


def run(*, base_epochs: int = 3, epochs: int = 4, shots: int = 10, seed: int = 0) -> dict:
    """Run the comparison; returns the test accuracy of each approach and the timings."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x, labels = load_digits()
    source = np.isin(labels, list("01234"))
    old_classes, new_classes = list("01234"), list("56789")

    # 0. "Pretrain" on the digits 0-4 and write the weights, as a download would provide them.
    start = time.perf_counter()
    base = make_network(old_classes)
    old_targets = torch.as_tensor([old_classes.index(c) for c in labels[source]])
    train(
        base, (x[source], old_targets), "crossentropy", options(base_epochs, 0.01, seed, batch=32)
    )
    folder = Path(tempfile.mkdtemp()) / "digits-0-4"
    dtb.save(base, folder)
    pretrain_seconds = time.perf_counter() - start

    # The new task: digits 5-9, `shots` labelled images per class.
    x_new, y_new = x[~source], labels[~source]
    train_index, test_index = split(y_new, shots, rng)
    x_train, y_train, x_test, y_test = (
        x_new[train_index], y_new[train_index], x_new[test_index], y_new[test_index]
    )  # fmt: skip
    targets = torch.as_tensor([new_classes.index(c) for c in y_train])
    results: dict[str, float] = {"pretrain_seconds": pretrain_seconds}

    # 1. Feature extraction + SVM (MATLAB: activations + fitcecoc).
    start = time.perf_counter()
    pretrained = dtb.load(folder)
    train_features = hub.activations(pretrained, x_train, "relu2", pooling="avg")
    svm = hub.fit_classifier(train_features, y_train, "svm")
    test_features = hub.activations(pretrained, x_test, "relu2", pooling="avg")
    results["features_svm"] = float(svm.score(test_features.numpy(), y_test))
    results["features_svm_seconds"] = time.perf_counter() - start

    # 2. Fine-tuning: the new head learns 10x faster than the rest, the first block is frozen.
    start = time.perf_counter()
    tuned = hub.adapt(dtb.load(folder), new_classes, learn_rate_factor=10)
    hub.freeze(tuned, up_to="pool1")
    train(tuned, (x_train, targets), "crossentropy", options(epochs, 0.003, seed))
    results["fine_tuned"] = accuracy(tuned, x_test, y_test)
    results["fine_tuned_seconds"] = time.perf_counter() - start

    # 3. The same network from scratch, same data and number of epochs.
    start = time.perf_counter()
    torch.manual_seed(seed)
    scratch = make_network(new_classes)
    train(scratch, (x_train, targets), "crossentropy", options(epochs, 0.01, seed))
    results["from_scratch"] = accuracy(scratch, x_test, y_test)
    results["from_scratch_seconds"] = time.perf_counter() - start
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-epochs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--shots", type=int, default=10, help="training images per new class")
    args = parser.parse_args(argv)
    results = run(base_epochs=args.base_epochs, epochs=args.epochs, shots=args.shots)
    print(f"pretraining on digits 0-4: {results['pretrain_seconds']:.1f} s")
    print(f"new task: digits 5-9, {args.shots} images per class, {args.epochs} epochs")
    for key, title in [
        ("features_svm", "feature extraction + SVM"),
        ("fine_tuned", "fine-tuned (adapt + freeze)"),
        ("from_scratch", "from scratch"),
    ]:
        print(f"  {title:<28} {results[key]:6.1%}  ({results[key + '_seconds']:.1f} s)")
    return results


if __name__ == "__main__":
    main()
