"""ExecuTorch ``.pte`` files (phones, microcontrollers with an OS, edge boards), through the
optional ``executorch`` package.

The network is captured with ``torch.export`` (batch axis free up to ``max_batch_size``: an
ExecuTorch program plans its memory for a bounded size), lowered to the XNNPACK CPU delegate
where its operators allow and to ExecuTorch's portable kernels elsewhere, and checked by
running the file in ExecuTorch's own Python runtime.
"""

from __future__ import annotations

import importlib.metadata
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deeptoolbox.errors import MissingDependencyError

TESTED_WITH = "executorch 1.5.1 with torch 2.14.1"


def _installed(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _unusable(err: BaseException) -> MissingDependencyError:
    return MissingDependencyError(
        f"export: format='executorch' needs a working `executorch` package matching the "
        f"installed torch. Found executorch {_installed('executorch')} with torch "
        f"{torch.__version__}: {type(err).__name__}: {err}. ExecuTorch releases pair with one "
        f"torch release (this toolbox was checked with {TESTED_WITH}). Install the matching "
        "pair, e.g. pip install deeptoolbox[executorch]; or export format='pt2' or 'onnx'."
    )


def _lowering():
    try:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
    except Exception as err:  # ImportError, or a version mismatch failing at import time
        raise _unusable(err) from err
    return to_edge_transform_and_lower, XnnpackPartitioner


def write_pte(
    net: nn.Module, path: Path, inputs: tuple[torch.Tensor, ...], max_batch_size: int
) -> None:
    """Write ``net`` as an ExecuTorch program to ``path``."""
    to_edge_transform_and_lower, partitioner = _lowering()
    was_training = net.training
    net.eval()
    try:
        program = _export_program(net, inputs, max_batch_size)
        lowered = to_edge_transform_and_lower(program, partitioner=[partitioner()])
        buffer = lowered.to_executorch().buffer
    finally:
        net.train(was_training)
    path.write_bytes(buffer)


def _export_program(net: nn.Module, inputs: tuple[torch.Tensor, ...], max_batch_size: int):
    """torch.export ``net`` with a batch axis free from 1 to ``max_batch_size``.

    The network goes through :func:`~deeptoolbox.interop.export_pytorch` first (which knows
    how to capture a Network), and the program it writes is captured again with the bound.
    """
    from deeptoolbox.interop.torch._api import export_pytorch

    with tempfile.TemporaryDirectory(prefix="deeptoolbox-pte-") as folder:
        first = Path(folder) / "program.pt2"
        export_pytorch(net, first, format="exported-program", example_inputs=inputs,
                       verify=False)  # deploy.export verifies the .pte file  # fmt: skip
        module = torch.export.load(str(first)).module()
    batch = torch.export.Dim("batch", min=1, max=max_batch_size)
    dynamic = tuple({0: batch} for _ in inputs)
    with torch.no_grad():
        for shapes in ((dynamic,), dynamic):  # forward(*inputs), then forward(x, y, ...)
            try:
                return torch.export.export(module, inputs, dynamic_shapes=shapes)
            except Exception:  # noqa: BLE001, S112 - try the other form, then a fixed batch
                continue
        return torch.export.export(module, inputs)


def pte_runner(path: Path):
    """Load a ``.pte`` file in ExecuTorch's Python runtime; return ``run(inputs) -> outputs``."""
    try:
        from executorch.runtime import Runtime
    except Exception as err:
        raise _unusable(err) from err
    method = Runtime.get().load_program(str(path)).load_method("forward")

    def run(inputs: Sequence[torch.Tensor]) -> list[np.ndarray]:
        outputs = method.execute([x.detach().cpu().float().contiguous() for x in inputs])
        return [np.asarray(o.detach().numpy() if isinstance(o, torch.Tensor) else o)
                for o in outputs]  # fmt: skip

    return run
