"""The activation and normalization layers MATLAB has that issue 13 added: ClippedReLU, PReLU,
Softplus, HardSwish, HardSigmoid, Mish, SpatialDropout, InstanceNorm, CrossChannelNorm.

Each is compared with a reference computed another way (numpy formulas, torch functional or
modules), and checked inside a Network: sizes, analyze rows, save/load, to_python.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deeptoolbox import Network, analyze, load, save, to_python
from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError, SizeMismatchError

RNG = np.random.default_rng(13)


def _data(*shape: int) -> np.ndarray:
    return (RNG.standard_normal(shape) * 4).astype(np.float32)


def _run(layer: L.Layer, x: np.ndarray) -> np.ndarray:
    if not layer.is_built:
        layer.build([x.shape[1:]])
    with torch.no_grad():
        return layer.eval()(torch.from_numpy(x)).numpy()


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x.astype(np.float64))


ACTIVATIONS = {
    "ClippedReLU": (lambda: L.ClippedReLU(2.5), lambda x: np.minimum(np.maximum(x, 0), 2.5)),
    "Softplus": (L.Softplus, _softplus),
    "HardSwish": (L.HardSwish, lambda x: x * np.clip(x + 3, 0, 6) / 6),
    "HardSigmoid": (L.HardSigmoid, lambda x: np.clip(x / 6 + 0.5, 0, 1)),
    "HardSigmoid(0.2, 0.4)": (
        lambda: L.HardSigmoid(0.2, 0.4),
        lambda x: np.clip(0.2 * x + 0.4, 0, 1),
    ),
    "Mish": (L.Mish, lambda x: x * np.tanh(_softplus(x))),
}


@pytest.mark.parametrize("kind", sorted(ACTIVATIONS))
@pytest.mark.parametrize("shape", [(3, 5), (3, 4, 2), (2, 3, 4, 4)])
def test_activation_matches_its_formula(kind, shape):
    make, formula = ACTIVATIONS[kind]
    x = _data(*shape)
    np.testing.assert_allclose(_run(make(), x), formula(x), rtol=1e-5, atol=1e-6)


def test_clipped_relu_is_relu6_of_torch():
    x = torch.randn(4, 6) * 5
    torch.testing.assert_close(L.ClippedReLU(6)(x), F.relu6(x))


def test_prelu_images_one_alpha_per_channel_like_torch():
    layer = L.PReLU()
    layer.build([(3, 4, 4)])
    alpha = torch.tensor([0.1, -0.5, 2.0])
    reference = torch.nn.PReLU(3)
    with torch.no_grad():
        layer.alpha.copy_(alpha)
        reference.weight.copy_(alpha)
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(layer(x), reference(x))
    assert layer.alpha.shape == (3,)


def test_prelu_sequences_scale_the_last_axis():
    layer = L.PReLU(0.2)
    layer.build([(None, 3)])
    with torch.no_grad():
        layer.alpha.copy_(torch.tensor([0.1, 0.2, 0.3]))
    x = _data(2, 5, 3)
    want = np.where(x > 0, x, x * np.array([0.1, 0.2, 0.3], dtype=np.float32))
    np.testing.assert_allclose(_run(layer, x), want, rtol=1e-6)


def test_prelu_shared_alpha_and_its_gradient():
    layer = L.PReLU(0.3, channel_wise=False)
    layer.build([(4,)])
    assert layer.alpha.shape == (1,)
    x = torch.tensor([[-2.0, -1.0, 1.0, 3.0]])
    torch.testing.assert_close(layer(x), torch.tensor([[-0.6, -0.3, 1.0, 3.0]]))
    layer(x).sum().backward()
    torch.testing.assert_close(layer.alpha.grad, torch.tensor([-3.0]))  # sum of negative x


@pytest.mark.parametrize(
    ("shape", "channel_view"),
    [((60, 40, 3, 3), (60, 40, 1, 1)), ((60, 40, 2, 2, 2), (60, 40, 1, 1, 1)),
     ((60, 5, 40), (60, 1, 40))],
)  # fmt: skip
def test_spatial_dropout_drops_whole_channels_and_rescales_the_rest(shape, channel_view):
    torch.manual_seed(0)
    layer = L.SpatialDropout(0.3).train()
    x = torch.rand(shape) + 1.0  # no zeros of its own
    y = layer(x)
    kept = (y != 0).float()
    per_channel = kept.amax(dim=[d for d, n in enumerate(channel_view) if n == 1], keepdim=True)
    assert per_channel.shape == channel_view
    torch.testing.assert_close(kept, per_channel.expand_as(kept))  # all or nothing per channel
    torch.testing.assert_close(y[kept.bool()], x[kept.bool()] / 0.7)
    assert abs(1 - per_channel.mean().item() - 0.3) < 0.04  # 2400 channels
    torch.testing.assert_close(layer.eval()(x), x, rtol=0, atol=0)


def _instance_norm(x: np.ndarray, weight, bias, eps: float, axes: tuple) -> np.ndarray:
    x = x.astype(np.float64)
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def test_instance_norm_images_and_volumes_match_numpy():
    for shape, axes, view in [((2, 3, 5, 4), (2, 3), (3, 1, 1)), ((2, 3, 2, 3, 4), (2, 3, 4),
                              (3, 1, 1, 1))]:  # fmt: skip
        layer = L.InstanceNorm(epsilon=1e-3)
        layer.build([shape[1:]])
        weight, bias = torch.randn(3), torch.randn(3)
        with torch.no_grad():
            layer.weight.copy_(weight)
            layer.bias.copy_(bias)
        x = _data(*shape)
        want = _instance_norm(x, weight.numpy().reshape(view), bias.numpy().reshape(view),
                              1e-3, axes)  # fmt: skip
        np.testing.assert_allclose(_run(layer, x), want, rtol=1e-4, atol=1e-5)


def test_instance_norm_sequences_normalize_each_channel_over_time():
    layer = L.InstanceNorm()
    x = _data(2, 7, 3)
    want = _instance_norm(x, 1.0, 0.0, 1e-5, (1,))
    np.testing.assert_allclose(_run(layer, x), want, rtol=1e-4, atol=1e-5)


def test_instance_norm_same_in_training_and_inference_and_as_channel_wise_group_norm():
    layer, group = L.InstanceNorm(), L.GroupNorm("channel-wise")
    layer.build([(4, 3, 3)])
    group.build([(4, 3, 3)])
    x = torch.randn(3, 4, 3, 3)
    torch.testing.assert_close(layer.train()(x), layer.eval()(x))
    torch.testing.assert_close(layer(x), group(x), rtol=1e-5, atol=1e-5)


def _lrn(x: np.ndarray, n: int, alpha: float, beta: float, k: float) -> np.ndarray:
    """ONNX LRN, channel axis 1, written as a loop over channels."""
    x = x.astype(np.float64)
    out = np.empty_like(x)
    channels = x.shape[1]
    for c in range(channels):
        low, high = max(0, c - (n - 1) // 2), min(channels - 1, c + int(np.ceil((n - 1) / 2)))
        total = np.square(x[:, low : high + 1]).sum(axis=1)
        out[:, c] = x[:, c] / (k + alpha / n * total) ** beta
    return out


@pytest.mark.parametrize("window", [1, 2, 3, 4, 5])
def test_cross_channel_norm_images_match_the_onnx_formula(window):
    x = _data(2, 6, 3, 4)
    layer = L.CrossChannelNorm(window, alpha=0.3, beta=0.6, k=1.5)
    np.testing.assert_allclose(_run(layer, x), _lrn(x, window, 0.3, 0.6, 1.5), rtol=1e-5)


def test_cross_channel_norm_odd_window_is_torch_local_response_norm():
    x = torch.randn(2, 7, 3, 3, 2) * 3  # a volume
    layer = L.CrossChannelNorm(5, alpha=0.2, beta=0.75, k=2.0)
    layer.build([tuple(x.shape[1:])])
    want = F.local_response_norm(x, 5, alpha=0.2, beta=0.75, k=2.0)
    torch.testing.assert_close(layer(x), want)


def test_cross_channel_norm_sequences_and_features_use_the_last_axis():
    x = _data(2, 4, 5)
    want = _lrn(x.transpose(0, 2, 1), 3, 0.5, 0.75, 2.0).transpose(0, 2, 1)
    np.testing.assert_allclose(_run(L.CrossChannelNorm(3, alpha=0.5), x), want, rtol=1e-5)
    features = _data(3, 5)
    np.testing.assert_allclose(
        _run(L.CrossChannelNorm(3, alpha=0.5), features), _lrn(features, 3, 0.5, 0.75, 2.0),
        rtol=1e-5,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("make", "option"),
    [
        (lambda: L.ClippedReLU(0), "ceiling"),
        (lambda: L.ClippedReLU("6"), "ceiling"),
        (lambda: L.PReLU("a"), "alpha"),
        (lambda: L.PReLU(channel_wise="yes"), "channel_wise"),
        (lambda: L.HardSigmoid(alpha=None), "alpha"),
        (lambda: L.SpatialDropout(1.0), "probability"),
        (lambda: L.InstanceNorm(epsilon=0), "epsilon"),
        (lambda: L.CrossChannelNorm(0), "window_size"),
        (lambda: L.CrossChannelNorm(3, beta=-1), "beta"),
    ],
)
def test_bad_options_name_the_option(make, option):
    with pytest.raises(OptionError, match=f"`{option}`"):
        make()


def test_sizes_that_do_not_fit_are_refused():
    with pytest.raises(SizeMismatchError, match="InstanceNorm"):
        L.InstanceNorm().output_shape([(4,)])
    with pytest.raises(SizeMismatchError, match="free length"):
        L.PReLU().build([(3, None)])  # a sequence (T, C) with a free channel count
    L.PReLU(channel_wise=False).build([(3, None)])  # one shared alpha needs no channel count


def _network() -> Network:
    return Network(
        [
            L.ImageInput((3, 6, 6), normalization="none"),
            L.Conv2d(4, 3, padding="same", name="conv"),
            L.InstanceNorm(name="inorm"),
            L.PReLU(name="prelu"),
            L.CrossChannelNorm(3, name="lrn"),
            L.ClippedReLU(6.0, name="clip"),
            L.HardSwish(name="hswish"),
            L.Mish(name="mish"),
            L.Flatten(),
            L.Dense(5, name="fc"),
            L.Softplus(name="softplus"),
            L.HardSigmoid(0.2, 0.5, name="hsig"),
        ]
    )


def test_network_sizes_analyze_save_load_and_to_python(tmp_path):
    torch.manual_seed(0)
    net = _network().eval()
    rows = {name: analyze(net).row(name) for name in ("inorm", "prelu", "lrn", "hsig")}
    assert rows["inorm"].output_size == (4, 6, 6) and rows["inorm"].learnables == 8
    assert rows["prelu"].learnables == 4 and rows["prelu"].type == "PReLU"
    assert rows["lrn"].learnables == 0 and rows["hsig"].output_size == (5,)
    with torch.no_grad():
        net.layer("prelu").alpha.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    x = torch.randn(2, 3, 6, 6)
    again = load(save(net, tmp_path / "net.zip")).eval()
    torch.testing.assert_close(again(x), net(x), rtol=0, atol=0)
    assert again.layer("hsig").alpha == 0.2
    namespace: dict = {}
    exec(to_python(net), namespace)  # noqa: S102 - code the toolbox just wrote
    rebuilt = namespace["build_network"]().eval()
    rebuilt.load_state_dict(net.state_dict())
    torch.testing.assert_close(rebuilt(x), net(x), rtol=0, atol=0)
    assert repr(rebuilt.layer("lrn")) == "CrossChannelNorm(window_size=3)"


# -- depth to space and space to depth ---------------------------------------------------------


def _depth_to_space_dcr(x: np.ndarray, b: int) -> np.ndarray:
    """The ONNX specification's DCR formula."""
    n, c, h, w = x.shape
    tmp = x.reshape(n, b, b, c // b**2, h, w).transpose(0, 3, 4, 1, 5, 2)
    return tmp.reshape(n, c // b**2, h * b, w * b)


def _space_to_depth(x: np.ndarray, b: int) -> np.ndarray:
    """The ONNX specification's SpaceToDepth formula."""
    n, c, h, w = x.shape
    tmp = x.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4)
    return tmp.reshape(n, c * b * b, h // b, w // b)


def test_depth_to_space_dcr_matches_the_onnx_formula_and_crd_is_pixel_shuffle():
    x = _data(2, 12, 3, 4)
    np.testing.assert_array_equal(_run(L.DepthToSpace(2), x), _depth_to_space_dcr(x, 2))
    crd = _run(L.DepthToSpace(2, mode="crd"), x)
    np.testing.assert_array_equal(crd, F.pixel_shuffle(torch.from_numpy(x), 2).numpy())
    assert L.DepthToSpace(2).output_shape([(12, 3, 4)]) == (3, 6, 8)


def test_space_to_depth_matches_the_onnx_formula_and_inverts_depth_to_space():
    x = _data(2, 3, 4, 6)
    y = _run(L.SpaceToDepth(2), x)
    np.testing.assert_array_equal(y, _space_to_depth(x, 2))
    np.testing.assert_array_equal(_run(L.DepthToSpace(2), y), x)
    rect = _run(L.SpaceToDepth((2, 3)), x)  # MATLAB allows [bh bw]
    assert rect.shape == (2, 18, 2, 2)
    np.testing.assert_array_equal(_run(L.DepthToSpace((2, 3)), rect), x)


def test_block_layers_refuse_sizes_that_do_not_divide():
    with pytest.raises(SizeMismatchError, match=r"DepthToSpace: the channel count.*\(6, 3, 3\)"):
        L.DepthToSpace(2).output_shape([(6, 3, 3)])
    with pytest.raises(SizeMismatchError, match=r"SpaceToDepth: the height and width"):
        L.SpaceToDepth(2).output_shape([(3, 5, 4)])
    with pytest.raises(SizeMismatchError, match="images"):
        L.SpaceToDepth(2).output_shape([(None, 4)])
    with pytest.raises(OptionError, match="`mode`"):
        L.DepthToSpace(2, mode="DCR")
    with pytest.raises(OptionError, match="`block_size`"):
        L.SpaceToDepth(0)


# -- 3-D pooling ---------------------------------------------------------------------------------


def test_pool3d_matches_torch_pooling():
    x = torch.randn(2, 3, 5, 6, 7)
    cases = [
        (L.MaxPool3d(2), F.max_pool3d(x, 2)),
        (L.MaxPool3d((3, 2, 2), stride=(1, 2, 2), padding=(1, 0, 1)),
         F.max_pool3d(x, (3, 2, 2), (1, 2, 2), (1, 0, 1))),
        (L.AvgPool3d(3, stride=2, padding=1), F.avg_pool3d(x, 3, 2, 1)),
        (L.AvgPool3d((1, 2, 3)), F.avg_pool3d(x, (1, 2, 3))),
    ]  # fmt: skip
    for layer, want in cases:
        layer.build([tuple(x.shape[1:])])
        assert layer.output_shape([tuple(x.shape[1:])]) == tuple(want.shape[1:])
        torch.testing.assert_close(layer(x), want)


def test_pool3d_same_padding_keeps_ceil_of_size_over_stride():
    x = torch.randn(1, 2, 5, 4, 3)
    layer = L.MaxPool3d(2, padding="same")
    assert layer.output_shape([(2, 5, 4, 3)]) == (2, 3, 2, 2)
    padded = F.pad(x, (0, 1, 0, 0, 0, 1), value=float("-inf"))  # the extra row at the end
    torch.testing.assert_close(layer(x), F.max_pool3d(padded, 2))
    with pytest.raises(SizeMismatchError, match="volumes"):
        L.AvgPool3d(2).output_shape([(2, 4, 4)])
