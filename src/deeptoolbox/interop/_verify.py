"""What importers and exporters share: the ``unsupported`` choices and checks of written files.

Every exporter verifies the file it wrote against the network when ``verify=True``: ONNX in
onnxruntime (``verify_onnx``), PyTorch files by loading them back with torch, Keras files by
reading them back (and by loading them with Keras when Keras is usable in this process).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deeptoolbox.errors import ModelImportError, OptionError

UNSUPPORTED = ("error", "placeholder", "operator")


def check_unsupported(where: str, value: object, available: Sequence[str]) -> str:
    """``value`` if it is one of ``available``, else an OptionError saying what each means.

    Example:
        >>> check_unsupported("import_onnx", "placeholder", ("error", "placeholder"))
        'placeholder'
    """
    if value in available:
        return value  # type: ignore[return-value]
    known = value in UNSUPPORTED
    raise OptionError(
        f"{where}: `unsupported` must be one of {', '.join(map(repr, available))}"
        + (" here" if known else "")
        + f". Received: unsupported={value!r}. 'error' refuses what the toolbox cannot map to "
        "its layers, 'placeholder' puts a layer to replace in its place, 'operator' keeps it "
        "as an opaque layer that runs the original code"
        + (f"; {where} offers only the choices listed." if known else ".")
    )


def refuse_opaque(where: str, net: nn.Module, source: object) -> None:
    """ModelImportError naming the opaque layers of ``net`` (``unsupported="error"``)."""
    from deeptoolbox.interop._operators import OpaqueModule

    opaque = [n for n, m in getattr(net, "layers", {}).items() if isinstance(m, OpaqueModule)]
    if opaque:
        raise ModelImportError(
            f"{where}: '{source}' cannot be mapped to toolbox layers; the layers "
            f"{opaque} would run the original code as opaque layers. Pass "
            "unsupported='operator' to accept them."
        )


def _flat(output: Any) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, np.ndarray):
        return [torch.as_tensor(output)]
    if isinstance(output, dict):
        return [t for v in output.values() for t in _flat(v)]
    return [t for v in output for t in _flat(v)]


def compare_outputs(where: str, expected: Any, got: Any, tolerance: float) -> float:
    """Largest ``|got - expected| / (1 + |expected|)``; ModelExportError above ``tolerance``.

    Example:
        >>> compare_outputs("check", torch.ones(2), torch.ones(2), 1e-4)
        0.0
    """
    from deeptoolbox.errors import ModelExportError

    want, have = _flat(expected), _flat(got)
    if len(want) != len(have):
        raise ModelExportError(
            f"{where}: the file gives {len(have)} outputs, the network {len(want)}."
        )
    worst = 0.0
    for k, (a, b) in enumerate(zip(want, have, strict=True)):
        a, b = a.detach().cpu().double(), torch.as_tensor(b).detach().cpu().double()
        if tuple(a.shape) != tuple(b.shape):
            raise ModelExportError(
                f"{where}: output {k} has size {tuple(b.shape)} in the file but "
                f"{tuple(a.shape)} in the network."
            )
        difference = float(((a - b).abs() / (1 + a.abs())).max()) if a.numel() else 0.0
        if not difference <= tolerance:
            raise ModelExportError(
                f"{where}: output {k} of the file differs from the network by up to "
                f"{difference:.3g} (tolerance {tolerance:g}). The file was not written. Pass "
                "verify=False to write it anyway, or report the layer types involved."
            )
        worst = max(worst, difference)
    return worst


def reference(net: nn.Module, inputs: Sequence[torch.Tensor]) -> Any:
    """The network's outputs in inference mode (its mode is restored)."""
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            return net(*inputs)
    finally:
        net.train(was_training)


def verify_torch_file(net: nn.Module, path: Path, format: str, inputs, tolerance: float) -> float:  # noqa: A002
    """Load a TorchScript / torch.export file back and compare it with ``net`` on ``inputs``."""
    where = f"export_pytorch: check of '{path.name}'"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is "deprecated"
        loaded = (
            torch.jit.load(str(path), map_location="cpu")
            if format == "torchscript"
            else torch.export.load(str(path)).module()
        )
    with torch.no_grad():
        got = loaded(*inputs)
    return compare_outputs(where, reference(net, inputs), got, tolerance)


def usable_keras() -> Any:
    """The ``keras`` module when it is imported already or its configured backend is installed.

    Importing Keras with a missing backend leaves half-imported modules behind, so it is only
    tried when ``KERAS_BACKEND`` names an installed backend.

    Example:
        >>> usable_keras() is None or hasattr(usable_keras(), "saving")
        True
    """
    if "keras" in sys.modules:
        return sys.modules["keras"]
    backend = os.environ.get("KERAS_BACKEND")
    modules = {"torch": "torch", "jax": "jax", "tensorflow": "tensorflow", "numpy": "numpy"}
    if backend not in modules or importlib.util.find_spec("keras") is None:
        return None
    if importlib.util.find_spec(modules[backend]) is None:
        return None
    try:
        import keras
    except Exception:  # noqa: BLE001 - Keras that cannot start is Keras not installed
        return None
    return keras
