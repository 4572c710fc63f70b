"""adapt(), find_head(), freeze() and set_learn_rate_factor() on Networks and plain modules."""

import pytest
import torch
from torch import nn

from deeptoolbox import Network, classify
from deeptoolbox import layers as L
from deeptoolbox.errors import LayerNotFoundError, OptionError
from deeptoolbox.hub import (
    adapt,
    find_head,
    freeze,
    model_info,
    pretrained_module,
    set_learn_rate_factor,
)
from deeptoolbox.hub._registry import FAMILY_HEADS
from deeptoolbox.interop import OpaqueModule
from deeptoolbox.training import TrainingOptions
from deeptoolbox.training._optim import make_optimizer

FAMILIES = ["squeezenet1_1", "googlenet", "resnet18", "mobilenet_v2", "mobilenet_v3_small",
            "efficientnet_b0"]  # fmt: skip
HEAVY = ["mobilenet_v3_large", "resnet50", "vit_b_16", "convnext_tiny"]


def small_cnn(head="dense"):
    torch.manual_seed(0)
    chain = [L.ImageInput((3, 16, 16), name="in"), L.Conv2d(8, 3, padding="same", name="conv1"), L.ReLU(),
             L.Conv2d(8, 3, padding="same", name="conv2"), L.ReLU(name="relu2")]  # fmt: skip
    if head == "dense":
        chain += [L.GlobalAvgPool(name="pool"), L.Dense(10, name="fc"), L.Softmax(name="prob")]
    else:  # squeezenet-style: a 1x1 convolution head, then pooling
        chain += [L.Conv2d(10, 1, name="head"), L.GlobalAvgPool(name="pool"), L.Flatten()]
    return Network(chain)


@pytest.mark.parametrize("head, name", [("dense", "fc"), ("conv", "head")])
def test_adapt_replaces_the_head_and_keeps_the_softmax(head, name):
    net = small_cnn(head)
    assert find_head(net) == name
    conv1 = net.layer("conv1").weight.detach().clone()
    adapt(net, ["x", "y", "z"])
    scores = classify(net, torch.randn(4, 3, 16, 16))[1]
    assert scores.shape == (4, 3) and net.classes == ["x", "y", "z"]
    torch.testing.assert_close(net.layer("conv1").weight, conv1)  # the rest is kept
    assert net.layer_names[-1] == ("prob" if head == "dense" else "flatten_1")
    assert net.sources(name) == {"in": "pool" if head == "dense" else "relu2"}


def test_adapt_with_a_class_count_and_an_explicit_layer():
    net = small_cnn()
    adapt(net, 4, layer="fc")
    assert net(torch.randn(1, 3, 16, 16)).shape == (1, 4) and net.classes is None
    with pytest.raises(OptionError, match="cannot resize layer 'relu2'"):
        adapt(net, 4, layer="relu2")
    with pytest.raises(OptionError, match="classes"):
        adapt(net, "abc")
    with pytest.raises(OptionError, match=">= 1"):
        adapt(net, 0)


def test_find_head_needs_one_output():
    net = Network([L.FeatureInput(3, name="x"), L.Dense(2, name="a")])
    net.add_layers(L.Dense(2, name="b")).connect("x", "b")
    with pytest.raises(OptionError, match="2 outputs"):
        find_head(net)


def test_adapt_a_whole_model_wrapped_as_one_layer():
    torch.manual_seed(0)
    inner = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10)
    )
    net = Network([L.ImageInput((3, 8, 8)), OpaqueModule(inner, name="model")])
    adapt(net, ["a", "b"])
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 2) and net.output_shape() == (2,)


@pytest.mark.parametrize(
    "name", FAMILIES + [pytest.param(n, marks=pytest.mark.slow) for n in HEAVY]
)
def test_adapt_and_freeze_each_family_head_on_the_torch_module(name):
    model = pretrained_module(name, weights=None)
    head = find_head(model)
    assert head == FAMILY_HEADS[model_info(name).family]
    adapt(model, ["a", "b", "c"])
    freeze(model)
    size = 224 if name.startswith("vit") else 64
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, size, size)).shape == (1, 3)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"{head}.weight", f"{head}.bias"}


