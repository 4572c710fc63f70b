"""PyTorch interoperability: from_torch, import_pytorch (TorchScript, .pt2) and export_pytorch."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deeptoolbox._atomic import atomic_path
from deeptoolbox._deprecation import renamed_arguments
from deeptoolbox.errors import ModelImportError, OptionError, _TraceDisagrees
from deeptoolbox.interop._operators import OpaqueModule
from deeptoolbox.interop._samples import sample_inputs
from deeptoolbox.interop._verify import check_unsupported, refuse_opaque, verify_torch_file
from deeptoolbox.interop.torch._blocks import is_block
from deeptoolbox.interop.torch._keys import KEYS, key_map, warn_untied
from deeptoolbox.interop.torch._sizes import Sizes, give_up, probe, requested
from deeptoolbox.interop.torch._trace import Converter, trace
from deeptoolbox.interop.torch._values import Meta, input_layer, output_label, output_leaves
from deeptoolbox.network import Network

Inputs = torch.Tensor | Sequence[torch.Tensor]
FORMATS = ("torchscript", "exported-program")
_SIZES = "deeptoolbox_inputs.json"  # example input sizes, kept inside TorchScript files


def _sizes_json(inputs: tuple[torch.Tensor, ...]) -> str:
    return json.dumps([
        {"shape": list(x.shape), "dtype": str(x.dtype).removeprefix("torch.")} for x in inputs
    ])  # fmt: skip


def _inputs_from_json(text: str) -> tuple[torch.Tensor, ...] | None:
    try:
        return tuple(
            torch.zeros(item["shape"], dtype=getattr(torch, item["dtype"]))
            for item in json.loads(text)
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _as_inputs(example_inputs: Inputs, where: str) -> tuple[torch.Tensor, ...]:
    items = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else example_inputs
    if (
        not isinstance(items, Sequence)
        or not items
        or not all(isinstance(x, torch.Tensor) and x.dim() >= 1 for x in items)
    ):
        raise OptionError(
            f"{where}: `example_inputs` must be a tensor or a sequence of tensors, each with a "
            f"batch dimension. Received: {type(example_inputs).__name__}. Example: "
            "torch.randn(1, 3, 224, 224)."
        )
    return tuple(items)


def _flat(output: object) -> list[torch.Tensor] | None:
    leaves = output_leaves(output, torch.Tensor)
    return None if leaves is None else [x for _, x in leaves]


def _not_tensors(module: nn.Module, output: object) -> str:
    """Why ``output`` cannot be a network's outputs, naming the first value that is not a tensor."""

    def first_bad(value: object, path: str) -> tuple[str, object] | None:
        if isinstance(value, torch.Tensor):
            return None
        if isinstance(value, tuple | list) and value:
            items = [(f"{path}[{k}]", v) for k, v in enumerate(value)]
        elif isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
            items = [(f"{path}[{k!r}]", v) for k, v in value.items()]
        else:
            return path, value
        return next((bad for p, v in items if (bad := first_bad(v, p)) is not None), None)

    where, value = first_bad(output, "output") or ("output", output)
    what = f"an empty {type(value).__name__}" if isinstance(value, tuple | list | dict) else (
        "a dict with non-string keys" if isinstance(value, dict) else type(value).__name__
    )  # fmt: skip
    return (
        f"from_torch: {type(module).__name__} returns {where} = {what}. from_torch converts "
        "modules that return tensors, or tuples, lists and dicts (string keys) of tensors, "
        "nested or not (the network returns them flattened, in order). Wrap the module so that "
        "its forward returns only tensors."
    )


def _agree(expected: list[torch.Tensor], found: object, tolerance: float) -> bool:
    got = _flat(found)
    if got is None or len(got) != len(expected):
        return False
    for a, b in zip(expected, got, strict=True):
        if a.shape != b.shape:
            return False
        scale = max(1.0, float(a.detach().abs().max())) if a.numel() else 1.0
        if a.numel() and float((a.detach() - b.detach()).abs().max()) > tolerance * scale:
            return False
    return True


