"""Run every file writer of the toolbox with a file size limit set (RLIMIT_FSIZE), so that its
writes fail midway with EFBIG the way they fail on a full disk, from C libraries as well as
from Python; print one JSON line per attempt. Started by test_write_faults.py in a process of
its own (the limit would also stop pytest's own writes)."""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import deeptoolbox as dtb
from deeptoolbox import deploy
from deeptoolbox import layers as L

UNLIMITED = resource.RLIM_INFINITY
EXAMPLE = torch.randn(2, 12, generator=torch.Generator().manual_seed(0))


def network(seed: int) -> dtb.Network:
    torch.manual_seed(seed)
    net = dtb.Network([L.FeatureInput(12), L.Dense(160), L.ReLU(), L.Dense(3), L.Softmax()])
    net.classes = ["a", "b", "c"]
    return net.initialize().eval()


def _train_with_checkpoint(net: dtb.Network, folder: Path) -> Path:
    x = torch.randn(16, 12, generator=torch.Generator().manual_seed(1))
    y = torch.arange(16) % 3
    options = dtb.TrainingOptions(max_epochs=1, mini_batch_size=16, verbose=False,
                                  checkpoint_path=folder)  # fmt: skip
    dtb.train(net, (x, y), "crossentropy", options)
    return folder


def _returning(path: Path, write, net: dtb.Network, **options) -> Path:
    write(net, path, **options)
    return path


WRITERS = {
    "save-folder": lambda net, target: dtb.save(net, target),
    "save-zip": lambda net, target: dtb.save(net, target.with_suffix(".zip")),
    "onnx": lambda net, target: dtb.export_onnx(net, target.with_suffix(".onnx"),
                                                example_inputs=EXAMPLE),
    "keras": lambda net, target: dtb.export_keras(net, target.with_suffix(".keras")),
    "torchscript": lambda net, target: dtb.export_pytorch(net, target.with_suffix(".pt"),
                                                          example_inputs=EXAMPLE),
    "exported-program": lambda net, target: dtb.export_pytorch(
        net, target.with_suffix(".pt2"), example_inputs=EXAMPLE, format="exported-program"),
    "python-code": lambda net, target: _returning(target.with_suffix(".py"), dtb.to_python, net),
    "c-code": lambda net, target: _returning(target, deploy.generate_c, net, verbose=False),
    "checkpoint": _train_with_checkpoint,
}  # fmt: skip


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (a file or a folder) with a digest of its bytes."""
    import hashlib

    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root.parent)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files}  # fmt: skip


def attempt(kind: str, folder: Path, limit: int) -> dict:
    write = WRITERS[kind]
    written = Path(write(network(0), folder / kind))
    before, largest = snapshot(written), max(p.stat().st_size for p in _files(written))
    limit = min(limit, largest - 1)  # below the largest file: the write must fail
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, UNLIMITED))
    try:
        write(network(1), folder / kind)
        error = None
    except Exception as err:
        error = err
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (UNLIMITED, UNLIMITED))
    return {
        "kind": kind, "limit": limit, "target": str(written),
        "error_type": type(error).__name__ if error else None,
        "error": str(error) if error else None,
        "errno": getattr(error, "errno", None),
        "unchanged": snapshot(written) == before,
        "entries": sorted(os.listdir(folder)),
        "loads": _loads(kind, written),
    }  # fmt: skip


def _files(root: Path) -> list[Path]:
    return [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]


def _loads(kind: str, path: Path) -> bool:
    """The earlier file still opens and computes the first network's outputs."""
    expected = network(0)(EXAMPLE)
    if kind in ("save-folder", "save-zip"):
        return bool(torch.allclose(dtb.load(path)(EXAMPLE), expected, atol=1e-6))
    if kind == "onnx":
        return bool(torch.allclose(dtb.import_onnx(path)(EXAMPLE), expected, atol=1e-5))
    if kind == "torchscript":
        loaded = torch.jit.load(str(path))  # the test's own file
        return bool(torch.allclose(loaded(EXAMPLE), expected, atol=1e-5))
    if kind == "checkpoint":
        return bool(sorted(path.glob("*.zip")))
    return path.exists()


def main() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    kinds, attempts = sys.argv[1].split(","), int(sys.argv[2])
    rng = random.Random(int(sys.argv[3]))
    for kind in kinds:
        for number in range(attempts):
            limit = 1 if number == 0 else rng.randint(2, 40_000)
            with tempfile.TemporaryDirectory() as folder:
                print(json.dumps(attempt(kind, Path(folder), limit)), flush=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
