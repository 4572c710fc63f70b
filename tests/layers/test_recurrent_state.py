"""LSTM/GRU: MATLAB's output_mode="last", each direction's final state, and stateful calls."""

import pytest
import torch
from torch import nn

from deeptoolbox import layers as L
from deeptoolbox.errors import InputSizeError, OptionError

close = torch.testing.assert_close


def built(cell, *, input_size=3, **options):
    torch.manual_seed(0)
    layer = cell(4, **options)
    mask = [(None, 1)] if options.get("has_padding_mask") else []
    layer.build([(None, input_size), *mask])
    return layer.eval()


def reference(layer) -> nn.Module:
    """The plain torch recurrent layer with the same weights."""
    kind = nn.LSTM if isinstance(layer, L.LSTM) else nn.GRU
    rnn = kind(layer.rnn.input_size, layer.hidden_size, num_layers=layer.num_layers,
               batch_first=True, bidirectional=layer.bidirectional)  # fmt: skip
    rnn.load_state_dict(layer.rnn.state_dict())
    return rnn.eval()


@pytest.mark.parametrize("cell", [L.LSTM, L.GRU])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_bidirectional_last_is_the_last_step_of_the_output_sequence_as_in_matlab(cell, num_layers):
    layer = built(cell, output_mode="last", bidirectional=True, num_layers=num_layers)
    x = torch.randn(2, 6, 3)
    with torch.no_grad():
        sequence, _ = reference(layer)(x)
        # the backward half at the last step: the backward direction run on that step alone
        backward = reference(layer)(x[:, -1:])[0][:, 0, 4:] if num_layers == 1 else None
        out = layer(x)
    close(out, sequence[:, -1])
    if backward is not None:
        close(out[:, 4:], backward)
    assert out.shape == (2, 8)


@pytest.mark.parametrize("cell", [L.LSTM, L.GRU])
def test_final_state_mode_gives_each_directions_final_hidden_state(cell):
    layer = built(cell, output_mode="final_state", bidirectional=True)
    x = torch.randn(2, 6, 3)
    with torch.no_grad():
        _, state = reference(layer)(x)
        hidden = state[0] if cell is L.LSTM else state
        expected = torch.cat((hidden[-2], hidden[-1]), dim=-1)
        close(layer(x), expected)
        sequence = reference(layer)(x)[0]
    assert not torch.allclose(layer(x)[:, 4:], sequence[:, -1, 4:])  # the modes differ


@pytest.mark.parametrize("cell", [L.LSTM, L.GRU])
@pytest.mark.parametrize("side", ["right", "left"])
def test_masked_last_is_the_output_at_each_sequences_last_real_step(cell, side):
    layer = built(cell, output_mode="last", bidirectional=True, has_padding_mask=True)
    final = built(cell, output_mode="final_state", bidirectional=True, has_padding_mask=True)
    lengths, total = (5, 2, 7), 7
    sequences = [torch.randn(t, 3) for t in lengths]
    x, mask = torch.zeros(3, total, 3), torch.zeros(3, total)
    for i, s in enumerate(sequences):
        span = slice(0, len(s)) if side == "right" else slice(total - len(s), total)
        x[i, span], mask[i, span] = s, 1
    with torch.no_grad():
        out, out_final = layer(x, mask), final(x, mask)
        for i, s in enumerate(sequences):
            sequence, state = reference(layer)(s.unsqueeze(0))
            hidden = state[0] if cell is L.LSTM else state
            close(out[i], sequence[0, -1])
            close(out_final[i], torch.cat((hidden[-2, 0], hidden[-1, 0])))


@pytest.mark.parametrize("cell", [L.LSTM, L.GRU])
def test_stateful_calls_continue_where_the_last_one_ended(cell):
    layer = built(cell, output_mode="sequence", num_layers=2)
    x = torch.randn(2, 9, 3)
    with torch.no_grad():
        whole = layer(x)
        layer.stateful = True
        pieces = torch.cat([layer(x[:, :4]), layer(x[:, 4:5]), layer(x[:, 5:])], dim=1)
        close(pieces, whole)
        _, state = reference(layer)(x)
    hidden = state[0] if cell is L.LSTM else state
    close(layer.get_state()["hidden"], hidden.transpose(0, 1))
    layer.reset_state()
    with torch.no_grad():
        close(layer(x), whole)  # zeros again after reset_state


def test_stateful_last_mode_and_masks_keep_each_sequences_last_real_state():
    layer = built(L.LSTM, output_mode="last", has_padding_mask=True)
    layer.stateful = True
    x, mask = torch.randn(2, 5, 3), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1.0]])
    with torch.no_grad():
        first = layer(x, mask)
        state = layer.get_state()
        close(state["hidden"][:, -1], first)  # the state after each sequence's last real step
        second = layer(x[:, :2], torch.ones(2, 2))
        plain = built(L.LSTM, output_mode="last")
        joined = torch.cat([x[:1, :3], x[:1, :2]], dim=1)
        close(second[0], plain(joined)[0])


def test_state_from_predict_under_inference_mode_can_be_used_with_autograd():
    layer = built(L.GRU)
    layer.stateful = True
    with torch.inference_mode():
        layer(torch.randn(2, 3, 3))
    assert layer.get_state()["hidden"].shape == (2, 1, 4)
    layer.train()
    layer(torch.randn(2, 3, 3)).sum().backward()
    assert layer.rnn.weight_ih_l0.grad is not None


def test_state_batch_mismatch_and_bad_states_are_refused_clearly():
    layer = built(L.LSTM, name="lstm")
    layer.stateful = True
    layer(torch.randn(4, 3, 3))
    with pytest.raises(InputSizeError, match="state for a batch of 4 sequences; this batch has 2"):
        layer(torch.randn(2, 3, 3))
    with pytest.raises(OptionError, match=r"\['hidden', 'cell'\]"):
        layer.set_state({"hidden": torch.zeros(2, 1, 4)})
    with pytest.raises(OptionError, match=r"must be \(N, 1, 4\).*received \(2, 4\)"):
        layer.set_state({"hidden": torch.zeros(2, 4), "cell": torch.zeros(2, 4)})
    layer.set_state({"hidden": torch.ones(2, 1, 4), "cell": torch.zeros(2, 1, 4)})
    assert layer(torch.randn(2, 3, 3)).shape == (2, 3, 4)


def test_state_is_not_saved_in_the_state_dict():
    layer = built(L.LSTM)
    layer.stateful = True
    layer(torch.randn(2, 3, 3))
    assert layer.get_state() is not None
    assert not [k for k in layer.state_dict() if "state" in k]
