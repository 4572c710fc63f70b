"""export_onnx(): a Network (or any ``nn.Module``) to an ONNX file, checked in onnxruntime.

The file is written by ``torch.onnx.export`` (the ``torch.export``-based exporter, whose graphs
are clean: no shape arithmetic, LSTM/GRU as single nodes), with a free batch axis and free
sequence lengths, node names set to the layer names they come from, and the toolbox's metadata
(class names, input layers) in the model's ``metadata_props``. It is written to a temporary
file, run in onnxruntime on a sample and compared with the network, and only then moved into
place. LSTM/GRU layers with a padding mask export as plain tensor operations around one ONNX
LSTM/GRU node per layer and direction (see the end of this module); their mask input becomes a
graph input like any other.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deeptoolbox._atomic import atomic_path, is_write_failure
from deeptoolbox._deprecation import renamed_arguments
from deeptoolbox.errors import ModelExportError, OptionError
from deeptoolbox.interop._samples import sample_inputs
from deeptoolbox.interop.onnx._metadata import (
    batchnorm_folding,
    folded_batchnorms,
    layer_scopes,
    metadata_entries,
)
from deeptoolbox.layers._input import InputLayer
from deeptoolbox.layers._recurrent import GRU, LSTM
from deeptoolbox.network._network import Network

DEFAULT_OPSET = 18
SUPPORTED_EXPORT_OPSETS = range(14, 24)


@renamed_arguments({"sample_inputs": "example_inputs"})
def export_onnx(
    net: nn.Module,
    path: str | os.PathLike,
    *,
    example_inputs: Sequence[torch.Tensor] | torch.Tensor | None = None,
    verify: bool = True,
    tolerance: float = 1e-4,
    opset: int | None = None,
    dynamic_batch: bool = True,
    fold_batchnorm: bool = True,
) -> Path:
    """Write ``net`` to an ONNX file that onnxruntime (and MATLAB, TensorRT...) can run.

    Args:
        net: a :class:`~deeptoolbox.Network`, or any ``nn.Module`` when ``example_inputs`` is
            given.
        path: the ``.onnx`` file to write (replaced atomically: written elsewhere, then moved).
        opset: ONNX opset version, 14 to 23 (default 18).
        dynamic_batch: leave the batch axis free (and free sequence lengths stay free).
        example_inputs: inputs for tracing and verification (default: random data sized from
            the network's input layers; token ids for inputs feeding an Embedding).
            ``sample_inputs``, its deprecated name, still works with a DeprecationWarning.
        verify: run the file in onnxruntime on ``example_inputs`` and compare with ``net``.
        tolerance: largest allowed difference ``|onnx - torch| / (1 + |torch|)`` when verifying.
        fold_batchnorm: fold BatchNorm layers into the convolution or dense layer before them
            (the smallest, fastest file). False keeps them as BatchNormalization nodes.

    Node names are the layer names, and the file's ``metadata_props`` hold the network's name,
    its classes and which BatchNorm layers were folded, so :func:`import_onnx` gives back a
    network with the same name, classes and layer names (folded BatchNorm layers come back
    as BatchNorm layers that pass their input through).

    LSTM and GRU layers with ``has_padding_mask=True`` are written exactly: the file reads the
    mask from the network's mask input and skips padded steps wherever they are (left, right or
    inner padding), as the layer does; the default verification sample uses random masks.

    Returns:
        The path written.

    Raises:
        ModelExportError: the exporter fails, or onnxruntime disagrees with the network (the
            message gives the largest difference and the output concerned).
        OptionError: bad ``opset`` or missing ``example_inputs`` for a plain module.

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
    was_training = net.training
    net.eval()
    for module in net.modules():  # settle data-dependent checks before torch.export traces
        if isinstance(module, InputLayer):
            _ = module.has_statistics
    try:
        attempts = _length_plans(net, example_inputs)
        for k, separate in enumerate(attempts):
            try:
                _write(net, path, example_inputs, separate, opset=opset, verify=verify,
                       tolerance=tolerance, dynamic_batch=dynamic_batch,
                       fold_batchnorm=fold_batchnorm)  # fmt: skip
                break
            except Exception as err:
                if k + 1 == len(attempts) or (isinstance(err, OSError) and is_write_failure(err)):
                    raise
                # the network ties its inputs' lengths together: export them as one
    finally:
        net.train(was_training)
    return path


def _length_plans(net: nn.Module, example_inputs) -> list[bool]:
    """Whether to try each free-length input with its own length first (several inputs of
    free length: an encoder's source and a decoder's target need not be as long), then with
    one length shared by all (for networks that add or join them)."""
    if not isinstance(net, Network):
        return [False]
    free = [n for n in net.input_names if None in (getattr(net.layers[n], "shape", ()) or ())]
    if len(free) < 2:
        return [False]
    if example_inputs is not None:
        given = [example_inputs] if isinstance(example_inputs, torch.Tensor) else example_inputs
        positions = [net.input_names.index(n) for n in free]
        lengths = {tuple(given[i].shape[1:2]) for i in positions if given[i].dim() > 1}
        return [True, False] if len(lengths) > 1 else [False]
    return [True, False]


