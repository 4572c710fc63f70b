"""End-to-end: the Training Monitor in headless chromium follows two trainings that a script
runs in another process, and its Stop buttons end them early with the networks kept; runs
that finished, were stopped, failed or are still running each show their state."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from apps_browser import ROOT, launch_browser, require_front_end, screenshot

from deeptoolbox import Network, load
from deeptoolbox import layers as L
from deeptoolbox.apps import TrainingMonitorLog, monitor
from deeptoolbox.errors import TrainingError
from deeptoolbox.training import TrainingOptions, train

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")

SCRIPT = textwrap.dedent("""
    import json, sys, threading, torch
    from deeptoolbox import Network, layers as L, save
    from deeptoolbox.apps import TrainingMonitorLog
    from deeptoolbox.training import TrainingOptions, train

    runs, out = sys.argv[1], sys.argv[2]
    def run(name, seed):
        torch.manual_seed(seed)
        x = torch.randn(64, 4); y = (x[:, 0] + x[:, 1] > 0).long()
        net = Network([L.FeatureInput(4), L.Dense(16), L.ReLU(), L.Dense(2), L.Softmax()])
        options = TrainingOptions(max_epochs=100000, mini_batch_size=16, verbose=False,
                                  verbose_frequency=1, metrics=["accuracy"], seed=seed,
                                  validation_data=(x[:16], y[:16]), validation_frequency=10,
                                  callbacks=[TrainingMonitorLog(runs, name=name)])
        result = train(net, (x, y), "crossentropy", options)
        save(result.network, f"{out}/{name}.zip")
        with open(f"{out}/{name}.json", "w") as stream:
            json.dump({"stop_reason": result.stop_reason,
                       "iterations": len(result.history.iterations)}, stream)
    threads = [threading.Thread(target=run, args=(n, s)) for n, s in (("run-a", 0), ("run-b", 1))]
    [t.start() for t in threads]; [t.join() for t in threads]
""")


def _points(page, name: str) -> int:
    return int(page.get_by_test_id(f"points-{name}").get_attribute("data-count"))


def test_monitor_follows_two_runs_of_a_script_and_stops_them(tmp_path):
    require_front_end()
    handle = monitor(root=tmp_path, open_browser=False)
    runs = handle.options.runs
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(runs), str(tmp_path)],
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    try:
        with sync_api.sync_playwright() as playwright:
            browser = launch_browser(playwright)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(60_000)
            page.goto(handle.url + "#monitor")
            for name in ("run-a", "run-b"):
                page.get_by_test_id(f"panel-{name}").wait_for()
            page.wait_for_function(
                "Number(document.querySelector('[data-testid=\"points-run-a\"]')"
                ".dataset.count) >= 20"
            )
            seen = _points(page, "run-a")
            page.wait_for_function(
                "Number(document.querySelector('[data-testid=\"points-run-a\"]')"
                f".dataset.count) > {seen}"
            )  # the curves grow while training runs
            assert "iteration" in page.get_by_test_id("info-run-a").text_content()
            page.get_by_test_id("plot-accuracy-run-a").wait_for()
            screenshot(page, "monitor")
            page.get_by_test_id("stop-run-a").click()
            page.get_by_test_id("stop-run-b").click()
            page.get_by_test_id("ended-run-a").wait_for()
            page.get_by_test_id("ended-run-b").wait_for()
            assert "TrainingMonitorLog" in page.get_by_test_id("ended-run-a").text_content()
            page.wait_for_function(
                "document.querySelector('[data-testid=\"state-run-a\"]').textContent === 'stopped'"
            )  # an ended run no longer looks live: its state, no remaining time
            assert "stopped at iteration" in page.get_by_test_id("ended-run-a").text_content()
            assert "remaining" not in page.get_by_test_id("info-run-a").text_content()
            browser.close()
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
        handle.close()
    for name in ("run-a", "run-b"):
        result = json.loads((tmp_path / f"{name}.json").read_text())
        assert "TrainingMonitorLog" in result["stop_reason"]
        assert 20 <= result["iterations"] < 100000 * 4
        assert load(tmp_path / f"{name}.zip").output_shape() == (2,)


class _StopAt:
    """A callback of the user's own that stops training at one iteration."""

    def __init__(self, iteration):
        self.iteration = iteration

    def on_iteration_end(self, state, info):
        return info["iteration"] == self.iteration