def wrap(
    module: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    outputs: int | list,
    free: Mapping[int, tuple[int, ...]] | None = None,
    resized: tuple[torch.Tensor, ...] = (),
) -> Network:
    """A Network holding ``module`` whole as one opaque layer per output.

    ``outputs`` is the number of outputs, or the ``[(path, tensor)]`` leaves of the value the
    module returns (see :func:`output_leaves`), each output layer named after its path;
    ``free`` lists, per input, the dimensions its input layer leaves free, and ``resized``
    holds example inputs at other free sizes (the module is probed at both to learn its
    output sizes).

    Example:
        >>> import torch
        >>> net = wrap(torch.nn.Identity(), (torch.zeros(1, 3),), 1)
        >>> net.layer_names
        ['input_1', 'module']
    """
    if isinstance(outputs, int):
        outputs = [((), None)] if outputs == 1 else [((k,), None) for k in range(outputs)]
    net = Network(name=type(module).__name__ or "network")
    with net.editing():
        _wrap_into(net, module, inputs, outputs, free, resized)
    return net


def _wrap_into(
    net: Network,
    module: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    outputs: list,
    free: Mapping[int, tuple[int, ...]] | None,
    resized: tuple[torch.Tensor, ...],
) -> None:
    names = []
    for k, x in enumerate(inputs, start=1):
        layer = input_layer(Meta(tuple(x.shape), x.dtype), (free or {}).get(k - 1, ()))
        if layer is None:
            raise OptionError(
                f"from_torch: example input {k} has size {tuple(x.shape)}; a network input takes "
                "2 to 5 dimensions, batch included."
            )
        names.append(f"input_{k}")
        net.add_layers({names[-1]: layer})
    dtypes = [str(x.dtype).removeprefix("torch.") for x in inputs]
    probes = [[list(x.shape) for x in inputs], [list(x.shape) for x in resized]] if free else None
    for path, _ in outputs:
        name = "module" if not path else f"module_{output_label(path)}"
        index = None if not path else path[0] if len(path) == 1 else list(path)
        layer = OpaqueModule(
            module, num_inputs=len(inputs), output_index=index, input_dtypes=dtypes,
            probe_shapes=probes,
        )  # fmt: skip
        net.add_layers({name: layer})
        for source, port in zip(names, layer.input_names, strict=True):
            net.connect(source, f"{name}/{port}")


