"""End-to-end: a detector's proposal shown as dashed boxes with their score, edited on the
page (a corner dragged, the class changed) and accepted; boxes.json holds the edited box."""

import contextlib
import json

import numpy as np
import pytest
from apps_browser import launch_browser, require_front_end
from PIL import Image

from deeptoolbox.apps import labeler
from deeptoolbox.vision import BoxLabelDatastore, ObjectDetector

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")


@contextlib.contextmanager
def _labeler_page(handle):
    """The Labeler page of ``handle`` in headless chromium; the browser and the server are
    closed after the block, even when it fails."""
    try:
        require_front_end()
        with sync_api.sync_playwright() as playwright:
            browser = launch_browser(playwright)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.set_default_timeout(20_000)
                page.goto(handle.url + "#labeler")
                yield page
            finally:
                browser.close()
    finally:
        handle.close()


def _images(folder, count, shape):
    """``count`` random images im0.png, ... of ``shape`` ((H, W) or (H, W, 3)), each brighter."""
    generator = np.random.default_rng(0)
    for i in range(count):
        pixels = (generator.random(shape) * 120 * (i + 1)).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"im{i}.png")


def _wait_for_proposals(page, count):
    page.wait_for_function(
        f"document.querySelectorAll('[data-testid^=proposal-]').length === {count}"
    )


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
    _images(tmp_path, 2, (32, 32, 3))
    handle = labeler(tmp_path, open_browser=False, network=_detector(), threshold=0.0)
    proposals = [dict(p) for p in handle.labeler.proposals]
    assert len(proposals) == 2 and handle.labeler.classes == ["car", "person"]
    file, (box,) = proposals[0]["file"], proposals[0]["boxes"]
    x0, y0, x1, y1 = box["x"], box["y"], box["x"] + box["width"], box["y"] + box["height"]
    target = (round(x1) - 2, round(y1) - 2) if box["width"] > 4 and box["height"] > 4 else (
        min(round(x1) + 2, 32), min(round(y1) + 2, 32))  # fmt: skip
    with _labeler_page(handle) as page:
        page.get_by_test_id("show-proposal-0").click()
        page.get_by_test_id("tool-boxes").click()
        page.wait_for_function(
            "document.querySelector('[data-testid=label-image]').naturalWidth > 0"
        )
        dashed = page.locator("[data-testid=box-0] rect.proposed")
        dashed.wait_for()
        assert f"{box['label']} {box['score']:.2f}" in page.get_by_test_id("box-0").text_content()
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
        _wait_for_proposals(page, 1)
        page.get_by_test_id("label-undo").click()  # undo puts the proposal back ...
        _wait_for_proposals(page, 2)
        page.keyboard.press("Control+Shift+Z")  # ... and redo accepts it again
        _wait_for_proposals(page, 1)
    ds = BoxLabelDatastore.from_coco(tmp_path / "boxes.json")
    files = [im["file_name"] for im in json.loads((tmp_path / "boxes.json").read_text())["images"]]
    saved = ds[files.index(file)]
    assert [ds.classes[i] for i in saved["labels"].tolist()] == ["person"]
    assert saved["boxes"].tolist()[0] == pytest.approx([x0, y0, *target], abs=1e-4)
    assert ds[1 - files.index(file)]["boxes"].shape[0] == 0  # the other proposal: not accepted


