"""Bad input to C generation: clear errors naming the layer, option or value."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from deploy_helpers import requires_cc

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.deploy import (
    ActivationRanges,
    CodegenError,
    CompilerError,
    activation_ranges,
    compile_c,
    generate_c,
)
from deeptoolbox.deploy._lower_layers import window_pads
from deeptoolbox.errors import InputSizeError, OptionError


def _mlp() -> Network:
    return Network(
        [
            L.FeatureInput(4, name="x"),
            L.Dense(6, name="fc1"),
            L.ReLU(name="relu"),
            L.Dense(3, name="fc2"),
        ]
    )


class MyDense(L.Dense):
    def forward(self, x):
        return super().forward(x) * 2


def test_unsupported_layers_are_all_listed_in_one_error(tmp_path):
    net = Network(
        [
            L.SequenceInput(4, length=6),
            L.LayerNorm(name="norm"),
            torch.nn.Softplus(),
            MyDense(3, name="custom"),
            L.LSTM(3, has_padding_mask=False, name="ok_lstm"),
        ]
    )
    with pytest.raises(CodegenError) as caught:
        generate_c(net, tmp_path / "c", verbose=False)
    message = str(caught.value)
    assert "3 layer(s)" in message
    for name in ("norm", "softplus_1", "custom"):
        assert f"'{name}'" in message
    assert "subclass of Dense" in message and "ok_lstm" not in message
    assert not (tmp_path / "c").exists()


def test_a_padding_mask_is_unsupported(tmp_path):
    net = Network(L.SequenceInput(2, length=4, name="x"))
    net.add_layers(L.FeatureInput(4, name="m")).add_layers(
        L.LSTM(3, has_padding_mask=True, name="rnn")
    )
    net.connect("x", "rnn/in").connect("m", "rnn/mask")
    with pytest.raises(CodegenError, match="padding-mask"):
        generate_c(net, tmp_path, verbose=False)


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("name", "1net", "C identifier"),
        ("name", "int", "C identifier"),
        ("name", "my-net", "C identifier"),
        ("precision", "float16", "precision"),
        ("batch_size", 0, "batch_size"),
        ("batch_size", True, "batch_size"),
        ("sequence_length", -3, "sequence_length"),
    ],
)
def test_bad_options_are_refused(tmp_path, option, value, match):
    with pytest.raises(OptionError, match=match):
        generate_c(_mlp(), tmp_path, verbose=False, **{option: value})


def test_tensors_too_large_for_int_indices(tmp_path):
    net = Network([L.FeatureInput(2**16), L.Dense(4)])
    with pytest.raises(CodegenError, match="2\\*\\*31"):
        generate_c(net, tmp_path, batch_size=2**15, verbose=False)


def test_not_a_network(tmp_path):
    with pytest.raises(CodegenError, match="from_torch"):
        generate_c(torch.nn.Linear(2, 2), tmp_path, verbose=False)


def test_a_free_sequence_length_needs_sequence_length(tmp_path):
    net = Network([L.SequenceInput(3, name="signal"), L.LSTM(4, output_mode="last")])
    with pytest.raises(CodegenError, match="'signal'.*sequence_length"):
        generate_c(net, tmp_path, verbose=False)


def test_normalization_without_statistics(tmp_path):
    net = Network([L.FeatureInput(3, normalization="zscore", name="x"), L.Dense(2)])
    with pytest.raises(CodegenError, match="'x'.*compute_statistics"):
        generate_c(net, tmp_path, verbose=False)


def test_int8_needs_ranges_or_calibration_data(tmp_path):
    with pytest.raises(CodegenError, match="calibration_data"):
        generate_c(_mlp(), tmp_path, precision="int8", verbose=False)
    with pytest.raises(OptionError, match="int8"):
        generate_c(_mlp(), tmp_path, calibration_data=torch.randn(8, 4), verbose=False)


def test_calibration_data_of_the_wrong_size(tmp_path):
    with pytest.raises(InputSizeError, match="'x'.*\\(N, 4\\).*\\(8, 5\\)"):
        generate_c(
            _mlp(), tmp_path, precision="int8", calibration_data=torch.randn(8, 5), verbose=False
        )
    with pytest.raises(InputSizeError, match="1 input"):
        generate_c(
            _mlp(),
            tmp_path,
            precision="int8",
            calibration_data=[torch.randn(8, 4), torch.randn(8, 4)],
            verbose=False,
        )


def test_missing_and_malformed_ranges(tmp_path):
    with pytest.raises(CodegenError, match="range of: fc2, relu"):
        generate_c(_mlp(), tmp_path, precision="int8", ranges={"x": (-1, 1)}, verbose=False)
    with pytest.raises(CodegenError, match="min <= max"):
        ActivationRanges({"x": (2.0, 1.0)})
    with pytest.raises(CodegenError, match="pair"):
        ActivationRanges({"x": 3.0})
    with pytest.raises(CodegenError, match="ActivationRanges or a dict"):
        generate_c(_mlp(), tmp_path, precision="int8", ranges=[(0, 1)], verbose=False)


def test_ranges_alone_give_the_same_code_as_calibration_data(tmp_path):
    """The plain ranges object is all int8 generation needs (what a quantizer adapter gives)."""
    net = _mlp()
    data = torch.randn(128, 4)
    generate_c(net, tmp_path / "a", precision="int8", calibration_data=data, verbose=False)
    ranges = activation_ranges(net, data)
    assert set(ranges) >= {"x", "relu", "fc2"} and ranges["relu"][0] == 0.0
    plain = {name: tuple(pair) for name, pair in ranges.items()}
    generate_c(net, tmp_path / "b", precision="int8", ranges=plain, verbose=False)
    for file in ("net.c", "net_weights.c", "net.h"):
        assert (tmp_path / "a" / file).read_text() == (tmp_path / "b" / file).read_text()


def test_given_ranges_override_measured_ones(tmp_path):
    net = _mlp()
    data = torch.randn(64, 4)
    generate_c(net, tmp_path / "a", precision="int8", calibration_data=data, verbose=False)
    generate_c(
        net,
        tmp_path / "b",
        precision="int8",
        calibration_data=data,
        ranges={"relu": (0.0, 50.0)},
        verbose=False,
    )
    assert (tmp_path / "a" / "net_weights.c").read_text() != (
        tmp_path / "b" / "net_weights.c"
    ).read_text()


def test_padding_forms_are_read_as_before_after_pairs():
    layer = SimpleNamespace(padding=((1, 0), (0, 2)))
    assert window_pads(layer, [5, 5], [3, 3], [1, 1], [1, 1]) == [(1, 0), (0, 2)]
    layer = SimpleNamespace(padding=(1, 0, 0, 2))
    assert window_pads(layer, [5, 5], [3, 3], [1, 1], [1, 1]) == [(1, 0), (0, 2)]
    layer = SimpleNamespace(padding=(2, 1))
    assert window_pads(layer, [5, 5], [3, 3], [1, 1], [1, 1]) == [(2, 2), (1, 1)]
    layer = SimpleNamespace(padding="same")
    assert window_pads(layer, [8], [4], [2], [1]) == [(1, 1)]
    assert window_pads(layer, [8], [4], [1], [1]) == [(1, 2)]


def test_compile_c_errors(tmp_path):
    with pytest.raises(OptionError, match="codegen.json"):
        compile_c(tmp_path)
    generate_c(_mlp(), tmp_path / "c", verbose=False)
    with pytest.raises(CompilerError, match="No C compiler found"):
        compile_c(tmp_path / "c", compiler="no-such-compiler-xyz")


@requires_cc
def test_compiled_code_checks_its_inputs(tmp_path):
    generate_c(_mlp(), tmp_path / "c", verbose=False)
    code = compile_c(tmp_path / "c")
    with pytest.raises(InputSizeError, match="'x' needs 4 values"):
        code.predict(np.zeros(5, np.float32))
    with pytest.raises(InputSizeError, match="takes 1 input"):
        code.predict(np.zeros(4), np.zeros(4))
    with pytest.raises(OptionError, match="no step function"):
        code.step(np.zeros(4))
    with pytest.raises(OptionError, match="no reset function"):
        code.reset()


def test_bad_input_to_activation_ranges_and_codegen_support():
    from deeptoolbox.deploy import codegen_support

    with pytest.raises(OptionError, match="activation_ranges expects a deeptoolbox Network"):
        activation_ranges(torch.nn.Linear(2, 2), torch.randn(3, 2))
    for bad in (0, "x", True):
        with pytest.raises(OptionError, match="`sequence_length` must be a positive int"):
            activation_ranges(_mlp(), torch.randn(3, 4), sequence_length=bad)
        with pytest.raises(OptionError, match="`sequence_length` must be a positive int"):
            codegen_support(_mlp(), sequence_length=bad)
    with pytest.raises(InputSizeError, match="input 'x' must be numbers.*str"):
        activation_ranges(_mlp(), "abc")


def test_calibration_data_that_is_not_numbers(tmp_path):
    with pytest.raises(InputSizeError, match="calibration_data for input 'x' must be numbers"):
        generate_c(_mlp(), tmp_path, precision="int8", calibration_data="abc", verbose=False)


def test_a_stateful_recurrent_layer_is_unsupported(tmp_path):
    from deeptoolbox.deploy import codegen_support

    net = Network([L.SequenceInput(3, name="seq"), L.LSTM(4, name="lstm"), L.Dense(2)])
    net.layer("lstm").stateful = True
    with pytest.raises(CodegenError, match="lstm.*stateful mode is not supported"):
        generate_c(net, tmp_path, sequence_length=5, verbose=False)
    assert not codegen_support(net).row("lstm").supported
    assert not (tmp_path / "net.c").exists()


def test_codegen_command_int8_without_calibration_names_the_command_line_flag(tmp_path, capsys):
    from deeptoolbox import save
    from deeptoolbox.cli import main

    model = save(Network([L.FeatureInput(3), L.Dense(2)]), tmp_path / "m.zip")
    argv = ["codegen", str(model), "--out", str(tmp_path / "q"), "--precision", "int8"]
    assert main(argv) == 2
    message = capsys.readouterr().err
    assert "--calibration" in message and "calibration_data=" not in message
    assert not (tmp_path / "q").exists()
