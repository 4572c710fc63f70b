"""Smoke tests of examples/matlab/: each port of a MathWorks example runs with small settings
and gives sensible answers (better than chance or a naive baseline)."""

from pathlib import Path

import numpy as np
import pytest

PORTS = Path(__file__).resolve().parents[2] / "examples" / "matlab"


def test_every_port_has_a_smoke_test_and_matlab_comments():
    tested = {
        "image_classification", "sequence_classification_bilstm", "time_series_forecasting",
        "cnn_regression", "transfer_learning", "dag_two_outputs", "gan_custom_loop",
        "explain_and_verify",
    }  # fmt: skip
    ports = {p.stem for p in PORTS.glob("*.py")}
    assert ports == tested
    for name in ports:
        text = (PORTS / f"{name}.py").read_text()
        assert text.count("# MATLAB:") >= 8, name
        assert "def main(argv" in text, name


def test_image_classification_reads_the_folder_and_beats_chance(run_example, capsys):
    results = run_example(
        "matlab/image_classification.py", "--epochs", "3", "--per-label", "20", "--count", "400"
    )
    assert results["image_size"] == (1, 8, 8)
    assert results["num_train"] == 200 and results["num_validation"] == 200
    assert sum(results["counts"].values()) == 400 and len(results["counts"]) == 10
    assert results["accuracy"] > 0.5  # chance: 0.1
    assert results["accuracy"] == pytest.approx(results["evaluate_accuracy"])
    assert "validation accuracy" in capsys.readouterr().out


def test_bilstm_sequence_classification_beats_chance(run_example):
    results = run_example(
        "matlab/sequence_classification_bilstm.py", "--epochs", "8", "--train", "90"
    )
    assert results["scores_shape"] == (60, 3)
    assert results["accuracy"] > 0.6  # chance: 1/3
    assert results["accuracy"] == pytest.approx(results["evaluate_accuracy"])


def test_closed_loop_forecast_beats_holding_the_last_value(run_example):
    results = run_example(
        "matlab/time_series_forecasting.py", "--epochs", "15", "--hidden", "16", "--horizon", "10"
    )
    assert results["forecast_shape"] == (20, 10, 3)
    assert results["closed_loop_rmse"] < 0.5 * results["naive_rmse"]
    assert results["open_loop_rmse"] < results["naive_rmse"]
    assert results["stateful_matches"]  # predictAndUpdateState == [Y, state] = predict


def test_cnn_regression_beats_predicting_the_mean_angle(run_example):
    results = run_example("matlab/cnn_regression.py", "--epochs", "8", "--train", "400")
    assert results["rmse"] < 0.7 * results["baseline_rmse"]
    assert results["rmse"] == pytest.approx(results["evaluate_rmse"], rel=1e-4)
    assert 0 < results["within_10_degrees"] <= 1


def test_transfer_learning_adapts_the_head_and_beats_chance(run_example):
    results = run_example("matlab/transfer_learning.py", "--pretrain-epochs", "3", "--epochs", "4")
    assert results["classes"] == ["5", "6", "7", "8", "9"]
    assert results["frozen"][-1] == "conv1"
    assert results["num_train"] == 100
    assert results["accuracy"] > 0.4  # chance: 0.2


def test_two_output_dag_learns_both_targets(run_example):
    results = run_example("matlab/dag_two_outputs.py", "--epochs", "3", "--train", "400")
    assert results["outputs"] == ["fc_class", "fc_angle"]
    assert results["accuracy"] > 0.3  # chance: 0.1
    assert results["angle_rmse"] < results["baseline_rmse"]


def test_gan_custom_loop_moves_the_generated_images_toward_the_data(run_example, tmp_path):
    results = run_example("matlab/gan_custom_loop.py", "--epochs", "3", "--output", str(tmp_path))
    assert results["iterations"] == 3 * (1797 // 64)
    assert results["generated"].shape == (25, 1, 8, 8)
    assert results["generated"].min() >= 0 and results["generated"].max() <= 1
    assert results["end_distance"] < results["start_distance"]
    assert 0 <= results["discriminator_score"] <= 1
    assert results["progress_plot"].stat().st_size > 0


def test_explanations_and_verification_answers(run_example):
    results = run_example("matlab/explain_and_verify.py", "--epochs", "4", "--verify", "3")
    assert results["accuracy"] > 0.5
    for name in ("gradcam", "lime", "occlusion"):
        assert tuple(results[name].shape)[-2:] == (8, 8), name
        assert np.isfinite(np.asarray(results[name])).all(), name
    assert results["small_box"] == ["verified"] * 3
    assert results["large_box"] == ["violated"] * 3