def test_freeze_up_to_and_by_name():
    net = small_cnn()
    freeze(net, up_to="conv2")
    assert net.frozen_layers == ["in", "conv1", "relu_1", "conv2"]
    assert net.layer("fc").weight.requires_grad and not net.layer("conv2").weight.requires_grad
    freeze(net.unfreeze(), layers="conv1")
    assert net.frozen_layers == ["conv1"]
    with pytest.raises(LayerNotFoundError, match="conv3"):
        freeze(net, up_to="conv3")
    with pytest.raises(OptionError, match="not both"):
        freeze(net, up_to="conv1", layers=["conv2"])
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    freeze(model, up_to="1")
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True]
    with pytest.raises(LayerNotFoundError, match="'5'"):
        freeze(model, layers=["5"])


def test_learn_rate_factors_reach_the_optimizer():
    net = small_cnn()
    set_learn_rate_factor(net, "fc", 10)
    set_learn_rate_factor(net, ["conv1"], 0)
    optimizer = make_optimizer(net, TrainingOptions(solver="adam", initial_learn_rate=0.001))
    rates = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert rates[id(net.layer("fc").weight)] == pytest.approx(0.01)
    assert rates[id(net.layer("conv2").weight)] == pytest.approx(0.001)
    assert id(net.layer("conv1").weight) not in rates
    with pytest.raises(OptionError, match="Network"):
        set_learn_rate_factor(nn.Linear(2, 2), "weight", 2)
    with pytest.raises(OptionError, match="factor"):
        set_learn_rate_factor(net, "fc", -1)


def _bn_classifier():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(4, 3),
    )  # fmt: skip


def _one_epoch(model):
    from deeptoolbox.training import train

    generator = torch.Generator().manual_seed(1)
    x = torch.randn(32, 3, 8, 8, generator=generator) * 3 + 1  # statistics far from 0 and 1
    y = torch.randint(0, 3, (32,), generator=generator)
    options = TrainingOptions(max_epochs=1, mini_batch_size=8, verbose=False, seed=0)
    train(model, (x, y), "crossentropy", options)


def test_freeze_keeps_batchnorm_statistics_fixed_on_plain_modules_as_on_networks():
    from deeptoolbox.interop import from_torch

    model = _bn_classifier()
    net = from_torch(model, torch.randn(2, 3, 8, 8))
    cases = [(model, model[1], model[5]), (net, net.layer("layer_1"), net.layer("layer_5"))]
    for trained, norm, head in cases:
        freeze(trained)  # all but the head
        statistics = norm.running_mean.clone(), norm.running_var.clone()
        start = head.weight.detach().clone()
        _one_epoch(trained)
        assert torch.equal(norm.running_mean, statistics[0]), type(trained).__name__
        assert torch.equal(norm.running_var, statistics[1])
        assert not torch.equal(head.weight.detach(), start)  # the head did train


class _TimmLike(nn.Module):
    """timm's interface: get_classifier() names the head, reset_classifier() rebuilds it."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(4, 6), nn.ReLU())
        self.head = nn.Linear(6, 10)
        self.resets = []

    def get_classifier(self):
        return self.head

    def reset_classifier(self, num_classes):
        self.resets.append(num_classes)
        self.head = nn.Linear(6, num_classes) if num_classes else nn.Identity()

    def forward(self, x):
        return self.head(self.features(x))


def test_adapt_calls_reset_classifier_and_keeps_the_learn_rate_factor_on_plain_modules():
    model = _TimmLike()
    assert find_head(model) == "head"
    adapt(model, ["a", "b"], learn_rate_factor=10)
    assert model.resets == [2] and model(torch.randn(3, 4)).shape == (3, 2)
    assert model.classes == ["a", "b"]
    optimizer = make_optimizer(model, TrainingOptions(solver="sgdm", initial_learn_rate=0.01))
    rates = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert rates[id(model.head.weight)] == pytest.approx(0.1)
    assert rates[id(model.features[0].weight)] == pytest.approx(0.01)
    assert len(rates) == len(list(model.parameters()))  # every parameter once
    with pytest.raises(OptionError, match="learn_rate_factor"):
        adapt(_TimmLike(), 3, learn_rate_factor=-1)


def test_adapt_a_timm_model_through_its_reset_classifier():
    timm = pytest.importorskip("timm")
    model = timm.create_model("test_resnet", pretrained=False, num_classes=7)
    adapt(model, 4, learn_rate_factor=5)
    assert model.num_classes == 4
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 4)
    optimizer = make_optimizer(model, TrainingOptions(solver="adam", initial_learn_rate=0.001))
    rates = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert rates[id(model.get_classifier().weight)] == pytest.approx(0.005)
