"""import_onnx(): an ONNX file as a deeptoolbox Network.

Nodes become toolbox layers where one is equivalent (see :func:`mapped_operators`), and groups
of nodes that exporters write for one LSTM, GRU, Conv1d or global pooling layer become that
layer (see :mod:`._patterns`); other nodes become operator layers (see
:func:`supported_onnx_operators`). Initializers become weights, and constant sub-graphs are
folded at import. Files from older exporters (IR version 3+, opset 7+,
initializers listed among the graph inputs) are read too: opsets below 13 are upgraded with
onnx's version converter.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deeptoolbox import layers as L
from deeptoolbox._limits import ReadLimits, read_limits
from deeptoolbox.errors import ModelExportError, ModelImportError, _ShortSample
from deeptoolbox.interop._verify import check_unsupported
from deeptoolbox.interop.onnx._graph import node_attributes as _attributes
from deeptoolbox.interop.onnx._layers import (
    OnnxOperator,
    OnnxPlaceholder,
    as_tensor,
    dtype_name,
    encode_attribute,
)
from deeptoolbox.interop.onnx._limits import (
    check_folded_size,
    check_initializers,
    check_node_count,
)
from deeptoolbox.interop.onnx._mapping import load_weights, map_node
from deeptoolbox.interop.onnx._metadata import (
    layer_classes,
    network_name,
    restore_folded_batchnorms,
)
from deeptoolbox.interop.onnx._normalization import fold_input_normalization
from deeptoolbox.interop.onnx._ops import onnx_dtype
from deeptoolbox.interop.onnx._patterns import Fused, fuse_patterns
from deeptoolbox.interop.onnx._registry import OPERATORS, operator_table, supported_operators
from deeptoolbox.layers._base import Layer
from deeptoolbox.network._network import Network

MIN_IR_VERSION = 3
MIN_OPSET = 7
UPGRADE_BELOW = 13
_STANDARD_DOMAINS = ("", "ai.onnx")
_SAMPLE_SIZES = ((2, 5), (3, 7))  # (batch, free length) of the two sizing runs
# tried when a layer fails on the short samples: stacks of convolutions and poolings along a
# free axis can shrink 5 steps to nothing (short samples stay first: learned position tables
# may be shorter than these)
_LONG_SAMPLE_SIZES = ((2, 67), (3, 101))


@dataclass
class _Value:
    """A tensor of the graph during import: a constant, or a layer output with two samples."""

    constant: torch.Tensor | None = None
    layer: str | None = None
    samples: tuple[torch.Tensor, torch.Tensor] | None = None
    size: tuple[int | None, ...] | None = None


@dataclass
class _Build:
    """The network under construction."""

    path: Path
    values: dict[str, _Value] = field(default_factory=dict)
    layers: dict[str, nn.Module] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    free: bool = False  # does any input have a free length besides the batch axis?
    removed: dict[str, Any] = field(default_factory=dict)  # value -> node a pattern replaced
    limits: ReadLimits | None = None
    sample_sizes: tuple[tuple[int, int], ...] = _SAMPLE_SIZES


def supported_onnx_operators() -> list[str]:
    """ONNX operators that import_onnx maps or runs (default domain, opset 7 and later).

    Example:
        >>> ops = supported_onnx_operators()
        >>> "Conv" in ops, "LSTM" in ops, "NonMaxSuppression" in ops
        (True, True, False)
    """
    return supported_operators()


def onnx_operator_table() -> str:
    """A markdown table of the supported ONNX operators and what each becomes
    (``docs/interop-onnx.md`` lists this table).

    Example:
        >>> print(onnx_operator_table().splitlines()[0])
        | ONNX operator | becomes |
    """
    return operator_table()


def import_onnx(
    path: str | os.PathLike,
    *,
    example_inputs: torch.Tensor | Sequence[torch.Tensor] | None = None,
    name: str | None = None,
    unsupported: str = "error",
    limits: ReadLimits | None = None,
) -> Network:
    """Read an ONNX file as a Network: analyzable, editable, trainable and saveable.

    Args:
        path: the ``.onnx`` file (IR version 3+, opset 7+ of the default domain).
        example_inputs: when given, the imported network is run on them and compared with
            onnxruntime running the file (needs onnxruntime); a difference above 1e-4
            raises :class:`ModelImportError`.
        unsupported: ``"error"`` (default) raises :class:`ModelImportError` listing every
            unsupported operator with its node names; ``"placeholder"`` puts an
            :class:`OnnxPlaceholder` layer in their place, which ``analyze`` reports and which
            must be replaced before the network runs. (``"operator"``, the importers' third
            choice, is not offered: the toolbox has no engine for ONNX operators it does not
            implement.)
        name: the network's name (default: the name export_onnx recorded, else the graph's
            name or the file name).
        limits: what the file may declare (:class:`deeptoolbox.ReadLimits`, None for the
            defaults): the graph's node count, checked before the file is parsed, and the
            initializers' sizes (docs/security.md). External data may not point outside the
            model's folder.

    Returns:
        A :class:`~deeptoolbox.Network` whose inputs and outputs follow the graph's, with class
        names from the model's metadata (``deeptoolbox.classes`` or ``classes``) when present.
        Layers are named after the nodes; for a file from :func:`export_onnx` these are the
        original layer names, and BatchNorm layers it folded come back as pass-through
        BatchNorm layers under their names.
        Nodes map onto toolbox layers (``Conv2d``, ``Dense``, ``BatchNorm``...) where their
        options fit; the node groups exporters write for ``LSTM``, ``GRU`` (batch-first, zero
        initial states), ``Conv1d`` (between transposes) and ``GlobalAvgPool`` /
        ``GlobalMaxPool`` become those layers when they compute exactly the same; everything
        else becomes exact :class:`OnnxOperator` layers.

    The network comes back in evaluation mode (ready to predict); ``deeptoolbox.train``
    switches modes itself.

    Raises:
        ModelImportError: missing, truncated, corrupt or non-ONNX file; IR version or opset too
            old; unsupported operators (with ``unsupported="error"``).

    Example:
        >>> import tempfile, os, torch
        >>> from deeptoolbox import Network, layers as L
        >>> from deeptoolbox.interop import export_onnx
        >>> net = Network([L.FeatureInput(4), L.Dense(3, name="fc"), L.ReLU(name="act")])
        >>> path = export_onnx(net, os.path.join(tempfile.mkdtemp(), "net.onnx"))
        >>> again = import_onnx(path)
        >>> x = torch.randn(2, 4)
        >>> torch.allclose(again(x), net(x), atol=1e-6)
        True
    """
    check_unsupported("import_onnx", unsupported, ("error", "placeholder"))
    path = Path(path)
    limits = read_limits(limits, "import_onnx")
    model = _load(path, limits)
    opset = _opset(model)
    model = _upgrade(model, path)
    graph = model.graph
    _check_operators(graph, path, unsupported)
    try:
        build = _built(path, graph, model, limits, _SAMPLE_SIZES)
    except _ShortSample:
        build = _built(path, graph, model, limits, _LONG_SAMPLE_SIZES)
    fold_input_normalization(build, [o.name for o in graph.output])
    network = _assemble(build, graph, name or network_name(model) or graph.name or path.stem)
    restore_folded_batchnorms(network, model)
    network.classes = _classes(model, network)
    network.metadata["source"] = {"format": "onnx", "file": path.name,
                                  "producer": model.producer_name, "opset": opset}  # fmt: skip
    if example_inputs is not None:
        _check_against_onnxruntime(network, path, example_inputs)
    return network.eval()


def _built(path: Path, graph, model, limits: ReadLimits, sizes) -> _Build:
    """The graph's values and layers, sized on samples of ``sizes`` (batch, free length)."""
    build = _Build(path, limits=limits, sample_sizes=sizes)
    for tensor in graph.initializer:
        build.values[tensor.name] = _Value(constant=_array(tensor, path))
    _add_inputs(build, graph)
    _add_items(build, graph, layer_classes(model))
    return build


