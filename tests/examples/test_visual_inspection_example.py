"""Smoke test of examples/visual_inspection.py at reduced size: both detectors are trained on
normal parts only, find the defects well beyond chance, and the pictures are written."""

import importlib.util
from pathlib import Path

import pytest
import torch
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(autouse=True)
def _one_thread():
    """Small networks on a shared CPU: one thread avoids threads waiting for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_visual_inspection_example_finds_the_defects(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(EXAMPLES))  # as `python examples/visual_inspection.py` does
    spec = importlib.util.spec_from_file_location("visual_inspection_example",
                                                  EXAMPLES / "visual_inspection.py")  # fmt: skip
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    r = module.main(["--train-images", "24", "--validation-images", "10", "--test-images", "12",
                     "--image-size", "48", "--epochs", "4", "--views-per-image", "2",
                     "--output", str(tmp_path)])  # fmt: skip
    assert r["test_images"] == 24
    assert r["memory_bank"] == (round(0.1 * 24 * 12 * 12), 256)  # 10% of 24 parts x 12 x 12 patches
    # chance is 0.5 for every AUROC; the full run gives about 1.0 / 0.99 (PatchCore)
    assert r["patchcore_image_auroc"] > 0.9 and r["patchcore_pixel_auroc"] > 0.9
    assert r["fcdd_image_auroc"] > 0.7 and r["fcdd_pixel_auroc"] > 0.8
    assert set(r["per_defect_image_auroc"]["PatchCore"]) == {"scratch", "hole", "stain"}
    for name in ("inspection-overlays.png", "inspection-scores.png"):
        with Image.open(tmp_path / name) as image:
            image.verify()
        with Image.open(tmp_path / name) as image:
            assert image.size[0] > 300 and image.size[1] > 200, name
    out = capsys.readouterr().out
    assert "PatchCore: image AUROC" in out and str(tmp_path.resolve()) in out
