"""A folder of images with known, planted problems (the issue 24 check of quality_report)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image


def smooth_image(rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A random RGB picture of smooth blobs (uint8 (H, W, 3)): distinct perceptual hashes."""
    coarse = rng.random((6, 6, 3))
    picture = Image.fromarray((coarse * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)
    noise = rng.normal(0, 6, (size, size, 3))
    return np.clip(np.asarray(picture, dtype=np.float64) + noise, 0, 255).astype(np.uint8)


def planted_folder(root: Path, seed: int = 0) -> dict:
    """``root/{train,test}/{cat,dog,fox,owl}/*.png`` with planted problems; returns them by
    check: 3 corrupt files, 5 exact duplicates (2 across train/test), 1 JPEG near duplicate,
    1 all-black image, 1 class ('owl') with 2 images (one per split)."""
    rng = np.random.default_rng(seed)
    counts = {
        "train": {"cat": 16, "dog": 16, "fox": 16, "owl": 1},
        "test": {"cat": 5, "dog": 5, "fox": 5, "owl": 1},
    }
    files: dict[str, list[Path]] = {"train": [], "test": []}
    for split, per_class in counts.items():
        for label, n in per_class.items():
            folder = root / split / label
            folder.mkdir(parents=True)
            for k in range(n):
                path = folder / f"{label}{k:02d}.png"
                Image.fromarray(smooth_image(rng)).save(path)
                files[split].append(path)
    planted: dict[str, list] = {
        "unreadable": [],
        "exact-duplicates": [],
        "split-leakage": [],
        "near-duplicates": [],
        "blank-image": [],
        "class-imbalance": [],
    }
    good = root / "train" / "cat" / "cat00.png"
    data = good.read_bytes()
    for name, content in (
        ("truncated.png", data[: len(data) // 2]),
        ("garbage.jpg", rng.bytes(500)),
        ("empty.png", b""),
    ):
        path = root / "train" / "dog" / name
        path.write_bytes(content)
        planted["unreadable"].append(str(path))
    sources = [files["train"][k] for k in (1, 17, 33)] + [files["train"][k] for k in (2, 18)]
    for k, source in enumerate(sources):
        split = "train" if k < 3 else "test"  # the last two copies go to the other split
        copy = root / split / source.parent.name / f"copy-of-{source.name}"
        shutil.copyfile(source, copy)
        group = frozenset({str(source), str(copy)})
        planted["exact-duplicates"].append(group)
        if split == "test":
            planted["split-leakage"].append(group)
    source = files["train"][3]
    jpeg = source.with_name(f"reencoded-{source.stem}.jpg")
    Image.open(source).convert("RGB").save(jpeg, quality=75)
    planted["near-duplicates"].append(frozenset({str(source), str(jpeg)}))
    black = root / "train" / "fox" / "black.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(black)
    planted["blank-image"].append(str(black))
    planted["class-imbalance"].append("owl")
    return planted
