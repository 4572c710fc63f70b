"""unet builds an editable, saveable Network; deeplabv3 wraps torchvision's, with backbone
weights from a file."""

import pytest
import torch
from torchvision.models import mobilenet_v3_large

from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError
from deeptoolbox.network import analyze, load, save
from deeptoolbox.training import TrainingOptions, train
from deeptoolbox.vision import deeplabv3, segmentation_loss, unet


def test_unet_has_matlabs_structure_and_sizes():
    net = unet((3, 32, 32), 5, depth=3, filters=8, classes=list("abcde"))
    assert analyze(net).ok and net.classes == list("abcde")
    assert net.output_shape() == (5, 32, 32)
    assert net.output_sizes("bridge_relu2")["out"] == (64, 4, 4)  # 8 * 2**3 filters at 32 / 8
    assert net.sources("decoder1_concat")["in2"] == "encoder1_relu2"  # the skip connection
    probabilities = net(torch.rand(2, 3, 32, 32))
    assert torch.allclose(probabilities.sum(1), torch.ones(2, 32, 32), atol=1e-5)


def test_unet_saves_loads_and_edits_as_any_network(tmp_path):
    net = unet((1, 16, 16), 3, depth=2, filters=4, batch_norm=False).eval()
    x = torch.rand(2, 1, 16, 16)
    save(net, tmp_path / "unet")
    again = load(tmp_path / "unet").eval()
    assert torch.allclose(again(x), net(x), atol=1e-6)
    net.replace_layer("final_conv", L.Conv2d(4, 1, name="final_conv"))
    assert net(x).shape == (2, 4, 16, 16)


def test_unet_options_are_checked():
    with pytest.raises(OptionError, match="multiples of 2\\*\\*depth = 16"):
        unet((3, 40, 40), 2, depth=4)
    with pytest.raises(OptionError, match="num_classes"):
        unet((3, 32, 32), 0)
    with pytest.raises(OptionError, match="name 2 classes"):
        unet((3, 32, 32), 2, classes=["a"])


def test_deeplabv3_trains_with_the_segmentation_losses():
    torch.manual_seed(0)
    net = deeplabv3(2, backbone="mobilenet_v3_large", classes=["bg", "fg"])
    x = torch.rand(4, 3, 32, 32)
    y = (x[:, 0] > 0.5).long()
    options = TrainingOptions(solver="adam", initial_learn_rate=1e-3, max_epochs=2,
                              mini_batch_size=4, verbose=False, seed=0)  # fmt: skip
    result = train(net, (x, y), segmentation_loss("crossentropy+dice"), options)
    assert net(x).shape == (4, 2, 32, 32)
    assert result.history.epochs[-1]["loss"] < result.history.epochs[0]["loss"]


def test_deeplabv3_loads_backbone_weights_from_a_file(tmp_path):
    source = mobilenet_v3_large(weights=None)
    with torch.no_grad():
        source.features[0][0].weight.fill_(0.25)
    path = tmp_path / "mobilenet.pth"
    torch.save(source.state_dict(), path)
    net = deeplabv3(3, backbone="mobilenet_v3_large", backbone_weights=path)
    assert torch.equal(net.model.backbone["0"][0].weight, source.features[0][0].weight)
    assert net.provenance["backbone"] == "mobilenet_v3_large"
    with pytest.raises(OptionError, match="backbone"):
        deeplabv3(3, backbone="vgg16")
