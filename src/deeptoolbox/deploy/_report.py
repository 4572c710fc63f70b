"""The memory report of generated C code: flash (weights) and RAM (the arena), per layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class LayerMemory:
    """One row of a :class:`CodegenReport`: the layers one generated step stands for.

    ``weight_bytes`` are its constant arrays (flash); ``activation_bytes`` the arena bytes of
    its output (0 when it writes over its input, into the caller's buffer, or is a view);
    ``scratch_bytes`` what it needs while it runs.

    Example:
        >>> row = LayerMemory("conv1 + bn1 + relu1", "conv2d", (8, 6, 6), 320, 1152, 32)
        >>> row.weight_bytes + row.activation_bytes
        1472
    """

    layers: str
    operation: str
    output_size: tuple[int, ...]
    weight_bytes: int
    activation_bytes: int
    scratch_bytes: int
    note: str = ""


@dataclass(frozen=True)
class CodegenReport:
    """What :func:`~deeptoolbox.deploy.generate_c` wrote, and how much memory the code needs.

    ``weight_bytes`` is the flash taken by the constant arrays; ``arena_bytes`` the RAM of the
    one statically allocated arena (every activation, scratch buffer and recurrent state);
    ``unshared_activation_bytes`` what the activations would take without reuse.
    ``print(report)`` shows the table.

    Example:
        >>> row = LayerMemory("fc", "dense", (3,), 60, 12, 0)
        >>> report = CodegenReport("net", "float32", 1, Path("out"), [], [row], 60, 12, 12)
        >>> report.ram_bytes, report.flash_bytes
        (12, 60)
    """

    name: str
    precision: str
    batch_size: int
    folder: Path
    files: list[Path]
    rows: list[LayerMemory]
    weight_bytes: int
    arena_bytes: int
    unshared_activation_bytes: int
    streaming: bool = False
    streaming_note: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def flash_bytes(self) -> int:
        """Bytes of constant data (weights, biases, tables): the flash the model needs."""
        return self.weight_bytes

    @property
    def ram_bytes(self) -> int:
        """Bytes of the arena: the RAM the model needs (caller's input/output buffers aside)."""
        return self.arena_bytes

    def __str__(self) -> str:
        header = (
            "layers",
            "operation",
            "output size",
            "weights (flash)",
            "activations (RAM)",
            "notes",
        )
        table = [header]
        for row in self.rows:
            extra = [row.note] if row.note else []
            if row.scratch_bytes:
                extra.append(f"scratch {_bytes(row.scratch_bytes)}")
            table.append(
                (
                    row.layers,
                    row.operation,
                    "x".join(map(str, row.output_size)),
                    _bytes(row.weight_bytes),
                    _bytes(row.activation_bytes),
                    "; ".join(extra),
                )
            )
        widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
            for r in table
        ]
        rule = "-" * max(len(line.rstrip()) for line in lines)
        step = "yes" if self.streaming else f"no ({self.streaming_note})"
        summary = [
            f"C code for '{self.name}' ({self.precision}, batch {self.batch_size}) in "
            f"{self.folder}",
            f"flash (weights): {_bytes(self.weight_bytes)}",
            f"RAM (arena):     {_bytes(self.arena_bytes)}  (activations without reuse: "
            f"{_bytes(self.unshared_activation_bytes)})",
            f"{self.name}_step: {step}",
            *self.notes,
        ]
        return "\n".join(
            [*summary, rule, lines[0].rstrip(), rule, *(line.rstrip() for line in lines[1:]), rule]
        )


def _bytes(count: int) -> str:
    if count < 10_000:
        return f"{count} B"
    if count < 10_000_000:
        return f"{count / 1024:.1f} KiB"
    return f"{count / 1024**2:.1f} MiB"
