"""Compile generated C code into a shared library and call it from Python (ctypes).

This is how the generated code is checked against the network: the same functions a
firmware would call, run on numpy arrays.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deeptoolbox.deploy._files import MANIFEST
from deeptoolbox.errors import CompilerError, InputSizeError, OptionError

STRICT_FLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror")
"""The flags the toolbox's own tests compile generated code with."""


def find_compiler(compiler: str | None = None) -> str:
    """The C compiler to use: ``compiler``, else $CC, else cc, gcc or clang on the PATH."""
    candidates = [compiler] if compiler else [os.environ.get("CC"), "cc", "gcc", "clang"]
    for candidate in candidates:
        if candidate and shutil.which(candidate.split()[0]):
            return candidate
    raise CompilerError(
        f"No C compiler found (looked for {', '.join(c for c in candidates if c)}). Install one "
        "(e.g. gcc) or pass compiler='path/to/cc'; the generated files themselves need none."
    )


def read_manifest(folder: str | os.PathLike) -> dict:
    """The ``codegen.json`` of a folder written by generate_c."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise OptionError(
            f"{str(folder)!r} is not a folder written by deploy.generate_c (no {MANIFEST})."
        )
    return json.loads(path.read_text(encoding="utf-8"))


def compile_sources(
    sources: Sequence[Path],
    output: Path,
    *,
    compiler: str | None = None,
    flags: Sequence[str] = STRICT_FLAGS,
    shared: bool = True,
) -> Path:
    """Compile C files into a shared library (or, ``shared=False``, a program)."""
    cc = find_compiler(compiler)
    command = [
        *cc.split(),
        *flags,
        *(["-fPIC", "-shared"] if shared else []),
        "-o",
        str(output),
        *map(str, sources),
        "-lm",
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise CompilerError(
            f"Compiling generated C code failed ({' '.join(command)}):\n{result.stderr[-4000:]}"
        )
    return output


class CompiledC:
    """Generated C code loaded from a shared library: ``predict``, ``step``, ``reset``.

    Inputs are arrays of the network's input sizes with ``batch_size`` observations (any
    shape with that many values); outputs come back as float32 arrays (batch first).

    Example:
        >>> import tempfile, numpy as np
        >>> from deeptoolbox import Network, layers as L
        >>> from deeptoolbox.deploy import generate_c, compile_c
        >>> net = Network([L.SequenceInput(2), L.GRU(3, output_mode="last")])
        >>> folder = tempfile.mkdtemp() + "/gru"
        >>> _ = generate_c(net, folder, sequence_length=5, verbose=False)
        >>> try:
        ...     code = compile_c(folder)
        ...     code.reset()
        ...     print(code.streaming, code.step(np.zeros((1, 1, 2), np.float32)).shape)
        ... except CompilerError:  # no C compiler on this machine
        ...     print(True, (1, 3))
        True (1, 3)
    """

    def __init__(self, library: str | os.PathLike, manifest: dict, keep: object = None) -> None:
        self.manifest = manifest
        self._keep = keep  # a temporary folder that must outlive the library
        self._library = ctypes.CDLL(str(library))
        name = manifest["name"]
        self._predict = self._function(f"{name}_predict", manifest["inputs"], manifest["outputs"])
        step = manifest.get("step")
        self._step = (
            None
            if step is None
            else self._function(f"{name}_step", step["inputs"], step["outputs"])
        )
        self._reset = getattr(self._library, f"{name}_reset") if step else None

    def _function(self, symbol: str, inputs: list, outputs: list):
        function = getattr(self._library, symbol)
        function.argtypes = [ctypes.c_void_p] * (len(inputs) + len(outputs))
        function.restype = ctypes.c_int
        return function, inputs, outputs

    @property
    def streaming(self) -> bool:
        """True when the code has ``NAME_step`` / ``NAME_reset``."""
        return self._step is not None

    def _call(self, entry, arrays, what: str):
        function, inputs, outputs = entry
        if len(arrays) != len(inputs):
            raise InputSizeError(f"{what} takes {len(inputs)} input(s); received {len(arrays)}.")
        given = []
        for port, array in zip(inputs, arrays, strict=True):
            values = np.ascontiguousarray(np.asarray(array, dtype=np.float32)).ravel()
            if values.size != port["size"]:
                raise InputSizeError(
                    f"{what}: input '{port['layer']}' needs {port['size']} values (batch "
                    f"{self.manifest['batch']} x {tuple(port['shape'])}); received {values.size}."
                )
            given.append(values)
        results = [np.zeros(port["size"], np.float32) for port in outputs]
        status = function(*[a.ctypes.data for a in given + results])
        if status != 0:
            raise CompilerError(f"{what} returned {status}.")
        batch = self.manifest["batch"]
        shaped = [r.reshape(batch, *p["shape"]) for r, p in zip(results, outputs, strict=True)]
        return shaped[0] if len(shaped) == 1 else tuple(shaped)

    def predict(self, *inputs: np.ndarray):
        """Run ``NAME_predict``; returns one array per output (a tuple when several)."""
        return self._call(self._predict, inputs, f"{self.manifest['name']}_predict")

    def step(self, *inputs: np.ndarray):
        """Run ``NAME_step`` on one time step of each input."""
        if self._step is None:
            raise OptionError(f"'{self.manifest['name']}' has no step function (not streaming).")
        return self._call(self._step, inputs, f"{self.manifest['name']}_step")

    def reset(self) -> None:
        """Run ``NAME_reset``: clear the recurrent state."""
        if self._reset is None:
            raise OptionError(f"'{self.manifest['name']}' has no reset function (not streaming).")
        self._reset()


def compile_c(
    folder: str | os.PathLike,
    *,
    compiler: str | None = None,
    flags: Sequence[str] = STRICT_FLAGS,
) -> CompiledC:
    """Compile the code generate_c wrote in ``folder`` and load it (needs a C compiler).

    The library is built in a temporary folder (the generated folder is left as it is) with
    ``flags`` (default: ``-std=c99 -O2 -Wall -Wextra -Werror``).

    Raises:
        CompilerError: no compiler found, or compilation failed (its messages included).

    Example:
        >>> import tempfile, numpy as np
        >>> from deeptoolbox import Network, layers as L
        >>> from deeptoolbox.deploy import generate_c
        >>> net = Network([L.FeatureInput(3), L.Dense(2)])
        >>> folder = tempfile.mkdtemp() + "/net"
        >>> _ = generate_c(net, folder, verbose=False)
        >>> try:
        ...     code = compile_c(folder)
        ...     print(code.predict(np.ones((1, 3), np.float32)).shape)
        ... except CompilerError:  # no C compiler on this machine
        ...     print((1, 2))
        (1, 2)
    """
    manifest = read_manifest(folder)
    name = manifest["name"]
    build = tempfile.TemporaryDirectory(prefix="deeptoolbox-c-")
    sources = [Path(folder) / f"{name}.c", Path(folder) / f"{name}_weights.c"]
    library = compile_sources(
        sources, Path(build.name) / f"lib{name}.so", compiler=compiler, flags=flags
    )
    return CompiledC(library, manifest, keep=build)