def test_a_proposed_mask_is_shown_repainted_and_accepted(tmp_path):
    import torch

    from deeptoolbox.vision import PixelLabelDatastore, unet

    _images(tmp_path, 2, (16, 16))
    torch.manual_seed(0)
    net = unet((1, 16, 16), 3, depth=1, filters=4, classes=["background", "road", "car"])
    handle = labeler(tmp_path, open_browser=False, network=net)
    file = handle.labeler.proposals[0]["file"]
    proposed = handle.labeler.proposal_masks[file].copy()
    assert handle.labeler.mask_classes == ["background", "road", "car"]
    assert 0 < np.count_nonzero(proposed) < proposed.size  # an overlay with something to show
    with _labeler_page(handle) as page:
        page.get_by_test_id("show-proposal-0").click()
        page.get_by_test_id("proposed-mask").wait_for()
        page.wait_for_function(
            "document.querySelector('[data-testid=label-image]').naturalWidth > 0"
        )
        page.wait_for_timeout(300)
        alpha = page.evaluate(
            "() => Array.from(document.querySelector('[data-testid=proposed-mask]')"
            ".getContext('2d').getImageData(0, 0, 16, 16).data.filter((_, i) => i % 4 === 3))"
        )
        assert alpha == [0 if v == 0 else 140 for v in proposed.ravel().tolist()]
        page.get_by_test_id("tool-mask").click()
        page.get_by_test_id("label-mask").wait_for()
        page.keyboard.press("2")  # paint car with the brush, radius 3
        area = page.get_by_test_id("label-surface").bounding_box()
        scale = area["width"] / 16
        page.mouse.click(area["x"] + 8 * scale, area["y"] + 8 * scale)
        page.wait_for_timeout(300)
        assert not (tmp_path / "pixel-labels").exists()  # a draft until accepted
        page.get_by_test_id("accept-0").click()
        _wait_for_proposals(page, 1)
    class_map = json.loads((tmp_path / "pixel-labels" / "classes.json").read_text())
    saved = PixelLabelDatastore(
        tmp_path / "pixel-labels", class_map["classes"], class_map["label_ids"]
    )
    assert len(saved) == 1
    painted = saved[0].numpy()
    yy, xx = np.mgrid[0:16, 0:16]
    distance = np.hypot(xx + 0.5 - 8, yy + 0.5 - 8)
    assert (painted[distance <= 2.5] == 2).all()  # the brush stroke
    assert (painted[distance > 3.6] == proposed[distance > 3.6]).all()  # the proposal elsewhere


def test_a_class_proposal_given_another_class_is_saved_with_that_class(tmp_path):
    import torch

    from deeptoolbox import Network
    from deeptoolbox import layers as L

    for i in range(2):
        Image.fromarray(np.full((4, 4), 100 * i, np.uint8)).save(tmp_path / f"im{i}.png")
    torch.manual_seed(0)
    net = Network([L.ImageInput((1, 4, 4)), L.Flatten(), L.Dense(3), L.Softmax()],
                  classes=["cat", "dog", "bird"])  # fmt: skip
    handle = labeler(tmp_path, open_browser=False, network=net)
    first = dict(handle.labeler.proposals[0])
    other = next(c for c in ["cat", "dog", "bird"] if c != first["label"])
    with _labeler_page(handle) as page:
        page.get_by_test_id("class-of-proposal-0").select_option(other)
        page.get_by_test_id("accept-0").click()
        _wait_for_proposals(page, 1)
    rows = (tmp_path / "labels.csv").read_text().splitlines()
    assert rows == ["file,label", f"{first['file']},{other}"]


def test_a_detector_that_proposes_nothing_says_so_on_the_page(tmp_path):
    _images(tmp_path, 2, (32, 32, 3))
    untrained = ObjectDetector(["car"], input_size=32)  # every score near 0.01
    handle = labeler(tmp_path, open_browser=False, network=untrained, threshold=0.5)
    assert handle.labeler.proposals == []
    with _labeler_page(handle) as page:
        status = page.get_by_test_id("proposals-status")
        assert status.text_content() == (
            "The network proposed boxes for 0 of 2 images (none of the others had a box "
            "scoring 0.50 or more)."
        )
        assert page.get_by_test_id("proposals").text_content().startswith("Proposals (0)")
        page.get_by_test_id("image-1").click()
        note = page.get_by_test_id("no-proposal-note")
        assert note.text_content() == (
            "the network proposed no boxes scoring 0.50 or more for this image."
        )
