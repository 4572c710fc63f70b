"""Recurrent state of a Network: stateful mode, net.state, predict(return_state=True), files."""

import json

import pytest
import torch

import deeptoolbox as dtb
from deeptoolbox import Network, load, save
from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError

close = torch.testing.assert_close


def forecaster(cell=L.LSTM) -> Network:
    """A one-step-ahead forecaster: (N, T, 1) in, (N, T, 1) out."""
    torch.manual_seed(0)
    return Network(
        [L.SequenceInput(1, name="x"), cell(8, name="rnn"), L.Dense(1, name="fc")]
    ).eval()


def test_stateful_step_by_step_prediction_equals_the_full_sequence_prediction():
    net = forecaster()
    x = torch.randn(3, 12, 1)
    full = dtb.predict(net, x)
    net.reset_state()
    net.stateful = True
    steps = torch.cat([dtb.predict(net, x[:, t : t + 1]) for t in range(12)], dim=1)
    close(steps, full, atol=1e-6, rtol=1e-5)
    assert net.stateful and net.state["rnn"]["hidden"].shape == (3, 1, 8)


def _rerun_prefix(net: Network, observed: torch.Tensor, horizon: int) -> torch.Tensor:
    """Closed-loop forecast the O(T^2) way: re-run the whole sequence for every new step."""
    sequence, steps = observed, []
    for _ in range(horizon):
        steps.append(dtb.predict(net, sequence)[:, -1:])
        sequence = torch.cat([sequence, steps[-1]], dim=1)
    return torch.cat(steps, dim=1)


@pytest.mark.parametrize("cell", [L.LSTM, L.GRU])
def test_closed_loop_forecast_in_linear_time_equals_rerunning_the_prefix(cell):
    net = forecaster(cell)
    observed, horizon = torch.randn(2, 10, 1), 6
    expected = _rerun_prefix(net, observed, horizon)
    # stateful mode: read the observed part once, then one step per call
    net.reset_state()
    net.stateful = True
    steps = [dtb.predict(net, observed)[:, -1:]]
    for _ in range(horizon - 1):
        steps.append(dtb.predict(net, steps[-1]))
    close(torch.cat(steps, dim=1), expected, atol=1e-5, rtol=1e-4)
    # MATLAB's idiom: [Y, state] = predict(net, X); net.State = state
    net.stateful = False
    net.reset_state()
    out, state = dtb.predict(net, observed, return_state=True)
    steps = [out[:, -1:]]
    for _ in range(horizon - 1):
        net.state = state
        step, state = dtb.predict(net, steps[-1], return_state=True)
        steps.append(step)
    close(torch.cat(steps, dim=1), expected, atol=1e-5, rtol=1e-4)


def test_predict_return_state_leaves_the_network_unchanged():
    net = forecaster()
    x = torch.randn(5, 7, 1)
    out, state = dtb.predict(net, x, return_state=True)
    assert net.state == {"rnn": None} and not net.stateful
    close(out, dtb.predict(net, x))
    rnn = net.layer("rnn")
    with torch.no_grad():
        _, (hidden, cell) = rnn.rnn(x)
    close(state["rnn"]["hidden"], hidden.transpose(0, 1))
    close(state["rnn"]["cell"], cell.transpose(0, 1))
    # batches of 2 observations give the same outputs and the same state per observation
    out_small, state_small = dtb.predict(net, x, batch_size=2, return_state=True)
    close(out_small, out)
    close(state_small["rnn"]["hidden"], state["rnn"]["hidden"])
    # the next call starts from a state given per observation, in batches too
    net.state = state
    following = torch.randn(5, 3, 1)
    after, _ = dtb.predict(net, following, batch_size=2, return_state=True)
    joined = dtb.predict(forecaster(), torch.cat([x, following], dim=1))[:, 7:]
    close(after, joined, atol=1e-6, rtol=1e-5)


def test_stateful_network_keeps_the_state_of_a_batched_prediction():
    net = forecaster()
    net.stateful = True
    x = torch.randn(5, 4, 1)
    dtb.predict(net, x, batch_size=2)
    expected = dtb.predict(forecaster(), x, return_state=True)[1]
    close(net.state["rnn"]["cell"], expected["rnn"]["cell"])


def test_network_state_api_errors_and_modes():
    net = forecaster()
    assert not net.stateful and net.reset_state() is net
    with pytest.raises(OptionError, match="True or False"):
        net.stateful = 1
    with pytest.raises(OptionError, match=r"\['nope'\] are not stateful layers.*\['rnn'\]"):
        net.set_state({"nope": None})
    plain = Network([L.FeatureInput(2), L.Dense(1)])
    assert plain.state == {} and not plain.stateful
    with pytest.raises(OptionError, match="return_state=True needs a Network with LSTM or GRU"):
        dtb.predict(plain, torch.randn(2, 2), return_state=True)


def test_state_is_saved_only_when_asked(tmp_path):
    net = forecaster()
    net.stateful = True
    net(torch.randn(2, 5, 1))
    plain = load(save(net, tmp_path / "plain"))
    assert plain.state == {"rnn": None} and not plain.stateful
    loaded = load(save(net, tmp_path / "with_state.zip", include_state=True))
    assert loaded.stateful
    close(loaded.state["rnn"]["hidden"], net.state["rnn"]["hidden"])
    x = torch.randn(2, 3, 1)
    close(loaded(x), net(x))


def test_version_1_bidirectional_last_keeps_its_meaning(tmp_path):
    torch.manual_seed(0)
    net = Network([L.SequenceInput(2), L.GRU(3, output_mode="final_state", bidirectional=True,
                                             name="gru")])  # fmt: skip
    path = save(net, tmp_path / "old")
    arch = json.loads((path / "network.json").read_text())
    arch["format_version"] = 1
    arch["layers"][1]["config"]["output_mode"] = "last"  # what "last" meant before version 2
    (path / "network.json").write_text(json.dumps(arch))
    loaded = load(path)
    assert loaded.layer("gru").output_mode == "final_state"
    x = torch.randn(2, 4, 2)
    close(loaded(x), net(x))