def _check_against_onnxruntime(network: Network, path: Path, example_inputs) -> None:
    from deeptoolbox.interop.onnx._export import verify_onnx

    try:
        verify_onnx(network, path, example_inputs, label=f"import_onnx of '{path.name}'")
    except ModelExportError as err:
        raise ModelImportError(
            f"import_onnx: the network imported from '{path}' does not reproduce onnxruntime "
            f"on example_inputs: {err}"
        ) from err


# -- reading and checking the file -------------------------------------------------------------


def _load(path: Path, limits: ReadLimits):
    import onnx

    if not path.is_file():
        raise ModelImportError(f"import_onnx: no ONNX file at '{path}'.")
    check_node_count(path, limits)
    try:
        model = onnx.load(str(path), load_external_data=True)
    except Exception as err:
        if _external_data_error(err):
            raise ModelImportError(
                f"import_onnx: '{path}' keeps tensors in external data files, and one cannot be "
                f"read: {err} External data must be regular files inside the model's folder."
            ) from err
        raise ModelImportError(
            f"import_onnx: '{path}' is not a readable ONNX model (truncated, corrupt or another "
            f"format): {type(err).__name__}: {err}. Supported: ONNX protobuf files (.onnx), IR "
            f"version {MIN_IR_VERSION}+ and opset {MIN_OPSET}+."
        ) from err
    if not model.HasField("graph") or (not model.graph.node and not model.graph.output):
        raise ModelImportError(
            f"import_onnx: '{path}' holds no ONNX graph (empty, truncated or another format). "
            f"Supported: ONNX model files with IR version {MIN_IR_VERSION}+ and opset {MIN_OPSET}+."
        )
    if model.ir_version < MIN_IR_VERSION:
        raise ModelImportError(
            f"import_onnx: '{path}' has IR version {model.ir_version}; supported: "
            f"{MIN_IR_VERSION} and later."
        )
    check_initializers(model, path, limits)
    _check_names(model, path)
    return model


