"""Test networks for C generation: layer suites (many one-layer branches, one output each, so
one compiled program covers many layer cases) and whole networks."""

from __future__ import annotations

import functools

import numpy as np
import torch
from deploy_helpers import randomize_batchnorm

from deeptoolbox import Network
from deeptoolbox import layers as L


def branch(net: Network, source: str, name: str, *layers) -> str:
    """Add a chain of ``layers`` fed by ``source``; the last one is named ``name``."""
    chain = list(layers)
    for index, layer in enumerate(chain):
        layer.name = name if index == len(chain) - 1 else f"{name}__{index}"
    net.add_layers(chain)
    net.connect(source, chain[0].name)
    return name


def joined(net: Network, name: str, combiner, *sources: str) -> str:
    """Add a multi-input layer ``combiner`` named ``name`` fed by ``sources`` in port order."""
    combiner.name = name
    net.add_layers(combiner)
    for port, source in zip(combiner.input_names, sources, strict=True):
        net.connect(source, f"{name}/{port}")
    return name


def image_suite() -> tuple[Network, list]:
    net = Network([L.ImageInput((4, 9, 9), name="x")], name="images")
    for name, layers in {
        "conv_basic": [L.Conv2d(4, 3, padding=1)],
        "conv_stride_dilation": [L.Conv2d(5, 3, stride=2, dilation=2, padding=0)],
        "conv_same_asymmetric": [L.Conv2d(3, (2, 4), stride=(2, 1), padding="same")],
        "conv_groups": [L.Conv2d(6, 3, groups=2, padding=1)],
        "conv_depthwise": [L.Conv2d(8, 3, groups=4, padding="same")],
        "conv_no_bias": [L.Conv2d(3, 1, padding=0, bias=False)],
        "conv_bn": [L.Conv2d(4, 3, padding=1), L.BatchNorm()],
        "conv_bn_relu": [L.Conv2d(4, 3, stride=2, padding=1), L.BatchNorm(), L.ReLU()],
        "tconv": [L.TransposedConv2d(3, 3, stride=2, cropping=1)],
        "tconv_same_odd": [L.TransposedConv2d(2, 3, stride=2, cropping="same")],
        "tconv_same_bn": [L.TransposedConv2d(3, 4, stride=2, cropping="same"), L.BatchNorm()],
        "maxpool": [L.MaxPool2d(2)],
        "maxpool_padded": [L.MaxPool2d(3, stride=2, padding=1)],
        "maxpool_same": [L.MaxPool2d(2, padding="same")],
        "avgpool": [L.AvgPool2d(2)],
        "avgpool_padded": [L.AvgPool2d(3, stride=1, padding=1)],
        "avgpool_same": [L.AvgPool2d(2, stride=2, padding="same")],
        "global_avg": [L.GlobalAvgPool()],
        "global_max": [L.GlobalMaxPool()],
        "batchnorm_alone": [L.BatchNorm()],
        "softmax_channels": [L.Softmax()],
        "flatten_dense": [L.Flatten(), L.Dense(5)],
        "dense_on_image": [L.Dense(4)],
        "reshape_dense": [L.Conv2d(2, 3, padding=0), L.Reshape((7, 14)), L.Dense(3)],
        "dropout_conv": [L.Dropout(0.3), L.Conv2d(2, 3, padding=1)],
    }.items():
        branch(net, "x", name, *layers)
    branch(net, "x", "res_conv", L.Conv2d(4, 3, padding=1))
    joined(net, "res_add", L.Addition(), "res_conv", "x")
    branch(net, "res_add", "residual_relu", L.ReLU())
    branch(net, "x", "add3_a", L.Conv2d(4, 1, padding=0))
    branch(net, "x", "add3_b", L.Conv2d(4, 3, padding="same"))
    joined(net, "addition3", L.Addition(3), "add3_a", "add3_b", "x")
    branch(net, "x", "cat_conv", L.Conv2d(3, 3, padding=1))
    joined(net, "concat_channels", L.Concatenation(), "cat_conv", "x")
    branch(net, "x", "gate", L.Conv2d(4, 1, padding=0), L.Sigmoid())
    joined(net, "multiply_gate", L.Multiplication(), "gate", "x")
    return randomize_batchnorm(net), [(4, 9, 9)]


