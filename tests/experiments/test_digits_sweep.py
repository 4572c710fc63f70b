"""An exhaustive 6-trial sweep on the bundled digits with 2 worker processes (issue 16)."""

import json
import sqlite3

import optuna
import pytest
from experiment_setups import digits_setup, digits_split

import deeptoolbox as dtb
from deeptoolbox.experiments import Experiment, load_experiment

pytestmark = pytest.mark.slow

GRID = {"filters": [4, 8], "lr": [0.003, 0.01, 0.03]}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    store = tmp_path_factory.mktemp("digits") / "experiments.db"
    experiment = Experiment("digits", digits_setup, GRID, store=store)
    summary = experiment.run(workers=2, verbose=False)
    return experiment, summary, store


def test_six_trials_with_the_right_parameters(sweep):
    experiment, summary, _ = sweep
    assert summary.counts == {"completed": 6}
    frame = experiment.results()
    assert len(frame) == 6
    combos = sorted(zip(frame["filters"], frame["lr"], strict=True))
    assert combos == sorted((f, lr) for f in GRID["filters"] for lr in GRID["lr"])
    assert frame["validation_accuracy"].between(0.1, 1.0).all()
    assert len({r.attributes["pid"] for r in experiment.records()}) == 2  # both workers ran


def test_artifacts_reload_and_the_network_predicts_the_recorded_accuracy(sweep):
    experiment, _, _ = sweep
    _, (x, y) = digits_split()
    for record in experiment.records():
        folder = record.artifacts
        for name in ("network.zip", "history.csv", "history.json", "params.json",
                     "training-progress.png", "confusion.png", "result.json"):  # fmt: skip
            assert (folder / name).stat().st_size > 0, (record.number, name)
        assert json.loads((folder / "params.json").read_text()) == record.params
        net = record.load_network()
        accuracy = dtb.evaluate(net, (x, y), ["accuracy"])["accuracy"]
        assert accuracy == pytest.approx(record.metrics["validation_accuracy"], abs=1e-9)
        assert net.classes == [str(d) for d in range(10)]


def test_the_store_is_an_optuna_study_and_a_sound_sqlite_file(sweep):
    experiment, _, store = sweep
    study = optuna.load_study(study_name="digits", storage=f"sqlite:///{store}")
    assert sorted((t.number, t.value) for t in study.trials) == sorted(
        (r.number, r.value) for r in experiment.records()
    )
    with sqlite3.connect(store) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_trial_rerun_from_its_record_reproduces_its_metric(sweep, tmp_path):
    experiment, _, store = sweep
    record = load_experiment("digits", store=store).best
    again = experiment.rerun(record.number, folder=tmp_path)
    assert again.value == pytest.approx(record.value, abs=1e-12)
    assert again.metrics["validation_loss"] == pytest.approx(
        record.metrics["validation_loss"], rel=1e-5
    )
    assert (tmp_path / "network.zip").exists()
