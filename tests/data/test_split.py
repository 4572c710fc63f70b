"""Datastore.split as MATLAB's splitEachLabel: fractions or counts per label, several parts,
in order or shuffled (reproducible), and warnings for classes a part does not get."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from deeptoolbox.data import ArrayDatastore, ImageDatastore
from deeptoolbox.errors import OptionError


def labelled(counts):
    """Observations numbered 0..n-1, labels interleaved so that class order != position."""
    labels = np.concatenate([[name] * n for name, n in counts.items()])
    labels = labels[np.random.default_rng(0).permutation(len(labels))]
    x = np.arange(len(labels), dtype=np.float32)[:, None]
    return ArrayDatastore(x, targets=labels), labels


def ids(ds):
    return [int(ds[i][0][0]) for i in range(len(ds))]


def test_integer_counts_take_that_many_of_each_class_in_order():
    ds, labels = labelled({"a": 6, "b": 4})
    first, rest = ds.split(3, shuffle=False)
    expected = sorted(np.flatnonzero(labels == "a")[:3].tolist())
    expected += np.flatnonzero(labels == "b")[:3].tolist()
    assert ids(first) == sorted(expected)  # the first 3 of each class, datastore order kept
    assert first.count_each_label() == {"a": 3, "b": 3}
    assert rest.count_each_label() == {"a": 3, "b": 1}
    assert sorted(ids(first) + ids(rest)) == list(range(10))


def test_several_counts_and_several_fractions_as_separate_arguments():
    ds, _ = labelled({"a": 20, "b": 10})
    train, val, test = ds.split(5, 2, seed=0)
    assert train.count_each_label() == {"a": 5, "b": 5}
    assert val.count_each_label() == {"a": 2, "b": 2}
    assert test.count_each_label() == {"a": 13, "b": 3}
    as_args = [ids(p) for p in ds.split(0.6, 0.2, seed=3)]
    as_list = [ids(p) for p in ds.split([0.6, 0.2], seed=3)]
    assert as_args == as_list and len(as_args) == 3
    assert [len(p) for p in as_args] == [18, 6, 6]


def test_one_is_a_count_and_one_point_zero_a_fraction():
    ds, _ = labelled({"a": 4, "b": 4})
    one_each, rest = ds.split(1, seed=0)
    assert one_each.count_each_label() == {"a": 1, "b": 1} and len(rest) == 6
    (everything,) = ds.split(1.0, seed=0)
    assert len(everything) == 8


def test_counts_without_stratification_are_totals():
    ds, _ = labelled({"a": 6, "b": 4})
    first, rest = ds.split(4, stratify=False, shuffle=False)
    assert ids(first) == [0, 1, 2, 3] and ids(rest) == list(range(4, 10))


def test_fractions_in_order_with_shuffle_false():
    ds, labels = labelled({"a": 6, "b": 4})
    first, second = ds.split(0.5, shuffle=False)
    expected = (
        np.flatnonzero(labels == "a")[:3].tolist() + np.flatnonzero(labels == "b")[:2].tolist()
    )
    assert ids(first) == sorted(expected) and len(second) == 5
    assert ids(ds.split(0.5, shuffle=False)[0]) == ids(first)  # same every call


def test_shuffled_split_without_seed_follows_torch_manual_seed():
    ds, _ = labelled({"a": 300, "b": 200})
    torch.manual_seed(7)
    once = [ids(p) for p in ds.split(0.5)]
    torch.manual_seed(7)
    again = [ids(p) for p in ds.split(0.5)]
    assert once == again
    torch.manual_seed(8)
    assert [ids(p) for p in ds.split(0.5)] != once
    torch.manual_seed(1)
    first = ids(ds.shuffle())
    torch.manual_seed(1)
    assert ids(ds.shuffle()) == first


@pytest.mark.parametrize(
    "bad,message",
    [
        ((3, 0.5), "not a mix"),
        ((0,), "counts must be ints >= 1"),
        ((-2,), "counts must be ints >= 1"),
        ((0.7, 0.6), "sum to at most 1"),
        (("half",), "fractions"),
        ((), "fractions"),
        ((True,), "fractions"),
    ],
)
def test_bad_amounts_say_what_is_accepted(bad, message):
    ds, _ = labelled({"a": 4, "b": 4})
    with pytest.raises(OptionError, match=message) as caught:
        ds.split(*bad)
    assert "split(40)" in str(caught.value)  # the message shows the accepted forms


def test_counts_beyond_a_class_size_warn_and_take_what_there_is():
    ds, _ = labelled({"a": 8, "b": 3})
    with pytest.warns(UserWarning) as caught:
        first, rest = ds.split(5, seed=0)
    messages = [str(w.message) for w in caught]
    assert any("class 'b' has 3 (asked for 5)" in m for m in messages)
    assert any("part 2 of 2 has no observations of class 'b'" in m for m in messages)
    assert first.count_each_label() == {"a": 5, "b": 3}
    assert rest.count_each_label() == {"a": 3, "b": 0}


def write_folders(root, counts):
    for label, n in counts.items():
        (root / label).mkdir(parents=True)
        for i in range(n):
            pixels = np.full((4, 4), 20 * i, np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i}.png")
    return root


def test_a_class_folder_with_one_image_warns_naming_class_and_part(tmp_path):
    ds = ImageDatastore(write_folders(tmp_path / "imgs", {"cat": 1, "dog": 6}))
    with pytest.warns(UserWarning, match=r"part 2 of 2 has no observations of class 'cat'"):
        train, validation = ds.split(0.8, seed=0)
    assert train.count_each_label() == {"cat": 1, "dog": 5}
    with pytest.warns(UserWarning) as caught:
        ds.split(0.7, 0.15, seed=0)
    message = str(caught[0].message)
    assert "part 2 of 3 has no observations of class 'cat' (1 in all)" in message
    assert "part 3 of 3 has no observations of class 'cat'" in message


def test_balanced_splits_do_not_warn():
    ds, _ = labelled({"a": 10, "b": 10})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds.split(0.8, seed=0)
        ds.split(3, 2, seed=0)
        ds.split(10)  # every observation in the first part: the rest is empty, no warning


def test_an_empty_part_without_labels_warns():
    ds = ArrayDatastore(np.zeros((3, 1)))
    with pytest.warns(UserWarning, match="part 2 of 2 is empty"):
        ds.split(0.9)
