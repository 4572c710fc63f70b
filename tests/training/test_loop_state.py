"""LoopState and checkpoints: round trip, bit-exact resume, format versions."""

import io
import math
import zipfile
from pathlib import Path

import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError
from deeptoolbox.training import LoopState, TrainingOptions, train
from deeptoolbox.training._checkpoint import load_checkpoint

FIXTURES = Path(__file__).parent / "fixtures"


def data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    return x, (x[:, 0] - x[:, 1] > 0).long()


def fresh(seed=0):
    torch.manual_seed(seed)
    return Network(
        [L.FeatureInput(3), L.Dense(16), L.ReLU(), L.Dropout(0.3), L.Dense(2), L.Softmax()]
    )


def options(**kw):
    base = dict(verbose=False, seed=7, solver="adam", max_epochs=2, mini_batch_size=16,
                shuffle="every-epoch", validation_data=data(32, seed=1), validation_frequency=3,
                output_network="last-iteration", metrics=["accuracy"])  # fmt: skip
    return TrainingOptions(**{**base, **kw})


def without_time(records):
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


def assert_same_run(a, b):
    for key, value in a.network.state_dict().items():
        assert torch.equal(value, b.network.state_dict()[key]), key
    assert without_time(a.history.iterations) == without_time(b.history.iterations)
    assert without_time(a.history.epochs) == without_time(b.history.epochs)
    assert (a.best_iteration, a.best_epoch) == (b.best_iteration, b.best_epoch)
    assert a.final_validation == b.final_validation


def test_loop_state_round_trips_through_a_weights_only_file():
    state = LoopState(epoch=2, iteration=9, position=1, seed=11, elapsed=3.5, best_loss=0.25,
                      best_epoch=2, best_iteration=8, best_validation={"loss": 0.25},
                      patience=1, validation={"loss": 0.3, "accuracy": 0.9},
                      validated_iteration=9)  # fmt: skip
    state.history.iterations.append({"iteration": 9, "epoch": 3, "loss": 0.5})
    state.history.epochs.append({"epoch": 2, "loss": 0.6})
    buffer = io.BytesIO()
    torch.save(state.state_dict(), buffer)
    expected = torch.rand(3)  # the generators moved on after state_dict()
    copy = LoopState()
    copy.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    assert torch.equal(torch.rand(3), expected)  # load_state_dict restored the generators
    for name in ("epoch", "iteration", "position", "seed", "elapsed", "best_loss", "best_epoch",
                 "best_iteration", "best_validation", "patience", "validation",
                 "validated_iteration"):  # fmt: skip
        assert getattr(copy, name) == getattr(state, name), name
    assert copy.history.iterations == state.history.iterations
    assert copy.history.epochs == state.history.epochs


def test_loop_state_refuses_an_incomplete_state():
    state = LoopState().state_dict()
    del state["patience"], state["rng"]
    with pytest.raises(OptionError, match=r"lacks \['patience', 'rng'\]"):
        LoopState().load_state_dict(state)


def test_two_epochs_equal_one_epoch_then_a_resumed_one(tmp_path):
    common = dict(learn_rate_schedule="piecewise", learn_rate_drop_period=1)
    straight = train(fresh(), data(), "crossentropy", options(**common))
    train(fresh(), data(), "crossentropy",
          options(max_epochs=1, checkpoint_path=tmp_path, **common))  # fmt: skip
    first = tmp_path / "checkpoint-epoch0001-iteration0000004.zip"
    resumed = train(fresh(99), data(), "crossentropy", options(resume_from=first, **common))
    for key, value in straight.network.state_dict().items():
        assert torch.equal(value, resumed.network.state_dict()[key]), key
    # the 1-epoch run logged and validated at its last iteration (4), the straight one did not
    for column in ("iteration", "loss", "learn_rate"):
        assert resumed.history.column(column) == straight.history.column(column), column
    assert resumed.history.column("loss", "epoch") == straight.history.column("loss", "epoch")
    assert resumed.history.column("iteration") == list(range(1, 9))


