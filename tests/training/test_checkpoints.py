"""Checkpoints: atomic files, exact resume, surviving SIGKILL, no pickle for the network."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError
from deeptoolbox.training import TrainingOptions, train
from deeptoolbox.training._checkpoint import latest_checkpoint, load_checkpoint


def data(n=64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    return x, (x[:, 0] - x[:, 1] > 0).long()


def fresh(seed):
    torch.manual_seed(seed)
    return Network(
        [L.FeatureInput(3), L.Dense(16), L.ReLU(), L.Dropout(0.3), L.Dense(2), L.Softmax()]
    )


def options(**kw):
    base = dict(
        verbose=False,
        seed=7,
        solver="adam",
        max_epochs=3,
        mini_batch_size=16,
        shuffle="every-epoch",
        learn_rate_schedule="cosine",
    )
    return TrainingOptions(**{**base, **kw})


class Items(torch.utils.data.Dataset):
    def __init__(self):
        self.x, self.y = data()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def sources():
    return {
        "arrays": lambda: data(),
        "dataset": Items,
        "dataloader": lambda: torch.utils.data.DataLoader(Items(), batch_size=16, shuffle=True),
    }


@pytest.mark.parametrize("kind", ["arrays", "dataset", "dataloader"])
def test_resume_from_a_mid_epoch_checkpoint_gives_identical_weights(tmp_path, kind):
    make = sources()[kind]
    reference = train(fresh(0), make(), "crossentropy", options()).network.state_dict()
    folder = tmp_path / "ckpt"
    train(
        fresh(0),
        make(),
        "crossentropy",
        options(
            checkpoint_path=folder, checkpoint_frequency=3, checkpoint_frequency_unit="iteration"
        ),
    )
    middle = folder / "checkpoint-epoch0002-iteration0000006.zip"  # epoch 2, after 2 of 4 batches
    assert middle.exists()
    resumed = train(fresh(123), make(), "crossentropy", options(resume_from=middle))
    for key, value in reference.items():
        assert torch.equal(value, resumed.network.state_dict()[key]), key
    assert [r["iteration"] for r in resumed.history.iterations] == list(range(1, 13))


def test_checkpoint_files_are_safe_zips_without_pickled_network(tmp_path):
    train(fresh(0), data(), "crossentropy", options(checkpoint_path=tmp_path, max_epochs=2))
    path = latest_checkpoint(tmp_path)
    assert path.name == "checkpoint-epoch0002-iteration0000008.zip"
    with zipfile.ZipFile(path) as archive:
        assert {"network.json", "weights.safetensors", "state.pt"} <= set(archive.namelist())
    loaded = load_checkpoint(tmp_path)  # a folder means its latest checkpoint
    rebuilt = Network.from_json(loaded["network_json"])
    rebuilt.load_state_dict(loaded["weights"])
    assert loaded["state"]["iteration"] == 8
    assert not list(tmp_path.glob(".checkpoint-*"))  # no temporary file left behind


def test_bad_resume_paths_raise_option_errors(tmp_path):
    with pytest.raises(OptionError, match="does not exist"):
        train(fresh(0), data(), "crossentropy", options(resume_from=tmp_path / "nope.zip"))
    with pytest.raises(OptionError, match="holds no checkpoint"):
        train(fresh(0), data(), "crossentropy", options(resume_from=tmp_path))
    broken = tmp_path / "checkpoint-epoch0001-iteration0000004.zip"
    broken.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(OptionError, match="not a complete"):
        train(fresh(0), data(), "crossentropy", options(resume_from=broken))


SCRIPT = textwrap.dedent("""
    import sys, time, torch
    sys.path.insert(0, {tests!r})
    from test_checkpoints import data, fresh, options
    from deeptoolbox.training import train

    def slow_loss(outputs, targets):
        time.sleep(0.05)
        return torch.nn.functional.cross_entropy(outputs, targets)

    train(fresh(0), data(), slow_loss, options(
        checkpoint_path={folder!r}, checkpoint_frequency=2, checkpoint_frequency_unit="iteration",
        max_epochs=200, learn_rate_schedule="none"))
""")


def slow_loss(outputs, targets):
    return torch.nn.functional.cross_entropy(outputs, targets)


@pytest.mark.slow
def test_run_killed_with_sigkill_resumes_and_completes(tmp_path):
    folder = tmp_path / "ckpt"
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(tests=os.path.dirname(__file__), folder=str(folder)))
    process = subprocess.Popen([sys.executable, str(script)])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(folder.glob("checkpoint-*.zip"))) < 3:
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    latest = latest_checkpoint(folder)
    assert latest is not None, "no checkpoint written before the kill"
    done = load_checkpoint(latest)["state"]["iteration"]
    resumed = train(
        fresh(5),
        data(),
        slow_loss,
        options(resume_from=folder, max_epochs=4, learn_rate_schedule="none"),
    )
    assert resumed.history.iterations[-1]["iteration"] == 16 and done < 16
    reference = train(
        fresh(0), data(), slow_loss, options(max_epochs=4, learn_rate_schedule="none")
    )
    for key, value in reference.network.state_dict().items():
        assert torch.equal(value, resumed.network.state_dict()[key]), key