def _write(net, path: Path, example_inputs, separate: bool, *, opset, verify, tolerance,
           dynamic_batch, fold_batchnorm) -> None:  # fmt: skip
    """One export: trace, write atomically, verify. ``separate``: free lengths independent."""
    inputs = _sample_inputs(net, example_inputs, batch=2, separate=separate)
    input_names, output_names = _io_names(net, len(inputs))
    shapes = _dynamic_shapes(net, inputs, dynamic_batch, separate=separate)
    with atomic_path(path, suffix=".tmp") as temporary:
        with (
            _exportable_recurrent_layers(net),
            layer_scopes(net),
            batchnorm_folding(fold_batchnorm),
        ):
            model = _run_exporter(net, inputs, temporary, opset, input_names, output_names, shapes)
        _finish_model(net, model, temporary, free_batch=dynamic_batch)
        if not fold_batchnorm:
            _check_batchnorm_kept(net, model)
        if verify:
            check = _sample_inputs(net, example_inputs, batch=3 if dynamic_batch else 2, seed=1,
                                   separate=separate)  # fmt: skip
            verify_onnx(net, temporary, check, tolerance=tolerance, label=path.name)


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


def _run_exporter(net, inputs, path, opset, input_names, output_names, shapes):
    """Export with torch.export (clean graphs); where it cannot keep a length free (some torch
    operators fix it while tracing) or reach the opset asked for (it writes 18 and converts
    down), fall back to the TorchScript exporter. Returns the written model."""
    import onnx

    try:
        _export(net, inputs, path, opset, input_names, output_names, dynamic_shapes=shapes)
        model = onnx.load(str(path))
        written = _written_opset(model)
        if written != opset:
            first = RuntimeError(f"the file came out at opset {written}, not {opset}")
        elif _kept_dynamic(model, shapes, net):
            return model
        else:
            first = RuntimeError("torch.export fixed a free length")
    except OSError as err:
        if is_write_failure(err):
            raise  # the file could not be written (disk full): not the exporter's failure
        first = err
    except Exception as err:
        first = err
    axes = _dynamic_axes(shapes, input_names, output_names, net)
    try:
        _export(net, inputs, path, opset, input_names, output_names, dynamic_axes=axes)
        model = onnx.load(str(path))
        if (written := _written_opset(model)) != opset:
            raise RuntimeError(f"the file came out at opset {written}")
        return model
    except Exception as err:
        if isinstance(err, OSError) and is_write_failure(err):
            raise
        raise ModelExportError(
            f"export_onnx: torch.onnx.export could not export {type(net).__name__} "
            f"'{getattr(net, 'name', '')}' at opset {opset}. torch.export said: "
            f"{str(first).strip().splitlines()[-1][:300]}; the TorchScript exporter said: {err}"
        ) from err


