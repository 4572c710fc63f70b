"""export_onnx(): a Network (or any ``nn.Module``) to an ONNX file, checked in onnxruntime.

The file is written by ``torch.onnx.export`` (the ``torch.export``-based exporter, whose graphs
are clean: no shape arithmetic, LSTM/GRU as single nodes), with a free batch axis and free
sequence lengths, node names set to the layer names they come from, and the toolbox's metadata (class names, input layers) in the
model's ``metadata_props``. It is written to a temporary file, run in onnxruntime on a sample
and compared with the network, and only then moved into place.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deeptoolbox.errors import DeepToolboxError, OptionError
from deeptoolbox.layers._attention import Embedding, SelfAttention
from deeptoolbox.layers._input import InputLayer
from deeptoolbox.network._network import Network

DEFAULT_OPSET = 18
SUPPORTED_EXPORT_OPSETS = range(14, 24)
METADATA_PREFIX = "deeptoolbox."


class ModelExportError(DeepToolboxError, RuntimeError):
    """A network cannot be written to another format, or the written file disagrees with it.

    Example:
        >>> issubclass(ModelExportError, RuntimeError)
        True
    """


def export_onnx(
    net: nn.Module,
    path: str | os.PathLike,
    *,
    opset: int | None = None,
    dynamic_batch: bool = True,
    verify: bool = True,
    sample_inputs: Sequence[torch.Tensor] | torch.Tensor | None = None,
    tolerance: float = 1e-4,
) -> Path:
    """Write ``net`` to an ONNX file that onnxruntime (and MATLAB, TensorRT...) can run.

    Args:
        net: a :class:`~deeptoolbox.Network`, or any ``nn.Module`` when ``sample_inputs`` is given.
        path: the ``.onnx`` file to write (replaced atomically: written elsewhere, then moved).
        opset: ONNX opset version, 14 to 23 (default 18).
        dynamic_batch: leave the batch axis free (and free sequence lengths stay free).
        verify: run the file in onnxruntime on ``sample_inputs`` and compare with ``net``.
        sample_inputs: inputs for tracing and verification (default: random data sized from the
            network's input layers; token ids for inputs feeding an Embedding).
        tolerance: largest allowed difference ``|onnx - torch| / (1 + |torch|)`` when verifying.

    Returns:
        The path written.

    Raises:
        ModelExportError: the exporter fails, or onnxruntime disagrees with the network (the
            message gives the largest difference and the output concerned).
        OptionError: bad ``opset`` or missing ``sample_inputs`` for a plain module.

    Example:
        >>> import tempfile, os
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(4), L.Dense(3, name="fc"), L.Softmax()])
        >>> path = export_onnx(net, os.path.join(tempfile.mkdtemp(), "net.onnx"))
        >>> path.name
        'net.onnx'
    """
    opset = _check_opset(opset)
    path = Path(path)
    inputs = _sample_inputs(net, sample_inputs, batch=2)
    input_names, output_names = _io_names(net, len(inputs))
    shapes = _dynamic_shapes(net, inputs, dynamic_batch)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    was_training = net.training
    net.eval()
    for module in net.modules():  # settle data-dependent checks before torch.export traces
        if isinstance(module, InputLayer):
            _ = module.has_statistics
    try:
        _run_exporter(net, inputs, temporary, opset, input_names, output_names, shapes)
        _finish_model(net, temporary)
        if verify:
            check = _sample_inputs(net, sample_inputs, batch=3 if dynamic_batch else 2, seed=1)
            verify_onnx(net, temporary, check, tolerance=tolerance, label=path.name)
        os.replace(temporary, path)
    finally:
        net.train(was_training)
        if temporary.exists():
            temporary.unlink()
    return path


def _check_opset(opset: int | None) -> int:
    if opset is None:
        return DEFAULT_OPSET
    if (
        isinstance(opset, bool)
        or not isinstance(opset, int)
        or opset not in SUPPORTED_EXPORT_OPSETS
    ):
        raise OptionError(
            f"export_onnx: `opset` must be an int from {SUPPORTED_EXPORT_OPSETS.start} to "
            f"{SUPPORTED_EXPORT_OPSETS.stop - 1}. Received: opset={opset!r}. Example: opset=18."
        )
    return opset


def _run_exporter(net, inputs, path, opset, input_names, output_names, shapes) -> None:
    """Export with torch.export (clean graphs); where it cannot keep a length free (some torch
    operators fix it while tracing), fall back to the TorchScript exporter."""
    try:
        _export(net, inputs, path, opset, input_names, output_names, dynamic_shapes=shapes)
        if _kept_dynamic(path, shapes, net):
            return
        first = RuntimeError("torch.export fixed a free length")
    except Exception as err:
        first = err
    axes = _dynamic_axes(shapes, input_names, output_names, net)
    try:
        _export(net, inputs, path, opset, input_names, output_names, dynamic_axes=axes)
    except Exception as err:
        raise ModelExportError(
            f"export_onnx: torch.onnx.export could not export {type(net).__name__} "
            f"'{getattr(net, 'name', '')}' at opset {opset}. torch.export said: "
            f"{str(first).strip().splitlines()[-1][:300]}; the TorchScript exporter said: {err}"
        ) from err


def _kept_dynamic(path: Path, shapes, net) -> bool:
    """True when every axis asked to be free is free in the written file."""
    import onnx

    if shapes is None:
        return True
    specs = shapes[0] if isinstance(net, Network) else shapes
    graph_inputs = onnx.load(str(path), load_external_data=False).graph.input
    for value, spec in zip(graph_inputs, specs, strict=False):
        dims = value.type.tensor_type.shape.dim
        for axis in spec or {}:
            if axis < len(dims) and dims[axis].HasField("dim_value"):
                return False
    return True


def _export(net, inputs, path, opset, input_names, output_names, **dynamic) -> None:
    legacy = "dynamic_axes" in dynamic
    with warnings.catch_warnings(), torch.no_grad(), _quiet():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            tuple(inputs),
            str(path),
            dynamo=not legacy,
            external_data=False,
            opset_version=opset,
            input_names=input_names,
            output_names=output_names,
            verbose=False,
            **dynamic,
        )


def _dynamic_axes(shapes, input_names, output_names, net) -> dict[str, dict[int, str]] | None:
    """The TorchScript exporter's form of the dynamic shapes."""
    if shapes is None:
        return None
    specs = shapes[0] if isinstance(net, Network) else shapes
    axes: dict[str, dict[int, str]] = {}
    for name, spec in zip(input_names, specs, strict=True):
        if spec:
            axes[name] = {axis: dim.__name__ for axis, dim in spec.items()}
    batch = any(0 in a for a in axes.values())
    free = any(1 in a for a in axes.values())
    for name in output_names:
        size = net.output_shape(name) if isinstance(net, Network) else None
        entry = {0: "batch"} if batch else {}
        if free and size and size[0] is None:
            entry[1] = "time"
        if entry:
            axes[name] = entry
    return axes


