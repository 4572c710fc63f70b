"""The memory report against the generated code: RAM = the arena, flash = the constants."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from deploy_helpers import COMPILER, requires_cc
from deploy_networks import SUITES, lstm_classifier, residual_cnn

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.deploy import generate_c

pytestmark = requires_cc


def _symbol_sizes(folder, name: str, source: str) -> dict[str, int]:
    """Sizes of the data symbols of one compiled generated file (via nm)."""
    obj = folder / f"{source}.o"
    subprocess.run(
        [COMPILER, "-std=c99", "-O2", "-c", "-o", str(obj), str(folder / f"{source}.c")], check=True
    )
    listing = subprocess.run(
        ["nm", "-S", "--defined-only", str(obj)], capture_output=True, text=True, check=True
    ).stdout
    sizes = {}
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3].startswith(f"{name}_"):
            sizes[parts[3]] = int(parts[1], 16)
    return sizes


def _macro(folder, name: str, macro: str) -> int:
    header = (folder / f"{name}.h").read_text()
    return int(re.search(rf"#define {name.upper()}_{macro} (\d+)", header).group(1))


@pytest.mark.skipif(shutil.which("nm") is None, reason="nm (binutils) is not installed")
@pytest.mark.parametrize(
    ("make", "options"),
    [
        (residual_cnn, {}),
        (lstm_classifier, {"sequence_length": 20}),
        (lambda: SUITES["images"][0](), {"batch_size": 2}),
    ],
    ids=["residual", "lstm-streaming", "image-layers"],
)
@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_report_figures_equal_the_sizes_in_the_compiled_code(tmp_path, make, options, precision):
    net, shapes = make()
    extra = {}
    if precision == "int8":
        import torch

        extra["calibration_data"] = [torch.randn(64, *shapes[0])]
    folder = tmp_path / "c"
    report = generate_c(net, folder, precision=precision, verbose=False, **options, **extra)
    arenas = {k: v for k, v in _symbol_sizes(folder, "net", "net").items() if "_arena_" in k}
    weights = _symbol_sizes(folder, "net", "net_weights")
    assert report.ram_bytes == report.arena_bytes == sum(arenas.values())
    assert _macro(folder, "net", "ARENA_BYTES") == report.arena_bytes
    assert report.flash_bytes == report.weight_bytes == sum(weights.values())
    assert _macro(folder, "net", "WEIGHT_BYTES") == report.weight_bytes
    assert sum(row.weight_bytes for row in report.rows) == report.weight_bytes


def test_arena_is_smaller_than_all_activations_on_a_residual_network(tmp_path):
    net, _ = residual_cnn()
    report = generate_c(net, tmp_path / "c", verbose=False)
    assert report.arena_bytes < report.unshared_activation_bytes
    assert report.arena_bytes <= report.unshared_activation_bytes // 2


def test_element_wise_layers_run_in_place_and_outputs_go_to_the_callers_buffer(tmp_path):
    net = Network(
        [
            L.ImageInput((2, 6, 6)),
            L.Conv2d(3, 3, padding=1, name="conv"),
            L.MaxPool2d(2, name="pool"),
            L.Sigmoid(name="act"),
            L.Flatten(name="flat"),
            L.Dense(4, name="fc"),
            L.Softmax(name="out"),
        ]
    )
    report = generate_c(net, tmp_path / "c", verbose=False)
    notes = {row.layers: row.note for row in report.rows}
    assert notes["act"] == "in place"
    assert notes["flat"].startswith("view")
    assert notes["out"] == "writes the caller's output"
    pool = next(r for r in report.rows if r.layers == "pool")
    assert pool.activation_bytes == 3 * 3 * 3 * 4


def test_report_is_printed_and_written(tmp_path, capsys):
    net = Network([L.FeatureInput(3), L.Dense(2, name="fc")])
    report = generate_c(net, tmp_path / "c")
    printed = capsys.readouterr().out
    assert "flash (weights): 32 B" in printed and "RAM (arena)" in printed and "fc" in printed
    assert (tmp_path / "c" / "memory_report.txt").read_text() == str(report) + "\n"
