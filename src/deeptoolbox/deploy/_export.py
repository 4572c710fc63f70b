"""The writers behind deploy.export(): each format written to a temporary name, loaded back
with its own runtime, run on a sample batch and compared with the network (see
:mod:`deeptoolbox.deploy._export_api` for the public call and
:mod:`deeptoolbox.deploy._triton` for Triton model repositories)."""

from __future__ import annotations

import importlib
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deeptoolbox.deploy._metadata import (
    METADATA_FORMAT,
    deployment_metadata,
    tensor_description,
)
from deeptoolbox.deploy._staging import staged_folder
from deeptoolbox.errors import (
    DeepToolboxError,
    MissingDependencyError,
    ModelExportError,
)
from deeptoolbox.layers._input import InputLayer
from deeptoolbox.network._network import Network

FORMATS = ("onnx", "torchscript", "pt2", "executorch", "triton")
EXTENSIONS = {"onnx": ".onnx", "torchscript": ".pt", "pt2": ".pt2", "executorch": ".pte"}
METADATA_FILE = "metadata.json"
FIXED_LENGTH_FORMATS = ("pt2", "executorch")  # torch.export fixes free sequence lengths
TRACE_LENGTH = 8  # the sequence length those formats are captured at (export_pytorch's)
CHECK_LENGTH = 5  # formats that keep lengths free are checked at another length than traced
Inputs = torch.Tensor | Sequence[torch.Tensor] | None


@dataclass(frozen=True)
class ExportSettings:
    """The validated options of one :func:`export` call."""

    format: str
    example_inputs: tuple[torch.Tensor, ...] | None
    verify: bool
    tolerance: float
    opset: int | None
    version: int
    max_batch_size: int


def is_quantized(net: nn.Module) -> bool:
    """True for a QuantizedNetwork of deeptoolbox.compress (recognized by what it offers)."""
    return (
        type(net).__name__ == "QuantizedNetwork"
        and callable(getattr(net, "save", None))
        and getattr(net, "target", None) in ("onnxruntime", "torch")
        and isinstance(getattr(net, "input_names", None), list)
    )


# -- writing and checking one file -------------------------------------------------------------
def write_verified(net: nn.Module, path: Path, settings: ExportSettings) -> None:
    """Write ``net`` to ``path`` in ``settings.format`` and compare the file with the network."""
    _write(net, path, settings)
    if settings.verify:
        samples = _verification_inputs(net, path, settings)
        run = load_runner(path, settings.format)
        compare_outputs(
            net, run, samples, settings.tolerance, f"{settings.format} file {path.name}"
        )


def _settle_input_checks(net: nn.Module) -> None:
    """Input layers check once whether their statistics are set; a check that torch.export
    would meet while tracing is data-dependent, so run it now (as export_onnx does)."""
    for module in net.modules():
        if isinstance(module, InputLayer):
            _ = module.has_statistics


def _write(net: nn.Module, path: Path, settings: ExportSettings) -> None:
    writer = _WRITERS[settings.format]
    _settle_input_checks(net)
    try:
        writer(net, path, settings)
    except DeepToolboxError:
        raise
    except ImportError as err:
        raise _missing(settings.format, err) from err
    except Exception as err:
        raise ModelExportError(
            f"export: writing {type(net).__name__} '{getattr(net, 'name', '')}' as "
            f"format={settings.format!r} failed: {type(err).__name__}: {err}"
        ) from err


def _write_onnx(net: nn.Module, path: Path, settings: ExportSettings) -> None:
    if is_quantized(net):
        if net.target != "onnxruntime":
            raise ModelExportError(
                "export: this QuantizedNetwork has target='torch'; it exports as format='pt2'. "
                "Quantize with target='onnxruntime' for an int8 ONNX file."
            )
        net.save(path)
        return
    from deeptoolbox.interop.onnx._export import export_onnx

    export_onnx(net, path, opset=settings.opset, verify=False,
                example_inputs=settings.example_inputs)  # fmt: skip


def _write_torchscript(net: nn.Module, path: Path, settings: ExportSettings) -> None:
    from deeptoolbox.interop.torch._api import export_pytorch

    if is_quantized(net):
        raise ModelExportError(
            "export: a QuantizedNetwork exports as format='onnx' (target 'onnxruntime') or "
            "format='pt2' (target 'torch'), not as TorchScript."
        )
    export_pytorch(net, path, format="torchscript", example_inputs=settings.example_inputs,
                   verify=False)  # export() verifies the file itself  # fmt: skip


def _write_pt2(net: nn.Module, path: Path, settings: ExportSettings) -> None:
    if is_quantized(net):
        if net.target != "torch":
            raise ModelExportError(
                "export: this QuantizedNetwork has target='onnxruntime'; it exports as "
                "format='onnx'. Quantize with target='torch' for a torch.export program."
            )
        net.save(path)
        return
    from deeptoolbox.interop.torch._api import export_pytorch

    export_pytorch(net, path, format="exported-program", example_inputs=settings.example_inputs,
                   verify=False)  # export() verifies the file itself  # fmt: skip


