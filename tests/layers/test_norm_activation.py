"""Normalization, activation and dropout layers against torch written another way."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deeptoolbox.errors import SizeMismatchError
from deeptoolbox.layers import (
    ELU,
    GELU,
    BatchNorm,
    Dropout,
    GroupNorm,
    LayerNorm,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Swish,
    Tanh,
)

close = torch.testing.assert_close


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _randomize_affine(layer: nn.Module) -> None:
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.uniform_(-0.5, 0.5)


def _copy_affine(reference: nn.Module, layer: nn.Module) -> nn.Module:
    with torch.no_grad():
        reference.weight.copy_(layer.weight)
        reference.bias.copy_(layer.bias)
    return reference


# -- batch normalization -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "batch_shape", "reference_type", "to_reference"),
    [
        ((4,), (6, 4), nn.BatchNorm1d, lambda x: x),
        ((None, 4), (3, 5, 4), nn.BatchNorm1d, lambda x: x.transpose(1, 2)),
        ((4, 3, 3), (3, 4, 3, 3), nn.BatchNorm2d, lambda x: x),
        ((4, 2, 3, 3), (3, 4, 2, 3, 3), nn.BatchNorm3d, lambda x: x),
    ],
    ids=["features", "sequences", "images", "volumes"],
)
def test_batch_norm_train_and_eval_match_torch(shape, batch_shape, reference_type, to_reference):
    layer = BatchNorm(epsilon=1e-3, momentum=0.3)
    layer.build([shape])
    _randomize_affine(layer)
    reference = _copy_affine(reference_type(4, eps=1e-3, momentum=0.3), layer)
    for _ in range(3):  # training steps update the running statistics the same way
        x = torch.randn(*batch_shape) * 2 + 1
        close(to_reference(layer.train()(x)), reference.train()(to_reference(x)))
    close(layer.running_mean, reference.running_mean)
    close(layer.running_var, reference.running_var)
    assert int(layer.num_batches_tracked) == 3
    x = torch.randn(*batch_shape)
    close(to_reference(layer.eval()(x)), reference.eval()(to_reference(x)))
    assert int(layer.num_batches_tracked) == 3  # inference does not count batches


def test_batch_norm_state_dict_loads_from_torch_names():
    layer = BatchNorm()
    layer.build([(3, 2, 2)])
    reference = nn.BatchNorm2d(3)
    assert set(layer.state_dict()) == set(reference.state_dict())


# -- layer normalization -------------------------------------------------------------------


def test_layer_norm_on_sequences_matches_nn_layer_norm():
    layer = LayerNorm(epsilon=1e-4)
    layer.build([(None, 6)])
    _randomize_affine(layer)
    reference = _copy_affine(nn.LayerNorm(6, eps=1e-4), layer)
    x = torch.randn(2, 5, 6) * 3
    close(layer(x), reference(x))
    features = LayerNorm()
    features.build([(6,)])
    close(features(x[:, 0]), F.layer_norm(x[:, 0], (6,), eps=1e-5))


@pytest.mark.parametrize("shape", [(3, 4, 5), (3, 2, 4, 5)], ids=["images", "volumes"])
def test_layer_norm_on_images_normalizes_each_observation_with_per_channel_affine(shape):
    layer = LayerNorm()
    layer.build([shape])
    assert layer.weight.shape == (3,)
    _randomize_affine(layer)
    x = torch.randn(2, *shape) * 2 + 3
    dims = tuple(range(1, x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, unbiased=False, keepdim=True)
    view = (1, 3) + (1,) * (x.dim() - 2)
    expected = (x - mean) / torch.sqrt(var + 1e-5) * layer.weight.view(view)
    expected = expected + layer.bias.view(view)
    close(layer(x), expected)


# -- group normalization -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("groups", "num_groups"), [(2, 2), ("channel-wise", 6), ("all-channels", 1)]
)
def test_group_norm_on_images(groups, num_groups):
    layer = GroupNorm(groups)
    layer.build([(6, 3, 4)])
    _randomize_affine(layer)
    reference = _copy_affine(nn.GroupNorm(num_groups, 6), layer)
    x = torch.randn(2, 6, 3, 4)
    close(layer(x), reference(x))


def test_group_norm_by_hand_and_on_sequences():
    layer = GroupNorm(2, epsilon=1e-3)
    layer.build([(None, 4)])
    _randomize_affine(layer)
    x = torch.randn(2, 5, 4)
    groups = x.reshape(2, 5, 2, 2)  # (N, T, group, channel within group)
    mean = groups.mean(dim=(1, 3), keepdim=True)
    var = groups.var(dim=(1, 3), unbiased=False, keepdim=True)
    expected = ((groups - mean) / torch.sqrt(var + 1e-3)).reshape(2, 5, 4)
    close(layer(x), expected * layer.weight + layer.bias)


def test_channel_wise_group_norm_is_instance_norm():
    layer = GroupNorm("channel-wise")
    layer.build([(3, 5, 5)])
    x = torch.randn(2, 3, 5, 5)
    close(layer(x), F.instance_norm(x))


def test_group_norm_needs_divisible_channels():
    with pytest.raises(SizeMismatchError, match="6 input channels cannot be split into 4 groups"):
        GroupNorm(4).output_shape([(6, 3, 3)])


# -- activations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layer", "reference"),
    [
        (ReLU(), F.relu),
        (LeakyReLU(), lambda x: F.leaky_relu(x, 0.01)),
        (LeakyReLU(0.3), lambda x: torch.where(x > 0, x, 0.3 * x)),
        (ELU(), F.elu),
        (ELU(0.5), lambda x: torch.where(x > 0, x, 0.5 * (torch.exp(x) - 1))),
        (GELU(), lambda x: x * 0.5 * (1 + torch.erf(x / 2**0.5))),
        (GELU("tanh"), lambda x: F.gelu(x, approximate="tanh")),
        (Sigmoid(), lambda x: 1 / (1 + torch.exp(-x))),
        (Tanh(), torch.tanh),
        (Swish(), lambda x: x * torch.sigmoid(x)),
    ],
    ids=lambda v: repr(v) if isinstance(v, nn.Module) else "reference",
)
def test_activation_matches_torch(layer, reference):
    x = torch.randn(3, 4, 5) * 3
    close(layer(x), reference(x))
    assert layer.output_shape([(4, 5)]) == (4, 5)
    assert not list(layer.parameters())


def test_gelu_tanh_differs_from_exact():
    x = torch.linspace(-3, 3, 50)
    assert not torch.allclose(GELU("tanh")(x), GELU()(x), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("shape", "dim"), [((4, 5), -1), ((4, 6, 5), -1), ((4, 5, 3, 3), 1), ((2, 5, 2, 2, 2), 1)]
)
def test_softmax_axis_is_the_channel_axis(shape, dim):
    x = torch.randn(*shape)
    y = Softmax()(x)
    close(y, torch.softmax(x, dim=dim))
    close(y.sum(dim=dim), torch.ones(y.sum(dim=dim).shape))


# -- dropout -----------------------------------------------------------------------------


def test_dropout_is_identity_in_eval_and_scales_in_train():
    layer = Dropout(0.25)
    x = torch.rand(200, 50) + 0.5
    assert torch.equal(layer.eval()(x), x)
    y = layer.train()(x)
    kept = y != 0
    close(y[kept], x[kept] / 0.75)
    fraction_dropped = 1 - kept.float().mean().item()
    assert 0.2 < fraction_dropped < 0.3
    assert torch.equal(Dropout(0.0).train()(x), x)
