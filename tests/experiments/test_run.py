"""Running experiments in this process (workers=0): strategies, results, errors, resume."""

import dataclasses
import json
import sqlite3
import subprocess
import sys
from wsgiref.util import setup_testing_defaults

import optuna
import pytest
from experiment_setups import (
    branin,
    controlling_setup,
    digits_setup,
    digits_split,
    failing_setup,
    pruned_setup,
    quadratic_setup,
    sleepy_setup,
    slow_quadratic_setup,
    wrong_metric_setup,
)

import deeptoolbox as dtb
from deeptoolbox.experiments import (
    Choice,
    Experiment,
    ExperimentError,
    Uniform,
    load_experiment,
)
from deeptoolbox.experiments import _store as keys


def run(tmp_path, setup, parameters, name="exp", **options):
    options.setdefault("store", tmp_path / "e.db")
    experiment = Experiment(name, setup, parameters, **options)
    return experiment, experiment.run(workers=0, verbose=False)


def test_exhaustive_custom_training_records_everything(tmp_path):
    exp, summary = run(tmp_path, quadratic_setup, {"x": [0.0, 0.3, 1.0], "tag": "fixed"},
                       metric="score")  # fmt: skip
    assert summary.counts == {"completed": 3} and summary.run == 1
    rows = exp.results(as_records=True)
    assert [r["x"] for r in rows] == [0.0, 0.3, 1.0] and {r["tag"] for r in rows} == {"fixed"}
    assert [r["score"] for r in rows] == pytest.approx([-0.09, 0.0, -0.49])
    assert rows[0]["loss"] == pytest.approx(0.09 + 1 / 5)  # last recorded value is final
    assert rows[0]["best_loss"] == pytest.approx(0.09 + 1 / 5)
    assert exp.best.params == {"x": 0.3, "tag": "fixed"}
    trial = exp.trial(0)
    assert trial.attributes["info"] == {"x": 0.0} and trial.attributes["progress"] == 100.0
    folder = trial.artifacts
    assert json.loads((folder / "params.json").read_text()) == {"x": 0.0, "tag": "fixed"}
    assert [r["loss"] for r in trial.history() if "loss" in r] == pytest.approx(
        [0.09 + 1 / i for i in range(1, 6)]
    )
    assert (folder / "history.csv").read_text().splitlines()[0] == "iteration,loss"
    assert (folder / "training-progress.png").stat().st_size > 5000


def test_running_again_recomputes_nothing_and_a_changed_table_is_refused(tmp_path):
    exp, _ = run(tmp_path, quadratic_setup, {"x": [0.0, 1.0]}, metric="score")
    again = exp.run(workers=0, verbose=False)
    assert again.run == 2 and len(exp.records()) == 2 and exp.runs() == [1, 2]
    with pytest.raises(ExperimentError, match="another parameters"):
        run(tmp_path, quadratic_setup, {"x": [0.0, 2.0]}, metric="score")


def test_random_strategy_is_reproducible_and_respects_constraints(tmp_path):
    parameters = {"x": Uniform(0.0, 1.0), "kind": Choice(["a", "b"])}
    keep = [lambda p: p["x"] < 0.7]
    one, _ = run(tmp_path, quadratic_setup, parameters, "one", strategy="random", trials=6,
                 metric="score", constraints=keep, artifacts=False, seed=3)  # fmt: skip
    two, _ = run(tmp_path, quadratic_setup, parameters, "two", strategy="random", trials=6,
                 metric="score", constraints=keep, artifacts=False, seed=3)  # fmt: skip
    params = [r.params for r in one.records()]
    assert params == [r.params for r in two.records()] and len(params) == 6
    assert all(p["x"] < 0.7 for p in params) and {p["kind"] for p in params} <= {"a", "b"}
    assert one.trial(0).artifacts is None


