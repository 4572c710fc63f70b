"""Crop1d / Crop2d / Crop3d, Conv1d(padding="causal") and SimpleRNN: numbers against direct
torch computations, size rules, errors, ONNX export (and import back), and output bounds."""

from __future__ import annotations

import onnx
import pytest
import torch
import torch.nn.functional as F

import deeptoolbox as dtb
from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError, SizeMismatchError
from deeptoolbox.interop import export_onnx, import_onnx
from deeptoolbox.robustness import estimate_output_bounds


def _built(layer, *shapes):
    layer.build(list(shapes))
    return layer


# -- cropping ------------------------------------------------------------------------------------
def test_crop2d_fixed_amounts_match_slicing():
    x = torch.randn(2, 3, 8, 9)
    layer = L.Crop2d(((1, 2), (3, 0)))
    assert layer.output_shape([(3, 8, 9)]) == (3, 5, 6)
    torch.testing.assert_close(layer(x), x[:, :, 1:6, 3:9])
    torch.testing.assert_close(L.Crop2d(1)(x), x[:, :, 1:7, 1:8])
    torch.testing.assert_close(L.Crop2d((2, 1))(x), x[:, :, 2:6, 1:8])


def test_crop2d_to_a_reference_centred_or_from_an_offset():
    x, ref = torch.randn(1, 2, 7, 8), torch.zeros(1, 5, 4, 5)
    centred = L.Crop2d()
    assert centred.input_names == ("in", "ref")
    assert centred.output_shape([(2, 7, 8), (5, 4, 5)]) == (2, 4, 5)
    torch.testing.assert_close(centred(x, ref), x[:, :, 1:5, 1:6])  # floor((7 - 4) / 2) = 1
    cornered = L.Crop2d(offset=(3, 2))
    torch.testing.assert_close(cornered(x, ref), x[:, :, 3:7, 2:7])


def test_crop1d_and_crop3d():
    seq = torch.randn(2, 10, 3)
    torch.testing.assert_close(L.Crop1d((2, 3))(seq), seq[:, 2:7])
    torch.testing.assert_close(L.Crop1d()(seq, torch.zeros(2, 4, 1)), seq[:, 3:7])
    assert L.Crop1d(1).output_shape([(None, 3)]) == (None, 3)  # free lengths stay free
    vol = torch.randn(1, 2, 5, 6, 7)
    torch.testing.assert_close(L.Crop3d(((0, 1), 2, (1, 3)))(vol), vol[:, :, 0:4, 2:4, 1:4])


def test_crop_errors_name_the_layer_and_the_sizes():
    with pytest.raises(
        SizeMismatchError, match=r"Crop2d: cropping .* leaves nothing .*\(3, 4, 4\)"
    ):
        L.Crop2d(2).output_shape([(3, 4, 4)])
    with pytest.raises(SizeMismatchError, match="reference size .* does not fit"):
        L.Crop2d(offset=(2, 0)).output_shape([(3, 4, 4), (1, 3, 3)])
    with pytest.raises(OptionError, match="Crop2d: `cropping` must be .* Received: cropping=-1"):
        L.Crop2d(-1)
    with pytest.raises(OptionError, match="`offset` applies to the crop-to-reference form"):
        L.Crop2d(1, offset=(0, 0))
    with pytest.raises(SizeMismatchError, match="expects images"):
        L.Crop2d(1).output_shape([(4, 3)])


def test_crop_networks_save_and_load_with_both_forms(tmp_path):
    net = dtb.Network(name="crops")
    for name, layer in {"image": L.ImageInput((2, 8, 8)), "ref": L.ImageInput((1, 5, 6)),
                        "fixed": L.Crop2d(((1, 0), (0, 1))), "to_ref": L.Crop2d(offset=(1, 1))
                        }.items():  # fmt: skip
        net.add_layers({name: layer})
    net.connect("image", "fixed").connect("fixed", "to_ref/in").connect("ref", "to_ref/ref")
    net.initialize()
    dtb.save(net, tmp_path / "crops")
    back = dtb.load(tmp_path / "crops")
    x, r = torch.randn(2, 2, 8, 8), torch.randn(2, 1, 5, 6)
    torch.testing.assert_close(back(x, r), x[:, :, 2:7, 1:7])
    assert back.layer("to_ref").offset == (1, 1)


