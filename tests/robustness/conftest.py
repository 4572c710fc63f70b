"""Shared data and tiny trained networks for the robustness tests (plain PyTorch loops)."""

import numpy as np
import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L


def train(net, x, y, *, epochs=60, lr=0.01, batch=128, adversarial=None, seed=0):
    """A short plain training loop (cross-entropy, Adam, shuffled mini-batches)."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(epochs):
        order = torch.randperm(x.shape[0])
        for start in range(0, x.shape[0], batch):
            index = order[start : start + batch]
            inputs, targets = x[index], y[index]
            if adversarial is not None:
                inputs = adversarial(net, inputs, targets)
            net.train()
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(inputs), targets)
            loss.backward()
            optimizer.step()
    return net.eval()


def accuracy(net, x, y) -> float:
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's 8x8 digits scaled to [0, 1]: (train x, train y, test x, test y)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data / 16.0, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.long)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(x), generator=generator)
    train_index, test_index = order[:1400], order[1400:]
    return x[train_index], y[train_index], x[test_index], y[test_index]


def digits_network(seed=0):
    torch.manual_seed(seed)
    return Network([L.FeatureInput(64), L.Dense(64), L.ReLU(), L.Dense(10), L.Softmax()])


@pytest.fixture(scope="session")
def digits_net(digits):
    x, y, _, _ = digits
    return train(digits_network(), x, y, epochs=15, batch=200, lr=0.02)


def make_shapes(count, kinds=("square", "circle"), size=12, seed=0):
    """Images (N, 1, size, size) of filled shapes with noise; labels index ``kinds``."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 1, size, size), dtype=np.float32)
    labels = rng.integers(0, len(kinds), count)
    rows, cols = np.mgrid[:size, :size]
    for i, label in enumerate(labels):
        radius = rng.uniform(2.0, 4.0)
        cy, cx = rng.uniform(radius + 0.5, size - radius - 0.5, 2)
        kind = kinds[label]
        if kind == "square":
            mask = (abs(rows - cy) <= radius) & (abs(cols - cx) <= radius)
        elif kind == "circle":
            mask = (rows - cy) ** 2 + (cols - cx) ** 2 <= radius**2
        elif kind == "cross":
            mask = (abs(rows - cy) <= 0.8) | (abs(cols - cx) <= 0.8)
        else:  # "stripes"
            mask = (cols % 3) == 0
        images[i, 0] = mask * rng.uniform(0.7, 1.0)
    images += rng.normal(0, 0.05, images.shape).astype(np.float32)
    return torch.tensor(images.clip(0, 1)), torch.tensor(labels, dtype=torch.long)


@pytest.fixture(scope="session")
def shapes_net():
    """A tiny CNN trained to tell squares from circles, with its training data."""
    x, y = make_shapes(400, seed=1)
    torch.manual_seed(0)
    net = Network([
        L.ImageInput((1, 12, 12)), L.Conv2d(8, 3, padding="same"), L.ReLU(), L.MaxPool2d(2),
        L.Conv2d(8, 3, padding="same"), L.ReLU(), L.GlobalAvgPool(), L.Dense(2), L.Softmax(),
    ])  # fmt: skip
    return train(net, x, y, epochs=15, lr=0.01, batch=64), x, y


def pgd_extremes(net, lo, hi, steps=25, seed=0):
    """PGD on each output, minimizing and maximizing: (min found, max found) per box."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        k = net(lo[:1])[0].numel()
    n = lo.shape[0]
    lo_r = lo.unsqueeze(1).expand(-1, 2 * k, *lo.shape[1:]).reshape(-1, *lo.shape[1:])
    hi_r = hi.unsqueeze(1).expand(-1, 2 * k, *hi.shape[1:]).reshape(-1, *hi.shape[1:])
    sign = torch.cat([torch.ones(k), -torch.ones(k)]).repeat(n)
    pick = torch.arange(k).repeat(2).repeat(n)
    x = lo_r + (hi_r - lo_r) * torch.rand(lo_r.shape, generator=generator)
    for step in range(steps):
        x.requires_grad_(True)
        y = net(x).flatten(1).gather(1, pick[:, None]).squeeze(1)
        (grad,) = torch.autograd.grad((sign * y).sum(), x)
        size = (hi_r - lo_r) * 0.1 * (1 - step / steps)
        x = torch.minimum(torch.maximum(x.detach() - size * grad.sign(), lo_r), hi_r)
    with torch.no_grad():
        y = net(x).flatten(1).gather(1, pick[:, None]).reshape(n, 2, k)
    return y[:, 0], y[:, 1]


def assert_sound(net, lo, hi, lower, upper, samples=300, tolerance=1e-5):
    """Sampled points, box corners and PGD extremes all give outputs inside [lower, upper]."""
    low, high = lower.flatten(1), upper.flatten(1)
    points = lo + (hi - lo) * torch.rand(samples, *lo.shape)
    points = torch.cat([points, lo[None], hi[None]])
    with torch.no_grad():
        outputs = net(points.reshape(-1, *lo.shape[1:])).reshape(points.shape[0], lo.shape[0], -1)
    assert bool((outputs >= low - tolerance).all()), "a sampled output is below the lower bound"
    assert bool((outputs <= high + tolerance).all()), "a sampled output is above the upper bound"
    least, most = pgd_extremes(net, lo, hi)
    assert bool((least >= low - tolerance).all()), "PGD went below the lower bound"
    assert bool((most <= high + tolerance).all()), "PGD went above the upper bound"