def _io_names(net: nn.Module, count: int) -> tuple[list[str], list[str]]:
    if isinstance(net, Network):
        return list(net.input_names), list(net.output_names)
    return [f"input_{i}" for i in range(count)], ["output"]


def _dynamic_shapes(net: nn.Module, inputs: list[torch.Tensor], dynamic_batch: bool):
    """torch.export dynamic shapes: a free batch axis, and free time for free-length inputs."""
    from torch.export import Dim

    batch, time = Dim("batch", min=1), Dim("time", min=2)
    declared = (
        [getattr(net.layers[n], "shape", ()) for n in net.input_names]
        if isinstance(net, Network)
        else [()] * len(inputs)
    )
    specs = []
    for x, shape in zip(inputs, declared, strict=True):
        spec = {0: batch} if dynamic_batch else {}
        for axis, size in enumerate(shape):
            if size is None and axis + 1 < x.dim():
                spec[axis + 1] = time
        specs.append(spec or None)
    if all(spec is None for spec in specs):
        return None
    return (tuple(specs),) if isinstance(net, Network) else tuple(specs)


@contextlib.contextmanager
def _quiet():
    """Silence the exporter's progress lines on stdout."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


def _sample_inputs(net, given, *, batch: int, seed: int = 0) -> list[torch.Tensor]:
    if given is not None:
        return [given] if isinstance(given, torch.Tensor) else list(given)
    if not isinstance(net, Network):
        raise OptionError(
            f"export_onnx: a plain {type(net).__name__} needs `sample_inputs` (a tensor or tuple "
            "of tensors, with the batch dimension). Example: sample_inputs=torch.randn(1, 3, 224, 224)."
        )
    generator = torch.Generator().manual_seed(seed)
    reference = next(net.parameters(), None)
    device = reference.device if reference is not None else torch.device("cpu")
    length = 9 + seed
    samples = []
    for name in net.input_names:
        layer: InputLayer = net.layers[name]  # type: ignore[assignment]
        size = (batch, *(length if d is None else d for d in layer.shape))
        kinds = [net.layers[c.destination] for c in net.connections if c.source == name]
        tokens = [m for m in kinds if isinstance(m, Embedding)]
        masks = [c for c in net.connections if c.source == name and c.port == "mask"] and all(
            isinstance(m, SelfAttention) for m in kinds
        )
        if tokens:
            x = torch.randint(0, tokens[0].vocabulary_size, size, generator=generator).float()
        elif masks:
            x = (torch.rand(size, generator=generator) > 0.3).float()
            x[:, 0] = 1.0
        else:
            x = torch.randn(size, generator=generator)
        samples.append(x.to(device))
    return samples


def _finish_model(net: nn.Module, path: Path) -> None:
    """Name nodes after the layers they come from and write the toolbox's metadata."""
    import onnx

    model = onnx.load(str(path))
    _name_nodes(model)
    _write_metadata(net, model)
    onnx.save(model, str(path))


