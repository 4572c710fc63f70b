"""The Datastore protocol, exercised through ArrayDatastore and combine()."""

import numpy as np
import pytest
import torch

from deeptoolbox.data import ArrayDatastore, CombinedDatastore, combine, loader
from deeptoolbox.errors import DataError, OptionError


def make(n=100, classes=("a", "b", "c"), weights=(0.5, 0.3, 0.2), seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.choice(classes, size=n, p=weights)
    x = np.arange(n, dtype=np.float64)[:, None] * np.ones((1, 3))
    return ArrayDatastore(x, targets=labels), labels


def row_ids(ds):
    return [int(ds[i][0][0]) for i in range(len(ds))]


def test_len_indexing_and_dtypes():
    ds, labels = make()
    x, y = ds[7]
    assert len(ds) == 100 and x.dtype == torch.float32 and x.tolist() == [7.0, 7.0, 7.0]
    assert ds.classes[int(y)] == labels[7]
    assert ds[-1][0][0] == 99
    with pytest.raises(IndexError):
        ds[100]
    with pytest.raises(TypeError):
        ds[1.5]
    assert list(ds.labels) == list(labels)


def test_read_reset_has_data_and_readall_preview():
    ds = ArrayDatastore(np.arange(4.0))
    got = []
    while ds.has_data():
        got.append(float(ds.read()))
    assert got == [0.0, 1.0, 2.0, 3.0]
    with pytest.raises(DataError, match="reset"):
        ds.read()
    ds.reset()
    assert float(ds.read()) == 0.0
    assert torch.equal(ds.readall(), torch.arange(4.0))
    assert float(ds.preview()) == 0.0
    assert ds.read() == 1.0  # preview did not move the cursor


def test_shuffle_is_a_permutation_reproducible_with_seed():
    ds, _ = make()
    a, b, c = ds.shuffle(seed=3), ds.shuffle(seed=3), ds.shuffle(seed=4)
    assert row_ids(a) == row_ids(b) != row_ids(c)
    assert sorted(row_ids(a)) == list(range(100))
    assert row_ids(ds) == list(range(100))  # the original is untouched
    assert list(a.labels) == [ds.labels[i] for i in row_ids(a)]


def test_subset_ints_mask_slice_and_errors():
    ds, _ = make(10)
    assert row_ids(ds.subset([3, 1])) == [3, 1]
    assert row_ids(ds.subset(np.arange(10) % 2 == 0)) == [0, 2, 4, 6, 8]
    assert row_ids(ds.subset(slice(2, 5))) == [2, 3, 4]
    assert row_ids(ds.subset(torch.tensor([9]))) == [9]
    assert row_ids(ds.subset([3, 1]).subset([1])) == [1]
    with pytest.raises(DataError, match=r"\[-10, 10\)"):
        ds.subset([10])
    with pytest.raises(DataError, match="mask"):
        ds.subset(np.ones(3, bool))


@pytest.mark.parametrize("n", [1, 3, 7, 100, 150])
def test_partition_covers_every_item_exactly_once(n):
    ds, _ = make(100)
    parts = [row_ids(ds.partition(n, i)) for i in range(n)]
    assert sorted(sum(parts, [])) == list(range(100))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_partition_rejects_bad_arguments():
    ds, _ = make(10)
    with pytest.raises(OptionError, match="`i`"):
        ds.partition(2, 2)
    with pytest.raises(OptionError, match="`n`"):
        ds.partition(0, 0)


def test_split_keeps_label_proportions_per_class():
    ds, labels = make(1000)
    train, val, test = ds.split([0.7, 0.2], seed=0)
    ids = [set(row_ids(p)) for p in (train, val, test)]
    assert set().union(*ids) == set(range(1000)) and sum(map(len, ids)) == 1000
    totals = ds.count_each_label()
    for part, fraction in ((train, 0.7), (val, 0.2), (test, 0.1)):
        for name, count in part.count_each_label().items():
            assert abs(count - fraction * totals[name]) <= 1  # per class, rounding only
    assert np.array_equal(train.labels, labels[sorted(ids[0])])


def test_split_without_stratify_and_with_seed():
    ds, _ = make(200)
    a1, _ = ds.split(0.25, stratify=False, seed=1)
    a2, _ = ds.split(0.25, stratify=False, seed=1)
    assert len(a1) == 50 and row_ids(a1) == row_ids(a2)
    parts = ds.split([0.5, 0.5], seed=0)
    assert len(parts) == 2 and sum(len(p) for p in parts) == 200


@pytest.mark.parametrize("bad", [0.0, 1.5, [0.6, 0.6], [], "half", True])
def test_split_rejects_bad_fractions(bad):
    ds, _ = make(10)
    with pytest.raises(OptionError, match="fractions"):
        ds.split(bad)


def test_count_each_label_matches_numpy():
    ds, labels = make(300)
    values, counts = np.unique(labels, return_counts=True)
    assert ds.count_each_label() == dict(zip(values.tolist(), counts.tolist(), strict=True))
    with pytest.raises(DataError, match="no labels"):
        ArrayDatastore(np.ones(3)).count_each_label()


def test_classes_order_and_unknown_labels():
    ds = ArrayDatastore(np.ones((3, 1)), targets=["b", "a", "b"], classes=["b", "a"])
    assert [int(ds[i][1]) for i in range(3)] == [0, 1, 0]
    with pytest.raises(DataError, match=r"\['c'\]"):
        ArrayDatastore(np.ones((2, 1)), targets=["a", "c"], classes=["a", "b"])


def test_integer_and_regression_targets():
    ints = ArrayDatastore(np.ones((4, 2)), targets=np.array([2, 0, 2, 1]))
    assert ints.classes == [0, 1, 2] and int(ints[0][1]) == 2
    assert ints.count_each_label() == {0: 1, 1: 1, 2: 2}
    reg = ArrayDatastore(np.ones((4, 2)), targets=np.random.rand(4, 3))
    assert reg.labels is None and reg[0][1].shape == (3,) and reg[0][1].dtype == torch.float32


def test_mismatched_lengths_are_clear_errors():
    with pytest.raises(DataError, match="3 observations but `targets` has 2"):
        ArrayDatastore(np.ones((3, 2)), targets=[1.0, 2.0])
    with pytest.raises(DataError, match=r"\[3, 4\]"):
        ArrayDatastore((np.ones((3, 2)), np.ones((4, 2))))
    with pytest.raises(DataError, match="numbers"):
        ArrayDatastore(np.array(["x", "y"]))


def test_transform_is_lazy_and_chains():
    calls = []

    def double(obs):
        calls.append(1)
        x, y = obs
        return x * 2, y

    ds, _ = make(10)
    lazy = ds.transform(double).transform(lambda obs: (obs[0] + 1, obs[1]))
    assert calls == []  # nothing read yet
    assert lazy[3][0].tolist() == [7.0, 7.0, 7.0] and len(calls) == 1
    assert ds[3][0].tolist() == [3.0, 3.0, 3.0]  # the original has no transform
    shuffled = lazy.shuffle(seed=0)  # views keep the transforms
    values = sorted(float(shuffled[i][0][0]) for i in range(10))
    assert values == [2.0 * i + 1 for i in range(10)]
    with pytest.raises(OptionError, match="callable"):
        ds.transform(3)


def test_multiple_inputs_and_combine():
    a = ArrayDatastore((np.zeros((5, 2)), np.ones((5, 4))), targets=list("xyxyx"))
    x1, x2, y = a[0]
    assert x1.shape == (2,) and x2.shape == (4,) and a.classes == ["x", "y"]
    pair = combine(
        ArrayDatastore(np.arange(5.0)), ArrayDatastore(np.ones((5, 1)), targets=list("ppqqp"))
    )
    assert isinstance(pair, CombinedDatastore) and pair.classes == ["p", "q"]
    x, feats, y = pair[2]
    assert float(x) == 2.0 and int(y) == 1
    assert pair.split(0.6, seed=0)[0].count_each_label() == {"p": 2, "q": 1}
    with pytest.raises(DataError, match=r"\[5, 4\]"):
        combine(ArrayDatastore(np.ones(5)), ArrayDatastore(np.ones(4)))


def test_loader_batches_shuffle_seed_and_collate_error():
    ds, _ = make(10)
    batches = list(loader(ds, batch_size=4))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    first = [b[0][:, 0].tolist() for b in loader(ds, batch_size=10, shuffle=True, seed=5)]
    again = [b[0][:, 0].tolist() for b in loader(ds, batch_size=10, shuffle=True, seed=5)]
    assert first == again and sorted(first[0]) == list(range(10))
    ragged = ArrayDatastore(np.arange(3.0)).transform(lambda x: torch.ones(int(x) + 1))
    with pytest.raises(DataError, match="differ in size"):
        next(iter(loader(ragged, batch_size=3)))
    with pytest.raises(OptionError, match="batch_size"):
        loader(ds, batch_size=0)


def test_loader_with_two_workers_reads_everything():
    ds, _ = make(40)
    seen = torch.cat([b[0][:, 0] for b in loader(ds, batch_size=8, workers=2)])
    assert sorted(seen.tolist()) == list(range(40))


def test_train_eval_mode():
    ds, _ = make(4)
    assert ds.training and not ds.eval().training and ds.train().training
    pair = combine(ds, ArrayDatastore(np.ones(4)))
    pair.eval()
    assert not ds.training


def read_bytes_as_tensor(path):
    with open(path, "rb") as stream:
        return torch.tensor(list(stream.read()), dtype=torch.float32)


def test_file_datastore_reads_with_a_user_function(tmp_path):
    from deeptoolbox.data import FileDatastore

    for label, content in (("x", b"\x01\x02"), ("y", b"\x03"), ("y", b"\x04\x05\x06")):
        folder = tmp_path / label
        folder.mkdir(exist_ok=True)
        (folder / f"{len(list(folder.iterdir()))}.bin").write_bytes(content)
    (tmp_path / "y" / "skip.txt").write_text("ignored")
    ds = FileDatastore(tmp_path, read_bytes_as_tensor, extensions=[".bin"])
    assert ds.count_each_label() == {"x": 1, "y": 2}
    assert [ds[i][0].tolist() for i in range(3)] == [[1.0, 2.0], [3.0], [4.0, 5.0, 6.0]]
    assert len(FileDatastore(tmp_path, read_bytes_as_tensor)) == 4  # every file

    def fails(path):
        raise ValueError("bad header")

    with pytest.raises(DataError, match=r"0\.bin.*ValueError: bad header"):
        FileDatastore(tmp_path / "x", fails)[0]

    def binary_only(path):
        if path.endswith(".txt"):
            raise ValueError("not binary")
        return read_bytes_as_tensor(path)

    with pytest.warns(RuntimeWarning, match=r"skipped 1 .*skip\.txt"):
        kept = FileDatastore(tmp_path / "y", binary_only, on_error="skip", labels=None)
    assert len(kept) == 2
    with pytest.raises(OptionError, match="read_fn"):
        FileDatastore(tmp_path, "open")


def test_a_read_fn_that_cannot_open_a_url_is_told_how_to_get_a_local_copy(tmp_path):
    import fsspec

    from deeptoolbox.data import FileDatastore

    with fsspec.open("memory://filestore-hint/a.npy", "wb") as handle:
        np.save(handle, np.ones(3))
    store = FileDatastore("memory://filestore-hint", np.load)
    with pytest.raises(DataError, match=r"given the URL itself: open it with fsspec.open"):
        store[0]
    cached = FileDatastore("memory://filestore-hint", np.load, cache_dir=tmp_path / "cache")
    assert cached[0].tolist() == [1.0, 1.0, 1.0]