def test_bayesian_beats_its_own_start_on_branin(tmp_path):
    exp, summary = run(tmp_path, branin, {"x": Uniform(-5, 10), "y": Uniform(0, 15)},
                       strategy="bayesian", trials=25, metric="branin", direction="minimize",
                       artifacts=False)  # fmt: skip
    values = [r.value for r in exp.records()]
    assert summary.counts == {"completed": 25}
    assert min(values) < min(values[:10])  # TPE's own trials improve on its random start
    assert exp.best.value == min(values)


def test_bayesian_skips_combinations_that_break_constraints(tmp_path):
    exp, _ = run(tmp_path, branin, {"x": Uniform(-5, 10), "y": Uniform(0, 15)},
                 strategy="bayesian", trials=8, metric="branin", direction="minimize",
                 constraints=[lambda p: p["x"] + p["y"] < 12], artifacts=False)  # fmt: skip
    records = exp.records()
    completed = [r for r in records if r.status == "completed"]
    assert len(completed) == 8 and all(r.params["x"] + r.params["y"] < 12 for r in completed)
    assert all(r.status in ("completed", "skipped") for r in records)


def test_a_setup_that_raises_fails_its_trial_and_the_others_go_on(tmp_path):
    exp, summary = run(tmp_path, failing_setup, {"x": [1, 2, 3]}, metric="score")
    assert summary.counts == {"completed": 2, "failed": 1}
    failed = exp.trial(1)
    assert failed.status == "failed" and failed.params == {"x": 2}
    assert failed.error == "ValueError: x=2 is not allowed in this setup"
    assert "Traceback" in failed.traceback and "failing_setup" in failed.traceback
    assert exp.best.params == {"x": 3}


def test_a_metric_never_reported_stops_after_the_first_trial(tmp_path):
    with pytest.raises(ExperimentError, match="validation_accuracy") as caught:
        run(tmp_path, wrong_metric_setup, {"x": [1, 2, 3]})
    message = str(caught.value)
    assert "['training_loss', 'validation_loss']" in message and "trial 0" in message
    exp = load_experiment("exp", store=tmp_path / "e.db")
    assert exp.counts() == {"failed": 1, "queued": 2}


def test_trial_time_limit_stops_a_custom_trial_politely(tmp_path):
    exp, summary = run(tmp_path, sleepy_setup, {"seconds": [30]}, metric="score",
                       trial_max_time=1.5)  # fmt: skip
    trial = exp.trial(0)
    assert trial.status == "stopped" and trial.error == "trial time limit"
    # score counts iterations of >= 0.1 s: it stopped long before its 30 s (load-proof check)
    assert trial.metrics["reason_code"] == 1.0 and 1.0 <= trial.metrics["score"] < 100


def test_median_pruner_prunes_hopeless_trials(tmp_path):
    exp, summary = run(tmp_path, pruned_setup, {"x": [5.0, 4.0, 6.0, 0.5, 0.1]},
                       metric="score", pruner="median", artifacts=False)  # fmt: skip
    statuses = {r.params["x"]: r.status for r in exp.records()}
    assert statuses[0.5] == "pruned" and statuses[0.1] == "pruned"
    assert statuses[5.0] == statuses[6.0] == "completed"
    assert len(exp.trial(3).history()) < 20


def test_results_sort_filter_annotate_and_csv(tmp_path):
    exp, _ = run(tmp_path, failing_setup, {"x": [1, 2, 3, 4]}, metric="score")
    exp.annotate(3, "looks best")
    frame = exp.results(sort_by="score")
    assert list(frame["x"]) == [4, 3, 1, 2]  # best first, the failed trial last
    assert exp.results(status="failed", as_records=True)[0]["x"] == 2
    assert [r["x"] for r in exp.results(where={"status": "completed"}, as_records=True)] == [
        1,
        3,
        4,
    ]
    assert [r["x"] for r in exp.results(where=lambda r: r["x"] > 2, as_records=True)] == [3, 4]
    assert exp.trial(3).annotation == "looks best"
    with pytest.raises(ExperimentError, match="no column 'accuracy'"):
        exp.results(sort_by="accuracy")
    text = exp.export_csv(tmp_path / "results.csv").read_text().splitlines()
    assert text[0].startswith("trial,status,x,score") and len(text) == 5
    assert "looks best" in text[4]


