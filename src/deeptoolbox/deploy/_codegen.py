"""generate_c: a network as portable C99 code, with a memory report.

The network is lowered to ops (_lower), folded and fused (_passes), checked against the
network in float (_reference), quantized for int8 (_quantize), planned into a static arena
(_plan) and emitted (_emit_float / _emit_int8) with a header, a demo main.c and a Makefile
(_files), all written at once (temporary folder, then rename).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deeptoolbox._version import __version__
from deeptoolbox.deploy import _files
from deeptoolbox.deploy._ckernels import KERNELS as FLOAT_KERNELS
from deeptoolbox.deploy._ckernels import kernel_sources
from deeptoolbox.deploy._ckernels_int8 import KERNELS as INT8_KERNELS
from deeptoolbox.deploy._emit import (
    C_KEYWORDS,
    CTYPES,
    ITEM_BYTES,
    Buffers,
    Constants,
    c_identifier,
)
from deeptoolbox.deploy._emit_float import FloatOps, scratch_f32
from deeptoolbox.deploy._emit_int8 import Int8Ops
from deeptoolbox.deploy._int8 import int8_scratch, quantized_graphs
from deeptoolbox.deploy._ir import Graph
from deeptoolbox.deploy._lower import check_network, lower
from deeptoolbox.deploy._passes import optimize
from deeptoolbox.deploy._plan import Buffer, MemoryPlan, plan_memory
from deeptoolbox.deploy._reference import run_graph
from deeptoolbox.deploy._report import CodegenReport, LayerMemory
from deeptoolbox.deploy._streaming import streaming_problem
from deeptoolbox.errors import CodegenError, OptionError

PRECISIONS = ("float32", "int8")


@dataclass
class _Program:
    """Everything the C files are rendered from."""

    graph: Graph
    step_graph: Graph | None
    plan: MemoryPlan
    constants: Constants
    arena: dict[str, int]  # elements per arena dtype
    predict: list[str]
    step: list[str]
    reset: list[str]
    kernels: str
    persistent: dict[str, int]  # elements of recurrent state kept between NAME_step calls


def _check_options(name: str, precision: str, batch_size: int, sequence_length) -> None:
    if (
        not isinstance(name, str)
        or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)
        or (name in C_KEYWORDS)
    ):
        raise OptionError(
            f"generate_c: `name` must be a C identifier (letters, digits and '_', not starting "
            f"with a digit, not a C keyword): it prefixes every function. Received: name={name!r}."
        )
    if precision not in PRECISIONS:
        raise OptionError(
            f"generate_c: `precision` must be one of {PRECISIONS}. "
            f"Received: precision={precision!r}."
        )
    for option, value in (("batch_size", batch_size), ("sequence_length", sequence_length)):
        if value is None and option == "sequence_length":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise OptionError(
                f"generate_c: `{option}` must be a positive int. Received: {option}={value!r}."
            )


def check_sizes(graph: Graph, batch: int) -> None:
    """Raise CodegenError when a tensor is too large for the code's int indices."""
    for value in graph.values.values():
        if value.numel * batch >= 2**31:
            raise CodegenError(
                f"'{value.name}' holds {value.numel * batch:,} values with batch_size={batch}; "
                "generated code indexes tensors with int and needs fewer than 2**31."
            )


def lower_all(net: nn.Module, sequence_length: int | None) -> tuple[Graph, Graph | None, str]:
    check_network(net)
    graph = optimize(lower(net, dict.fromkeys(net.input_names, sequence_length)))
    problem = streaming_problem(graph, net)
    if problem is not None:
        return graph, None, problem
    return graph, optimize(lower(net, dict.fromkeys(net.input_names, 1))), ""


def check_lowering(net: nn.Module, graph: Graph, batch: int = 2) -> None:
    """Raise CodegenError if the lowered graph does not compute what the network computes."""
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randn(batch, *graph.values[v].shape, generator=generator) for v in graph.inputs]
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            expected = net(*[x.to(next(iter(net.parameters()), x).device) for x in inputs])
    finally:
        net.train(was_training)
    expected = expected if isinstance(expected, tuple) else (expected,)
    values = run_graph(graph, inputs)
    for name, want in zip(net.output_names, expected, strict=True):
        got = values[graph.outputs[net.output_names.index(name)]].reshape(want.shape)
        want = want.detach().cpu().float()
        scale = float(want.abs().max()) + 1e-6
        if float((got - want).abs().max()) > 1e-4 * max(scale, 1.0):
            raise CodegenError(
                f"Internal error: the code generated for output '{name}' does not reproduce the "
                "network (float check). Please report it with the network's architecture."
            )


