"""deploy.export(): one call shape for every deployment format, each checked after writing.

Formats: ``"onnx"`` (through :func:`deeptoolbox.interop.export_onnx`), ``"torchscript"`` and
``"pt2"`` (through :func:`deeptoolbox.interop.export_pytorch`), ``"executorch"`` (a ``.pte``
file, through the optional ``executorch`` package) and ``"triton"`` (a Triton / KServe model
repository, see :mod:`deeptoolbox.deploy._triton`). Every file is written to a temporary name
beside the target, loaded back with the format's own runtime (onnxruntime, ``torch.jit``,
``torch.export``, ExecuTorch's runtime), run on a sample batch and compared with the network,
and only then renamed into place.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from deeptoolbox.deploy._export import (
    EXTENSIONS,
    FORMATS,
    ExportSettings,
    Inputs,
    is_quantized,
    write_deployment_folder,
    write_verified,
)
from deeptoolbox.deploy._staging import staged_file
from deeptoolbox.deploy._triton import write_triton_repository
from deeptoolbox.errors import OptionError
from deeptoolbox.network._network import Network


def export(
    net: nn.Module,
    path: str | os.PathLike,
    format: str = "onnx",  # noqa: A002 - the natural name
    *,
    folder: bool = False,
    example_inputs: Inputs = None,
    verify: bool = True,
    tolerance: float = 1e-4,
    opset: int | None = None,
    version: int = 1,
    name: str | None = None,
    max_batch_size: int = 64,
    max_wait_ms: float = 5.0,
) -> Path:
    """Write ``net`` for deployment in ``format``, checked against the network after writing.

    Args:
        net: a :class:`~deeptoolbox.Network`, any ``nn.Module`` (give ``example_inputs``), or
            a quantized network from :mod:`deeptoolbox.compress` (``"onnx"`` for the
            onnxruntime target, ``"pt2"`` for the torch target).
        path: the file to write (``.onnx``, ``.pt``, ``.pt2``, ``.pte``), or a folder with
            ``folder=True``, or the model repository for ``format="triton"``.
        format: ``"onnx"``, ``"torchscript"``, ``"pt2"`` (``torch.export``), ``"executorch"``
            (``.pte`` for phones and edge devices; needs ``pip install deeptoolbox[executorch]``)
            or ``"triton"`` (a Triton Inference Server / KServe model repository).
        folder: write a deployment folder at ``path``: ``model.<ext>`` plus ``metadata.json``
            (input sizes, layout, normalization, class names, versions).
        example_inputs: inputs for tracing and checking (default: random data sized from the
            network's input layers).
        verify: load the written file with its own runtime and compare with ``net``.
        tolerance: largest allowed ``|exported - network| / (1 + |network|)``.
        opset: ONNX opset for ``"onnx"`` and ``"triton"`` (default 18).
        version: model version: in ``metadata.json`` and Triton's version folder.
        name: Triton model name (default: the network's name).
        max_batch_size: largest batch of an ExecuTorch program and of Triton's batcher.
        max_wait_ms: how long Triton's dynamic batcher waits to fill a batch.

    Returns:
        The path written (for ``"triton"``, the model's folder in the repository).

    Raises:
        OptionError: an unknown format, a path whose extension does not fit the format, an
            existing folder that is not an earlier export, or a bad option value.
        ModelExportError: the exporter fails, or the written file disagrees with the network
            (nothing is left at ``path`` then; an earlier file there is kept).
        MissingDependencyError: onnx / onnxruntime / executorch is needed and not usable.

    Example:
        >>> import tempfile, os, torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(4), L.Dense(3), L.Softmax()], classes=["a", "b", "c"])
        >>> folder = tempfile.mkdtemp()
        >>> export(net, os.path.join(folder, "net.pt"), format="torchscript").name
        'net.pt'
        >>> target = export(net, os.path.join(folder, "deployment"), format="onnx", folder=True)
        >>> sorted(p.name for p in target.iterdir())
        ['metadata.json', 'model.onnx']
    """
    settings = _settings(net, format, example_inputs, verify, tolerance, opset, version,
                         max_batch_size)  # fmt: skip
    path = Path(path)
    if settings.format == "triton":
        if folder:
            raise OptionError(
                "export: format='triton' always writes a folder (a model repository); leave "
                "folder=False."
            )
        return write_triton_repository(net, path, settings, name=name, max_wait_ms=max_wait_ms)
    if folder:
        return write_deployment_folder(net, path, settings)
    _check_extension(path, settings.format)
    with staged_file(path) as temporary:
        write_verified(net, temporary, settings)
    return path


# -- options ---------------------------------------------------------------------------------
def _settings(net, format, example_inputs, verify, tolerance, opset, version, max_batch_size):  # noqa: A002
    if not isinstance(net, nn.Module):
        raise OptionError(
            f"export: `net` must be a deeptoolbox Network or a torch.nn.Module. Received: "
            f"{type(net).__name__}."
        )
    if format not in FORMATS:
        raise OptionError(
            f"export: `format` must be one of {', '.join(map(repr, FORMATS))}. Received: "
            f"format={format!r}."
        )
    for option, value in (("verify", verify),):
        if not isinstance(value, bool):
            raise OptionError(f"export: `{option}` must be True or False. Received: {value!r}.")
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or tolerance <= 0:
        raise OptionError(
            f"export: `tolerance` must be a positive number. Received: {tolerance!r}."
        )
    for option, value in (("version", version), ("max_batch_size", max_batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise OptionError(f"export: `{option}` must be a positive int. Received: {value!r}.")
    inputs = _as_inputs(example_inputs)
    if inputs is None and not isinstance(net, Network) and not is_quantized(net):
        raise OptionError(
            "export: give `example_inputs` (one tensor per input, batch first) for a module "
            "that is not a deeptoolbox Network; its input sizes are not declared anywhere."
        )
    return ExportSettings(format, inputs, verify, float(tolerance), opset, version, max_batch_size)


def _as_inputs(example_inputs: Inputs) -> tuple[torch.Tensor, ...] | None:
    if example_inputs is None:
        return None
    inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else example_inputs
    if not isinstance(inputs, Sequence) or not all(isinstance(x, torch.Tensor) for x in inputs):
        raise OptionError(
            "export: `example_inputs` must be a tensor or a sequence of tensors (one per input). "
            f"Received: {type(example_inputs).__name__}."
        )
    return tuple(inputs)


def _check_extension(path: Path, format: str) -> None:  # noqa: A002
    wanted = EXTENSIONS[format]
    if path.suffix.lower() != wanted:
        raise OptionError(
            f"export: format={format!r} writes a {wanted} file, but the path '{path}' ends in "
            f"{path.suffix or 'no extension'!r}. Use '{path.with_suffix(wanted).name}', or pass "
            "folder=True to write a deployment folder."
        )
