"""save_detector / load_detector: a detector saved as detector.json + weights.safetensors
detects the same boxes once loaded; bad files are refused naming them."""

import json
import zipfile

import pytest
import torch

from deeptoolbox.errors import NetworkFileError, OptionError
from deeptoolbox.vision import ObjectDetector, detect, load_detector, save_detector


@pytest.mark.parametrize("name", ["detector.zip", "detector"])
def test_a_loaded_detector_detects_exactly_what_the_saved_one_did(tmp_path, name):
    torch.manual_seed(0)
    detector = ObjectDetector(["car", "person"], "retinanet", input_size=(1, 32, 32),
                              image_mean=[0.3], image_std=[0.2])  # fmt: skip
    images = torch.rand(2, 1, 32, 32)
    before = detect(detector, images, threshold=0.0)
    again = load_detector(save_detector(detector, tmp_path / name))
    assert (again.classes, again.architecture, again.input_size) == (
        ["car", "person"], "retinanet", (1, 32, 32))  # fmt: skip
    assert again.model.transform.image_mean == pytest.approx([0.3])
    after = detect(again, images, threshold=0.0)
    for a, b in zip(before, after, strict=True):
        assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["scores"], b["scores"])


def test_bad_detector_files_are_refused_naming_them(tmp_path):
    detector = ObjectDetector(["car"], input_size=32)
    path = save_detector(detector, tmp_path / "det.zip")
    with zipfile.ZipFile(path) as archive:
        description = json.loads(archive.read("detector.json"))
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("detector.json", json.dumps(description))
    with pytest.raises(NetworkFileError, match=r"broken.zip has no weights.safetensors"):
        load_detector(broken)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(other, "w") as archive:
        archive.writestr("detector.json", json.dumps({**description, "classes": ["a", "b"]}))
        archive.writestr("weights.safetensors", source.read("weights.safetensors"))
    with pytest.raises(NetworkFileError, match=r"weights in .*other.zip do not fit"):
        load_detector(other)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(NetworkFileError, match=r"not overwriting .*notes.txt"):
        save_detector(detector, tmp_path / "notes.txt")
    with pytest.raises(NetworkFileError, match=r"no file or folder .*missing.zip"):
        load_detector(tmp_path / "missing.zip")


def test_a_detector_with_a_backbone_module_of_ones_own_is_not_saved(tmp_path):
    from deeptoolbox.vision._detector import SmallBackbone

    detector = ObjectDetector(["car"], backbone=SmallBackbone(3, 32), input_size=32)
    with pytest.raises(OptionError, match=r"backbone is a module of your own \(SmallBackbone\)"):
        save_detector(detector, tmp_path / "det.zip")
