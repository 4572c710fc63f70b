"""resnet_network: MATLAB's resnetNetwork / resnetLayers, checked against torchvision and by hand."""

import pytest
import torch
import torch.nn.functional as F
from torchvision import models

from deeptoolbox import Network, resnet_network
from deeptoolbox.errors import OptionError
from deeptoolbox.layers import Conv2d


def _learnables_without_conv_biases(net: Network) -> int:
    total = sum(p.numel() for p in net.parameters())
    return total - sum(m.bias.numel() for m in net.modules() if isinstance(m, Conv2d))


def test_default_is_matlabs_resnet50():
    net = resnet_network((3, 224, 224), 10)
    # MATLAB's resnetNetwork([224 224 3], 10): 176 layers, 191 connections, 214 learnables
    assert len(net.layers) == 176 and len(net.connections) == 191
    assert len(list(net.parameters())) == 214
    # the same architecture as torchvision's ResNet-50, whose convolutions have no bias
    reference = sum(p.numel() for p in models.resnet50(num_classes=10).parameters())
    assert _learnables_without_conv_biases(net) == reference
    sizes = [
        net.output_shape(f"stack{s}_block{b}_relu") for s, b in [(1, 3), (2, 4), (3, 6), (4, 3)]
    ]
    assert sizes == [(256, 56, 56), (512, 28, 28), (1024, 14, 14), (2048, 7, 7)]
    assert net.output_names == ["softmax"] and net.output_shape() == (10,)


def test_basic_blocks_give_resnet18_and_the_network_trains():
    net = resnet_network((3, 64, 64), 5, stack_depth=[2, 2, 2, 2], bottleneck_type="none",
                         classes=list("abcde"))  # fmt: skip
    reference = sum(p.numel() for p in models.resnet18(num_classes=5).parameters())
    assert _learnables_without_conv_biases(net) == reference
    assert net.classes == list("abcde")
    scores = net(torch.randn(2, 3, 64, 64))
    assert scores.shape == (2, 5) and torch.allclose(scores.sum(1), torch.ones(2))
    scores.log().mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_one_basic_block_equals_a_direct_computation():
    torch.manual_seed(0)
    net = resnet_network((3, 8, 8), 3, stack_depth=[1], num_filters=[4], bottleneck_type="none",
                         initial_num_filters=4).eval()  # fmt: skip
    layer = net.layer

    def conv_bn(x, prefix, stride=1):
        conv, bn = layer(f"{prefix}_conv"), layer(f"{prefix}_bn")
        k = conv.kernel_size[0]
        total = max((-(-x.shape[-1] // stride) - 1) * stride + k - x.shape[-1], 0)
        x = F.pad(x, (total // 2, total - total // 2) * 2)  # MATLAB's / TensorFlow's "same"
        x = F.conv2d(x, conv.weight, conv.bias, stride)
        return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False)

    x = torch.randn(2, 3, 8, 8)
    stem = F.relu(conv_bn(x, "stem", stride=2))  # 7x7, stride 2
    pooled = F.max_pool2d(F.pad(stem, (0, 1, 0, 1), value=float("-inf")), 3, 2)  # 3x3 / 2 same
    main = conv_bn(F.relu(conv_bn(pooled, "stack1_block1_1")), "stack1_block1_2")
    block = F.relu(main + pooled)  # identity shortcut: same size and channels
    fc = layer("fc")
    expected = F.linear(block.mean((2, 3)), fc.weight, fc.bias).softmax(1)
    with torch.no_grad():
        torch.testing.assert_close(net(x), expected)


def test_options_change_the_blocks_as_matlab_documents():
    after = resnet_network((3, 32, 32), 2, stack_depth=[1, 1], num_filters=[4, 8],
                           residual_block_type="batchnorm-after-add",
                           initial_pooling_layer="average")  # fmt: skip
    assert after.sources("stack1_block1_add_bn") == {"in": "stack1_block1_add"}
    assert after.sources("stack1_block1_add") == {
        "in1": "stack1_block1_3_conv", "in2": "stack1_block1_shortcut_bn"
    }  # fmt: skip
    assert type(after.layer("stem_pool")).__name__ == "AvgPool2d"
    plain = resnet_network((3, 32, 32), 2, stack_depth=[1], num_filters=[4],
                           initial_pooling_layer="none", initial_stride=1)  # fmt: skip
    assert "stem_pool" not in plain.layer_names
    assert plain.output_shape("stack1_block1_relu") == (16, 32, 32)  # 4 x 4 filters: bottleneck


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"stack_depth": [2, 2], "num_filters": [8]}, "one entry per stack"),
        ({"stack_depth": [0]}, "stack_depth"),
        ({"bottleneck_type": "basic"}, "bottleneck_type"),
        ({"initial_pooling_layer": "min"}, "initial_pooling_layer"),
        ({"classes": ["a"]}, None),
    ],
)
def test_bad_options_are_refused_clearly(options, message):
    if message is None:  # one class name for two outputs: an analysis warning, not an error
        net = resnet_network((3, 16, 16), 2, stack_depth=[1], num_filters=[2], **options)
        assert any("one channel per class" in str(i) for i in net.issues)
        return
    with pytest.raises(OptionError, match=message):
        resnet_network((3, 16, 16), 2, **options)
