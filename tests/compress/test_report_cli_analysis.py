"""The compression report, the `deeptoolbox compress` command and the analysis column."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from nets import residual_concat_net

import deeptoolbox as dtb
from deeptoolbox import layers as L
from deeptoolbox.cli import main
from deeptoolbox.compress import Quantizer, multiply_accumulates, prune, report
from deeptoolbox.errors import OptionError

pytest.importorskip("onnxruntime")


def _classifier(seed=0):
    torch.manual_seed(seed)
    net = dtb.Network([
        L.ImageInput((1, 8, 8), name="image"), L.Conv2d(8, 3, padding=1, name="conv"),
        L.ReLU(), L.Flatten(), L.Dense(32, name="fc1"), L.ReLU(), L.Dense(3, name="fc2"),
        L.Softmax(),
    ], classes=["a", "b", "c"])  # fmt: skip
    x = torch.rand(96, 1, 8, 8)
    with torch.no_grad():
        y = net.eval()(x).argmax(1)
    return net, x, y


def test_multiply_accumulates_match_a_hand_count():
    net, x, _ = _classifier()
    conv = 8 * 1 * 9 * 64  # filters x channels x kernel x positions
    dense = 512 * 32 + 32 * 3
    assert multiply_accumulates(net, [x]) == conv + dense


def test_report_of_a_pruned_network():
    net, x, y = _classifier()
    small = prune(net, ratio=0.5).network
    result = report(net, small, (x, y), batch_sizes=(1, 4), repetitions=2)
    original, compressed = result.models
    assert original.learnables == sum(p.numel() for p in net.parameters())
    assert compressed.learnables == sum(p.numel() for p in small.parameters())
    assert compressed.macs < original.macs and compressed.size_bytes < original.size_bytes
    assert original.metric == 1.0
    assert {k[1:] for k in result.latency} == {("eager", 1), ("eager", 4), ("onnxruntime", 1),
                                               ("onnxruntime", 4)}  # fmt: skip
    assert all(v > 0 for v in result.latency.values())
    text = str(result)
    assert "learnables" in text and "fc1" in text and "latency onnxruntime, batch 4" in text


def test_report_of_a_quantized_network_and_its_picture(tmp_path):
    net, x, y = _classifier()
    quantizer = Quantizer(net)
    quantizer.calibrate(x)
    qnet = quantizer.quantize()
    result = report(net, qnet, (x, y), batch_sizes=(1,), repetitions=2)
    assert result.models[1].learnables == result.models[0].learnables
    assert result.models[1].macs == result.models[0].macs
    assert ("compressed", "onnxruntime", 1) in result.latency
    assert ("compressed", "eager", 1) not in result.latency  # int8 runs in onnxruntime only
    assert result.ratio("size_bytes") > 2
    assert result.plot(tmp_path / "report.png").stat().st_size > 1000


def test_report_needs_data_or_a_sample():
    net, _, _ = _classifier()
    with pytest.raises(OptionError, match="sample"):
        report(net, net)


def test_analysis_says_what_each_layer_allows():
    analysis = dtb.analyze(residual_concat_net())
    column = analysis.checks["compression"]
    assert column["c1"] == "quantize int8 | project yes | prune 8 ch"
    assert column["bn1"].startswith("quantize folded")
    assert column["grouped"] == "quantize int8 | project no | prune 2 ch"
    assert column["fc"].endswith("prune no")  # the output layer
    assert analysis.row("c1").checks["compression"] == column["c1"]
    assert "compression:" in str(analysis)


def test_compress_command_writes_the_results(tmp_path, capsys):
    net, x, y = _classifier()
    dtb.save(net, tmp_path / "net.zip")
    data = tmp_path / "data.npz"
    np.savez(data, inputs=x.numpy(), targets=y.numpy())
    out = tmp_path / "out"
    status = main(["compress", str(tmp_path / "net.zip"), "--data", str(data), "--prune", "0.5",
                   "--quantize", "int8", "--out", str(out), "--repetitions", "2"])  # fmt: skip
    assert status == 0
    assert {p.name for p in out.iterdir()} == {"compressed.zip", "compressed-int8.onnx",
                                               "report.txt", "report.png"}  # fmt: skip
    assert dtb.load(out / "compressed.zip").layer("fc1").units == 16
    printed = capsys.readouterr().out
    assert "Compression report" in printed and "file size" in printed


def test_compress_command_errors_are_named(tmp_path, capsys):
    net, _, _ = _classifier()
    dtb.save(net, tmp_path / "net.zip")
    assert main(["compress", str(tmp_path / "net.zip"), "--data", "nothing.csv",
                 "--prune", "0.5"]) == 2  # fmt: skip
    assert "--data must be 'digits' or an existing .npz" in capsys.readouterr().err
    assert main(["compress", str(tmp_path / "net.zip"), "--data", "digits"]) == 2
    assert "at least one of --prune" in capsys.readouterr().err
    assert main(["compress", str(tmp_path / "net.zip"), "--data", "digits",
                 "--prune", "1.5"]) == 2  # fmt: skip
    assert "strictly between 0 and 1" in capsys.readouterr().err
