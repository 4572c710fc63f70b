"""End-to-end: the Experiment Manager page lists a small experiment run here, sorts its
results table and shows a trial's details."""

import pytest
from apps_browser import launch_browser, require_front_end, screenshot

from deeptoolbox.apps import monitor

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")
experiments = pytest.importorskip("deeptoolbox.experiments")


def _setup(params, monitor):
    if params["x"] == 0.9:
        raise ValueError("x = 0.9 fails (a trial without a metric value)")
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
            for number in range(3):  # the failed trial too: three whole lines
                page.get_by_test_id(f"select-{number}").check()
            page.get_by_test_id("exp-compare").click()
            page.get_by_test_id("parallel").wait_for()
            paths = page.locator("[data-testid=parallel] path")
            assert paths.count() == 3
            assert [paths.nth(k).get_attribute("d").count("L") for k in range(3)] == [1, 1, 1]
            assert "none" in page.get_by_test_id("parallel").text_content()  # where it sits
            # the none mark under the metric's axis stays clear of that axis's title
            none = page.get_by_test_id("none-loss").bounding_box()
            title = page.get_by_test_id("title-loss").bounding_box()
            assert none["y"] + none["height"] <= title["y"], (none, title)
            browser.close()
    finally:
        handle.close()


SLOW_SETUP = """
import time


EXTRA = [f"auxiliary_metric_{k}" for k in range(6)]  # metric columns wider than the page


def setup(params, monitor):
    monitor.metrics = ["loss", *EXTRA]
    for step in range(1, 400):
        if monitor.stop_requested:
            break
        monitor.record(step, loss=(params["x"] - 0.3) ** 2 + 1 / step,
                       **{name: float(step) for name in EXTRA})
        time.sleep(0.05 if params["x"] == 0.9 else 0.0)
    return {}
"""


def test_experiment_created_run_and_stopped_from_the_page(tmp_path):
    """Create an experiment from the form, run it in a worker process, stop the slow trial."""
    require_front_end()
    (tmp_path / "sweep.py").write_text(SLOW_SETUP)
    handle = monitor(root=tmp_path, open_browser=False)
    try:
        with sync_api.sync_playwright() as playwright:
            browser = launch_browser(playwright)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(30_000)
            page.goto(handle.url + "#experiments")
            page.get_by_test_id("exp-new").click()
            page.get_by_test_id("exp-name").fill("from-app")
            page.get_by_test_id("exp-setup").fill("sweep.py:setup")
            page.get_by_test_id("exp-metric").fill("loss")
            page.get_by_test_id("exp-direction").select_option("minimize")
            page.get_by_test_id("param-name-0").fill("x")
            page.get_by_test_id("param-values-0").fill("0.1")  # a typo'd name first:
            page.get_by_test_id("exp-setup").fill("sweep.py:setpu")
            page.get_by_test_id("exp-create").click()
            assert "no function 'setpu'" in page.get_by_test_id("exp-form-error").text_content()
            page.get_by_test_id("exp-setup").fill("sweep.py:setup")
            page.get_by_test_id("param-values-0").fill("0.1, 0.9")
            screenshot(page, "experiments-new")
            page.get_by_test_id("exp-create").click()
            page.get_by_test_id("results").wait_for()
            assert "0 workers · 2 queued" in page.get_by_test_id("exp-status").text_content()
            page.get_by_test_id("exp-run").click()
            stop = page.get_by_test_id("stop-trial-1")  # trial 1 (x = 0.9) is the slow one
            stop.wait_for()
            # in sight without scrolling, however many metric columns the table has
            page.wait_for_function("document.querySelector('[data-testid=results]')"
                                   ".getBoundingClientRect().right > 1280")  # fmt: skip
            box = stop.bounding_box()
            assert box["x"] + box["width"] <= 1280, box
            stop.click()
            status = "document.querySelector('[data-testid=exp-status]').textContent"
            page.wait_for_function(f"{status} === '0 workers · 1 completed, 1 stopped'")
            screenshot(page, "experiments-run")
            browser.close()
    finally:
        handle.close()
    records = experiments.load_experiment("from-app", tmp_path / "experiments.db")
    fast, slow = records.trial(0), records.trial(1)
    assert fast.params == {"x": 0.1} and len(fast.history()) == 399
    assert slow.params == {"x": 0.9} and 0 < len(slow.history()) < 399  # stopped early, kept


def _classifier(params, monitor):
    """A made-up classifier: curves, and validation predictions where the lower learning rate
    gets more right; stored as built-in classification training stores them."""
    import json

    import numpy as np

    rng = np.random.default_rng(7)
    truth = rng.choice(["cat", "dog"], size=20).tolist()
    right = 0.9 if params["lr"] == 0.01 else 0.6
    predicted = [t if rng.random() < right else ("dog" if t == "cat" else "cat") for t in truth]
    (monitor.artifacts / "validation-predictions.json").write_text(
        json.dumps({"classes": ["cat", "dog"], "truth": truth, "predicted": predicted})
    )
    monitor.metrics = ["training_loss", "validation_accuracy"]
    scale = 1.0 if params["solver"] == "adam" else 2.0
    for step in range(1, 6):
        monitor.record(step, training_loss=scale * params["lr"] * 10 / step)
    accuracy = sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth)
    monitor.record(5, validation_accuracy=accuracy)
    return {"validation_accuracy": accuracy}


