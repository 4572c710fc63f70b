"""The public editing and inspection API: net.editing(), lazy resolution, size queries."""

from __future__ import annotations

import pytest
import torch

from deeptoolbox import Network, analyze
from deeptoolbox import layers as L
from deeptoolbox.errors import LayerNotFoundError, NetworkError
from deeptoolbox.network import _network


def _count_resolutions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = _network.resolve

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(_network, "resolve", counting)
    return calls


def _chain_call_by_call(net: Network, length: int) -> None:
    net.add_layers(L.FeatureInput(3, name="x"))
    previous = "x"
    for k in range(length):
        net.add_layers(L.Dense(3, name=f"fc{k}") if k % 2 == 0 else L.ReLU(name=f"act{k}"))
        current = net.layer_names[-1]
        net.connect(previous, current)
        previous = current


def test_a_block_of_edits_resolves_once_on_leaving(monkeypatch):
    calls = _count_resolutions(monkeypatch)
    net = Network(name="chain")
    assert calls == [1]  # the constructor resolves once (it resolved twice before)
    with net.editing():
        _chain_call_by_call(net, 40)
        assert calls == [1]  # 81 edits, no resolution yet
    assert calls == [1, 1]
    assert net.output_shape() == (3,) and net.is_initialized
    assert calls == [1, 1]  # queries after the block reuse the resolution


def test_without_a_block_each_edit_resolves(monkeypatch):
    calls = _count_resolutions(monkeypatch)
    net = Network()
    _chain_call_by_call(net, 4)
    assert len(calls) == 1 + 9  # constructor, then 5 add_layers and 4 connect calls


def test_a_query_inside_the_block_resolves_lazily_once(monkeypatch):
    net = Network()
    calls = _count_resolutions(monkeypatch)
    with net.editing():
        net.add_layers([L.FeatureInput(4, name="x"), L.Dense(6, name="fc")])
        assert calls == []
        assert net.output_sizes("fc") == {"out": (6,)}  # a size query resolves
        assert net.input_sizes("fc") == {"in": (4,)}
        assert calls == [1]
        net.add_layers(L.ReLU(name="act")).connect("fc", "act")
        assert calls == [1]
        y = net(torch.zeros(2, 4))  # forward resolves the new edits
        assert y.shape == (2, 6) and calls == [1, 1]
        net.add_layers(L.Dense(2, name="out")).connect("act", "out")
        assert analyze(net).row("out").output_size == (2,)  # analyze resolves
        assert calls == [1, 1, 1]
    assert calls == [1, 1, 1]  # nothing changed since the last query: no resolution on leaving


def test_nested_blocks_resolve_when_the_outermost_ends(monkeypatch):
    net = Network()
    calls = _count_resolutions(monkeypatch)
    with net.editing():
        with net.editing():
            net.add_layers([L.FeatureInput(2, name="x"), L.Dense(3, name="fc")])
        assert calls == []
    assert calls == [1] and net.output_shape("fc") == (3,)


def test_edits_in_a_block_give_the_same_network_as_edits_outside():
    torch.manual_seed(0)
    eager = Network()
    _chain_call_by_call(eager, 6)
    block = Network()
    with block.editing():
        _chain_call_by_call(block, 6)
    assert block.connections == eager.connections
    assert block.execution_order == eager.execution_order
    block.load_state_dict(eager.state_dict())
    x = torch.randn(4, 3)
    torch.testing.assert_close(block(x), eager(x))


def test_errors_inside_a_block_name_the_layer_and_the_block_still_resolves():
    net = Network([L.FeatureInput(3, name="x"), L.Dense(4, name="a")])
    with pytest.raises(LayerNotFoundError, match="no layer named 'nope'"), net.editing():
        net.add_layers(L.Dense(2, name="b"))
        net.connect("nope", "b")
    assert net.sources("b") == {"in": None} and net.output_shape("a") == (4,)
    assert any(i.layer == "b" and "not connected" in i.message for i in net.issues)
    with pytest.raises(NetworkError, match="Port 'a/in' is already fed by 'x'"), net.editing():
        net.connect("x", "a/in")


