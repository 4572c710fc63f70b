"""Common architectures built from deeptoolbox layers, checked end to end.

Each builder makes one network (LeNet, ResNet block, U-Net, LSTM, 1-D CNN + GRU, transformer,
DCGAN generator and discriminator) and says, independently of the toolbox, what it should
compute: the same network written with plain ``torch.nn`` modules into which the toolbox's
weights are copied. One contract then runs over every builder: resolved sizes, numerical
agreement with plain PyTorch, save/load (folder and zip), JSON and to_python round trips, and
gradients reaching every parameter.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import deeptoolbox as dtb
from deeptoolbox import Network, analyze
from deeptoolbox import layers as L

BATCH = 4
Inputs = tuple[torch.Tensor, ...]


@dataclass
class Case:
    """A built network plus what it must compute."""

    net: Network
    make_inputs: Callable[[int], Inputs]  # seed -> a batch for every network input
    reference: Callable[[Network, Inputs], torch.Tensor]  # plain-torch computation
    sizes: dict[str, tuple]  # layer name -> expected resolved output size (no batch)
    output: tuple  # expected size of net(*make_inputs(0))


# -- helpers ---------------------------------------------------------------------------------


def copied(module: nn.Module, layer: nn.Module, prefix: str = "") -> nn.Module:
    """Load a toolbox layer's weights into a plain torch module (strict: names must match)."""
    state = {k.removeprefix(prefix): v for k, v in layer.state_dict().items()}
    module.load_state_dict(state)
    return module.eval()


