"""report(): learnables, file size, multiply-accumulates, CPU latency and the metric, before and
after compression, with a per-layer table; printed as a table and drawn as a picture."""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deeptoolbox.compress._data import input_batches
from deeptoolbox.compress._onnx_quant import float_model, session
from deeptoolbox.compress._quantized import QuantizedNetwork
from deeptoolbox.errors import OptionError
from deeptoolbox.layers._base import layer_type_name
from deeptoolbox.network import Network


def learnables(model: nn.Module) -> int:
    """Learnable values of a network (for a quantized one: those of the network it came from)."""
    if isinstance(model, QuantizedNetwork):
        return int(model.learnables)
    return sum(p.numel() for p in model.parameters())


def multiply_accumulates(net: Network, sample: Sequence[torch.Tensor]) -> int:
    """Multiply-accumulates of one observation, from torch's FLOP counter (FLOPs / 2).

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> multiply_accumulates(Network([L.FeatureInput(4), L.Dense(3)]), [torch.zeros(1, 4)])
        12
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    was_training = net.training
    net.eval()
    try:
        with counter, torch.no_grad():
            net(*[x[:1] for x in sample])
    finally:
        net.train(was_training)
    return int(counter.get_total_flops() // 2)


def file_size(model: nn.Module) -> int:
    """Bytes on disk: the saved zip of a Network, the model file of a quantized network."""
    if isinstance(model, QuantizedNetwork):
        return model.size_bytes
    from deeptoolbox.network import save

    with tempfile.TemporaryDirectory() as folder:
        return save(model, Path(folder) / "network.zip").stat().st_size


@contextlib.contextmanager
def _threads(count: int | None):
    if count is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _runners(model: nn.Module, threads: int | None) -> dict[str, Any]:
    """Callables running one batch: "eager" (torch) and "onnxruntime" where they apply."""
    runners: dict[str, Any] = {}
    if isinstance(model, QuantizedNetwork):
        if model.target == "onnxruntime":
            from deeptoolbox.compress._quantized import OnnxRuntimeEngine

            engine = OnnxRuntimeEngine(model._engine.serialized(), threads=threads)
            runners["onnxruntime"] = lambda xs: engine.run(model.input_names, xs)
        else:
            runners["eager"] = lambda xs: model(*xs)
        return runners
    model.eval()

    def eager(xs):
        with torch.inference_mode():
            return model(*xs)

    runners["eager"] = eager
    with contextlib.suppress(Exception):  # no onnx installed, or a layer that does not export
        run = session(float_model(model).SerializeToString(), threads=threads)
        names = [i.name for i in run.get_inputs()]
        runners["onnxruntime"] = lambda xs: run.run(
            None, {n: x.numpy() for n, x in zip(names, xs, strict=False)}
        )
    return runners


def measure_latency(
    models: dict[str, nn.Module], sample: Sequence[torch.Tensor], *,
    batch_sizes: Sequence[int] = (1, 32), repetitions: int = 20, threads: int | None = 1,
) -> dict[tuple[str, str, int], float]:  # fmt: skip
    """Median seconds per batch for every (model, engine, batch size), repetitions interleaved
    (each round runs every combination once, so load changes hit all of them alike).

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(4), L.Dense(2)])
        >>> times = measure_latency({"net": net}, [torch.zeros(1, 4)], batch_sizes=(1,),
        ...                         repetitions=2)
        >>> sorted(times)
        [('net', 'eager', 1), ('net', 'onnxruntime', 1)]
    """
    cases = []
    with _threads(threads):
        for label, model in models.items():
            for engine, run in _runners(model, threads).items():
                for size in batch_sizes:
                    batch = [x[:1].expand(size, *x.shape[1:]).contiguous() for x in sample]
                    run(batch)  # warm up
                    cases.append(((label, engine, size), run, batch))
        times: dict[tuple[str, str, int], list[float]] = {key: [] for key, _, _ in cases}
        for _ in range(repetitions):
            for key, run, batch in cases:
                start = time.perf_counter()
                run(batch)
                times[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


@dataclass
class ModelSummary:
    """The numbers of one model in a :class:`CompressionReport`.

    Example:
        >>> ModelSummary("int8", learnables=1000, size_bytes=1200, macs=900, metric=0.97).label
        'int8'
    """

    label: str
    learnables: int
    size_bytes: int
    macs: int | None
    metric: float | None


@dataclass
class CompressionReport:
    """What :func:`report` returns; ``print(r)`` shows the tables, ``r.plot(path)`` draws them.

    ``latency[(label, engine, batch)]`` is the median seconds per batch ("eager" is torch,
    "onnxruntime" the ONNX model: float for a Network, int8 for a quantized network).

    Example:
        >>> r = CompressionReport("accuracy", [ModelSummary("original", 100, 2000, 50, 0.9),
        ...                                    ModelSummary("compressed", 40, 900, 20, 0.89)])
        >>> r.ratio("learnables"), r.ratio("size_bytes")
        (2.5, 2.2222222222222223)
    """

    metric: str
    models: list[ModelSummary]
    latency: dict[tuple[str, str, int], float] = field(default_factory=dict)
    layers: list[tuple[str, str, int, str, int]] = field(default_factory=list)
    threads: int | None = 1

    def ratio(self, attribute: str) -> float:
        """Original value / compressed value of ``learnables``, ``size_bytes`` or ``macs``."""
        before, after = (getattr(m, attribute) for m in self.models[:2])
        return before / after if before and after else float("nan")

    def __str__(self) -> str:
        first, second = self.models[0], self.models[1]
        rows = [
            ("learnables", f"{first.learnables:,}", f"{second.learnables:,}",
             f"{self.ratio('learnables'):.2f}x fewer"),
            ("file size", f"{first.size_bytes / 1024:,.1f} KiB",
             f"{second.size_bytes / 1024:,.1f} KiB", f"{self.ratio('size_bytes'):.2f}x smaller"),
        ]  # fmt: skip
        if first.macs and second.macs:
            rows.append(("MACs / observation", f"{first.macs:,}", f"{second.macs:,}",
                         f"{self.ratio('macs'):.2f}x fewer"))  # fmt: skip
        if first.metric is not None and second.metric is not None:
            rows.append((self.metric, f"{first.metric:.4f}", f"{second.metric:.4f}",
                         f"{second.metric - first.metric:+.4f}"))  # fmt: skip
        for engine, size in sorted({(e, b) for _, e, b in self.latency}):
            values = [self.latency.get((m.label, engine, size)) for m in self.models[:2]]
            cells = [f"{v * 1e3:.3f} ms" if v is not None else "-" for v in values]
            change = f"{values[1] / values[0]:.2f}x" if None not in values else ""
            rows.append((f"latency {engine}, batch {size}", *cells, change))
        best = {b: min((v, k) for k, v in self.latency.items() if k[2] == b)
                for b in {k[2] for k in self.latency}}  # fmt: skip
        for size, (value, (label, engine, _)) in sorted(best.items()):
            reference = self.latency.get((first.label, "eager", size))
            if reference:
                rows.append((f"fastest, batch {size}", f"{label} ({engine})", f"{value * 1e3:.3f} ms",
                             f"{reference / value:.2f}x vs eager"))  # fmt: skip
        widths = [max(len(r[i]) for r in [("", first.label, second.label, ""), *rows])
                  for i in range(4)]  # fmt: skip
        header = ("", first.label, second.label, "change")
        lines = [f"Compression report (CPU, {self.threads or 'all'} thread(s), medians of "
                 "interleaved runs)"]  # fmt: skip
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                  for r in [header, *rows]]  # fmt: skip
        if self.layers:
            lines.append("  per layer:")
            for name, kind, before, after_kind, after in self.layers:
                lines.append(f"    {name:<20} {kind:<16} {before:>10,} -> {after:>10,}  "
                             f"{after_kind}")  # fmt: skip
        return "\n".join(lines)

    def plot(self, path: str | os.PathLike = "compression-report.png") -> Path:
        """Bars of learnables, file size, MACs and latency, original beside compressed."""
        from deeptoolbox.compress._plots import plot_report

        return plot_report(self, path)


def _layer_table(original: nn.Module, compressed: nn.Module) -> list:
    if not isinstance(original, Network):
        return []
    if isinstance(compressed, QuantizedNetwork) and compressed.learnables != learnables(original):
        return []  # quantized from another (pruned, projected) version: no layer-by-layer match
    rows = []
    for name in original.layer_names:
        before = original.layer(name)
        count = sum(p.numel() for p in before.parameters())
        if not count:
            continue
        if isinstance(compressed, Network) and name in compressed.layer_names:
            after = compressed.layer(name)
            rows.append((name, layer_type_name(before), count, layer_type_name(after),
                         sum(p.numel() for p in after.parameters())))  # fmt: skip
        elif isinstance(compressed, QuantizedNetwork):
            kind = "float" if name in compressed.float_layers else "int8"
            rows.append((name, layer_type_name(before), count, kind, count))
    return rows


def _metric(model: nn.Module, data: Any, metric: str | None) -> float | None:
    if metric is None:
        return None
    from deeptoolbox.training import evaluate

    return float(evaluate(model, data, [metric])[metric])


def report(
    original: nn.Module,
    compressed: nn.Module,
    data: Any = None,
    *,
    metric: str | None = "accuracy",
    labels: tuple[str, str] = ("original", "compressed"),
    batch_sizes: Sequence[int] = (1, 32),
    repetitions: int = 20,
    threads: int | None = 1,
    sample: Sequence[torch.Tensor] | torch.Tensor | None = None,
) -> CompressionReport:
    """Compare a network with its compressed version (pruned, projected or quantized).

    Measures learnables, the file size, multiply-accumulates per observation (torch's FLOP
    counter), CPU latency (torch eager and ONNX Runtime, each batch size, repetitions
    interleaved, median, on ``threads`` threads) and ``metric`` on labelled ``data``
    (``metric=None`` or ``data=None`` skips it). ``sample`` is an input batch for timing
    (default: the first batch of ``data``).

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> from deeptoolbox.compress import prune
        >>> net = Network([L.FeatureInput(8), L.Dense(32), L.ReLU(), L.Dense(2)])
        >>> small = prune(net, ratio=0.5).network
        >>> x = torch.randn(64, 8); y = torch.randint(0, 2, (64,))
        >>> r = report(net, small, (x, y), batch_sizes=(1,), repetitions=3)
        >>> r.models[1].learnables < r.models[0].learnables
        True
    """
    if isinstance(sample, torch.Tensor):
        sample = [sample]
    if sample is None:
        if data is None:
            raise OptionError("report: give `data` (or a `sample` batch) to time the networks.")
        reference = original if isinstance(original, Network) else compressed
        sample = next(iter(input_batches(reference, data, max(batch_sizes), "report: `data`")))
    if repetitions < 1 or any(b < 1 for b in batch_sizes):
        raise OptionError("report: `repetitions` and `batch_sizes` must be positive ints.")
    summaries = []
    for label, model in zip(labels, (original, compressed), strict=True):
        macs = (multiply_accumulates(model, sample) if isinstance(model, Network)
                else getattr(model, "macs", None))  # fmt: skip
        value = _metric(model, data, metric) if data is not None else None
        summaries.append(ModelSummary(label, learnables(model), file_size(model), macs, value))
    models = dict(zip(labels, (original, compressed), strict=True))
    latency = measure_latency(models, sample, batch_sizes=batch_sizes, repetitions=repetitions,
                              threads=threads)  # fmt: skip
    return CompressionReport(metric or "", summaries, latency, _layer_table(original, compressed),
                             threads)  # fmt: skip
