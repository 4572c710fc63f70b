"""The torch engine: torchao's PT2E flow with the X86 Inductor quantizer.

The network is captured with ``torch.export`` (strict mode, layers called through their
``__call__`` so every operation knows its layer), observers are inserted by
``prepare_pt2e``, the calibration data runs through them, and ``convert_pt2e`` gives the
reference int8 program: quantize / dequantize operations around float kernels, i.e. the
simulated int8 network, which ``torch.compile`` lowers to int8 kernels on x86 CPUs.

Calibration methods here are torchao's observers: "minmax" (MinMaxObserver) and "mse"
(HistogramObserver, which searches the range with the smallest L2 quantization error).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from deeptoolbox.compress._calibration import CalibrationResult, LayerRange
from deeptoolbox.compress._ranges import TensorStatistics
from deeptoolbox.errors import CompressionError, MissingDependencyError, OptionError
from deeptoolbox.network import Network

TORCH_METHODS = ("minmax", "mse")
MINIMUM_TORCHAO = (0, 13)


def _torchao():
    try:
        import torchao
        from torchao.quantization.pt2e import quantize_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer
    except ImportError as err:
        raise MissingDependencyError(
            "Quantizer(target='torch') needs torchao >= 0.13 (PT2E quantization with the X86 "
            f"Inductor quantizer; tested with torchao 0.18 on torch 2.14), which cannot be "
            f'imported here ({err}). Install it with: pip install "deeptoolbox[compress]", '
            "or use target='onnxruntime'."
        ) from err
    version = tuple(int(p) for p in torchao.__version__.split(".")[:2] if p.isdigit())
    if version < MINIMUM_TORCHAO:
        raise MissingDependencyError(
            f"Quantizer(target='torch') needs torchao >= 0.13; found {torchao.__version__}. "
            "Upgrade it with: pip install -U torchao."
        )
    return quantize_pt2e, x86_inductor_quantizer


def _layer_of(node, layers: set[str]) -> str | None:
    stack = node.meta.get("nn_module_stack") or {}
    for path, _ in reversed(list(stack.values())):
        name = path.split(".")[-1] if path.startswith("layers.") else None
        if name in layers:
            return name
    return None


class TorchEngine:
    """Runs the converted PT2E program; saves it as a ``torch.export`` ``.pt2`` file."""

    def __init__(self, program: torch.fx.GraphModule, sample: Sequence[torch.Tensor]) -> None:
        self.program = program
        self._sample = [x[:2] for x in sample]
        self._bytes: bytes | None = None

    def run(self, names, inputs) -> list[torch.Tensor]:
        with torch.no_grad():
            output = self.program(*[x.float() for x in inputs])
        return list(output) if isinstance(output, tuple | list) else [output]

    def serialized(self) -> bytes:
        if self._bytes is None:
            batch = torch.export.Dim("batch", min=1)
            shapes = tuple({0: batch} for _ in self._sample)
            exported = torch.export.export(self.program, tuple(self._sample), dynamic_shapes=shapes)
            buffer = io.BytesIO()
            torch.export.save(exported, buffer)
            self._bytes = buffer.getvalue()
        return self._bytes

    def save(self, path: str | os.PathLike, network) -> Path:
        path = Path(path)
        if path.suffix != ".pt2":
            raise CompressionError(
                f"A network quantized with target='torch' is saved as a torch.export program; "
                f"the path must end in '.pt2'. Received: '{path}'."
            )
        data = self.serialized()
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            temporary.write_bytes(data)
            os.replace(temporary, path)
        finally:
            if temporary.exists():
                temporary.unlink()
        return path


class TorchBackend:
    """Quantization with torchao PT2E (X86 Inductor quantizer)."""

    def __init__(self, net: Network) -> None:
        _torchao()
        self.net = net
        self._batches: list = []
        self.method = "mse"

    def _config(self, method: str):
        _, x86 = _torchao()
        from torchao.quantization.pt2e import MinMaxObserver

        config = x86.get_default_x86_inductor_quantization_config()
        if method == "minmax":
            spec = dataclasses.replace(
                config.input_activation,
                observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-12),
            )
            config = dataclasses.replace(config, input_activation=spec, output_activation=spec)
        return config

    def _capture(self) -> torch.fx.GraphModule:
        net = copy.deepcopy(self.net).eval()
        net.classes = net.classes  # any edit drops the run plan and its remembered batch size
        sample = tuple(x[:2] for x in self._batches[0])
        batch = torch.export.Dim("batch", min=1)
        hooks = [m.register_forward_pre_hook(lambda *a: None) for m in net.layers.values()]
        try:  # hooks make layers run through __call__: operations then know their layer
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                exported = torch.export.export(
                    net, sample, dynamic_shapes=(tuple({0: batch} for _ in sample),), strict=True
                )
        except Exception as err:
            raise CompressionError(
                f"Network '{self.net.name}' cannot be quantized with target='torch': "
                f"torch.export cannot capture it ({str(err).splitlines()[0][:300]}). "
                "Use target='onnxruntime'."
            ) from err
        finally:
            for hook in hooks:
                hook.remove()
        return exported.module()

    def _prepared(self, float_layers: Sequence[str], only: Sequence[str]):
        quantize_pt2e, x86 = _torchao()
        quantizer = x86.X86InductorQuantizer()
        config = self._config(self.method)
        if only:
            for name in only:
                quantizer.set_module_name_qconfig(f"layers.{name}", config)
        else:
            quantizer.set_global(config)
        for name in float_layers:
            quantizer.set_module_name_qconfig(f"layers.{name}", None)
        prepared = quantize_pt2e.prepare_pt2e(self._capture(), quantizer)
        with torch.no_grad():
            for inputs in self._batches:
                prepared(*inputs)
        return prepared

    def quantizable_layers(self) -> list[str]:
        captured = self._capture() if self._batches else None
        if captured is None:
            raise CompressionError("quantizable_layers: call calibrate(data) first.")
        weighted = (torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default,
                    torch.ops.aten.linear.default)  # fmt: skip
        layers = set(self.net.layer_names)
        found = [_layer_of(n, layers) for n in captured.graph.nodes if n.target in weighted]
        return list(dict.fromkeys(n for n in found if n))

    def calibrate(self, batches, method: str, percentile: float) -> CalibrationResult:
        if method not in TORCH_METHODS:
            raise OptionError(
                f"calibrate: target='torch' calibrates with torchao's observers: 'minmax' "
                f"(MinMaxObserver) or 'mse' (HistogramObserver, smallest L2 error). Received: "
                f"method={method!r}; use target='onnxruntime' for 'percentile' and 'entropy'."
            )
        self._batches, self.method = batches, method
        prepared = self._prepared((), ())
        return self._table(prepared, method)

    def _table(self, prepared, method: str) -> CalibrationResult:
        layers = set(self.net.layer_names)
        rows: dict[str, LayerRange] = {}
        statistics: dict[str, TensorStatistics] = {}
        weights: dict[str, list[float]] = {}
        for node in prepared.graph.nodes:
            if node.op != "call_module" or not node.target.startswith("activation_post"):
                continue
            observer, source = getattr(prepared, node.target), node.args[0]
            if source.op == "get_attr":  # a weight: per-channel scales of its layer
                layer = next((_layer_of(u, layers) for u in node.users), None)
                if layer and observer.min_val.dim() == 1:
                    scale, _ = observer.calculate_qparams()
                    weights[layer] = [float(s) for s in scale]
                continue
            layer = _layer_of(source, layers)
            if source.op == "placeholder" and source.name.startswith("inputs_"):
                layer = self.net.input_names[int(source.name.split("_")[-1])]
            if layer is None or float(observer.min_val) > float(observer.max_val):
                continue
            scale, zero_point = (float(v) for v in observer.calculate_qparams())
            stats = TensorStatistics(float(observer.min_val), float(observer.max_val))
            histogram = getattr(observer, "histogram", None)
            if histogram is not None and histogram.numel():
                stats.counts = histogram.double().numpy()
                stats.edges = np.linspace(stats.minimum, stats.maximum, len(stats.counts) + 1)
            statistics[source.name] = stats
            rows[layer] = LayerRange(
                layer, source.name, stats.minimum, stats.maximum, (0 - zero_point) * scale,
                (255 - zero_point) * scale, scale, int(zero_point),
            )  # fmt: skip
        for layer, scales in weights.items():
            if layer in rows:
                rows[layer].weight_scales = scales
        order = {n: i for i, n in enumerate(["inputs_0", *self.net.layer_names])}
        ordered = dict(sorted(rows.items(), key=lambda kv: order.get(kv[0], 0)))
        tensors = {r.tensor: (r.low, r.high) for r in ordered.values()}
        return CalibrationResult(method, ordered, tensors, statistics, weight_scales=weights)

    def build(self, calibration, float_layers, only) -> TorchEngine:
        quantize_pt2e, _ = _torchao()
        prepared = self._prepared(float_layers, only)
        return TorchEngine(quantize_pt2e.convert_pt2e(prepared), self._batches[0])

    def layer_errors(self, quantized, batches) -> dict[str, float]:
        return {}  # the torch target reports the network's metric only

    def save_float(self, path) -> Path:
        path = Path(path)
        buffer = io.BytesIO()
        sample = tuple(x[:2] for x in self._batches[0])
        torch.export.save(torch.export.export(copy.deepcopy(self.net).eval(), sample), buffer)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            temporary.write_bytes(buffer.getvalue())
            os.replace(temporary, path)
        finally:
            if temporary.exists():
                temporary.unlink()
        return path
