"""Gradient attribution and occlusion sensitivity: references, Captum, known regions, errors."""

from unittest import mock

import pytest
import torch
from captum.attr import IntegratedGradients, NoiseTunnel, Occlusion, Saliency
from explain_nets import RegionNet, SpanNet, dilate, mass_inside, region_mask

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import InputSizeError, OptionError
from deeptoolbox.explain import (
    GRADIENT_METHODS,
    TargetError,
    gradient_attribution,
    occlusion_sensitivity,
)
from deeptoolbox.explain._gradients import smoothgrad_noise


def smooth_net(softmax: bool = True) -> Network:
    torch.manual_seed(1)
    layers = [
        L.ImageInput((2, 6, 6), name="image"), L.Conv2d(4, 3, padding="same", name="conv"), L.Tanh(name="act"),
        L.Flatten(name="flat"), L.Dense(3, name="fc"),
    ]  # fmt: skip
    if softmax:
        layers.append(L.Softmax(name="prob"))
    return Network(layers, classes=["x", "y", "z"])


def logits_of(net: Network) -> Network:
    logits = smooth_net(softmax=False)
    logits.load_state_dict(net.state_dict(), strict=False)
    return logits.eval()


def test_saliency_and_input_x_gradient_match_autograd():
    net = smooth_net()
    x = torch.randn(3, 2, 6, 6, requires_grad=True)
    target = torch.tensor([0, 2, 1])
    logits_of(net)(x).gather(1, target[:, None]).sum().backward()
    gradient = x.grad
    saliency = gradient_attribution(net, x.detach(), target, method="saliency")
    torch.testing.assert_close(saliency, gradient.abs().sum(1))
    ixg = gradient_attribution(net, x.detach(), target, method="input-x-gradient", reduce=None)
    torch.testing.assert_close(ixg, x.detach() * gradient)


def test_integrated_gradients_completeness_and_captum_agreement():
    net = smooth_net()
    x = torch.randn(4, 2, 6, 6)
    baseline = 0.3 * torch.randn(2, 6, 6)
    ig = gradient_attribution(
        net, x, "y", method="integrated-gradients", baseline=baseline, steps=200, reduce=None
    )
    logits = logits_of(net)
    with torch.no_grad():
        gap = logits(x)[:, 1] - logits(baseline[None].expand_as(x))[:, 1]
    torch.testing.assert_close(ig.flatten(1).sum(1), gap, atol=2e-3, rtol=1e-3)
    captum = IntegratedGradients(logits).attribute(
        x, baselines=baseline[None].expand_as(x), target=1, n_steps=200
    )
    torch.testing.assert_close(ig, captum, atol=1e-5, rtol=1e-4)


def test_smoothgrad_matches_noise_tunnel_on_one_observation_with_same_noise():
    """Issue 12 changed SmoothGrad's noise scale from the chunk's range to each observation's
    range, drawn per observation: on one observation that is NoiseTunnel with the same noise."""
    net = smooth_net()
    x = torch.rand(1, 2, 6, 6)
    logits = logits_of(net)
    ours = gradient_attribution(net, x, 0, method="smoothgrad", samples=8, reduce=None, seed=3)
    noise = smoothgrad_noise((2, 6, 6), 8, seed=3, index=0)
    stdev = 0.15 * float(x.max() - x.min())
    with mock.patch.object(torch, "normal", lambda mean, std: mean + noise * std):
        captum = NoiseTunnel(Saliency(logits)).attribute(
            x, nt_type="smoothgrad", nt_samples=8, stdevs=stdev, target=0, abs=True,
        )  # fmt: skip
    torch.testing.assert_close(ours, captum)
    again = gradient_attribution(net, x, 0, method="smoothgrad", num_samples=8, reduce=None, seed=3)
    torch.testing.assert_close(ours, again)
    torch.manual_seed(4)
    other = gradient_attribution(net, x, 0, method="smoothgrad", num_samples=8, reduce=None)
    assert not torch.allclose(ours, other)


