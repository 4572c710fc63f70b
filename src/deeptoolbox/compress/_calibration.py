"""CalibrationResult: the dynamic range, scale and zero point of every layer, by layer name.

This is the public record of a calibration: the quantizers use it, and so can code
generators (per-tensor activation ranges and per-channel weight scales, in JSON).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from deeptoolbox.compress._ranges import (
    TensorStatistics,
    check_method,
    choose_range,
    uint8_parameters,
)
from deeptoolbox.errors import LayerNotFoundError


@dataclass
class LayerRange:
    """One layer's output range and int8 parameters.

    ``minimum``/``maximum`` were observed on the calibration data; ``low``/``high`` is the
    range the calibration method chose; ``scale``/``zero_point`` quantize it to uint8
    (``q = round(x / scale) + zero_point``). ``weight_scales`` holds one symmetric int8 scale
    per output channel (None for layers without weights).

    Example:
        >>> row = LayerRange("relu", "t", 0.0, 5.1, 0.0, 5.1, 0.02, 0)
        >>> row.to_dict()["dtype"], round(row.high / row.scale)
        ('uint8', 255)
    """

    layer: str
    tensor: str
    minimum: float
    maximum: float
    low: float
    high: float
    scale: float
    zero_point: int
    weight_scales: list[float] | None = None

    def to_dict(self) -> dict:
        """JSON-ready values."""
        return {
            "tensor": self.tensor, "minimum": self.minimum, "maximum": self.maximum,
            "low": self.low, "high": self.high, "scale": self.scale,
            "zero_point": self.zero_point, "dtype": "uint8",
            "weight_scales": self.weight_scales, "weight_dtype": "int8",
        }  # fmt: skip


@dataclass
class CalibrationResult:
    """What :meth:`Quantizer.calibrate` returns: a :class:`LayerRange` per layer.

    ``result["conv1"]`` is a layer's row (``weight_scales`` maps each layer with weights to
    its per-output-channel int8 scales), ``print(result)`` the table, ``result.to_dict()``
    / ``result.save("ranges.json")`` the JSON form, ``result.plot("ranges.png")`` the range
    histograms (the Deep Network Quantizer's view) and ``result.with_method("percentile")``
    the ranges another method chooses from the same statistics.

    Example:
        >>> import numpy as np
        >>> from deeptoolbox.compress._ranges import TensorStatistics
        >>> stats = TensorStatistics(); values = np.linspace(-1, 3, 1000)
        >>> stats.observe_range(values); stats.observe_histogram(values)
        >>> result = CalibrationResult.from_statistics("minmax", {"fc": "t"}, {"t": stats})
        >>> result["fc"].low, result["fc"].high, result["fc"].zero_point
        (-1.0, 3.0, 64)
    """

    method: str
    layers: dict[str, LayerRange] = field(default_factory=dict)
    tensors: dict[str, tuple[float, float]] = field(default_factory=dict)
    statistics: dict[str, TensorStatistics] = field(default_factory=dict, repr=False)
    percentile: float = 99.99
    weight_scales: dict[str, list[float]] = field(default_factory=dict, repr=False)
    _layer_tensors: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_statistics(
        cls,
        method: str,
        layer_tensors: dict[str, str],
        statistics: dict[str, TensorStatistics],
        weight_scales: dict[str, list[float]] | None = None,
        percentile: float = 99.99,
    ) -> CalibrationResult:
        """Choose every tensor's range with ``method`` and gather the layer rows."""
        check_method(method, "calibrate")
        tensors = {n: choose_range(s, method, percentile) for n, s in statistics.items()}
        weight_scales = weight_scales or {}
        layers = {}
        for layer, tensor in layer_tensors.items():
            if tensor not in statistics:
                continue
            stats, (low, high) = statistics[tensor], tensors[tensor]
            scale, zero_point = uint8_parameters(low, high)
            layers[layer] = LayerRange(
                layer, tensor, stats.minimum, stats.maximum, float(low), float(high),
                scale, zero_point, weight_scales.get(layer),
            )  # fmt: skip
        return cls(method, layers, tensors, statistics, percentile, dict(weight_scales),
                   dict(layer_tensors))  # fmt: skip

    def with_method(self, method: str, percentile: float | None = None) -> CalibrationResult:
        """The same statistics, ranges chosen by another method.

        Example:
            >>> import numpy as np
            >>> from deeptoolbox.compress._ranges import TensorStatistics
            >>> stats = TensorStatistics(); values = np.append(np.linspace(0, 1, 9999), 100.0)
            >>> stats.observe_range(values); stats.observe_histogram(values)
            >>> result = CalibrationResult.from_statistics("minmax", {"fc": "t"}, {"t": stats})
            >>> result.with_method("percentile")["fc"].high < 2
            True
        """
        return CalibrationResult.from_statistics(
            method, self._layer_tensors, self.statistics, self.weight_scales,
            self.percentile if percentile is None else percentile,
        )  # fmt: skip

    def __getitem__(self, layer: str) -> LayerRange:
        if layer not in self.layers:
            raise LayerNotFoundError(
                f"The calibration has no range for layer {layer!r}. Layers with ranges: "
                f"{list(self.layers)}."
            )
        return self.layers[layer]

    def __iter__(self):
        return iter(self.layers.values())

    def __len__(self) -> int:
        return len(self.layers)

    def to_dict(self) -> dict:
        """``{"method": ..., "layers": {name: {...}}}`` with JSON values only."""
        return {
            "format": "deeptoolbox.calibration",
            "method": self.method,
            "layers": {name: row.to_dict() for name, row in self.layers.items()},
            "weight_scales": self.weight_scales,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_dict` as JSON (atomically: a failed write leaves no half file)."""
        path = Path(path)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            temporary.write_text(json.dumps(self.to_dict(), indent=2))
            os.replace(temporary, path)
        finally:
            if temporary.exists():
                temporary.unlink()
        return path

    def __str__(self) -> str:
        lines = [
            f"Calibration ({self.method}): {len(self.layers)} layers",
            f"  {'layer':<18} {'observed min':>12} {'observed max':>12} {'low':>10} "
            f"{'high':>10} {'scale':>10} {'zp':>4} {'weights':>8}",
        ]
        for r in self.layers.values():
            weights = "-" if r.weight_scales is None else f"{len(r.weight_scales)} ch"
            lines.append(
                f"  {r.layer:<18} {r.minimum:>12.4g} {r.maximum:>12.4g} {r.low:>10.4g} "
                f"{r.high:>10.4g} {r.scale:>10.4g} {r.zero_point:>4} {weights:>8}"
            )
        return "\n".join(lines)

    def plot(self, path: str | os.PathLike = "calibration.png", *, layers=None) -> Path:
        """Draw each layer's histogram with the chosen range (the Deep Network Quantizer view)."""
        from deeptoolbox.compress._plots import plot_ranges

        return plot_ranges(self, path, layers=layers)
