"""StochasticDepth, and EfficientNet / ConvNeXt imported layer by layer by from_torch."""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision
from torch import nn
from torchvision.ops import stochastic_depth

import deeptoolbox as dtb
from deeptoolbox.errors import OptionError
from deeptoolbox.interop import StochasticDepth
from deeptoolbox.interop.torch._api import from_torch

TOLERANCE = 1e-5


def _max_relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max()) / max(1.0, float(b.abs().max()))


@pytest.mark.parametrize("mode", ["row", "batch"])
@pytest.mark.parametrize("probability", [0.0, 0.3, 0.8, 1.0])
def test_draws_exactly_what_torchvision_draws(mode, probability):
    x = torch.randn(16, 3, 4, 4)
    layer = StochasticDepth(probability, mode).train()
    for seed in range(3):
        torch.manual_seed(seed)
        expected = stochastic_depth(x, probability, mode, training=True)
        torch.manual_seed(seed)
        assert torch.equal(layer(x), expected)
    assert torch.equal(layer.eval()(x), x)


def test_row_mode_drops_whole_observations_and_rescales_the_rest():
    torch.manual_seed(0)
    out = StochasticDepth(0.25, "row").train()(torch.ones(4000, 2, 3))
    per_row = out.flatten(1)
    assert torch.all(per_row == per_row[:, :1])  # one draw per observation
    assert set(per_row[:, 0].tolist()) == {0.0, torch.tensor(1 / 0.75).item()}
    assert abs(float((per_row[:, 0] == 0).float().mean()) - 0.25) < 0.03


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"probability": 1.5}, r"`probability` must be a number in \[0, 1\]\. Received: probability=1\.5"),
        ({"probability": "0.1"}, "Received: probability='0.1'"),
        ({"probability": True}, "Received: probability=True"),
        ({"mode": "column"}, "`mode` must be one of 'row', 'batch'. Received: mode='column'"),
    ],
)  # fmt: skip
def test_bad_options_name_the_option_and_the_value(options, message):
    with pytest.raises(OptionError, match=message):
        StochasticDepth(**options)


def test_configuration_round_trips():
    layer = StochasticDepth(0.2, "batch", name="sd")
    rebuilt = StochasticDepth.from_config(layer.get_config())
    assert (rebuilt.probability, rebuilt.mode) == (0.2, "batch")
    assert "probability=0.2" in repr(layer)


class FunctionalBlock(nn.Module):
    """Calls the function form, with ``self.training``, as timm-style blocks do."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + stochastic_depth(self.conv(x), 0.3, "row", self.training)


def test_the_function_form_becomes_a_layer_that_follows_the_training_mode():
    torch.manual_seed(0)
    model = FunctionalBlock().eval()
    net = from_torch(model, torch.randn(1, 4, 6, 6))
    depth = [n for n, m in net.layers.items() if isinstance(m, StochasticDepth)]
    assert len(depth) == 1 and net.layer(depth[0]).mode == "row"
    x = torch.randn(8, 4, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(net(x), model(x))
        torch.manual_seed(5)
        expected = model.train()(x)
        torch.manual_seed(5)
        torch.testing.assert_close(net.train()(x), expected)


def test_to_python_rebuilds_interop_layers():
    model = FunctionalBlock().eval()
    net = from_torch(nn.Sequential(model, nn.Flatten(), nn.ReLU6()), torch.randn(1, 4, 6, 6))
    namespace: dict = {}
    exec(dtb.to_python(net), namespace)  # noqa: S102 - code the toolbox just wrote
    rebuilt = namespace["build_network"]()
    assert [type(m).__name__ for m in rebuilt.layers.values()] == [
        type(m).__name__ for m in net.layers.values()
    ]
    assert {"StochasticDepth", "TorchModule"} <= {type(m).__name__ for m in net.layers.values()}
    rebuilt.load_state_dict(net.state_dict())
    x = torch.randn(3, 4, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), net.eval()(x))


def _model(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    with torch.no_grad():  # non-trivial normalization statistics and layer scales
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
            if hasattr(module, "layer_scale"):
                module.layer_scale.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize(
    ("name", "blocks"), [("efficientnet_b0", 9), ("convnext_tiny", 18)]
)  # fmt: skip
def test_efficientnet_and_convnext_import_layer_by_layer(name, blocks, tmp_path):
    model = _model(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback to one opaque layer
        net = from_torch(model, torch.randn(1, 3, 64, 64))
    kinds = [type(m).__name__ for m in net.layers.values()]
    assert len(kinds) > 50 and "OpaqueModule" not in kinds
    assert kinds.count("StochasticDepth") == blocks and kinds.count("Conv2d") > 20
    assert dtb.analyze(net).ok
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        assert _max_relative(net(x), expected) <= TOLERANCE
        dtb.save(net, tmp_path / "net.zip")
        loaded = dtb.load(tmp_path / "net.zip").eval()
        assert _max_relative(loaded(x), expected) <= TOLERANCE


def test_convnext_trains_like_the_torch_module_given_the_same_random_state():
    model = _model("convnext_tiny")
    for module in model.modules():
        if hasattr(module, "stochastic_depth"):
            module.stochastic_depth.p = 0.5  # drop often enough to tell outcomes apart
    net = from_torch(model, torch.randn(1, 3, 32, 32))
    x = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        torch.manual_seed(1)
        expected = model.train()(x)
        torch.manual_seed(1)
        found = net.train()(x)
        torch.manual_seed(2)
        other = net(x)
    assert _max_relative(found, expected) <= TOLERANCE
    assert _max_relative(other, expected) > 1e-3  # the draws do change the outputs