def test_smoothgrad_does_not_depend_on_batch_size_and_scales_per_observation():
    net = smooth_net()
    x = torch.rand(5, 2, 6, 6)
    x[3] *= 50  # a wide observation: the others' noise must not grow with it
    options = {"method": "smoothgrad", "num_samples": 6, "reduce": None, "seed": 7}
    whole = gradient_attribution(net, x, **options, batch_size=64)
    chunked = gradient_attribution(net, x, **options, batch_size=2)
    torch.testing.assert_close(chunked, whole)
    alone = gradient_attribution(net, x[:1], **options)  # observation 0, its own range
    torch.testing.assert_close(alone, whole[:1])
    torch.manual_seed(0)
    unseeded = gradient_attribution(net, x, method="smoothgrad", num_samples=6, batch_size=2)
    torch.manual_seed(0)
    assert torch.equal(unseeded, gradient_attribution(net, x, method="smoothgrad", num_samples=6))


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_gradient_methods_stay_in_the_known_region(method):
    region = region_mask()
    net = RegionNet(region)
    x = torch.randn(3, 1, 16, 16)
    maps = gradient_attribution(net, x, method=method, samples=4, steps=16)
    assert maps.shape == (3, 16, 16)
    assert (maps.abs() > 0).any()
    assert (mass_inside(maps, region) > 0.999999).all()


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_gradient_methods_on_sequences_stay_in_the_time_span(method):
    span = torch.zeros(24, dtype=torch.bool)
    span[5:11] = True
    maps = gradient_attribution(SpanNet(span), torch.randn(2, 24, 2), method=method, samples=4)
    assert maps.shape == (2, 24)
    assert (mass_inside(maps, span) > 0.999999).all()


def test_occlusion_matches_captum_and_a_direct_loop():
    net = smooth_net()
    x = torch.randn(3, 2, 6, 6)
    ours = occlusion_sensitivity(net, x, "z", mask_size=2, stride=2, mask_value=0.0)
    captum = Occlusion(logits_of(net)).attribute(
        x, sliding_window_shapes=(2, 2, 2), strides=(2, 2, 2), baselines=0.0, target=2
    )
    torch.testing.assert_close(ours, captum[:, 0])
    logits = logits_of(net)
    with torch.no_grad():
        full = logits(x)[:, 2]
        for r in range(0, 6, 2):
            for c in range(0, 6, 2):
                hidden = x.clone()
                hidden[:, :, r : r + 2, c : c + 2] = 0
                expected = full - logits(hidden)[:, 2]
                torch.testing.assert_close(ours[:, r, c], expected, atol=1e-5, rtol=1e-5)


def test_occlusion_batching_mean_fill_and_single_observation():
    net = smooth_net()
    x = torch.randn(5, 2, 6, 6)
    target = [0, 1, 2, 0, 1]
    full = occlusion_sensitivity(net, x, target, mask_size=3, stride=1)
    torch.testing.assert_close(
        occlusion_sensitivity(net, x, target, mask_size=3, stride=1, batch_size=2), full
    )
    single = occlusion_sensitivity(net, x[3], 0, mask_size=3, stride=1)
    torch.testing.assert_close(single, full[3])
    means = x.mean((2, 3), keepdim=True).expand_as(x)
    captum = Occlusion(logits_of(net)).attribute(
        x, sliding_window_shapes=(2, 3, 3), strides=(2, 1, 1), baselines=means,
        target=torch.tensor(target),
    )  # fmt: skip
    torch.testing.assert_close(full, captum[:, 0])


def test_occlusion_known_region_sequences_and_features():
    region = region_mask()
    maps = occlusion_sensitivity(RegionNet(region), torch.randn(2, 1, 16, 16), mask_size=3)
    assert (mass_inside(maps, dilate(region, 2)) > 0.999999).all()
    span = torch.zeros(24, dtype=torch.bool)
    span[5:11] = True
    maps = occlusion_sensitivity(SpanNet(span), torch.randn(2, 24, 2), mask_size=2, stride=1)
    assert maps.shape == (2, 24)
    assert (mass_inside(maps, dilate(span, 1)) > 0.999999).all()
    torch.manual_seed(0)
    linear = Network([L.FeatureInput(4), L.Dense(1, name="fc")])
    x = torch.randn(3, 4)
    maps = occlusion_sensitivity(linear, x, mask_size=1, stride=1, mask_value=0.0)
    torch.testing.assert_close(maps, x * linear.layer("fc").weight.detach()[0])


def test_errors():
    net = smooth_net()
    x = torch.randn(2, 2, 6, 6)
    with pytest.raises(OptionError, match="`method` must be one of"):
        gradient_attribution(net, x, method="deeplift")
    with pytest.raises(OptionError, match="`baseline` of size"):
        gradient_attribution(net, x, method="integrated-gradients", baseline=torch.zeros(3))
    with pytest.raises(TargetError, match="index 3 is out of range"):
        gradient_attribution(net, x, target=3)
    with pytest.raises(OptionError, match=r"`mask_size` \(7, 7\) is larger than the input"):
        occlusion_sensitivity(net, x, mask_size=7)
    with pytest.raises(OptionError, match="`baseline` must be 'mean' or a number"):
        occlusion_sensitivity(net, x, mask_value="median")
    with pytest.raises(OptionError, match="`stride` must be"):
        occlusion_sensitivity(net, x, stride=(1, 2, 3))
    with pytest.raises(InputSizeError, match="image"):
        occlusion_sensitivity(net, torch.randn(2, 3, 6, 6))
    with pytest.raises(OptionError, match="`net` must be"):
        occlusion_sensitivity("net", x)