def linear_from(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    module = nn.Linear(weight.shape[1], weight.shape[0])
    module.load_state_dict({"weight": weight, "bias": bias})
    return module


def last_step(output: torch.Tensor, hidden: int, bidirectional: bool) -> torch.Tensor:
    """Final state of a batch-first RNN output: forward's last step (+ backward's first step)."""
    if not bidirectional:
        return output[:, -1]
    return torch.cat((output[:, -1, :hidden], output[:, 0, hidden:]), dim=-1)


def transposed_same(module: nn.ConvTranspose2d, x: torch.Tensor, kernel: int, stride: int):
    """Full transposed convolution cropped to input * stride, as Keras / ONNX SAME_UPPER:
    equal crops where possible, the odd extra row (column) taken from the bottom (right)."""
    full = module(x)
    top = (kernel - stride) // 2
    height, width = x.shape[2] * stride, x.shape[3] * stride
    return full[:, :, top : top + height, top : top + width]


def sinusoid(length: int, channels: int) -> torch.Tensor:
    """Vaswani et al.: sin at even channels, cos at odd ones, frequency 10000^(-2i/C)."""
    table = torch.zeros(length, channels)
    for pos in range(length):
        for i in range(0, channels, 2):
            angle = pos / 10000 ** (i / channels)
            table[pos, i] = math.sin(angle)
            if i + 1 < channels:
                table[pos, i + 1] = math.cos(angle)
    return table


def attention(layer, x: torch.Tensor, *, causal: bool, keep: torch.Tensor | None = None):
    """Multi-head scaled dot-product self-attention written out by hand."""
    n, t, _ = x.shape
    heads = layer.num_heads
    q, k, v = (
        linear_from(getattr(layer, f"{part}_weight"), getattr(layer, f"{part}_bias"))(x)
        .reshape(n, t, heads, -1)
        .permute(0, 2, 1, 3)
        for part in ("query", "key", "value")
    )
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (N, heads, T, T)
    allowed = torch.ones(n, 1, t, t, dtype=torch.bool)
    if causal:
        allowed = allowed & torch.ones(t, t, dtype=torch.bool).tril()
    if keep is not None:
        allowed = allowed & keep.bool()[:, None, None, :]
    weights = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
    y = (weights @ v).permute(0, 2, 1, 3).reshape(n, t, -1)
    return linear_from(layer.output_weight, layer.output_bias)(y)


def images(size: tuple[int, ...]) -> Callable[[int], Inputs]:
    def make(seed: int) -> Inputs:
        return (torch.randn(BATCH, *size, generator=torch.Generator().manual_seed(seed)),)

    return make


def sequences(channels: int, length: Callable[[int], int]) -> Callable[[int], Inputs]:
    def make(seed: int) -> Inputs:
        g = torch.Generator().manual_seed(seed)
        return (torch.randn(BATCH, length(seed), channels, generator=g),)

    return make


# -- 1. LeNet ----------------------------------------------------------------------------------


def lenet() -> Case:
    torch.manual_seed(1)
    net = Network(
        [
            L.ImageInput((1, 28, 28), normalization="zscore", mean=0.5, std=0.25, name="image"),
            L.Conv2d(6, 5, padding="same", name="conv1"),  # padding "same" (default)
            L.ReLU(name="relu1"),
            L.MaxPool2d(2, name="pool1"),
            L.Conv2d(16, 5, padding="valid", name="conv2"),
            L.ReLU(name="relu2"),
            L.MaxPool2d(2, name="pool2"),
            L.Flatten(name="flatten"),
            L.Dense(32, name="fc1"),
            L.ReLU(name="relu3"),
            L.Dense(10, name="fc2"),
            L.Softmax(name="prob"),
        ],
        classes=[str(d) for d in range(10)],
        name="lenet",
    )

    def reference(net: Network, inputs: Inputs) -> torch.Tensor:
        model = nn.Sequential(
            copied(nn.Conv2d(1, 6, 5, padding=2), net.layer("conv1")),
            nn.ReLU(),
            nn.MaxPool2d(2),
            copied(nn.Conv2d(6, 16, 5), net.layer("conv2")),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            copied(nn.Linear(400, 32), net.layer("fc1")),
            nn.ReLU(),
            copied(nn.Linear(32, 10), net.layer("fc2")),
            nn.Softmax(dim=1),
        )
        (x,) = inputs
        return model((x - 0.5) / 0.25)

    sizes = {
        "image": (1, 28, 28),
        "conv1": (6, 28, 28),
        "pool1": (6, 14, 14),
        "conv2": (16, 10, 10),
        "pool2": (16, 5, 5),
        "flatten": (400,),
        "fc1": (32,),
        "prob": (10,),
    }
    return Case(net, images((1, 28, 28)), reference, sizes, (BATCH, 10))


# -- 2. ResNet ---------------------------------------------------------------------------------


def resnet() -> Case:
    torch.manual_seed(2)
    net = Network(
        [
            L.ImageInput((3, 16, 16), name="image"),
            L.Conv2d(8, 3, padding="same", name="stem"),
            L.BatchNorm(name="stem_bn"),
            L.ReLU(name="stem_relu"),
            # block 1: identity skip from stem_relu
            L.Conv2d(8, 3, bias=False, padding="same", name="b1_conv1"),
            L.BatchNorm(name="b1_bn1"),
            L.ReLU(name="b1_relu1"),
            L.Conv2d(8, 3, bias=False, padding="same", name="b1_conv2"),
            L.BatchNorm(name="b1_bn2"),
            L.Addition(name="b1_add"),
            L.ReLU(name="b1_relu"),
            # block 2: downsampling, 1x1 projection skip
            L.Conv2d(16, 3, stride=2, bias=False, padding="same", name="b2_conv1"),
            L.BatchNorm(name="b2_bn1"),
            L.ReLU(name="b2_relu1"),
            L.Conv2d(16, 3, bias=False, padding="same", name="b2_conv2"),
            L.BatchNorm(name="b2_bn2"),
            L.Addition(name="b2_add"),
            L.ReLU(name="b2_relu"),
            L.GlobalAvgPool(name="gap"),
            L.Dense(5, name="fc"),
            L.Softmax(name="prob"),
        ],
        name="resnet",
    )
    net.connect("stem_relu", "b1_add/in2")
    net.add_layers([L.Conv2d(16, 1, stride=2, name="b2_proj"), L.BatchNorm(name="b2_proj_bn")])
    net.connect("b1_relu", "b2_proj")
    net.connect("b2_proj_bn", "b2_add/in2")

    def reference(net: Network, inputs: Inputs) -> torch.Tensor:
        def conv(cin, cout, k, name, **kw):
            return copied(
                nn.Conv2d(cin, cout, k, bias=name in ("stem", "b2_proj"), **kw), net.layer(name)
            )

        def bn(c, name):
            return copied(nn.BatchNorm2d(c), net.layer(name))

        (x,) = inputs
        x = F.relu(bn(8, "stem_bn")(conv(3, 8, 3, "stem", padding=1)(x)))
        y = F.relu(bn(8, "b1_bn1")(conv(8, 8, 3, "b1_conv1", padding=1)(x)))
        y = bn(8, "b1_bn2")(conv(8, 8, 3, "b1_conv2", padding=1)(y))
        x = F.relu(y + x)
        # 'same' with stride 2 on 16 pixels: one row/column of padding, at the end (TF, MATLAB)
        y = conv(8, 16, 3, "b2_conv1", stride=2)(F.pad(x, (0, 1, 0, 1)))
        y = F.relu(bn(16, "b2_bn1")(y))
        y = bn(16, "b2_bn2")(conv(16, 16, 3, "b2_conv2", padding=1)(y))
        skip = bn(16, "b2_proj_bn")(conv(8, 16, 1, "b2_proj", stride=2)(x))
        x = F.relu(y + skip)
        return copied(nn.Linear(16, 5), net.layer("fc"))(x.mean(dim=(2, 3))).softmax(-1)

    sizes = {
        "stem_relu": (8, 16, 16),
        "b1_add": (8, 16, 16),
        "b2_conv1": (16, 8, 8),
        "b2_proj": (16, 8, 8),
        "b2_add": (16, 8, 8),
        "gap": (16,),
        "prob": (5,),
    }
    return Case(net, images((3, 16, 16)), reference, sizes, (BATCH, 5))


# -- 3. U-Net ----------------------------------------------------------------------------------


def unet() -> Case:
    torch.manual_seed(3)
    net = Network(
        [
            L.ImageInput((1, 16, 16), name="image"),
            L.Conv2d(8, 3, padding="same", name="e1_conv"),
            L.ReLU(name="e1_relu"),
            L.MaxPool2d(2, name="pool1"),
            L.Conv2d(16, 3, padding="same", name="e2_conv"),
            L.ReLU(name="e2_relu"),
            L.MaxPool2d(2, name="pool2"),
            L.Conv2d(32, 3, padding="same", name="mid_conv"),
            L.ReLU(name="mid_relu"),
            L.TransposedConv2d(16, 3, stride=2, cropping="same", name="up2"),  # odd crop
            L.Concatenation(name="cat2"),
            L.Conv2d(16, 3, padding="same", name="d2_conv"),
            L.ReLU(name="d2_relu"),
            L.TransposedConv2d(8, 4, stride=2, cropping="same", name="up1"),  # even crop
            L.Concatenation(name="cat1"),
            L.Conv2d(8, 3, padding="same", name="d1_conv"),
            L.ReLU(name="d1_relu"),
            L.Conv2d(3, 1, name="head"),
            L.Softmax(name="prob"),
        ],
        name="unet",
    )
    net.connect("e2_relu", "cat2/in2")
    net.connect("e1_relu", "cat1/in2")

    def reference(net: Network, inputs: Inputs) -> torch.Tensor:
        def conv(cin, cout, name, k=3):
            return copied(nn.Conv2d(cin, cout, k, padding=k // 2), net.layer(name))

        def up(cin, cout, k, name):
            module = copied(nn.ConvTranspose2d(cin, cout, k, stride=2), net.layer(name))
            return lambda x: transposed_same(module, x, k, 2)

        (x,) = inputs
        e1 = F.relu(conv(1, 8, "e1_conv")(x))
        e2 = F.relu(conv(8, 16, "e2_conv")(F.max_pool2d(e1, 2)))
        m = F.relu(conv(16, 32, "mid_conv")(F.max_pool2d(e2, 2)))
        d2 = F.relu(conv(32, 16, "d2_conv")(torch.cat([up(32, 16, 3, "up2")(m), e2], 1)))
        d1 = F.relu(conv(16, 8, "d1_conv")(torch.cat([up(16, 8, 4, "up1")(d2), e1], 1)))
        return conv(8, 3, "head", k=1)(d1).softmax(1)

    sizes = {
        "e1_relu": (8, 16, 16),
        "pool2": (16, 4, 4),
        "mid_relu": (32, 4, 4),
        "up2": (16, 8, 8),
        "cat2": (32, 8, 8),
        "up1": (8, 16, 16),
        "cat1": (16, 16, 16),
        "head": (3, 16, 16),
        "prob": (3, 16, 16),
    }
    return Case(net, images((1, 16, 16)), reference, sizes, (BATCH, 3, 16, 16))


# -- 4. LSTM classifiers ---------------------------------------------------------------------


def lstm_classifier(*, bidirectional: bool) -> Case:
    torch.manual_seed(4)
    hidden, num_layers = (8, 2) if bidirectional else (16, 1)
    width = hidden * (2 if bidirectional else 1)
    net = Network(
        [
            L.SequenceInput(3, name="signal"),
            L.LSTM(
                hidden,
                # each direction's final state, which the reference computes (for one
                # direction the same as MATLAB's "last")
                output_mode="final_state" if bidirectional else "last",
                bidirectional=bidirectional,
                num_layers=num_layers,
                name="lstm",
            ),
            L.Dense(4, name="fc"),
            L.Softmax(name="prob"),
        ],
        classes=["a", "b", "c", "d"],
        name="bilstm" if bidirectional else "lstm",
    )

    def reference(net: Network, inputs: Inputs) -> torch.Tensor:
        rnn = nn.LSTM(
            3, hidden, num_layers=num_layers, batch_first=True, bidirectional=bidirectional
        )
        output, _ = copied(rnn, net.layer("lstm"), prefix="rnn.")(*inputs)
        fc = copied(nn.Linear(width, 4), net.layer("fc"))
        return fc(last_step(output, hidden, bidirectional)).softmax(-1)

    sizes = {"signal": (None, 3), "lstm": (width,), "fc": (4,), "prob": (4,)}
    # a different length per seed: the time length is free
    return Case(net, sequences(3, lambda s: 5 + s % 4), reference, sizes, (BATCH, 4))


# -- 5. 1-D CNN + GRU ---------------------------------------------------------------------------


def cnn_gru(*, last: bool) -> Case:
    torch.manual_seed(5)
    if last:  # fixed length, strided 'same' conv, bidirectional GRU, one label per sequence
        head = [
            L.GRU(12, output_mode="final_state", bidirectional=True, name="gru"),
            L.Dense(3, name="fc"),
            L.Softmax(name="prob"),
        ]
        first = [
            L.SequenceInput(2, length=20, name="signal"),
            L.Conv1d(8, 3, stride=2, padding="same", name="conv"),
        ]
    else:  # free length, one output per time step
        head = [L.GRU(12, name="gru"), L.Dense(3, name="fc")]
        first = [
            L.SequenceInput(2, normalization="zscore", name="signal"),
            L.Conv1d(8, 5, padding="same", name="conv"),
        ]
    middle = [L.BatchNorm(name="bn"), L.ReLU(name="relu"), L.MaxPool1d(2, name="pool")]
    net = Network([*first, *middle, *head], name="cnn_gru_last" if last else "cnn_gru")
    # statistics per channel, over observations and time; a signal far from zero mean, unit std
    recordings = torch.randn(16, 30, 2, generator=torch.Generator().manual_seed(50)) * 3 + 2
    mean, std = recordings.mean(dim=(0, 1)), recordings.std(dim=(0, 1), unbiased=False)
    if not last:
        net.layer("signal").compute_statistics(recordings)

    def reference(net: Network, inputs: Inputs) -> torch.Tensor:
        (x,) = inputs
        x = x.transpose(1, 2)  # (N, C, T) for torch's 1-D layers
        if last:  # 'same', stride 2, 20 steps: one step of padding at the end
            x = copied(nn.Conv1d(2, 8, 3, stride=2), net.layer("conv"))(F.pad(x, (0, 1)))
        else:
            x = (x - mean[:, None]) / std[:, None]
            x = copied(nn.Conv1d(2, 8, 5, padding=2), net.layer("conv"))(x)
        x = F.max_pool1d(F.relu(copied(nn.BatchNorm1d(8), net.layer("bn"))(x)), 2)
        rnn = nn.GRU(8, 12, batch_first=True, bidirectional=last)
        output, _ = copied(rnn, net.layer("gru"), prefix="rnn.")(x.transpose(1, 2))
        if not last:
            return copied(nn.Linear(12, 3), net.layer("fc"))(output)
        return copied(nn.Linear(24, 3), net.layer("fc"))(last_step(output, 12, True)).softmax(-1)

    if last:
        sizes = {"conv": (10, 8), "pool": (5, 8), "gru": (24,), "prob": (3,)}
        return Case(net, sequences(2, lambda s: 20), reference, sizes, (BATCH, 3))
    sizes = {"conv": (None, 8), "bn": (None, 8), "pool": (None, 8), "gru": (None, 12)}
    sizes["fc"] = (None, 3)
    return Case(net, sequences(2, lambda s: 18 + 2 * (s % 3)), reference, sizes, (BATCH, 9, 3))


# -- 6. Transformer text classifiers --------------------------------------------------------------

VOCABULARY, DIM, MAX_LEN = 50, 16, 32


def transformer(variant: str) -> Case:
    """variant: "plain", "causal" (with sinusoidal positions) or "masked" (padding mask input)."""
    torch.manual_seed(6)
    causal, masked = variant == "causal", variant == "masked"
    kind = "sinusoidal" if causal else "learned"
    attention_options = {"key_channels": 8} if masked else {}
    net = Network(
        [
            L.SequenceInput(1, name="tokens"),
            L.Embedding(VOCABULARY, DIM, padding_index=0 if masked else None, name="embed"),
            L.PositionEmbedding(MAX_LEN, kind=kind, name="pos"),
            L.SelfAttention(
                2 if masked else 4,
                causal=causal,
                has_padding_mask=masked,
                name="attn",
                **attention_options,
            ),
            L.Addition(name="add1"),
            L.LayerNorm(name="ln1"),
            L.Dense(32, name="ffn1"),
            L.GELU(name="gelu"),
            L.Dense(DIM, name="ffn2"),
            L.Addition(name="add2"),
            L.LayerNorm(name="ln2"),
            L.GlobalAvgPool(name="gap"),
            L.Dense(3, name="fc"),
            L.Softmax(name="prob"),
        ],
        classes=["neg", "neutral", "pos"],
        name=f"transformer_{variant}",
    )
    net.connect("pos", "add1/in2")
    net.connect("ln1", "add2/in2")
    if masked:
        net.add_layers(L.SequenceInput(1, name="mask"))
        net.connect("mask", "attn/mask")

    def make_inputs(seed: int) -> Inputs:
        g = torch.Generator().manual_seed(seed)
        length = 7 + seed % 3
        tokens = torch.randint(1, VOCABULARY, (BATCH, length), generator=g)
        if not masked:
            return (tokens,)
        lengths = torch.tensor([length, length - 2, 3, 1])
        keep = torch.arange(length)[None, :] < lengths[:, None]
        return (tokens * keep, keep.float())

    def reference(net: Network, inputs: Inputs) -> torch.Tensor:
        tokens = inputs[0]
        embed = nn.Embedding(VOCABULARY, DIM, padding_idx=0 if masked else None)
        h = copied(embed, net.layer("embed"))(tokens)
        if causal:
            h = h + sinusoid(tokens.shape[1], DIM)
        else:
            h = h + net.layer("pos").weight[: tokens.shape[1]]
        keep = inputs[1] if masked else None
        h = copied(nn.LayerNorm(DIM), net.layer("ln1"))(
            h + attention(net.layer("attn"), h, causal=causal, keep=keep)
        )
        ffn = nn.Sequential(
            copied(nn.Linear(DIM, 32), net.layer("ffn1")),
            nn.GELU(),
            copied(nn.Linear(32, DIM), net.layer("ffn2")),
        )
        h = copied(nn.LayerNorm(DIM), net.layer("ln2"))(h + ffn(h))
        return copied(nn.Linear(DIM, 3), net.layer("fc"))(h.mean(dim=1)).softmax(-1)

    sizes = {
        "tokens": (None, 1),
        "embed": (None, DIM),
        "pos": (None, DIM),
        "attn": (None, DIM),
        "add1": (None, DIM),
        "ffn1": (None, 32),
        "ln2": (None, DIM),
        "gap": (DIM,),
        "prob": (3,),
    }
    if masked:
        sizes["mask"] = (None, 1)
    return Case(net, make_inputs, reference, sizes, (BATCH, 3))


# -- 7. DCGAN generators ---------------------------------------------------------------------------


def dcgan_generator(*, color: bool) -> Case:
    """color: 16 -> (3, 32, 32) with kernel 4 (even crop); else 8 -> (1, 16, 16), kernel 5."""
    torch.manual_seed(7)
    latent, kernel = (16, 4) if color else (8, 5)
    channels = [32, 16, 8, 3] if color else [16, 8, 1]
    chain: list[nn.Module] = [
        L.FeatureInput(latent, name="z"),
        L.Dense(channels[0] * 16, name="project"),
        L.Reshape((channels[0], 4, 4), name="reshape"),
        L.BatchNorm(name="bn0"),
        L.ReLU(name="relu0"),
    ]
    for i, c in enumerate(channels[1:], 1):
        final = i == len(channels) - 1
        chain.append(
            L.TransposedConv2d(c, kernel, stride=2, cropping="same", bias=final, name=f"up{i}")
        )
        if not final:
            chain += [L.BatchNorm(name=f"bn{i}"), L.ReLU(name=f"relu{i}")]
    chain.append(L.Tanh(name="tanh"))
    net = Network(chain, name="generator_color" if color else "generator_gray")
    side = 4 * 2 ** (len(channels) - 1)

    def reference(net: Network, inputs: Inputs) -> torch.Tensor:
        (z,) = inputs
        x = copied(nn.Linear(latent, channels[0] * 16), net.layer("project"))(z)
        x = F.relu(
            copied(nn.BatchNorm2d(channels[0]), net.layer("bn0"))(x.view(-1, channels[0], 4, 4))
        )
        for i, (cin, cout) in enumerate(zip(channels, channels[1:], strict=False), 1):
            final = i == len(channels) - 1
            if color:  # kernel 4, stride 2: the classic DCGAN padding=1
                up = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=final)
                x = copied(up, net.layer(f"up{i}"))(x)
            else:
                up = nn.ConvTranspose2d(cin, cout, kernel, stride=2, bias=final)
                x = transposed_same(copied(up, net.layer(f"up{i}")), x, kernel, 2)
            if not final:
                x = F.relu(copied(nn.BatchNorm2d(cout), net.layer(f"bn{i}"))(x))
        return torch.tanh(x)

    def make_inputs(seed: int) -> Inputs:
        return (torch.randn(BATCH, latent, generator=torch.Generator().manual_seed(seed)),)

    sizes = {"z": (latent,), "project": (channels[0] * 16,), "reshape": (channels[0], 4, 4)}
    sizes["up1"] = (channels[1], 8, 8)
    sizes["tanh"] = (channels[-1], side, side)
    return Case(net, make_inputs, reference, sizes, (BATCH, channels[-1], side, side))


# -- 8. DCGAN discriminator ------------------------------------------------------------------------


def dcgan_discriminator() -> Case:
    torch.manual_seed(8)
    net = Network(
        [
            L.ImageInput((3, 32, 32), name="image"),
            L.Conv2d(8, 4, stride=2, padding=1, name="conv1"),
            L.LeakyReLU(0.2, name="lrelu1"),
            L.Conv2d(16, 4, stride=2, padding=1, bias=False, name="conv2"),
            L.BatchNorm(name="bn2"),
            L.LeakyReLU(0.2, name="lrelu2"),
            L.Conv2d(
                32, 3, stride=2, bias=False, padding="same", name="conv3"
            ),  # 'same': pads at the end
            L.BatchNorm(name="bn3"),
            L.LeakyReLU(0.2, name="lrelu3"),
            L.Flatten(name="flatten"),
            L.Dense(1, name="fc"),
            L.Sigmoid(name="real"),
        ],
        name="discriminator",
    )

    def reference(net: Network, inputs: Inputs) -> torch.Tensor:
        (x,) = inputs
        x = F.leaky_relu(copied(nn.Conv2d(3, 8, 4, 2, 1), net.layer("conv1"))(x), 0.2)
        x = copied(nn.Conv2d(8, 16, 4, 2, 1, bias=False), net.layer("conv2"))(x)
        x = F.leaky_relu(copied(nn.BatchNorm2d(16), net.layer("bn2"))(x), 0.2)
        x = copied(nn.Conv2d(16, 32, 3, 2, bias=False), net.layer("conv3"))(F.pad(x, (0, 1, 0, 1)))
        x = F.leaky_relu(copied(nn.BatchNorm2d(32), net.layer("bn3"))(x), 0.2)
        return torch.sigmoid(copied(nn.Linear(512, 1), net.layer("fc"))(x.flatten(1)))

    sizes = {
        "conv1": (8, 16, 16),
        "conv2": (16, 8, 8),
        "conv3": (32, 4, 4),
        "flatten": (512,),
        "fc": (1,),
        "real": (1,),
    }
    return Case(net, images((3, 32, 32)), reference, sizes, (BATCH, 1))


BUILDERS: dict[str, Callable[[], Case]] = {
    "lenet": lenet,
    "resnet": resnet,
    "unet": unet,
    "lstm": lambda: lstm_classifier(bidirectional=False),
    "bilstm": lambda: lstm_classifier(bidirectional=True),
    "cnn_gru": lambda: cnn_gru(last=False),
    "cnn_gru_last": lambda: cnn_gru(last=True),
    "transformer": lambda: transformer("plain"),
    "transformer_causal": lambda: transformer("causal"),
    "transformer_masked": lambda: transformer("masked"),
    "dcgan_generator_color": lambda: dcgan_generator(color=True),
    "dcgan_generator_gray": lambda: dcgan_generator(color=False),
    "dcgan_discriminator": dcgan_discriminator,
}


@pytest.fixture(params=list(BUILDERS))
def case(request) -> Case:
    return BUILDERS[request.param]()


def trained_statistics(case: Case) -> Network:
    """Run a few training batches so BatchNorm running statistics move away from 0 / 1."""
    net = case.net
    norms = [m for m in net.modules() if isinstance(m, L.BatchNorm)]
    net.train()
    with torch.no_grad():
        for seed in range(1, 4):
            net(*case.make_inputs(seed))
    for norm in norms:
        assert int(norm.num_batches_tracked) == 3
        assert norm.running_mean.abs().max() > 1e-3
        assert (norm.running_var - 1).abs().max() > 1e-3
    return net.eval()


def run(net: Network, inputs: Inputs) -> torch.Tensor:
    with torch.no_grad():
        return net.eval()(*inputs)


# -- the contract -------------------------------------------------------------------------------


def test_sizes_resolve_as_designed(case: Case):
    analysis = analyze(case.net)
    assert analysis.ok, analysis.errors
    assert analysis.warnings == []
    assert case.net.is_initialized
    assert [row.name for row in analysis.rows] == case.net.layer_names
    for name, size in case.sizes.items():
        assert case.net.output_shape(name) == size, name
        assert analysis.row(name).output_size == size, name
    assert len(case.net.output_names) == 1
    out = run(case.net, case.make_inputs(0))
    assert tuple(out.shape) == case.output
    resolved = case.net.output_shape()
    assert len(resolved) == len(case.output) - 1
    assert all(r is None or r == o for r, o in zip(resolved, case.output[1:], strict=True))


def test_matches_plain_torch(case: Case):
    net = trained_statistics(case)
    inputs = case.make_inputs(0)
    out = run(net, inputs)
    with torch.no_grad():
        expected = case.reference(net, inputs)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out[0], out[1])  # the inputs really reach the output


@pytest.mark.parametrize("suffix", ["", ".zip"])
def test_save_load_round_trip(case: Case, tmp_path, suffix):
    net = trained_statistics(case)
    inputs = case.make_inputs(0)
    path = dtb.save(net, tmp_path / f"{net.name}{suffix}")
    assert path.is_dir() == (suffix == "")
    loaded = dtb.load(path)
    assert loaded.to_json() == net.to_json()
    assert loaded.classes == net.classes
    assert torch.equal(run(loaded, inputs), run(net, inputs))


def test_json_round_trip(case: Case):
    net = trained_statistics(case)
    inputs = case.make_inputs(0)
    clone = Network.from_json(net.to_json())
    assert clone.to_json() == net.to_json()
    clone.load_state_dict(net.state_dict())
    assert torch.equal(run(clone, inputs), run(net, inputs))


def test_to_python_round_trip(case: Case):
    net = trained_statistics(case)
    inputs = case.make_inputs(0)
    namespace: dict = {}
    exec(compile(dtb.to_python(net), f"<{net.name}>", "exec"), namespace)
    rebuilt = namespace["build_network"]()
    assert rebuilt.to_json() == net.to_json()
    assert rebuilt.classes == net.classes
    rebuilt.load_state_dict(net.state_dict())
    assert torch.equal(run(rebuilt, inputs), run(net, inputs))


def test_gradients_reach_every_parameter(case: Case):
    net = case.net.train()
    out = net(*case.make_inputs(0))
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(0))).sum().backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


