"""Reading HDF5 files from untrusted sources: a damaged file can make the HDF5 C library
loop forever (tests/fuzz/known-hangs/), which nothing in this process could interrupt. A
child process reads every attribute and dataset first, under a time limit, and the caller
opens the file only when that child finished."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE_SECONDS = 120.0
_PROBE = """
import sys, h5py
def visit(name, item):
    for key in item.attrs:
        item.attrs[key]
    if isinstance(item, h5py.Dataset):
        item[()]
with h5py.File(sys.argv[1], "r") as handle:
    visit("/", handle)
    handle.visititems(visit)
"""


def probe_hdf5(path: str | Path, func: str, error: type[Exception]) -> None:
    """Read the whole HDF5 file once in a child process; a hang or a crash there raises
    ``error`` naming the file, instead of hanging or crashing the caller.

    Example:
        >>> import tempfile, os, h5py
        >>> path = os.path.join(tempfile.mkdtemp(), "x.h5")
        >>> with h5py.File(path, "w") as f:
        ...     f["x"] = [1, 2]
        >>> probe_hdf5(path, "example", OSError)
    """
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, str(path)], capture_output=True,
                              text=True, timeout=PROBE_SECONDS)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise error(
            f"{func}: reading '{path}' did not finish within {PROBE_SECONDS:g} s: the HDF5 "
            "library loops on it (a damaged or forged file). It was not opened."
        ) from None
    if done.returncode < 0:  # killed by a signal: the HDF5 library crashed on the file
        raise error(
            f"{func}: reading '{path}' crashes the HDF5 library (signal {-done.returncode}): "
            "a damaged or forged file. It was not opened."
        )
