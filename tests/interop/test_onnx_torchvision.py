"""torchvision models (random weights, nothing downloaded) exported by torch, imported with
import_onnx, and compared with torch.

Tolerance: |network - torch| <= 1e-4 * max|torch| + 1e-5 (float32, the same operations in a
different order). Files are written by torch's TorchScript exporter at the opsets older tools
use (opset 11 files are upgraded by import_onnx), one with its initializers listed among the
graph inputs as older exporters do.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision

from deeptoolbox import analyze
from deeptoolbox.interop import import_onnx

MODELS = {
    # name: (constructor options, opset, initializers among the inputs)
    "squeezenet1_1": ({}, 11, False),
    "resnet18": ({}, 13, True),
    "mobilenet_v2": ({}, 13, False),
    "googlenet": ({"aux_logits": False, "init_weights": True}, 17, False),
}


def _export(name: str, path) -> torch.nn.Module:
    options, opset, as_inputs = MODELS[name]
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None, **options).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.randn(1, 3, 64, 64),), str(path), dynamo=False, opset_version=opset,
            input_names=["image"], output_names=["scores"],
            dynamic_axes={"image": {0: "batch"}, "scores": {0: "batch"}},
            keep_initializers_as_inputs=as_inputs,
        )  # fmt: skip
    return model


def _check(name: str, tmp_path) -> None:
    path = tmp_path / f"{name}.onnx"
    model = _export(name, path)
    net = import_onnx(path).eval()
    assert analyze(net).ok
    assert net.input_names == ["image"]
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = model(x), net(x)
    scale = float(expected.abs().max())
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4 * scale + 1e-5)
    kinds = {type(m).__name__ for m in net.layers.values()}
    assert {"Conv2d", "ImageInput"} <= kinds  # convolutions became toolbox layers


@pytest.mark.slow
@pytest.mark.parametrize("name", ["squeezenet1_1", "resnet18", "mobilenet_v2", "googlenet"])
def test_torchvision_round_trip(name, tmp_path):
    _check(name, tmp_path)
