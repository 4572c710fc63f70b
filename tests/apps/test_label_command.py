"""`deeptoolbox label FOLDER --network FILE`: a saved detector or segmentation network
proposes, the kind from the network or --task, and clear errors when it cannot tell."""

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request

import numpy as np
import pytest

pytest.importorskip("fastapi")
import torch
from PIL import Image

from deeptoolbox import Network, save
from deeptoolbox import layers as L
from deeptoolbox.apps._label_proposals import propose
from deeptoolbox.apps._labeler import LabelSession
from deeptoolbox.cli import main
from deeptoolbox.vision import ObjectDetector, load_detector, save_detector, unet


def _pictures(folder, count, size, mode):
    folder.mkdir()
    generator = np.random.default_rng(1)
    for i in range(count):
        shape = (size, size, 3) if mode == "RGB" else (size, size)
        pixels = (generator.random(shape) * 80 * (i + 1)).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"im{i}.png")
    return folder


def _detector():
    torch.manual_seed(0)
    detector = ObjectDetector(["car", "person"], input_size=32)
    with torch.no_grad():  # scores around 0.5 that differ between images, boxes of pixels
        detector.model.head.classification_head.cls_logits.bias.fill_(0.0)
        detector.model.head.classification_head.cls_logits.weight.mul_(20)
        detector.model.head.regression_head.bbox_reg.bias.fill_(1.0)
    return detector


def _serve(folder, *options):
    command = [sys.executable, "-m", "deeptoolbox.cli", "label", str(folder), "--no-browser"]
    return subprocess.Popen([*command, *options], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ})  # fmt: skip


def _view(process):
    line = process.stdout.readline()
    assert line.startswith("deeptoolbox label: http://127.0.0.1:"), (line, process.stderr.read())
    url = urllib.parse.urlsplit(line.split(": ", 1)[1].strip())
    token = urllib.parse.parse_qs(url.query)["token"][0]
    request = urllib.request.Request(f"{url.scheme}://{url.netloc}/api/labeler",
                                     headers={"X-Deeptoolbox-Token": token})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_a_saved_detector_and_a_saved_segmentation_network_propose_from_the_command_line(
    tmp_path,
):
    boxes_folder = _pictures(tmp_path / "boxes", 3, 32, "RGB")
    masks_folder = _pictures(tmp_path / "masks", 3, 8, "L")
    detector_file = save_detector(_detector(), tmp_path / "detector.zip")
    torch.manual_seed(0)
    segmenter = unet((1, 8, 8), 3, depth=1, filters=4, classes=["background", "road", "car"])
    network_file = save(segmenter, tmp_path / "unet.zip")
    servers = [
        _serve(boxes_folder, "--network", str(detector_file), "--threshold", "0.1"),
        _serve(masks_folder, "--network", str(network_file), "--task", "segment"),
    ]
    try:
        boxes, masks = (_view(p) for p in servers)
    finally:
        for process in servers:
            process.kill()
            process.wait(timeout=30)
    reloaded = load_detector(detector_file)  # the same detector, in this process
    assert reloaded.model.detections_per_img == 100  # (not a constructor argument: not saved)
    expected = propose(LabelSession(boxes_folder), reloaded, threshold=0.1)
    assert [p["kind"] for p in boxes["proposals"]] == ["boxes"] * len(expected) and expected
    assert [(p["file"], len(p["boxes"])) for p in boxes["proposals"]] == [
        (p["file"], len(p["boxes"])) for p in expected
    ]
    assert [p["confidence"] for p in boxes["proposals"]] == pytest.approx(
        [p["confidence"] for p in expected], abs=1e-5
    )
    assert boxes["classes"] == ["car", "person"]
    assert [p["kind"] for p in masks["proposals"]] == ["mask"] * 3
    assert masks["mask_classes"] == ["background", "road", "car"]
    assert not (boxes_folder / "boxes.json").exists()  # proposing saves nothing


def test_the_command_line_says_when_the_kind_of_network_cannot_be_told(tmp_path, capsys):
    folder = _pictures(tmp_path / "images", 1, 4, "L")
    torch.manual_seed(0)
    odd = Network([L.ImageInput((1, 4, 4)), L.Flatten(), L.Dense(6), L.Reshape((2, 3))],
                  classes=["a", "b"])  # fmt: skip
    odd_file = save(odd, tmp_path / "odd.zip")
    assert main(["label", str(folder), "--network", str(odd_file), "--no-browser"]) == 2
    error = capsys.readouterr().err
    assert "cannot tell which labels the network proposes: its output is (2, 3)" in error
    assert "--task classify|detect|segment" in error
    classifier = Network([L.ImageInput((1, 4, 4)), L.Flatten(), L.Dense(2), L.Softmax()],
                         classes=["a", "b"])  # fmt: skip
    classifier_file = save(classifier, tmp_path / "classifier.zip")
    command = ["label", str(folder), "--network", str(classifier_file), "--task", "detect"]
    assert main([*command, "--no-browser"]) == 2
    assert "task='detect' asks for detector proposals, but the network is a classifier" in (
        capsys.readouterr().err
    )
    assert main(["label", str(folder), "--task", "segment", "--no-browser"]) == 2
    assert "give --network FILE too" in capsys.readouterr().err
    assert main(["label", str(folder), "--network", str(tmp_path / "none.zip")]) == 2
    error = capsys.readouterr().err
    assert "no file or folder" in error and "none.zip" in error
