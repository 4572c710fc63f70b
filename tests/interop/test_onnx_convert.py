"""convert(): model files between formats, chosen by the extensions."""

from __future__ import annotations

import pytest
import torch

from deeptoolbox import Network, load, save
from deeptoolbox import layers as L
from deeptoolbox.errors import ModelImportError, OptionError
from deeptoolbox.interop import convert, import_onnx


def _net() -> Network:
    torch.manual_seed(0)
    return Network(
        [L.ImageInput((1, 8, 8), name="image"), L.Conv2d(4, 3, padding="same", name="conv"), L.ReLU(name="relu"),
         L.GlobalAvgPool(name="gap"), L.Dense(2, name="fc"), L.Softmax(name="prob")],
        classes=["no", "yes"],
    ).eval()  # fmt: skip


def test_saved_network_to_onnx_and_back(tmp_path):
    net = _net()
    saved = save(net, tmp_path / "net.zip")
    onnx_path = convert(saved, tmp_path / "net.onnx")
    back = convert(onnx_path, tmp_path / "back.zip")
    again = load(back).eval()
    x = torch.randn(3, 1, 8, 8)
    assert torch.allclose(again(x), net(x), atol=1e-6)
    assert again.classes == ["no", "yes"]
    assert torch.allclose(import_onnx(onnx_path)(x), net(x), atol=1e-6)


def test_unknown_extensions(tmp_path):
    with pytest.raises(ModelImportError, match=r"'\.xyz' is not a supported model format"):
        convert(tmp_path / "model.xyz", tmp_path / "out.onnx")
    saved = save(_net(), tmp_path / "net.zip")
    with pytest.raises(OptionError, match=r"'\.abc' is not a supported model format"):
        convert(saved, tmp_path / "out.abc")