def test_size_problems_found_lazily_name_the_layer():
    net = Network()
    with net.editing():
        net.add_layers([L.FeatureInput(3, name="x"), L.Dense(4, name="a")])
        net.add_layers(L.Dense(5, name="b")).connect("x", "b")
        net.add_layers(L.Addition(name="add")).connect("a", "add").connect("b", "add")
        problems = [i for i in net.issues if i.layer == "add"]
    assert len(problems) == 1 and "'a' on in1" in problems[0].message
    assert net.output_sizes("add") == {"out": None}
    with pytest.raises(Exception, match="add"):
        net(torch.zeros(1, 3))


def test_queries_give_order_sizes_connections_and_names():
    net = Network(name="branchy")
    with net.editing():
        net.add_layers([L.ImageInput((1, 8, 8), name="img"), L.Flatten(name="flat")])
        net.add_layers(L.Dense(4, name="late"))
        net.add_layers(L.Dense(64, name="side")).connect("flat", "side")
        net.add_layers(L.Addition(name="add")).connect("flat", "add").connect("side", "add")
        net.connect("add", "late")
    assert net.layer_names == ["img", "flat", "late", "side", "add"]
    assert net.execution_order == ["img", "flat", "side", "add", "late"]
    assert net.input_sizes("img") == {}
    assert net.input_sizes("add") == {"in1": (64,), "in2": (64,)}
    assert net.output_sizes("flat") == {"out": (64,)} and net.output_sizes("late") == {"out": (4,)}
    pairs = [(c.source_port, c.destination_port) for c in net.connections]
    assert pairs == [
        ("img/out", "flat/in"),
        ("flat/out", "side/in"),
        ("flat/out", "add/in1"),
        ("side/out", "add/in2"),
        ("add/out", "late/in"),
    ]
    reference = net.layer("late")(torch.randn(2, 64))  # sizes agree with what runs
    assert tuple(reference.shape[1:]) == net.output_sizes("late")["out"]


def test_size_queries_name_an_unknown_layer():
    net = Network([L.FeatureInput(2, name="x"), L.Dense(1, name="fc")])
    for query in (net.input_sizes, net.output_sizes):
        with pytest.raises(LayerNotFoundError, match=r"no layer named 'f'.*Did you mean 'fc'"):
            query("f")


def test_a_cycle_leaves_layers_out_of_the_execution_order():
    net = Network([L.FeatureInput(2, name="x")])
    net.add_layers(L.Addition(name="add")).add_layers(L.Dense(2, name="fc"))
    net.connect("x", "add").connect("add", "fc").connect("fc", "add")
    assert net.execution_order == ["x"]
    assert net.input_sizes("add") == {"in1": None, "in2": None}
    assert any("cycle" in i.message for i in net.issues)


def test_resolution_leaves_device_dtype_and_trainability_of_untouched_layers_alone():
    net = Network([L.FeatureInput(3, name="x"), L.Dense(4, name="fc"), L.ReLU(name="act")])
    net.layer("fc").weight.requires_grad_(False)  # by hand, not net.freeze
    net.layer("fc").bias.data = net.layer("fc").bias.data.double()  # a deliberate mixed dtype
    net.add_layers(L.Dense(2, name="out")).connect("act", "out")
    assert net.layer("fc").weight.requires_grad is False
    assert net.layer("fc").bias.dtype == torch.float64  # not cast back by the resolution


def test_new_and_rebuilt_layers_follow_the_network_and_frozen_layers_stay_frozen():
    net = Network([L.FeatureInput(3, name="x"), L.Dense(4, name="fc1"), L.Dense(2, name="fc2")])
    net = net.double().freeze("fc2")
    with pytest.warns(UserWarning, match="'fc2' were re-initialized"):
        net.replace_layer("fc1", L.Dense(5))  # fc2 gets new weights (5 inputs)
    assert net.layer("fc1").weight.dtype == torch.float64
    assert net.layer("fc2").weight.dtype == torch.float64
    assert net.layer("fc2").weight.requires_grad is False and net.layer("fc1").weight.requires_grad
    assert net(torch.zeros(1, 3, dtype=torch.float64)).dtype == torch.float64


def test_a_copy_made_inside_a_block_resolves_its_own_edits():
    import copy

    net = Network([L.FeatureInput(2, name="x")])
    with net.editing():
        net.add_layers(L.Dense(3, name="fc")).connect("x", "fc")
        twin = copy.deepcopy(net)
    twin.add_layers(L.Dense(5, name="more")).connect("fc", "more")
    assert twin.layer("more").weight.shape == (5, 3)  # built by the edit: no block is open
    assert twin.output_shape() == (5,)
    assert net.layer_names == ["x", "fc"]