def _persistent(step_graph: Graph | None, scratch_of) -> tuple[dict, dict, list]:
    persistent: dict[str, Buffer] = {}
    sizes: dict[str, int] = {}
    fills = []
    for op in step_graph.ops if step_graph is not None else []:
        for need in scratch_of(op, True):
            if need.persistent:
                offset = sizes.get(need.dtype, 0)
                persistent[need.key] = Buffer(f"arena_{need.dtype}", offset, need.elements)
                sizes[need.dtype] = offset + need.elements
                fills.append((persistent[need.key], need.fill))
    return persistent, sizes, fills


def build_program(graph, step_graph, name, batch, ops_class, scratch_of, kernel_table) -> _Program:
    """Plan the arena for predict (and step) and emit their statements."""
    persistent, persistent_size, fills = _persistent(step_graph, scratch_of)

    def dtype_of_in(g: Graph):
        return lambda value: g.values[value].dtype

    plan = plan_memory(
        graph, batch, dtype_of_in(graph), lambda op: scratch_of(op, False), {}, persistent_size
    )
    constants = Constants(name)
    inputs, outputs = _port_names(graph, "input"), _port_names(graph, "output")
    emitter = ops_class(graph, plan, Buffers(name, inputs, outputs), constants, batch, False)
    predict = emitter.statements()
    kernels, arena = set(emitter.kernels), dict(plan.sizes)
    step, reset = [], []
    if step_graph is not None:
        step_plan = plan_memory(
            step_graph,
            batch,
            dtype_of_in(step_graph),
            lambda op: scratch_of(op, True),
            persistent,
            persistent_size,
        )
        step_emitter = ops_class(
            step_graph, step_plan, Buffers(name, inputs, outputs), constants, batch, True
        )
        step = step_emitter.statements()
        reset = step_emitter.reset(fills)
        kernels |= step_emitter.kernels
        for dtype, size in step_plan.sizes.items():
            arena[dtype] = max(arena.get(dtype, 0), size)
    return _Program(
        graph,
        step_graph,
        plan,
        constants,
        arena,
        predict,
        step,
        reset,
        kernel_sources(kernels, kernel_table),
        persistent_size,
    )


def _port_names(graph: Graph, kind: str) -> list[str]:
    layers = graph.input_layers if kind == "input" else graph.output_layers
    if len(layers) == 1:
        return [kind]
    short = "in" if kind == "input" else "out"
    names = [f"{short}_{c_identifier(layer)}" for layer in layers]
    return [n if names.count(n) == 1 else f"{n}_{i}" for i, n in enumerate(names)]


def _ports(graph: Graph, batch: int) -> tuple[list, list]:
    def make(values, layers, kind):
        names = _port_names(graph, kind)
        return [
            _files.Port(n, layer, graph.values[v].shape, graph.values[v].numel * batch)
            for n, layer, v in zip(names, layers, values, strict=True)
        ]

    return (
        make(graph.inputs, graph.input_layers, "input"),
        make(graph.outputs, graph.output_layers, "output"),
    )


def _arena_bytes(arena: dict[str, int]) -> int:
    return sum(ITEM_BYTES[d] * n for d, n in arena.items())


def _function(signature: str, ports, body: list[str], check: bool = True) -> str:
    lines = [signature, "{"]
    if check:
        names = " || ".join(f"{p.c_name} == 0" for p in ports)
        lines.append(f"    if ({names}) return -1;")
    lines += [f"    {line}" for line in body]
    if check:
        lines.append("    return 0;")
    return "\n".join(lines + ["}"])


def _int_check(program: _Program, name: str, batch: int) -> list[str]:
    """A compile-time check that int is wide enough for the largest index in the code."""
    sizes = [v.numel * batch for v in program.graph.values.values()]
    sizes += [values.size for _, values in program.constants.arrays.values()]
    sizes += list(program.arena.values())
    if max(sizes, default=0) < 2**15:
        return []
    return [
        "/* indices are int: this code needs an int of at least 32 bits */",
        f"typedef char {name}_needs_32_bit_int[sizeof(int) >= 4 ? 1 : -1];",
        "",
    ]


