"""A damaged legacy .h5 Keras file that makes the HDF5 library loop forever (found by
fuzzing; tests/fuzz/known-hangs/) is refused after a time limit instead of hanging."""

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from deeptoolbox import _hdf5
from deeptoolbox.errors import ModelImportError
from deeptoolbox.interop import import_keras

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported
HANG = (
    Path(__file__).resolve().parents[1] / "fuzz" / "known-hangs" / "keras-h5-model-config-heap.h5"
)


def test_an_hdf5_file_that_hangs_the_library_is_refused_in_time(monkeypatch, tmp_path):
    monkeypatch.setattr(_hdf5, "PROBE_SECONDS", 3.0)
    path = tmp_path / "model.h5"
    path.write_bytes(HANG.read_bytes())
    start = time.perf_counter()
    with pytest.raises(ModelImportError, match=r"model.h5' did not finish within 3 s"):
        import_keras(path)
    assert time.perf_counter() - start < 30  # the child was stopped, not waited for


def test_a_sound_legacy_h5_file_still_imports(tmp_path):
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.save(tmp_path / "small.h5")
    net = import_keras(tmp_path / "small.h5")
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(net(torch.as_tensor(x)).detach().numpy(), model.predict(x, verbose=0),
                               atol=1e-5)  # fmt: skip


def test_a_v73_mat_signal_that_hangs_the_library_is_refused_in_time(monkeypatch, tmp_path):
    from deeptoolbox.data._sequence import read_signal
    from deeptoolbox.errors import DataError

    monkeypatch.setattr(_hdf5, "PROBE_SECONDS", 3.0)
    path = tmp_path / "eeg.mat"
    path.write_bytes(HANG.read_bytes())  # HDF5 like a v7.3 file, from byte 0
    with pytest.raises(DataError, match=r"eeg.mat' did not finish within 3 s"):
        read_signal(str(path))
