"""codegen_support: per-layer support table; and the ``deeptoolbox codegen`` command."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from deploy_helpers import requires_cc
from deploy_networks import cnn_gru, digits_cnn, lstm_classifier

import deeptoolbox as dtb
from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.cli import main
from deeptoolbox.deploy import codegen_support, supported_layer_types


def test_digits_cnn_table_says_how_each_layer_becomes_code():
    net, _ = digits_cnn()
    support = codegen_support(net)
    assert support.ok and support.issues() == []
    how = {row.name: row.how for row in support.rows}
    assert how["digits"] == "input, normalized in the code"
    assert how["conv1"] == "generated (conv2d)"
    assert how["bn1"] == "folded into 'conv1'" and how["relu1"] == "fused into 'conv1'"
    assert how["drop"] == "removed (does nothing at inference)"
    assert how["flatten"] == "view of its input (no code)"
    assert how["softmax"] == "generated (softmax)"
    assert support.streaming.startswith("no")
    text = str(support)
    assert "every layer supported" in text and "folded into 'conv1'" in text


def test_unsupported_layers_and_streaming_in_the_table():
    net = Network([L.FeatureInput(4), L.LayerNorm(name="ln"), L.Dense(2, name="fc")])
    support = codegen_support(net)
    assert not support.ok
    assert [row.name for row in support.unsupported] == ["ln"]
    assert support.row("ln").how.startswith("not supported: layer normalization")
    assert support.issues() == [("ln", f"C code generation: {support.row('ln').how}")]
    assert support.row("fc").supported
    assert codegen_support(lstm_classifier()[0]).streaming == "yes"
    assert "mixes time steps" in codegen_support(cnn_gru()[0]).streaming
    with pytest.raises(KeyError, match="nope"):
        support.row("nope")


def test_issue13_upsampling_layers_are_refused_with_a_reason():
    net = Network(
        [
            L.SequenceInput(3, length=4),
            L.TransposedConv1d(2, 3, name="up"),
            L.AdaptiveAvgPool1d(3, name="adapt"),
        ]
    )
    support = codegen_support(net)
    assert not support.ok and [row.name for row in support.unsupported] == ["up", "adapt"]
    assert support.row("up").how == (
        "not supported: 1-D transposed convolution is not supported (TransposedConv2d is)"
    )
    assert support.row("adapt").how.startswith("not supported: adaptive pooling")


def test_supported_layer_types_lists_the_issue_layers():
    names = set(supported_layer_types())
    assert {
        "Dense",
        "Conv1d",
        "Conv2d",
        "TransposedConv2d",
        "LSTM",
        "GRU",
        "BatchNorm",
        "Softmax",
        "Concatenation",
        "Dropout",
    } <= names


@requires_cc
def test_codegen_command_writes_and_checks_the_code(tmp_path, capsys):
    net = Network([L.FeatureInput(4), L.Dense(5), L.ReLU(), L.Dense(3), L.Softmax()])
    dtb.save(net, tmp_path / "model.zip")
    status = main(
        [
            "codegen",
            str(tmp_path / "model.zip"),
            "--out",
            str(tmp_path / "c"),
            "--name",
            "mlp",
            "--check",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0 and (tmp_path / "c" / "mlp.h").is_file()
    assert "checked output" in out and "flash (weights)" in out
    error = float(out.split("max abs difference ")[1].split()[0])
    assert error < 1e-5


@requires_cc
def test_codegen_command_int8_with_a_calibration_file(tmp_path, capsys):
    net = Network([L.FeatureInput(4), L.Dense(5), L.Tanh(), L.Dense(2)])
    dtb.save(net, tmp_path / "model.zip")
    np.save(tmp_path / "data.npy", torch.randn(64, 4).numpy())
    status = main(
        [
            "codegen",
            str(tmp_path / "model.zip"),
            "--out",
            str(tmp_path / "c"),
            "--precision",
            "int8",
            "--calibration",
            str(tmp_path / "data.npy"),
            "--check",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0 and "int8 vs float" in out and "checked output" in out


def test_codegen_command_reports_errors(tmp_path, capsys):
    net = Network([L.FeatureInput(4), L.LayerNorm(name="ln"), L.Dense(2)])
    dtb.save(net, tmp_path / "model.zip")
    assert main(["codegen", str(tmp_path / "model.zip"), "--out", str(tmp_path / "c")]) == 2
    assert "'ln'" in capsys.readouterr().err
    (tmp_path / "bad.npy").write_text("not numpy")
    status = main(
        [
            "codegen",
            str(tmp_path / "model.zip"),
            "--out",
            str(tmp_path / "c"),
            "--precision",
            "int8",
            "--calibration",
            str(tmp_path / "bad.npy"),
        ]
    )
    assert status == 2 and "--calibration" in capsys.readouterr().err


def _mixed_net() -> Network:
    return Network(
        [
            L.FeatureInput(4, name="x"),
            L.Dense(8, name="fc"),
            L.Dropout(0.2, name="drop"),
            L.LayerNorm(name="ln"),
            L.Dense(2, name="out"),
        ]
    )


def test_codegen_check_gives_every_layer_a_verdict():
    from deeptoolbox.deploy._support import codegen_check

    verdicts = codegen_check(_mixed_net())
    assert list(verdicts) == ["x", "fc", "drop", "ln", "out"]
    assert verdicts["fc"] == verdicts["x"] == verdicts["out"] == "yes"
    assert verdicts["drop"] == "removed"
    assert (
        verdicts["ln"]
        == "no: layer normalization is not supported (BatchNorm is, folded into convolutions)"
    )


def test_analyze_says_per_layer_whether_c_generation_supports_it():
    import deeptoolbox.network as network

    if not hasattr(network, "register_analysis_check"):
        pytest.skip("this network package has no analysis-check registry (analyze() checks)")
    analysis = dtb.analyze(_mixed_net())
    assert analysis.checks["codegen"]["ln"].startswith("no: layer normalization")
    assert analysis.row("fc").checks["codegen"] == "yes"
    assert analysis.row("drop").checks["codegen"] == "removed"
    text = str(analysis)
    assert "codegen:" in text and "no: layer normalization" in text


def test_codegen_command_help_and_bad_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["codegen", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "deeptoolbox codegen" in out and "--out" in out and "--calibration" in out
    with pytest.raises(SystemExit) as exit_info:
        main(["codegen", "model.zip"])  # --out missing
    assert exit_info.value.code == 2
    assert "--out" in capsys.readouterr().err