def from_torch(
    module: nn.Module,
    example_inputs: Inputs,
    *,
    name: str | None = None,
    tolerance: float = 1e-4,
    dynamic_dims: Mapping[int, int | Sequence[int]] | str | None = "auto",
    unsupported: str = "operator",
) -> Network:
    """Bring any ``nn.Module`` in as a Network, traced layer by layer where possible.

    The module is traced with ``torch.fx``, in evaluation and in training mode: calls that
    depend on ``self.training`` keep doing so (``F.dropout(x, p, self.training)`` becomes a
    Dropout layer, both sides of ``if self.training:`` are kept, each running in its own mode,
    joined by a :class:`ModeSwitch`). Calls with a toolbox equivalent become toolbox layers
    with copied weights (``nn.Conv2d`` -> Conv2d,
    ``nn.Linear`` -> Dense, ``nn.BatchNorm2d`` -> BatchNorm, activations, pooling, flatten,
    ``+`` -> Addition, ``torch.cat`` -> Concatenation...), named after module paths
    (``layer1.0.conv1`` -> ``layer1_0_conv1``); other calls become ``TorchFunction`` /
    ``TorchModule`` layers, which save and load like any layer. A submodule that cannot be
    traced is kept whole as an :class:`OpaqueModule`; if the module itself cannot be traced,
    or the traced network does not reproduce its outputs within ``tolerance`` (relative to the
    output's largest magnitude), the whole module is wrapped (with a warning), so a working
    model is never refused: that is ``unsupported="operator"`` (default); with
    ``unsupported="error"`` a network that would hold an opaque layer raises
    :class:`ModelImportError` naming those layers instead.

    Input layers declare the example inputs' sizes, the batch always free. With
    ``dynamic_dims="auto"`` (default) sequence lengths are freed too wherever the module runs
    at other lengths and the network reproduces it there (checked on a second, grown example);
    ``"all"`` frees image heights and widths the same way (the input layer is then a
    ``TensorInput``); ``dynamic_dims={0: (2, 3)}`` frees exactly those dimensions of input 0
    (batch included in the count, as ``torch.export`` counts them) or fails saying why, and
    ``dynamic_dims=None`` keeps every size but the batch. Outputs that are nested tuples or
    dicts come out flattened in order, each as an output layer named after its key or
    position. Tensors the module uses at several places (a shared encoder, tied embeddings)
    stay one tensor; ``original_state_dict(net)`` gives the weights under the module's own
    ``state_dict`` keys.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        >>> net = from_torch(model, torch.randn(3, 4))
        >>> net.layer_names
        ['input_1', 'layer_0', 'layer_1', 'layer_2']
        >>> x = torch.randn(5, 4)
        >>> torch.allclose(net(x), model(x))
        True
    """
    if not isinstance(module, nn.Module):
        raise OptionError(
            f"from_torch: `module` must be a torch.nn.Module. Received: {type(module).__name__}."
        )
    check_unsupported("from_torch", unsupported, ("error", "operator"))
    inputs = _as_inputs(example_inputs, "from_torch")
    sizes = requested(dynamic_dims, inputs)
    was_training = module.training
    _set_mode(module, False)
    try:
        with torch.no_grad():
            reference = module(*inputs)
        expected = _flat(reference)
        if expected is None:
            raise OptionError(_not_tensors(module, reference))
        sizes = probe(module, inputs, sizes, len(expected))
        net = _traced(module, inputs, expected, tolerance, sizes)
    finally:
        _set_mode(module, was_training)
    if net is None:
        net = wrap(module, inputs, output_leaves(reference, torch.Tensor), sizes.free, sizes.inputs)
    if unsupported == "error":
        refuse_opaque("from_torch", net, type(module).__name__)
    net.name = name or type(module).__name__
    return net.train(was_training)


def _set_mode(module: nn.Module, training: bool) -> None:
    with contextlib.suppress(NotImplementedError):  # an ExportedProgram's module
        module.train(training)