# -- architecture-specific behaviour ---------------------------------------------------------------


def capture(net: Network, name: str, inputs: Inputs) -> torch.Tensor:
    """The output of layer ``name`` while the network runs on ``inputs``."""
    seen: list[torch.Tensor] = []
    handle = net.layer(name).register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        run(net, inputs)
    finally:
        handle.remove()
    return seen[0]


def test_causal_transformer_ignores_the_future():
    case = transformer("causal")
    (tokens,) = case.make_inputs(0)
    changed = tokens.clone()
    changed[:, 4:] = (changed[:, 4:] + 7) % VOCABULARY
    before, after = capture(case.net, "ln2", (tokens,)), capture(case.net, "ln2", (changed,))
    torch.testing.assert_close(after[:, :4], before[:, :4])
    assert not torch.allclose(after[:, 4:], before[:, 4:])


def test_masked_transformer_ignores_padding():
    case = transformer("masked")
    tokens, keep = case.make_inputs(0)
    changed = torch.where(keep.bool(), tokens, torch.full_like(tokens, 9))
    before = capture(case.net, "ln2", (tokens, keep))
    after = capture(case.net, "ln2", (changed, keep))
    valid = keep.bool()
    torch.testing.assert_close(after[valid], before[valid])
    assert not torch.allclose(after[~valid], before[~valid])
    # without the mask, the padded tokens would be attended
    plain = capture(case.net, "ln2", (changed, torch.ones_like(keep)))
    assert not torch.allclose(plain[valid], before[valid])


