"""NetworkBlock equals the network's forward; StatefulNetworkBlock fed one sample per step
equals the network's whole-sequence forward (LSTM and GRU, with resets)."""

import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import LayerNotFoundError, OptionError
from deeptoolbox.simulate import (
    Diagram,
    FromData,
    NetworkBlock,
    StatefulNetworkBlock,
    simulate,
)

DT = 0.1


def _signal(values):  # (B, T, C) sampled every DT, held in between
    times = torch.arange(values.shape[1], dtype=torch.float64) * DT
    return FromData(times, values, interpolation="zoh")


def test_network_block_equals_the_forward_and_gives_layer_activations():
    torch.manual_seed(0)
    net = Network([L.FeatureInput(3), L.Dense(5, name="fc1"), L.Tanh(), L.Dense(2)])
    x = torch.randn(4, 11, 3)
    d = Diagram().add("x", _signal(x)).add("net", NetworkBlock(net, outputs=["fc1"]))
    out = simulate(d.connect("x", "net"), 1.0, dt=DT, batch=4)
    flat = x.reshape(-1, 3)
    torch.testing.assert_close(out["net/out"], net(flat).reshape(4, 11, 2).detach())
    torch.testing.assert_close(out["net/fc1"], net.layer("fc1")(flat).reshape(4, 11, 5).detach())
    with pytest.raises(LayerNotFoundError, match="fc2"):
        NetworkBlock(net, outputs=["fc2"])


@pytest.mark.parametrize("cell", [L.LSTM, L.GRU])
def test_stateful_block_step_by_step_equals_the_whole_sequence_with_resets(cell):
    torch.manual_seed(1)
    net = Network([L.SequenceInput(2), cell(6, name="rnn"), L.Dense(3)])
    steps, resets = 16, {0: [5, 11], 1: [8]}
    x = torch.randn(2, steps, 2)
    reset = torch.zeros(2, steps, 1)
    expected = torch.empty(2, steps, 3)
    for case, starts in resets.items():
        reset[case, starts] = 1.0
        bounds = [0, *starts, steps]
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):  # each segment from zeros
            expected[case, a:b] = net(x[case : case + 1, a:b]).detach()[0]
    d = Diagram().add("x", _signal(x)).add("r", _signal(reset))
    d.add("net", StatefulNetworkBlock(net, reset=True))
    d.connect("x", "net/in").connect("r", "net/reset")
    out = simulate(d, (steps - 1) * DT, dt=DT, batch=2)["net/out"]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert net.state == {"rnn": None} and not net.stateful  # the network is left as it was


def test_stateful_block_with_a_sample_time_holds_its_output():
    torch.manual_seed(2)
    net = Network([L.SequenceInput(1), L.LSTM(4), L.Dense(1)])
    x = torch.randn(1, 21, 1)
    d = Diagram().add("x", _signal(x)).add("net", StatefulNetworkBlock(net, sample_time=0.2))
    out = simulate(d.connect("x", "net"), 2.0, dt=DT)["net/out"]
    expected = net(x[:, 0::2]).detach()
    torch.testing.assert_close(out[:, 0::2], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[:, 1::2], expected[:, :-1], atol=1e-5, rtol=1e-5)


def test_stateful_block_refuses_a_network_without_state():
    net = Network([L.FeatureInput(2), L.Dense(1)])
    with pytest.raises(OptionError, match="LSTM or GRU"):
        StatefulNetworkBlock(net)


@pytest.mark.parametrize("cell", [L.LSTM, L.GRU])
def test_gradients_flow_along_the_recurrent_state_as_in_the_whole_sequence(cell):
    # the last step's output depends on the first step's input only through the state
    torch.manual_seed(2)
    net = Network([L.SequenceInput(2), cell(5), L.Dense(1)]).double()
    steps = 6
    x = torch.randn(1, steps, 2, dtype=torch.float64, requires_grad=True)
    net(x)[0, -1].sum().backward()
    expected_input, expected_weights = x.grad.clone(), [p.grad.clone() for p in net.parameters()]
    x.grad = None
    net.zero_grad()
    d = Diagram().add("x", _signal(x)).add("net", StatefulNetworkBlock(net)).connect("x", "net")
    out = simulate(d, (steps - 1) * DT, dt=DT)["net/out"]
    out[0, -1].sum().backward()
    assert expected_input[0, 0].abs().sum() > 0  # a real dependence to carry
    torch.testing.assert_close(x.grad, expected_input)
    for p, g in zip(net.parameters(), expected_weights, strict=True):
        torch.testing.assert_close(p.grad, g)
    assert net.state == {next(iter(net.state)): None}  # left as it was, nothing kept


@pytest.mark.parametrize("layers, culprit", [
    ([L.LSTM(6, bidirectional=True, name="bi")], "bi"),
    ([L.Conv1d(4, 3, padding="same", name="conv"), L.LSTM(6)], "conv"),
    ([L.Conv1d(4, 3, padding="causal", name="conv"), L.LSTM(6)], "conv"),
    ([L.LSTM(6), L.SelfAttention(1, name="att")], "att"),
])  # fmt: skip
def test_networks_that_cannot_run_step_by_step_are_refused_naming_the_layer(layers, culprit):
    net = Network([L.SequenceInput(3), *layers, L.Dense(2)])
    with pytest.raises(OptionError, match=f"layer '{culprit}' .* one step at a time"):
        StatefulNetworkBlock(net)
    assert not net.stateful and all(v is None for v in net.state.values())  # left as it was


def test_step_by_step_networks_pass_the_check_with_their_mode_and_state_kept():
    net = Network([L.SequenceInput(3), L.Conv1d(4, 1), L.GRU(5), L.LayerNorm(), L.SimpleRNN(4),
                   L.Dropout(0.5), L.LSTM(3, output_mode="last"), L.Dense(2)])  # fmt: skip
    net.train()
    StatefulNetworkBlock(net)
    assert net.training and not net.stateful