class _Root(nn.Module):
    """A module that maps onto several layers (a transformer encoder), traced as a call."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        name = re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", type(module).__name__).lower()
        self.add_module(name, module)
        self.inner = name

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return getattr(self, self.inner)(*inputs)


def _traced(
    module: nn.Module, inputs: tuple[torch.Tensor, ...], expected: list[torch.Tensor],
    tolerance: float, sizes: Sizes,
) -> Network | None:  # fmt: skip
    if isinstance(module, torch.jit.ScriptModule):
        return None  # TorchScript cannot be traced by torch.fx: keep it whole, silently
    try:
        gm = trace(_Root(module) if is_block(module) else module, len(inputs))
        if gm is None:
            why = "its forward cannot be traced by torch.fx (data-dependent control flow?)"
        else:
            records: dict = {}  # the runs at the example size, shared by both attempts
            if sizes.free:
                try:
                    return _converted(module, gm, inputs, expected, tolerance, sizes, records)
                except Exception as err:  # noqa: BLE001 - try again with fixed sizes
                    give_up(module, inputs, sizes, _reason(err, "at the other sizes"))
            return _converted(module, gm, inputs, expected, tolerance, None, records)
    except _TraceDisagrees:
        why = "the traced network does not reproduce its outputs"
    except OptionError:
        raise
    except Exception as err:  # noqa: BLE001 - whatever went wrong, the module still runs whole
        why = f"tracing failed: {_reason(err)}"
    warnings.warn(
        f"from_torch: {type(module).__name__} is wrapped as one opaque layer: {why}.",
        stacklevel=3,
    )
    return None


def _reason(err: Exception, where: str = "") -> str:
    if isinstance(err, _TraceDisagrees):
        return f"the traced network does not reproduce the module {where}".strip()
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = " ".join(lines[:2]).rstrip(":")  # a NotInitializedError's first problem too
    return f"{type(err).__name__}: {text}"


def _converted(
    module: nn.Module, gm: torch.fx.GraphModule, inputs: tuple[torch.Tensor, ...],
    expected: list[torch.Tensor], tolerance: float, sizes: Sizes | None,
    records: dict | None = None,
) -> Network:  # fmt: skip
    """The network, checked against the module at the example (and grown) sizes."""
    converter = Converter(gm, inputs, sizes.free if sizes else None, (records or {}).get("runs"))
    if records is not None:
        records["runs"] = (converter.seen, converter.seen_grown)
    net = converter.convert().eval()
    with torch.no_grad():
        if not _agree(expected, net(*inputs), tolerance):
            raise _TraceDisagrees
        if sizes and not _agree(sizes.expected, net(*sizes.inputs), tolerance):
            raise _TraceDisagrees
    _record_keys(module, net, converter.origins)
    return net


def _record_keys(module: nn.Module, net: Network, origins: dict) -> None:
    """Keep the original state_dict keys (net.metadata) and warn about untied copies."""
    net.metadata[KEYS] = key_map(module, origins)
    warn_untied(module, net, origins)


def _program_inputs(program: torch.export.ExportedProgram) -> tuple[torch.Tensor, ...]:
    example = getattr(program, "example_inputs", None)
    if example is not None and example[0]:
        return tuple(example[0])
    tensors = []
    for spec in program.graph_signature.input_specs:
        if spec.kind.name == "USER_INPUT":
            node = next(n for n in program.graph.nodes if n.name == spec.arg.name)
            value = node.meta["val"]
            shape = [
                int(getattr(d, "node", d).hint if hasattr(d, "node") else d) for d in value.shape
            ]
            tensors.append(torch.zeros(shape, dtype=value.dtype))
    return tuple(tensors)


@renamed_arguments(positional=("example_inputs",))
def import_pytorch(
    path: str | os.PathLike,
    *,
    example_inputs: Inputs | None = None,
    name: str | None = None,
    unsupported: str = "operator",
    trust_code: bool = False,
) -> Network:
    """Import a TorchScript (``.pt``) or ``torch.export`` (``.pt2``) file as a Network.

    A ``.pt2`` ExportedProgram is traced into toolbox layers (see :func:`from_torch`); its
    example inputs are stored in the file. A TorchScript module is kept whole as one opaque
    layer; TorchScript files do not record input sizes, so give ``example_inputs`` (files
    written by :func:`export_pytorch` record them). Pickled checkpoints (``torch.save`` of a
    module) are refused: they can run arbitrary code.

    When the file is kept as an opaque layer (TorchScript, or a program that cannot be mapped
    to toolbox layers), it says so with a warning, as :func:`from_torch` does; that is
    ``unsupported="operator"`` (default), and ``unsupported="error"`` raises
    :class:`ModelImportError` instead. ``name`` names the network (default: the file name).
    ``example_inputs`` by position still works, with a DeprecationWarning.

    Both kinds can run code when they are loaded: a TorchScript file is a program (it runs
    in ``torch.jit.load`` and on every forward), and ``torch.export.load`` falls back to
    unpickling a ``.pt2`` file's weights and constants. Each is opened only with
    ``trust_code=True``, for files whose source you would run (docs/security.md).

    Example:
        >>> import torch, tempfile, os
        >>> model = torch.jit.script(torch.nn.Linear(3, 2))
        >>> path = os.path.join(tempfile.mkdtemp(), "model.pt")
        >>> model.save(path)
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")  # TorchScript stays one opaque layer
        ...     net = import_pytorch(path, example_inputs=torch.zeros(1, 3), trust_code=True)
        >>> net(torch.ones(4, 3)).shape
        torch.Size([4, 2])
    """
    check_unsupported("import_pytorch", unsupported, ("error", "operator"))
    path = Path(path)
    if not path.is_file():
        raise ModelImportError(f"import_pytorch: the file '{path}' does not exist.")
    if not zipfile.is_zipfile(path):
        raise ModelImportError(
            f"import_pytorch: '{path}' is not a TorchScript or torch.export file (those are zip "
            "archives); it may be truncated, of another format, or a pickled checkpoint of "
            "torch.save's old format, which the toolbox never loads: load it into your module "
            "yourself and call from_torch(module, example_inputs)."
        )
    # what the archive holds decides, not its extension (a renamed file keeps its kind)
    program_file = _is_exported_program(path) or (
        path.suffix == ".pt2" and not _is_torchscript(path)
    )
    if not program_file and not _is_torchscript(path):
        raise ModelImportError(
            f"import_pytorch: '{path}' is neither TorchScript nor a torch.export program: a "
            "zip without TorchScript code, such as a checkpoint saved with torch.save(model), "
            "which is pickle, and the toolbox never loads pickle: load it into your module "
            "yourself and call from_torch(module, example_inputs)."
        )
    if trust_code is not True:
        what = (
            "a torch.export program, whose weights and constants torch.export.load may unpickle"
            if program_file else "TorchScript, a program: loading it runs its code"
        )  # fmt: skip
        raise ModelImportError(
            f"import_pytorch: '{path}' is {what}. Open it only if you trust its source, with "
            "import_pytorch(path, trust_code=True) (on the command line: --trust-code); files "
            "from others are safe to open as ONNX "
            "(import_onnx) or saved networks (load)."
        )
    if program_file:
        try:
            program = torch.export.load(str(path))
        except Exception as err:  # noqa: BLE001 - any reading failure is a bad file
            raise ModelImportError(
                f"import_pytorch: '{path}' cannot be read as a torch.export program: {err}"
            ) from err
        inputs = _program_inputs(program) if example_inputs is None else example_inputs
        net = from_program(program, _as_inputs(inputs, "import_pytorch"), name=name or path.stem)
        return _checked(net, path, unsupported, "a torch.export program")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            extra = {_SIZES: ""}
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as err:  # noqa: BLE001
        raise ModelImportError(
            f"import_pytorch: '{path}' cannot be read as TorchScript: {err}. A checkpoint saved "
            "with torch.save(model) is pickle, which the toolbox never loads: load it into your "
            "module yourself and call from_torch(module, example_inputs)."
        ) from err
    if example_inputs is None:
        example_inputs = _inputs_from_json(extra[_SIZES]) if extra[_SIZES] else None
    if example_inputs is None:
        raise OptionError(
            f"import_pytorch: '{path}' is TorchScript, which does not record input sizes (files "
            "written by export_pytorch do). Pass example_inputs, e.g. "
            "import_pytorch(path, example_inputs=torch.zeros(1, 3, 224, 224))."
        )
    net = from_torch(module, example_inputs, name=name or path.stem).eval()
    return _checked(net, path, unsupported, "TorchScript, which torch.fx cannot trace")


def _checked(net: Network, path: Path, unsupported: str, why: str) -> Network:
    """Refuse (``"error"``) or warn about opaque layers, as from_torch warns."""
    if unsupported == "error":
        refuse_opaque("import_pytorch", net, path)
    opaque = [n for n, m in net.layers.items() if isinstance(m, OpaqueModule)]
    if opaque:
        warnings.warn(
            f"import_pytorch: '{path.name}' is kept as opaque layers {opaque} that run the "
            f"original code: the file holds {why}. Pass unsupported='error' to refuse it.",
            stacklevel=3,
        )
    return net


class _Program(nn.Module):
    """An ExportedProgram's module, whose mode cannot change, inside a module whose mode can."""

    def __init__(self, program: torch.export.ExportedProgram) -> None:
        super().__init__()
        self.program = program.module()

    def train(self, mode: bool = True) -> _Program:
        self.training = mode  # the program runs as it was exported
        return self

    def forward(self, *inputs: torch.Tensor) -> object:
        return self.program(*inputs)


