"""The end-to-end demo behind ``make demo`` / ``deeptoolbox demo``.

Builds a CNN for scikit-learn's bundled 8x8 digits, prints its analysis, trains it with
``train()`` (progress table in the terminal, training-progress plot), evaluates it on held-out
images with a confusion chart, explains a few predictions with Grad-CAM and occlusion, saves and
reloads it, exports it to ONNX (checked in onnxruntime), and writes a drawing of the graph and
the code that rebuilds it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deeptoolbox import layers as L
from deeptoolbox.explain import explain_digits_figure
from deeptoolbox.inference import classify
from deeptoolbox.interop import export_onnx
from deeptoolbox.network import Network, analyze, load, plot_network, save, to_python
from deeptoolbox.training import TrainingOptions, confusion_chart, train


def load_digits_data(seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Return (train_x, train_y, test_x, test_y) from scikit-learn's digits, 80/20 split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8)
    labels = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(order))
    train, test = order[:cut], order[cut:]
    return images[train], labels[train], images[test], labels[test]


def build_digits_cnn(train_x: torch.Tensor) -> Network:
    """The demo's CNN, with z-score input normalization computed from the training images."""
    net = Network(
        [
            L.ImageInput(
                (1, 8, 8), normalization="zscore", normalization_dimension="all", name="digits"
            ),
            L.Conv2d(16, 3, padding="same", name="conv1"),
            L.BatchNorm(name="bn1"),
            L.ReLU(name="relu1"),
            L.Conv2d(32, 3, padding="same", name="conv2"),
            L.BatchNorm(name="bn2"),
            L.ReLU(name="relu2"),
            L.MaxPool2d(2, name="pool"),
            L.Flatten(name="flatten"),
            L.Dense(64, name="fc1"),
            L.ReLU(name="relu3"),
            L.Dropout(0.2, name="drop"),
            L.Dense(10, name="fc2"),
            L.Softmax(name="softmax"),
        ],
        classes=[str(d) for d in range(10)],
        name="digits-cnn",
    )
    net.layer("digits").compute_statistics(train_x)
    return net


def run_demo(output: str | Path = "demo-output", epochs: int = 8, seed: int = 0) -> dict[str, Path]:
    """Run the demo and return the paths it wrote.

    Example:
        >>> import tempfile
        >>> paths = run_demo(tempfile.mkdtemp(), epochs=1)  # doctest: +ELLIPSIS
        Digits: ...
        >>> sorted(paths)
        ['code', 'confusion', 'drawing', 'explained', 'network', 'onnx', 'progress']
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    train_x, train_y, test_x, test_y = load_digits_data(seed)
    print(
        f"Digits: {len(train_y)} training and {len(test_y)} test images of size 1x8x8, 10 classes"
    )
    net = build_digits_cnn(train_x)
    print(analyze(net))
    cut = int(0.85 * len(train_y))  # hold out 15% of the training images for validation
    train_x, train_y, valid_x, valid_y = train_x[:cut], train_y[:cut], train_x[cut:], train_y[cut:]
    options = TrainingOptions(
        solver="adam", initial_learn_rate=3e-3, learn_rate_schedule="cosine", max_epochs=epochs,
        mini_batch_size=64, shuffle="every-epoch", validation_data=(valid_x, valid_y),
        validation_frequency=max(1, len(train_y) // 64), verbose_frequency=max(1, len(train_y) // 64),
        metrics=["accuracy"], plots="training-progress",
        plot_path=output / "training-progress.png", execution_environment="cpu", seed=seed,
    )  # fmt: skip
    print(f"Training {net.name} for {epochs} epochs with train():")
    result = train(net, (train_x, train_y), "crossentropy", options)
    net = result.network
    labels, _ = classify(net, test_x)
    truth = np.asarray([str(int(t)) for t in test_y])
    accuracy = float(np.mean(labels == truth))
    print(f"Test accuracy: {accuracy:.1%} (best validation at epoch {result.best_epoch})")
    paths = {
        "network": save(net, output / "digits-cnn.zip"),
        "progress": result.plot(output / "training-progress.png"),
        "confusion": confusion_chart(truth, labels, classes=net.classes).save(
            output / "confusion-chart.png"
        ),
        "drawing": output / "digits-cnn.png",
        "code": output / "digits_cnn.py",
    }
    reloaded = load(paths["network"])
    same = bool(torch.equal(reloaded.eval()(test_x[:16]), net(test_x[:16])))
    reloaded_labels, _ = classify(reloaded, test_x[:8])
    print(f"Reloaded from {paths['network']}: identical outputs = {same}")
    print(
        f"First test images: predicted {reloaded_labels.tolist()}, true {[str(int(t)) for t in test_y[:8]]}"
    )
    plot_network(net, paths["drawing"])
    to_python(net, paths["code"])
    paths["explained"] = explain_digits_figure(
        net, test_x[:6], test_y[:6], output / "digits-explained.png"
    )
    paths["onnx"] = export_onnx(net, output / "digits-cnn.onnx")  # checked in onnxruntime
    print("Results:")
    for what, path in paths.items():
        print(f"  {what:10s} {path.resolve()}")
    return paths
