"""Output bounds through the linear layers issue 13 item 1 added: TransposedConv1d/3d,
AdaptiveAvgPool1d/2d/3d and Resize3d (nearest and trilinear). Sound: every sampled output,
every box corner and what PGD finds inside the box lie within the bounds (IBP and CROWN with
optimized slopes); exact on a network of these layers alone (no activation)."""

import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.robustness import estimate_output_bounds


def _sequence():
    return Network([
        L.SequenceInput(3, length=5), L.TransposedConv1d(4, 3, stride=2, cropping="same"),
        L.ReLU(), L.AdaptiveAvgPool1d(4), L.Tanh(), L.Flatten(), L.Dense(3),
    ])  # fmt: skip


def _image():
    return Network([
        L.ImageInput((2, 5, 5), normalization="none"), L.AdaptiveAvgPool2d((3, 2)), L.ReLU(),
        L.Flatten(), L.Dense(3),
    ])  # fmt: skip


def _volume():
    return Network([
        L.VolumeInput((2, 2, 2, 2), normalization="none"),
        L.TransposedConv3d(2, 2, stride=2, cropping=0), L.ReLU(),
        L.Resize3d(scale=(1, 0.5, 0.5), method="trilinear"), L.LeakyReLU(0.1),
        L.Resize3d(scale=(1, 2, 1)), L.AdaptiveAvgPool3d((2, 3, 2)), L.Flatten(), L.Dense(3),
    ])  # fmt: skip


NETWORKS = {"sequence": (_sequence, (5, 3)), "image": (_image, (2, 5, 5)),
            "volume": (_volume, (2, 2, 2, 2))}  # fmt: skip


def _attacked(net, lo, hi, steps=15):
    """PGD on each output, down and up, from a random point of each box, all in one batch:
    (lowest found, highest found), each (boxes, outputs)."""
    boxes, k = lo.shape[0], 3
    lo_r = lo.repeat_interleave(2 * k, 0)
    hi_r = hi.repeat_interleave(2 * k, 0)
    sign = torch.cat([torch.ones(k), -torch.ones(k)]).repeat(boxes)
    pick = torch.arange(k).repeat(2 * boxes)[:, None]
    x = lo_r + (hi_r - lo_r) * torch.rand_like(lo_r)
    for step in range(steps):
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad((sign * net(x).gather(1, pick)[:, 0]).sum(), x)
        size = (hi_r - lo_r) * 0.2 * (1 - step / steps)
        x = torch.minimum(torch.maximum(x.detach() - size * grad.sign(), lo_r), hi_r)
    with torch.no_grad():
        found = net(x).gather(1, pick).reshape(boxes, 2, k)
    return found[:, 0], found[:, 1]


@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("method", ["ibp", "crown"])
def test_bounds_contain_sampled_corner_and_attacked_outputs(name, method):
    torch.manual_seed(sum(map(ord, name)))
    build, shape = NETWORKS[name]
    net = build().eval()
    lo = torch.rand(2, *shape) * 2 - 1
    hi = lo + torch.rand(2, *shape) * 0.5
    bounds = estimate_output_bounds(
        net, lo, hi, method=method, optimize_slopes=method == "crown", steps=3
    )
    low, high = bounds.lower.flatten(1), bounds.upper.flatten(1)
    samples = lo + (hi - lo) * torch.rand(300, *lo.shape)
    corners = torch.stack([lo, hi])
    with torch.no_grad():
        outputs = net(torch.cat([samples, corners]).reshape(-1, *shape)).reshape(302, 2, -1)
    assert bool((outputs >= low - 1e-5).all()) and bool((outputs <= high + 1e-5).all())
    least, most = _attacked(net, lo, hi)
    assert bool((least >= low - 1e-5).all()) and bool((most <= high + 1e-5).all())


def test_crown_is_exact_on_the_linear_layers_alone():
    """Without activations the network is affine: CROWN's bounds are the exact extremes,
    reached at box corners (checked against the layer run on the extreme corner)."""
    torch.manual_seed(4)
    net = Network([
        L.VolumeInput((1, 2, 2, 2), normalization="none"), L.TransposedConv3d(2, 2, stride=2),
        L.Resize3d(scale=(1, 0.5, 0.5), method="trilinear"), L.AdaptiveAvgPool3d((3, 1, 1)),
        L.Flatten(), L.Dense(1),
    ]).eval()  # fmt: skip
    lo = torch.rand(1, 1, 2, 2, 2) - 0.5
    hi = lo + 0.3
    bounds = estimate_output_bounds(net, lo, hi, method="crown")
    x = lo.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(net(x).sum(), x)  # constant gradient of an affine network
    with torch.no_grad():
        top = net(torch.where(grad > 0, hi, lo))
        bottom = net(torch.where(grad > 0, lo, hi))
    torch.testing.assert_close(bounds.upper.reshape(1, 1), top, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(bounds.lower.reshape(1, 1), bottom, rtol=1e-4, atol=1e-4)


def test_max_unpooling_is_refused_by_name():
    from deeptoolbox.robustness import UnsupportedLayerError

    net = Network([L.ImageInput((1, 4, 4), normalization="none", name="x"), L.MaxPool2d(2),
                   L.MaxUnpooling2d(2, name="unpool"), L.Flatten(), L.Dense(2)])  # fmt: skip
    net.connect("x", "unpool/reference")
    with pytest.raises(UnsupportedLayerError, match="'unpool' \\(MaxUnpooling2d\\)"):
        estimate_output_bounds(net, torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4))
