"""Network._deferred(): bulk edits resolve sizes once, with the same results and errors."""

from __future__ import annotations

import pytest
import torch

from deeptoolbox import Network, load, save
from deeptoolbox import layers as L
from deeptoolbox.errors import NetworkError
from deeptoolbox.network._network import Network as NetworkClass


def _count_resolutions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = NetworkClass._resolve

    def counting(self: Network) -> None:
        calls.append(1)
        original(self)

    monkeypatch.setattr(NetworkClass, "_resolve", counting)
    return calls


def _branchy(net: Network) -> Network:
    net.add_layers([L.FeatureInput(3, name="x"), L.Dense(4, name="a"), L.ReLU(name="r")])
    net.add_layers(L.Dense(4, name="b")).connect("x", "b")
    net.add_layers(L.Addition(name="add")).connect("r", "add/in1").connect("b", "add/in2")
    return net.add_layers(L.Dense(2, name="out")).connect("add", "out")


def test_deferred_edits_resolve_once_with_the_same_result(monkeypatch):
    torch.manual_seed(0)
    eager = _branchy(Network())
    deferred = Network()
    calls = _count_resolutions(monkeypatch)
    with deferred._deferred():
        _branchy(deferred)
        assert deferred.output_shape("out") is None  # nothing resolved yet
    assert len(calls) == 1
    assert deferred.connections == eager.connections
    assert [deferred.output_shape(n) for n in deferred.layer_names] == [
        eager.output_shape(n) for n in eager.layer_names
    ]
    deferred.load_state_dict(eager.state_dict())
    x = torch.randn(5, 3)
    torch.testing.assert_close(deferred(x), eager(x))


def test_nested_deferral_resolves_once_when_the_outermost_ends(monkeypatch):
    net = Network()
    calls = _count_resolutions(monkeypatch)
    with net._deferred():
        with net._deferred():
            _branchy(net)
        assert calls == [] and net.output_shape("out") is None  # deferral goes on
        net.add_layers(L.Softmax(name="prob")).connect("out", "prob")
    assert calls == [1] and net.output_shape("prob") == (2,)
    net.remove_layers("prob")  # outside any block, each edit resolves again
    assert calls == [1, 1]


def test_errors_inside_a_deferred_block_still_name_the_layers():
    net = Network([L.FeatureInput(3, name="x"), L.Dense(4, name="a")])
    with pytest.raises(NetworkError, match="Port 'a/in' is already fed by 'x'"), net._deferred():
        net.add_layers(L.Dense(2, name="b"))
        net.connect("x", "a/in")
    # the block was left by an exception: the graph is resolved all the same
    assert net.output_shape("a") == (4,) and net.sources("b") == {"in": None}
    assert any(i.layer == "b" and "not connected" in i.message for i in net.issues)


def test_size_problems_found_after_a_deferred_block_name_both_layers():
    net = Network()
    with net._deferred():
        net.add_layers([L.FeatureInput(3, name="x"), L.Dense(4, name="a")])
        net.add_layers(L.Dense(5, name="b")).connect("x", "b")
        net.add_layers(L.Addition(name="add")).connect("a", "add").connect("b", "add")
    problems = [i for i in net.issues if i.layer == "add"]
    assert len(problems) == 1 and "'a' on in1" in problems[0].message
    assert "'b' on in2" in problems[0].message


def test_loading_a_network_resolves_sizes_a_fixed_number_of_times(monkeypatch, tmp_path):
    chain = [L.FeatureInput(4, name="x")]
    chain += [L.Dense(4) if k % 2 == 0 else L.ReLU() for k in range(60)]
    net = Network(chain)
    net.add_layers(L.Addition(name="add")).connect("relu_30", "add").connect("x", "add")
    net.classes = ["a", "b", "c", "d"]
    save(net, tmp_path / "net.zip")
    calls = _count_resolutions(monkeypatch)
    loaded = load(tmp_path / "net.zip")
    assert len(calls) <= 6  # not once per layer and connection (120+); half on the meta device
    assert loaded.connections == net.connections and loaded.classes == net.classes
    assert loaded.output_shape("add") == (4,) and loaded.is_initialized
    x = torch.randn(2, 4)
    torch.testing.assert_close(loaded(x), net(x))