def test_results_filtered_sorted_a_trial_opened_annotated_and_two_compared(tmp_path):
    require_front_end()
    store = tmp_path / "experiments.db"
    experiment = experiments.Experiment(
        "tuning", _classifier, {"solver": ["adam", "sgdm"], "lr": [0.1, 0.01]}, store=store,
    )  # fmt: skip
    experiment.run(workers=0, verbose=False)
    records = {r.number: r for r in experiment.records()}
    handle = monitor(root=tmp_path, open_browser=False)
    try:
        with sync_api.sync_playwright() as playwright:
            browser = launch_browser(playwright)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(20_000)
            page.goto(handle.url + "#experiments")
            page.get_by_test_id("exp-tuning").click()
            page.get_by_test_id("results").wait_for()
            header = page.locator("[data-testid=results] th").all_text_contents()
            trial_column = header.index("trial") + 1
            # the filter's example names this experiment's parameters, and keeps rows typed in
            example = page.get_by_test_id("filter-text").get_attribute("placeholder")
            assert example.split()[0] in {"solver=adam", "solver=sgdm"}, example
            page.get_by_test_id("filter-text").fill(example)
            assert _column(page, trial_column), example
            page.get_by_test_id("filter-text").fill("adam")
            adam = sorted(str(n) for n, r in records.items() if r.params["solver"] == "adam")
            assert sorted(_column(page, trial_column)) == adam
            page.get_by_test_id("filter-text").fill("")
            page.get_by_test_id("filter-min").fill("0.8")  # validation_accuracy ≥ 0.8
            good = sorted(str(n) for n, r in records.items() if r.value >= 0.8)
            assert sorted(_column(page, trial_column)) == good
            assert page.get_by_test_id("filter-count").text_content() == f"{len(good)} of 4 shown"
            page.get_by_test_id("filter-min").fill("")
            page.get_by_test_id("sort-validation_accuracy").click()
            page.get_by_test_id("sort-validation_accuracy").click()  # descending
            by_value = sorted(records.values(), key=lambda r: -r.value)
            assert _column(page, trial_column)[0] == str(by_value[0].number)

            best = by_value[0]
            page.get_by_test_id(f"row-{best.number}").click()
            page.get_by_test_id("trial-loss").locator("canvas").wait_for()
            page.get_by_test_id("trial-metrics").locator("canvas").wait_for()
            cells = page.locator("[data-testid=confusion] tbody tr").nth(0).locator("td")
            matrix = best.confusion().matrix.tolist()
            assert [cells.nth(j).text_content() for j in range(2)] == [str(n) for n in matrix[0]]
            page.get_by_test_id("trial-annotation").fill("best so far")
            page.get_by_test_id("trial-annotation-save").click()
            page.wait_for_function(
                "document.querySelector('[data-testid=trial-annotation-status]').textContent"
                " === 'saved'"
            )  # fmt: skip
            screenshot(page, "experiments-trial")
            reread = experiments.load_experiment("tuning", store).trial(best.number)
            assert reread.annotation == "best so far"

            page.get_by_test_id(f"select-{by_value[0].number}").check()
            page.get_by_test_id(f"select-{by_value[-1].number}").check()
            page.get_by_test_id("exp-compare").click()
            page.get_by_test_id("compare-curves").locator("canvas").wait_for()
            assert page.locator("[data-testid=parallel] path").count() == 2
            page.get_by_test_id("compare-metric").select_option("training_loss")
            screenshot(page, "experiments-compare")

            for number in records:  # all four: four whole lines, one point per axis
                page.get_by_test_id(f"select-{number}").check()
            page.get_by_test_id("exp-compare").click()
            page.wait_for_function("document.querySelectorAll('[data-testid=parallel] path')"
                                   ".length === 4")  # fmt: skip
            paths = page.locator("[data-testid=parallel] path")
            axes = ["solver", "lr", "validation_accuracy"]
            for k in range(4):
                assert paths.nth(k).get_attribute("d").count("L") == len(axes) - 1
            # every text of the plot lies inside it (axis titles were cut at the right edge)
            outside = page.locator("[data-testid=parallel]").evaluate(
                "svg => { const w = svg.width.baseVal.value; return [...svg.querySelectorAll("
                "'text')].map(t => t.getBBox()).filter(b => b.x < 0 || b.x + b.width > w)"
                ".length; }"
            )
            assert outside == 0
            # brushing the top of the lr axis keeps the trials with lr = 0.1
            box = page.get_by_test_id("axis-lr").bounding_box()
            x, top = box["x"] + box["width"] / 2, box["y"] + 4
            page.mouse.move(x, top)
            page.mouse.down()
            page.mouse.move(x, top + 40, steps=4)
            page.mouse.up()
            high_rate = sorted(n for n, r in records.items() if r.params["lr"] == 0.1)
            kept = page.get_by_test_id("parallel-kept").text_content()
            assert kept.startswith("2 of 4 trials in the brushed ranges: "), kept
            listed = kept.split(": ")[1].removesuffix("Clear").replace(",", " ").split()
            assert sorted(int(n) for n in listed) == high_rate
            assert page.locator("[data-testid=parallel] path.brushed-out").count() == 2
            page.get_by_test_id("parallel-clear").click()
            assert page.locator("[data-testid=parallel] path.brushed-out").count() == 0
            browser.close()
    finally:
        handle.close()
