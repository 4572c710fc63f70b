"""Smoke test of examples/transfer_learning.py: transfer beats training from scratch."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "transfer_learning.py"


@pytest.mark.slow
def test_transfer_learning_example_beats_training_from_scratch(capsys):
    spec = importlib.util.spec_from_file_location("transfer_learning_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = module.main(["--base-epochs", "2", "--epochs", "4"])  # a small training budget
    assert "feature extraction + SVM" in capsys.readouterr().out
    assert results["fine_tuned"] > results["from_scratch"] + 0.05
    assert results["features_svm"] > results["from_scratch"] + 0.25
    assert results["features_svm"] > 0.75