def sequence_suite() -> tuple[Network, list]:
    net = Network([L.SequenceInput(3, length=10, name="s")], name="sequences")
    for name, layers in {
        "dense_seq": [L.Dense(4)],
        "conv1d": [L.Conv1d(4, 3, stride=2, dilation=2, padding=2)],
        "conv1d_same_groups": [L.Conv1d(6, 4, padding="same", groups=3)],
        "conv1d_depthwise": [L.Conv1d(3, 3, groups=3, padding="valid")],
        "conv1d_bn_relu": [L.Conv1d(5, 3, padding=1), L.BatchNorm(), L.ReLU()],
        "maxpool1d": [L.MaxPool1d(2)],
        "maxpool1d_padded": [L.MaxPool1d(3, stride=2, padding=1)],
        "avgpool1d_same": [L.AvgPool1d(3, stride=2, padding="same")],
        "avgpool1d_padded": [L.AvgPool1d(3, stride=1, padding=1)],
        "global_avg_seq": [L.GlobalAvgPool()],
        "global_max_seq": [L.GlobalMaxPool()],
        "batchnorm_seq": [L.BatchNorm()],
        "softmax_seq": [L.Softmax()],
        "flatten_seq": [L.Flatten(), L.Dense(2)],
        "lstm_seq": [L.LSTM(5)],
        "lstm_last": [L.LSTM(4, output_mode="last")],
        "lstm_bi": [L.LSTM(3, bidirectional=True)],
        "lstm_bi_last": [L.LSTM(3, bidirectional=True, output_mode="last")],
        "lstm_2layers": [L.LSTM(4, num_layers=2, output_mode="last")],
        "gru_seq": [L.GRU(5)],
        "gru_last": [L.GRU(4, output_mode="last")],
        "gru_bi": [L.GRU(3, bidirectional=True)],
        "gru_2layers_bi_last": [L.GRU(3, num_layers=2, bidirectional=True, output_mode="last")],
        "lstm_dense_tanh": [L.LSTM(4), L.Dense(2), L.Tanh()],
    }.items():
        branch(net, "s", name, *layers)
    branch(net, "s", "time_conv", L.Conv1d(3, 3, padding="same"))
    joined(net, "concat_time", L.Concatenation(axis="time"), "s", "time_conv")
    joined(net, "concat_axis0", L.Concatenation(axis=0), "time_conv", "s")
    return randomize_batchnorm(net, seed=1), [(10, 3)]


def feature_suite() -> tuple[Network, list]:
    net = Network([L.FeatureInput(8, name="f")], name="features")
    for name, layers in {
        "dense": [L.Dense(5)],
        "dense_no_bias": [L.Dense(3, bias=False)],
        "dense_bn": [L.Dense(6), L.BatchNorm()],
        "dense_relu": [L.Dense(6), L.ReLU()],
        "batchnorm_features": [L.BatchNorm()],
        "relu": [L.ReLU()],
        "leaky_relu": [L.LeakyReLU(0.2)],
        "elu": [L.ELU(0.7)],
        "gelu": [L.GELU()],
        "gelu_tanh": [L.GELU("tanh")],
        "sigmoid": [L.Sigmoid()],
        "tanh": [L.Tanh()],
        "swish": [L.Swish()],
        "softmax": [L.Softmax()],
        "reshape_softmax": [L.Reshape((2, 4)), L.Softmax()],
        "dropout_only": [L.Dropout(0.5)],
    }.items():
        branch(net, "f", name, *layers)
    branch(net, "f", "skip", L.Dense(8))
    joined(net, "add_features", L.Addition(), "skip", "f")
    joined(net, "add_twice", L.Addition(), "skip", "skip")
    branch(net, "f", "gate_a", L.Dense(8), L.Sigmoid())
    joined(net, "multiply", L.Multiplication(), "gate_a", "f")
    branch(net, "f", "gate_b", L.Dense(8), L.Tanh())
    joined(net, "multiply3", L.Multiplication(3), "f", "gate_a", "gate_b")
    branch(net, "f", "narrow", L.Dense(4))
    joined(net, "concat_features", L.Concatenation(), "f", "narrow")
    branch(net, "f", "late", L.Dense(8))  # read last by the sum below: it must not be overwritten
    joined(net, "add3_sum", L.Addition(3), "f", "f", "late")
    branch(net, "add3_sum", "add3_last_input_dies", L.Tanh())
    return randomize_batchnorm(net, seed=2), [(8,)]


def normalization_suite() -> tuple[Network, list]:
    inputs = [
        L.ImageInput(
            (2, 4, 4), normalization="zscore", mean=[0.1, 0.2], std=[0.5, 2.0], name="img_zscore"
        ),
        L.ImageInput(
            (1, 3, 3),
            normalization="zerocenter",
            normalization_dimension="element",
            mean=np.arange(9.0).reshape(1, 3, 3) / 9,
            name="img_element",
        ),
        L.FeatureInput(
            3,
            normalization="rescale-symmetric",
            min=[-1.0, 0.0, 1.0],
            max=[1.0, 2.0, 5.0],
            name="feat_symmetric",
        ),
        L.FeatureInput(
            4,
            normalization="rescale-zero-one",
            normalization_dimension="all",
            min=-2.0,
            max=2.0,
            name="feat_zero_one",
        ),
        L.SequenceInput(
            2, length=5, normalization="zscore", mean=[0.5, -0.5], std=[1.5, 0.5], name="seq_zscore"
        ),
        L.VolumeInput((2, 2, 3, 3), name="volume"),
    ]
    net = Network(name="normalization")
    for layer in inputs:
        net.add_layers(layer)
    branch(net, "img_zscore", "norm_conv", L.Conv2d(2, 3, padding=1))
    branch(net, "img_element", "norm_element", L.Dense(3))
    branch(net, "feat_symmetric", "norm_symmetric", L.Dense(2))
    branch(net, "feat_zero_one", "norm_zero_one", L.ReLU())
    branch(net, "seq_zscore", "norm_sequence", L.LSTM(3, output_mode="last"))
    branch(net, "volume", "volume_softmax", L.BatchNorm(), L.Softmax())
    branch(net, "volume", "volume_pool", L.GlobalMaxPool())
    return randomize_batchnorm(net, seed=6), [
        (2, 4, 4),
        (1, 3, 3),
        (3,),
        (4,),
        (5, 2),
        (2, 2, 3, 3),
    ]


