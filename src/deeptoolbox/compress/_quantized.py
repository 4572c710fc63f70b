"""QuantizedNetwork: an int8 model that predicts, classifies, evaluates, saves and exports."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deeptoolbox.compress._errors import require
from deeptoolbox.compress._onnx_quant import session, write_atomically
from deeptoolbox.errors import CompressionError

METADATA_PREFIX = "deeptoolbox."


class QuantizedNetwork(nn.Module):
    """An int8 network: ``target="onnxruntime"`` (a QDQ ONNX model run in onnxruntime) or
    ``target="torch"`` (a torchao PT2E program: the simulated int8 model torch runs).

    It is an ``nn.Module`` whose forward takes and returns tensors, so
    :func:`~deeptoolbox.predict` and :func:`~deeptoolbox.evaluate` work on it as on any
    network; ``classify``, ``save`` / ``export`` (``.onnx``, or ``.pt2`` for the torch target)
    and ``size_bytes`` are here too. ``float_layers`` lists the layers kept in float.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> from deeptoolbox.compress import Quantizer
        >>> net = Network([L.FeatureInput(4), L.Dense(8), L.ReLU(), L.Dense(3), L.Softmax()],
        ...               classes=["a", "b", "c"])
        >>> quantizer = Quantizer(net)
        >>> _ = quantizer.calibrate(torch.randn(64, 4))
        >>> qnet = quantizer.quantize()
        >>> labels, scores = qnet.classify(torch.randn(5, 4))
        >>> labels.shape, scores.shape
        ((5,), torch.Size([5, 3]))
    """

    def __init__(
        self,
        engine: Any,
        *,
        name: str,
        classes: Sequence[str] | None,
        input_names: Sequence[str],
        output_names: Sequence[str],
        target: str,
        float_layers: Sequence[str] = (),
        calibration: Any = None,
        ends_in_softmax: bool = False,
    ) -> None:
        super().__init__()
        self._engine = engine
        self.name = name
        self.classes = list(classes) if classes is not None else None
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self.target = target
        self.float_layers = list(float_layers)
        self.calibration = calibration
        self.ends_in_softmax = ends_in_softmax
        self.sensitivity: dict[str, float] = {}
        self.metrics: dict[str, float] = {}
        self.learnables = 0  # of the float network it was made from
        self.macs: int | None = None  # multiply-accumulates per observation, likewise

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if len(inputs) != len(self.input_names):
            raise CompressionError(
                f"QuantizedNetwork '{self.name}' takes {len(self.input_names)} input(s) "
                f"({', '.join(self.input_names)}); received {len(inputs)}."
            )
        outputs = self._engine.run(self.input_names, inputs)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def predict(self, data: Any, *, batch_size: int = 128) -> torch.Tensor:
        """Outputs for ``data`` in batches (see :func:`deeptoolbox.predict`)."""
        from deeptoolbox.inference import predict

        return predict(self, data, batch_size=batch_size, device="cpu")

    def classify(self, data: Any, *, batch_size: int = 128) -> tuple[np.ndarray, torch.Tensor]:
        """``(labels, scores)`` as :func:`deeptoolbox.classify` gives them."""
        scores = self.predict(data, batch_size=batch_size)
        axis = -1 if scores.dim() <= 3 else 1
        if not self.ends_in_softmax:
            scores = torch.softmax(scores.float(), dim=axis)
        indices = scores.argmax(dim=axis).numpy()
        if self.classes is None:
            return indices, scores
        return np.asarray(self.classes)[indices], scores

    def evaluate(self, data: Any, metrics: Sequence[str] = ("accuracy",), **kw) -> dict:
        """Metrics on labelled ``data`` (see :func:`deeptoolbox.evaluate`)."""
        from deeptoolbox.training import evaluate

        return evaluate(self, data, metrics, **kw)

    @property
    def size_bytes(self) -> int:
        """Size of the saved model file in bytes."""
        return len(self._engine.serialized())

    def save(self, path: str | os.PathLike) -> Path:
        """Write the int8 model (``.onnx`` for onnxruntime, ``.pt2`` for torch), atomically."""
        return self._engine.save(path, self)

    export = save

    @classmethod
    def load(cls, path: str | os.PathLike) -> QuantizedNetwork:
        """Read an int8 ``.onnx`` file written by :meth:`save`.

        Example:
            >>> import os, tempfile, torch
            >>> from deeptoolbox import Network, layers as L
            >>> from deeptoolbox.compress import Quantizer
            >>> q = Quantizer(Network([L.FeatureInput(2), L.Dense(2)]))
            >>> _ = q.calibrate(torch.randn(16, 2))
            >>> path = q.quantize().save(os.path.join(tempfile.mkdtemp(), "q.onnx"))
            >>> QuantizedNetwork.load(path)(torch.zeros(1, 2)).shape
            torch.Size([1, 2])
        """
        onnx = require("onnx", "onnx", "Reading quantized ONNX files")
        path = Path(path)
        try:
            model = onnx.load(str(path))
        except Exception as err:
            raise CompressionError(f"Cannot read the quantized ONNX file '{path}': {err}") from err
        meta = {p.key[len(METADATA_PREFIX):]: p.value for p in model.metadata_props
                if p.key.startswith(METADATA_PREFIX)}  # fmt: skip
        network = cls(
            OnnxRuntimeEngine(model.SerializeToString()),
            name=meta.get("network", path.stem),
            classes=json.loads(meta["classes"]) if meta.get("classes") else None,
            input_names=[i.name for i in model.graph.input],
            output_names=[o.name for o in model.graph.output],
            target="onnxruntime",
            float_layers=json.loads(meta.get("float_layers", "[]")),
            ends_in_softmax=meta.get("ends_in_softmax") == "true",
        )
        network.learnables = int(meta.get("learnables", 0))
        network.macs = int(meta["macs"]) if meta.get("macs") else None
        return network

    def extra_repr(self) -> str:
        floats = f", float_layers={self.float_layers}" if self.float_layers else ""
        return f"'{self.name}', target={self.target!r}, {self.size_bytes:,} bytes{floats}"


class OnnxRuntimeEngine:
    """Runs a serialized QDQ ONNX model in onnxruntime."""

    def __init__(self, model_bytes: bytes, threads: int | None = None) -> None:
        self._bytes = model_bytes
        self._session = session(model_bytes, threads=threads)
        self._outputs = [o.name for o in self._session.get_outputs()]

    def run(self, names: Sequence[str], inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        feeds = {n: x.detach().cpu().float().numpy() for n, x in zip(names, inputs, strict=True)}
        self._check_shapes(feeds)
        return [torch.from_numpy(np.asarray(v)) for v in self._session.run(self._outputs, feeds)]

    def _check_shapes(self, feeds: dict[str, np.ndarray]) -> None:
        from deeptoolbox.errors import InputSizeError

        for spec in self._session.get_inputs():
            found = feeds[spec.name].shape if spec.name in feeds else None
            expected = [d if isinstance(d, int) else None for d in spec.shape]
            if found is None or (
                len(found) == len(expected)
                and all(e is None or e == f for e, f in zip(expected, found, strict=True))
            ):
                continue
            shown = " x ".join("N" if e is None else str(e) for e in expected)
            hint = (
                " Hint: the batch dimension is missing; add it with x.unsqueeze(0) for a "
                "tensor, x[None] for a numpy array."
                if len(found) == len(expected) - 1
                else ""
            )
            raise InputSizeError(
                f"QuantizedNetwork input '{spec.name}' expects a batch of size {shown}; "
                f"received a batch of size {tuple(found)}.{hint}"
            )

    def serialized(self) -> bytes:
        return self._bytes

    def save(self, path: str | os.PathLike, network: QuantizedNetwork) -> Path:
        onnx = require("onnx", "onnx", "Saving quantized ONNX files")
        model = onnx.load_from_string(self._bytes)
        values = {
            "network": network.name,
            "classes": json.dumps(network.classes) if network.classes is not None else "",
            "float_layers": json.dumps(network.float_layers),
            "ends_in_softmax": "true" if network.ends_in_softmax else "false",
            "quantization": "int8 static QDQ, per-channel weights",
            "learnables": str(network.learnables),
            "macs": "" if network.macs is None else str(network.macs),
        }
        keep = [p for p in model.metadata_props if not p.key.startswith(METADATA_PREFIX)]
        del model.metadata_props[:]
        model.metadata_props.extend(keep)
        for key, value in values.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = METADATA_PREFIX + key, value
        return write_atomically(model.SerializeToString(), path)
