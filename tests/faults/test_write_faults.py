"""Every writer survives a write that fails midway: the earlier file stays intact and loadable,
no temporary entry is left behind, and the error is a FileWriteError naming the path.

Failures are injected three ways: a file size limit (RLIMIT_FSIZE) in a worker process, so the
operating system fails the writes of C libraries (safetensors, protobuf, torch's zip writer,
h5py) as well as Python's with EFBIG, as a full disk fails them with ENOSPC; an I/O error at the
final rename, in-process; and ``kill -9`` of a process in the middle of saving.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import deeptoolbox as dtb
from deeptoolbox import _atomic
from deeptoolbox import layers as L
from deeptoolbox.errors import FileWriteError

HERE = Path(__file__).parent
WRITERS = ("save-folder,save-zip,onnx,keras,torchscript,exported-program,python-code,c-code,"
           "checkpoint")  # fmt: skip
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")


@pytest.fixture(scope="module")
def attempts() -> list[dict]:
    """Two failed writes per writer: at the first byte and at a random point of the file."""
    run = subprocess.run(
        [sys.executable, str(HERE / "write_fault_worker.py"), WRITERS, "2", "7"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]


def test_every_writer_was_tried(attempts):
    assert sorted({a["kind"] for a in attempts}) == sorted(WRITERS.split(","))
    assert len(attempts) == 2 * len(WRITERS.split(","))


@pytest.mark.parametrize("kind", WRITERS.split(","))
def test_a_failed_write_keeps_the_earlier_file(attempts, kind):
    for attempt in (a for a in attempts if a["kind"] == kind):
        where = f"{kind} at a {attempt['limit']}-byte limit"
        assert attempt["error_type"] == "FileWriteError", (where, attempt["error"])
        assert attempt["errno"] == errno.EFBIG, where
        assert str(Path(attempt["target"]).parent) in attempt["error"], where  # names the path
        assert attempt["unchanged"], f"{where}: the earlier file changed"
        assert attempt["loads"], f"{where}: the earlier file no longer loads"
        assert attempt["entries"] == [Path(attempt["target"]).name], f"{where}: left behind"


def _network(seed: int) -> dtb.Network:
    torch.manual_seed(seed)
    return dtb.Network([L.FeatureInput(4), L.Dense(3)]).initialize().eval()


@pytest.mark.parametrize("suffix", ["", ".zip"])
def test_an_io_error_at_the_final_rename_keeps_the_earlier_network(tmp_path, monkeypatch, suffix):
    target = tmp_path / f"net{suffix}"
    dtb.save(_network(0), target)
    x = torch.randn(2, 4)
    expected = dtb.load(target)(x)

    def failing(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", failing)
    monkeypatch.setattr(os, "rename", failing)
    monkeypatch.setattr(_atomic, "_exchange", failing)  # the folder's one-step swap (Linux)
    with pytest.raises(FileWriteError, match=r"net(\.zip)?'.*Input/output error \(EIO\)") as info:
        dtb.save(_network(1), target)
    monkeypatch.undo()
    assert info.value.errno == errno.EIO and info.value.filename == str(target)
    assert sorted(os.listdir(tmp_path)) == [target.name]
    assert torch.equal(dtb.load(target)(x), expected)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")
def test_a_saved_folder_is_swapped_in_one_step(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    (old / "a").write_text("old")
    (new / "a").write_text("new")
    assert _atomic._exchange(new, old)
    assert (old / "a").read_text() == "new" and (new / "a").read_text() == "old"


def test_the_two_step_folder_swap_where_there_is_no_exchange(tmp_path, monkeypatch):
    target = tmp_path / "net"
    dtb.save(_network(0), target)
    monkeypatch.setattr(_atomic, "_exchange", lambda first, second: False)
    dtb.save(_network(1), target)
    x = torch.randn(2, 4)
    assert torch.equal(dtb.load(target)(x), _network(1)(x))
    assert os.listdir(tmp_path) == ["net"]


def test_errors_that_are_not_write_failures_pass_through(tmp_path):
    from deeptoolbox._atomic import atomic_path

    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "out.bin"):
        (tmp_path / "missing-input.txt").read_text()  # a writer reading its input
    assert os.listdir(tmp_path) == []


SAVER = """
import sys, torch, deeptoolbox as dtb
from deeptoolbox import layers as L
target = sys.argv[1]
nets = []
for seed in (0, 1):
    torch.manual_seed(seed)
    nets.append(dtb.Network([L.FeatureInput(64), L.Dense(512), L.Dense(512), L.Dense(8)]).initialize())
print("ready", flush=True)
i = 0
while True:
    dtb.save(nets[i % 2], target)
    i += 1
"""


@pytest.mark.parametrize("suffix", ["", ".zip"])
def test_kill_9_while_saving_leaves_a_loadable_network(tmp_path, suffix):
    target = tmp_path / f"net{suffix}"
    dtb.save(dtb.Network([L.FeatureInput(64), L.Dense(512), L.Dense(512), L.Dense(8)]), target)
    for delay in (0.05, 0.3):
        process = subprocess.Popen([sys.executable, "-c", SAVER, str(target)],
                                   stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert process.stdout.readline().strip() == "ready"
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert dtb.load(target)(torch.randn(1, 64)).shape == (1, 8)
