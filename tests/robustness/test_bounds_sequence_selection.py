"""Output bounds through Indexing1d and EmbeddingConcatenation, two linear selections of
sequences: sound (no sampled or PGD-attacked input leaves them) for IBP and CROWN, and exact
for the network made of the selections alone."""

from __future__ import annotations

import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.robustness import estimate_output_bounds


def _network() -> Network:
    torch.manual_seed(0)
    return Network(
        [
            L.SequenceInput(3, length=4),
            L.Dense(5),
            L.ReLU(),
            L.EmbeddingConcatenation(name="cls"),
            L.Dense(4),
            L.ReLU(),
            L.Indexing1d("last", name="pick"),
            L.Dense(2),
        ]
    ).eval()


def _extremes(net: Network, lower: torch.Tensor, upper: torch.Tensor) -> tuple:
    """The smallest and largest outputs found by sampling and by PGD from random starts."""
    samples = lower + (upper - lower) * torch.rand(1000, *lower.shape[1:])
    with torch.no_grad():
        found = net(samples)
    low, high = found.min(0).values, found.max(0).values
    for sign in (1.0, -1.0):
        x = (lower + (upper - lower) * torch.rand(16, *lower.shape[1:])).requires_grad_(True)
        for _ in range(30):
            (grad,) = torch.autograd.grad((sign * net(x)).sum(), x)
            with torch.no_grad():
                x = torch.minimum(torch.maximum(x + 0.05 * grad.sign(), lower), upper)
            x.requires_grad_(True)
        with torch.no_grad():
            y = net(x)
        low, high = torch.minimum(low, y.min(0).values), torch.maximum(high, y.max(0).values)
    return low, high


@pytest.mark.parametrize("method", ["ibp", "crown"])
def test_bounds_through_the_selections_are_sound(method):
    net = _network()
    x = torch.randn(1, 4, 3)
    lower, upper = x - 0.3, x + 0.3
    bounds = estimate_output_bounds(net, lower, upper, method=method)
    low, high = _extremes(net, lower, upper)
    assert (bounds.lower[0] <= low + 1e-5).all() and (high <= bounds.upper[0] + 1e-5).all()
    assert bounds.notes == []


def test_bounds_of_the_selections_alone_are_exact():
    torch.manual_seed(1)
    net = Network([L.SequenceInput(2, length=3), L.EmbeddingConcatenation(name="cls"),
                   L.Indexing1d(1, name="pick")]).eval()  # fmt: skip
    lower, upper = -torch.rand(1, 3, 2), torch.rand(1, 3, 2)
    for method in ("ibp", "crown"):
        bounds = estimate_output_bounds(net, lower, upper, method=method)
        torch.testing.assert_close(bounds.lower, lower[:, 0])  # step 1 after the token
        torch.testing.assert_close(bounds.upper, upper[:, 0])
    token = Network([L.SequenceInput(2, length=3), L.EmbeddingConcatenation(name="cls"),
                     L.Indexing1d("first")]).eval()  # fmt: skip
    bounds = estimate_output_bounds(token, lower, upper, method="crown")
    weight = token.layer("cls").weight.detach()
    torch.testing.assert_close(bounds.lower[0], weight)  # the learned token: a constant
    torch.testing.assert_close(bounds.upper[0], weight)
