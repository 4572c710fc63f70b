"""NetworkLayer (MATLAB's networkLayer): a Network nested as one layer of another.

Checked: sizes come from the inner network, analyze counts its learnables, the outer file
holds the inner architecture and weights and loads back to the same outputs, freezing the
layer freezes every inner weight. ONNX export (inlined): tests/interop/test_onnx_transformer_layers.py."""

from __future__ import annotations

import json
import zipfile

import pytest
import torch

from deeptoolbox import Network, analyze, load, save, to_python
from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError
from deeptoolbox.network import NetworkLayer


def _block() -> Network:
    return Network(
        [L.SequenceInput(4), L.Dense(6, name="up"), L.ReLU(), L.Dense(4, name="down")],
        name="block",
    )


def _outer() -> Network:
    torch.manual_seed(0)
    return Network(
        [
            L.SequenceInput(3, name="x"),
            L.Dense(4, name="stem"),
            NetworkLayer(_block(), name="block"),
            L.Indexing1d("last", name="last"),
            L.Dense(2, name="head"),
        ]
    )


def test_sizes_learnables_and_outputs_are_the_inner_networks():
    net = _outer().eval()
    row = analyze(net).row("block")
    assert row.type == "NetworkLayer" and row.output_size == (None, 4)
    assert row.learnables == (4 * 6 + 6) + (6 * 4 + 4)
    inner = net.layer("block").network
    x = torch.randn(2, 5, 3)
    with torch.no_grad():
        want = net.layer("head")(inner(net.layer("stem")(x))[:, -1])
        torch.testing.assert_close(net(x), want)


def test_save_load_keeps_the_inner_architecture_and_weights(tmp_path):
    net = _outer().eval()
    net.layer("block").network.freeze("up")  # inner frozen layers travel too
    path = save(net, tmp_path / "outer.zip")
    with zipfile.ZipFile(path) as archive:
        record = json.loads(archive.read("network.json"))["layers"][2]
    assert record["type"] == "NetworkLayer"
    assert [r["name"] for r in record["config"]["network"]["layers"]] == [
        "sequenceinput_1", "up", "relu_1", "down"
    ]  # fmt: skip
    again = load(path).eval()
    x = torch.randn(3, 6, 3)
    torch.testing.assert_close(again(x), net(x), rtol=0, atol=0)
    assert again.layer("block").network.frozen_layers == ["up"]
    assert not again.layer("block").network.layer("up").weight.requires_grad


def test_freezing_the_layer_freezes_every_inner_weight():
    net = _outer().freeze("block")
    inner = net.layer("block").network
    assert all(not p.requires_grad for p in inner.parameters())
    net(torch.randn(2, 4, 3)).sum().backward()
    assert all(p.grad is None for p in inner.parameters())
    assert net.layer("stem").weight.grad is not None  # gradients still pass through
    net.unfreeze("block")
    assert all(p.requires_grad for p in inner.parameters())


def test_two_input_inner_network_has_one_port_per_input_layer():
    inner = Network(name="pair")
    inner.add_layers([L.FeatureInput(3, name="a"), L.Dense(3, name="fa"), L.Addition(name="add")])
    inner.add_layers(L.FeatureInput(3, name="b")).connect("b", "add/in2")
    layer = NetworkLayer(inner, name="pair")
    assert layer.input_names == ("a", "b")
    outer = Network(name="outer")
    outer.add_layers([L.FeatureInput(3, name="u"), layer])
    outer.add_layers(L.FeatureInput(3, name="v")).connect("v", "pair/b")
    u, v = torch.randn(2, 3), torch.randn(2, 3)
    torch.testing.assert_close(outer(u, v), inner(u, v))
    assert outer.sources("pair") == {"a": "u", "b": "v"}


def test_sizes_that_do_not_fit_and_bad_networks_are_refused():
    net = Network([L.FeatureInput(5), NetworkLayer(_block(), name="block")])
    assert "input 'sequenceinput_1' of network 'block' expects (T, 4); received (5)" in str(
        analyze(net).row("block").issues
    )
    with pytest.raises(OptionError, match="`network` must be a deeptoolbox Network"):
        NetworkLayer(torch.nn.Linear(2, 2))
    two_outputs = Network(name="two")
    two_outputs.add_layers([L.FeatureInput(2, name="x"), L.Dense(2, name="a")])
    two_outputs.add_layers(L.Dense(2, name="b")).connect("x", "b")
    with pytest.raises(OptionError, match="exactly one output"):
        NetworkLayer(two_outputs)


def test_to_python_rebuilds_the_nested_network():
    net = _outer().eval()
    namespace: dict = {}
    exec(to_python(net), namespace)  # noqa: S102 - code the toolbox just wrote
    rebuilt = namespace["build_network"]().eval()
    rebuilt.load_state_dict(net.state_dict())
    x = torch.randn(2, 4, 3)
    torch.testing.assert_close(rebuilt(x), net(x), rtol=0, atol=0)