def test_results_without_pandas_are_records(tmp_path, monkeypatch):
    exp, _ = run(tmp_path, quadratic_setup, {"x": [0.0]}, metric="score", artifacts=False)
    monkeypatch.setitem(sys.modules, "pandas", None)
    rows = exp.results()
    assert isinstance(rows, list) and rows[0]["trial"] == 0


def test_optuna_load_study_sees_the_same_trials_and_values(tmp_path):
    exp, _ = run(tmp_path, quadratic_setup, {"x": [0.0, 0.5, 1.0]}, metric="score")
    study = optuna.load_study(study_name="exp", storage=f"sqlite:///{tmp_path / 'e.db'}")
    assert [t.number for t in study.trials] == [r.number for r in exp.records()]
    assert [t.value for t in study.trials] == [r.value for r in exp.records()]
    assert [t.params for t in study.trials] == [{"x": 0.0}, {"x": 0.5}, {"x": 1.0}]
    assert study.best_trial.number == exp.best.number
    with sqlite3.connect(tmp_path / "e.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_compare_parallel_coordinates_and_importance_plots(tmp_path):
    exp, _ = run(tmp_path, quadratic_setup, {"x": [0.0, 0.2, 0.5, 0.9], "y": [1, 2]},
                 metric="score")  # fmt: skip
    paths = [exp.compare(metric="loss", path=tmp_path / "compare.png"),
             exp.compare(trials=[0, 1], path=tmp_path / "compare-score.png"),
             exp.plot_parallel_coordinates(tmp_path / "parallel.png"),
             exp.plot_importance(tmp_path / "importance.png")]  # fmt: skip
    assert all(p.stat().st_size > 10_000 for p in paths)
    importance = exp.importance()
    assert set(importance) == {"x", "y"} and importance["x"] > importance["y"]


def test_stop_and_annotate_unknown_trials_are_errors(tmp_path):
    exp, _ = run(tmp_path, quadratic_setup, {"x": [0.0]}, metric="score", artifacts=False)
    with pytest.raises(ExperimentError, match="not running"):
        exp.stop(0)
    with pytest.raises(ExperimentError, match="no trial 7"):
        exp.annotate(7, "?")


def test_stop_from_outside_keeps_the_trial_results(tmp_path):
    store = str(tmp_path / "e.db")
    table = {"x": [1, 2, 3], "name": "ctl", "store": store, "action": "stop"}
    exp, summary = run(tmp_path, controlling_setup, table, "ctl", metric="score")
    assert summary.counts == {"completed": 2, "stopped": 1}
    stopped = exp.trial(1)
    assert stopped.status == "stopped" and stopped.value == 2.0
    assert stopped.error == "stopped by user"


def test_cancel_stops_the_run_and_the_next_run_completes_it(tmp_path):
    store = str(tmp_path / "e.db")
    table = {"x": [1, 2, 3], "name": "cancel", "store": store, "action": "cancel"}
    exp, summary = run(tmp_path, controlling_setup, table, "cancel", metric="score")
    assert summary.counts == {"completed": 1, "cancelled": 1, "queued": 2}
    assert exp.trial(1).attributes["requeued"] is True
    again = exp.run(workers=0, verbose=False)
    assert again.counts == {"completed": 3, "cancelled": 1}
    assert sorted(r.params["x"] for r in exp.records() if r.status == "completed") == [1, 2, 3]
    assert exp.trial(3).attributes["requeue_of"] == 1


def test_built_in_training_stops_at_its_time_limit_and_keeps_its_network(tmp_path):
    net, (x, y), loss, options = digits_setup({"filters": 4, "lr": 0.01})
    options = dataclasses.replace(options, verbose=False)
    dtb.train(net, (x[:64], y[:64]), loss, options)  # first-call imports outside the limit
    table = {"filters": [4], "lr": [0.01], "epochs": 500}
    exp, summary = run(tmp_path, digits_setup, table, trial_max_time=4.0)
    trial = exp.trial(0)
    assert trial.status == "stopped" and trial.error == "trial time limit"
    assert 0.0 < trial.value <= 1.0
    iterations = [row["iteration"] for row in trial.history() if "training_loss" in row]
    assert 0 < iterations[-1] < 22 * 250  # the curves so far are kept; < half of 500 epochs
    assert trial.attributes["progress"] < 100
    _, validation = digits_split()
    net = trial.load_network()
    assert dtb.evaluate(net, validation, ["accuracy"])["accuracy"] == pytest.approx(trial.value)


def test_optuna_dashboard_opens_the_store(tmp_path):
    dashboard = pytest.importorskip("optuna_dashboard")
    exp, _ = run(tmp_path, quadratic_setup, {"x": [0.0, 0.5]}, metric="score", artifacts=False)
    app = dashboard.wsgi(exp.url)

    def get(path):
        environ, status = {}, []
        setup_testing_defaults(environ)
        environ["PATH_INFO"] = path
        body = b"".join(app(environ, lambda line, headers, error=None: status.append(line)))
        assert status == ["200 OK"], (path, status, body[:300])
        return json.loads(body)

    (study,) = get("/api/studies")["study_summaries"]
    assert study["study_name"] == "exp" and study["directions"] == ["maximize"]
    trials = get(f"/api/studies/{study['study_id']}")["trials"]
    assert [(t["number"], t["state"], t["values"]) for t in trials] == [
        (r.number, "Complete", [r.value]) for r in exp.records()
    ]
    assert [t["params"][0]["param_external_value"] for t in trials] == ["0.0", "0.5"]
    statuses = [a["value"] for t in trials for a in t["user_attrs"] if a["key"] == "status"]
    assert statuses == ["completed", "completed"]


def test_experiment_time_limit_stops_the_running_trial_and_starts_no_other(tmp_path):
    exp, summary = run(tmp_path, sleepy_setup, {"seconds": [30, 31]}, metric="score",
                       max_time=1.5)  # fmt: skip
    assert summary.counts == {"stopped": 1, "queued": 1}
    trial = exp.trial(0)
    assert trial.error == "experiment time limit" and trial.metrics["reason_code"] == 1.0
    assert 1.0 <= trial.value < 100  # iterations of >= 0.1 s: it stopped long before 30 s


def test_bayesian_with_only_a_time_budget_stops_at_it(tmp_path):
    exp, summary = run(tmp_path, slow_quadratic_setup, {"x": Uniform(0.0, 1.0), "sleep": 0.3},
                       strategy="bayesian", metric="score", max_time=2.0,
                       artifacts=False)  # fmt: skip
    assert set(summary.counts) <= {"completed", "stopped"} and summary.counts["completed"] >= 1
    assert len(exp.records()) <= 7  # trials of >= 0.3 s each, none started after 2 s
    deadline = exp._store().attrs()[keys.DEADLINE]
    assert all(t.datetime_start.timestamp() < deadline for t in exp.study.trials)


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_best_values_follow_the_direction_of_each_metric(tmp_path, direction):
    from experiment_setups import error_setup

    metric = "error" if direction == "minimize" else "accuracy"
    exp, _ = run(tmp_path, error_setup, {"x": [0]}, metric=metric, direction=direction)
    (row,) = exp.results(as_records=True)
    assert row["best_error"] == pytest.approx(0.4)  # the lowest error, whatever the metric
    assert row["best_accuracy"] == pytest.approx(0.6)
    assert exp.best.value == pytest.approx(0.7 if metric == "error" else 0.3)  # final values


@pytest.mark.parametrize("strategy", ["bayesian", "exhaustive"])
def test_no_trial_is_claimed_when_the_time_limit_passes_while_the_queue_is_read(
    tmp_path, monkeypatch, strategy
):
    import time

    from deeptoolbox.experiments._engine import Store

    exp = Experiment("late", quadratic_setup, {"x": [0.0, 0.5]}, metric="score",
                     strategy=strategy, trials=4 if strategy == "bayesian" else None,
                     max_time=60.0, store=tmp_path / "e.db",
                     artifacts=False)  # fmt: skip
    exp.create()
    store = exp._store()
    store.set(keys.DEADLINE, time.time() + 0.2)
    reads = Store.trials

    def slow_reads(self, states=None):  # the time limit passes while the store is read
        found = reads(self, states)
        time.sleep(0.3)
        return found

    monkeypatch.setattr(Store, "trials", slow_reads)
    assert store.claim() is None
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in exp.study.trials)


