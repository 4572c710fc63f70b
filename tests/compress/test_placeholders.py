"""Compression and importers' placeholders: quantize, prune and project refuse a network with
a KerasPlaceholder (a Keras layer import_keras could not convert) with a CompressionError
naming the layer, its class and what to do, before touching any backend; the analyze column
lists the placeholder; once it is replaced by a toolbox layer, compression works."""

from __future__ import annotations

import pytest
import torch

import deeptoolbox as dtb
from deeptoolbox import layers as L
from deeptoolbox.compress import CompressionError, Quantizer, project, prune, quantize
from deeptoolbox.interop import KerasPlaceholder


def _network() -> dtb.Network:
    torch.manual_seed(0)
    placeholder = KerasPlaceholder(
        "MyScale", keras_config={"factor": 2.0}, reason="unknown class", output_size=(8,),
        input_sizes=[(8,)], weights=[{"shape": [8], "dtype": "float32"}], name="scale",
    )  # fmt: skip
    return dtb.Network([L.FeatureInput(4), L.Dense(8, name="fc"), placeholder, L.ReLU(),
                        L.Dense(2, name="out")])  # fmt: skip


MESSAGE = r"'scale' \(KerasPlaceholder: placeholder for the Keras layer MyScale.*replace_layer"


@pytest.mark.parametrize(
    ("where", "call"),
    [
        ("prune", lambda net, x: prune(net, ratio=0.25)),
        ("project", lambda net, x: project(net, x, explained_variance=0.9)),
        ("quantize", lambda net, x: quantize(net, x)),
        ("quantize", lambda net, x: Quantizer(net)),
    ],
)
def test_compression_refuses_a_keras_placeholder_naming_it(where, call):
    net = _network()
    with pytest.raises(CompressionError, match=rf"^{where}: network .*{MESSAGE}"):
        call(net, torch.randn(16, 4))
    assert isinstance(net.layer("scale"), KerasPlaceholder)  # the network is left as it was


def test_analyze_lists_the_placeholder_in_the_compression_column():
    report = dtb.analyze(_network())
    assert {issue.layer for issue in report.errors} == {"scale"}
    column = report.checks["compression"]
    assert column["scale"].startswith("quantize no backend | project no")
    assert column["fc"].startswith("quantize int8")


def test_after_replacing_the_placeholder_compression_works():
    net = _network()
    net.replace_layer("scale", L.Tanh())
    x = torch.randn(64, 4)
    pruned = prune(net, ratio=0.25).network
    assert pruned.layer("fc").units == 6
    result = project(net, x, explained_variance=1.0, layers=["out"])
    with torch.no_grad():
        torch.testing.assert_close(result.network(x), net(x), atol=1e-4, rtol=1e-4)
