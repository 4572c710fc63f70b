"""int8 quantization with onnxruntime: accuracy, size, calibration methods, accuracy target."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import deeptoolbox as dtb
from deeptoolbox import layers as L
from deeptoolbox.compress import (
    CalibrationResult,
    CompressionError,
    QuantizedNetwork,
    Quantizer,
    quantize,
)
from deeptoolbox.errors import InputSizeError, LayerNotFoundError, OptionError

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def digits():
    images, labels = dtb.datasets.digits()
    data = dtb.data.ArrayDatastore(images, targets=labels)
    train_set, test_set = data.split(0.8, seed=0)
    torch.manual_seed(0)
    net = dtb.Network([
        L.ImageInput((1, 8, 8), name="image"),
        L.Conv2d(16, 3, padding=1, name="conv"), L.BatchNorm(name="bn"), L.ReLU(name="relu1"),
        L.Flatten(name="flat"), L.Dense(256, name="fc1"), L.ReLU(name="relu2"),
        L.Dense(10, name="fc2"), L.Softmax(name="softmax"),
    ], classes=data.classes, name="digits")  # fmt: skip
    options = dtb.TrainingOptions(solver="adam", initial_learn_rate=0.005, max_epochs=1,
                                  mini_batch_size=32, seed=0, verbose=False)  # fmt: skip
    dtb.train(net, train_set, "crossentropy", options)
    return net.eval(), train_set, test_set


def test_int8_is_within_one_percent_of_float_and_3_5_times_smaller(digits, tmp_path):
    net, train_set, test_set = digits
    quantizer = Quantizer(net)
    calibration = quantizer.calibrate(train_set, observations=512)
    assert {"conv", "fc1", "fc2"} <= set(calibration.layers)
    assert len(calibration["fc1"].weight_scales) == 256  # per-channel weights
    result = quantizer.validate(test_set)
    assert result.float_value > 0.85  # a trained network, so the comparison means something
    assert abs(result.drop) <= 0.01
    assert set(result.layer_errors) and max(result.layer_errors.values()) < 0.1
    float_path = quantizer.save_float(tmp_path / "float.onnx")  # the model quantized
    int8_path = quantizer.quantize().save(tmp_path / "int8.onnx")
    assert os.path.getsize(float_path) / os.path.getsize(int8_path) >= 3.5


def test_quantized_network_predicts_classifies_saves_and_reloads(digits, tmp_path):
    net, train_set, test_set = digits
    quantizer = Quantizer(net)
    quantizer.calibrate(train_set, observations=256)
    qnet = quantizer.quantize()
    x = torch.stack([test_set[i][0] for i in range(20)])
    labels, scores = qnet.classify(x)
    float_labels, float_scores = dtb.classify(net, x)
    assert np.mean(labels == float_labels) >= 0.9
    torch.testing.assert_close(scores.sum(1), torch.ones(20), atol=1e-2, rtol=0)
    assert dtb.predict(qnet, x).shape == (20, 10)
    assert qnet.evaluate(test_set)["accuracy"] > 0.8
    path = qnet.save(tmp_path / "digits-int8.onnx")
    reloaded = QuantizedNetwork.load(path)
    assert reloaded.classes == net.classes
    torch.testing.assert_close(reloaded(x), qnet(x))
    import onnx

    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    assert "ConvInteger" not in ops  # static QDQ, never quantize_dynamic


def test_a_failed_save_leaves_the_earlier_file(digits, tmp_path, monkeypatch):
    net, train_set, _ = digits
    quantizer = Quantizer(net)
    quantizer.calibrate(train_set, observations=64)
    path = tmp_path / "model.onnx"
    path.write_bytes(b"earlier")
    import deeptoolbox.compress._onnx_quant as onnx_quant

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(onnx_quant.os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        quantizer.quantize().save(path)
    assert path.read_bytes() == b"earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no temp left


def _sensitive_network():
    """fc1 has, in every unit, one huge weight on an input that is always zero: float
    results do not notice, but per-channel int8 rounds every other weight of fc1 to zero."""
    torch.manual_seed(0)
    net = dtb.Network([
        L.FeatureInput(5, name="x"), L.Dense(16, name="fc1"), L.ReLU(name="relu"),
        L.Dense(3, name="fc2"), L.Softmax(name="softmax"),
    ])  # fmt: skip
    with torch.no_grad():
        net.layer("fc1").weight[:, 4] = 1e4
    x = torch.randn(300, 5)
    x[:, 4] = 0
    with torch.no_grad():
        y = net(x).argmax(1)
    return net.eval(), x, y


def test_accuracy_target_keeps_the_sensitive_layer_in_float():
    net, x, y = _sensitive_network()
    qnet = quantize(net, x[:200], (x[200:], y[200:]), max_accuracy_drop=0.02)
    assert qnet.float_layers == ["fc1"]
    assert next(iter(qnet.sensitivity)) == "fc1"  # the most sensitive, measured alone
    assert qnet.sensitivity["fc1"] > 0.2
    assert qnet.metrics["accuracy_drop"] <= 0.02
    everything = quantize(net, x[:200], (x[200:], y[200:]), max_accuracy_drop=1.0)
    assert everything.float_layers == []
    plain = Quantizer(net)
    plain.calibrate(x[:200])
    assert plain.validate((x[200:], y[200:]), layer_errors=False).drop > 0.2


def test_calibration_methods_differ_on_data_with_outliers():
    torch.manual_seed(0)
    net = dtb.Network([L.FeatureInput(4, name="x"), L.Dense(8, name="fc"), L.ReLU(name="relu")])
    data = torch.randn(10000, 4)
    data[:3, 0] = 80.0  # three outliers among 40,000 values
    quantizer = Quantizer(net)
    ranges = {m: quantizer.calibrate(data, method=m)["x"] for m in
              ("minmax", "percentile", "entropy", "mse")}  # fmt: skip
    assert ranges["minmax"].high == pytest.approx(80.0)
    assert ranges["percentile"].high < 10 and ranges["entropy"].high < 10
    assert ranges["mse"].high <= ranges["minmax"].high
    assert len({(r.low, r.high) for r in ranges.values()}) == 4
    again = quantizer.calibrate(data, method="minmax").with_method("percentile")
    assert again["x"].high == pytest.approx(ranges["percentile"].high)


def test_calibration_result_is_a_clean_public_record(tmp_path):
    import json

    net = dtb.Network([L.FeatureInput(3, name="x"), L.Dense(4, name="fc")])
    result = Quantizer(net).calibrate(torch.randn(64, 3))
    assert isinstance(result, CalibrationResult)
    row = result["fc"]
    assert row.low <= row.minimum and row.high >= row.maximum  # minmax
    assert 0 <= row.zero_point <= 255
    q = np.clip(np.round(row.high / row.scale) + row.zero_point, 0, 255)
    assert q == 255 or row.high <= 0
    saved = json.loads(result.save(tmp_path / "ranges.json").read_text())
    assert saved["layers"]["fc"]["weight_scales"] == pytest.approx(row.weight_scales)
    assert "fc" in str(result)
    assert result.plot(tmp_path / "ranges.png").stat().st_size > 1000
    with pytest.raises(LayerNotFoundError, match="'nope'"):
        result["nope"]


def test_wrong_size_calibration_data_names_the_input_layer():
    net = dtb.Network([L.FeatureInput(4, name="features"), L.Dense(2)])
    with pytest.raises(InputSizeError, match=r"calibrate: `data`.*'features'"):
        Quantizer(net).calibrate(torch.randn(10, 3))


def test_an_image_without_its_batch_dimension_is_an_input_size_error_with_the_hint(tmp_path):
    net = dtb.Network([L.ImageInput((1, 4, 4), name="image"), L.Flatten(), L.Dense(2)])
    quantizer = Quantizer(net)
    quantizer.calibrate(torch.rand(16, 1, 4, 4))
    for qnet in (quantizer.quantize(), QuantizedNetwork.load(quantizer.quantize().save(
            tmp_path / "q.onnx"))):  # fmt: skip
        with pytest.raises(InputSizeError, match=r"'image'.*N x 1 x 4 x 4.*\(1, 4, 4\).*unsqueeze"):
            qnet.classify(torch.rand(1, 4, 4))
        with pytest.raises(InputSizeError, match=r"N x 1 x 4 x 4.*\(2, 1, 4, 5\)"):
            qnet.predict(torch.rand(2, 1, 4, 5))
        assert qnet.predict(torch.rand(3, 1, 4, 4)).shape == (3, 2)


def test_bad_options_are_named():
    net = dtb.Network([L.FeatureInput(4), L.Dense(2)])
    with pytest.raises(OptionError, match="target"):
        Quantizer(net, target="tensorrt")
    with pytest.raises(OptionError, match="method"):
        Quantizer(net, method="kl")
    with pytest.raises(LayerNotFoundError, match="'fc9'"):
        Quantizer(net, exclude=["fc9"])
    with pytest.raises(CompressionError, match="calibrate"):
        Quantizer(net).quantize()


def test_a_layer_no_backend_supports_is_named():
    @dtb.register_layer
    class NumpySquare(L.Layer):
        def forward(self, x):
            return torch.from_numpy(x.detach().cpu().numpy() ** 2)

    net = dtb.Network([L.FeatureInput(3), L.Dense(4), NumpySquare(name="numpy_square"),
                       L.Dense(2)])  # fmt: skip
    with pytest.raises(CompressionError, match=r"'numpy_square' \(NumpySquare\) cannot be"):
        Quantizer(net).calibrate(torch.randn(32, 3))