def streaming_suite() -> tuple[Network, list]:
    net = Network([L.SequenceInput(3, name="s")], name="streaming")
    branch(net, "s", "stream_lstm", L.LSTM(5), L.Dense(2))
    branch(net, "s", "stream_gru_last", L.GRU(4, output_mode="last"), L.Softmax())
    branch(net, "s", "stream_lstm2", L.LSTM(3, num_layers=2, output_mode="last"))
    branch(net, "s", "stream_mix", L.Dense(4), L.BatchNorm(), L.Tanh(), L.GRU(3))
    return randomize_batchnorm(net, seed=3), [(6, 3)]


SUITES = {
    "images": (image_suite, {"batch_size": 2}),
    "sequences": (sequence_suite, {"batch_size": 2}),
    "features": (feature_suite, {"batch_size": 2, "scale": 2.0}),
    "normalization": (normalization_suite, {"batch_size": 1}),
    "streaming": (streaming_suite, {"batch_size": 2, "sequence_length": 6}),
}


def suite_outputs(suite: str) -> list[str]:
    net, _ = SUITES[suite][0]()
    return list(net.output_names)


# -- whole networks ----------------------------------------------------------------------------
@functools.cache
def digits_cnn() -> tuple[Network, list]:
    """The demo's digits CNN, trained for a few steps on scikit-learn's digits."""
    from deeptoolbox._demo import build_digits_cnn
    from deeptoolbox.datasets import digits

    images, labels = digits()
    x = torch.from_numpy(images[:600])
    y = torch.from_numpy(labels[:600].astype(np.int64))
    torch.manual_seed(0)
    net = build_digits_cnn(x)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    net.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: threads only contend
    try:
        for step in range(30):
            batch = slice(19 * step % 536, 19 * step % 536 + 64)
            scores = net(x[batch])
            loss = torch.nn.functional.nll_loss(torch.log(scores + 1e-9), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return net.eval(), [(1, 8, 8)]


def residual_cnn() -> tuple[Network, list]:
    net = Network(
        [
            L.ImageInput((3, 16, 16), name="image"),
            L.Conv2d(8, 3, padding=1, name="stem"),
            L.BatchNorm(name="stem_bn"),
            L.ReLU(name="stem_relu"),
        ],
        name="residual",
    )
    source = "stem_relu"
    for block in range(3):
        first = branch(net, source, f"b{block}_conv1", L.Conv2d(8, 3, padding=1))
        branch(net, first, f"b{block}_relu", L.BatchNorm(), L.ReLU())
        branch(net, f"b{block}_relu", f"b{block}_bn2", L.Conv2d(8, 3, padding=1), L.BatchNorm())
        joined(net, f"b{block}_add", L.Addition(), f"b{block}_bn2", source)
        source = branch(net, f"b{block}_add", f"b{block}_out", L.ReLU())
    branch(net, source, "head", L.GlobalAvgPool(), L.Dense(5), L.Softmax())
    return randomize_batchnorm(net, seed=4), [(3, 16, 16)]


def lstm_classifier() -> tuple[Network, list]:
    net = Network(
        [
            L.SequenceInput(3, name="signal"),
            L.LSTM(16, output_mode="last", name="lstm"),
            L.Dense(4, name="fc"),
            L.Softmax(name="scores"),
        ],
        name="lstm-classifier",
    )
    return net.eval(), [(20, 3)]


def cnn_gru() -> tuple[Network, list]:
    net = Network(
        [
            L.SequenceInput(2, length=32, name="signal"),
            L.Conv1d(8, 5, padding="same", name="conv"),
            L.BatchNorm(name="bn"),
            L.ReLU(name="relu"),
            L.MaxPool1d(2, name="pool"),
            L.GRU(12, output_mode="last", name="gru"),
            L.Dense(3, name="fc"),
        ],
        name="cnn-gru",
    )
    return randomize_batchnorm(net, seed=5), [(32, 2)]
