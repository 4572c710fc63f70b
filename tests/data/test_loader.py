"""data.loader as MATLAB's minibatchqueue: PartialMiniBatch="discard" (drop_last) and
MiniBatchFcn (batch_function)."""

import numpy as np
import pytest
import torch

from deeptoolbox.data import ArrayDatastore, SequenceDatastore, default_collate, loader
from deeptoolbox.errors import OptionError


def labelled(n=10):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    return ArrayDatastore(x, targets=np.array(list("abc" * n)[:n]))


def one_hot_batch(observations):
    """A MiniBatchFcn: stack the inputs, one-hot encode the class indices."""
    x, y = default_collate(observations)
    return x * 2, torch.nn.functional.one_hot(y, 3).float()


def test_drop_last_discards_the_partial_batch():
    sizes = [len(b[0]) for b in loader(labelled(10), batch_size=4, drop_last=True)]
    assert sizes == [4, 4]
    assert [len(b[0]) for b in loader(labelled(10), batch_size=4)] == [4, 4, 2]
    shuffled = list(loader(labelled(10), batch_size=3, shuffle=True, seed=0, drop_last=True))
    assert [len(b[0]) for b in shuffled] == [3, 3, 3]


def test_batch_function_builds_each_batch():
    ds = labelled(7)
    batches = list(loader(ds, batch_size=3, batch_function=one_hot_batch))
    x, y = batches[0]
    assert torch.equal(x, torch.tensor([[0.0, 2.0], [4.0, 6.0], [8.0, 10.0]]))
    assert torch.equal(y, torch.eye(3))
    assert [len(b[0]) for b in batches] == [3, 3, 1]


def take_lengths(observations):
    return [len(sequence) for sequence in observations]


def test_batch_function_replaces_the_datastore_collate_and_works_with_workers():
    sequences = SequenceDatastore([np.zeros((t, 1), np.float32) for t in (4, 2, 3, 5)])
    assert list(loader(sequences, batch_size=2, batch_function=take_lengths)) == [[4, 2], [3, 5]]
    in_workers = list(loader(sequences, batch_size=2, workers=2, batch_function=take_lengths))
    assert in_workers == [[4, 2], [3, 5]]


def test_batch_function_must_be_callable():
    with pytest.raises(OptionError, match="batch_function"):
        loader(labelled(), batch_function="collate")