def render(program: _Program, name: str, info: dict) -> dict[str, str]:
    """The text of every file, by file name."""
    graph, batch = program.graph, info["batch"]
    inputs, outputs = _ports(graph, batch)
    step = _ports(program.step_graph, batch) if program.step_graph is not None else None
    info = {
        **info,
        "arena_bytes": _arena_bytes(program.arena),
        "weight_bytes": sum(program.constants.nbytes(n) for n in program.constants.arrays),
    }
    arenas = [
        f"static {CTYPES[d]} {name}_arena_{d}[{n}];" for d, n in sorted(program.arena.items()) if n
    ]
    source = [
        f"/* {name}.c: generated by deeptoolbox {info['version']} from network "
        f"'{info['network']}' ({info['precision']}). Do not edit. */",
        "#include <math.h>",
        "#include <stdint.h>",
        "",
        f'#include "{name}.h"',
        "",
        *_int_check(program, name, batch),
        program.constants.declarations(),
        "",
        *arenas,
        "",
        program.kernels,
        _function(
            _files.signature(name, "predict", inputs, outputs), inputs + outputs, program.predict
        ),
    ]
    if step is not None:
        source += [
            "",
            _function(f"void {name}_reset(void)", [], program.reset, check=False),
            "",
            _function(_files.signature(name, "step", *step), step[0] + step[1], program.step),
        ]
    weights = (
        f"/* {name}_weights.c: constants of '{info['network']}' (generated by deeptoolbox)."
        " */\n#include <stdint.h>\n\n" + program.constants.definitions()
    )
    manifest = _manifest(info, inputs, outputs, step)
    return {
        f"{name}.h": _files.header(name, info, inputs, outputs, step),
        f"{name}.c": "\n".join(source) + "\n",
        f"{name}_weights.c": weights,
        "main.c": _files.main_c(name, inputs, outputs, step),
        "Makefile": _files.makefile(name),
        _files.MANIFEST: json.dumps(manifest, indent=2) + "\n",
    }


def _manifest(info: dict, inputs, outputs, step) -> dict[str, Any]:
    def ports(items):
        return [
            {"name": p.c_name, "layer": p.layer, "shape": list(p.shape), "size": p.size}
            for p in items
        ]

    return {
        "format": "deeptoolbox.codegen",
        **{
            k: info[k]
            for k in (
                "version",
                "network",
                "name",
                "precision",
                "batch",
                "arena_bytes",
                "weight_bytes",
            )
        },
        "inputs": ports(inputs),
        "outputs": ports(outputs),
        "step": None if step is None else {"inputs": ports(step[0]), "outputs": ports(step[1])},
    }


def memory_rows(program: _Program, batch: int) -> list[LayerMemory]:
    """One report row per op of the predict code."""
    graph, plan, constants = program.graph, program.plan, program.constants
    owned: dict[int | None, int] = {}
    for array, owner in constants.owner.items():
        owned[owner] = owned.get(owner, 0) + constants.nbytes(array)
    rows = []
    for index, op in enumerate(graph.ops):
        value = graph.values[op.output]
        buffer = plan.buffers[op.output]
        note, activation = "", ITEM_BYTES[value.dtype] * value.numel * batch
        if op.kind == "reshape":
            note, activation = "view of its input (no code)", 0
        elif index in plan.in_place:
            note, activation = "in place", 0
        elif not buffer.space.startswith("arena"):
            note, activation = "writes the caller's output", 0
        scratch = sum(
            ITEM_BYTES[b.space.split("_")[1]] * b.elements
            for (i, _), b in plan.scratch.items()
            if i == index
        )
        rows.append(
            LayerMemory(
                op.label, op.kind, value.shape, owned.get(index, 0), activation, scratch, note
            )
        )
    return rows


