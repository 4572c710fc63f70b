"""One trial trained data-parallel by several processes (exp.run(processes_per_trial=N))."""

import math

import pytest
from experiment_setups import quadratic_setup, ranked_digits_setup

from deeptoolbox.errors import OptionError
from deeptoolbox.experiments import Experiment


def table(tmp_path, tag, **values):
    return {"filters": [4], "lr": [0.01], "ranks": str(tmp_path / f"{tag}.log"), **values}


def run(tmp_path, tag, processes, workers=0, **values):
    exp = Experiment(tag, ranked_digits_setup, table(tmp_path, tag, **values),
                     store=tmp_path / "e.db", artifacts=False)  # fmt: skip
    summary = exp.run(workers=workers, verbose=False, processes_per_trial=processes)
    return exp, summary


def test_a_trial_trained_by_two_processes_matches_one_process(tmp_path):
    alone, _ = run(tmp_path, "one", 1)
    pair, summary = run(tmp_path, "two", 2, workers=1)  # a worker process is rank 0
    assert summary.counts == {"completed": 1}
    ranks = sorted((tmp_path / "two.log").read_text().split())
    assert ranks == ["0/2/0", "1/2/1"]  # both trained in one group; each setup saw its RANK
    assert (tmp_path / "one.log").read_text().split() == ["0/1/None"]
    one, two = alone.records()[0], pair.records()[0]
    # the global batch is split over the processes and the gradients averaged: same training
    for name in ("training_loss", "validation_loss", "validation_accuracy"):
        assert math.isclose(one.metrics[name], two.metrics[name], rel_tol=1e-3, abs_tol=1e-4)
    assert two.status == "completed" and len(two.history()) == len(one.history())


def test_a_rank_that_fails_fails_the_trial_with_its_message(tmp_path):
    exp, summary = run(tmp_path, "broken", 2, fail_rank=1)
    assert summary.counts == {"failed": 1}
    error = exp.records()[0].error
    assert "rank 1 exited with code 1" in error and "rank 1 refuses to build" in error


def test_processes_per_trial_is_checked(tmp_path):
    exp = Experiment("custom", quadratic_setup, {"x": [0.0]}, metric="score",
                     store=tmp_path / "e.db", artifacts=False)  # fmt: skip
    with pytest.raises(OptionError, match="setup must be setup\\(params\\)"):
        exp.run(workers=0, verbose=False, processes_per_trial=2)
    with pytest.raises(OptionError, match="`processes_per_trial` must be an int >= 1"):
        exp.run(workers=0, verbose=False, processes_per_trial=0)
