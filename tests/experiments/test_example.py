"""Smoke test of examples/experiment_digits.py (Bayesian optimization on digits)."""

import importlib.util
from pathlib import Path

import pytest

import deeptoolbox as dtb

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "experiment_digits.py"


def test_experiment_digits_example_runs_and_writes_its_files(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("experiment_digits", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    files = module.main(["--trials", "2", "--epochs", "1", "--workers", "0",
                         "--output", str(tmp_path)])  # fmt: skip
    out = capsys.readouterr().out
    assert "2 completed" in out and "best: trial" in out
    for name in ("results", "compare", "parallel", "importance"):
        assert files[name].stat().st_size > 0
    assert len(files["results"].read_text().splitlines()) == 3
    assert dtb.load(files["network"]).classes == [str(d) for d in range(10)]