def from_program(
    program: torch.export.ExportedProgram, inputs: tuple[torch.Tensor, ...], *, name: str
) -> Network:
    """Turn an ExportedProgram's graph (ATen operators) into a Network, else wrap it whole.

    Example:
        >>> import torch
        >>> program = torch.export.export(torch.nn.Linear(3, 2), (torch.zeros(2, 3),))
        >>> from_program(program, (torch.zeros(2, 3),), name="linear").layer_names
        ['input_1', 'linear']
    """
    module = _Program(program)
    with torch.no_grad():
        expected = _flat(module(*inputs))
    if expected is None:
        raise ModelImportError(f"import_pytorch: the program '{name}' does not return tensors.")
    sizes = probe(module, inputs, Sizes(_program_free_dims(program)), len(expected))
    for attempt in (sizes, None) if sizes.free else (None,):  # free sizes, else fixed ones
        try:
            net = _converted(module.program, module.program, inputs, expected, 1e-4, attempt)
            net.name = name
            return net
        except Exception:  # noqa: BLE001, S112 - the program still runs whole
            continue
    net = wrap(module, inputs, 1 if len(expected) == 1 else len(expected), sizes.free, sizes.inputs)
    net.name = name
    return net.eval()


def _program_free_dims(program: torch.export.ExportedProgram) -> dict[int, tuple[int, ...]]:
    """The dimensions (batch aside) a program keeps symbolic, per user input."""
    free: dict[int, tuple[int, ...]] = {}
    specs = [s for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    for index, spec in enumerate(specs):
        node = next((n for n in program.graph.nodes if n.name == spec.arg.name), None)
        value = node.meta.get("val") if node is not None else None
        shape = getattr(value, "shape", ())
        dims = tuple(k for k, d in enumerate(shape) if k > 0 and not isinstance(d, int))
        if dims:
            free[index] = dims
    return free


def _is_torchscript(path: Path) -> bool:
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in n for n in archive.namelist())


