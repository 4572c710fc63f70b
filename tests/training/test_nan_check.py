"""NaN/Inf losses are found when losses are flushed, without a host sync per iteration, and
training rolls back to the last checked network."""

import math

import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import TrainingError
from deeptoolbox.training import TrainingOptions, _engine, train

SYNCS = ("item", "__bool__", "tolist", "__float__")


def data(n=128):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g)
    return x, (x[:, 0] > 0).long()


def fresh():
    torch.manual_seed(0)
    return Network([L.FeatureInput(2), L.Dense(8), L.ReLU(), L.Dense(2), L.Softmax()])


@pytest.fixture
def counted(monkeypatch):
    """Counts reads of floating-point tensors back to Python (the host syncs a loss needs)
    and the flushes that had losses to read."""
    counts = {"syncs": 0, "flushes": 0}

    def counting(name):
        original = getattr(torch.Tensor, name)

        def method(self, *args, **kwargs):
            if self.is_floating_point():
                counts["syncs"] += 1
            return original(self, *args, **kwargs)

        return method

    flush = _engine.Engine.flush

    def counting_flush(self):
        counts["flushes"] += bool(self.pending)
        return flush(self)

    monkeypatch.setattr(_engine.Engine, "flush", counting_flush)
    for name in SYNCS:
        monkeypatch.setattr(torch.Tensor, name, counting(name))
    return counts


class Watch:
    """A user callback at every iteration: it must not add syncs either."""

    def __init__(self):
        self.iterations = 0

    def on_iteration_end(self, state, info):
        self.iterations += 1


def test_one_host_read_per_flush_not_per_iteration(counted, capsys):
    watch = Watch()
    options = TrainingOptions(max_epochs=2, mini_batch_size=16, verbose_frequency=5, seed=0,
                              callbacks=[watch])  # verbose table on  # fmt: skip
    result = train(fresh(), data(), "crossentropy", options)
    assert watch.iterations == 16 and len(result.history.iterations) == 16
    # flushed at iterations 1, 5, 8 (epoch end), 10, 15, 16 (last): 6 reads for 16 iterations
    assert counted["flushes"] == 6
    assert counted["syncs"] == counted["flushes"]
    assert "Training finished" in capsys.readouterr().out


def test_a_nan_found_at_a_flush_rolls_back_to_the_last_checked_network(counted):
    x, y = data()
    clean_weights = {}

    class Keep:
        def __init__(self, net):
            self.net = net

        def on_iteration_end(self, state, info):
            clean_weights[state.iteration] = {
                k: v.clone() for k, v in self.net.state_dict().items()
            }

    options = dict(max_epochs=1, mini_batch_size=16, verbose_frequency=5, shuffle="never",
                   seed=0, verbose=False)  # fmt: skip
    net = fresh()
    train(net, (x, y), "crossentropy", TrainingOptions(callbacks=[Keep(net)], **options))
    bad = x.clone()
    bad[6 * 16 + 3] = math.nan  # in the batch of iteration 7
    counted["syncs"] = counted["flushes"] = 0
    with pytest.raises(TrainingError, match="at iteration 7 ") as caught:
        train(fresh(), (bad, y), "crossentropy", TrainingOptions(**options))
    assert counted["flushes"] == 3  # 1, 5, and the epoch end (8) where the NaN shows up
    assert counted["syncs"] <= counted["flushes"] + 2  # + the rollback's finiteness checks
    message = str(caught.value)
    assert "the network of iteration 5" in message and "`verbose_frequency`=5" in message
    result = caught.value.result
    assert result.returned_iteration == 5
    assert result.stop_reason == "stopped: non-finite loss at iteration 7"
    assert result.history.column("iteration") == [1, 2, 3, 4, 5, 6]  # before the bad one
    for key, value in clean_weights[5].items():
        assert torch.equal(result.network.state_dict()[key], value), key


class NanGradient(torch.autograd.Function):
    """The identity forward; a NaN gradient backward."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * math.nan


def test_weights_already_bad_at_the_last_check_fall_back_to_the_one_before():
    calls = []

    def poisoned_loss(outputs, targets):
        calls.append(1)
        if len(calls) == 5:  # iteration 5: a finite loss, but NaN gradients and weights after
            outputs = NanGradient.apply(outputs)
        return torch.nn.functional.nll_loss(torch.log(outputs), targets)

    options = TrainingOptions(max_epochs=1, mini_batch_size=16, verbose_frequency=5,
                              shuffle="never", seed=0, verbose=False, solver="adam")  # fmt: skip
    with pytest.raises(TrainingError, match="at iteration 6 ") as caught:
        train(fresh(), data(), poisoned_loss, options)
    result = caught.value.result
    assert result.history.column("iteration") == [1, 2, 3, 4, 5]
    assert result.returned_iteration == 1  # the weights checked at 5 were NaN: those of 1
    assert all(torch.isfinite(p).all() for p in result.network.parameters())


def test_metrics_and_validation_are_read_only_at_logged_iterations(counted):
    """Between logged iterations nothing is read back, even with metrics, validation, the
    table and a user callback on; at a logged one, the losses once and each metric once."""
    reads, before = {}, {"syncs": 0}

    class Reads:
        def on_iteration_end(self, state, info):
            reads[state.iteration] = (counted["syncs"] - before["syncs"], info["logged"])
            before["syncs"] = counted["syncs"]

        def on_epoch_end(self, state, info):
            before["syncs"] = counted["syncs"]  # the epoch-end flush

    x, y = data()
    options = TrainingOptions(max_epochs=2, mini_batch_size=16, verbose_frequency=5, seed=0,
                              metrics=["accuracy"], validation_data=(x[:32], y[:32]),
                              validation_frequency=10, callbacks=[Reads()])  # fmt: skip
    result = train(fresh(), (x, y), "crossentropy", options)
    assert [i for i, (_, logged) in reads.items() if logged] == [1, 5, 10, 15, 16]
    for iteration, (count, logged) in reads.items():
        if not logged:
            assert count == 0, iteration
    # logged: the losses, the accuracy; validated (1, 10, 16): also its losses, its accuracy
    assert [reads[i][0] for i in (1, 5, 10, 15, 16)] == [4, 2, 4, 2, 4]
    assert len(result.history.iterations) == 16
