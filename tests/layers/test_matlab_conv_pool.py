"""The convolution, pooling and resizing layers MATLAB has that issue 13 item 1 added:
TransposedConv1d, TransposedConv3d, AdaptiveAvgPool1d/2d/3d, Resize3d, MaxUnpooling2d (and
global pooling of volumes).

Each is compared with a reference computed another way (torch modules, numpy formulas, the
adjoint of a convolution), and checked inside a Network: sizes, analyze rows, save/load,
to_python.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deeptoolbox import Network, analyze, load, save, to_python
from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError, SizeMismatchError


def _built(layer: L.Layer, x: torch.Tensor) -> L.Layer:
    layer.build([tuple(x.shape[1:])])
    return layer.eval()


# -- transposed convolutions ------------------------------------------------------------------


@pytest.mark.parametrize("crop", [0, 1, (2,)])
def test_transposed_conv1d_is_torch_conv_transpose_on_sequences(crop):
    torch.manual_seed(0)
    x = torch.randn(2, 9, 3)  # (N, T, C)
    layer = _built(L.TransposedConv1d(4, 5, stride=3, cropping=crop), x)
    torch_layer = nn.ConvTranspose1d(3, 4, 5, stride=3, padding=crop)
    torch_layer.load_state_dict(layer.state_dict())
    with torch.no_grad():
        want = torch_layer(x.transpose(1, 2)).transpose(1, 2)
        torch.testing.assert_close(layer(x), want)
    assert isinstance(layer, nn.ConvTranspose1d) and layer.in_channels == 3
    assert layer.output_shape([(9, 3)]) == tuple(want.shape[1:])


def test_transposed_conv3d_is_torch_conv_transpose_on_volumes():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 3, 4, 5)
    layer = _built(L.TransposedConv3d(2, (2, 3, 4), stride=(1, 2, 3), cropping=(0, 1, 1)), x)
    torch_layer = nn.ConvTranspose3d(3, 2, (2, 3, 4), stride=(1, 2, 3), padding=(0, 1, 1))
    torch_layer.load_state_dict(layer.state_dict())
    with torch.no_grad():
        want = torch_layer(x)
        torch.testing.assert_close(layer(x), want)
    assert layer.output_shape([(3, 3, 4, 5)]) == tuple(want.shape[1:])
    assert isinstance(layer, nn.ConvTranspose3d) and tuple(layer.weight.shape) == (3, 2, 2, 3, 4)


@pytest.mark.parametrize(("kernel", "stride"), [(3, 2), (4, 2), (2, 2), (5, 1)])
def test_transposed_conv1d_same_is_the_adjoint_of_conv1d_same(kernel, stride):
    """<Conv1d_same(x), y> == <x, TransposedConv1d_same(y)> with shared weights, and the output
    is T * stride long."""
    torch.manual_seed(2)
    down = L.Conv1d(2, kernel, stride=stride, padding="same", bias=False)
    up = L.TransposedConv1d(3, kernel, stride=stride, cropping="same", bias=False)
    down.build([(None, 3)])
    up.build([(None, 2)])
    with torch.no_grad():
        up.weight.copy_(down.weight)
    x = torch.randn(2, 8 * stride, 3)
    y = torch.randn(2, 8, 2)
    with torch.no_grad():
        lhs = (down(x) * y).sum()
        rhs = (x * up(y)).sum()
    assert up(y).shape == (2, 8 * stride, 3)
    torch.testing.assert_close(lhs, rhs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("kernel", "stride"), [((3, 4, 2), (2, 2, 1)), (2, (1, 2, 2))])
def test_transposed_conv3d_same_is_the_adjoint_of_conv3d_same(kernel, stride):
    torch.manual_seed(3)
    down = L.Conv3d(2, kernel, stride=stride, padding="same", bias=False)
    up = L.TransposedConv3d(3, kernel, stride=stride, cropping="same", bias=False)
    down.build([(3, 4, 4, 4)])
    up.build([(2, 2, 2, 2)])
    with torch.no_grad():
        up.weight.copy_(down.weight)
    strides = (stride,) * 3 if isinstance(stride, int) else stride
    x = torch.randn(1, 3, *(2 * s for s in strides))
    y = torch.randn(1, 2, 2, 2, 2)
    with torch.no_grad():
        assert down(x).shape == y.shape and up(y).shape == x.shape
        torch.testing.assert_close((down(x) * y).sum(), (x * up(y)).sum(), rtol=1e-4, atol=1e-4)


def test_transposed_convs_refuse_bad_options_and_sizes():
    with pytest.raises(OptionError, match="cropping='same' needs kernel_size >= stride"):
        L.TransposedConv3d(2, 2, stride=3, cropping="same")
    with pytest.raises(OptionError, match="cropping"):
        L.TransposedConv1d(2, 3, cropping="valid")
    with pytest.raises(OptionError, match="kernel_size"):
        L.TransposedConv3d(2, (2, 2))
    with pytest.raises(SizeMismatchError, match="leaves no output"):
        L.TransposedConv1d(2, 3, cropping=2).output_shape([(1, 4)])
    with pytest.raises(SizeMismatchError, match=r"volumes \(C, D, H, W\)"):
        L.TransposedConv3d(2, 3).output_shape([(4, 5, 5)])


# -- adaptive and global pooling ----------------------------------------------------------------


def _adaptive_reference(x: np.ndarray, sizes: tuple[int, ...]) -> np.ndarray:
    """Mean over windows [floor(i n / m), ceil((i + 1) n / m)) of each spatial axis."""
    out = x
    for axis, m in enumerate(sizes, start=2):
        n = out.shape[axis]
        pieces = [
            out.take(range(math.floor(i * n / m), math.ceil((i + 1) * n / m)), axis=axis).mean(
                axis=axis, keepdims=True
            )
            for i in range(m)
        ]
        out = np.concatenate(pieces, axis=axis)
    return out


@pytest.mark.parametrize(
    ("make", "shape", "sizes"),
    [
        (lambda: L.AdaptiveAvgPool2d((3, 2)), (2, 4, 7, 5), (3, 2)),
        (lambda: L.AdaptiveAvgPool2d(1), (1, 3, 6, 6), (1, 1)),
        (lambda: L.AdaptiveAvgPool3d((2, 3, 1)), (2, 2, 5, 4, 3), (2, 3, 1)),
    ],
)
def test_adaptive_average_pooling_matches_its_window_formula(make, shape, sizes):
    x = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    layer = _built(make(), torch.from_numpy(x))
    with torch.no_grad():
        got = layer(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, _adaptive_reference(x, sizes), rtol=1e-5, atol=1e-6)
    assert layer.output_shape([shape[1:]]) == got.shape[1:]


def test_adaptive_average_pooling_of_sequences_pools_time():
    x = np.random.default_rng(5).standard_normal((2, 11, 3)).astype(np.float32)
    layer = L.AdaptiveAvgPool1d(4)
    with torch.no_grad():
        got = layer(torch.from_numpy(x)).numpy()
    want = _adaptive_reference(x.transpose(0, 2, 1), (4,)).transpose(0, 2, 1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert layer.output_shape([(None, 3)]) == (4, 3)


def test_adaptive_pooling_refuses_outputs_larger_than_the_input():
    with pytest.raises(SizeMismatchError, match="larger than the input"):
        L.AdaptiveAvgPool2d((4, 4)).output_shape([(3, 3, 8)])
    with pytest.raises(OptionError, match="output_size"):
        L.AdaptiveAvgPool3d((2, 2))


def test_global_pooling_of_volumes_reduces_depth_height_and_width():
    x = np.random.default_rng(6).standard_normal((2, 3, 4, 5, 6)).astype(np.float32)
    assert L.GlobalAvgPool().output_shape([(3, 4, 5, 6)]) == (3,)
    with torch.no_grad():
        mean = L.GlobalAvgPool()(torch.from_numpy(x)).numpy()
        top = L.GlobalMaxPool()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(mean, x.mean(axis=(2, 3, 4)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(top, x.max(axis=(2, 3, 4)))


# -- Resize3d -------------------------------------------------------------------------------


def test_resize3d_nearest_takes_floor_of_index_over_scale():
    x = np.random.default_rng(7).standard_normal((1, 2, 3, 4, 5)).astype(np.float32)
    scale = (2.0, 1.5, 3.0)
    layer = L.Resize3d(scale=scale)
    with torch.no_grad():
        got = layer(torch.from_numpy(x)).numpy()
    out = [math.floor(n * s) for n, s in zip(x.shape[2:], scale, strict=True)]
    index = [np.minimum(np.floor(np.arange(m) / s).astype(int), n - 1)
             for m, s, n in zip(out, scale, x.shape[2:], strict=True)]  # fmt: skip
    want = x[:, :, index[0]][:, :, :, index[1]][:, :, :, :, index[2]]
    np.testing.assert_array_equal(got, want)
    assert layer.output_shape([(2, 3, 4, 5)]) == (2, *out)


def test_resize3d_trilinear_is_linear_interpolation_along_each_axis():
    torch.manual_seed(8)
    x = torch.randn(1, 2, 3, 4, 5)
    got = L.Resize3d(output_size=(5, 7, 4), method="trilinear")(x)
    want = x
    for axis, size in zip((2, 3, 4), (5, 7, 4), strict=True):
        moved = want.movedim(axis, -1)
        flat = moved.reshape(-1, 1, moved.shape[-1])
        line = F.interpolate(flat, size=size, mode="linear", align_corners=False)
        want = line.reshape(*moved.shape[:-1], size).movedim(-1, axis)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_resize3d_refuses_bad_options():
    with pytest.raises(OptionError, match="exactly one of `scale` or `output_size`"):
        L.Resize3d()
    with pytest.raises(OptionError, match="method"):
        L.Resize3d(scale=2, method="bilinear")
    with pytest.raises(OptionError, match="three"):
        L.Resize3d(scale=(2, 2))
    with pytest.raises(SizeMismatchError, match="volumes"):
        L.Resize3d(scale=2).output_shape([(3, 4, 4)])


# -- MaxUnpooling2d ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pool", "stride", "padding"), [(2, None, 0), (3, 2, 1), ((2, 3), None, 0)]
)
def test_max_unpooling_is_torch_max_unpool_of_the_pooling_indices(pool, stride, padding):
    torch.manual_seed(9)
    x = torch.randn(2, 3, 7, 9)
    pooled, indices = F.max_pool2d(x, pool, stride, padding, return_indices=True)
    values = torch.randn_like(pooled)  # what the decoder computed from the pooled features
    want = F.max_unpool2d(values, indices, pool, stride, padding, output_size=x.shape[-2:])
    layer = L.MaxUnpooling2d(pool, stride=stride, padding=padding)
    assert layer.output_shape([tuple(values.shape[1:]), (3, 7, 9)]) == (3, 7, 9)
    torch.testing.assert_close(layer(values, x), want, rtol=0, atol=0)


def test_max_unpooling_same_padding_puts_each_value_at_its_window_maximum():
    x = torch.randn(1, 2, 5, 7)
    pool = L.MaxPool2d(2, padding="same")
    values = pool(x)
    got = L.MaxUnpooling2d(2, padding="same")(values, x)
    assert got.shape == x.shape
    for i in range(3):
        for j in range(4):
            window = x[0, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            placed = got[0, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            torch.testing.assert_close(placed, torch.where(window == values[0, :, i, j, None, None],
                                                           window, 0.0))  # fmt: skip


def test_max_unpooling_sizes_must_match_the_pooling():
    with pytest.raises(SizeMismatchError, match="Connect the input of the matching MaxPool2d"):
        L.MaxUnpooling2d(2).output_shape([(3, 4, 4), (3, 6, 6)])
    with pytest.raises(OptionError, match="pool_size"):
        L.MaxUnpooling2d(0)


# -- inside a network -----------------------------------------------------------------------


def _encoder_decoder() -> Network:
    net = Network(
        [
            L.ImageInput((2, 8, 8), name="x"),
            L.Conv2d(4, 3, padding="same", name="conv"),
            L.MaxPool2d(2, name="pool"),
            L.ReLU(name="relu"),
            L.MaxUnpooling2d(2, name="unpool"),
            L.AdaptiveAvgPool2d((3, 3), name="adapt"),
            L.Resize2d(scale=2, name="resize"),
        ]
    )
    return net.connect("conv", "unpool/reference")


def _volumes() -> Network:
    return Network(
        [
            L.VolumeInput((2, 3, 4, 4), name="v"),
            L.TransposedConv3d(3, 2, stride=2, name="up"),
            L.Resize3d(scale=(0.5, 1, 1), method="trilinear", name="resize3"),
            L.AdaptiveAvgPool3d((2, 2, 2), name="adapt3"),
            L.GlobalMaxPool(name="gmp"),
        ]
    )


def _sequences() -> Network:
    return Network(
        [
            L.SequenceInput(3, name="s"),
            L.TransposedConv1d(4, 4, stride=2, cropping="same", name="up1"),
            L.AdaptiveAvgPool1d(5, name="adapt1"),
            L.Dense(2, name="fc"),
        ]
    )


def test_networks_sizes_analyze_save_load_and_to_python(tmp_path):
    torch.manual_seed(10)
    cases = [(_encoder_decoder(), torch.randn(2, 2, 8, 8)),
             (_volumes(), torch.randn(2, 2, 3, 4, 4)),
             (_sequences(), torch.randn(2, 7, 3))]  # fmt: skip
    table = analyze(cases[0][0])
    assert table.row("unpool").output_size == (4, 8, 8) and table.row("unpool").type == (
        "MaxUnpooling2d"
    )
    assert table.row("adapt").output_size == (4, 3, 3)
    table = analyze(cases[1][0])
    assert (
        table.row("up").output_size == (3, 6, 8, 8) and table.row("up").learnables == 2 * 3 * 8 + 3
    )
    assert table.row("resize3").output_size == (3, 3, 8, 8)
    assert analyze(cases[2][0]).row("up1").output_size == (None, 4)
    for index, (net, x) in enumerate(cases):
        net = net.eval()
        again = load(save(net, tmp_path / f"net{index}.zip")).eval()
        torch.testing.assert_close(again(x), net(x), rtol=0, atol=0)
        namespace: dict = {}
        exec(to_python(net), namespace)  # noqa: S102 - code the toolbox just wrote
        rebuilt = namespace["build_network"]().eval()
        rebuilt.load_state_dict(net.state_dict())
        torch.testing.assert_close(rebuilt(x), net(x), rtol=0, atol=0)
    assert cases[2][0](torch.randn(1, 9, 3)).shape == (1, 5, 2)  # any length in, 5 steps out