def _write_executorch(net: nn.Module, path: Path, settings: ExportSettings) -> None:
    from deeptoolbox.deploy._executorch import write_pte

    write_pte(net, path, tracing_inputs(net, settings, batch=2), settings.max_batch_size)


_WRITERS: dict[str, Callable[[nn.Module, Path, ExportSettings], None]] = {
    "onnx": _write_onnx,
    "torchscript": _write_torchscript,
    "pt2": _write_pt2,
    "executorch": _write_executorch,
}
_PACKAGES = {
    "onnx": "onnx and onnxruntime (pip install deeptoolbox[interop])",
    "triton": "onnx and onnxruntime (pip install deeptoolbox[interop])",
    "executorch": "executorch (pip install deeptoolbox[executorch])",
}


def _missing(format: str, err: ImportError) -> MissingDependencyError:  # noqa: A002
    needed = _PACKAGES.get(format, "torch")
    return MissingDependencyError(f"export: format={format!r} needs {needed}; {err}.")


def tracing_inputs(
    net: nn.Module, settings: ExportSettings, batch: int
) -> tuple[torch.Tensor, ...]:
    """The example inputs given, or a random batch sized from a Network's input layers."""
    if settings.example_inputs is not None:
        return settings.example_inputs
    from deeptoolbox.interop._samples import sample_inputs

    return tuple(sample_inputs(net, batch=batch, length=TRACE_LENGTH))


def _verification_inputs(net: nn.Module, path: Path, settings: ExportSettings) -> tuple:
    if settings.example_inputs is not None:
        return settings.example_inputs
    if isinstance(net, Network):
        from deeptoolbox.interop._samples import sample_inputs

        fixed = settings.format in FIXED_LENGTH_FORMATS
        length = TRACE_LENGTH if fixed else CHECK_LENGTH
        batch = min(3, settings.max_batch_size)
        return tuple(sample_inputs(net, batch=batch, length=length, seed=1))
    return _inputs_from_file(path, settings.format)


def _inputs_from_file(path: Path, format: str) -> tuple[torch.Tensor, ...]:  # noqa: A002
    """Random inputs shaped as a written file declares them (a quantized network's file)."""
    generator = torch.Generator().manual_seed(1)
    if format == "pt2":
        args = torch.export.load(str(path)).example_inputs[0]
        return tuple(torch.randn(x.shape, generator=generator) for x in args)
    return tuple(torch.randn(shape, generator=generator) for _, shape in onnx_input_shapes(path))


def onnx_input_shapes(path: Path, batch: int = 2, length: int = 9) -> list[tuple[str, tuple]]:
    """``(name, shape)`` of each graph input of an ONNX file; free axes become ``batch`` (the
    first) or ``length``."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    shapes = []
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        shape = [d.dim_value if d.HasField("dim_value") else (batch if i == 0 else length)
                 for i, d in enumerate(dims)]  # fmt: skip
        shapes.append((value.name, tuple(shape)))
    return shapes


# -- loading a written file back -------------------------------------------------------------
Runner = Callable[[Sequence[torch.Tensor]], list[np.ndarray]]


def load_runner(path: Path, format: str) -> Runner:  # noqa: A002
    """Load a written file with its format's own runtime; return ``run(inputs) -> outputs``."""
    try:
        return _LOADERS[format](path)
    except DeepToolboxError:
        raise
    except ImportError as err:
        raise _missing(format, err) from err
    except Exception as err:
        raise ModelExportError(
            f"export: the written {format} file {path.name} cannot be loaded back: "
            f"{type(err).__name__}: {err}"
        ) from err


def _onnx_runner(path: Path) -> Runner:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [arg.name for arg in session.get_inputs()]

    def run(inputs: Sequence[torch.Tensor]) -> list[np.ndarray]:
        feeds = {
            n: x.detach().cpu().numpy().astype(np.float32)
            for n, x in zip(names, inputs, strict=False)
        }
        return list(session.run(None, feeds))

    return run


def _torch_runner(module: Callable[..., Any]) -> Runner:
    def run(inputs: Sequence[torch.Tensor]) -> list[np.ndarray]:
        with torch.no_grad():
            return [t.detach().cpu().numpy() for t in flat_outputs(module(*inputs))]

    return run


def _torchscript_runner(path: Path) -> Runner:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is "deprecated"
        return _torch_runner(torch.jit.load(str(path), map_location="cpu").eval())


def _pt2_runner(path: Path) -> Runner:
    return _torch_runner(torch.export.load(str(path)).module())


def _executorch_runner(path: Path) -> Runner:
    from deeptoolbox.deploy._executorch import pte_runner

    return pte_runner(path)