@pytest.mark.parametrize("stale", ["fail", "requeue"])
def test_a_trial_left_running_by_a_dead_process_is_failed_or_requeued(tmp_path, stale):
    exp = Experiment("stale", quadratic_setup, {"x": [0.0, 0.5, 1.0]}, metric="score",
                     store=tmp_path / "e.db", artifacts=False)  # fmt: skip
    exp.create()
    store = exp._store()
    claimed = store.claim()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    store.set_trial(claimed._trial_id, host=keys.HOST, pid=gone.pid, status="running")
    summary = exp.run(workers=0, stale=stale, verbose=False)
    assert summary.crashed == [claimed.number]
    crashed = exp.trial(claimed.number)
    assert crashed.status == "crashed" and "stopped before the trial ended" in crashed.error
    done = sorted(r.params["x"] for r in exp.records() if r.status == "completed")
    if stale == "fail":
        assert summary.counts == {"crashed": 1, "completed": 2} and done == [0.5, 1.0]
    else:
        assert summary.counts == {"crashed": 1, "completed": 3} and done == [0.0, 0.5, 1.0]


def tiny_built_in_setup(params):
    """Built-in classification with a validation datastore (named classes), a few iterations."""
    from experiment_setups import digits_network

    images, labels = dtb.datasets.digits()
    data = dtb.data.ArrayDatastore(images[:200], targets=labels[:200])
    train_data, validation = data.split(0.75, seed=0)
    options = dtb.TrainingOptions(
        solver="adam", max_epochs=1, mini_batch_size=50, validation_data=validation,
        metrics=["accuracy"], verbose=False,
    )  # fmt: skip
    return digits_network(params["filters"]), train_data, "crossentropy", options


def test_a_built_in_classification_trial_with_validation_data_writes_its_confusion_chart(
    tmp_path,
):
    experiment, summary = run(tmp_path, tiny_built_in_setup, {"filters": [2]})
    record = experiment.trial(0)
    assert summary.counts == {"completed": 1}, record.traceback
    assert (record.artifacts / "confusion.png").stat().st_size > 1000
    assert 0.0 <= record.metrics["validation_accuracy"] <= 1.0
    metrics = pytest.importorskip("sklearn.metrics")
    stored = json.loads((record.artifacts / "validation-predictions.json").read_text())
    assert len(stored["truth"]) == len(stored["predicted"]) == 50  # a quarter of 200
    chart = record.confusion()
    expected = metrics.confusion_matrix([str(t) for t in stored["truth"]],
                                        [str(p) for p in stored["predicted"]],
                                        labels=stored["classes"])  # fmt: skip
    assert chart.classes == stored["classes"] and chart.matrix.tolist() == expected.tolist()
    assert chart.accuracy == pytest.approx(record.metrics["validation_accuracy"], abs=1e-6)
