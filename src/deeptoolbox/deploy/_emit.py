"""Shared pieces of C emission: constant arrays, buffer expressions, number formatting."""

from __future__ import annotations

import re

import numpy as np

from deeptoolbox.deploy._plan import Buffer

CTYPES = {"f32": "float", "i8": "int8_t", "i16": "int16_t", "i32": "int32_t", "i64": "int64_t"}
ITEM_BYTES = {"f32": 4, "i8": 1, "i16": 2, "i32": 4, "i64": 8}
_DTYPES = {"f32": np.float32, "i8": np.int8, "i16": np.int16, "i32": np.int32, "i64": np.int64}

C_KEYWORDS = frozenset(
    [
        "auto",
        "break",
        "case",
        "char",
        "const",
        "continue",
        "default",
        "do",
        "double",
        "else",
        "enum",
        "extern",
        "float",
        "for",
        "goto",
        "if",
        "inline",
        "int",
        "long",
        "register",
        "restrict",
        "return",
        "short",
        "signed",
        "sizeof",
        "static",
        "struct",
        "switch",
        "typedef",
        "union",
        "unsigned",
        "void",
        "volatile",
        "while",
        "_Bool",
        "_Complex",
        "_Imaginary",
    ]
)


def c_identifier(text: str) -> str:
    """``text`` made into a C identifier (letters, digits and '_', not starting with a digit)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return name if re.match(r"[A-Za-z_]", name) else f"_{name}"


def format_floats(values: np.ndarray) -> list[str]:
    """float32 values as C literals that read back exactly (9 significant digits)."""
    out = []
    for text in np.char.mod("%.9g", values.astype(np.float32).ravel()).tolist():
        if not any(ch in text for ch in ".e"):
            text += ".0"
        out.append(text + "f")
    return out


def format_ints(values: np.ndarray, dtype: str) -> list[str]:
    """Integer values as C literals (64-bit ones through INT64_C)."""
    items = [str(int(v)) for v in values.ravel()]
    if dtype == "i64":
        return [f"INT64_C({v})" for v in items]
    return items


def output_mode(attrs: dict) -> int:
    """The ``sequence`` argument of the recurrent kernels: 0 final state, 1 every step,
    2 the step T - 1 of the output sequence (a bidirectional layer's ``output_mode="last"``)."""
    if attrs["sequence"]:
        return 1
    return 2 if attrs.get("last_step") else 0


def c_float(value: float) -> str:
    """One float32 literal."""
    return format_floats(np.array([value], dtype=np.float32))[0]


class Constants:
    """The ``const`` arrays of the weights file, each named ``<prefix>_<label>_<key>``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.arrays: dict[str, tuple[str, np.ndarray]] = {}  # C name -> (dtype, values)
        self.owner: dict[str, int | None] = {}  # C name -> index of the op (memory report)

    def add(
        self, label: str, key: str, values: np.ndarray, dtype: str = "f32", owner: int | None = None
    ) -> str:
        """Register an array (reused when the same one is added again); returns its C name.

        ``owner`` (the index of the op using it) attributes its bytes in the memory report.
        """
        values = np.ascontiguousarray(values, dtype=_DTYPES[dtype]).ravel()
        base = c_identifier(f"{self.prefix}_{label.split(' + ')[0]}_{key}")
        name, suffix = base, 1
        while name in self.arrays:
            same_dtype, existing = self.arrays[name]
            if same_dtype == dtype and np.array_equal(existing, values):
                return name
            suffix += 1
            name = f"{base}_{suffix}"
        self.arrays[name] = (dtype, values)
        self.owner[name] = owner
        return name

    def nbytes(self, name: str) -> int:
        dtype, values = self.arrays[name]
        return ITEM_BYTES[dtype] * values.size

    def declarations(self) -> str:
        return "\n".join(
            f"extern const {CTYPES[d]} {n}[{v.size}];" for n, (d, v) in self.arrays.items()
        )

    def definitions(self) -> str:
        blocks = []
        for name, (dtype, values) in self.arrays.items():
            items = format_floats(values) if dtype == "f32" else format_ints(values, dtype)
            lines = [", ".join(items[i : i + 8]) for i in range(0, len(items), 8)]
            body = ",\n    ".join(lines)
            blocks.append(f"const {CTYPES[dtype]} {name}[{values.size}] = {{\n    {body}\n}};")
        return "\n\n".join(blocks) + "\n"


class Buffers:
    """C expressions for planned buffers: arena slices or the caller's pointers."""

    def __init__(self, prefix: str, inputs: list[str], outputs: list[str]) -> None:
        self.prefix, self.inputs, self.outputs = prefix, inputs, outputs

    def expr(self, buffer: Buffer) -> str:
        if buffer.space.startswith("input"):
            return self.inputs[int(buffer.space[5:])]
        if buffer.space.startswith("output"):
            return self.outputs[int(buffer.space[6:])]
        base = f"{self.prefix}_{buffer.space}"
        return base if buffer.offset == 0 else f"{base} + {buffer.offset}"
