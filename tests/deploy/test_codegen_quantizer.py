"""int8 code from a calibrated quantizer (deeptoolbox.compress) instead of calibration data."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from deploy_helpers import requires_cc

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.deploy import CodegenError, compile_c, generate_c


def _net() -> Network:
    torch.manual_seed(0)
    return Network(
        [
            L.FeatureInput(4, name="x"),
            L.Dense(16, name="fc1"),
            L.ReLU(name="relu"),
            L.Dense(3, name="fc2"),
        ]
    )


def test_an_uncalibrated_quantizer_or_a_wrong_object_is_refused(tmp_path):
    uncalibrated = SimpleNamespace(calibration=None)
    with pytest.raises(CodegenError, match="SimpleNamespace passed as `ranges` is not calibrated"):
        generate_c(_net(), tmp_path, precision="int8", ranges=uncalibrated, verbose=False)
    with pytest.raises(CodegenError, match="calibrated quantizer"):
        generate_c(_net(), tmp_path, precision="int8", ranges=object(), verbose=False)
    assert not tmp_path.joinpath("net.c").exists()


@requires_cc
def test_code_from_a_calibrated_quantizer_uses_its_ranges(tmp_path):
    compress = pytest.importorskip("deeptoolbox.compress", reason="needs deeptoolbox.compress")
    net = _net()
    data = torch.randn(256, 4)
    quantizer = compress.Quantizer(net)
    calibration = quantizer.calibrate(data)
    rows = {row.layer: (row.low, row.high) for row in calibration}
    for folder, ranges in (("q", quantizer), ("c", calibration), ("d", rows)):
        generate_c(
            net, tmp_path / folder, precision="int8", ranges=ranges, batch_size=32, verbose=False
        )
    weights = [(tmp_path / f / "net_weights.c").read_text() for f in ("q", "c", "d")]
    assert weights[0] == weights[1] == weights[2]
    x = torch.randn(32, 4)
    with torch.no_grad():
        want = net(x).numpy()
    got = compile_c(tmp_path / "q").predict(x.numpy())
    spread = float(want.max() - want.min())
    assert np.abs(got - want).max() < 0.05 * spread
