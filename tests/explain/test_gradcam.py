"""Grad-CAM: equal to a direct hooked computation, to Captum, right defaults, clear errors."""

import numpy as np
import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam
from explain_nets import RegionNet, SpanNet, dilate, direct_gradcam, mass_inside, region_mask

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import InputSizeError, LayerNotFoundError
from deeptoolbox.explain import LayerChoiceError, TargetError, gradcam


def digits_like(softmax: bool = True) -> Network:
    torch.manual_seed(0)
    layers = [
        L.ImageInput((1, 8, 8), name="digits"),
        L.Conv2d(6, 3, padding="same", name="conv1"),
        L.BatchNorm(name="bn1"),
        L.ReLU(name="relu1"),
        L.Conv2d(8, 3, padding="same", name="conv2"),
        L.ReLU(name="relu2"),
        L.MaxPool2d(2, name="pool"),
        L.Flatten(name="flatten"),
        L.Dense(5, name="fc"),
    ]
    if softmax:
        layers.append(L.Softmax(name="prob"))
    return Network(layers, classes=list("abcde"), name="digits-like")


def one_hot(index, count=5):
    return torch.nn.functional.one_hot(torch.as_tensor(index), count).float()


def test_default_layer_is_the_last_spatial_one_before_pooling():
    net = digits_like()
    x = torch.randn(4, 1, 8, 8)
    expected = gradcam(net, x, layer="relu2")
    torch.testing.assert_close(gradcam(net, x), expected)
    assert not torch.allclose(gradcam(net, x, layer="pool"), expected)


def test_equals_direct_hooked_computation_on_logits():
    net = digits_like().eval()
    x = torch.randn(6, 1, 8, 8)
    target = [0, 1, 2, 3, 4, 0]
    # the network ends in Softmax: Grad-CAM explains the score before it, i.e. 'fc'
    logits = digits_like(softmax=False).eval()
    logits.load_state_dict(net.state_dict(), strict=False)
    expected = direct_gradcam(logits, logits.layer("relu2"), x, one_hot(target))
    torch.testing.assert_close(gradcam(net, x, target), expected, rtol=1e-5, atol=1e-6)
    after_softmax = gradcam(net, x, target, use_logits=False)
    assert not torch.allclose(after_softmax, expected)
    probabilities = direct_gradcam(net, net.layer("relu2"), x, one_hot(target))
    torch.testing.assert_close(after_softmax, probabilities, rtol=1e-5, atol=1e-6)


def test_agrees_with_captum_layer_gradcam():
    net = digits_like(softmax=False).eval()
    x = torch.randn(5, 1, 8, 8)
    target = torch.tensor([1, 3, 0, 2, 4])
    captum = LayerGradCam(net, net.layer("relu1")).attribute(
        x, target=target, relu_attributions=True
    )
    captum = LayerAttribution.interpolate(captum, (8, 8), interpolate_mode="bilinear")[:, 0]
    torch.testing.assert_close(gradcam(net, x, target, layer="relu1"), captum)
    raw = LayerGradCam(net, net.layer("pool")).attribute(x, target=target)[:, 0]
    torch.testing.assert_close(
        gradcam(net, x, target, layer="pool", relu=False, upsample_to_input=False), raw
    )


def test_targets_by_name_index_and_default_prediction():
    net = digits_like()
    x = torch.randn(3, 1, 8, 8)
    by_name = gradcam(net, x, target="c")
    torch.testing.assert_close(by_name, gradcam(net, x, target=2))
    torch.testing.assert_close(by_name, gradcam(net, x, target=np.array([2, 2, 2])))
    predicted = net.eval()(x).argmax(1)
    torch.testing.assert_close(gradcam(net, x), gradcam(net, x, target=predicted))


def test_batching_and_single_observation():
    net = digits_like()
    x = torch.randn(7, 1, 8, 8)
    target = [0, 1, 2, 3, 4, 0, 1]
    full = gradcam(net, x, target)
    torch.testing.assert_close(gradcam(net, x, target, batch_size=3), full)
    single = gradcam(net, x[2], target=2)
    assert single.shape == (8, 8)
    torch.testing.assert_close(single, full[2])


def test_mode_is_restored_and_network_left_unhooked():
    net = digits_like().train()
    gradcam(net, torch.randn(2, 1, 8, 8))
    assert net.training
    assert all(not m._forward_hooks for m in net.modules())


