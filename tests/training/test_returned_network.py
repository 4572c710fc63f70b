"""The result says which iteration's network it returns, and its validation figures are that
network's; the progress table, the last line and the plot mark it. Also the header, accuracy
in percent, and MATLAB-style option names."""

import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError
from deeptoolbox.training import TrainingOptions, evaluate, train
from deeptoolbox.training._progress import history_panels


def regression(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 4, generator=g)
    return x, x @ torch.randn(4, 1, generator=g)


def run(output_network, verbose=False, **kw):
    x, y = regression()
    torch.manual_seed(0)
    net = Network([L.FeatureInput(4), L.Dense(1)])
    options = TrainingOptions(
        verbose=verbose, seed=0, max_epochs=30, mini_batch_size=64, solver="adam",
        initial_learn_rate=0.05, validation_data=(x, 0.3 * y), validation_frequency=1,
        output_network=output_network, **kw,
    )  # fmt: skip
    return train(net, (x, y), "mse", options), (x, 0.3 * y)


@pytest.mark.parametrize("output_network", ["auto", "best-validation", "last-iteration"])
def test_final_validation_describes_the_returned_network(output_network):
    result, valid = run(output_network)
    last = result.history.iterations[-1]["iteration"]
    if output_network == "last-iteration":
        assert result.returned_iteration == last
    else:
        assert result.returned_iteration == result.best_iteration < last  # the best came early
    returned = evaluate(result.network, valid, ["rmse"], loss="mse")
    assert result.final_validation["loss"] == pytest.approx(returned["loss"], rel=1e-5)
    assert result.summary()["returned_iteration"] == result.returned_iteration


def test_the_table_and_last_line_mark_the_returned_network(capsys):
    result, _ = run("auto", verbose=True)
    out = capsys.readouterr().out
    assert f"Returned the network of iteration {result.returned_iteration} (best validation" in out
    rows = [line for line in out.splitlines() if line.startswith("|") and "=" not in line]
    best_row = next(r for r in rows[1:] if int(r.split("|")[2]) == result.returned_iteration)
    assert "*" in best_row.split("|")[5]  # validation loss column: a best-so-far mark
    panels = history_panels(result.history, [], result.returned_iteration)
    label = f"returned network (iteration {result.returned_iteration})"
    assert panels["Loss"][label][0] == [result.returned_iteration]


def test_one_epoch_run_says_which_iteration_it_returns(capsys):
    x, y = regression()
    torch.manual_seed(0)
    net = Network([L.FeatureInput(4), L.Dense(1)])
    with torch.no_grad():
        start = net(x).clone()  # validation targets: the untrained network's own outputs
    options = TrainingOptions(max_epochs=1, mini_batch_size=16, seed=0, solver="adam",
                              initial_learn_rate=0.05, validation_data=(x, start))  # fmt: skip
    result = train(net, (x, y), "mse", options)
    assert result.returned_iteration == 1  # validation got worse after the first iteration
    assert "Returned the network of iteration 1 (best validation" in capsys.readouterr().out


def test_header_names_device_and_precision_and_accuracy_shows_percent(capsys):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 2, generator=g)
    y = (x[:, 0] > 0).long()
    net = Network([L.FeatureInput(2), L.Dense(2), L.Softmax()])
    result = train(net, (x, y), "crossentropy",
                   TrainingOptions(max_epochs=1, mini_batch_size=32, metrics=["accuracy"],
                                   execution_environment="cpu", precision="32"))  # fmt: skip
    out = capsys.readouterr().out
    assert "Training on cpu (float32)." in out and "(32)" not in out
    accuracy = result.history.iterations[-1]["accuracy"]
    assert 0 <= accuracy <= 1  # the API keeps fractions
    assert f"{100 * accuracy:.2f}%" in out


@pytest.mark.parametrize("matlab,ours", [("InitialLearnRate", "initial_learn_rate"),
                                         ("MaxEpochs", "max_epochs"),
                                         ("MiniBatchSize", "mini_batch_size"),
                                         ("L2Regularization", "l2_regularization"),
                                         ("ValidationData", "validation_data"),
                                         ("learn_rate", "initial_learn_rate")])  # fmt: skip
def test_matlab_option_names_get_a_suggestion(matlab, ours):
    with pytest.raises(OptionError, match=f"unknown option `{matlab}`. Did you mean `{ours}`"):
        TrainingOptions(**{matlab: 1})
