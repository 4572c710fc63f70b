"""Recurrent, attention and embedding layers against torch written another way."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deeptoolbox.errors import InputSizeError, SizeMismatchError
from deeptoolbox.layers import GRU, LSTM, Embedding, PositionEmbedding, SelfAttention

close = torch.testing.assert_close


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# -- LSTM and GRU ------------------------------------------------------------------------


def _reference_rnn(layer, cell: str, channels: int) -> nn.Module:
    module = nn.LSTM if cell == "lstm" else nn.GRU
    reference = module(
        channels,
        layer.hidden_size,
        num_layers=layer.num_layers,
        batch_first=True,
        bidirectional=layer.bidirectional,
    )
    reference.load_state_dict(layer.rnn.state_dict())
    return reference


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("output_mode", ["sequence", "last", "final_state"])
@pytest.mark.parametrize(
    ("bidirectional", "num_layers"), [(False, 1), (True, 1), (False, 2), (True, 2)]
)
def test_recurrent_layers_match_torch(cell, output_mode, bidirectional, num_layers):
    kind = LSTM if cell == "lstm" else GRU
    layer = kind(5, output_mode=output_mode, bidirectional=bidirectional, num_layers=num_layers)
    layer.build([(None, 3)])
    with torch.no_grad():  # biases start at 0/1: make them count
        for param in layer.rnn.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    reference = _reference_rnn(layer, cell, 3)
    x = torch.randn(2, 6, 3)
    output, state = reference(x)
    hidden = state[0] if cell == "lstm" else state
    width = 10 if bidirectional else 5
    y = layer(x)
    if output_mode == "sequence":
        close(y, output)
        assert y.shape == (2, 6, width)
        assert layer.output_shape([(None, 3)]) == (None, width)
    else:
        assert y.shape == (2, width)
        assert layer.output_shape([(None, 3)]) == (width,)
        if bidirectional and output_mode == "last":  # MATLAB's: the output's last step
            close(y, output[:, -1])
        elif bidirectional:  # forward direction's end joined with the backward direction's start
            close(y, torch.cat((output[:, -1, :5], output[:, 0, 5:]), dim=-1))
            close(y, torch.cat((hidden[-2], hidden[-1]), dim=-1))
        else:
            close(y, output[:, -1])
            close(y, hidden[-1])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_starts_as_matlab(bidirectional):
    hidden = 6
    layer = LSTM(hidden, bidirectional=bidirectional, num_layers=2)
    layer.build([(None, 4)])
    names = dict(layer.rnn.named_parameters())
    forget = slice(hidden, 2 * hidden)
    for name, param in names.items():
        param = param.detach()
        if name.startswith("bias_ih"):
            assert torch.equal(param[forget], torch.ones(hidden)), name
            rest = torch.cat((param[:hidden], param[2 * hidden :]))
            assert torch.equal(rest, torch.zeros(3 * hidden)), name
        elif name.startswith("bias_hh"):
            assert torch.equal(param, torch.zeros_like(param)), name
        elif name.startswith("weight_hh"):
            for block in param.chunk(4, 0):  # each gate's recurrent block is orthogonal
                close(block @ block.T, torch.eye(hidden), atol=1e-5, rtol=0)
        else:
            inputs = param.shape[1]
            for block in param.chunk(4, 0):  # Glorot uniform per gate block
                assert block.abs().max() <= math.sqrt(6 / (inputs + hidden))
    reverse = [n for n in names if n.endswith("_reverse")]
    assert bool(reverse) == bidirectional


def test_gru_starts_with_orthogonal_recurrent_blocks_and_zero_bias():
    layer = GRU(4)
    layer.build([(None, 3)])
    for block in layer.rnn.weight_hh_l0.detach().chunk(3, 0):
        close(block @ block.T, torch.eye(4), atol=1e-5, rtol=0)
    assert not layer.rnn.bias_ih_l0.any() and not layer.rnn.bias_hh_l0.any()


def test_recurrent_dropout_only_between_layers():
    assert LSTM(4, dropout=0.3).get_config()["dropout"] == 0.3
    layer = GRU(4, num_layers=2, dropout=0.3)
    layer.build([(None, 2)])
    assert layer.rnn.dropout == 0.3
    single = GRU(4, dropout=0.3)
    single.build([(None, 2)])
    assert single.rnn.dropout == 0.0


# -- self-attention ----------------------------------------------------------------------


def _attention_pair(channels: int = 8, heads: int = 2, **options):
    layer = SelfAttention(heads, **options)
    layer.build([(None, channels)] + ([(None,)] if layer.has_padding_mask else []))
    with torch.no_grad():
        for name, param in layer.named_parameters():
            if name.endswith("_bias"):
                param.normal_()
    reference = nn.MultiheadAttention(channels, heads, batch_first=True)
    with torch.no_grad():
        reference.in_proj_weight.copy_(
            torch.cat((layer.query_weight, layer.key_weight, layer.value_weight))
        )
        reference.in_proj_bias.copy_(
            torch.cat((layer.query_bias, layer.key_bias, layer.value_bias))
        )
        reference.out_proj.weight.copy_(layer.output_weight)
        reference.out_proj.bias.copy_(layer.output_bias)
    return layer.eval(), reference.eval()


def _mha(reference, x, **masks):
    return reference(x, x, x, need_weights=False, **masks)[0]


def test_self_attention_matches_multihead_attention():
    layer, reference = _attention_pair()
    x = torch.randn(3, 7, 8)
    close(layer(x), _mha(reference, x))


def test_causal_self_attention_matches_masked_multihead_attention():
    layer, reference = _attention_pair(causal=True)
    x = torch.randn(3, 7, 8)
    future = torch.ones(7, 7, dtype=torch.bool).triu(1)
    y = layer(x)
    close(y, _mha(reference, x, attn_mask=future))
    # a step's output does not depend on later steps
    changed = x.clone()
    changed[:, 4:] = torch.randn(3, 3, 8)
    close(layer(changed)[:, :4], y[:, :4])


@pytest.mark.parametrize("mask_shape", ["NT", "NT1"])
def test_padding_mask_matches_key_padding_mask(mask_shape):
    layer, reference = _attention_pair(has_padding_mask=True)
    assert layer.input_names == ("in", "mask")
    x = torch.randn(3, 6, 8)
    mask = torch.ones(3, 6)
    mask[0, 4:] = 0  # right padding
    mask[2, :3] = 0  # left padding
    given = mask if mask_shape == "NT" else mask.unsqueeze(-1)
    y = layer(x, given)
    close(y, _mha(reference, x, key_padding_mask=mask == 0))
    # padded steps are not attended: changing them leaves the data steps unchanged
    changed = x.clone()
    changed[0, 4:] = 100.0
    close(layer(changed, given)[0, :4], y[0, :4])


def test_left_padding_with_causal_mask_stays_finite():
    layer, reference = _attention_pair(causal=True, has_padding_mask=True)
    x = torch.randn(2, 6, 8)
    mask = torch.ones(2, 6)
    mask[1, :3] = 0  # first steps of the second sequence are padding: they see no data
    y = layer(x, mask)
    assert torch.isfinite(y).all()
    future = torch.ones(6, 6, dtype=torch.bool).triu(1)
    expected = _mha(reference, x, attn_mask=future, key_padding_mask=mask == 0)
    close(y[0], expected[0])
    close(y[1, 3:], expected[1, 3:])  # the data steps match; MultiheadAttention gives NaN before
    x.requires_grad_(True)
    layer(x, mask).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_self_attention_with_other_key_and_output_channels_by_hand():
    layer = SelfAttention(2, key_channels=4, output_channels=3)
    layer.build([(None, 6)])
    assert layer.output_shape([(None, 6)]) == (None, 3)
    assert layer.query_weight.shape == (4, 6) and layer.output_weight.shape == (3, 4)
    x = torch.randn(2, 5, 6)
    q, k, v = (
        F.linear(x, getattr(layer, f"{p}_weight"), getattr(layer, f"{p}_bias"))
        for p in ("query", "key", "value")
    )
    heads = []
    for h in range(2):
        part = slice(2 * h, 2 * h + 2)
        scores = q[..., part] @ k[..., part].transpose(1, 2) / math.sqrt(2)
        heads.append(torch.softmax(scores, dim=-1) @ v[..., part])
    expected = F.linear(torch.cat(heads, dim=-1), layer.output_weight, layer.output_bias)
    close(layer(x), expected)


def test_self_attention_heads_must_divide_input_channels():
    with pytest.raises(SizeMismatchError, match="cannot be split into 3 heads"):
        SelfAttention(3).output_shape([(None, 8)])
    with pytest.raises(SizeMismatchError, match="mask input"):
        SelfAttention(2, has_padding_mask=True).output_shape([(None, 8), (None, 2)])


# -- embeddings --------------------------------------------------------------------------


def test_embedding_looks_up_rows_for_n_t_and_n_t_1_inputs():
    layer = Embedding(10, 4, padding_index=0)
    layer.build([(None,)])
    assert layer.output_shape([(None,)]) == (None, 4)
    assert layer.output_shape([(7, 1)]) == (7, 4)
    assert torch.equal(layer.weight[0].detach(), torch.zeros(4))
    ids = torch.tensor([[0, 3, 9], [2, 2, 0]])
    expected = layer.weight.detach()[ids]
    close(layer(ids), expected)
    close(layer(ids.unsqueeze(-1).float()), expected)  # (N, T, 1) ids, as floats from data
    layer(ids).sum().backward()
    assert torch.equal(layer.weight.grad[0], torch.zeros(4))  # the padding row does not learn
    assert torch.equal(layer.weight.grad[2], torch.full((4,), 2.0))
    with pytest.raises(SizeMismatchError, match="one token id per time step"):
        layer.output_shape([(None, 3)])


def test_learned_position_embedding_adds_one_vector_per_position():
    layer = PositionEmbedding(10)
    layer.build([(None, 4)])
    assert layer.weight.shape == (10, 4) and layer.weight.requires_grad
    x = torch.randn(2, 6, 4)
    close(layer(x), x + layer.weight[:6])
    alone = PositionEmbedding(10, combine="none")
    alone.build([(None, 4)])
    y = alone(x)
    assert y.shape == (2, 6, 4)
    close(y, alone.weight[:6].expand(2, 6, 4))


@pytest.mark.parametrize("channels", [6, 5])
def test_sinusoidal_position_embedding_values(channels):
    layer = PositionEmbedding(20, kind="sinusoidal", combine="none")
    layer.build([(None, channels)])
    assert not list(layer.parameters())
    assert "weight" not in layer.state_dict()  # fixed table, rebuilt rather than saved
    y = layer(torch.zeros(1, 12, channels))[0]
    expected = torch.empty(12, channels, dtype=torch.float64)
    for pos in range(12):
        for i in range(channels):
            angle = pos / 10000 ** (2 * (i // 2) / channels)
            expected[pos, i] = math.sin(angle) if i % 2 == 0 else math.cos(angle)
    close(y.double(), expected, atol=2e-6, rtol=0)
    added = PositionEmbedding(20, kind="sinusoidal")
    added.build([(None, channels)])
    x = torch.randn(1, 12, channels)
    close(added(x), x + y)


def test_position_embedding_rejects_too_long_sequences():
    layer = PositionEmbedding(8)
    with pytest.raises(SizeMismatchError, match="length 9 exceed max_position=8"):
        layer.output_shape([(9, 4)])
    assert layer.output_shape([(8, 4)]) == (8, 4)
    layer.build([(None, 4)])
    layer.name = "positions"
    with pytest.raises(InputSizeError, match="'positions'.*length 9.*max_position=8"):
        layer(torch.zeros(1, 9, 4))
