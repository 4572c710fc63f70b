"""Quantizer (MATLAB's dlquantizer: calibrate, validate, quantize) and the accuracy-targeted
:func:`quantize`, which keeps the most sensitive layers in float."""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeptoolbox.compress._calibration import CalibrationResult
from deeptoolbox.compress._data import input_batches
from deeptoolbox.compress._onnx_quant import (
    collect_statistics,
    feeds,
    float_model,
    float_tensors,
    layer_nodes,
    layer_tensors,
    outputs_of,
    quantize_qdq,
    session,
    with_outputs,
    write_atomically,
)
from deeptoolbox.compress._placeholders import check_no_placeholders
from deeptoolbox.compress._quantized import OnnxRuntimeEngine, QuantizedNetwork
from deeptoolbox.compress._ranges import check_method, int8_weight_scales
from deeptoolbox.errors import CompressionError, OptionError
from deeptoolbox.layers import Softmax
from deeptoolbox.layers._base import layer_type_name
from deeptoolbox.network import Network

TARGETS = ("onnxruntime", "torch")
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
LOWER_IS_BETTER = ("rmse", "mae", "loss")


def _check_network(net: Any) -> Network:
    if not isinstance(net, Network):
        raise OptionError(
            f"Quantizer works on a deeptoolbox Network. Received: {type(net).__name__}. Bring a "
            "torch model in first with deeptoolbox.from_torch(model, sample_input)."
        )
    check_no_placeholders(net, "quantize", opaque=True)
    net.initialize()
    return net


@dataclass
class Validation:
    """What :meth:`Quantizer.validate` returns: the metric of the float and int8 networks.

    ``drop`` is how much worse the int8 network is (positive: worse), whatever the metric's
    direction; ``layer_errors`` the relative RMS error of each layer's output.

    Example:
        >>> Validation("accuracy", 0.98, 0.97).drop
        0.010000000000000009
        >>> Validation("rmse", 0.10, 0.12).drop > 0
        True
    """

    metric: str
    float_value: float
    quantized_value: float
    layer_errors: dict[str, float] = field(default_factory=dict)

    @property
    def drop(self) -> float:
        sign = -1 if self.metric in LOWER_IS_BETTER else 1
        return sign * (self.float_value - self.quantized_value)

    def __str__(self) -> str:
        lines = [
            f"{self.metric}: float {self.float_value:.4f}, int8 {self.quantized_value:.4f} "
            f"(drop {self.drop:+.4f})"
        ]
        if self.layer_errors:
            lines.append("  relative output error per layer:")
            lines += [f"    {k:<20} {v:.4f}" for k, v in self.layer_errors.items()]
        return "\n".join(lines)


