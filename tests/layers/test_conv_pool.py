"""Dense, convolution and pooling layers against torch computed another way."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deeptoolbox.layers import (
    AvgPool1d,
    AvgPool2d,
    Conv1d,
    Conv2d,
    Conv3d,
    Dense,
    GlobalAvgPool,
    GlobalMaxPool,
    MaxPool1d,
    MaxPool2d,
    TransposedConv2d,
)
from deeptoolbox.layers._conv import same_padding

close = torch.testing.assert_close


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _copy(module: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    with torch.no_grad():
        module.weight.copy_(weight)
        if bias is not None:
            module.bias.copy_(bias)
    return module


# -- Dense -------------------------------------------------------------------------------


def test_dense_on_features_sequences_and_images():
    features = Dense(5, bias_initializer="narrow-normal")
    features.build([(3,)])
    x = torch.randn(4, 3)
    close(features(x), x @ features.weight.T + features.bias)

    sequences = Dense(5)
    sequences.build([(None, 3)])
    assert sequences.output_shape([(None, 3)]) == (None, 5)
    x = torch.randn(2, 7, 3)
    close(sequences(x), torch.stack([sequences(x[:, t]) for t in range(7)], dim=1))

    images = Dense(5, bias=False)
    images.build([(2, 3, 3)])
    assert images.weight.shape == (5, 18) and images.bias is None
    x = torch.randn(4, 2, 3, 3)
    close(images(x), x.reshape(4, -1) @ images.weight.T)


@pytest.mark.parametrize(
    ("initializer", "check"),
    [
        ("zeros", lambda w: bool((w == 0).all())),
        ("ones", lambda w: bool((w == 1).all())),
        ("orthogonal", lambda w: torch.allclose(w @ w.T, torch.eye(4), atol=1e-5)),
        ("narrow-normal", lambda w: 0.001 < float(w.std()) < 0.02),
        ("he", lambda w: 0.15 < float(w.std()) < 0.35),  # sqrt(2 / 32) = 0.25
        ("glorot", lambda w: float(w.abs().max()) <= (6 / 36) ** 0.5),
    ],
)
def test_weight_initializers(initializer, check):
    layer = Dense(4, weights_initializer=initializer)
    layer.build([(32,)])
    assert check(layer.weight.detach())


# -- convolution -------------------------------------------------------------------------


def test_convolutions_default_to_no_padding_as_matlab_keras_and_pytorch():
    # MATLAB's convolution2dLayer(4, 1) on a 4x4 image gives 1x1, as nn.Conv2d(1, 1, 4) does
    assert Conv2d(1, 4).output_shape([(1, 4, 4)]) == (1, 1, 1)
    assert Conv1d(2, 3).output_shape([(10, 1)]) == (8, 2)
    assert Conv3d(2, 3).output_shape([(1, 5, 6, 7)]) == (2, 3, 4, 5)
    assert TransposedConv2d(1, 3).output_shape([(1, 4, 4)]) == (1, 6, 6)  # cropping 0
    layer = Conv2d(2, 3)
    layer.build([(1, 6, 6)])
    reference = _copy(nn.Conv2d(1, 2, 3), layer.weight, layer.bias)
    x = torch.randn(2, 1, 6, 6)
    close(layer(x), reference(x))
    assert layer.get_config()["padding"] == 0 and "padding" not in repr(layer)
    assert "padding='same'" in repr(Conv2d(2, 3, padding="same"))


def test_conv1d_on_sequences_matches_nn_conv1d_on_transposed_data():
    layer = Conv1d(5, 3, padding="valid", dilation=2, groups=1, bias_initializer="ones")
    layer.build([(None, 4)])
    assert layer.weight.shape == (5, 4, 3)
    reference = _copy(nn.Conv1d(4, 5, 3, dilation=2), layer.weight, layer.bias)
    x = torch.randn(2, 11, 4)
    y = layer(x)
    assert y.shape == (2, 7, 5)
    assert layer.output_shape([(11, 4)]) == (7, 5)
    close(y, reference(x.transpose(1, 2)).transpose(1, 2))


def test_conv1d_same_even_kernel_pads_extra_at_the_end():
    layer = Conv1d(3, 4, padding="same", groups=1, bias=False)
    layer.build([(None, 2)])
    x = torch.randn(2, 9, 2)
    expected = F.conv1d(F.pad(x.transpose(1, 2), (1, 2)), layer.weight).transpose(1, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no torch warning about uneven 'same' padding
        close(layer(x), expected)
    assert layer(x).shape == (2, 9, 3)


def test_conv1d_groups_and_stride_same():
    layer = Conv1d(4, 3, stride=3, groups=2, padding="same")
    layer.build([(None, 6)])
    x = torch.randn(2, 10, 6)
    y = layer(x)
    assert y.shape == (2, 4, 4)  # ceil(10 / 3)
    # total padding (4 - 1) * 3 + 3 - 10 = 2: one before, one after
    expected = F.conv1d(F.pad(x.transpose(1, 2), (1, 1)), layer.weight, layer.bias, 3, groups=2)
    close(y, expected.transpose(1, 2))


def test_conv2d_same_stride_two_even_kernels_follows_tensorflow_and_matlab():
    layer = Conv2d(3, (4, 2), stride=2, padding="same")
    layer.build([(2, 7, 9)])
    assert layer.output_shape([(2, 7, 9)]) == (3, 4, 5)  # ceil(7 / 2), ceil(9 / 2)
    x = torch.randn(2, 2, 7, 9)
    # height: total (4 - 1) * 2 + 4 - 7 = 3 -> 1 before, 2 after
    # width:  total (5 - 1) * 2 + 2 - 9 = 1 -> 0 before, 1 after
    padded = F.pad(x, (0, 1, 1, 2))
    expected = F.conv2d(padded, layer.weight, layer.bias, stride=2)
    y = layer(x)
    assert y.shape == (2, 3, 4, 5)
    close(y, expected)


def test_conv2d_same_stride_one_even_kernel_and_dilation():
    layer = Conv2d(2, 4, padding="same", dilation=(1, 2))
    layer.build([(3, 6, 7)])
    x = torch.randn(1, 3, 6, 7)
    # height: extent 4, total 3 -> (1, 2); width: extent 7, total 6 -> (3, 3)
    expected = F.conv2d(F.pad(x, (3, 3, 1, 2)), layer.weight, layer.bias, dilation=(1, 2))
    close(layer(x), expected)
    assert layer(x).shape == (1, 2, 6, 7)


@pytest.mark.parametrize(
    ("length", "kernel", "stride", "dilation", "pads"),
    [(7, 4, 2, 1, (1, 2)), (9, 2, 2, 1, (0, 1)), (8, 3, 2, 1, (0, 1)), (5, 3, 1, 2, (2, 2))],
)
def test_same_padding_helper(length, kernel, stride, dilation, pads):
    assert same_padding(length, kernel, stride, dilation) == pads


def test_conv2d_explicit_and_valid_padding():
    layer = Conv2d(4, 3, stride=(2, 1), padding=(1, 0))
    layer.build([(2, 8, 8)])
    reference = _copy(nn.Conv2d(2, 4, 3, stride=(2, 1), padding=(1, 0)), layer.weight, layer.bias)
    x = torch.randn(2, 2, 8, 8)
    assert layer.output_shape([(2, 8, 8)]) == (4, 4, 6)
    close(layer(x), reference(x))
    valid = Conv2d(4, 3, padding="valid")
    assert valid.output_shape([(2, 8, 8)]) == (4, 6, 6)


def test_conv3d_matches_nn_conv3d():
    layer = Conv3d(3, (3, 2, 3), stride=(1, 2, 1), padding=1, bias_initializer="narrow-normal")
    layer.build([(2, 4, 6, 5)])
    reference = nn.Conv3d(2, 3, (3, 2, 3), stride=(1, 2, 1), padding=1)
    reference = _copy(reference, layer.weight, layer.bias)
    x = torch.randn(2, 2, 4, 6, 5)
    y = layer(x)
    close(y, reference(x))
    assert tuple(y.shape[1:]) == layer.output_shape([(2, 4, 6, 5)]) == (3, 4, 4, 5)

    same = Conv3d(2, 3, padding="same")
    same.build([(2, 4, 6, 5)])
    reference = _copy(nn.Conv3d(2, 2, 3, padding="same"), same.weight, same.bias)
    close(same(x), reference(x))


@pytest.mark.parametrize(("kernel", "stride"), [(4, 2), (3, 2), (5, 1), (3, 3), (5, 2), (6, 3)])
def test_transposed_conv_same_cropping_gives_input_times_stride(kernel, stride):
    layer = TransposedConv2d(3, kernel, stride=stride, cropping="same")
    layer.build([(2, 5, 4)])
    assert layer.output_shape([(2, 5, 4)]) == (3, 5 * stride, 4 * stride)
    crop = kernel - stride  # total cropping of the full transposed output
    x = torch.randn(2, 2, 5, 4)
    y = layer(x)
    assert y.shape == (2, 3, 5 * stride, 4 * stride)
    # a crop of the full (uncropped) transposed convolution, the odd extra at the bottom/right
    full = F.conv_transpose2d(x, layer.weight, layer.bias, stride=stride)
    start = crop // 2
    close(y, full[:, :, start : start + 5 * stride, start : start + 4 * stride])


@pytest.mark.parametrize(("kernel", "stride"), [(4, 2), (3, 2), (5, 2), (6, 3), (2, 1)])
def test_transposed_conv_same_is_the_adjoint_of_conv_same(kernel, stride):
    """<Conv2d_same(x), y> == <x, TransposedConv2d_same(y)> with shared weights (input sizes
    a multiple of the stride)."""
    conv = Conv2d(3, kernel, stride=stride, padding="same", bias=False)
    conv.build([(2, 12, 6)])
    up = TransposedConv2d(2, kernel, stride=stride, cropping="same", bias=False)
    up.build([(3, 12 // stride, 6 // stride)])
    with torch.no_grad():
        up.weight.copy_(conv.weight)  # (out, in, k, k) of conv = (in, out, k, k) of transpose
    x = torch.randn(1, 2, 12, 6, dtype=torch.float64)
    forward = conv.double()(x)
    y = torch.randn_like(forward)
    back = up.double()(y)
    assert back.shape == x.shape
    assert torch.isclose((forward * y).sum(), (x * back).sum())


def test_transposed_conv_explicit_cropping():
    layer = TransposedConv2d(2, (3, 4), stride=(2, 1), cropping=(1, 0), bias=False)
    layer.build([(3, 4, 4)])
    assert layer.weight.shape == (3, 2, 3, 4) and layer.bias is None
    reference = nn.ConvTranspose2d(3, 2, (3, 4), stride=(2, 1), padding=(1, 0), bias=False)
    reference = _copy(reference, layer.weight, None)
    x = torch.randn(1, 3, 4, 4)
    y = layer(x)
    close(y, reference(x))
    assert tuple(y.shape[1:]) == layer.output_shape([(3, 4, 4)]) == (2, 7, 7)


# -- pooling -----------------------------------------------------------------------------


def test_max_and_avg_pool1d_on_sequences():
    x = torch.randn(2, 9, 3)
    xt = x.transpose(1, 2)
    maxpool = MaxPool1d(3, stride=2)
    avgpool = AvgPool1d(2, padding=1)
    close(maxpool(x), F.max_pool1d(xt, 3, 2).transpose(1, 2))
    close(avgpool(x), F.avg_pool1d(xt, 2, 2, 1).transpose(1, 2))
    assert maxpool.output_shape([(9, 3)]) == (4, 3) == tuple(maxpool(x).shape[1:])
    assert avgpool.output_shape([(None, 3)]) == (None, 3)
    assert tuple(avgpool(x).shape[1:]) == avgpool.output_shape([(9, 3)]) == (5, 3)


def test_pool1d_same_padding():
    x = torch.randn(2, 7, 3)
    xt = x.transpose(1, 2)
    maxpool = MaxPool1d(2, padding="same")  # stride 2: output 4, total pad 1 at the end
    expected = F.max_pool1d(F.pad(xt, (0, 1), value=float("-inf")), 2)
    close(maxpool(x), expected.transpose(1, 2))
    x_negative = -x.abs() - 1  # padding never wins the max
    assert (maxpool(x_negative) < 0).all()
    avgpool = AvgPool1d(3, stride=1, padding="same")  # total pad 2: (1, 1), zeros counted
    expected = F.avg_pool1d(F.pad(xt, (1, 1)), 3, 1)
    close(avgpool(x), expected.transpose(1, 2))
    assert avgpool(x).shape == (2, 7, 3)


def test_max_and_avg_pool2d():
    x = torch.randn(2, 3, 8, 7)
    maxpool = MaxPool2d((2, 3), stride=(2, 1), padding=(1, 1))
    close(maxpool(x), F.max_pool2d(x, (2, 3), (2, 1), (1, 1)))
    assert tuple(maxpool(x).shape[1:]) == maxpool.output_shape([(3, 8, 7)])
    avgpool = AvgPool2d(2)
    close(avgpool(x), F.avg_pool2d(x, 2))
    assert tuple(avgpool(x).shape[1:]) == avgpool.output_shape([(3, 8, 7)]) == (3, 4, 3)
    valid = MaxPool2d(2, padding="valid")
    close(valid(x), F.max_pool2d(x, 2))


def test_pool2d_same_padding():
    x = torch.randn(2, 3, 7, 6)
    maxpool = MaxPool2d(3, stride=2, padding="same")
    # height: total (4 - 1) * 2 + 3 - 7 = 2 -> (1, 1); width: (3 - 1) * 2 + 3 - 6 = 1 -> (0, 1)
    expected = F.max_pool2d(F.pad(x, (0, 1, 1, 1), value=float("-inf")), 3, 2)
    close(maxpool(x), expected)
    assert maxpool.output_shape([(3, 7, 6)]) == (3, 4, 3) == tuple(maxpool(x).shape[1:])
    avgpool = AvgPool2d(2, padding="same")
    expected = F.avg_pool2d(F.pad(x, (0, 0, 0, 1)), 2)
    close(avgpool(x), expected)
    assert avgpool(x).shape == (2, 3, 4, 3)


def test_global_pooling():
    images = torch.randn(2, 3, 4, 5)
    sequences = torch.randn(2, 6, 3)
    volumes = torch.randn(2, 3, 2, 2, 2)
    avg, mx = GlobalAvgPool(), GlobalMaxPool()
    close(avg(images), images.mean(dim=(2, 3)))
    close(mx(images), images.amax(dim=(2, 3)))
    close(avg(sequences), sequences.mean(dim=1))
    close(mx(sequences), sequences.amax(dim=1))
    close(avg(volumes), volumes.mean(dim=(2, 3, 4)))
    assert avg.output_shape([(3, 4, 5)]) == (3,)
    assert mx.output_shape([(None, 6)]) == (6,)
    assert avg.output_shape([(3, 2, 2, 2)]) == (3,)