def _check_names(model, path: Path) -> None:
    """Every name of the graph is text: protobuf hands back bytes for a name that is not
    valid UTF-8, which no ONNX tool writes (a corrupt file)."""
    graph = model.graph
    values = [*graph.input, *graph.output, *graph.value_info, *graph.initializer]
    for kind, items in (("node", graph.node), ("value", values)):
        for item in items:
            names = [item.name]
            if kind == "node":
                names += [*item.input, *item.output, item.op_type, item.domain]
            bad = next((n for n in names if not isinstance(n, str)), None)
            if bad is not None:
                raise ModelImportError(
                    f"import_onnx: '{path}' has a {kind} name that is not valid UTF-8 text "
                    f"({bad[:40]!r}): the file is corrupt."
                )


def _external_data_error(err: Exception) -> bool:
    """onnx's refusal of an external-data location (missing, absolute, outside the folder)."""
    text = str(err)
    return "Data of TensorProto" in text or "Location of external TensorProto" in text


def _opset(model) -> int:
    versions = [o.version for o in model.opset_import if o.domain in _STANDARD_DOMAINS]
    return versions[0] if versions else 1


def _upgrade(model, path: Path):
    import onnx
    from onnx import version_converter

    opset = _opset(model)
    if opset < MIN_OPSET:
        raise ModelImportError(
            f"import_onnx: '{path}' uses opset {opset}; supported: opset {MIN_OPSET} to "
            f"{onnx.defs.onnx_opset_version()}. Re-export the model with a newer opset."
        )
    if opset > onnx.defs.onnx_opset_version():
        raise ModelImportError(
            f"import_onnx: '{path}' uses opset {opset}, newer than this onnx package knows "
            f"({onnx.defs.onnx_opset_version()}). Upgrade the onnx package."
        )
    if opset >= UPGRADE_BELOW:
        return model
    listed = {value.name for value in model.graph.input}
    for tensor in model.graph.initializer:  # IR < 4 requires initializers among the inputs
        if tensor.name not in listed:
            model.graph.input.append(
                onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims)
            )
    try:
        return version_converter.convert_version(model, UPGRADE_BELOW)
    except Exception as err:
        raise ModelImportError(
            f"import_onnx: '{path}' uses opset {opset} and onnx's version converter could not "
            f"upgrade it to opset {UPGRADE_BELOW}: {err}"
        ) from err


def _check_operators(graph, path: Path, unsupported: str) -> None:
    missing: dict[str, list[str]] = {}
    for index, node in enumerate(graph.node):
        if node.domain not in _STANDARD_DOMAINS or node.op_type not in OPERATORS:
            op = (
                node.op_type
                if node.domain in _STANDARD_DOMAINS
                else f"{node.domain}.{node.op_type}"
            )
            missing.setdefault(op, []).append(node.name or f"#{index}")
    if missing and unsupported == "error":
        listing = "; ".join(f"{op} (nodes: {', '.join(map(repr, n))})" for op, n in missing.items())
        raise ModelImportError(
            f"import_onnx: '{path}' uses operators the toolbox cannot run: {listing}. Pass "
            "unsupported='placeholder' to import them as placeholder layers to replace. "
            "Supported operators: deeptoolbox.interop.supported_onnx_operators()."
        )


