"""LSTM/GRU with a padding mask give what running each unpadded sequence alone gives."""

import pytest
import torch

from deeptoolbox import Network, analyze
from deeptoolbox import layers as L


def padded(sequences, length, side):
    x = torch.zeros(len(sequences), length, sequences[0].shape[1])
    mask = torch.zeros(len(sequences), length)
    for i, s in enumerate(sequences):
        span = slice(0, len(s)) if side == "right" else slice(length - len(s), length)
        x[i, span], mask[i, span] = s, 1
    return x, mask


@pytest.mark.parametrize("cell", [L.LSTM, L.GRU])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("side", ["right", "left"])
def test_masked_outputs_equal_unpadded_runs(cell, bidirectional, side):
    torch.manual_seed(0)
    sequences = [torch.randn(t, 3) for t in (5, 2, 7)]
    x, mask = padded(sequences, 7, side)
    for mode in ("sequence", "last"):
        layer = cell(4, output_mode=mode, bidirectional=bidirectional, has_padding_mask=True)
        layer.build([(None, 3), (None, 1)])
        out = layer(x, mask)
        for i, s in enumerate(sequences):
            alone = layer(s.unsqueeze(0))[0]
            if mode == "last":
                torch.testing.assert_close(out[i], alone)
            else:
                where = mask[i] != 0
                torch.testing.assert_close(out[i][where], alone)
                assert torch.all(out[i][~where] == 0)


def test_mask_port_in_a_network_and_wrong_mask_size():
    net = Network(
        [
            L.SequenceInput(3, name="x"),
            L.LSTM(4, output_mode="last", has_padding_mask=True, name="lstm"),
        ]
    )
    net.add_layers(L.SequenceInput(1, name="mask")).connect("mask", "lstm/mask")
    x, mask = padded([torch.randn(4, 3), torch.randn(2, 3)], 4, "right")
    assert net(x, mask).shape == (2, 4)
    bad = Network([L.SequenceInput(3, name="x"), L.GRU(4, has_padding_mask=True, name="gru")])
    bad.add_layers(L.SequenceInput(2, name="mask")).connect("mask", "gru/mask")
    (error,) = analyze(bad).errors
    assert error.layer == "gru" and "mask input must be (T,) or (T, 1)" in error.message