def test_sequences_channels_last_network():
    torch.manual_seed(0)
    net = Network([
        L.SequenceInput(3, name="signal"), L.Conv1d(8, 5, padding="same", name="conv"), L.ReLU(name="relu"),
        L.MaxPool1d(2, name="pool"), L.Conv1d(8, 3, padding="same", name="conv2"), L.ReLU(name="relu2"),
        L.GlobalAvgPool(name="gap"), L.Dense(2, name="fc"),
    ])  # fmt: skip
    x = torch.randn(4, 40, 3)
    maps = gradcam(net, x, target=1)
    assert maps.shape == (4, 40)
    expected = direct_gradcam(net.eval(), net.layer("relu2"), x, one_hot(1, 2), channels_last=True)
    torch.testing.assert_close(maps, expected, rtol=1e-5, atol=1e-6)


def test_known_region_image_and_time_span():
    region = region_mask()
    net = RegionNet(region)
    x = torch.randn(8, 1, 16, 16)
    maps = gradcam(net, x, layer=net.conv)
    assert (mass_inside(maps, dilate(region, 1)) > 0.999).all()  # 3x3 conv: 1 pixel of spread
    span = torch.zeros(30, dtype=torch.bool)
    span[10:18] = True
    seq = SpanNet(span)
    maps = gradcam(seq, torch.randn(5, 30, 2), layer=seq.conv, relu=False)  # (N, C, T) layer
    assert maps.shape == (5, 30)
    assert (mass_inside(maps, dilate(span, 1)) > 0.999).all()


def test_segmentation_pixel_mask_target():
    torch.manual_seed(0)
    net = Network([
        L.ImageInput((1, 12, 12), name="image"), L.Conv2d(4, 3, padding="same", name="enc"),
        L.ReLU(name="enc_relu"), L.Conv2d(2, 1, name="head"), L.Softmax(name="prob"),
    ], classes=["background", "object"])  # fmt: skip
    x = torch.randn(2, 1, 12, 12)
    pixels = torch.zeros(12, 12, dtype=torch.bool)
    pixels[3:6, 4:9] = True
    weights = torch.zeros(2, 2, 12, 12)
    weights[:, 1] = pixels.float()
    logits = Network([
        L.ImageInput((1, 12, 12)), L.Conv2d(4, 3, padding="same", name="enc"), L.ReLU(name="enc_relu"),
        L.Conv2d(2, 1, name="head"),
    ])  # fmt: skip
    logits.load_state_dict(net.state_dict(), strict=False)
    expected = direct_gradcam(logits.eval(), logits.layer("enc_relu"), x, weights)
    result = gradcam(net, x, ("object", pixels), layer="enc_relu")
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-6)
    assert gradcam(net, x, pixels).shape == (2, 12, 12)  # predicted class at each pixel


def test_plain_module_needs_a_layer():
    net = RegionNet(region_mask())
    with pytest.raises(LayerChoiceError, match="layer="):
        gradcam(net, torch.randn(1, 1, 16, 16))
    assert gradcam(net, torch.randn(1, 1, 16, 16), layer="conv").shape == (1, 16, 16)
    with pytest.raises(LayerNotFoundError, match="convv"):
        gradcam(net, torch.randn(1, 1, 16, 16), layer="convv")
    with pytest.raises(LayerChoiceError, match="not a module of the network"):
        gradcam(net, torch.randn(1, 1, 16, 16), layer=torch.nn.Conv2d(1, 1, 3))
    with pytest.raises(LayerChoiceError, match="without spatial or time extent"):
        gradcam(net, torch.randn(1, 1, 16, 16), layer=net.head)


def test_errors_name_what_is_wrong():
    net = digits_like()
    x = torch.randn(2, 1, 8, 8)
    with pytest.raises(TargetError, match=r"index 7 is out of range.*0 to 4"):
        gradcam(net, x, target=7)
    with pytest.raises(TargetError, match=r"'zebra' is not a class.*'a', 'b'"):
        gradcam(net, x, target="zebra")
    with pytest.raises(TargetError, match="lists 3 classes for 2 observations"):
        gradcam(net, x, target=[0, 1, 2])
    with pytest.raises(TargetError, match="pixel mask"):
        gradcam(net, x, target=torch.ones(8, 8, dtype=torch.bool))
    with pytest.raises(LayerChoiceError, match=r"layer 'fc' has output size \(5\)"):
        gradcam(net, x, layer="fc")
    with pytest.raises(LayerNotFoundError, match="relu9"):
        gradcam(net, x, layer="relu9")
    with pytest.raises(InputSizeError, match="digits"):
        gradcam(net, torch.randn(2, 1, 9, 9))
    mlp = Network([L.FeatureInput(4), L.Dense(3)], classes=None)
    with pytest.raises(LayerChoiceError, match="no layer with spatial or time extent"):
        gradcam(mlp, torch.randn(2, 4))
    with pytest.raises(TargetError, match="no class names"):
        gradcam(digits_like_without_classes(), x, target="a")


def digits_like_without_classes() -> Network:
    net = digits_like()
    net.classes = None
    return net