def generate_c(
    net: nn.Module,
    out_dir: str | os.PathLike,
    *,
    name: str = "net",
    precision: str = "float32",
    batch_size: int = 1,
    sequence_length: int | None = None,
    calibration_data: Any = None,
    ranges: Any = None,
    verbose: bool = True,
) -> CodegenReport:
    """Write the network as portable C99 code into ``out_dir``; return the memory report.

    The folder gets ``NAME.h`` (the API: ``int NAME_predict(const float *input, float
    *output)``, one pointer per input and output, sizes as macros), ``NAME.c`` (the code, one
    static arena, no ``malloc``), ``NAME_weights.c`` (``const`` arrays), a demo ``main.c``
    that reads inputs from a file and prints outputs, a ``Makefile`` and ``codegen.json``.
    The code needs only ``<math.h>`` and ``<stdint.h>``. Recurrent networks whose layers keep
    time steps apart also get ``NAME_reset()`` / ``NAME_step()`` to run one step at a time.

    Args:
        net: the network (layers C generation supports: see :func:`codegen_support`).
        out_dir: the folder to write; an earlier generation there is replaced atomically.
        name: the C prefix of every function, macro and file.
        precision: ``"float32"``, or ``"int8"`` (int8 weights and activations, int32
            accumulation, per-channel fixed-point requantization; needs ``calibration_data``
            or ``ranges``).
        batch_size: observations per ``NAME_predict`` call.
        sequence_length: the time length ``NAME_predict`` takes, for inputs with a free one.
        calibration_data: int8 only: inputs (an array, or one per network input) the value
            ranges are measured on.
        ranges: int8 only: an :class:`ActivationRanges` (or a dict layer -> (min, max)), or
            a calibrated quantizer (``deeptoolbox.compress.Quantizer`` after ``calibrate``,
            or its ``CalibrationResult``), instead of or on top of ``calibration_data``.
        verbose: print the memory report.

    Raises:
        CodegenError: unsupported layers (all listed at once), missing statistics or ranges.
        OptionError: a bad option, or an ``out_dir`` holding files generate_c did not write.

    Example:
        >>> import tempfile
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(4), L.Dense(8), L.ReLU(), L.Dense(3), L.Softmax()])
        >>> report = generate_c(net, tempfile.mkdtemp() + "/mlp", verbose=False)
        >>> sorted(p.name for p in report.files)  # doctest: +NORMALIZE_WHITESPACE
        ['Makefile', 'codegen.json', 'main.c', 'memory_report.txt', 'net.c', 'net.h',
         'net_weights.c']
        >>> report.weight_bytes, report.arena_bytes
        (268, 44)
    """
    _check_options(name, precision, batch_size, sequence_length)
    if precision == "float32" and (calibration_data is not None or ranges is not None):
        raise OptionError(
            "generate_c: `calibration_data` and `ranges` are for precision='int8'; "
            "float32 code needs neither."
        )
    graph, step_graph, step_note = lower_all(net, sequence_length)
    check_sizes(graph, batch_size)
    check_lowering(net, graph)
    notes: list[str] = []
    if precision == "int8":
        qgraph, qstep, notes = quantized_graphs(graph, step_graph, calibration_data, ranges)
        program = build_program(
            qgraph, qstep, name, batch_size, Int8Ops, int8_scratch(batch_size), INT8_KERNELS
        )
    else:
        scratch = _scratch_float(batch_size)
        program = build_program(
            graph, step_graph, name, batch_size, FloatOps, scratch, FLOAT_KERNELS
        )
    info = {
        "version": __version__,
        "network": getattr(net, "name", "network"),
        "name": name,
        "precision": precision,
        "batch": batch_size,
    }
    files = render(program, name, info)
    report = _report(program, info, Path(out_dir), list(files), step_note, notes)
    files["memory_report.txt"] = str(report) + "\n"
    _files.write_folder(Path(out_dir), files)
    if verbose:
        print(report)
    return report


def _report(
    program: _Program, info: dict, folder: Path, files: list[str], step_note: str, notes: list[str]
) -> CodegenReport:
    unshared = {**program.plan.unshared}
    for dtype, elements in program.persistent.items():
        unshared[dtype] = unshared.get(dtype, 0) + elements
    return CodegenReport(
        info["name"],
        info["precision"],
        info["batch"],
        folder,
        [folder / f for f in [*files, "memory_report.txt"]],
        memory_rows(program, info["batch"]),
        sum(program.constants.nbytes(n) for n in program.constants.arrays),
        _arena_bytes(program.arena),
        _arena_bytes(unshared),
        program.step_graph is not None,
        step_note,
        notes,
    )


def _scratch_float(batch: int):
    return lambda op, streaming: scratch_f32(op, batch, streaming)


__all__ = ["generate_c", "build_program", "check_lowering"]
