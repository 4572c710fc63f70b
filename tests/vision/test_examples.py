"""Smoke tests of examples/segmentation_shapes.py and examples/denoising.py: each runs with
reduced sizes, reaches a result well beyond doing nothing, and writes its pictures."""

import importlib.util
from pathlib import Path

import pytest
import torch
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(autouse=True)
def _one_thread():
    """These networks are too small to gain from threads; on a CPU shared with other jobs
    two threads waiting for each other made a 6 s run take 50 s."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run(name: str, monkeypatch, *argv: str) -> dict:
    monkeypatch.syspath_prepend(str(EXAMPLES))  # as `python examples/<name>.py` does
    spec = importlib.util.spec_from_file_location(f"vision_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(list(argv))


def _picture(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        return image.size


def test_segmentation_example_segments_the_held_out_shapes(tmp_path, monkeypatch, capsys):
    r = run("segmentation_shapes", monkeypatch, "--images", "160", "--image-size", "24",
            "--epochs", "10", "--depth", "2", "--filters", "16", "--output", str(tmp_path))  # fmt: skip
    assert r["test_images"] == 32
    # all background would give mean IoU 0.25 (four classes); this run gives about 0.9
    assert r["mean_iou"] > 0.7 and r["global_accuracy"] > 0.95
    assert set(r["iou"]) == {"background", "circle", "square", "triangle"}
    assert r["class_weights"][0] < min(r["class_weights"][1:])  # background is the most common
    for name in ("segmentation-overlay.png", "segmentation-augmentation.png"):
        width, height = _picture(tmp_path / name)
        assert width > 100 and height > 100, name
    assert str(tmp_path.resolve()) in capsys.readouterr().out


def test_denoising_example_gains_psnr_on_held_out_images(tmp_path, monkeypatch, capsys):
    r = run("denoising", monkeypatch, "--images", "40", "--image-size", "32", "--patch-size",
            "24", "--epochs", "4", "--depth", "4", "--filters", "16", "--output", str(tmp_path))  # fmt: skip
    assert r["test_images"] == 8 and r["train_pairs"] == 32 * 4
    assert r["psnr_noisy"][0.05] > r["psnr_noisy"][0.1] > r["psnr_noisy"][0.2]
    assert r["psnr_gain"][0.2] > 3.0 and r["psnr_gain"][0.1] > 1.0
    assert all(r["ssim_denoised"][s] > r["ssim_noisy"][s] for s in (0.1, 0.2))
    width, height = _picture(tmp_path / "denoising-before-after.png")
    assert width > 300 and height > 300
    out = capsys.readouterr().out
    assert "noise std 0.1: PSNR" in out and str(tmp_path.resolve()) in out
