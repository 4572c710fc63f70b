"""Smoke test of examples/visual_inspection.py at reduced size: both detectors are trained on
normal parts only, find the defects well beyond chance, and the pictures are written."""

import pytest
from PIL import Image

pytestmark = pytest.mark.usefixtures("one_thread")


def test_visual_inspection_example_finds_the_defects(run_example, tmp_path, capsys):
    r = run_example("visual_inspection.py", "--train-images", "24", "--validation-images", "10",
                    "--test-images", "12", "--image-size", "48", "--epochs", "4",
                    "--views-per-image", "2", "--output", str(tmp_path))  # fmt: skip
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
