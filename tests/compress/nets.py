"""Small networks shared by the compression tests."""

from __future__ import annotations

import torch

import deeptoolbox as dtb
from deeptoolbox import layers as L


def randomize_batchnorm(net: dtb.Network, seed: int = 0) -> dtb.Network:
    """Give every BatchNorm non-trivial statistics and affine parameters (eval mode matters)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, L.BatchNorm):
                n = module.weight.numel()
                module.running_mean.copy_(torch.rand(n, generator=generator) * 2 - 1)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(n, generator=generator) - 0.5)
    return net.eval()


def residual_concat_net(seed: int = 0) -> dtb.Network:
    """conv-bn-relu, a residual Addition, a Concatenation of two branches, a depthwise and a
    grouped convolution, then Flatten and a Dense output."""
    torch.manual_seed(seed)
    net = dtb.Network([
        L.ImageInput((3, 8, 8), name="in"),
        L.Conv2d(8, 3, padding=1, name="c1"), L.BatchNorm(name="bn1"), L.ReLU(name="r1"),
        L.Conv2d(8, 3, padding=1, name="c2"), L.BatchNorm(name="bn2"),
        L.Addition(name="add"), L.ReLU(name="r2"),
        L.Conv2d(6, 1, padding=0, name="c3"),
        L.Concatenation(name="cat"),
        L.Conv2d(11, 3, padding=1, groups=11, name="dw"),
        L.Conv2d(4, 3, padding=1, name="c4"),
        L.Conv2d(4, 1, padding=0, groups=2, name="grouped"),
        L.Flatten(name="flat"), L.Dense(5, name="fc"),
    ], name="residual-concat")  # fmt: skip
    net.connect("r1", "add/in2")
    net.add_layers(L.Conv2d(5, 1, padding=0, name="c5"))
    net.connect("r2", "c5").connect("c5", "cat/in2")
    return randomize_batchnorm(net, seed)


def sequence_net(seed: int = 0) -> dtb.Network:
    torch.manual_seed(seed)
    return dtb.Network([
        L.SequenceInput(4, name="in"),
        L.LSTM(8, name="lstm"),
        L.SelfAttention(4, name="attention"),
        L.ReLU(name="relu"),
        L.GRU(6, bidirectional=True, name="gru"),
        L.GlobalAvgPool(name="pool"),
        L.Dense(3, name="fc"),
    ], name="sequences").eval()  # fmt: skip


def small_cnn(seed: int = 0, classes: int = 10) -> dtb.Network:
    torch.manual_seed(seed)
    return dtb.Network([
        L.ImageInput((1, 8, 8), name="image"),
        L.Conv2d(16, 3, padding=1, name="conv1"), L.BatchNorm(name="bn1"), L.ReLU(name="relu1"),
        L.Conv2d(32, 3, padding=1, name="conv2"), L.BatchNorm(name="bn2"), L.ReLU(name="relu2"),
        L.MaxPool2d(2, name="pool"),
        L.Flatten(name="flat"), L.Dense(64, name="fc1"), L.ReLU(name="relu3"),
        L.Dense(classes, name="fc2"), L.Softmax(name="softmax"),
    ], classes=[str(i) for i in range(classes)], name="digits-cnn")  # fmt: skip