class Quantizer:
    """Quantize a network to int8 (MATLAB's ``dlquantizer``): calibrate, validate, quantize.

    ``target="onnxruntime"`` (default) makes a static QDQ int8 ONNX model with per-channel
    int8 weights and uint8 activations, run by onnxruntime's int8 kernels.
    ``target="torch"`` uses torchao's PT2E flow with the X86 Inductor quantizer.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> torch.manual_seed(0) and None
        >>> net = Network([L.FeatureInput(4), L.Dense(16, name="fc1"), L.ReLU(),
        ...                L.Dense(3, name="fc2"), L.Softmax()])
        >>> quantizer = Quantizer(net)
        >>> ranges = quantizer.calibrate(torch.randn(256, 4))
        >>> ranges["fc1"].scale > 0
        True
        >>> x = torch.randn(64, 4); y = net(x).argmax(1)
        >>> quantizer.validate((x, y)).quantized_value > 0.9
        True
        >>> quantizer.quantize().size_bytes > 0
        True
    """

    def __init__(
        self,
        net: Network,
        target: str = "onnxruntime",
        *,
        method: str = "minmax",
        percentile: float = 99.99,
        exclude: Sequence[str] = (),
    ) -> None:
        self.network = _check_network(net)
        if target not in TARGETS:
            raise OptionError(
                f"Quantizer: `target` must be 'onnxruntime' or 'torch'. Received: {target!r}."
            )
        self.target = target
        self.method = check_method(method, "Quantizer")
        if (
            isinstance(percentile, bool)
            or not isinstance(percentile, int | float)
            or not (50 < percentile < 100)
        ):
            raise OptionError(
                f"Quantizer: `percentile` must be a number in (50, 100). Received: {percentile!r}."
            )
        self.percentile = float(percentile)
        for name in exclude:
            net.layer(name)  # an unknown name raises LayerNotFoundError, naming it
        self.exclude = list(exclude)
        self.calibration: CalibrationResult | None = None
        self._sample: list[torch.Tensor] | None = None
        self._backend = _make_backend(target, self.network)

    def calibrate(
        self, data: Any, *, method: str | None = None, batch_size: int = 128,
        observations: int | None = None,
    ) -> CalibrationResult:  # fmt: skip
        """Run ``data`` through the network and record every layer's range (MATLAB's
        ``calibrate``); returns the :class:`CalibrationResult` table."""
        method = check_method(method or self.method, "calibrate")
        batches = list(
            input_batches(self.network, data, batch_size, "calibrate: `data`", limit=observations)
        )
        if not batches:
            raise OptionError("calibrate: `data` holds no observations.")
        self.calibration = self._backend.calibrate(batches, method, self.percentile)
        self._sample = [x[:1] for x in batches[0]]
        return self.calibration

    def _require_calibration(self, where: str) -> CalibrationResult:
        if self.calibration is None:
            raise CompressionError(f"{where}: call calibrate(data) first.")
        return self.calibration

    def quantizable_layers(self) -> list[str]:
        """Layers with weights that the target turns into int8 operations."""
        return self._backend.quantizable_layers()

    def save_float(self, path: str | os.PathLike) -> Path:
        """Write the float model the quantization starts from (``.onnx`` for onnxruntime)."""
        return self._backend.save_float(path)

    def quantize(
        self, *, float_layers: Sequence[str] = (), only: Sequence[str] = ()
    ) -> QuantizedNetwork:
        """The int8 network (MATLAB's ``quantize``); ``float_layers`` stay in float, and with
        ``only`` just those layers are quantized."""
        calibration = self._require_calibration("quantize")
        for name in (*float_layers, *only):
            self.network.layer(name)
        floats = list(dict.fromkeys([*self.exclude, *float_layers]))
        engine = self._backend.build(calibration, floats, list(only))
        net = self.network
        ends = len(net.output_names) == 1 and isinstance(net.layer(net.output_names[0]), Softmax)
        quantized = QuantizedNetwork(
            engine, name=net.name, classes=net.classes, input_names=net.input_names,
            output_names=net.output_names, target=self.target, float_layers=floats,
            calibration=calibration, ends_in_softmax=ends,
        )  # fmt: skip
        quantized.learnables = sum(p.numel() for p in net.parameters())
        if self._sample is not None:
            from deeptoolbox.compress._report import multiply_accumulates

            quantized.macs = multiply_accumulates(net, self._sample)
        return quantized

    def validate(
        self, data: Any, metric: str = "accuracy", *, quantized: QuantizedNetwork | None = None,
        layer_errors: bool = True,
    ) -> Validation:  # fmt: skip
        """The metric of the float and the int8 network on ``data`` side by side (MATLAB's
        ``validate``), with the relative output error of each layer."""
        from deeptoolbox.training import evaluate

        quantized = quantized or self.quantize()
        float_value = evaluate(self.network, data, [metric])[metric]
        quantized_value = evaluate(quantized, data, [metric])[metric]
        errors = {}
        if layer_errors:
            batches = list(input_batches(self.network, data, 128, "validate: `data`", limit=512))
            errors = self._backend.layer_errors(quantized, batches)
        return Validation(metric, float(float_value), float(quantized_value), errors)

    def sensitivity(self, data: Any, metric: str = "accuracy") -> dict[str, float]:
        """The metric drop when each layer alone is quantized, most sensitive first."""
        reference = Validation(metric, 0.0, 0.0)
        from deeptoolbox.training import evaluate

        base = float(evaluate(self.network, data, [metric])[metric])
        drops = {}
        for name in self.quantizable_layers():
            value = float(evaluate(self.quantize(only=[name]), data, [metric])[metric])
            reference.float_value, reference.quantized_value = base, value
            drops[name] = reference.drop
        return dict(sorted(drops.items(), key=lambda item: -item[1]))


def _make_backend(target: str, net: Network):
    if target == "torch":
        from deeptoolbox.compress._torch_quant import TorchBackend

        return TorchBackend(net)
    return OnnxRuntimeBackend(net)