def _array(tensor, path: Path) -> torch.Tensor:
    from onnx import numpy_helper

    try:
        return as_tensor(numpy_helper.to_array(tensor, base_dir=str(path.parent)))
    except Exception as err:
        raise ModelImportError(
            f"import_onnx: '{path}': initializer '{tensor.name}' cannot be read ({err})."
        ) from err


# -- building layers ---------------------------------------------------------------------------


def _layer_name(build: _Build, wanted: str, fallback: str) -> str:
    base = re.sub(r"[^A-Za-z0-9_-]", "_", wanted.strip("/")) or fallback
    if not re.match(r"[A-Za-z_]", base) or hasattr(nn.ModuleDict, base):
        base = f"n_{base}"
    name, count = base, 1
    while name in build.names:
        count += 1
        name = f"{base}_{count}"
    build.names.add(name)
    return name


def _input_layer(size: tuple[int | None, ...], name: str) -> nn.Module:
    rank, fixed = len(size), all(d is not None and d > 0 for d in size)
    if rank == 1 and fixed:
        return L.FeatureInput(size[0], name=name)
    if rank == 2 and size[1] is not None and size[1] > 1:
        length = size[0] if size[0] and size[0] > 0 else None
        return L.SequenceInput(size[1], length=length, name=name)
    if rank == 3 and fixed:
        return L.ImageInput(size, name=name)
    if rank == 4 and fixed:
        return L.VolumeInput(size, name=name)
    return L.TensorInput(size, name=name)


def _add_inputs(build: _Build, graph) -> None:
    for value in graph.input:
        if value.name in build.values:  # an initializer listed among the inputs (older tools)
            continue
        tensor_type = value.type.tensor_type
        if not value.type.HasField("tensor_type"):
            raise ModelImportError(
                f"import_onnx: '{build.path}': graph input '{value.name}' is not a tensor; "
                "supported: tensor inputs."
            )
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
        if not dims:
            raise ModelImportError(
                f"import_onnx: '{build.path}': graph input '{value.name}' is a scalar; networks "
                "take batches, so inputs need a batch axis."
            )
        size = tuple(dims[1:])
        build.free = build.free or any(d is None for d in size)
        name = _layer_name(build, value.name, "input")
        build.layers[name] = _input_layer(size, name)
        try:
            dtype = onnx_dtype(tensor_type.elem_type)
        except KeyError:
            raise ModelImportError(
                f"import_onnx: '{build.path}': graph input '{value.name}' has ONNX data type "
                f"{tensor_type.elem_type}; supported: float, double, float16, bfloat16, integer "
                "and bool tensors."
            ) from None
        offset = 2 * sum(v.layer is not None for v in build.values.values())  # other inputs:
        # other samples, so that layers fed by two inputs are checked with their order
        samples = tuple(_sample(dims, dtype, batch, free, seed + offset) for seed, (batch, free)
                        in enumerate(build.sample_sizes))  # fmt: skip
        build.values[value.name] = _Value(layer=name, samples=samples, size=size)


def _sample(dims, dtype: torch.dtype, batch: int, free: int, seed: int) -> torch.Tensor:
    shape = [
        batch if i == 0 and d is None else free if d is None else d for i, d in enumerate(dims)
    ]
    if dtype.is_floating_point:
        return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(dtype)
    return torch.zeros(shape, dtype=dtype)


def _add_node(build: _Build, node, index: int, consumed: set[str]) -> None:
    inputs = [build.values.get(name) if name else None for name in node.input]
    for name, value in zip(node.input, inputs, strict=True):
        if name and value is None:
            raise ModelImportError(
                f"import_onnx: '{build.path}': node '{node.name or index}' ({node.op_type}) reads "
                f"'{name}', which no input, initializer or earlier node produces."
            )
    attrs = _attributes(node)
    supported = node.domain in _STANDARD_DOMAINS and node.op_type in OPERATORS
    if supported and all(v is None or v.constant is not None for v in inputs):
        _fold(build, node, inputs, attrs)
        return
    used = [k for k, out in enumerate(node.output) if out and out in consumed]
    for k in used:
        wanted = node.name if len(used) == 1 else f"{node.name or node.op_type}_{k}"
        layer_name = _layer_name(build, wanted or node.op_type.lower(), node.op_type.lower())
        layer, ports = _make_layer(node, k, attrs, inputs, supported, len(used))
        build.layers[layer_name] = layer
        layer.name = layer_name
        for port, value in ports:
            build.edges.append((value.layer, f"{layer_name}/{port}"))
        build.values[node.output[k]] = _size_layer(build, layer, layer_name, ports, node)


