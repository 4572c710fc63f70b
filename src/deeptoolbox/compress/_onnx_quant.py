"""The ONNX Runtime engine: float ONNX, tensor statistics, static QDQ int8 with per-channel
weights (never ``quantize_dynamic``, whose ConvInteger kernels are ~4x slower than float on
CNNs), and per-layer bookkeeping (which nodes and tensors belong to which layer)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from deeptoolbox.compress._errors import require
from deeptoolbox.compress._ranges import TensorStatistics
from deeptoolbox.errors import CompressionError
from deeptoolbox.network import Network

OPSET = 17


@contextlib.contextmanager
def _quiet():
    loggers = [logging.getLogger(n) for n in ("onnxscript", "torch.onnx", "root")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _sample(net: Network) -> list[torch.Tensor]:
    from deeptoolbox.interop._samples import sample_inputs

    return sample_inputs(net, batch=2, length=7)


def float_model(net: Network):
    """The float ONNX model of ``net`` (batch and free lengths left free), for quantization.

    The TorchScript exporter is used when it works: it folds BatchNorm into the convolution
    before and names every node after its layer ("/conv1/Conv"). Otherwise
    :func:`deeptoolbox.export_onnx` writes it (nodes named "conv1", "conv1/Add").
    """
    onnx = require("onnx", "onnx", "Quantization with the onnxruntime target")
    net = net.eval()
    inputs = _sample(net)
    axes = {}
    for name, layer_name in zip(net.input_names, net.input_names, strict=True):
        shape = net.layer(layer_name).shape
        axes[name] = {
            0: "batch",
            **{i + 1: f"length_{i}" for i, d in enumerate(shape) if d is None},
        }
    for name in net.output_names:
        shape = net.output_shape(name) or ()
        axes[name] = {0: "batch", **{i + 1: f"out_{i}" for i, d in enumerate(shape) if d is None}}
    buffer = io.BytesIO()
    try:
        with _quiet(), torch.no_grad():
            torch.onnx.export(
                net, tuple(inputs), buffer, dynamo=False, opset_version=OPSET,
                input_names=net.input_names, output_names=net.output_names,
                dynamic_axes=axes, do_constant_folding=True,
            )  # fmt: skip
        return without_identities(onnx.load_from_string(buffer.getvalue()))
    except Exception:  # the legacy exporter is gone or cannot trace: use the toolbox's
        from deeptoolbox.interop import export_onnx

        with tempfile.TemporaryDirectory() as folder, _quiet():
            path = export_onnx(net, Path(folder) / "float.onnx", opset=OPSET)
            return without_identities(onnx.load(str(path)))


def without_identities(model):
    """Remove Identity nodes (the exporter puts them on shared or folded weights): a weight
    that reaches its convolution through one cannot be quantized per channel."""
    outputs = {o.name for o in model.graph.output}
    renamed: dict[str, str] = {}
    kept = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.output[0] not in outputs:
            renamed[node.output[0]] = renamed.get(node.input[0], node.input[0])
        else:
            kept.append(node)
    for node in kept:
        for index, name in enumerate(node.input):
            if name in renamed:
                node.input[index] = renamed[name]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return model


def node_layer(node_name: str, layers: set[str]) -> str | None:
    """The layer a node comes from: "/conv1/Conv" (TorchScript) or "conv1/Add" (torch.export).

    Example:
        >>> node_layer("/conv1/Conv", {"conv1"}), node_layer("fc/Add", {"fc"}), node_layer("x", set())
        ('conv1', 'fc', None)
    """
    parts = node_name.strip("/").split("/")
    return parts[0] if parts and parts[0] in layers else None


def layer_nodes(model, net: Network) -> dict[str, list[str]]:
    """Node names of each layer, in graph order."""
    layers = set(net.layer_names)
    result: dict[str, list[str]] = {}
    for node in model.graph.node:
        layer = node_layer(node.name, layers)
        if layer is not None:
            result.setdefault(layer, []).append(node.name)
    return result


def layer_tensors(model, net: Network) -> dict[str, str]:
    """The ONNX tensor holding each layer's output (input layers: the graph inputs).

    A layer without nodes of its own (a BatchNorm folded into the convolution before it, a
    Dropout) shares the tensor of its source: that tensor holds the later layer's output.
    """
    layers = set(net.layer_names)
    result = {name: name for name in net.input_names}
    for node in model.graph.node:
        layer = node_layer(node.name, layers)
        if layer is not None and node.output:
            result[layer] = node.output[0]
    changed = True
    while changed:
        changed = False
        for name in net.layer_names:
            sources = [s for s in net.sources(name).values() if s]
            if name not in result and len(sources) == 1 and sources[0] in result:
                result[name] = result[sources[0]]
                changed = True
    return {name: result[name] for name in net.layer_names if name in result}


def float_tensors(model) -> list[str]:
    """Names of every float activation tensor (graph inputs and node outputs)."""
    onnx = require("onnx", "onnx", "Quantization")
    inferred = onnx.shape_inference.infer_shapes(model)
    float_type = onnx.TensorProto.FLOAT
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    types.update({v.name: v.type.tensor_type.elem_type for v in inferred.graph.input})
    types.update({v.name: v.type.tensor_type.elem_type for v in inferred.graph.output})
    initializers = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in initializers]
    names += [o for n in model.graph.node for o in n.output if o and o not in initializers]
    return [n for n in dict.fromkeys(names) if types.get(n) == float_type]


def session(model_bytes: bytes, *, threads: int | None = None, optimize: bool = True):
    """An onnxruntime CPU session on a serialized model."""
    ort = require("onnxruntime", "onnxruntime", "Running ONNX models")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def with_outputs(model, tensors: Sequence[str]):
    """A copy of ``model`` that also outputs ``tensors`` (to read intermediate values)."""
    onnx = require("onnx", "onnx", "Quantization")
    augmented = onnx.ModelProto()
    augmented.CopyFrom(model)
    present = {o.name for o in augmented.graph.output}
    existing = {i.name for i in augmented.graph.input}
    existing |= {o for node in augmented.graph.node for o in node.output}
    for name in tensors:
        if name not in present and name in existing:
            augmented.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
    return augmented


def feeds(run, net: Network, inputs: Sequence[torch.Tensor]) -> dict[str, np.ndarray]:
    """The inputs of a session (graph inputs the exporter dropped as unused are left out)."""
    wanted = {i.name for i in run.get_inputs()}
    return {
        name: x.detach().cpu().numpy().astype(np.float32)
        for name, x in zip(net.input_names, inputs, strict=True)
        if name in wanted
    }


def outputs_of(run) -> set[str]:
    return {o.name for o in run.get_outputs()}


def collect_statistics(
    model, net: Network, batches: Iterable[Sequence[torch.Tensor]], tensors: Sequence[str]
) -> dict[str, TensorStatistics]:
    """Min, max and histogram of ``tensors`` over the batches (two passes)."""
    run = session(with_outputs(model, tensors).SerializeToString(), optimize=False)
    tensors = [t for t in tensors if t in outputs_of(run)]
    stats = {name: TensorStatistics() for name in tensors}
    cached = [list(b) for b in batches]
    for observe in ("observe_range", "observe_histogram"):
        for inputs in cached:
            values = run.run(list(tensors), feeds(run, net, inputs))
            for name, value in zip(tensors, values, strict=True):
                getattr(stats[name], observe)(np.asarray(value, dtype=np.float32).ravel())
    return stats


def quantize_qdq(model, ranges: dict[str, tuple[float, float]], *, exclude: Sequence[str] = (),
                 only: Sequence[str] = ()):  # fmt: skip
    """Static QDQ int8 model: uint8 activations with the given ranges, int8 weights per channel.

    ``exclude`` nodes stay in float; with ``only``, just those nodes are quantized.
    """
    require("onnxruntime", "onnxruntime", "Quantization with the onnxruntime target")
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    data = TensorsData(CalibrationMethod.MinMax, {
        name: TensorData(lowest=np.float32(min(lo, 0.0)), highest=np.float32(max(hi, 0.0)))
        for name, (lo, hi) in ranges.items()
    })  # fmt: skip
    op_types = sorted(set(QDQRegistry) | set(QLinearOpsRegistry))
    with _quiet():
        quantizer = QDQQuantizer(
            _copy(model), True, False, QuantType.QInt8, QuantType.QUInt8, data,
            list(only), list(exclude), op_types, {"ActivationSymmetric": False},
        )  # fmt: skip
        quantizer.quantize_model()
    return quantizer.model.model


def _copy(model):
    onnx = require("onnx", "onnx", "Quantization")
    clone = onnx.ModelProto()
    clone.CopyFrom(model)
    return clone


def write_atomically(data: bytes, path: str | os.PathLike) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename (never half a file)."""
    path = Path(path)
    if path.suffix != ".onnx":
        raise CompressionError(
            f"A quantized network is written as an ONNX file; the path must end in '.onnx'. "
            f"Received: '{path}'."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return path
