"""data.loader as MATLAB's minibatchqueue: PartialMiniBatch="discard" (drop_last) and
MiniBatchFcn (batch_function)."""

import gc
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from deeptoolbox.data import ArrayDatastore, SequenceDatastore, default_collate, loader
from deeptoolbox.data._base import make_dataloader
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


class _InheritedGarbage:
    """A reference cycle whose destructor records which process collected it."""

    def __init__(self, marker: Path) -> None:
        self.marker, self.cycle = marker, self

    def __del__(self) -> None:
        with open(self.marker, "a") as stream:
            stream.write(f"{os.getpid()}\n")


class _CollectingDatastore(ArrayDatastore):
    """Reading an observation runs a full garbage collection in the worker."""

    def __getitem__(self, index):
        gc.collect()
        return super().__getitem__(index)


def test_workers_never_collect_garbage_inherited_from_the_parent(tmp_path):
    # a worker that runs the destructor of a parent's object (an onnxruntime session, say)
    # can hang for ever on locks of threads it does not have: inherited objects stay frozen
    marker, started = tmp_path / "collected", tmp_path / "started"
    gc.disable()  # keep the cycle alive until the fork
    try:
        _InheritedGarbage(marker)  # garbage now, collected by nobody yet
        ds = _CollectingDatastore(np.arange(8, dtype=np.float32).reshape(8, 1))
        read = torch.cat(list(loader(ds, batch_size=2, workers=2)))
        dl = make_dataloader(ds, batch_size=4, workers=1, worker_init_fn=lambda w: started.touch())
        assert len(list(dl)) == 2
    finally:
        gc.enable()
    assert sorted(read.flatten().tolist()) == list(range(8))
    assert started.exists()  # the user's own worker_init_fn still runs
    gc.collect()
    assert marker.read_text().split() == [str(os.getpid())]  # collected here, not in a worker
