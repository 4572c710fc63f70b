"""int8 quantization with torchao's PT2E flow (target="torch")."""

from __future__ import annotations

import pytest
import torch

import deeptoolbox as dtb
from deeptoolbox import layers as L
from deeptoolbox.compress import Quantizer, quantize
from deeptoolbox.errors import OptionError

pytest.importorskip("torchao")


def _net_and_data():
    torch.manual_seed(0)
    net = dtb.Network([
        L.ImageInput((1, 8, 8), name="image"),
        L.Conv2d(8, 3, padding=1, name="conv"), L.BatchNorm(name="bn"), L.ReLU(name="relu"),
        L.Flatten(name="flat"), L.Dense(4, name="fc"), L.Softmax(name="softmax"),
    ], classes=list("abcd"))  # fmt: skip
    x = torch.rand(128, 1, 8, 8)
    with torch.no_grad():
        y = net.eval()(x).argmax(1)
    return net, x, y


def test_torch_target_calibrates_quantizes_and_keeps_accuracy(tmp_path):
    net, x, y = _net_and_data()
    quantizer = Quantizer(net, "torch", method="minmax")
    calibration = quantizer.calibrate(x[:64])
    assert calibration["image"].low == 0 and calibration["image"].high == pytest.approx(
        float(x[:64].max()), rel=1e-2
    )
    assert len(calibration.weight_scales["conv"]) == 8
    assert quantizer.quantizable_layers() == ["conv", "fc"]
    result = quantizer.validate((x, y), layer_errors=False)
    assert result.float_value == 1.0 and result.quantized_value >= 0.95
    qnet = quantizer.quantize(float_layers=["fc"])
    assert qnet.target == "torch" and qnet.float_layers == ["fc"]
    assert qnet(x[:3]).shape == (3, 4)
    path = qnet.save(tmp_path / "int8.pt2")
    program = torch.export.load(str(path)).module()
    torch.testing.assert_close(program(x[:5]), qnet(x[:5]))
    ops = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert any("quantize_per_tensor" in op for op in ops)


def test_torch_target_accuracy_target_mode():
    net, x, y = _net_and_data()
    qnet = quantize(net, x[:64], (x, y), target="torch", method="mse", max_accuracy_drop=0.05)
    assert qnet.metrics["accuracy_drop"] <= 0.05


def test_torch_target_refuses_methods_it_does_not_have():
    net, x, _ = _net_and_data()
    with pytest.raises(OptionError, match="target='torch'.*'minmax'.*'mse'"):
        Quantizer(net, "torch").calibrate(x, method="entropy")
