"""End-to-end: the Labeler page labels 5 images by keyboard, several at once by multi-select,
undoes a label, draws a box, paints a mask (brush and polygon), accepts two auto-label
proposals; the saved files reload with exactly those labels."""

import csv

import numpy as np
import pytest
from apps_browser import IMAGES, launch_browser, require_front_end
from PIL import Image

from deeptoolbox.apps import labeler
from deeptoolbox.data import ImageDatastore
from deeptoolbox.vision import BoxLabelDatastore

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")


def test_label_by_keyboard_draw_a_box_paint_a_mask_accept_two_proposals(tmp_path):
    require_front_end()
    names = [f"im{i}.png" for i in range(7)]
    for i, name in enumerate(names):  # a soft gradient with a dark square somewhere
        pixels = np.zeros((40, 60, 3), np.uint8)
        pixels[..., 0] = np.linspace(120, 230, 60, dtype=np.uint8)
        pixels[..., 1], pixels[..., 2] = 200, np.linspace(230, 150, 40, dtype=np.uint8)[:, None]
        pixels[5 + 2 * i : 25 + 2 * i, 10 + i : 30 + i] = (40, 60, 90)
        Image.fromarray(pixels).save(tmp_path / name)
    import torch

    from deeptoolbox import Network
    from deeptoolbox import layers as L
    from deeptoolbox.inference import classify

    torch.manual_seed(0)
    net = Network([L.ImageInput((3, 40, 60)), L.Flatten(), L.Dense(3), L.Softmax()],
                  classes=["cat", "dog", "bird"])  # fmt: skip
    unlabelled = ImageDatastore([str(tmp_path / n) for n in names[5:]], labels=None, color="rgb")
    proposed = dict(
        zip(names[5:], classify(net, unlabelled, device="cpu")[0].tolist(), strict=True)
    )
    handle = labeler(tmp_path, classes=["cat", "dog", "bird"], open_browser=False, network=net)
    try:
        with sync_api.sync_playwright() as playwright:
            browser = launch_browser(playwright)
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.set_default_timeout(20_000)
            page.goto(handle.url + "#labeler")
            page.get_by_test_id("image-0").click()
            for key, index in zip(
                "12132", range(5), strict=True
            ):  # each key moves to the next image
                page.keyboard.press(key)
                page.wait_for_function(
                    f"document.querySelector('[data-testid=label-of-{index}]').textContent !== '—'"
                )
            page.get_by_test_id("image-5").click()
            page.get_by_test_id("image-6").click(modifiers=["Shift"])
            page.keyboard.press("3")
            page.wait_for_function(
                "document.querySelector('[data-testid=label-of-6]').textContent === 'bird'"
            )
            page.keyboard.press("z")  # undo the two birds
            page.wait_for_function(
                "document.querySelector('[data-testid=label-of-6]').textContent === '—'"
            )
            page.get_by_test_id("image-1").click()
            page.get_by_test_id("tool-boxes").click()
            page.keyboard.press("2")  # boxes of class dog
            page.get_by_test_id("label-image").wait_for()
            page.wait_for_function(
                "document.querySelector('[data-testid=label-image]').naturalWidth > 0"
            )
            area = page.get_by_test_id("label-surface").bounding_box()
            scale = area["width"] / 60
            page.mouse.move(area["x"] + 11 * scale, area["y"] + 7 * scale)
            page.mouse.down()
            page.mouse.move(area["x"] + 31 * scale, area["y"] + 27 * scale, steps=5)
            page.mouse.up()
            page.get_by_test_id("box-0").wait_for()
            page.wait_for_function(
                "document.querySelector('[data-testid=label-of-1]').textContent.includes('1 boxes')"
            )
            page.get_by_test_id("tool-mask").click()
            page.get_by_test_id("label-mask").wait_for()
            area = page.get_by_test_id("label-surface").bounding_box()  # the mask tools moved it
            page.keyboard.press("1")  # paint class 1 (cat) with the brush, radius 3
            page.mouse.move(area["x"] + 40 * scale, area["y"] + 20 * scale)
            page.mouse.down()
            page.mouse.move(area["x"] + 50 * scale, area["y"] + 20 * scale, steps=10)
            page.mouse.up()
            page.wait_for_function(
                "document.querySelector('[data-testid=label-of-1]').textContent.includes('mask')"
            )
            page.get_by_test_id("mask-polygon").click()
            page.keyboard.press("2")  # a dog triangle in the lower left corner
            for x, y in ((1, 30), (10, 39), (1, 39)):
                page.mouse.click(area["x"] + x * scale, area["y"] + y * scale)
            page.keyboard.press("Enter")
            page.wait_for_function(
                "document.querySelector('[data-testid=label-undo]').disabled === false"
            )
            page.wait_for_timeout(300)
            IMAGES.mkdir(parents=True, exist_ok=True)
            page.get_by_test_id("tool-classes").click()
            page.get_by_test_id("image-5").click()
            page.screenshot(path=str(IMAGES / "labeler-proposals.png"))
            page.get_by_test_id("accept-0").click()  # the two unlabelled images' proposals
            page.wait_for_function(
                "document.querySelectorAll('[data-testid^=proposal-]').length === 1"
            )
            page.get_by_test_id("accept-0").click()
            page.wait_for_function(
                "document.querySelector('[data-testid=label-of-6]').textContent !== '—'"
            )
            IMAGES.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(IMAGES / "labeler-classes-boxes.png"))
            browser.close()
    finally:
        handle.close()
    with open(tmp_path / "labels.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    ds = ImageDatastore(
        [str(tmp_path / r["file"]) for r in rows], labels=[r["label"] for r in rows]
    )
    assert dict(zip((f.rsplit("/", 1)[-1] for f in ds.files), ds.labels, strict=True)) == {
        "im0.png": "cat",
        "im1.png": "dog",
        "im2.png": "cat",
        "im3.png": "bird",
        "im4.png": "dog",
        **proposed,  # the two accepted proposals
    }
    boxes = BoxLabelDatastore.from_coco(tmp_path / "boxes.json")
    second = boxes[1]
    assert [boxes.classes[i] for i in second["labels"].tolist()] == ["dog"]
    x0, y0, x1, y1 = second["boxes"][0].tolist()
    assert abs(x0 - 11) <= 1 and abs(y0 - 7) <= 1 and abs(x1 - 31) <= 1 and abs(y1 - 27) <= 1
    import json

    from deeptoolbox.vision import PixelLabelDatastore

    class_map = json.loads((tmp_path / "pixel-labels" / "classes.json").read_text())
    assert class_map == {"classes": ["background", "cat", "dog", "bird"], "label_ids": [0, 1, 2, 3]}
    masks = PixelLabelDatastore(
        tmp_path / "pixel-labels", class_map["classes"], class_map["label_ids"]
    )
    assert len(masks) == 1
    painted = masks[0].numpy()
    assert painted.shape == (40, 60) and set(np.unique(painted).tolist()) == {0, 1, 2}
    assert (painted[20, 40:51] == 1).all() and painted[20, 55] == 0 and painted[10, 45] == 0
    assert (painted[37, 1:5] == 2).all() and painted[31, 8] == 0 and painted[0, 0] == 0


