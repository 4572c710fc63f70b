"""Smoke tests of examples/simulate/: each runs with small settings and gives the results
the issue asks for (a virtual sensor close to the true state, a trained controller far
better than untrained and better than a tuned PID, a stateful block equal to the offline
prediction)."""

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "simulate"


def test_every_example_has_a_smoke_test():
    assert {p.stem for p in EXAMPLES.glob("*.py")} == {
        "virtual_sensor", "neural_controller", "stateful_lstm_block"}  # fmt: skip


def test_neural_controller_beats_untrained_and_the_tuned_pid(run_example, tmp_path):
    r = run_example("simulate/neural_controller.py", "--epochs", "60", "--cases", "16",
                    "--t-end", "6", "--dt", "0.2", "--solver", "euler",
                    "--output", str(tmp_path))  # fmt: skip
    assert r["final_cost"] < r["initial_cost"] / 5
    assert r["final_cost"] < r["pid_cost"] and r["test_neural_cost"] < r["test_pid_cost"]
    assert (tmp_path / "tank-tracking.png").is_file()


def test_virtual_sensor_estimates_the_unmeasured_velocity(run_example, tmp_path):
    r = run_example("simulate/virtual_sensor.py", "--cases", "32", "--t-end", "5",
                    "--epochs", "20", "--hidden", "16", "--output", str(tmp_path))  # fmt: skip
    assert r["rmse"] < 0.35 * r["velocity_std"]
    assert (tmp_path / "virtual-sensor.png").is_file()


def test_stateful_lstm_block_reproduces_the_offline_prediction(run_example, tmp_path):
    r = run_example("simulate/stateful_lstm_block.py", "--epochs", "4", "--steps", "60",
                    "--output", str(tmp_path))  # fmt: skip
    assert r["max_difference"] < 1e-5
    assert r["forecast_rmse"] < r["signal_std"]