def test_crop2d_exports_to_onnx_slice_and_imports_back_as_crop2d(tmp_path):
    net = dtb.Network([L.ImageInput((2, 8, 9)), L.Conv2d(3, 1, padding="valid"),
                       L.Crop2d(((1, 2), (3, 0)), name="crop")])  # fmt: skip
    path = export_onnx(net, tmp_path / "crop.onnx")  # checked in onnxruntime
    assert "Slice" in {node.op_type for node in onnx.load(path).graph.node}
    back = import_onnx(path)
    crops = [m.cropping for m in back.layers.values() if isinstance(m, L.Crop2d)]
    assert crops  # torch writes one Slice per axis: one Crop2d each, the same crop in all
    total = [[sum(c[axis][side] for c in crops) for side in (0, 1)] for axis in (0, 1)]
    assert total == [[1, 2], [3, 0]]
    assert not any(type(m).__name__ == "OnnxOperator" for m in back.layers.values())
    x = torch.randn(2, 2, 8, 9)
    torch.testing.assert_close(back(x), net(x), atol=1e-6, rtol=1e-6)


def test_output_bounds_pass_through_cropping_exactly():
    torch.manual_seed(0)
    net = dtb.Network([L.ImageInput((1, 6, 6)), L.Conv2d(2, 3, padding="same"), L.ReLU(),
                       L.Crop2d(((1, 2), (2, 1))), L.Flatten(), L.Dense(3)])  # fmt: skip
    lower, upper = -torch.ones(1, 1, 6, 6), torch.ones(1, 1, 6, 6)
    bounds = estimate_output_bounds(net, lower, upper, method="crown")
    samples = lower + (upper - lower) * torch.rand(500, 1, 6, 6)
    with torch.no_grad():
        out = net(samples)
    assert bool((out >= bounds.lower - 1e-5).all() and (out <= bounds.upper + 1e-5).all())


# -- causal convolution ----------------------------------------------------------------------------
def test_causal_conv1d_pads_before_by_dilation_times_kernel_minus_one():
    layer = _built(L.Conv1d(4, 3, padding="causal", dilation=2, stride=2), (None, 3))
    x = torch.randn(2, 11, 3)
    expected = F.conv1d(F.pad(x.transpose(1, 2), (4, 0)), layer.weight, layer.bias,
                        stride=2, dilation=2).transpose(1, 2)  # fmt: skip
    torch.testing.assert_close(layer(x), expected)
    assert layer.output_shape([(11, 3)]) == (6, 4)
    later = x.clone()
    later[:, 6:] += 10.0  # step t depends on steps <= t only
    torch.testing.assert_close(layer(later)[:, :3], layer(x)[:, :3])
    with pytest.raises(OptionError, match="padding"):
        L.Conv2d(4, 3, padding="causal")


def test_causal_conv1d_exports_to_onnx_and_keeps_sound_bounds(tmp_path):
    torch.manual_seed(1)
    net = dtb.Network([L.SequenceInput(2, length=9), L.Conv1d(3, 3, padding="causal",
                       dilation=2, name="causal"), L.ReLU(), L.Flatten(), L.Dense(2)])  # fmt: skip
    path = export_onnx(net, tmp_path / "causal.onnx")  # checked in onnxruntime
    ops = {node.op_type for node in onnx.load(path).graph.node}
    assert "Conv" in ops
    assert L.Conv1d.from_config(net.layer("causal").get_config()).padding == "causal"
    lower, upper = -torch.ones(1, 9, 2), torch.ones(1, 9, 2)
    bounds = estimate_output_bounds(net, lower, upper, method="crown")
    samples = lower + (upper - lower) * torch.rand(500, 9, 2)
    with torch.no_grad():
        out = net(samples)
    assert bool((out >= bounds.lower - 1e-5).all() and (out <= bounds.upper + 1e-5).all())


# -- SimpleRNN --------------------------------------------------------------------------------------
def test_simple_rnn_matches_the_recurrence_written_out():
    layer = _built(L.SimpleRNN(4), (None, 3))
    x = torch.randn(2, 5, 3)
    rnn = layer.rnn
    h = torch.zeros(2, 4)
    steps = []
    for t in range(5):
        h = torch.tanh(x[:, t] @ rnn.weight_ih_l0.T + rnn.bias_ih_l0 + h @ rnn.weight_hh_l0.T
                       + rnn.bias_hh_l0)  # fmt: skip
        steps.append(h)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), torch.stack(steps, 1))
    last = _built(L.SimpleRNN(4, output_mode="last", bidirectional=True), (None, 3))
    assert last(x).shape == (2, 8)
