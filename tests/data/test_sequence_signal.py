"""SequenceDatastore, PaddedCollate and SignalDatastore (.npy, .csv, .mat v5 and v7.3)."""

import numpy as np
import pytest
import torch

from deeptoolbox.data import PaddedCollate, SequenceDatastore, SignalDatastore, loader, read_signal
from deeptoolbox.errors import DataError, OptionError

LENGTHS = (5, 2, 7)


def sequences(channels=2):
    return [
        np.arange(t * channels, dtype=np.float32).reshape(t, channels) + 100 * i
        for i, t in enumerate(LENGTHS)
    ]


def reference_pad(seqs, length, side, value):
    """Padding computed independently, one sequence at a time, with numpy."""
    out = []
    for s in seqs:
        s = s[:length] if side == "right" else s[max(0, len(s) - length) :]
        pad = np.full((length - len(s), *s.shape[1:]), value, dtype=np.float32)
        out.append(np.concatenate([s, pad] if side == "right" else [pad, s]))
    return np.stack(out)


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("mode,length", [("longest", 7), ("shortest", 2), (4, 4), (10, 10)])
def test_padding_and_truncation_match_numpy(side, mode, length):
    seqs = sequences()
    ds = SequenceDatastore(
        seqs, ["a", "b", "a"], sequence_length=mode, padding=side, padding_value=-1
    )
    batch = ds.readall()
    expected = reference_pad(seqs, length, side, -1)
    assert torch.equal(batch["inputs"], torch.from_numpy(expected))
    kept = [min(t, length) for t in LENGTHS]
    assert batch["lengths"].tolist() == kept
    mask = batch["mask"]
    assert mask.dtype == torch.bool and mask.sum(1).tolist() == kept
    for row, k in zip(mask, kept, strict=True):
        real = row.nonzero().flatten().tolist()
        assert real == (list(range(k)) if side == "right" else list(range(length - k, length)))
    assert batch["targets"].tolist() == [0, 1, 0]


def test_mask_as_input_for_a_second_network_input():
    ds = SequenceDatastore(sequences(), mask_as_input=True)
    x, mask = ds.readall()["inputs"]
    assert x.shape == (3, 7, 2) and mask.dtype == torch.float32 and mask.sum().item() == 14


def test_tokens_stay_integer_and_1d_floats_get_a_channel():
    tokens = SequenceDatastore([np.array([3, 4, 5]), np.array([6])], padding_value=0)
    batch = tokens.readall()
    assert batch["inputs"].dtype == torch.int64 and batch["inputs"].tolist() == [
        [3, 4, 5],
        [6, 0, 0],
    ]
    assert batch["targets"] is None
    floats = SequenceDatastore([np.ones(4), np.ones(3)])
    assert floats[0].shape == (4, 1)


def test_sequence_to_sequence_targets_are_padded_with_ignore_index():
    seqs = [np.ones((3, 1)), np.ones((1, 1))]
    ds = SequenceDatastore(seqs, [np.array(["u", "v", "u"]), np.array(["v"])])
    batch = ds.readall()
    assert ds.classes == ["u", "v"]
    assert batch["targets"].tolist() == [[0, 1, 0], [1, -100, -100]]
    regression = SequenceDatastore(seqs, [np.arange(3.0), np.arange(1.0)]).readall()
    assert regression["targets"].shape == (2, 3, 1)
    with pytest.raises(DataError, match="sequence 1 has 1 time steps but its targets have 2"):
        SequenceDatastore(seqs, [np.arange(3.0), np.arange(2.0)])


def test_sequence_errors_and_options():
    with pytest.raises(DataError, match="channel sizes"):
        SequenceDatastore([np.ones((3, 2)), np.ones((3, 4))])
    with pytest.raises(DataError, match="3 sequences but 2 targets"):
        SequenceDatastore(sequences(), ["a", "b"])
    with pytest.raises(OptionError, match="sequence_length"):
        SequenceDatastore(sequences(), sequence_length="median")
    with pytest.raises(OptionError, match="padding"):
        PaddedCollate(padding="middle")


def test_loader_uses_the_padding_collate_and_split_keeps_padding():
    seqs = [np.ones((t, 3), np.float32) for t in range(1, 21)]
    ds = SequenceDatastore(seqs, ["a", "b"] * 10)
    train, test = ds.split(0.5, seed=0)
    batches = list(loader(train, batch_size=4))
    assert all(
        isinstance(b, dict) and b["inputs"].shape[1] == int(b["lengths"].max()) for b in batches
    )
    assert sum(int(b["mask"].sum()) for b in batches) == sum(
        len(train[i][0]) for i in range(len(train))
    )


