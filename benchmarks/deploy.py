"""Deployment benchmarks. C part: latency at batch 1 of generated C code against ONNX Runtime
and eager PyTorch, for the digits CNN and a small MLP.

Contenders, each holding the same weights and checked to give the same outputs first:

- eager PyTorch (``torch.inference_mode``), one thread;
- ONNX Runtime on the file ``export_onnx`` writes (all graph optimizations, one thread);
- the generated C, float32 and int8 (compiled ``-std=c99 -O2``), called through ctypes with
  preallocated buffers: what a Python caller pays;
- the same C code timed inside a C loop (``clock_gettime``): what firmware pays.

Everything runs single-threaded and interleaved: each round times every contender once
(``--calls`` calls each), so all see the same machine state; the figure is the median over
``--rounds`` rounds of the calling thread's CPU time per call (CPU time, not wall time, so
that other jobs on a shared machine do not count; they still slow the caches). The load
average is printed before and after.

Run: ``.venv/bin/python benchmarks/deploy.py [--rounds 30] [--calls 200] [--cflags "-O3"]``.
Recorded figures live in docs/performance.md.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.deploy import generate_c
from deeptoolbox.deploy._cbuild import compile_sources, find_compiler, read_manifest

_TIMER = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "NAME.h"

static float input[NAME_UPPER_INPUT_SIZE], output[NAME_UPPER_OUTPUT_SIZE];

int main(int argc, char **argv)
{
    const int calls = atoi(argv[1]);
    struct timespec start, end;
    int i;
    for (i = 0; i < NAME_UPPER_INPUT_SIZE; ++i) input[i] = (float)((i * 37) % 17) / 17.0f;
    NAME_predict(input, output);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &start);
    for (i = 0; i < calls; ++i) NAME_predict(input, output);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &end);
    printf("%.1f %g\n", ((end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec)) / calls,
           (double)output[0]);
    return 0;
}
"""


def digits_cnn() -> tuple[Network, np.ndarray]:
    from deeptoolbox._demo import build_digits_cnn
    from deeptoolbox.datasets import digits

    images, _ = digits()
    torch.manual_seed(0)
    net = build_digits_cnn(torch.from_numpy(images[:500])).eval()
    return net, images[:256]


def small_mlp() -> tuple[Network, np.ndarray]:
    torch.manual_seed(0)
    net = Network(
        [L.FeatureInput(32), L.Dense(64), L.ReLU(), L.Dense(64), L.ReLU(), L.Dense(10)],
        name="mlp",
    ).eval()
    return net, np.random.default_rng(0).standard_normal((256, 32)).astype(np.float32)


class CFunction:
    """A generated ``NAME_predict`` called through ctypes with preallocated buffers."""

    def __init__(self, folder: Path, build: Path, cflags: list[str]) -> None:
        manifest = read_manifest(folder)
        name = manifest["name"]
        self.cflags = cflags
        library = compile_sources(
            [folder / f"{name}.c", folder / f"{name}_weights.c"],
            build / f"lib{name}.so",
            flags=("-std=c99", *cflags),
        )
        self.function = getattr(ctypes.CDLL(str(library)), f"{name}_predict")
        self.function.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.output = np.zeros(manifest["outputs"][0]["size"], np.float32)
        self.timer = self._timer(folder, build, name)

    def _timer(self, folder: Path, build: Path, name: str) -> Path:
        source = build / f"{name}_timer.c"
        source.write_text(_TIMER.replace("NAME_UPPER", name.upper()).replace("NAME", name))
        program = build / f"{name}_timer"
        command = [*find_compiler().split(), "-std=c99", *self.cflags, f"-I{folder}", "-o",
                   str(program), str(source), str(folder / f"{name}.c"),
                   str(folder / f"{name}_weights.c"), "-lm"]  # fmt: skip
        subprocess.run(command, check=True)
        return program

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.function(x.ctypes.data, self.output.ctypes.data)
        return self.output

    def bound(self, x: np.ndarray) -> Callable[[], np.ndarray]:
        """A call on ``x`` with the pointers looked up once, as a C caller would hold them."""
        function, output = self.function, self.output
        pointers = (x.ctypes.data, output.ctypes.data)

        def call() -> np.ndarray:
            function(*pointers)
            return output

        return call

    def native_ns(self, calls: int) -> float:
        """Nanoseconds per call measured inside a C loop."""
        out = subprocess.run([str(self.timer), str(calls)], capture_output=True, text=True)
        return float(out.stdout.split()[0])


def contenders(net: Network, data: np.ndarray, build: Path, cflags: list[str]) -> dict:
    import onnxruntime as ort

    from deeptoolbox.interop import export_onnx

    onnx_path = export_onnx(net, build / f"{net.name}.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    generate_c(net, build / "float", name="bench_f32", verbose=False)
    generate_c(net, build / "int8", name="bench_i8", precision="int8", calibration_data=data,
               verbose=False)  # fmt: skip
    c_float = CFunction(build / "float", build, cflags)
    c_int8 = CFunction(build / "int8", build, cflags)
    sample = np.ascontiguousarray(data[:1])
    tensor = torch.from_numpy(sample)

    def eager() -> np.ndarray:
        with torch.inference_mode():
            return net(tensor).numpy()

    calls = {
        "eager PyTorch": eager,
        "ONNX Runtime": lambda: session.run(None, {input_name: sample})[0],
        "C float32 (ctypes)": c_float.bound(sample),
        "C int8 (ctypes)": c_int8.bound(sample),
    }
    reference = eager().ravel()
    for label, call in calls.items():
        got = np.asarray(call()).ravel()
        tolerance = 0.1 if "int8" in label else 1e-4
        assert np.abs(got - reference).max() <= tolerance * (1 + np.abs(reference).max()), label
    calls["C float32 (C loop)"] = c_float
    calls["C int8 (C loop)"] = c_int8
    return calls


def run_case(name: str, net: Network, data: np.ndarray, args: argparse.Namespace) -> None:
    rounds, calls = args.rounds, args.calls
    with tempfile.TemporaryDirectory() as folder:
        contestants = contenders(net, data, Path(folder), args.cflags.split())
        times: dict[str, list[float]] = {label: [] for label in contestants}
        for _ in range(rounds):
            for label, call in contestants.items():
                if isinstance(call, CFunction):
                    times[label].append(call.native_ns(calls) / 1000)
                    continue
                start = time.thread_time_ns()
                for _ in range(calls):
                    call()
                times[label].append((time.thread_time_ns() - start) / calls / 1000)
    base = statistics.median(times["C float32 (ctypes)"])
    print(f"\n{name}, batch 1, C compiled with {args.cflags}, median of {rounds} rounds x "
          f"{calls} calls, thread CPU time per call")  # fmt: skip
    print(f"{'contender':<22}{'per call':>12}{'vs C float32 (ctypes)':>24}")
    for label, values in times.items():
        median = statistics.median(values)
        print(f"{label:<22}{median:>9.2f} us{median / base:>24.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--cflags", default="-O2", help="flags for the C code (default: -O2)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs), "
          f"torch {torch.__version__}")  # fmt: skip
    for name, make in (("digits CNN", digits_cnn), ("small MLP (32-64-64-10)", small_mlp)):
        net, data = make()
        run_case(name, net, data, args)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
