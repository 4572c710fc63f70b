"""Helpers of the C code generation tests (fixtures in conftest.py).

Each test network is generated (float32 and int8) and compiled once per test session with the
issue's flags (``-std=c99 -Wall -Wextra -Werror -O2``), then called through ctypes. Tests that
need a C compiler skip, with the reason, only where none exists.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from deeptoolbox.deploy import compile_c, generate_c
from deeptoolbox.deploy._codegen import lower_all
from deeptoolbox.deploy._int8 import int8_graphs
from deeptoolbox.deploy._reference_int8 import run_int8

COMPILER = next(
    (c for c in (os.environ.get("CC"), "gcc", "cc", "clang") if c and shutil.which(c)), None
)
requires_cc = pytest.mark.skipif(
    COMPILER is None,
    reason="no C compiler (gcc, cc or clang) on this machine, so generated C cannot be compiled",
)
FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-O2")


@dataclass
class Built:
    """A generated and compiled network, with what the tests compare it against."""

    net: torch.nn.Module
    folder: object
    report: object
    code: object
    calibration: list[torch.Tensor] | None
    qgraph: object = None

    def reference_int8(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """The int8 reference's (float, dequantized) outputs, bit-exact with the C code."""
        values = run_int8(self.qgraph, inputs)
        return [values[name] for name in self.qgraph.outputs]


def randomize_batchnorm(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters."""
    generator = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if type(module).__name__ == "BatchNorm":
            channels = module.weight.numel()
            with torch.no_grad():
                module.running_mean.copy_(torch.rand(channels, generator=generator) * 2 - 1)
                module.running_var.copy_(torch.rand(channels, generator=generator) * 1.5 + 0.5)
                module.weight.copy_(torch.rand(channels, generator=generator) * 1.5 + 0.5)
                module.bias.copy_(torch.rand(channels, generator=generator) - 0.5)
    return net.eval()


def inputs_for(net, shapes: list[tuple[int, ...]], count: int, seed: int, scale: float = 1.0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(count, *shape, generator=generator) * scale for shape in shapes]


class Builds:
    """Session cache: key -> Built."""

    def __init__(self, root) -> None:
        self.root = root
        self.cache: dict[str, Built] = {}

    def get(
        self,
        key: str,
        make: Callable[[], tuple],
        *,
        precision: str = "float32",
        batch_size: int = 1,
        sequence_length: int | None = None,
        scale: float = 1.0,
    ) -> Built:
        """Generate and compile the network ``make()`` returns as (net, input shapes)."""
        cache_key = f"{key}-{precision}-{batch_size}"
        if cache_key in self.cache:
            return self.cache[cache_key]
        net, shapes = make()
        torch.manual_seed(0)
        calibration = inputs_for(net, shapes, 256, seed=1, scale=scale)
        name = "c_" + key.replace("-", "_") + ("_int8" if precision == "int8" else "")
        folder = self.root / cache_key
        options = {"calibration_data": calibration} if precision == "int8" else {}
        report = generate_c(
            net,
            folder,
            name=name,
            precision=precision,
            batch_size=batch_size,
            sequence_length=sequence_length,
            verbose=False,
            **options,
        )
        code = compile_c(folder, compiler=COMPILER, flags=FLAGS)
        built = Built(net, folder, report, code, calibration)
        if precision == "int8":
            graph, step_graph, _ = lower_all(net, sequence_length)
            built.qgraph = int8_graphs(graph, step_graph, calibration, None)[1]
        self.cache[cache_key] = built
        return built


def network_outputs(net, inputs: list[torch.Tensor]) -> list[np.ndarray]:
    with torch.no_grad():
        out = net.eval()(*inputs)
    out = out if isinstance(out, tuple) else (out,)
    return [o.numpy() for o in out]


def c_outputs(code, inputs: list[torch.Tensor]) -> list[np.ndarray]:
    out = code.predict(*[x.numpy() for x in inputs])
    return list(out) if isinstance(out, tuple) else [out]


def assert_float_close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """The issue's float criterion: max abs error <= 1e-5 relative to the output scale."""
    got = got.reshape(want.shape)
    scale = max(float(np.abs(want).max()), 1e-6)
    error = float(np.abs(got - want).max())
    assert error <= 1e-5 * scale, f"{what}: max abs error {error:.3g}, output scale {scale:.3g}"


def output_step(qgraph, index: int) -> float:
    """The int8 quantization step of network output ``index``."""
    name = qgraph.outputs[index]
    op = next(op for op in qgraph.ops if op.output == name)
    return float(op.attrs["scale"])
