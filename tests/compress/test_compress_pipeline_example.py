"""Smoke test of examples/compress_pipeline.py with tiny epochs (accuracy is not checked)."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "compress_pipeline.py"


@pytest.mark.slow
def test_compress_pipeline_example_runs_every_stage(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    spec = importlib.util.spec_from_file_location("compress_pipeline_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = module.main(["--epochs", "1", "--fine-tune-epochs", "1", "--repetitions", "2",
                           "--output", str(tmp_path), "--images", str(tmp_path)])  # fmt: skip
    printed = capsys.readouterr().out
    for title in ("pruned + fine-tuned", "projected + fine-tuned", "original vs int8"):
        assert title in printed
    assert results["pruned_reduction"] >= 0.5
    assert results["projected_reduction"] >= 0.4
    assert results["size_ratio"] > 3
    assert (tmp_path / "digits-cnn-int8.onnx").is_file()
    assert (tmp_path / "compress-ranges.png").is_file() and (
        tmp_path / "compress-report.png"
    ).is_file()