def test_sequence_models_accept_any_length():
    case = cnn_gru(last=False)
    for length in (4, 11, 30):
        out = run(case.net, (torch.randn(2, length, 2),))
        assert tuple(out.shape) == (2, length // 2, 3)
    case = lstm_classifier(bidirectional=True)
    for length in (1, 13):
        assert tuple(run(case.net, (torch.randn(2, length, 3),)).shape) == (2, 4)


def test_generator_feeds_discriminator():
    generator, discriminator = dcgan_generator(color=True).net, dcgan_discriminator().net
    assert generator.output_shape() == discriminator.layer("image").shape
    fake = run(generator, (torch.randn(5, 16),))
    assert fake.abs().max() < 1
    score = run(discriminator, (fake,))
    assert tuple(score.shape) == (5, 1)
    assert ((score > 0) & (score < 1)).all()


def test_json_does_not_depend_on_edit_order():
    """The same graph gives the same network.json however it was built (to_python relies on
    it: generated code adds all layers first, then connects the branches)."""
    chained = Network([L.FeatureInput(3, name="x"), L.Dense(3, name="fc"), L.Addition(name="add")])
    chained.connect("x", "add/in2")
    edited = Network(name="network")
    for layer in (L.FeatureInput(3, name="x"), L.Dense(3, name="fc"), L.Addition(name="add")):
        edited.add_layers(layer)
    edited.connect("x", "add/in2").connect("fc", "add/in1").connect("x", "fc")
    assert edited.to_json() == chained.to_json()
    assert json.loads(chained.to_json())["connections"] == [
        ["x", "fc/in"],
        ["fc", "add/in1"],
        ["x", "add/in2"],
    ]