_LOADERS: dict[str, Callable[[Path], Runner]] = {
    "onnx": _onnx_runner,
    "torchscript": _torchscript_runner,
    "pt2": _pt2_runner,
    "executorch": _executorch_runner,
}


def flat_outputs(output: Any) -> list[torch.Tensor]:
    """A module's output as a flat list of tensors (a tensor, tuple, list or dict of them)."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, tuple | list):
        return [t for item in output for t in flat_outputs(item)]
    raise ModelExportError(
        f"export: a model output must be a tensor or a tuple / dict of tensors; received "
        f"{type(output).__name__}."
    )


def compare_outputs(
    net: nn.Module, run: Runner, inputs: Sequence[torch.Tensor], tolerance: float, label: str
) -> float:
    """Run ``net`` and the written file on ``inputs``; raise ModelExportError when an output
    differs by more than ``tolerance`` (relative to ``1 + |network|``). Returns the largest
    difference."""
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            expected = [t.detach().cpu().numpy() for t in flat_outputs(net(*inputs))]
    finally:
        net.train(was_training)
    try:
        found = run(inputs)
    except Exception as err:
        raise ModelExportError(
            f"export check of {label}: the file cannot run on inputs of size "
            f"{[tuple(x.shape) for x in inputs]}: {type(err).__name__}: {err}"
        ) from err
    if len(found) != len(expected):
        raise ModelExportError(
            f"export check of {label}: the file gives {len(found)} output(s), the network "
            f"{len(expected)}."
        )
    worst = 0.0
    for index, (got, want) in enumerate(zip(found, expected, strict=True)):
        got = np.asarray(got, dtype=np.float64)
        if got.shape != want.shape:
            raise ModelExportError(
                f"export check of {label}: output {index} has size {got.shape} in the file but "
                f"{want.shape} in the network."
            )
        difference = float(np.max(np.abs(got - want) / (1 + np.abs(want)), initial=0.0))
        if not difference <= tolerance:
            raise ModelExportError(
                f"export check of {label}: output {index} differs from the network by up to "
                f"{difference:.3g} (tolerance {tolerance:g}) on inputs of size "
                f"{[tuple(x.shape) for x in inputs]}. Nothing was written. Pass a larger "
                "`tolerance`, or verify=False to write it anyway."
            )
        worst = max(worst, difference)
    return worst


# -- deployment folders ------------------------------------------------------------------------
def is_deployment_folder(path: Path) -> bool:
    """True when ``path`` holds a ``metadata.json`` written by :func:`export` (folder=True)."""
    try:
        data = json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == METADATA_FORMAT


def write_deployment_folder(net: nn.Module, path: Path, settings: ExportSettings) -> Path:
    model_file = "model" + EXTENSIONS[settings.format]
    with staged_folder(path, is_deployment_folder) as temporary:
        write_verified(net, temporary / model_file, settings)
        metadata = deployment_metadata(
            net, model_file=model_file, model_format=settings.format, version=settings.version,
            inputs=None if isinstance(net, Network) else _described_inputs(net, temporary / model_file, settings),
            outputs=None if isinstance(net, Network) else [],
        )  # fmt: skip
        if settings.format == "executorch":
            metadata["max_batch_size"] = settings.max_batch_size
        if settings.format in FIXED_LENGTH_FORMATS:
            _fix_free_lengths(metadata, settings)
        text = json.dumps(metadata, indent=2)
        (temporary / METADATA_FILE).write_text(text + "\n", encoding="utf-8")
    return path


def _fix_free_lengths(metadata: dict, settings: ExportSettings) -> None:
    """torch.export captures free sequence lengths at the traced length: say so."""
    traced = settings.example_inputs
    for index, entry in enumerate(metadata["inputs"]):
        size = entry.get("size") or []
        if None in size:
            shape = traced[index].shape[1:] if traced is not None else None
            entry["size"] = [
                (int(shape[i]) if shape is not None else TRACE_LENGTH) if d is None else d
                for i, d in enumerate(size)
            ]
            entry["note"] = f"free lengths are fixed in {settings.format} files at export"


def _described_inputs(net: nn.Module, path: Path, settings: ExportSettings) -> list[dict]:
    if settings.example_inputs is not None:
        return [tensor_description(f"input_{i + 1}", tuple(x.shape[1:]))
                for i, x in enumerate(settings.example_inputs)]  # fmt: skip
    inputs = _inputs_from_file(path, settings.format)
    names = getattr(net, "input_names", None) or [f"input_{i + 1}" for i in range(len(inputs))]
    return [tensor_description(n, tuple(x.shape[1:])) for n, x in zip(names, inputs, strict=False)]


def require(module: str, format: str) -> Any:  # noqa: A002
    """Import ``module`` or raise MissingDependencyError naming what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise _missing(format, err) from err
