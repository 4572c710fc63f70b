"""Soundness and tightness of estimate_output_bounds (IBP, CROWN, optimized CROWN)."""

import pytest
import torch
from torch import nn

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError
from deeptoolbox.robustness import (
    OutputBounds,
    UnsupportedLayerError,
    estimate_output_bounds,
    plot_output_bounds,
)


def _mlp(activation):
    return Network([
        L.FeatureInput(4), L.Dense(12), activation, L.Dense(12), L.Tanh() if
        isinstance(activation, L.ReLU) else L.ReLU(), L.Dense(3),
    ])  # fmt: skip


def _cnn():
    return Network([
        L.ImageInput((2, 8, 8), normalization="zscore", mean=[0.5, 0.4], std=[0.2, 0.3]),
        L.Conv2d(4, 3, padding="same"), L.BatchNorm(), L.ReLU(), L.MaxPool2d(2), L.Conv2d(4, 3, stride=2, padding="same"),
        L.Sigmoid(), L.AvgPool2d(2, padding="same"), L.Flatten(), L.Dense(5),
    ])  # fmt: skip


def _sequence():
    return Network([
        L.SequenceInput(3, length=10), L.Conv1d(6, 3, padding="same"), L.LeakyReLU(0.1), L.MaxPool1d(2),
        L.Conv1d(4, 3, padding="valid"), L.Tanh(), L.GlobalAvgPool(), L.Dense(3),
    ])  # fmt: skip


def _residual():
    net = Network([L.FeatureInput(5, name="x"), L.Dense(8, name="a"), L.ReLU(name="r1"),
                   L.Dense(8, name="b"), L.Addition(name="add"), L.ReLU(name="r2"),
                   L.Concatenation(name="cat"), L.Dense(4, name="out")])  # fmt: skip
    net.connect("r1", "add/in2").connect("a", "cat/in2")
    return net


def _reshaping():
    return Network([
        L.FeatureInput(16), L.Reshape((1, 4, 4)), L.Conv2d(3, 2, padding="same"), L.ReLU(),
        L.GlobalMaxPool(), L.Dense(4), L.Softmax(),
    ])  # fmt: skip


def _torch_sequential():
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 10), nn.ReLU(), nn.BatchNorm1d(10),
                         nn.Linear(10, 3))  # fmt: skip


NETWORKS = {
    "relu-mlp": (lambda: _mlp(L.ReLU()), (4,)),
    "sigmoid-mlp": (lambda: _mlp(L.Sigmoid()), (4,)),
    "leaky-mlp": (lambda: _mlp(L.LeakyReLU(0.2)), (4,)),
    "cnn": (_cnn, (2, 8, 8)),
    "conv1d": (_sequence, (10, 3)),
    "residual-concat": (_residual, (5,)),
    "reshape-globalmax-softmax": (_reshaping, (16,)),
    "torch-sequential": (_torch_sequential, (2, 3)),
}


