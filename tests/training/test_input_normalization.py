"""train() computes input normalization statistics from the training data (MATLAB's
ResetInputNormalization), over real time steps only for padded sequences."""

import numpy as np
import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.data import SequenceDatastore
from deeptoolbox.training import TrainingOptions, train


def options(**kw):
    return TrainingOptions(**{"max_epochs": 1, "mini_batch_size": 16, "verbose": False,
                              "seed": 0, **kw})  # fmt: skip


@pytest.mark.parametrize("normalization", ["zerocenter", "zscore", "rescale-symmetric",
                                           "rescale-zero-one"])  # fmt: skip
def test_feature_statistics_are_computed_from_the_training_data(normalization):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 3, generator=g) * torch.tensor([1.0, 5.0, 0.1]) + 7
    y = torch.randn(50, 1, generator=g)
    net = Network([L.FeatureInput(3, normalization=normalization, name="in"), L.Dense(1)])
    train(net, (x, y), "mse", options())
    layer, a = net.layer("in"), x.double().numpy()
    expected = {"mean": a.mean(0), "std": a.std(0), "min": a.min(0), "max": a.max(0)}
    for key in {"zerocenter": ["mean"], "zscore": ["mean", "std"]}.get(
        normalization, ["min", "max"]
    ):
        np.testing.assert_allclose(getattr(layer, key).numpy(), expected[key], rtol=1e-5)


@pytest.mark.parametrize("dimension", ["channel", "element", "all"])
def test_image_statistics_per_channel_element_or_all(dimension):
    x = torch.rand(40, 2, 4, 4) * torch.tensor([1.0, 10.0]).reshape(1, 2, 1, 1)
    y = torch.randint(0, 2, (40,))
    layer = L.ImageInput((2, 4, 4), normalization="zscore", normalization_dimension=dimension)
    net = Network([layer, L.GlobalAvgPool(), L.Dense(2), L.Softmax()])
    train(net, (x, y), "crossentropy", options())
    reference = L.ImageInput((2, 4, 4), normalization="zscore", normalization_dimension=dimension)
    reference.compute_statistics(x)  # the layer's own computation over the whole set at once
    torch.testing.assert_close(layer.mean, reference.mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(layer.std, reference.std, rtol=1e-5, atol=1e-6)


def test_padded_sequences_give_statistics_of_the_real_steps():
    rng = np.random.default_rng(0)
    seqs = [rng.normal(3, 2, (int(t), 2)).astype(np.float32) for t in rng.integers(3, 12, 20)]
    ds = SequenceDatastore(seqs, ["a", "b"] * 10, padding="left")
    net = Network([L.SequenceInput(2, normalization="zscore", name="in"),
                   L.LSTM(4, output_mode="last"), L.Dense(2), L.Softmax()])  # fmt: skip
    train(net, ds, "crossentropy", options(mini_batch_size=8))
    steps = np.concatenate(seqs).astype(np.float64)
    np.testing.assert_allclose(net.layer("in").mean.numpy(), steps.mean(0), rtol=1e-5)
    np.testing.assert_allclose(net.layer("in").std.numpy(), steps.std(0), rtol=1e-5)


def test_reset_recomputes_given_statistics_and_false_keeps_them():
    x, y = torch.randn(32, 2) + 4, torch.randn(32, 1)
    for reset, expected in ((True, x.mean(0)), (False, torch.tensor([1.0, 2.0]))):
        layer = L.FeatureInput(2, normalization="zerocenter", mean=[1.0, 2.0])
        train(Network([layer, L.Dense(1)]), (x, y), "mse",
              options(reset_input_normalization=reset))  # fmt: skip
        torch.testing.assert_close(layer.mean, expected, rtol=1e-5, atol=1e-6)
    missing = L.FeatureInput(2, normalization="zerocenter")
    train(Network([missing, L.Dense(1)]), (x, y), "mse", options(reset_input_normalization=False))
    torch.testing.assert_close(missing.mean, x.mean(0), rtol=1e-5, atol=1e-6)