class OnnxRuntimeBackend:
    """Static QDQ int8 through onnxruntime's quantization tooling."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self._model = None

    @property
    def model(self):
        if self._model is None:
            self._model = float_model(copy.deepcopy(self.net))
            self.nodes = layer_nodes(self._model, self.net)
            self.tensors = layer_tensors(self._model, self.net)
        return self._model

    def save_float(self, path) -> Path:
        return write_atomically(self.model.SerializeToString(), path)

    def quantizable_layers(self) -> list[str]:
        model = self.model
        weighted = {n.name for n in model.graph.node if n.op_type in WEIGHTED_OPS}
        return [layer for layer, nodes in self.nodes.items() if weighted & set(nodes)]

    def calibrate(self, batches, method: str, percentile: float) -> CalibrationResult:
        model = self.model
        self._check_export(batches[0])
        statistics = collect_statistics(model, self.net, batches, float_tensors(model))
        return CalibrationResult.from_statistics(
            method, self.tensors, statistics, self._weight_scales(), percentile
        )

    def _weight_scales(self) -> dict[str, list[float]]:
        from onnx import numpy_helper

        initializers = {t.name: t for t in self.model.graph.initializer}
        by_name = {n.name: n for n in self.model.graph.node}
        scales = {}
        for layer in self.quantizable_layers():
            for node_name in self.nodes[layer]:
                node = by_name[node_name]
                weighted = node.op_type in WEIGHTED_OPS and len(node.input) > 1
                if weighted and node.input[1] in initializers:
                    weight = numpy_helper.to_array(initializers[node.input[1]])
                    if node.op_type == "MatMul":
                        weight = weight.T
                    if weight.ndim >= 2:
                        scales[layer] = [float(s) for s in int8_weight_scales(weight)]
        return scales

    def _check_export(self, inputs) -> None:
        """Compare every layer's ONNX output with torch's on one batch: a layer that does not
        survive the export (Python or numpy code in forward...) is named."""
        last = {self.tensors[n]: n for n in self.net.layer_names if n in self.tensors}
        names = list(last.values())  # a shared tensor holds the last sharing layer's output
        captured: dict[str, torch.Tensor] = {}
        handles = [
            self.net.layer(n).register_forward_hook(
                lambda m, i, o, n=n: captured.__setitem__(n, o.detach())
            )
            for n in names
        ]
        try:
            with torch.no_grad():
                self.net.eval()(*inputs)
        finally:
            for handle in handles:
                handle.remove()
        run = session(with_outputs(self.model, list(last)).SerializeToString(), optimize=False)
        tensors = [t for t in last if t in outputs_of(run)]
        values = dict(zip(tensors, run.run(tensors, feeds(run, self.net, inputs)), strict=True))
        for name in names:
            if name not in captured or self.tensors[name] not in values:
                continue
            expected = captured[name].float().numpy()
            got = values[self.tensors[name]]
            same = got.shape == expected.shape and np.allclose(
                got, expected, rtol=1e-3, atol=1e-4 * (1 + np.abs(expected).max())
            )
            if not same:
                found = (
                    f"largest difference {np.abs(got - expected).max():.3g}"
                    if got.shape == expected.shape
                    else f"size {got.shape} instead of {expected.shape}"
                )
                culprit = self._culprit(name)
                raise CompressionError(
                    f"Layer '{culprit}' ({layer_type_name(self.net.layer(culprit))}) cannot be "
                    "quantized with the onnxruntime target: its ONNX export computes something "
                    f"else ({found}). Its forward probably uses Python or numpy code that "
                    "tracing cannot follow; write it with torch operations, or replace the layer."
                )

    def _culprit(self, name: str) -> str:
        """The layer to blame for a wrong output at ``name``: a layer of one's own above it
        that left no ONNX operation (it was traced as a constant), else ``name`` itself."""
        seen, queue, suspects = set(), [name], []
        while queue:
            current = queue.pop()
            for source in self.net.sources(current).values():
                if source and source not in seen:
                    seen.add(source)
                    queue.append(source)
                    if source not in self.nodes and source not in self.net.input_names:
                        suspects.append(source)
        own = [s for s in suspects if not type(self.net.layer(s)).__module__.startswith(
            "deeptoolbox.")]  # fmt: skip
        return own[0] if own else name

    def build(self, calibration: CalibrationResult, float_layers, only) -> OnnxRuntimeEngine:
        model = self.model
        exclude = [node for layer in float_layers for node in self.nodes.get(layer, [])]
        chosen = [node for layer in only for node in self.nodes.get(layer, [])]
        if only and not chosen:
            raise CompressionError(f"quantize: layers {list(only)} have no operations to quantize.")
        quantized = quantize_qdq(model, calibration.tensors, exclude=exclude, only=chosen)
        return OnnxRuntimeEngine(quantized.SerializeToString())

    def layer_errors(self, quantized: QuantizedNetwork, batches) -> dict[str, float]:
        """Relative RMS difference of each layer's output between float and int8 runs."""
        float_bytes = self.model.SerializeToString()
        int8 = quantized._engine.serialized()
        import onnx

        present = {o for n in onnx.load_from_string(int8).graph.node for o in n.output}
        last = {t: layer for layer, t in self.tensors.items() if layer not in self.net.input_names}
        pairs = []  # (layer, float tensor, int8 tensor): what the next layer reads in int8
        for t, layer in last.items():
            dequantized = f"{t}_DequantizeLinear_Output"
            if dequantized in present or t in present:
                pairs.append((layer, t, dequantized if dequantized in present else t))
        runs = [
            session(with_outputs(onnx.load_from_string(b), [p[i] for p in pairs])
                    .SerializeToString(), optimize=False)
            for b, i in ((float_bytes, 1), (int8, 2))
        ]  # fmt: skip
        squared = {layer: [0.0, 0.0] for layer, _, _ in pairs}
        for inputs in batches:
            reference = runs[0].run([p[1] for p in pairs], feeds(runs[0], self.net, inputs))
            approximate = runs[1].run([p[2] for p in pairs], feeds(runs[1], self.net, inputs))
            for (layer, _, _), a, b in zip(pairs, reference, approximate, strict=True):
                squared[layer][0] += float(np.sum((a - b) ** 2))
                squared[layer][1] += float(np.sum(a**2))
        order = {n: i for i, n in enumerate(self.net.layer_names)}
        return {layer: (e / r) ** 0.5 if r else 0.0
                for layer, (e, r) in sorted(squared.items(), key=lambda kv: order[kv[0]])}  # fmt: skip