_PARAMETER = re.compile(r"^layers\.([^.]+)\.")


def _layer_of(node, initializers: set[str]) -> str | None:
    for name in node.input:
        match = _PARAMETER.match(name)
        if name in initializers and match:
            return match.group(1)
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            scopes = [s for s in re.findall(r"'([^']*)'", prop.value) if s.startswith("layers.")]
            if scopes:
                return scopes[-1].split(".")[1]
    return None


def _name_nodes(model) -> None:
    """Rename ``node_Conv_54`` to ``conv1`` (the layer), ``conv1/Add`` for a layer's other nodes."""
    initializers = {t.name for t in model.graph.initializer}
    taken: set[str] = set()
    for node in model.graph.node:
        layer = _layer_of(node, initializers)
        if layer is None:
            continue
        name = layer if layer not in taken else f"{layer}/{node.op_type}"
        suffix = 1
        while name in taken:
            suffix += 1
            name = f"{layer}/{node.op_type}_{suffix}"
        taken.add(name)
        node.name = name


def _write_metadata(net: nn.Module, model) -> None:
    entries = {"producer": "deeptoolbox"}
    if isinstance(net, Network):
        entries["network"] = net.name
        if net.classes is not None:
            entries["classes"] = json.dumps(net.classes)
        entries["inputs"] = json.dumps({n: type(net.layers[n]).__name__ for n in net.input_names})
    for key, value in entries.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = METADATA_PREFIX + key, value
    if isinstance(net, Network) and net.classes is not None:
        prop = model.metadata_props.add()  # the key MATLAB and other tools read
        prop.key, prop.value = "classes", ",".join(net.classes)


def verify_onnx(
    net: nn.Module,
    path: str | os.PathLike,
    inputs: Sequence[torch.Tensor] | torch.Tensor,
    *,
    tolerance: float = 1e-4,
    label: str | None = None,
) -> float:
    """Run an ONNX file in onnxruntime and compare its outputs with ``net``'s.

    Returns the largest difference ``|onnx - torch| / (1 + |torch|)`` over all outputs; raises
    :class:`ModelExportError` naming the output and the difference when it exceeds ``tolerance``.

    Example:
        >>> import tempfile, os, torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(4), L.Dense(3)])
        >>> path = export_onnx(net, os.path.join(tempfile.mkdtemp(), "n.onnx"), verify=False)
        >>> verify_onnx(net, path, torch.randn(5, 4)) < 1e-5
        True
    """
    import onnxruntime

    label = label or Path(path).name
    inputs = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {
        arg.name: x.detach().cpu().numpy().astype(np.float32)
        for arg, x in zip(session.get_inputs(), inputs, strict=False)
    }
    try:
        results = session.run(None, feeds)
    except Exception as err:
        raise ModelExportError(
            f"ONNX check of {label}: onnxruntime cannot run the file on inputs of size "
            f"{[tuple(x.shape) for x in inputs]}: {err}"
        ) from err
    was_training = net.training
    net.eval()
    with torch.no_grad():
        expected = net(*inputs)
    net.train(was_training)
    expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
    worst = 0.0
    for arg, got, want in zip(session.get_outputs(), results, expected, strict=False):
        want_np = want.detach().cpu().numpy()
        if got.shape != want_np.shape:
            raise ModelExportError(
                f"ONNX check of {label}: output '{arg.name}' has size {got.shape} in "
                f"onnxruntime but {want_np.shape} in the network."
            )
        difference = float(np.max(np.abs(got - want_np) / (1 + np.abs(want_np)), initial=0.0))
        if not difference <= tolerance:
            raise ModelExportError(
                f"ONNX check of {label}: output '{arg.name}' differs from the network "
                f"by up to {difference:.3g} (tolerance {tolerance:g}) on a sample batch of size "
                f"{[tuple(x.shape) for x in inputs]}. The file was not written. Pass verify=False "
                "to write it anyway, or report the layer types involved."
            )
        worst = max(worst, difference)
    return worst