def _is_exported_program(path: Path) -> bool:
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("archive_format") or "/models/" in n for n in archive.namelist())


def example_batch(net: Network, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Random tensors shaped as the network's inputs (free lengths 8, token ids for embeddings).

    Example:
        >>> from deeptoolbox import layers as L
        >>> example_batch(Network([L.SequenceInput(3), L.LSTM(4)]))[0].shape
        torch.Size([2, 8, 3])
    """
    return tuple(sample_inputs(net, batch=batch, length=8))


def export_pytorch(
    net: nn.Module,
    path: str | os.PathLike,
    *,
    example_inputs: Inputs | None = None,
    verify: bool = True,
    tolerance: float = 1e-4,
    format: str = "torchscript",  # noqa: A002 - the natural name
) -> Path:
    """Write a network as TorchScript (``format="torchscript"``) or a ``torch.export`` program.

    TorchScript files load with ``torch.jit.load`` (also from C++), ``"exported-program"``
    files (``.pt2``) with ``torch.export.load``; both run without deeptoolbox. The network is
    traced in evaluation mode on ``example_inputs`` (default: random inputs of the declared
    sizes); the batch size stays free. The file is written to a temporary name and then
    renamed, so a failed export never leaves a partial file. With ``verify=True`` (default)
    the written file is loaded back with torch and its outputs on ``example_inputs`` compared
    with the network's (``|file - net| / (1 + |net|) <= tolerance``) before the rename; a
    disagreement raises ``ModelExportError``.

    Example:
        >>> import torch, tempfile, os
        >>> from deeptoolbox import layers as L
        >>> net = Network([L.FeatureInput(3), L.Dense(2)])
        >>> path = export_pytorch(net, os.path.join(tempfile.mkdtemp(), "net.pt"))
        >>> torch.jit.load(path)(torch.ones(5, 3)).shape
        torch.Size([5, 2])
    """
    if format not in FORMATS:
        raise OptionError(
            f"export_pytorch: `format` must be one of {', '.join(map(repr, FORMATS))}. "
            f"Received: format={format!r}."
        )
    path = Path(path)
    if isinstance(net, Network):
        inputs = example_batch(net) if example_inputs is None else _as_inputs(example_inputs, "")
    elif example_inputs is None:
        raise OptionError("export_pytorch: give example_inputs for a module that is not a Network.")
    else:
        inputs = _as_inputs(example_inputs, "export_pytorch")
    was_training = net.training
    net.eval()
    try:
        return _write(net, path, format, inputs, tolerance if verify else None)
    finally:
        net.train(was_training)


def _write(
    net: nn.Module, path: Path, format: str, inputs: tuple[torch.Tensor, ...],  # noqa: A002
    tolerance: float | None,
) -> Path:  # fmt: skip
    # serialized in memory first: torch's file writer aborts the whole process when a write
    # fails (disk full), where a failed Python write raises FileWriteError
    buffer = io.BytesIO()
    if format == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is "deprecated"
            traced = torch.jit.trace(net, inputs, check_trace=False)
            torch.jit.save(traced, buffer, _extra_files={_SIZES: _sizes_json(inputs)})
    else:
        torch.export.save(_export(net, inputs), buffer)
    with atomic_path(path, suffix=path.suffix or ".tmp") as temporary:
        temporary.write_bytes(buffer.getbuffer())
        if tolerance is not None:
            verify_torch_file(net, Path(temporary), format, inputs, tolerance)
    return path


def _export(net: nn.Module, inputs: tuple[torch.Tensor, ...]) -> torch.export.ExportedProgram:
    hooks = []
    if isinstance(net, Network):
        # a hook makes the network call its layers through nn.Module.__call__, so the program
        # records each operation's layer name (import_pytorch names layers after them)
        hooks = [layer.register_forward_pre_hook(_no_hook) for layer in net.layers.values()]
    dynamic = _dynamic_shapes(net, inputs)
    try:
        for shapes in ((dynamic,), dynamic):  # forward(*inputs) or forward(x, y, ...)
            try:
                return torch.export.export(net, inputs, dynamic_shapes=shapes)
            except Exception:  # noqa: BLE001, S112 - try the next form, then a fixed batch size
                continue
        return torch.export.export(net, inputs)
    finally:
        for hook in hooks:
            hook.remove()


def _no_hook(module: nn.Module, inputs: tuple) -> None:
    return None


def _dynamic_shapes(net: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[dict, ...]:
    """A free batch for every input, and the lengths a Network's input layers leave free.

    Free lengths are ``Dim.AUTO``: torch.export keeps them free where the graph allows (and
    relates the lengths of several inputs itself) instead of failing where it cannot.
    """
    batch = torch.export.Dim("batch", min=1)
    shapes = []
    for index, x in enumerate(inputs):
        spec: dict[int, Any] = {0: batch}
        if isinstance(net, Network) and index < len(net.input_names):
            declared = getattr(net.layers[net.input_names[index]], "shape", ())
            for axis, size in enumerate(declared):
                if size is None and axis + 1 < x.dim():
                    spec[axis + 1] = torch.export.Dim.AUTO
        shapes.append(spec)
    return tuple(shapes)
