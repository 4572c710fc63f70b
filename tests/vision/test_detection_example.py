"""Smoke test of examples/detection_shapes.py: a reduced run detects the held-out shapes well
beyond chance, explains a detection on its object, and writes its pictures."""

import importlib.util
from pathlib import Path

import torch
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_detection_example_finds_the_held_out_shapes(tmp_path, monkeypatch, capsys):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small network: threads on a shared CPU only wait for each other
    try:
        monkeypatch.syspath_prepend(str(EXAMPLES))
        spec = importlib.util.spec_from_file_location("detection_example",
                                                      EXAMPLES / "detection_shapes.py")  # fmt: skip
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        r = module.main(["--images", "216", "--epochs", "10", "--image-size", "64", "--masks",
                         "300", "--output", str(tmp_path)])  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert r["test_images"] == 36
    # an untrained detector scores about 0; the full run gives mAP@0.5 0.99
    assert r["map_50"] > 0.5 and r["map"] > 0.2
    assert set(r["ap_50"]) == {"circle", "square", "triangle"}
    assert r["drise"] is not None and r["drise"]["peak_in_box"]
    for name in ("detection-boxes.png", "detection-augmentation.png",
                 "detection-precision-recall.png", "detection-drise.png"):  # fmt: skip
        with Image.open(tmp_path / name) as image:
            width, height = image.size
        assert width > 100 and height > 100, name
    assert str(tmp_path.resolve()) in capsys.readouterr().out