def write_signals(root):
    """Signals written in every format, with what reading them must give."""
    import h5py
    import scipy.io

    rng = np.random.default_rng(0)
    expected = {}
    a = rng.normal(size=(30, 3))
    (root / "walk").mkdir(parents=True)
    np.save(root / "walk" / "a.npy", a)
    expected["walk/a.npy"] = a
    b = rng.normal(size=(12, 2))
    np.savetxt(root / "walk" / "b.csv", b, delimiter=",", header="x,y", comments="")
    expected["walk/b.csv"] = b
    (root / "run").mkdir()
    c = rng.normal(size=(25, 4))
    scipy.io.savemat(root / "run" / "c.mat", {"signal": c, "rate": np.array([[100.0]])})
    expected["run/c.mat"] = c
    d = rng.normal(size=(40, 2))
    with h5py.File(root / "run" / "d.mat", "w", userblock_size=512) as handle:
        handle.create_dataset("signal", data=d.T)  # MATLAB -v7.3 writes column-major: transposed
        handle.create_dataset("rate", data=np.array([[100.0]]))
    with open(root / "run" / "d.mat", "r+b") as stream:
        stream.write(b"MATLAB 7.3 MAT-file".ljust(128, b" "))
    expected["run/d.mat"] = d
    return expected


def test_signal_files_in_every_format(tmp_path):
    expected = write_signals(tmp_path)
    ds = SignalDatastore(tmp_path, variable="signal")
    assert ds.classes == ["run", "walk"] and len(ds) == 4
    for i, file in enumerate(ds.files):
        signal, label = ds[i]
        relative = file[len(str(tmp_path)) + 1 :]
        assert torch.allclose(signal, torch.from_numpy(expected[relative]).float(), atol=1e-6)
        assert ds.classes[int(label)] == relative.split("/")[0]
    with pytest.raises(DataError, match="channel sizes"):
        ds.readall()  # 3, 2, 4 and 2 channels cannot share a batch
    v73 = SignalDatastore(tmp_path / "run" / "d.mat", variable="signal", sequence_length=10)
    batch = v73.readall()
    assert batch["inputs"].shape == (1, 10, 2) and batch["lengths"].tolist() == [10]
    assert torch.allclose(batch["inputs"][0], torch.from_numpy(expected["run/d.mat"][:10]).float())


def test_signal_variable_choice_errors_and_transpose(tmp_path):
    import scipy.io

    scipy.io.savemat(tmp_path / "two.mat", {"x": np.ones((5, 2)), "y": np.ones((5, 2))})
    with pytest.raises(DataError, match=r"two\.mat.*\['x', 'y'\].*variable="):
        read_signal(str(tmp_path / "two.mat"))
    with pytest.raises(DataError, match="no variable 'z'"):
        read_signal(str(tmp_path / "two.mat"), "z")
    assert read_signal(str(tmp_path / "two.mat"), "x", transpose=True).shape == (2, 5)
    np.save(tmp_path / "vector.npy", np.arange(6.0))
    assert read_signal(str(tmp_path / "vector.npy")).shape == (6, 1)


def test_corrupt_signal_raises_and_skip_warns(tmp_path):
    (tmp_path / "k").mkdir()
    np.save(tmp_path / "k" / "good.npy", np.ones((4, 1)))
    (tmp_path / "k" / "bad.npy").write_bytes(b"garbage")
    ds = SignalDatastore(tmp_path)
    with pytest.raises(DataError, match=r"bad\.npy"):
        ds[ds.files.index(str(tmp_path / "k" / "bad.npy"))]
    with pytest.warns(RuntimeWarning, match=r"skipped 1 unreadable file\(s\).*bad\.npy"):
        skipped = SignalDatastore(tmp_path, on_error="skip")
    assert len(skipped) == 1


def test_signals_from_memory_urls():
    import io

    import fsspec

    fs = fsspec.filesystem("memory")
    buffer = io.BytesIO()
    np.save(buffer, np.full((6, 2), 3.0))
    fs.pipe("/dtb-signals/x/s.npy", buffer.getvalue())
    try:
        ds = SignalDatastore("memory://dtb-signals")
        assert ds.classes == ["x"] and torch.equal(ds[0][0], torch.full((6, 2), 3.0))
    finally:
        fs.rm("/dtb-signals", recursive=True)


def test_combined_sequences_and_targets_pad_like_the_sequences():
    from deeptoolbox.data import ArrayDatastore, combine

    seqs = SequenceDatastore(sequences(), sequence_length=4, padding="left")
    pair = combine(seqs, ArrayDatastore(np.array([0.5, 1.5, 2.5])))
    batch = pair.readall()
    assert batch["inputs"].shape == (3, 4, 2) and batch["targets"].tolist() == [0.5, 1.5, 2.5]
    assert batch["lengths"].tolist() == [4, 2, 4]
    triple = combine(SequenceDatastore(sequences(), ["a", "b", "a"]), ArrayDatastore(np.ones(3)))
    labels, ones = triple.readall()["targets"]  # several targets: a tuple, in order (issue 26)
    assert labels.tolist() == [0, 1, 0] and ones.tolist() == [1.0, 1.0, 1.0]
    per_step = PaddedCollate(step_targets=True)  # per-step targets: only one
    with pytest.raises(DataError, match="3 elements"):
        per_step([(torch.ones(3, 1), torch.ones(3), torch.ones(3))])