def test_mid_epoch_resume_keeps_every_loop_counter(tmp_path):
    kw = dict(max_epochs=3, validation_patience=4, learn_rate_schedule="cosine")
    straight = train(fresh(), data(), "crossentropy", options(**kw))
    train(fresh(), data(), "crossentropy", options(
        checkpoint_path=tmp_path, checkpoint_frequency=5, checkpoint_frequency_unit="iteration",
        **kw))  # fmt: skip
    middle = tmp_path / "checkpoint-epoch0002-iteration0000005.zip"  # 1 of 4 batches in
    loop = load_checkpoint(middle)["state"]
    assert (loop["epoch"], loop["position"], loop["iteration"]) == (1, 1, 5)
    assert loop["best_iteration"] is not None and loop["validated_iteration"] == 3
    resumed = train(fresh(5), data(), "crossentropy", options(resume_from=middle, **kw))
    assert_same_run(straight, resumed)
    assert straight.stop_reason == resumed.stop_reason


def test_a_checkpoint_holds_the_loop_state_as_one_versioned_entry(tmp_path):
    train(fresh(), data(), "crossentropy", options(checkpoint_path=tmp_path, max_epochs=1))
    path = tmp_path / "checkpoint-epoch0001-iteration0000004.zip"
    with zipfile.ZipFile(path) as archive:
        raw = torch.load(io.BytesIO(archive.read("state.pt")), weights_only=True)
    assert raw["format_version"] == 2
    assert set(raw) == {"format_version", "loop", "optimizer", "scaler", "options"}
    state = LoopState()
    state.load_state_dict(raw["loop"])
    assert (state.epoch, state.iteration, state.position) == (1, 4, 0)
    assert len(state.history.iterations) == 4 and len(state.history.epochs) == 1


def test_a_format_1_checkpoint_written_before_the_loop_state_resumes():
    """The fixture was written by deeptoolbox at commit 1ff63e1 (checkpoint format 1):
    ``train(fresh(0), data(), "crossentropy", options(max_epochs=3, ...))`` with the options
    of tests/training/test_checkpoints.py, validation on ``data(32)`` every 4 iterations and
    a checkpoint every 6 iterations; this is the one of iteration 6 (epoch 2, 2 of 4 done)."""
    fixture = FIXTURES / "checkpoint-format1-epoch0002-iteration0000006.zip"
    loaded = load_checkpoint(fixture)
    assert loaded["format_version"] == 1
    loop = loaded["state"]
    assert (loop["epoch"], loop["position"], loop["iteration"]) == (1, 2, 6)
    assert loop["best_iteration"] == 4 and set(loop["validation"]) == {"loss"}

    from test_checkpoints import data as old_data
    from test_checkpoints import fresh as old_fresh
    from test_checkpoints import options as old_options

    settings = dict(validation_data=old_data(32), validation_frequency=4)
    straight = train(old_fresh(0), old_data(), "crossentropy", old_options(**settings))
    resumed = train(old_fresh(5), old_data(), "crossentropy",
                    old_options(resume_from=fixture, **settings))  # fmt: skip
    for key, value in straight.network.state_dict().items():
        torch.testing.assert_close(resumed.network.state_dict()[key], value, rtol=1e-5, atol=1e-6)
    assert [r["iteration"] for r in resumed.history.iterations] == list(range(1, 13))
    assert resumed.best_iteration == straight.best_iteration
    straight_losses = [r["loss"] for r in straight.history.iterations]
    resumed_losses = [r["loss"] for r in resumed.history.iterations]
    assert resumed_losses == pytest.approx(straight_losses, rel=1e-5)


def _rewrite_state(path: Path, target: Path, state) -> None:
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w") as out:
        for name in source.namelist():
            if name != "state.pt":
                out.writestr(name, source.read(name))
        buffer = io.BytesIO()
        torch.save(state, buffer)
        out.writestr("state.pt", buffer.getvalue())


def test_an_unknown_checkpoint_format_names_its_version(tmp_path):
    train(fresh(), data(), "crossentropy", options(checkpoint_path=tmp_path, max_epochs=1))
    path = tmp_path / "checkpoint-epoch0001-iteration0000004.zip"
    with zipfile.ZipFile(path) as archive:
        raw = torch.load(io.BytesIO(archive.read("state.pt")), weights_only=True)
    newer = tmp_path / "newer" / path.name
    newer.parent.mkdir()
    _rewrite_state(path, newer, {**raw, "format_version": 99})
    with pytest.raises(OptionError, match="format version 99; this deeptoolbox reads versions 1"):
        train(fresh(), data(), "crossentropy", options(resume_from=newer))
    odd = tmp_path / "odd.zip"
    _rewrite_state(path, odd, {"something": math.pi})
    with pytest.raises(OptionError, match="format version None"):
        train(fresh(), data(), "crossentropy", options(resume_from=odd))
