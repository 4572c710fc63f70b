"""Built-in training trials through their train() callback: live curves in the store,
pruning, stop requests and time limits that end training cleanly (and the last resort for
custom code that ignores a stop request)."""

import json

import optuna
import pytest
from experiment_setups import digits_setup, digits_split, spied_digits_setup, stubborn_setup

import deeptoolbox as dtb
from deeptoolbox.experiments import Experiment
from deeptoolbox.experiments import _worker as worker_module


def run(tmp_path, setup, parameters, name="cb", **options):
    options.setdefault("store", tmp_path / "e.db")
    experiment = Experiment(name, setup, parameters, **options)
    return experiment, experiment.run(workers=0, verbose=False)


def spy_table(tmp_path, name="cb", **values):
    return {"filters": [4], "lr": [0.01], "name": name, "store": str(tmp_path / "e.db"),
            "spy": str(tmp_path / "spy.json"), **values}  # fmt: skip


def test_live_curves_are_in_the_store_while_the_trial_trains(tmp_path, monkeypatch):
    monkeypatch.setattr(worker_module, "PUSH_SECONDS", 0.0)  # send every recorded row
    exp, summary = run(tmp_path, spied_digits_setup, spy_table(tmp_path, epochs=2))
    assert summary.counts == {"completed": 1}
    spy = json.loads((tmp_path / "spy.json").read_text())
    validations = [1, 10, 20, 30, 40, 44]
    assert [seen["iteration"] for seen in spy["seen"]] == validations
    assert all(seen["running"] == 1 for seen in spy["seen"])
    # at each validation the store already holds the rows recorded before it
    for seen, earlier in zip(spy["seen"][1:], validations, strict=False):
        rows = [r for r in seen["history"] if "validation_accuracy" in r]
        assert rows and rows[-1]["iteration"] == earlier
        assert seen["metrics"]["validation_accuracy"] == rows[-1]["validation_accuracy"]
        assert 0 < seen["progress"] < 100
    final = exp.trial(0)
    live = spy["seen"][-1]["history"]
    assert [r["training_loss"] for r in final.history()][: len(live)] == [
        r["training_loss"] for r in live
    ]
    assert final.attributes["progress"] == 100
    assert final.attributes["curves"] == final.history()


def test_every_iteration_is_in_the_trial_history_not_only_the_logged_ones(tmp_path):
    # loss read back every 5 iterations, validated every 8: 22 iterations in the one epoch
    table = spy_table(tmp_path, verbose_frequency=5, validation_frequency=8)
    exp, summary = run(tmp_path, spied_digits_setup, table)
    assert summary.counts == {"completed": 1}
    losses = json.loads((tmp_path / "spy.json").read_text())["losses"]  # train()'s own history
    assert [iteration for iteration, _ in losses] == list(range(1, 23))
    trial = exp.trial(0)
    for history in (trial.history(), trial.attributes["curves"]):  # history.json, the store
        assert [[r["iteration"], r["training_loss"]] for r in history] == losses
        logged = [r["iteration"] for r in history if "training_accuracy" in r]
        assert logged == [1, 5, 8, 10, 15, 16, 20, 22]
        validated = [r["iteration"] for r in history if "validation_accuracy" in r]
        assert validated == [1, 8, 16, 22]
    assert trial.metrics["training_loss"] == losses[-1][1]


def test_the_median_pruner_prunes_a_hopeless_built_in_trial(tmp_path):
    table = {"filters": [4], "lr": [0.01, 0.02, 0.03, 1e-6]}
    exp, summary = run(tmp_path, digits_setup, table, pruner="median", artifacts=False)
    assert summary.counts == {"completed": 3, "pruned": 1}
    hopeless = exp.trial(3)
    assert hopeless.params["lr"] == 1e-6 and hopeless.status == "pruned"
    assert exp.study.trials[3].state == optuna.trial.TrialState.PRUNED
    iterations = [r["iteration"] for r in hopeless.history() if "validation_accuracy" in r]
    assert iterations and iterations[-1] < 22  # stopped inside its one epoch of 22 iterations
    assert sorted(exp.study.trials[3].intermediate_values) == iterations


def test_a_stop_request_ends_built_in_training_cleanly_and_keeps_its_history(tmp_path):
    table = spy_table(tmp_path, epochs=20, stop_at=10)
    exp, summary = run(tmp_path, spied_digits_setup, table)
    assert summary.counts == {"stopped": 1}
    spy = json.loads((tmp_path / "spy.json").read_text())
    # train() returned (its own callbacks saw the end), stopped by the experiment's callback
    assert spy["stop_reason"] == "stopped by callback experiment trial (on_iteration_end)"
    trial = exp.trial(0)
    assert trial.status == "stopped" and trial.error == "stopped by user"
    history = trial.history()
    assert history[-1]["iteration"] == spy["last_iteration"] < 20 * 22
    assert [r["iteration"] for r in history if "validation_loss" in r][:2] == [1, 10]
    _, validation = digits_split()
    net = trial.load_network()
    assert dtb.evaluate(net, validation, ["accuracy"])["accuracy"] == pytest.approx(trial.value)


def test_a_time_limit_ends_built_in_training_through_the_callback(tmp_path):
    exp, summary = run(tmp_path, spied_digits_setup, spy_table(tmp_path, epochs=200),
                       trial_max_time=2.0, artifacts=False)  # fmt: skip
    assert summary.counts == {"stopped": 1}
    spy = json.loads((tmp_path / "spy.json").read_text())
    assert spy["stop_reason"] == "stopped by callback experiment trial (on_iteration_end)"
    trial = exp.trial(0)
    assert trial.error == "trial time limit" and 0.0 < trial.value <= 1.0
    assert trial.history()[-1]["iteration"] == spy["last_iteration"] < 200 * 22
    assert trial.attributes["progress"] < 100


def test_custom_code_that_ignores_a_stop_request_is_ended_and_keeps_its_history(tmp_path):
    exp, summary = run(tmp_path, stubborn_setup, {"seconds": [15.0]}, metric="score",
                       trial_max_time=1.0, artifacts=False)  # fmt: skip
    trial = exp.trial(0)
    assert summary.counts == {"stopped": 1} and trial.error == "trial time limit"
    assert trial.duration < 10  # ended a grace period after the limit, not after 15 s
    scores = [r["score"] for r in trial.history()]
    assert len(scores) >= 5 and trial.value == scores[-1]
