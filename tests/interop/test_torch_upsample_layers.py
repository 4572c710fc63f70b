"""from_torch maps nn.ConvTranspose2d/3d and nn.AdaptiveAvgPool2d/3d onto TransposedConv2d/3d
and AdaptiveAvgPool2d/3d (outputs checked against the original modules); options the layers
do not have stay torch modules."""

from __future__ import annotations

import torch
from torch import nn

from deeptoolbox.interop.torch._api import from_torch


def _types(net) -> list[str]:
    return [type(net.layer(name)).__name__ for name in net.layer_names]


def test_transposed_convs_and_adaptive_pools_become_toolbox_layers():
    torch.manual_seed(0)
    images = nn.Sequential(nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1), nn.ReLU(),
                           nn.AdaptiveAvgPool2d((3, 4)))  # fmt: skip
    volumes = nn.Sequential(nn.ConvTranspose3d(2, 3, (2, 3, 3), stride=(1, 2, 2)),
                            nn.AdaptiveAvgPool3d((2, None, 3)))  # fmt: skip
    for model, x, wanted in [
        (images, torch.randn(2, 3, 5, 6), ["TransposedConv2d", "ReLU", "AdaptiveAvgPool2d"]),
        (volumes, torch.randn(2, 2, 3, 4, 4), ["TransposedConv3d", "AdaptiveAvgPool3d"]),
    ]:
        net = from_torch(model.eval(), x)
        assert _types(net)[1:] == wanted
        with torch.no_grad():
            torch.testing.assert_close(net(x), model(x))


def test_options_the_layers_do_not_have_stay_torch_modules():
    model = nn.Sequential(nn.ConvTranspose2d(4, 4, 3, stride=2, groups=2, output_padding=1))
    net = from_torch(model.eval(), torch.randn(1, 4, 5, 5))
    assert _types(net)[1:] == ["TorchModule"]
