"""pretrained(): a Network with the published architecture, weights, classes and preprocessing."""

import copy
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import models

import deeptoolbox as dtb
from deeptoolbox import hub
from deeptoolbox.hub import _weights
from deeptoolbox.training import TrainingOptions
from deeptoolbox.training._optim import make_optimizer

NAME = "resnet18"


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A resnet18 with random weights saved in the cache as torchvision publishes them."""
    torch.manual_seed(1)
    model = models.resnet18(weights=None).eval()
    for parameter in model.parameters():
        parameter.data.normal_(0, 0.05)
    cache = tmp_path_factory.mktemp("cache")
    torch.save(model.state_dict(), cache / hub.model_info(NAME).file_name)
    return model, cache


@pytest.fixture(scope="module")
def network(source):
    model, cache = source
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_weights, "_download", lambda *a: pytest.fail("tried to download"))
        patch.setenv("DEEPTOOLBOX_OFFLINE", "1")
        return hub.pretrained(NAME, cache_dir=cache)


def test_outputs_equal_the_torchvision_model(source, network):
    model, _ = source
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(dtb.predict(network, x), model(x), atol=1e-4, rtol=1e-4)
    assert isinstance(network, dtb.Network) and dtb.analyze(network).ok


def test_metadata_carries_classes_input_size_and_preprocessing(network):
    weights = models.ResNet18_Weights.DEFAULT
    assert network.classes == weights.meta["categories"]
    assert network.metadata["input_size"] == [3, 224, 224]
    spec = network.metadata["preprocessing"]
    assert (spec["resize_size"], spec["crop_size"]) == (256, 224)
    assert spec["mean"] == [0.485, 0.456, 0.406] and spec["std"] == [0.229, 0.224, 0.225]
    assert network.metadata["pretrained"]["weights"] == "IMAGENET1K_V1"
    assert network.metadata["pretrained"]["license"] == "BSD-3-Clause"


def test_classify_images_applies_the_weights_own_transforms(source, network, tmp_path):
    model, _ = source
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (300, 260, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "cat.png")
    image = Image.open(tmp_path / "cat.png").convert("RGB")
    with torch.no_grad():
        reference = model(models.ResNet18_Weights.DEFAULT.transforms()(image).unsqueeze(0))
    expected = torch.softmax(reference, dim=1)
    labels, scores = dtb.classify(network, [str(tmp_path / "cat.png"), image])
    torch.testing.assert_close(scores, expected.expand(2, -1), atol=1e-5, rtol=1e-4)
    assert list(labels) == [network.classes[int(expected.argmax())]] * 2
    torch.testing.assert_close(dtb.classify(network, tmp_path / "cat.png")[1], expected)
    _, from_array = dtb.classify(network, pixels)  # uint8 (H, W, C): tensor resize path
    assert from_array.shape == (1, 1000) and int(from_array.argmax()) == int(expected.argmax())


def test_saved_network_keeps_its_preprocessing(network, tmp_path):
    dtb.save(network, tmp_path / "resnet")
    loaded = dtb.load(tmp_path / "resnet")
    assert loaded.metadata["preprocessing"] == network.metadata["preprocessing"]
    image = np.full((230, 230, 3), 128, dtype=np.uint8)
    torch.testing.assert_close(dtb.classify(loaded, image)[1], dtb.classify(network, image)[1])


def test_adapt_freeze_and_learn_rate_factors_on_the_network(network):
    net = copy.deepcopy(network)
    assert hub.find_head(net) == "fc"
    hub.adapt(net, ["a", "b", "c", "d", "e"], learn_rate_factor=10)
    hub.freeze(net)
    assert dtb.predict(net, torch.randn(2, 3, 224, 224)).shape == (2, 5)
    assert net.classes == ["a", "b", "c", "d", "e"]
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == {"layers.fc.weight", "layers.fc.bias"}
    hub.freeze(net.unfreeze(), up_to="layer3_1_relu_1")
    optimizer = make_optimizer(net, TrainingOptions(solver="sgdm", initial_learn_rate=0.01))
    rates = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert rates[id(net.layer("fc").weight)] == pytest.approx(0.1)
    assert rates[id(net.layer("layer4_0_conv1").weight)] == pytest.approx(0.01)
    assert id(net.layer("layer3_0_conv1").weight) not in rates  # frozen: not optimized


def test_activations_of_the_pooled_features(source, network):
    model, _ = source
    captured = {}
    handle = model.avgpool.register_forward_hook(lambda m, i, o: captured.update(out=o))
    x = torch.randn(3, 3, 224, 224)
    with torch.no_grad():
        model(x)
    handle.remove()
    features = hub.activations(network, x, "layer4_1_relu_1", batch_size=2)
    torch.testing.assert_close(features, captured["out"].flatten(1), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    ["squeezenet1_1", "googlenet", "resnet50", "mobilenet_v2", "mobilenet_v3_small",
     "mobilenet_v3_large", "efficientnet_b0", "vit_b_16", "convnext_tiny"],
)  # fmt: skip
def test_every_required_model_becomes_an_adaptable_network(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = hub.pretrained(name, weights=None)
    info = hub.model_info(name)
    assert net.metadata["input_size"] == list(info.input_size) and len(net.classes) == 1000
    hub.adapt(net, 3)
    hub.freeze(net)
    x = torch.randn(1, *info.input_size)
    assert dtb.predict(net, x).shape == (1, 3)
    assert any(p.requires_grad for p in net.parameters())


def test_input_size_gives_the_same_weights_for_smaller_images(source):
    model, cache = source
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_weights, "_download", lambda *a: pytest.fail("tried to download"))
        patch.setenv("DEEPTOOLBOX_OFFLINE", "1")
        small = hub.pretrained(NAME, cache_dir=cache, input_size=(3, 64, 64))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(dtb.predict(small, x), model(x), atol=1e-4, rtol=1e-4)
    assert small.metadata["input_size"] == [3, 64, 64]
    spec = small.metadata["preprocessing"]
    assert (spec["crop_size"], spec["resize_size"]) == (64, 73)  # 256 / 224 * 64
    with pytest.raises(dtb.errors.OptionError, match="input_size"):
        hub.pretrained(NAME, weights=None, input_size=(1, 64, 64))


def test_replacing_the_input_layer_keeps_the_pretrained_weights(source, network):
    model, _ = source
    net = copy.deepcopy(network)
    (image,) = net.input_names
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no layer is re-initialized, so no warning
        net.replace_layer(image, dtb.layers.ImageInput((3, 64, 64)))
    after = net.state_dict()
    convolutions = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convolutions) == 20
    assert all(torch.equal(before[k], after[k]) for k in before)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(dtb.predict(net, x), model(x), atol=1e-4, rtol=1e-4)