def _train_run(runs, name, epochs=3, stop_at=None, nan=False):
    torch.manual_seed(0)
    x = torch.randn(32, 3)
    y = (x[:, 0] > 0).long()
    calls = []

    def loss(outputs, targets):  # NaN from the third iteration on, when `nan`
        calls.append(1)
        value = torch.nn.functional.cross_entropy(outputs, targets)
        return value * float("nan") if nan and len(calls) >= 3 else value

    callbacks = [TrainingMonitorLog(runs, name=name)]
    if stop_at is not None:
        callbacks.insert(0, _StopAt(stop_at))
    options = TrainingOptions(max_epochs=epochs, mini_batch_size=8, verbose=False,
                              verbose_frequency=1, seed=0, callbacks=callbacks)  # fmt: skip
    net = Network([L.FeatureInput(3), L.Dense(2), L.Softmax()])
    try:
        return train(net, (x, y), loss, options)
    except TrainingError as err:
        return err


def _write_events(runs, name, pid, remaining):
    """A run written by hand: started by process ``pid`` on this machine, two iterations."""
    folder = runs / f"{name}-20261204-000000-abcdef"
    folder.mkdir(parents=True)
    now = time.time()
    events = [{"event": "start", "time": now, "name": name, "pid": pid,
               "host": socket.gethostname()}]  # fmt: skip
    for iteration in (1, 2):
        events.append({"event": "iteration", "time": now, "iteration": iteration, "epoch": 1,
                       "max_epochs": 10, "total_iterations": 40, "loss": 0.5,
                       "learn_rate": 0.01, "metrics": {}, "elapsed": 2.0 * iteration,
                       "remaining": remaining, "device": "cpu"})  # fmt: skip
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def _text(page, test_id: str) -> str:
    return page.get_by_test_id(test_id).text_content()


def test_monitor_shows_how_each_run_ended_and_no_remaining_time_once_ended(tmp_path):
    """Finished, stopped by a callback, failed (NaN loss; process gone) and running runs:
    each shows its state and where it ended; only the running one a remaining time."""
    require_front_end()
    handle = monitor(root=tmp_path, open_browser=False)
    runs = handle.options.runs
    finished = _train_run(runs, "done", epochs=2)  # 4 iterations a epoch
    stopped = _train_run(runs, "halted", epochs=5, stop_at=6)
    failed = _train_run(runs, "diverged", nan=True)
    assert finished.stop_reason == "max epochs completed" and isinstance(failed, TrainingError)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process id that no longer exists
    _write_events(runs, "killed", gone.pid, remaining=30.0)
    _write_events(runs, "live", os.getpid(), remaining=754.0)  # this process: alive
    try:
        with sync_api.sync_playwright() as playwright:
            browser = launch_browser(playwright)
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.set_default_timeout(60_000)
            page.goto(handle.url + "#monitor")
            for name in ("done", "halted", "diverged", "killed", "live"):
                page.get_by_test_id(f"run-{name}").wait_for()
                if not page.get_by_test_id(f"panel-{name}").count():
                    page.get_by_test_id(f"run-{name}").locator("input").check()
                page.get_by_test_id(f"panel-{name}").wait_for()
            states = {n: _text(page, f"state-{n}") for n in
                      ("done", "halted", "diverged", "killed", "live")}  # fmt: skip
            assert states == {"done": "finished", "halted": "stopped", "diverged": "failed",
                              "killed": "failed", "live": "running"}  # fmt: skip
            page.wait_for_function(
                "document.querySelector('[data-testid=\"info-done\"]').textContent"
                ".includes('iteration 8/8')"
            )
            assert _text(page, "ended-done") == "finished at iteration 8: max epochs completed"
            assert _text(page, "ended-halted") == (
                "stopped at iteration 6: stopped by callback _StopAt (on_iteration_end)"
            )
            assert failed.result.history.iterations[-1]["iteration"] == 2  # the last good one
            assert _text(page, "ended-diverged").startswith(
                "failed at iteration 2: TrainingError: "
            )
            assert "NaN" in _text(page, "ended-diverged")
            assert _text(page, "ended-killed") == (
                f"failed at iteration 2: the training process {gone.pid} ended without "
                "finishing the run"
            )
            for name in ("done", "halted", "diverged", "killed"):
                assert "remaining" not in _text(page, f"info-{name}"), name
                assert not page.get_by_test_id(f"stop-{name}").count(), name
            assert "remaining 12:34" in _text(page, "info-live")  # 754 s
            assert page.get_by_test_id("stop-live").is_enabled()
            screenshot(page, "monitor-states")
            browser.close()
    finally:
        handle.close()
    assert stopped.stop_reason == "stopped by callback _StopAt (on_iteration_end)"