def quantize(
    net: Network,
    calibration_data: Any,
    validation_data: Any = None,
    *,
    max_accuracy_drop: float | None = None,
    metric: str = "accuracy",
    target: str = "onnxruntime",
    method: str = "minmax",
    exclude: Sequence[str] = (),
) -> QuantizedNetwork:
    """Quantize ``net`` to int8 in one call; with ``max_accuracy_drop``, keep the most
    sensitive layers in float until the metric on ``validation_data`` drops by no more.

    Sensitivity is measured by quantizing one layer at a time; layers are then returned to
    float, most sensitive first, until the target is met. The result's ``float_layers`` says
    which stayed float, ``sensitivity`` the drop each layer causes alone and ``metrics`` the
    float and final values.

    Raises:
        CompressionError: the target cannot be met even with every layer in float, or a layer
            no backend supports.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> torch.manual_seed(0) and None
        >>> net = Network([L.FeatureInput(4), L.Dense(16), L.ReLU(), L.Dense(3), L.Softmax()])
        >>> x = torch.randn(200, 4); y = net(x).argmax(1)
        >>> qnet = quantize(net, x, (x, y), max_accuracy_drop=0.02)
        >>> qnet.metrics["accuracy_drop"] <= 0.02
        True
    """
    quantizer = Quantizer(net, target, method=method, exclude=exclude)
    quantizer.calibrate(calibration_data)
    if max_accuracy_drop is None:
        return quantizer.quantize()
    if validation_data is None:
        raise OptionError("quantize: `max_accuracy_drop` needs `validation_data` with targets.")
    if (
        isinstance(max_accuracy_drop, bool)
        or not isinstance(max_accuracy_drop, int | float)
        or (max_accuracy_drop < 0)
    ):
        raise OptionError(
            f"quantize: `max_accuracy_drop` must be a number >= 0. Received: {max_accuracy_drop!r}."
        )
    return _meet_target(quantizer, validation_data, float(max_accuracy_drop), metric)


def _meet_target(quantizer: Quantizer, data: Any, target: float, metric: str) -> QuantizedNetwork:
    quantized = quantizer.quantize()
    result = quantizer.validate(data, metric, quantized=quantized, layer_errors=False)
    sensitivity: dict[str, float] = {}
    floats: list[str] = []
    if result.drop > target + 1e-12:
        sensitivity = quantizer.sensitivity(data, metric)
        for layer in sensitivity:
            floats.append(layer)
            quantized = quantizer.quantize(float_layers=floats)
            result = quantizer.validate(data, metric, quantized=quantized, layer_errors=False)
            if result.drop <= target + 1e-12:
                break
        else:
            raise CompressionError(
                f"quantize: the {metric} drop stays {result.drop:.4f} > {target} even with "
                f"every layer in float ({floats}); the rest of the network loses accuracy in "
                "int8. Raise max_accuracy_drop or calibrate with more representative data."
            )
    quantized.sensitivity = sensitivity
    quantized.metrics = {
        f"float_{metric}": result.float_value,
        metric: result.quantized_value,
        f"{metric}_drop": result.drop,
    }
    return quantized