def _randomize_batchnorm(net):
    for module in net.modules():
        if isinstance(module, L.BatchNorm | nn.BatchNorm1d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            with torch.no_grad():
                module.weight.uniform_(-1.5, 1.5)
    return net.eval()


def _extremes(net, lo, hi, steps=25):
    """PGD on each output, minimizing and maximizing: (min found, max found) per box."""
    with torch.no_grad():
        out = net(lo)
    k = out[0].numel()
    reps = lo.unsqueeze(1).expand(-1, 2 * k, *lo.shape[1:]).reshape(-1, *lo.shape[1:])
    lo_r = reps
    hi_r = hi.unsqueeze(1).expand(-1, 2 * k, *hi.shape[1:]).reshape(-1, *hi.shape[1:])
    sign = torch.cat([torch.ones(k), -torch.ones(k)]).repeat(lo.shape[0])
    pick = torch.arange(k).repeat(2).repeat(lo.shape[0])
    x = lo_r + (hi_r - lo_r) * torch.rand_like(lo_r)
    for step in range(steps):
        x.requires_grad_(True)
        y = net(x).flatten(1).gather(1, pick[:, None]).squeeze(1)
        (grad,) = torch.autograd.grad((sign * y).sum(), x)
        size = (hi_r - lo_r) * 0.1 * (1 - step / steps)
        x = torch.minimum(torch.maximum(x.detach() - size * grad.sign(), lo_r), hi_r)
    with torch.no_grad():
        y = net(x).flatten(1).gather(1, pick[:, None]).reshape(lo.shape[0], 2, k)
    return y[:, 0], y[:, 1]


@pytest.mark.parametrize("name", list(NETWORKS))
@pytest.mark.parametrize("method", ["ibp", "crown"])
def test_bounds_contain_sampled_and_attacked_outputs(name, method):
    torch.manual_seed(hash(name) % 1000)
    build, shape = NETWORKS[name]
    net = _randomize_batchnorm(build())
    lo = torch.rand(3, *shape) * 2 - 1
    hi = lo + torch.rand(3, *shape) * 0.4
    optimize = method == "crown"
    bounds = estimate_output_bounds(
        net, lo, hi, method=method, optimize_slopes=optimize, iterations=5
    )
    samples = lo + (hi - lo) * torch.rand(500, *lo.shape)
    with torch.no_grad():
        outputs = net(samples.reshape(-1, *shape)).reshape(500, 3, -1)
    low, high = bounds.lower.flatten(1), bounds.upper.flatten(1)
    assert bool((outputs >= low - 1e-5).all()) and bool((outputs <= high + 1e-5).all())
    least, most = _extremes(net, lo, hi)
    assert bool((least >= low - 1e-5).all()) and bool((most <= high + 1e-5).all())
    corners = torch.stack([lo, hi])  # the box corners are inputs too
    with torch.no_grad():
        ends = net(corners.reshape(-1, *shape)).reshape(2, 3, -1)
    assert bool((ends >= low - 1e-5).all()) and bool((ends <= high + 1e-5).all())


@pytest.mark.parametrize("name", ["relu-mlp", "cnn", "residual-concat", "conv1d"])
def test_crown_never_looser_than_ibp_and_optimized_slopes_tighten(name):
    torch.manual_seed(1)
    build, shape = NETWORKS[name]
    net = _randomize_batchnorm(build())
    lo = torch.rand(2, *shape) * 2 - 1
    hi = lo + 0.3
    ibp = estimate_output_bounds(net, lo, hi, method="ibp")
    crown = estimate_output_bounds(net, lo, hi, method="crown")
    alpha = estimate_output_bounds(net, lo, hi, method="crown", optimize_slopes=True)
    assert bool((crown.lower >= ibp.lower - 1e-6).all() and (crown.upper <= ibp.upper + 1e-6).all())
    assert bool((alpha.lower >= crown.lower - 1e-6).all())
    assert bool((alpha.upper <= crown.upper + 1e-6).all())
    assert float(crown.width.mean()) < float(ibp.width.mean())


def test_optimized_slopes_are_strictly_tighter_on_a_relu_network():
    torch.manual_seed(3)
    net = Network([L.FeatureInput(3), L.Dense(20), L.ReLU(), L.Dense(20), L.ReLU(), L.Dense(2)])
    lo, hi = -torch.ones(1, 3), torch.ones(1, 3)
    crown = estimate_output_bounds(net, lo, hi, method="crown")
    alpha = estimate_output_bounds(net, lo, hi, method="crown", optimize_slopes=True)
    assert float(alpha.width.sum()) < float(crown.width.sum()) - 1e-3
    assert all(p.grad is None for p in net.parameters())  # the network is left untouched


def test_bounds_are_exact_on_a_linear_layer():
    net = Network([L.FeatureInput(3), L.Dense(2)])
    weight, bias = net.layer("dense_1").weight.detach(), net.layer("dense_1").bias.detach()
    lo, hi = torch.tensor([[-1.0, 0.0, 2.0]]), torch.tensor([[1.0, 0.5, 3.0]])
    center, radius = (lo + hi) / 2, (hi - lo) / 2
    expected_lo = center @ weight.T + bias - radius @ weight.abs().T
    expected_hi = center @ weight.T + bias + radius @ weight.abs().T
    for method in ("ibp", "crown"):
        bounds = estimate_output_bounds(net, lo, hi, method=method)
        torch.testing.assert_close(bounds.lower, expected_lo)
        torch.testing.assert_close(bounds.upper, expected_hi)
    # the extremes are reached at corners of the box
    corner = torch.where(weight[0] > 0, hi, lo)
    torch.testing.assert_close(net(corner)[0, 0], bounds.upper[0, 0])


def test_single_box_without_batch_dimension_and_training_mode_restored():
    net = Network([L.FeatureInput(2), L.Dense(3), L.ReLU(), L.Dense(2)]).train()
    bounds = estimate_output_bounds(net, torch.zeros(2), torch.ones(2))
    assert bounds.lower.shape == (1, 2) and net.training
    assert bool(bounds.contains(net(torch.full((1, 2), 0.5)))[0])


def test_unsupported_layer_is_named():
    net = Network([L.FeatureInput(4), L.Dense(4), L.LayerNorm(name="norm"), L.Dense(2)])
    with pytest.raises(UnsupportedLayerError, match="'norm'.*LayerNorm"):
        estimate_output_bounds(net, torch.zeros(1, 4), torch.ones(1, 4))
    with pytest.raises(UnsupportedLayerError, match="Sequential"):
        estimate_output_bounds(nn.GRU(2, 2), torch.zeros(1, 2), torch.ones(1, 2))


def test_bad_options_are_rejected():
    net = Network([L.FeatureInput(2), L.Dense(2)])
    with pytest.raises(OptionError, match="method"):
        estimate_output_bounds(net, torch.zeros(1, 2), torch.ones(1, 2), method="deeppoly")
    with pytest.raises(OptionError, match="lower > upper"):
        estimate_output_bounds(net, torch.ones(1, 2), torch.zeros(1, 2))
    with pytest.raises(OptionError, match="same size"):
        estimate_output_bounds(net, torch.zeros(1, 2), torch.ones(1, 3))


def test_plot_output_bounds_writes_png(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    torch.manual_seed(0)
    net = _mlp(L.ReLU())
    lo, hi = torch.zeros(1, 4), torch.full((1, 4), 0.5)
    both = [estimate_output_bounds(net, lo, hi, method=m) for m in ("ibp", "crown")]
    with torch.no_grad():
        samples = net(lo + (hi - lo) * torch.rand(200, 4)).unsqueeze(1)
    figure = plot_output_bounds(both, samples)
    figure.savefig(tmp_path / "bounds.png")
    assert (tmp_path / "bounds.png").stat().st_size > 1000
    assert isinstance(both[0], OutputBounds)
