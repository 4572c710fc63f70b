"""train_closed_loop: backpropagation through the simulation lowers the cost, truncated BPTT
runs one iteration per chunk, and bad arguments are named."""

import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import DiagramError, OptionError, TrainingError
from deeptoolbox.simulate import (
    Constant,
    Diagram,
    Gain,
    Integrator,
    NetworkBlock,
    train_closed_loop,
)
from deeptoolbox.training import TrainingOptions, TrainingResult


def _loop(seed=0):
    torch.manual_seed(seed)
    net = Network([L.FeatureInput(1), L.Dense(1)])
    d = Diagram().add("x", Integrator(torch.linspace(-2, 2, 8)[:, None])).add(
        "ctrl", NetworkBlock(net))  # fmt: skip
    return net, d.connect("x", "ctrl").connect("ctrl", "x")


def _cost(result):
    return result["x/out"].pow(2).mean()


def test_truncated_backpropagation_gives_one_iteration_per_chunk_and_learns():
    net, d = _loop()
    options = TrainingOptions(solver="adam", initial_learn_rate=0.1, max_epochs=6, verbose=False)
    result = train_closed_loop(d, ["ctrl"], _cost, 2.0, dt=0.1, batch=8, options=options,
                               truncation=7)  # fmt: skip
    assert isinstance(result, TrainingResult) and result.network is net
    assert len(result.history.iterations) == 6 * 3  # 21 major steps in chunks of 7
    assert [r["epoch"] for r in result.history.iterations[:4]] == [1, 1, 1, 2]
    epochs = result.history.column("loss", per="epoch")
    assert epochs[-1] < 0.7 * epochs[0]
    assert net.layer("dense_1").weight.item() < 0  # learned negative feedback


def test_training_prints_the_train_table(capsys):
    _, d = _loop()
    options = TrainingOptions(solver="adam", max_epochs=2, verbose=True, verbose_frequency=1)
    train_closed_loop(d, ["ctrl"], _cost, 0.5, dt=0.1, batch=8, options=options)
    out = capsys.readouterr().out
    assert "Mini-batch Loss" in out and "Training finished: max epochs completed" in out


def test_bad_arguments_are_named():
    _, d = _loop()
    with pytest.raises(DiagramError, match="no block named 'ctrl2'"):
        train_closed_loop(d, ["ctrl2"], _cost, 1.0, dt=0.1, batch=8)
    d.add("k", Gain(1.0))
    with pytest.raises(OptionError, match="no trainable parameters"):
        train_closed_loop(d, ["k"], _cost, 1.0, dt=0.1, batch=8)
    with pytest.raises(OptionError, match="truncation"):
        train_closed_loop(d, ["ctrl"], _cost, 1.0, dt=0.1, batch=8, truncation=0)


def test_a_cost_that_is_not_scalar_or_ignores_the_trained_block_is_refused():
    _, d = _loop()
    options = TrainingOptions(solver="adam", max_epochs=1, verbose=False)
    with pytest.raises(OptionError, match=r"scalar tensor .*shape \(8, 1\)"):
        train_closed_loop(d, ["ctrl"], lambda r: r["x/out"][:, -1], 0.5, dt=0.1, batch=8,
                          options=options)  # fmt: skip
    d.add("ref", Constant(1.0))
    with pytest.raises(OptionError, match=r"does not depend on the trained blocks \['ctrl'\]"):
        train_closed_loop(d, ["ctrl"], lambda r: r["ref/out"].pow(2).mean() + 0 * _zero(), 0.5,
                          dt=0.1, batch=8, options=options)  # fmt: skip


def _zero() -> torch.Tensor:
    return torch.zeros((), requires_grad=True)


def test_a_cost_that_blows_up_raises_training_error():
    _, d = _loop()
    options = TrainingOptions(solver="adam", max_epochs=1, verbose=False)
    with pytest.raises(TrainingError, match="cost became nan at iteration 1"):
        train_closed_loop(d, ["ctrl"], lambda r: _cost(r) * float("nan"), 0.5, dt=0.1, batch=8,
                          options=options)  # fmt: skip
