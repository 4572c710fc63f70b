"""End-to-end: the Training Monitor in headless chromium follows two trainings that a script
runs in another process, and its Stop buttons end them early with the networks kept."""

import json
import subprocess
import sys
import textwrap

import pytest
from apps_browser import ROOT, launch_browser, require_front_end, screenshot

from deeptoolbox import load
from deeptoolbox.apps import monitor

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
