"""Graph rewrites before emission: BatchNorm folded into the layer before it, ReLU fused."""

from __future__ import annotations

import numpy as np

from deeptoolbox.deploy._ir import Graph, Op

LINEAR = ("dense", "conv1d", "conv2d", "tconv2d")
"""Ops with per-output-channel weights and a bias, which can absorb a following affine."""


def _sole_producer(graph: Graph, op: Op) -> Op | None:
    """The linear op feeding ``op`` alone (no other reader, not a network output), or None."""
    (source,) = op.inputs[:1] if len(op.inputs) == 1 else (None,)
    producer = graph.producer(source) if source else None
    if producer is None or producer.kind not in LINEAR:
        return None
    if source in graph.outputs or len(graph.consumers(source)) != 1:
        return None
    return producer


def _absorb(graph: Graph, producer: Op, op: Op) -> None:
    """Let ``producer`` write ``op``'s output directly and drop ``op``."""
    del graph.values[producer.output]
    producer.output = op.output
    producer.layers += op.layers
    graph.ops.remove(op)


def _channel_axis_shape(producer: Op, channels: int) -> tuple[int, ...]:
    if producer.kind == "tconv2d":
        return (1, channels, 1, 1)
    rank = producer.params["weight"].ndim
    return (channels,) + (1,) * (rank - 1)


def fold_affine(graph: Graph) -> None:
    """Fold each standalone affine (BatchNorm) into the convolution or Dense right before it."""
    for op in [o for o in graph.ops if o.kind == "affine"]:
        producer = _sole_producer(graph, op)
        if producer is None or producer.attrs.get("relu"):
            continue
        scale, shift = op.params["scale"].astype(np.float64), op.params["shift"].astype(np.float64)
        weight = producer.params["weight"].astype(np.float64)
        weight = weight * scale.reshape(_channel_axis_shape(producer, scale.size))
        bias = producer.params["bias"].astype(np.float64) * scale + shift
        producer.params["weight"] = weight.astype(np.float32)
        producer.params["bias"] = bias.astype(np.float32)
        _absorb(graph, producer, op)


def fuse_relu(graph: Graph) -> None:
    """Fuse each ReLU into the convolution or Dense right before it."""
    for op in [o for o in graph.ops if o.kind == "act" and o.attrs["fn"] == "relu"]:
        producer = _sole_producer(graph, op)
        if producer is None or producer.attrs.get("relu"):
            continue
        producer.attrs["relu"] = True
        _absorb(graph, producer, op)


def optimize(graph: Graph) -> Graph:
    """Apply every rewrite, in order."""
    fold_affine(graph)
    fuse_relu(graph)
    return graph