def _fold(build: _Build, node, inputs: list, attrs: dict) -> None:
    check_folded_size(node, [v.constant if v else None for v in inputs], build.path, build.limits)
    try:
        result = OPERATORS[node.op_type]([v.constant if v else None for v in inputs], attrs)
    except Exception as err:
        raise ModelImportError(
            f"import_onnx: '{build.path}': constant node '{node.name}' ({node.op_type}) cannot "
            f"be computed: {err}"
        ) from err
    results = result if isinstance(result, tuple) else (result,)
    for output, value in zip(node.output, results, strict=False):
        build.values[output] = _Value(constant=value)


def _add_items(build: _Build, graph, classes: dict[str, dict]) -> None:
    """Fold constants, fuse the node groups that are toolbox layers, add the other nodes."""
    nodes = _fold_constants(build, graph)
    outputs = [o.name for o in graph.output]
    constants = {k: v.constant for k, v in build.values.items() if v.constant is not None}
    items = fuse_patterns(nodes, constants, outputs, set(build.values), classes)
    for key, tensor in constants.items():  # indices the pattern pass added
        build.values.setdefault(key, _Value(constant=tensor))
    consumed = {n for item in items for n in item.input} | set(outputs)
    consumed |= {n for item in items if isinstance(item, Fused) for f in item.fallback
                 for n in f.input}  # fmt: skip
    index = {id(node): i for i, node in enumerate(graph.node)}
    build.removed = {out: node for item in items if isinstance(item, Fused)
                     for node in item.fallback for out in node.output}  # fmt: skip
    for item in items:
        if isinstance(item, Fused):
            _add_fused(build, item, consumed, index)
        else:
            _add_node(build, item, index.get(id(item), -1), consumed)


def _fold_constants(build: _Build, graph) -> list:
    """Compute the nodes whose inputs are all constants; return the other nodes, in order."""
    rest = []
    for node in graph.node:
        inputs = [build.values.get(name) if name else None for name in node.input]
        constant = all(
            not name or (value is not None and value.constant is not None)
            for name, value in zip(node.input, inputs, strict=True)
        )
        if constant and node.domain in _STANDARD_DOMAINS and node.op_type in OPERATORS:
            _fold(build, node, inputs, _attributes(node))
        else:
            rest.append(node)
    return rest


def _add_fused(build: _Build, fused: Fused, consumed: set[str], index: dict[int, int]) -> None:
    """Add a pattern's toolbox layer, or its original nodes when the layer does not reproduce
    them on the samples (or cannot be built for these inputs)."""
    sources = [build.values.get(name) for name in fused.input]
    samples = _fused_samples(build, fused, sources)
    if samples is None:
        for item in fused.fallback:
            _add_removed(build, item, consumed, index)
        return
    layer = fused.layer
    name = _layer_name(build, fused.name, type(layer).__name__.lower())
    layer.name = name
    build.layers[name] = layer
    for port, value in zip(_ports(layer), sources, strict=True):
        build.edges.append((value.layer, f"{name}/{port}"))
    build.values[fused.output[0]] = _Value(layer=name, samples=samples, size=_size_of(samples))


def _add_removed(build: _Build, item, consumed: set[str], index: dict[int, int]) -> None:
    """Add a node a pattern replaced, after the replaced nodes it reads (a later pattern may
    have dropped those too)."""
    if all(out in build.values for out in item.output if out in consumed):
        return  # already added
    for name in item.input:
        if name and name not in build.values and name in build.removed:
            _add_removed(build, build.removed[name], consumed, index)
    if isinstance(item, Fused):
        _add_fused(build, item, consumed, index)
    else:
        _add_node(build, item, index.get(id(item), -1), consumed)


