"""End-to-end: the Experiment Manager page lists a small experiment run here, sorts its
results table and shows a trial's details."""

import pytest
from apps_browser import launch_browser, require_front_end, screenshot

from deeptoolbox.apps import monitor

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")
experiments = pytest.importorskip("deeptoolbox.experiments")


def _setup(params, monitor):
    monitor.metrics = ["loss"]
    for step in range(1, 4):
        monitor.record(step, loss=(params["x"] - 0.3) ** 2 + 1 / step)
    return {}


def _column(page, index: int) -> list[str]:
    return page.locator(f"[data-testid=results] tbody tr td:nth-child({index})").all_text_contents()


def test_experiment_results_sort_and_trial_details(tmp_path):
    require_front_end()
    experiment = experiments.Experiment(
        "sweep", _setup, {"x": [0.9, 0.1, 0.5]}, metric="loss", direction="minimize",
        store=tmp_path / "experiments.db", artifacts=False,
    )  # fmt: skip
    experiment.run(workers=0, verbose=False)
    handle = monitor(root=tmp_path, open_browser=False)
    try:
        with sync_api.sync_playwright() as playwright:
            browser = launch_browser(playwright)
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.set_default_timeout(20_000)
            page.goto(handle.url + "#experiments")
            page.get_by_test_id("exp-sweep").click()
            page.get_by_test_id("results").wait_for()
            header = page.locator("[data-testid=results] th").all_text_contents()
            x_column = header.index("x") + 1
            assert sorted(_column(page, x_column)) == ["0.1000", "0.5000", "0.9000"]
            page.get_by_test_id("sort-x").click()
            assert _column(page, x_column) == ["0.1000", "0.5000", "0.9000"]
            page.get_by_test_id("sort-x").click()
            assert _column(page, x_column) == ["0.9000", "0.5000", "0.1000"]
            page.get_by_test_id("row-1").click()
            details = page.get_by_test_id("trial-details")
            details.wait_for()
            assert '"x":0.1' in details.text_content()
            assert f"{(0.1 - 0.3) ** 2 + 1 / 3:.4}" in details.text_content()
            screenshot(page, "experiments")
            browser.close()
    finally:
        handle.close()
