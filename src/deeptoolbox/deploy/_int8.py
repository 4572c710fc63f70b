"""The int8 path of generate_c: calibration, the int8 graph, its program and error report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from deeptoolbox.deploy._emit_int8 import scratch_i8
from deeptoolbox.deploy._ir import Graph
from deeptoolbox.deploy._layer_rules import check_arguments
from deeptoolbox.deploy._lower import lower
from deeptoolbox.deploy._passes import optimize
from deeptoolbox.deploy._quantize import ActivationRanges
from deeptoolbox.deploy._quantize_ops import Int8Graph, split_multiplications
from deeptoolbox.deploy._reference import run_graph
from deeptoolbox.deploy._reference_int8 import run_int8
from deeptoolbox.errors import CodegenError, InputSizeError

CHUNK = 256  # calibration batches


def calibration_inputs(graph: Graph, data: Any) -> list[torch.Tensor]:
    """``data`` (one array, or one per network input) as float tensors of the graph's sizes."""
    items = list(data) if isinstance(data, list | tuple) else [data]
    if len(items) != len(graph.inputs):
        raise InputSizeError(
            f"calibration_data: the network takes {len(graph.inputs)} input(s) "
            f"({', '.join(graph.input_layers)}); received {len(items)} array(s). Pass a list."
        )
    tensors = []
    for layer, value, item in zip(graph.input_layers, graph.inputs, items, strict=True):
        try:
            x = torch.as_tensor(np.asarray(item, dtype=np.float32))
        except (TypeError, ValueError) as err:
            raise InputSizeError(
                f"calibration_data for input '{layer}' must be numbers (an array or a tensor). "
                f"Received: {type(item).__name__} ({err})."
            ) from None
        shape = graph.values[value].shape
        if x.dim() >= 1 and x.shape[0] >= 1 and x[0].numel() == int(np.prod(shape)):
            tensors.append(x.reshape(x.shape[0], *shape))
            continue
        raise InputSizeError(
            f"calibration_data for input '{layer}' must be a batch "
            f"(N, {', '.join(map(str, shape))})"
            f" (sequences at the generated length); received size {tuple(x.shape)}."
        )
    return tensors


def measure(graph: Graph, data: Any) -> dict[str, tuple[float, float]]:
    """The range of every value (and recurrent internals) over ``data``."""
    inputs = calibration_inputs(graph, data)
    ranges: dict[str, tuple[float, float]] = {}
    for start in range(0, inputs[0].shape[0], CHUNK):
        run_graph(graph, [x[start : start + CHUNK] for x in inputs], ranges)
    return ranges


def int8_graph(graph: Graph) -> Graph:
    """The float graph as the int8 path needs it (multiplications two inputs at a time)."""
    return split_multiplications(graph)


def activation_ranges(
    net: nn.Module, data: Any, *, sequence_length: int | None = None
) -> ActivationRanges:
    """Measure the range of every layer output on ``data``: what int8 scales come from.

    ``data`` is a batch like the network's input (a list of batches for several inputs);
    sequences at ``sequence_length`` (or their declared length). The result can be edited
    and passed to :func:`generate_c` as ``ranges=``.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(3, name="fc"), L.ReLU(name="relu")])
        >>> ranges = activation_ranges(net, torch.randn(64, 2))
        >>> ranges["relu"][0]
        0.0
    """
    check_arguments("activation_ranges", net, sequence_length)
    lengths = dict.fromkeys(net.input_names, sequence_length)
    if sequence_length is None:
        lengths = {n: _data_length(net, n, data) for n in net.input_names}
    graph = int8_graph(optimize(lower(net, lengths)))
    return ActivationRanges(measure(graph, data))


def _data_length(net: nn.Module, name: str, data: Any) -> int | None:
    items = list(data) if isinstance(data, list | tuple) else [data]
    index = net.input_names.index(name)
    shape = net.layer(name).shape
    if None in shape and index < len(items) and np.ndim(items[index]) >= 2:
        return int(np.shape(items[index])[1])
    return None


def mapping_of_ranges(ranges: Any) -> Mapping | None:
    """``ranges=`` as a mapping name -> (min, max).

    Accepts a mapping, or a calibrated quantizer: an object whose ``calibration`` (or the
    object itself) has ``layers``, a dict layer -> row with ``low`` and ``high`` (what
    :class:`deeptoolbox.compress.Quantizer` and its ``CalibrationResult`` hold).
    """
    if ranges is None or isinstance(ranges, Mapping):
        return ranges
    calibration = getattr(ranges, "calibration", ranges)
    if calibration is None:
        raise CodegenError(
            f"generate_c: the {type(ranges).__name__} passed as `ranges` is not calibrated: "
            "call its calibrate(data) first, or pass calibration_data= instead."
        )
    rows = getattr(calibration, "layers", None)
    if isinstance(rows, Mapping) and all(
        hasattr(row, "low") and hasattr(row, "high") for row in rows.values()
    ):
        return {name: (row.low, row.high) for name, row in rows.items()}
    raise CodegenError(
        "generate_c: `ranges` must be an ActivationRanges or a dict layer -> (min, max), or a "
        "calibrated quantizer (deeptoolbox.compress.Quantizer, or its CalibrationResult). "
        f"Received: {type(ranges).__name__}."
    )


def int8_graphs(graph: Graph, step_graph: Graph | None, calibration_data: Any, ranges: Any):
    """(float graph as quantized, int8 graph, int8 step graph or None) from data and ranges."""
    if calibration_data is None and ranges is None:
        raise CodegenError(
            "precision='int8' needs the value ranges of the network: pass calibration_data= "
            "(a batch of typical inputs, a few hundred observations) or ranges= "
            "(deploy.activation_ranges(net, data), or a dict layer -> (min, max))."
        )
    ranges = mapping_of_ranges(ranges)
    graph = int8_graph(graph)
    measured = measure(graph, calibration_data) if calibration_data is not None else {}
    merged = ActivationRanges(measured).merged(ranges or {})
    qgraph = Int8Graph(graph, merged).build()
    qstep = Int8Graph(int8_graph(step_graph), merged).build() if step_graph is not None else None
    return graph, qgraph, qstep


def quantized_graphs(graph, step_graph, calibration_data, ranges):
    """The int8 graphs of generate_c (network, step or None) and notes for the report (error
    against float on the calibration data)."""
    graph, qgraph, qstep = int8_graphs(graph, step_graph, calibration_data, ranges)
    notes = []
    if calibration_data is not None:
        notes = error_notes(graph, qgraph, calibration_inputs(graph, calibration_data))
    return qgraph, qstep, notes


def error_notes(graph: Graph, qgraph: Graph, inputs: Sequence[torch.Tensor]) -> list[str]:
    """How far the int8 outputs are from float on (up to 512 of) the calibration inputs."""
    inputs = [x[:512] for x in inputs]
    floats = run_graph(graph, inputs)
    ints = run_int8(qgraph, [x.numpy() for x in inputs])
    notes = []
    for name, layer, qname in zip(graph.outputs, graph.output_layers, qgraph.outputs, strict=True):
        want, got = floats[name].numpy(), ints[qname]
        spread = float(want.max() - want.min()) or 1.0
        error = float(np.abs(got - want).max())
        notes.append(
            f"int8 vs float on the calibration data, output '{layer}': max abs "
            f"difference {error:.4g} ({100 * error / spread:.2f}% of its range)"
        )
    return notes


def int8_scratch(batch: int):
    """Scratch sizes of the int8 kernels for ``batch`` observations (see build_program)."""
    return lambda op, streaming: scratch_i8(op, batch, streaming)