def _fused_samples(build: _Build, fused: Fused, sources: list) -> tuple | None:
    """The fused layer's outputs on the samples, or None unless they equal the nodes' outputs."""
    if any(v is None or v.samples is None or v.layer is None for v in sources):
        return None
    if fused.ranks and sources[0].samples[0].dim() not in fused.ranks:
        return None
    runs = 2 if build.free else 1
    layer = fused.layer
    try:
        layer.build([v.size for v in sources])
        load_weights(layer, fused.weights)
        layer.eval()
        with torch.no_grad():
            samples = tuple(layer(*[v.samples[i] for v in sources]) for i in range(runs))
            expected = [_reference(build, fused, i) for i in range(runs)]
    except Exception:  # the nodes stay operators: they are exact by construction
        return None
    for got, want in zip(samples, expected, strict=True):
        if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-4, atol=1e-5):
            return None
    return samples


def _reference(build: _Build, fused: Fused, run: int) -> torch.Tensor:
    """Run the nodes a fused layer replaces on sample ``run`` with the ONNX operators."""
    values: dict[str, torch.Tensor | None] = {}

    def value(name: str) -> torch.Tensor | None:
        known = build.values.get(name)
        if not name:
            return None
        if name not in values and known is not None:
            return known.constant if known.constant is not None else known.samples[run]
        if name not in values:
            node = build.removed[name]
            attrs = _attributes(node)
            if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
                attrs["_outputs"] = 2  # the indices too (as _make_layer asks)
            result = OPERATORS[node.op_type]([value(n) for n in node.input], attrs)
            values.update(zip(node.output, result if isinstance(result, tuple) else (result,),
                              strict=False))  # fmt: skip
        return values[name]

    return value(fused.output[0])


def _make_layer(node, k: int, attrs: dict, inputs: list, supported: bool, outputs: int):
    runtime = [v for v in inputs if v is not None and v.constant is None]
    if supported and k == 0:
        consts = [None if v is None or v.constant is None else v.constant for v in inputs]
        shapes = [tuple(v.samples[0].shape) if v.samples else None for v in runtime]
        floating = all(v.samples and v.samples[0].is_floating_point() for v in runtime)
        mapped = map_node(node.op_type, attrs, consts, shapes, outputs, floating=floating)
        if mapped is not None and len(runtime) == len(_ports(mapped[0])):
            ports = list(zip(_ports(mapped[0]), runtime, strict=True))
            mapped[0]._import_weights = mapped[1]
            return mapped[0], ports
    slots: list[str | None] = []
    constants: dict[str, dict] = {}
    values: dict[str, torch.Tensor] = {}
    ports: list[tuple[str, _Value]] = []
    for value in inputs:
        if value is None:
            slots.append(None)
        elif value.constant is not None:
            key = f"const{len(constants) + 1}"
            constants[key] = {"shape": list(value.constant.shape),
                              "dtype": dtype_name(value.constant.dtype)}  # fmt: skip
            values[key] = value.constant
            slots.append(key)
        else:
            port = f"in{len(ports) + 1}"
            ports.append((port, value))
            slots.append(port)
    kind = OnnxOperator if supported else OnnxPlaceholder
    encoded = {key: encode_attribute(v) for key, v in attrs.items()}
    if node.op_type == "Split":
        encoded["_num_outputs"] = len(node.output)
    if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
        encoded["_outputs"] = 2
    layer = kind(node.op_type, attributes=encoded, slots=slots, constants=constants,
                 output_index=k)  # fmt: skip
    with torch.no_grad():
        for key, tensor in values.items():
            getattr(layer, key).copy_(tensor)
    return layer, ports


def _ports(layer: nn.Module) -> tuple[str, ...]:
    from deeptoolbox.network import input_ports

    return input_ports(layer)


