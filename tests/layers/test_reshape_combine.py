"""Flatten, Reshape, Resize2d and the layers that combine several inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deeptoolbox.errors import SizeMismatchError
from deeptoolbox.layers import Addition, Concatenation, Flatten, Multiplication, Reshape, Resize2d

close = torch.testing.assert_close


def test_flatten_keeps_the_batch_axis():
    x = torch.randn(3, 2, 4, 5)
    layer = Flatten()
    assert layer.output_shape([(2, 4, 5)]) == (40,)
    close(layer(x), x.reshape(3, 40))
    assert Flatten().output_shape([(6, 5)]) == (30,)


@pytest.mark.parametrize(
    ("target", "source", "expected"),
    [((8, 4), (2, 4, 4), (8, 4)), ((-1, 2), (2, 4, 4), (16, 2)), ((2, -1, 4), (32,), (2, 4, 4))],
)
def test_reshape(target, source, expected):
    layer = Reshape(target)
    assert layer.output_shape([source]) == expected
    x = torch.randn(3, *source)
    y = layer(x)
    assert tuple(y.shape) == (3, *expected)
    close(y, x.reshape(3, *expected))


def test_resize_by_scale_and_to_output_size():
    x = torch.randn(2, 3, 5, 6)
    nearest = Resize2d(scale=2)
    assert nearest.output_shape([(3, 5, 6)]) == (3, 10, 12)
    close(nearest(x), x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))

    bilinear = Resize2d(scale=(1.5, 0.5), method="bilinear")
    y = bilinear(x)
    assert tuple(y.shape[1:]) == bilinear.output_shape([(3, 5, 6)]) == (3, 7, 3)
    expected = F.interpolate(x, scale_factor=(1.5, 0.5), mode="bilinear", align_corners=False)
    close(y, expected)

    sized = Resize2d(output_size=(4, 9), method="bilinear")
    y = sized(x)
    assert tuple(y.shape[1:]) == sized.output_shape([(3, 5, 6)]) == (3, 4, 9)
    close(y, F.interpolate(x, size=(4, 9), mode="bilinear", align_corners=False))

    bicubic = Resize2d(output_size=7, method="bicubic")
    assert bicubic.output_shape([(3, 5, 6)]) == (3, 7, 7)
    close(bicubic(x), F.interpolate(x, size=(7, 7), mode="bicubic", align_corners=False))


def test_addition_and_multiplication_of_three_inputs():
    a, b, c = (torch.randn(2, 3, 4, 4) for _ in range(3))
    addition, multiplication = Addition(3), Multiplication(3)
    assert addition.input_names == ("in1", "in2", "in3")
    close(addition(a, b, c), a + b + c)
    close(multiplication(a, b, c), a * b * c)
    assert multiplication.output_shape([(3, 4, 4)] * 3) == (3, 4, 4)
    assert addition.output_shape([(None, 4), (7, 4)]) == (None, 4)
    with pytest.raises(SizeMismatchError, match=r"in1 \(3, 4, 4\), in2 \(3, 4, 5\)"):
        addition.output_shape([(3, 4, 4), (3, 4, 5), (3, 4, 4)])


def test_concatenation_on_channels_of_images_and_sequences_and_in_time():
    images = Concatenation(3)
    assert images.output_shape([(2, 4, 4), (3, 4, 4), (1, 4, 4)]) == (6, 4, 4)
    images.build([(2, 4, 4), (3, 4, 4), (1, 4, 4)])
    a, b, c = torch.randn(2, 2, 4, 4), torch.randn(2, 3, 4, 4), torch.randn(2, 1, 4, 4)
    close(images(a, b, c), torch.cat((a, b, c), dim=1))

    sequences = Concatenation()
    sequences.build([(None, 3), (None, 2)])
    assert sequences.output_shape([(None, 3), (None, 2)]) == (None, 5)
    a, b = torch.randn(2, 6, 3), torch.randn(2, 6, 2)
    close(sequences(a, b), torch.cat((a, b), dim=2))

    features = Concatenation()
    features.build([(3,), (2,)])
    close(features(a[:, 0], b[:, 0]), torch.cat((a[:, 0], b[:, 0]), dim=1))

    time = Concatenation(axis="time")
    assert time.output_shape([(4, 3), (5, 3)]) == (9, 3)
    assert time.output_shape([(None, 3), (5, 3)]) == (None, 3)
    time.build([(None, 3), (None, 3)])
    a, b = torch.randn(2, 4, 3), torch.randn(2, 5, 3)
    close(time(a, b), torch.cat((a, b), dim=1))

    last_axis = Concatenation(axis=-1)
    last_axis.build([(2, 4, 3), (2, 4, 1)])
    x, y = torch.randn(2, 2, 4, 3), torch.randn(2, 2, 4, 1)
    close(last_axis(x, y), torch.cat((x, y), dim=3))


def test_concatenation_used_without_build_joins_channels():
    a, b = torch.randn(2, 6, 3), torch.randn(2, 6, 2)
    close(Concatenation()(a, b), torch.cat((a, b), dim=2))
    images = torch.randn(2, 3, 4, 4)
    close(Concatenation()(images, images), torch.cat((images, images), dim=1))
    close(Concatenation(axis="time")(a, a), torch.cat((a, a), dim=1))


def test_concatenation_size_errors():
    with pytest.raises(SizeMismatchError, match="sizes must agree except on axis 0"):
        Concatenation().output_shape([(2, 4, 4), (3, 5, 4)])
    with pytest.raises(SizeMismatchError, match="same number of dimensions"):
        Concatenation().output_shape([(2, 4, 4), (3, 4)])
    with pytest.raises(SizeMismatchError, match="axis='time' needs sequences"):
        Concatenation(axis="time").output_shape([(2, 4, 4), (3, 4, 4)])
    with pytest.raises(SizeMismatchError, match="axis 3 is outside inputs of rank 3"):
        Concatenation(axis=3).output_shape([(2, 4, 4), (3, 4, 4)])
