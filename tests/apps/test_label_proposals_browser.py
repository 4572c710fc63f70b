"""End-to-end: a detector's proposal shown as dashed boxes with their score, edited on the
page (a corner dragged, the class changed) and accepted; boxes.json holds the edited box."""

import json

import numpy as np
import pytest
from apps_browser import launch_browser, require_front_end
from PIL import Image

from deeptoolbox.apps import labeler
from deeptoolbox.vision import BoxLabelDatastore, ObjectDetector

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")


def _detector():
    import torch

    torch.manual_seed(0)
    detector = ObjectDetector(["car", "person"], input_size=32)
    with torch.no_grad():  # scores around 0.5, boxes several pixels wide, one per image
        detector.model.head.classification_head.cls_logits.bias.fill_(0.0)
        detector.model.head.classification_head.cls_logits.weight.mul_(20)
        detector.model.head.regression_head.bbox_reg.bias.fill_(1.0)
    detector.model.detections_per_img = 1
    return detector


def test_an_edited_detector_proposal_is_accepted_and_saved(tmp_path):
    require_front_end()
    generator = np.random.default_rng(0)
    for i in range(2):
        pixels = (generator.random((32, 32, 3)) * 120 * (i + 1)).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"im{i}.png")
    handle = labeler(tmp_path, open_browser=False, network=_detector(), threshold=0.0)
    proposals = [dict(p) for p in handle.labeler.proposals]
    assert len(proposals) == 2 and handle.labeler.classes == ["car", "person"]
    file, (box,) = proposals[0]["file"], proposals[0]["boxes"]
    x0, y0, x1, y1 = box["x"], box["y"], box["x"] + box["width"], box["y"] + box["height"]
    target = (round(x1) - 2, round(y1) - 2) if box["width"] > 4 and box["height"] > 4 else (
        min(round(x1) + 2, 32), min(round(y1) + 2, 32))  # fmt: skip
    try:
        with sync_api.sync_playwright() as playwright:
            browser = launch_browser(playwright)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(20_000)
            page.goto(handle.url + "#labeler")
            page.get_by_test_id("show-proposal-0").click()
            page.get_by_test_id("tool-boxes").click()
            page.wait_for_function(
                "document.querySelector('[data-testid=label-image]').naturalWidth > 0"
            )
            dashed = page.locator("[data-testid=box-0] rect.proposed")
            dashed.wait_for()
            assert (
                f"{box['label']} {box['score']:.2f}" in page.get_by_test_id("box-0").text_content()
            )
            area = page.get_by_test_id("label-surface").bounding_box()
            scale = area["width"] / 32
            page.mouse.click(area["x"] + (x0 + x1) / 2 * scale, area["y"] + (y0 + y1) / 2 * scale)
            page.get_by_test_id("handle-0-se").wait_for()
            page.mouse.move(area["x"] + x1 * scale, area["y"] + y1 * scale)
            page.mouse.down()
            page.mouse.move(area["x"] + target[0] * scale, area["y"] + target[1] * scale, steps=5)
            page.mouse.up()
            page.keyboard.press("2")  # the selected box becomes a person
            page.wait_for_function(
                "document.querySelector('[data-testid=box-0]').textContent.startsWith('person')"
            )
            assert not (tmp_path / "boxes.json").exists()  # a draft until accepted
            page.get_by_test_id("accept-0").click()
            page.wait_for_function(
                "document.querySelectorAll('[data-testid^=proposal-]').length === 1"
            )
            page.get_by_test_id("label-undo").click()  # undo puts the proposal back ...
            page.wait_for_function(
                "document.querySelectorAll('[data-testid^=proposal-]').length === 2"
            )
            page.keyboard.press("Control+Shift+Z")  # ... and redo accepts it again
            page.wait_for_function(
                "document.querySelectorAll('[data-testid^=proposal-]').length === 1"
            )
            browser.close()
    finally:
        handle.close()
    ds = BoxLabelDatastore.from_coco(tmp_path / "boxes.json")
    files = [im["file_name"] for im in json.loads((tmp_path / "boxes.json").read_text())["images"]]
    saved = ds[files.index(file)]
    assert [ds.classes[i] for i in saved["labels"].tolist()] == ["person"]
    assert saved["boxes"].tolist()[0] == pytest.approx([x0, y0, *target], abs=1e-4)
    assert ds[1 - files.index(file)]["boxes"].shape[0] == 0  # the other proposal: not accepted
