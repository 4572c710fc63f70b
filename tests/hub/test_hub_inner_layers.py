"""EfficientNet and ConvNeXt from the hub are layer-by-layer Networks: freeze reaches inside."""

from __future__ import annotations

import warnings

import pytest
import torch

from deeptoolbox import hub
from deeptoolbox.interop import StochasticDepth


@pytest.mark.parametrize(
    ("name", "inner", "later", "head"),
    [
        ("efficientnet_b0", "features_3_0_block_0_0", "features_4_0_block_0_0", "classifier_1"),
        ("convnext_tiny", "features_3_1_block_3", "features_5_0_block_0", "classifier_2"),
    ],
)
def test_freeze_up_to_an_inner_layer(name, inner, later, head):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback to one opaque layer
        net = hub.pretrained(name, weights=None)
    assert len(net.layers) > 50 and hub.find_head(net) == head
    assert sum(isinstance(m, StochasticDepth) for m in net.layers.values()) > 5
    hub.freeze(net, up_to=inner)
    order = net.layer_names
    assert net.frozen_layers == order[: order.index(inner) + 1]
    assert not any(p.requires_grad for p in net.layer(inner).parameters())
    assert all(p.requires_grad for p in net.layer(later).parameters())
    assert all(p.requires_grad for p in net.layer(head).parameters())
    hub.adapt(net, ["a", "b"])  # a new head for two classes, the frozen part kept
    with torch.no_grad():
        assert net.eval()(torch.randn(1, 3, 224, 224)).shape == (1, 2)
    assert net.frozen_layers == order[: order.index(inner) + 1]