def test_signal_regions_drawn_on_a_million_sample_waveform(tmp_path):
    """Signal mode: a region dragged on the waveform of a 10^6-sample signal, zoomed."""
    require_front_end()
    t = np.arange(1_000_000) / 1000.0
    np.save(tmp_path / "long.npy", np.sin(2 * np.pi * 0.05 * t) + 0.1 * np.sin(2 * np.pi * 3 * t))
    handle = labeler(tmp_path, classes=["calm", "burst"], signals=True, sample_rate=1000,
                     open_browser=False)  # fmt: skip
    try:
        with sync_api.sync_playwright() as playwright:
            browser = launch_browser(playwright)
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.set_default_timeout(20_000)
            page.goto(handle.url + "#labeler")
            page.get_by_test_id("signal-canvas").wait_for()
            page.wait_for_function(
                "document.querySelector('[data-testid=signal-window]').textContent.includes('1000.00 s')"
            )
            page.get_by_test_id("signal-zoom-in").click()  # 250..750 s
            page.wait_for_function(
                "document.querySelector('[data-testid=signal-window]').textContent.startsWith('250.00')"
            )
            page.keyboard.press("2")
            box = page.get_by_test_id("signal-canvas").bounding_box()
            page.mouse.move(box["x"] + 180, box["y"] + 100)  # 350 s
            page.mouse.down()
            page.mouse.move(box["x"] + 360, box["y"] + 120, steps=5)  # 450 s
            page.mouse.up()
            page.wait_for_function(
                "document.querySelector('[data-testid=regions-of-0]').textContent === '1 regions'"
            )
            IMAGES.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(IMAGES / "labeler-signals.png"))
            browser.close()
    finally:
        handle.close()
    with open(tmp_path / "regions.csv", newline="") as stream:
        (row,) = list(csv.DictReader(stream))
    assert row["file"] == "long.npy" and row["label"] == "burst"
    assert abs(float(row["start"]) - 350) < 1 and abs(float(row["end"]) - 450) < 1
