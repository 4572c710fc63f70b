"""The model behind the inference server: what it takes, what it gives, and how it runs.

A :class:`ServedModel` is made from a Network, a saved network, any model file
:func:`~deeptoolbox.interop.read_model` reads, a deployment folder written by
:func:`~deeptoolbox.deploy.export` (``folder=True``) or a Triton model folder; it runs on
the ``"torch"`` backend (the network itself) or ``"onnxruntime"`` (an ONNX file, or the
network exported to one in memory).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deeptoolbox.deploy._export import METADATA_FILE, is_deployment_folder
from deeptoolbox.deploy._metadata import (
    METADATA_FORMAT,
    deployment_metadata,
    tensor_description,
)
from deeptoolbox.errors import MissingDependencyError, OptionError
from deeptoolbox.layers._activation import Softmax
from deeptoolbox.network._network import Network

BACKENDS = ("torch", "onnxruntime")
_KIND_BY_RANK = {1: "FeatureInput", 2: "SequenceInput", 3: "ImageInput", 4: "VolumeInput"}


@dataclass(frozen=True)
class InputSpec:
    """One model input: its name, kind (``"ImageInput"``...) and size without the batch axis
    (None for a free length)."""

    name: str
    kind: str
    size: tuple[int | None, ...]

    def describe(self) -> str:
        """``'(N, 1, 8, 8)'`` or ``'(N, T, 3)'``: the batch size this input takes."""
        dims = ["N", *("T" if d is None else str(d) for d in self.size)]
        return f"({', '.join(dims)})"


Run = Callable[[list[np.ndarray]], list[np.ndarray]]


@dataclass
class ServedModel:
    """A loaded model ready to serve: ``run(inputs) -> outputs`` on numpy batches.

    Example:
        >>> from deeptoolbox import layers as L
        >>> served = load_served_model(Network([L.FeatureInput(3), L.Dense(2)]))
        >>> served.inputs[0].describe(), served.run([np.zeros((4, 3), np.float32)])[0].shape
        ('(N, 3)', (4, 2))
    """

    name: str
    backend: str
    inputs: list[InputSpec]
    output_names: list[str]
    classes: list[str] | None
    ends_in_softmax: bool
    metadata: dict[str, Any]
    run: Run
    image_preprocessing: dict[str, Any] | None = None

    def warm_up(self) -> None:
        """Run the model once on zeros (free lengths 4), so the first request is not slow."""
        self.run([np.zeros((1, *(4 if d is None else d for d in spec.size)), np.float32)
                  for spec in self.inputs])  # fmt: skip


# -- backends ----------------------------------------------------------------------------------
def torch_runner(net: nn.Module, device: torch.device) -> Run:
    """Run ``net`` in eval mode, without gradients, on ``device``."""
    net.eval()

    def run(inputs: list[np.ndarray]) -> list[np.ndarray]:
        tensors = [torch.from_numpy(np.ascontiguousarray(x)).to(device) for x in inputs]
        with torch.inference_mode():
            output = net(*tensors)
        outputs = list(output) if isinstance(output, tuple | list) else [output]
        return [o.detach().float().cpu().numpy() for o in outputs]

    return run


def onnx_runner(model: bytes | str, threads: int | None = None) -> tuple[Run, Any]:
    """An onnxruntime session on ``model`` (bytes or a file); returns ``(run, session)``."""
    try:
        import onnxruntime
    except ImportError as err:
        raise MissingDependencyError(
            "serve: backend='onnxruntime' needs onnxruntime (pip install deeptoolbox[interop])."
        ) from err
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    names = [arg.name for arg in session.get_inputs()]

    def run(inputs: list[np.ndarray]) -> list[np.ndarray]:
        feeds = dict(zip(names, inputs, strict=True))
        return [np.asarray(o, dtype=np.float32) for o in session.run(None, feeds)]

    return run, session


# -- specs -----------------------------------------------------------------------------------
def _network_specs(net: Network) -> list[InputSpec]:
    return [InputSpec(name, type(net.layer(name)).__name__, tuple(net.layer(name).shape))
            for name in net.input_names]  # fmt: skip


def _ends_in_softmax(net: Network) -> bool:
    outputs = net.output_names
    return len(outputs) == 1 and isinstance(net.layer(outputs[0]), Softmax)


def _pretrained_spec(metadata: Any) -> dict[str, Any] | None:
    spec = metadata.get("preprocessing") if isinstance(metadata, dict) else None
    return spec if isinstance(spec, dict) and spec.get("type") == "image_classification" else None


def _image_preprocessing(inputs: list[InputSpec], pretrained: dict | None) -> dict[str, Any] | None:
    """How image files become the model's input: its own size, plus a pretrained network's
    resize / crop / normalization when it carries one."""
    if len(inputs) != 1 or len(inputs[0].size) != 3 or None in inputs[0].size:
        return None
    if inputs[0].kind not in ("ImageInput", "Tensor"):
        return None
    channels, height, width = inputs[0].size
    if channels not in (1, 3):
        return None
    return {"channels": channels, "height": height, "width": width, "pretrained": pretrained}


def from_network(net: Network, backend: str, device: str | torch.device, version: int,
                 metadata: dict[str, Any] | None = None) -> ServedModel:  # fmt: skip
    """Serve a Network with the torch backend, or exported to ONNX for onnxruntime."""
    if not net.is_initialized:
        net.initialize()  # raises NotInitializedError naming what is missing
    inputs = _network_specs(net)
    _check_classes(net)
    if backend == "torch":
        from deeptoolbox.inference import place_network

        target, _ = place_network(net, device)
        run = torch_runner(net, target)
    else:
        run, _ = onnx_runner(_onnx_bytes(net))
    model_file = "(in memory)"
    meta = metadata or deployment_metadata(net, model_file=model_file, model_format=backend,
                                           version=version)  # fmt: skip
    return ServedModel(
        name=net.name, backend=backend, inputs=inputs, output_names=list(net.output_names),
        classes=net.classes, ends_in_softmax=_ends_in_softmax(net), metadata=meta, run=run,
        image_preprocessing=_image_preprocessing(inputs, _pretrained_spec(net.metadata)),
    )  # fmt: skip


def _check_classes(net: Network) -> None:
    size = net.output_shape()
    if net.classes is not None and size and len(size) == 1 and size[0] != len(net.classes):
        raise OptionError(
            f"serve: network '{net.name}' gives {size[0]} scores per observation but lists "
            f"{len(net.classes)} classes in net.classes. Set net.classes to match the output."
        )


def _onnx_bytes(net: Network) -> bytes:
    from deeptoolbox.interop.onnx._export import export_onnx

    with tempfile.TemporaryDirectory(prefix="deeptoolbox-serve-") as folder:
        path = export_onnx(net, Path(folder) / "model.onnx")
        return path.read_bytes()


def from_onnx_file(path: Path, version: int, metadata: dict[str, Any] | None = None) -> ServedModel:
    """Serve an ONNX file in onnxruntime; sizes from its graph, classes from its metadata."""
    run, session = onnx_runner(str(path))
    props = session.get_modelmeta().custom_metadata_map
    classes = metadata.get("classes") if metadata else _json(props.get("deeptoolbox.classes"))
    kinds = _json(props.get("deeptoolbox.inputs")) or {}
    inputs = []
    for arg in session.get_inputs():
        size = tuple(d if isinstance(d, int) else None for d in arg.shape[1:])
        inputs.append(InputSpec(arg.name, kinds.get(arg.name, "Tensor"), size))
    outputs = [arg.name for arg in session.get_outputs()]
    meta = metadata or _onnx_metadata(path, inputs, outputs, classes, version)
    return ServedModel(
        name=meta.get("name") or path.stem, backend="onnxruntime", inputs=inputs,
        output_names=outputs, classes=classes, ends_in_softmax=_onnx_ends_in_softmax(path),
        metadata=meta, run=run, image_preprocessing=_image_preprocessing(inputs, _pretrained_spec(meta)),
    )  # fmt: skip


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _onnx_metadata(path, inputs, outputs, classes, version) -> dict[str, Any]:
    return {
        "format": METADATA_FORMAT, "name": path.stem, "model_file": path.name,
        "model_format": "onnx", "model_version": version,
        "inputs": [tensor_description(s.name, s.size) | {"kind": s.kind} for s in inputs],
        "outputs": [{"name": n, "size": None, "dtype": "float32"} for n in outputs],
        "classes": classes, "preprocessing": None,
    }  # fmt: skip


def _onnx_ends_in_softmax(path: Path) -> bool:
    try:
        import onnx
    except ImportError:
        return False
    graph = onnx.load(str(path), load_external_data=False).graph
    producers = {out: node.op_type for node in graph.node for out in node.output}
    return len(graph.output) == 1 and producers.get(graph.output[0].name) == "Softmax"


# -- from what the user gives ------------------------------------------------------------------
def load_served_model(
    model: Any, *, backend: str = "torch", device: str | torch.device = "auto", version: int = 1
) -> ServedModel:
    """Make a :class:`ServedModel` from a Network or a model path (see the module docstring).

    Example:
        >>> from deeptoolbox import layers as L
        >>> net = Network([L.ImageInput((1, 8, 8)), L.Flatten(), L.Dense(3)], classes=list("abc"))
        >>> served = load_served_model(net)
        >>> served.inputs[0].describe(), served.classes, served.image_preprocessing["height"]
        ('(N, 1, 8, 8)', ['a', 'b', 'c'], 8)
    """
    if backend not in BACKENDS:
        raise OptionError(
            f"serve: `backend` must be one of {', '.join(map(repr, BACKENDS))}. Received: "
            f"backend={backend!r}."
        )
    if isinstance(model, Network):
        return from_network(model, backend, device, version)
    if isinstance(model, nn.Module):
        raise OptionError(
            f"serve: a plain {type(model).__name__} declares no input sizes to check requests "
            "against. Bring it in first: net = deeptoolbox.from_torch(module, example_inputs), "
            "or export it (deeptoolbox.deploy.export(module, 'model.onnx', example_inputs=...)) "
            "and serve the file with backend='onnxruntime'."
        )
    if not isinstance(model, str | os.PathLike):
        raise OptionError(
            "serve: `model` must be a Network or the path of a model file or folder. Received: "
            f"{type(model).__name__}."
        )
    return _from_path(Path(model), backend, device, version)


def _from_path(path: Path, backend: str, device, version: int) -> ServedModel:
    if not path.exists():
        raise OptionError(f"serve: the model '{path}' does not exist.")
    metadata = None
    if path.is_dir() and is_deployment_folder(path):
        metadata = json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))
        path = path / str(metadata.get("model_file", ""))
        version = int(metadata.get("model_version", version))
    if path.suffix.lower() == ".onnx" and backend == "onnxruntime":
        return from_onnx_file(path, version, metadata)
    if path.suffix.lower() == ".pte":
        raise OptionError(
            f"serve: '{path.name}' is an ExecuTorch program, for phones and edge devices; serve "
            "the network itself (a saved network, .onnx, .pt or .pt2)."
        )
    from deeptoolbox.interop._convert import read_model

    net = read_model(path)
    if metadata is not None and net.classes is None and metadata.get("classes"):
        net.classes = metadata["classes"]
    return from_network(net, backend, device, version, metadata)


def input_specs_summary(inputs: Sequence[InputSpec]) -> str:
    """``"input 'x' (N, 4)"``, for messages."""
    return ", ".join(f"'{s.name}' {s.describe()}" for s in inputs)
