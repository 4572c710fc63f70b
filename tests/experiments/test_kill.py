"""Crash safety: kill -9 of one worker, or of the whole run; resuming runs each combination
exactly once to completion and the SQLite file stays sound."""

import os
import signal
import sqlite3
import time

import pytest
from experiment_processes import deeptoolbox_command, trials_of, wait_for, write_spec
from optuna.trial import TrialState

from deeptoolbox.cli import main
from deeptoolbox.experiments._engine import pid_alive

pytestmark = pytest.mark.slow

GRID = '{"x": [0.0, 0.1, 0.2, 0.3], "sleep": 2.0}'
COMBOS = [0.0, 0.1, 0.2, 0.3]


def completed_once(trials):
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    return sorted(t.params["x"] for t in done) == COMBOS


def assert_sound(store):
    with sqlite3.connect(store) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def running_with_pid(url, name):
    return [
        t
        for t in trials_of(url, name)
        if t.state == TrialState.RUNNING and isinstance(t.user_attrs.get("pid"), int)
    ]


def test_kill_of_one_worker_mid_trial(tmp_path):
    store = tmp_path / "e.db"
    url = f"sqlite:///{store}"
    spec = write_spec(tmp_path, "killone", "slow_quadratic_setup", GRID, store, metric="'score'")
    run = deeptoolbox_command("experiment", "run", str(spec), "--workers", "2",
                              start_new_session=True)  # fmt: skip
    try:
        victim = wait_for(lambda: running_with_pid(url, "killone"), 300, "a running trial", run)[0]
        os.kill(victim.user_attrs["pid"], signal.SIGKILL)
        output, _ = run.communicate(timeout=400)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 0, output
    trials = trials_of(url, "killone")
    assert completed_once(trials), output
    crashed = [t for t in trials if t.state == TrialState.FAIL]
    assert [t.number for t in crashed] == [victim.number]
    assert crashed[0].user_attrs["status"] == "crashed" and crashed[0].user_attrs["requeued"]
    copy = [t for t in trials if t.user_attrs.get("requeue_of") == victim.number]
    assert len(copy) == 1 and copy[0].state == TrialState.COMPLETE
    assert copy[0].params == victim.params
    assert f"trial {victim.number} crashed" in output
    assert_sound(store)


def test_kill_of_the_whole_run_then_resume(tmp_path, capsys):
    store = tmp_path / "e.db"
    url = f"sqlite:///{store}"
    spec = write_spec(tmp_path, "killall", "slow_quadratic_setup", GRID, store, metric="'score'")
    run = deeptoolbox_command("experiment", "run", str(spec), "--workers", "2",
                              start_new_session=True)  # fmt: skip

    def one_done_one_running():
        trials = trials_of(url, "killall")
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        return done if done and running_with_pid(url, "killall") else None

    try:
        wait_for(one_done_one_running, 400, "a finished and a running trial", run)
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # the run and its workers, all at once
        run.wait()
    before = {t.number: t.datetime_complete for t in trials_of(url, "killall")
              if t.state == TrialState.COMPLETE}  # fmt: skip
    in_flight = [t for t in trials_of(url, "killall") if t.state == TrialState.RUNNING]
    pids = [t.user_attrs["pid"] for t in in_flight if "pid" in t.user_attrs]
    # SIGKILL reaches the workers asynchronously: run.wait() only waits for the parent
    deadline = time.monotonic() + 10
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert in_flight and not any(pid_alive(pid) for pid in pids)
    assert main(["experiment", "resume", "killall", "--store", str(store), "--workers", "2",
                 "--quiet"]) == 0  # fmt: skip
    trials = trials_of(url, "killall")
    assert completed_once(trials)
    after = {t.number: t.datetime_complete for t in trials if t.number in before}
    assert after == before  # nothing finished was run again
    for trial in in_flight:
        ended = next(t for t in trials if t.number == trial.number)
        assert ended.state == TrialState.FAIL and ended.user_attrs["status"] == "crashed"
    assert_sound(store)
    assert main(["experiment", "show", "killall", "--store", str(store)]) == 0
    assert "crashed" in capsys.readouterr().out