def _size_layer(build: _Build, layer, name: str, ports, node) -> _Value:
    """Build the layer for its input sizes, run it on the two samples and record its size."""
    sources = [value for _, value in ports]
    if isinstance(layer, OnnxPlaceholder) or any(v.samples is None for v in sources):
        return _Value(layer=name)
    try:
        if isinstance(layer, Layer) and not isinstance(layer, OnnxOperator):
            layer.build([v.size for v in sources])
            load_weights(layer, getattr(layer, "_import_weights", {}))
            del layer._import_weights
        layer.eval()
        runs = 2 if build.free else 1  # without free lengths, sizes cannot depend on the run
        with torch.no_grad():
            samples = tuple(layer(*[v.samples[i] for v in sources]) for i in range(runs))
    except Exception as err:
        if build.free and build.sample_sizes is _SAMPLE_SIZES:
            raise _ShortSample from err  # tried again on longer samples
        raise ModelImportError(
            f"import_onnx: '{build.path}': node '{node.name}' ({node.op_type}) fails on inputs "
            f"of size {[tuple(v.samples[0].shape) for v in sources]}: {type(err).__name__}: {err}"
        ) from err
    size = _size_of(samples)
    if isinstance(layer, OnnxOperator):
        layer.output_size = size
        layer.input_sizes = [v.size for v in sources]
    return _Value(layer=name, samples=samples, size=size)


def _size_of(samples: tuple[torch.Tensor, ...]) -> tuple[int | None, ...]:
    """The size (batch excluded) of a value from its sample runs: None where they differ."""
    first, second = tuple(samples[0].shape), tuple(samples[-1].shape)
    if len(first) == len(second) and first:
        return tuple(a if a == b else None for a, b in zip(first[1:], second[1:], strict=True))
    return first[1:]


# -- the network -------------------------------------------------------------------------------


def _assemble(build: _Build, graph, name: str) -> Network:
    network = Network(name=_layer_name(_Build(build.path), name, "network"))
    _drop_unread(
        build, {build.values[o.name].layer for o in graph.output if o.name in build.values}
    )
    for output in graph.output:
        value = build.values.get(output.name)
        if value is None or value.layer is None or _feeds_others(build, value.layer):
            _add_identity(build, output.name, value)
    with network.editing():  # sizes resolved once, when every layer is connected
        for layer_name, layer in build.layers.items():
            network.add_layers({layer_name: layer})
        for source, destination in build.edges:
            network.connect(source, destination)
    wanted = [build.values[o.name].layer for o in graph.output]
    if network.output_names != wanted:
        for output in graph.output:
            _add_identity(build, output.name, build.values[output.name], network)
    return network


def _drop_unread(build: _Build, outputs: set) -> None:
    """Remove the layers nothing reads that are no graph output: another output of a node one
    of whose outputs only a fused pattern's fallback needed (MaxPool's indices)."""
    while True:
        read = {source for source, _ in build.edges}
        unread = {name for name, layer in build.layers.items()
                  if name not in read and name not in outputs
                  and not isinstance(layer, L.InputLayer)}  # fmt: skip
        if not unread:
            return
        for name in unread:
            del build.layers[name]
        build.edges = [(s, d) for s, d in build.edges if d.split("/")[0] not in unread]


def _feeds_others(build: _Build, layer: str) -> bool:
    return any(source == layer for source, _ in build.edges)


def _add_identity(build: _Build, output: str, value: _Value | None, network=None) -> None:
    """Give a graph output a layer of its own (outputs that also feed other layers, or
    constants), so the network's outputs are the graph's, in the graph's order."""
    layer_name = _layer_name(build, output, "output")
    if value is not None and value.layer is not None:
        layer = OnnxOperator("Identity", output_size=value.size, input_sizes=[value.size])
        edges = [(value.layer, f"{layer_name}/in1")]
    else:
        constant = value.constant if value is not None else torch.zeros(1)
        layer = OnnxOperator("Identity", slots=["const1"], output_size=tuple(constant.shape[1:]),
                             input_sizes=[],
                             constants={"const1": {"shape": list(constant.shape),
                                                   "dtype": dtype_name(constant.dtype)}})  # fmt: skip
        layer.const1.copy_(constant)
        edges = []
    layer.name = layer_name
    if network is None:
        build.layers[layer_name] = layer
        build.edges.extend(edges)
        build.values[output] = _Value(layer=layer_name, size=layer.output_size)
        return
    with network.editing():
        network.add_layers({layer_name: layer})
        for source, destination in edges:
            network.connect(source, destination)


def _classes(model, network: Network) -> list[str] | None:
    props = {p.key: p.value for p in model.metadata_props}
    if "deeptoolbox.classes" in props:
        try:
            return [str(c) for c in json.loads(props["deeptoolbox.classes"])]
        except (ValueError, TypeError):
            return None
    if "classes" in props and props["classes"]:
        return [c.strip() for c in props["classes"].split(",")]
    return None
