"""The end-to-end demo behind ``make demo`` / ``deeptoolbox demo``.

Builds a CNN for scikit-learn's bundled 8x8 digits, prints its analysis, trains it briefly
with a plain PyTorch loop (``train()`` will replace the loop), evaluates it, saves and
reloads it, and writes a drawing of the graph and the code that rebuilds it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from deeptoolbox import layers as L
from deeptoolbox.inference import classify
from deeptoolbox.network import Network, analyze, load, plot_network, save, to_python


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
            L.Conv2d(16, 3, name="conv1"),
            L.BatchNorm(name="bn1"),
            L.ReLU(name="relu1"),
            L.Conv2d(32, 3, name="conv2"),
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


def _train_briefly(net: Network, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> None:
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    for epoch in range(epochs):
        order = torch.randperm(len(y))
        total = 0.0
        for start in range(0, len(y), 64):
            index = order[start : start + 64]
            scores = net(x[index])
            loss = F.nll_loss(torch.log(scores.clamp_min(1e-8)), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(index)
        print(f"  epoch {epoch + 1}/{epochs}  loss {total / len(y):.4f}")
    net.eval()


def run_demo(output: str | Path = "demo-output", epochs: int = 8, seed: int = 0) -> dict[str, Path]:
    """Run the demo and return the paths it wrote.

    Example:
        >>> import tempfile
        >>> paths = run_demo(tempfile.mkdtemp(), epochs=1)  # doctest: +ELLIPSIS
        Digits: ...
        >>> sorted(paths)
        ['code', 'drawing', 'network']
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    train_x, train_y, test_x, test_y = load_digits_data(seed)
    print(
        f"Digits: {len(train_y)} training and {len(test_y)} test images of size 1x8x8, 10 classes"
    )
    net = build_digits_cnn(train_x)
    print(analyze(net))
    print(f"Training for {epochs} epochs (plain PyTorch loop on {net.name}):")
    _train_briefly(net, train_x, train_y, epochs, seed)
    labels, _ = classify(net, test_x)
    accuracy = float(np.mean(labels == np.asarray([str(int(t)) for t in test_y])))
    print(f"Test accuracy: {accuracy:.1%}")
    paths = {
        "network": save(net, output / "digits-cnn.zip"),
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
    print("Results:")
    for what, path in paths.items():
        print(f"  {what:8s} {path.resolve()}")
    return paths