def _written_opset(model) -> int | None:
    """The default-domain opset of ``model``. torch.export writes opset 18 and converts down;
    where onnx's converter has no adapter it silently keeps 18."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _kept_dynamic(model, shapes, net) -> bool:
    """True when every axis asked to be free is free in the written model."""
    if shapes is None:
        return True
    specs = shapes[0] if isinstance(net, Network) else shapes
    for value, spec in zip(model.graph.input, specs, strict=False):
        dims = value.type.tensor_type.shape.dim
        for axis in spec or {}:
            if axis < len(dims) and dims[axis].HasField("dim_value"):
                return False
    return True


def _export(net, inputs, path, opset, input_names, output_names, **dynamic) -> None:
    legacy = "dynamic_axes" in dynamic
    with warnings.catch_warnings(), torch.no_grad(), _quiet(), _biases_kept():
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


@contextlib.contextmanager
def _biases_kept():
    """Keep all-zero biases in the written file. torch.onnx.export's optimizer drops a Conv or
    Gemm bias whose values are all zero (an untrained network's), so the file would reopen with
    fewer learnables and layers without their bias."""
    try:
        from onnxscript import rewriter
        from onnxscript.rewriter.rules.common import _remove_optional_bias
    except ImportError:  # an onnxscript without that rule: nothing to keep
        yield
        return
    default = rewriter._DEFAULT_REWRITE_RULES
    dropping = set(_remove_optional_bias.rules.rules)
    rewriter._DEFAULT_REWRITE_RULES = tuple(r for r in default if r not in dropping)
    try:
        yield
    finally:
        rewriter._DEFAULT_REWRITE_RULES = default


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


def _dynamic_shapes(net: nn.Module, inputs: list[torch.Tensor], dynamic_batch: bool, *,
                   separate: bool = False):  # fmt: skip
    """torch.export dynamic shapes: a free batch axis, and free time for free-length inputs
    (one length for all, or with ``separate`` one per input: ``time``, ``time_2``...)."""
    from torch.export import Dim

    batch, shared = Dim("batch", min=1), Dim("time", min=2)
    declared = (
        [getattr(net.layers[n], "shape", ()) for n in net.input_names]
        if isinstance(net, Network)
        else [()] * len(inputs)
    )
    specs, free = [], 0
    for x, shape in zip(inputs, declared, strict=True):
        spec = {0: batch} if dynamic_batch else {}
        if None in shape:
            free += 1
            time = Dim("time" if free == 1 else f"time_{free}", min=2) if separate else shared
        for axis, size in enumerate(shape):
            if size is None and axis + 1 < x.dim():
                spec[axis + 1] = time
        specs.append(spec or None)
    if all(spec is None for spec in specs):
        return None
    return (tuple(specs),) if isinstance(net, Network) else tuple(specs)


@contextlib.contextmanager
def _quiet():
    """Silence the exporter's progress lines on stdout and its converter's log records (the
    opset actually written is checked afterwards)."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "torch.onnx")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.CRITICAL)
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _sample_inputs(net, given, *, batch: int, seed: int = 0,
                   separate: bool = False) -> list[torch.Tensor]:  # fmt: skip
    """``given``, or random inputs for ``net``: free lengths 9 + seed, or with ``separate``
    a different length for each input (9 + seed, 11 + seed...)."""
    if given is not None:
        return [given] if isinstance(given, torch.Tensor) else list(given)
    if not isinstance(net, Network):
        raise OptionError(
            f"export_onnx: a plain {type(net).__name__} needs `example_inputs` (formerly "
            "`sample_inputs`; a tensor or tuple of tensors, with the batch dimension). "
            "Example: example_inputs=torch.randn(1, 3, 224, 224)."
        )
    if separate:
        return [sample_inputs(net, batch=batch, length=9 + seed + 2 * i, seed=seed)[i]
                for i in range(len(net.input_names))]  # fmt: skip
    return sample_inputs(net, batch=batch, length=9 + seed, seed=seed)


def _finish_model(net: nn.Module, model, path: Path, *, free_batch: bool) -> None:
    """Name nodes after the layers they come from, declare free output axes as free, add the
    toolbox's metadata and write ``model`` to ``path``."""
    import onnx

    _name_nodes(model, set(net.layer_names) if isinstance(net, Network) else set())
    if isinstance(net, Network):
        _free_output_axes(net, model, free_batch)
    _write_metadata(net, model)
    onnx.save(model, str(path))


def _free_output_axes(net: Network, model, free_batch: bool) -> None:
    """torch.export can declare an output's sequence length as the sample's (9) even though the
    graph computes it from the input; declare the axes the network leaves free as free."""
    for output, name in zip(model.graph.output, net.output_names, strict=False):
        dims = output.type.tensor_type.shape.dim
        size = net.output_shape(name) or ()
        free = [free_batch] + [d is None for d in size]
        for axis, (dim, is_free) in enumerate(zip(dims, free, strict=False)):
            if is_free and dim.HasField("dim_value"):
                dim.dim_param = "batch" if axis == 0 else "time" if axis == 1 else f"free_{axis}"


_PARAMETER = re.compile(r"^layers\.([^.]+)\.")


def _layer_of(node, initializers: set[str], layers: set[str]) -> str | None:
    scope = node.name.split("/")  # the TorchScript exporter: "/conv/Conv", "/lstm/onnx_export/GRU"
    if node.name.startswith("/") and len(scope) > 2 and scope[1] in layers:
        return scope[1]
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


def _name_nodes(model, layers: set[str]) -> None:
    """Rename ``node_Conv_54`` to ``conv1`` (the layer), ``conv1/Add`` for a layer's other nodes."""
    initializers = {t.name for t in model.graph.initializer}
    taken: set[str] = set()
    for node in model.graph.node:
        layer = _layer_of(node, initializers, layers)
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
    for key, value in metadata_entries(net, model).items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value


def _check_batchnorm_kept(net: nn.Module, model) -> None:
    folded = folded_batchnorms(net, model)
    if folded:
        raise ModelExportError(
            f"export_onnx: fold_batchnorm=False, but the exporter folded BatchNorm layer(s) "
            f"{sorted(folded)} into {sorted(set(folded.values()))}. Export with "
            "fold_batchnorm=True (import_onnx then restores them as pass-through BatchNorm "
            "layers under the same names)."
        )


_ONNX_NUMPY_TYPES = {  # onnxruntime's input type names -> what to feed (by the file's dtype)
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}  # fmt: skip


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
        arg.name: x.detach().cpu().numpy().astype(_ONNX_NUMPY_TYPES.get(arg.type, np.float32))
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
        got, want_np = got.astype(np.float64), want_np.astype(np.float64)  # bool masks too
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


# -- recurrent layers with a padding mask -------------------------------------------------------
# Their forward packs the real steps (torch.nn.utils.rnn), which no exporter can write. While
# exporting, they run this equivalent made of plain tensor operations instead: each sequence's
# real steps are moved to the front (forward direction: in order; backward direction: in
# reverse order) with a scatter computed from cumulative sums of the mask, one ONNX LSTM/GRU
# node per layer and direction runs over them, and a gather puts the outputs back in place.
# Padded steps then come after every real step, so they cannot change a real step's output;
# export_onnx verifies the file against the layer's own forward.


def _compaction(keep: torch.Tensor, reverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each step goes (N, T): real steps first (reversed for ``reverse``), then padding;
    and how many real steps each sequence has (N, 1)."""
    real = keep.long()
    count = real.sum(1, keepdim=True)
    rank = torch.cumsum(real, 1) - 1
    destination = count - 1 - rank if reverse else rank
    return torch.where(keep, destination, count + torch.cumsum(1 - real, 1) - 1), count


def _direction(layer, x: torch.Tensor, keep: torch.Tensor, depth: int, reverse: bool):
    """One layer and direction of a masked LSTM/GRU: outputs in place (N, T, H) and the state
    after the last real step (N, H)."""
    suffix = "_reverse" if reverse else ""
    rnn = layer.rnn
    weights = [getattr(rnn, f"{kind}_l{depth}{suffix}") for kind in
               ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]  # fmt: skip
    destination, count = _compaction(keep, reverse)
    compact = torch.zeros_like(x).scatter(1, destination.unsqueeze(-1).expand_as(x), x)
    start = compact.new_zeros((1, x.shape[0], layer.hidden_size))
    if layer.cell == "lstm":
        output = torch.lstm(compact, (start, start), weights, True, 1, 0.0, False, False, True)[0]
    else:
        output = torch.gru(compact, start, weights, True, 1, 0.0, False, False, True)[0]
    size = (-1, -1, layer.hidden_size)
    in_place = output.gather(1, destination.unsqueeze(-1).expand(size))
    last = output.gather(1, (count - 1).unsqueeze(-1).expand(size)).squeeze(1)
    return in_place, last


class _MaskedRecurrentTwin(nn.Module):
    """The exportable twin of a masked LSTM/GRU layer's forward (same results, plain tensor
    operations). Attached to the layer while exporting, so that the exporter's module scopes,
    and with them the node names, point to the layer."""

    def __init__(self, layer: LSTM | GRU) -> None:
        super().__init__()
        self._layer = [layer]  # not a submodule: the layer owns the weights

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        layer = self._layer[0]
        keep = mask.reshape(x.shape[0], -1) != 0
        first = torch.cumsum(torch.ones_like(keep, dtype=torch.long), 1) == 1
        keep = keep | (first & ~keep.any(1, keepdim=True))  # an all-padding row runs step 0
        weight = keep.unsqueeze(-1).to(x.dtype)
        directions = (False, True) if layer.bidirectional else (False,)
        for depth in range(layer.num_layers):
            runs = [_direction(layer, x, keep, depth, reverse) for reverse in directions]
            x = torch.cat([outputs for outputs, _ in runs], dim=-1) * weight
        if layer.output_mode == "final_state" or (
            layer.output_mode == "last" and not layer.bidirectional
        ):
            return torch.cat([last for _, last in runs], dim=-1)
        if layer.output_mode == "last":  # MATLAB: the output at each sequence's last real step
            steps = torch.cumsum(torch.ones_like(keep, dtype=torch.long), 1) - 1
            end = torch.where(keep, steps, torch.zeros_like(steps)).amax(1)
            return x.gather(1, end.view(-1, 1, 1).expand(-1, 1, x.shape[-1])).squeeze(1)
        return x


@contextlib.contextmanager
def _exportable_recurrent_layers(net: nn.Module):
    """Route masked LSTM/GRU layers through their exportable twin while exporting."""
    swapped = [m for m in net.modules() if isinstance(m, LSTM | GRU) and m.has_padding_mask]
    for layer in swapped:
        layer.add_module("onnx_export", _MaskedRecurrentTwin(layer))
        layer.forward = _twin_forward(layer)
    try:
        yield
    finally:
        for layer in swapped:
            del layer.forward
            del layer.onnx_export


def _twin_forward(layer: LSTM | GRU):
    def forward(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            return type(layer).forward(layer, x)
        return layer.onnx_export(x, mask)

    return forward
