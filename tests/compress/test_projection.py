"""Projection: exact with all components, learnables goal, projected layers as layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import deeptoolbox as dtb
from deeptoolbox import layers as L
from deeptoolbox.compress import (
    CompressionError,
    ProjectedDense,
    neuron_pca,
    project,
    unpack_projected,
)
from deeptoolbox.errors import LayerNotFoundError, OptionError


def _mixed_net(seed=0):
    torch.manual_seed(seed)
    image = dtb.Network([
        L.ImageInput((3, 8, 8), name="in"), L.Conv2d(16, 3, padding=1, name="conv1"),
        L.ReLU(), L.Conv2d(16, 3, padding=1, name="conv2"), L.ReLU(),
        L.Flatten(), L.Dense(32, name="fc1"), L.ReLU(), L.Dense(4, name="fc2"),
    ])  # fmt: skip
    sequence = dtb.Network([
        L.SequenceInput(6, name="in"), L.Conv1d(8, 3, padding=1, name="conv"),
        L.LSTM(12, name="lstm"), L.GRU(10, name="gru"),
        L.GlobalAvgPool(name="pool"), L.Dense(3, name="fc"),
    ])  # fmt: skip
    return image.eval(), sequence.eval()


def test_all_components_kept_gives_the_same_outputs():
    image, sequence = _mixed_net()
    x = torch.randn(64, 3, 8, 8)
    result = project(image, x, explained_variance=1.0, layers=["conv1", "conv2", "fc1", "fc2"])
    assert [r.layer for r in result.layers] == ["conv1", "conv2", "fc1", "fc2"]
    with torch.no_grad():
        torch.testing.assert_close(result.network(x), image(x), rtol=1e-4, atol=1e-4)
    s = torch.randn(16, 9, 6)
    result = project(sequence, s, explained_variance=1.0, layers=["conv", "lstm", "gru", "fc"])
    assert type(result.network.layer("lstm")).__name__ == "ProjectedLSTM"
    with torch.no_grad():
        torch.testing.assert_close(result.network(s), sequence(s), rtol=1e-4, atol=1e-4)


def test_low_rank_inputs_are_compressed_exactly():
    torch.manual_seed(0)
    net = dtb.Network([L.FeatureInput(40), L.Dense(64, name="fc"), L.ReLU(), L.Dense(3)])
    x = torch.randn(500, 5) @ torch.randn(5, 40)  # the inputs span 5 directions
    result = project(net, x, explained_variance=0.9999)
    assert result.network.layer("fc").components == 5
    assert result.layers[0].explained_variance > 0.9999
    with torch.no_grad():
        torch.testing.assert_close(result.network(x), net(x), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("goal", [0.3, 0.5, 0.7])
def test_learnables_reduction_goal_is_met(goal):
    image, _ = _mixed_net()
    result = project(image, torch.randn(128, 3, 8, 8), learnables_reduction=goal)
    counted = sum(p.numel() for p in result.network.parameters())
    assert result.learnables == counted
    assert 1 - counted / result.original_learnables >= goal
    assert 1 - counted / result.original_learnables < goal + 0.15  # not far beyond it
    assert result.learnables_reduction == pytest.approx(1 - counted / result.original_learnables)


def test_projected_networks_save_reload_export_and_unpack(tmp_path):
    pytest.importorskip("onnxruntime")
    _, sequence = _mixed_net()
    s = torch.randn(8, 7, 6)
    layers = ["conv", "lstm", "gru", "fc"]
    projected = project(sequence, s, explained_variance=0.9, layers=layers).network
    with torch.no_grad():
        expected = projected(s)
    rebuilt = dtb.Network.from_json(projected.to_json())
    rebuilt.load_state_dict(projected.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(s), expected, rtol=0, atol=0)
    dtb.save(projected, tmp_path / "projected.zip")
    with torch.no_grad():
        torch.testing.assert_close(dtb.load(tmp_path / "projected.zip").eval()(s), expected)
    path = dtb.export_onnx(projected, tmp_path / "projected.onnx")  # checked in onnxruntime
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: s.numpy()})
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-4, atol=1e-5)
    plain = unpack_projected(projected)
    assert [type(plain.layer(n)).__name__ for n in layers] == ["Conv1d", "LSTM", "GRU", "Dense"]
    with torch.no_grad():
        torch.testing.assert_close(plain(s), expected, rtol=1e-4, atol=1e-5)


def test_bounds_work_on_projected_layers():
    from deeptoolbox.robustness import estimate_output_bounds

    torch.manual_seed(0)
    net = dtb.Network([L.FeatureInput(6), L.Dense(8, name="fc"), L.ReLU(), L.Dense(2)])
    projected = project(net, torch.randn(64, 6), explained_variance=0.8, layers=["fc"]).network
    assert isinstance(projected.layer("fc"), ProjectedDense)
    center = torch.zeros(1, 6)
    for method in ("ibp", "crown"):
        bounds = estimate_output_bounds(projected, center - 0.1, center + 0.1, method=method)
        samples = center + (torch.rand(500, 6) - 0.5) * 0.2
        with torch.no_grad():
            outputs = projected(samples)
        assert bool(
            (outputs >= bounds.lower - 1e-5).all() and (outputs <= bounds.upper + 1e-5).all()
        )


def test_neuron_pca_reports_explained_variance():
    torch.manual_seed(0)
    net = dtb.Network([L.FeatureInput(10), L.Dense(4, name="fc")])
    x = torch.randn(300, 10) * torch.tensor([10.0] + [0.1] * 9)  # one dominant direction
    pca = neuron_pca(net, x)["fc"]["input"]
    assert pca.components_for(0.9) == 1
    assert float(pca.explained(10)) == pytest.approx(1.0)


def test_bad_input_is_named():
    image, _ = _mixed_net()
    x = torch.randn(8, 3, 8, 8)
    with pytest.raises(OptionError, match="exactly one"):
        project(image, x)
    with pytest.raises(OptionError, match="explained_variance"):
        project(image, x, explained_variance=1.5)
    with pytest.raises(LayerNotFoundError, match="'fc9'"):
        project(image, x, explained_variance=0.9, layers=["fc9"])
    net = dtb.Network([L.FeatureInput(4), L.Dense(4), L.LayerNorm(name="norm")])
    with pytest.raises(CompressionError, match="'norm' cannot be projected"):
        project(net, torch.randn(8, 4), explained_variance=0.9, layers=["norm"])
    from deeptoolbox.errors import InputSizeError

    with pytest.raises(InputSizeError, match="'in'"):
        project(image, torch.randn(8, 2, 8, 8), explained_variance=0.9)
