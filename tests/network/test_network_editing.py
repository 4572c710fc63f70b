import pytest
import torch
from torch import nn

from deeptoolbox import Network, analyze
from deeptoolbox import layers as L
from deeptoolbox.errors import (
    InputSizeError,
    LayerNotFoundError,
    NetworkError,
    NotInitializedError,
    OptionError,
)


def mlp(**kwargs):
    return Network(
        [
            L.FeatureInput(4, name="x"),
            L.Dense(8, name="fc1"),
            L.ReLU(name="act"),
            L.Dense(3, name="fc2"),
        ],
        **kwargs,
    )


def test_chain_names_connections_and_sizes():
    net = mlp()
    assert net.layer_names == ["x", "fc1", "act", "fc2"]
    assert [(c.source, c.destination_port) for c in net.connections] == [
        ("x", "fc1/in"),
        ("fc1", "act/in"),
        ("act", "fc2/in"),
    ]
    assert net.input_names == ["x"] and net.output_names == ["fc2"]
    assert net.output_shape("fc1") == (8,)
    assert net.layer("fc1").weight.shape == (8, 4)


def test_generated_names_are_unique_and_follow_type():
    net = Network([L.FeatureInput(2), L.Dense(3), L.Dense(3), L.ReLU()])
    assert net.layer_names == ["featureinput_1", "dense_1", "dense_2", "relu_1"]
    net.add_layers(L.Dense(2))
    assert net.layer_names[-1] == "dense_3"


def test_dict_of_layers_names_them():
    net = Network({"inp": L.FeatureInput(2), "out": L.Dense(1)})
    assert net.layer_names == ["inp", "out"]
    assert net.layer("out").name == "out"


def test_forward_equals_manual_computation():
    net = mlp()
    x = torch.randn(5, 4)
    fc1, fc2 = net.layer("fc1"), net.layer("fc2")
    expected = torch.relu(x @ fc1.weight.T + fc1.bias) @ fc2.weight.T + fc2.bias
    torch.testing.assert_close(net(x), expected)


def test_duplicate_and_invalid_names_are_rejected():
    net = mlp()
    with pytest.raises(NetworkError, match="'fc1' already exists"):
        net.add_layers(L.Dense(2, name="fc1"))
    with pytest.raises(NetworkError, match="Layer names must"):
        net.add_layers(L.Dense(2, name="bad.name"))
    with pytest.raises(NetworkError, match="added twice"):
        layer = L.ReLU()
        Network([L.FeatureInput(2), layer, layer])
    with pytest.raises(NetworkError, match="torch.nn.Module"):
        Network([L.FeatureInput(2), "relu"])


def test_unknown_layer_suggests_close_names():
    net = mlp()
    with pytest.raises(LayerNotFoundError, match="Did you mean .*'fc1'"):
        net.layer("fc")
    with pytest.raises(KeyError):
        net.connect("nope", "fc1")


def test_connect_ports_and_errors():
    net = Network([L.FeatureInput(3, name="x"), L.Dense(3, name="a")])
    net.add_layers([L.Dense(3, name="b"), L.Addition(3, name="add")])
    net.connect("x", "b")
    with pytest.raises(NetworkError, match="has no input port 'in9'"):
        net.connect("a", "add/in9")
    net.connect("a", "add/in3")
    assert net.sources("add") == {"in1": "b", "in2": None, "in3": "a"}
    with pytest.raises(NetworkError, match="already fed by 'a'"):
        net.connect("x", "add/in3")
    net.connect("x", "add")  # first free port
    assert net.sources("add") == {"in1": "b", "in2": "x", "in3": "a"}
    with pytest.raises(NetworkError, match="no free input port"):
        net.connect("x", "add")
    with pytest.raises(NetworkError, match="one output"):
        net.connect("a/out2", "add")
    x = torch.randn(2, 3)
    a, b = net.layer("a"), net.layer("b")
    expected = (x @ b.weight.T + b.bias) + x + (x @ a.weight.T + a.bias)
    torch.testing.assert_close(net(x), expected)


def test_disconnect_and_reconnect():
    net = mlp()
    net.disconnect("act", "fc2")
    assert net.sources("fc2") == {"in": None}
    assert not net.is_initialized
    with pytest.raises(NotInitializedError, match="input port 'in' is not connected"):
        net(torch.randn(1, 4))
    net.connect("act", "fc2")
    assert net(torch.randn(1, 4)).shape == (1, 3)
    with pytest.raises(NetworkError, match="No connection"):
        net.disconnect("x", "fc2")


def test_replace_layer_keeps_connections_and_name():
    net = mlp()
    net.replace_layer("act", L.GELU())
    assert isinstance(net.layer("act"), L.GELU)
    assert net.sources("act") == {"in": "fc1"} and net.destinations("act") == ["fc2/in"]
    net.replace_layer("fc2", [L.Dense(6, name="wide"), L.Tanh(), L.Dense(2, name="head")])
    assert net.layer_names == ["x", "fc1", "act", "wide", "tanh_1", "head"]
    assert net.output_names == ["head"] and net.output_shape() == (2,)
    assert net(torch.randn(3, 4)).shape == (3, 2)


def test_replace_layer_rebuilds_when_sizes_change():
    net = mlp()
    net.replace_layer("fc1", L.Dense(16))
    assert net.layer("fc2").weight.shape == (3, 16)


def test_replace_keeps_input_order():
    net = Network([L.FeatureInput(2, name="a"), L.Dense(2, name="da"), L.Addition(name="add")])
    net.add_layers([L.FeatureInput(2, name="b"), L.Dense(2, name="db")]).connect("db", "add/in2")
    net.replace_layer("a", L.FeatureInput(2, name="a2"))
    assert net.input_names == ["a2", "b"]


def test_insert_layer_after():
    net = mlp()
    net.insert_layer("fc1", [L.BatchNorm(name="bn"), L.Dropout(0.1, name="drop")])
    assert net.sources("bn") == {"in": "fc1"}
    assert net.sources("act") == {"in": "drop"}
    assert net(torch.randn(4, 4)).shape == (4, 3)


def test_remove_layers_with_and_without_bridge():
    net = mlp()
    net.remove_layers("act", bridge=True)
    assert net.sources("fc2") == {"in": "fc1"}
    assert net(torch.randn(2, 4)).shape == (2, 3)
    net.remove_layers(["fc1"])
    assert net.sources("fc2") == {"in": None}
    assert "fc1" not in net.layer_names


def test_freeze_unfreeze_and_learn_rate_factors():
    net = mlp().freeze(["fc1"])
    assert not net.layer("fc1").weight.requires_grad
    assert net.layer("fc2").weight.requires_grad
    assert net.frozen_layers == ["fc1"]
    net.replace_layer("fc2", L.Dense(5))  # rebuild elsewhere keeps fc1 frozen
    assert not net.layer("fc1").weight.requires_grad
    net.unfreeze()
    assert all(p.requires_grad for p in net.parameters()) and net.frozen_layers == []
    net.set_learn_rate_factor(["fc1", "fc2"], 0.5)
    assert net.learn_rate_factor("fc1") == 0.5 and net.learn_rate_factor("act") == 1.0
    with pytest.raises(OptionError, match="factor"):
        net.set_learn_rate_factor("fc1", -1)


def test_classes_validation_and_output_warning():
    net = mlp(classes=["a", "b", "c"])
    assert net.classes == ["a", "b", "c"]
    with pytest.raises(OptionError, match="repeated"):
        net.classes = ["a", "a", "b"]
    with pytest.raises(OptionError, match="list of class names"):
        net.classes = "abc"
    net.classes = ["a", "b"]
    assert any("2 classes" in i.message for i in analyze(net).warnings)


def test_plain_modules_are_layers_and_sizes_are_probed():
    net = Network([L.SequenceInput(4), nn.Linear(4, 6), nn.Tanh(), L.LSTM(5)])
    assert net.output_shape("linear_1") == (None, 6)
    assert net.output_shape() == (None, 5)
    assert net(torch.randn(2, 9, 4)).shape == (2, 9, 5)


def test_input_count_and_size_errors_name_the_input_layer():
    net = Network([L.ImageInput((1, 8, 8), name="img"), L.Flatten(), L.Dense(2)])
    with pytest.raises(InputSizeError, match="takes 1 input"):
        net(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))
    with pytest.raises(InputSizeError, match="'img' expects images") as info:
        net(torch.zeros(1, 1, 9, 9))
    assert "(1, 1, 9, 9)" in str(info.value)
    with pytest.raises(InputSizeError, match="batch dimension is missing"):
        net.check_inputs([torch.zeros(1, 8, 8)])


def test_runtime_errors_name_the_failing_layer():
    net = Network([L.SequenceInput(1), L.Embedding(5, 3, name="emb"), L.Dense(2)])
    with pytest.raises(IndexError) as info:
        net(torch.tensor([[1, 7]]))
    assert any("layer 'emb'" in note for note in info.value.__notes__)


def test_execution_plan_is_compiled_once_and_invalidated_by_edits():
    net = mlp()
    net(torch.randn(1, 4))
    plan = net._plan
    net(torch.randn(1, 4))
    assert net._plan is plan and plan.chain is not None
    net.insert_layer("act", L.Dropout(0.0))
    assert net._plan is None
    net(torch.randn(1, 4))
    assert net._plan is not plan


def test_multi_output_network_returns_tuple():
    net = Network([L.FeatureInput(3, name="x"), L.Dense(2, name="a")])
    net.add_layers(L.Dense(4, name="b")).connect("x", "b")
    out_a, out_b = net(torch.randn(5, 3))
    assert out_a.shape == (5, 2) and out_b.shape == (5, 4)
    assert net.output_names == ["a", "b"]


def test_new_layers_follow_the_network_device_and_dtype():
    net = mlp().double()
    net.add_layers(L.Dense(2, name="extra")).connect("fc2", "extra")
    assert net.layer("extra").weight.dtype == torch.float64


def test_module_api_works():
    net = mlp()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["layers.fc1.weight", "layers.fc1.bias", "layers.fc2.weight", "layers.fc2.bias"]
    assert "fc1: Dense(units=8) -> (8)" in repr(net)


def test_forward_checks_input_sizes_even_when_layers_would_run():
    net = Network([L.ImageInput((1, 4, 4), name="img"), L.Flatten(), L.Dense(2)])
    with pytest.raises(InputSizeError, match="channels-last"):
        net(torch.zeros(3, 4, 4, 1))  # same element count: would run silently otherwise
    with pytest.raises(InputSizeError, match="expects a torch.Tensor"):
        net([[1.0]])
    assert net(torch.zeros(3, 1, 4, 4)).shape == (3, 2)


def test_module_dict_method_names_are_rejected_clearly():
    with pytest.raises(NetworkError, match="'train' cannot name a layer"):
        Network([L.FeatureInput(2), L.Dense(1, name="train")])


def test_insert_layer_keeps_layer_order_readable():
    net = mlp()
    net.insert_layer("fc1", L.Dropout(0.1, name="drop"))
    assert net.layer_names == ["x", "fc1", "drop", "act", "fc2"]


@pytest.mark.parametrize("dag", [False, True])
def test_layer_hooks_fire_in_both_execution_paths(dag):
    net = mlp()
    if dag:
        net.add_layers(L.Dense(2, name="side")).connect("fc1", "side")
    seen = []
    handle = net.layer("act").register_forward_hook(lambda m, i, o: seen.append(o.shape))
    net(torch.randn(3, 4))
    assert seen == [torch.Size([3, 8])]
    handle.remove()
    net(torch.randn(3, 4))
    assert len(seen) == 1
    calls = []
    global_handle = nn.modules.module.register_module_forward_hook(
        lambda m, i, o: calls.append(type(m).__name__)
    )
    try:
        net(torch.randn(3, 4))
    finally:
        global_handle.remove()
    assert "ReLU" in calls and "Dense" in calls


def test_backward_hooks_and_gradients_flow():
    net = mlp()
    grads = []
    net.layer("fc2").register_full_backward_hook(lambda m, gi, go: grads.append(go[0].shape))
    net(torch.randn(5, 4)).sum().backward()
    assert grads == [torch.Size([5, 3])]
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::torch.jit.TracerWarning")
def test_network_traces_and_compiles():
    net = mlp().eval()
    x = torch.randn(2, 4)
    traced = torch.jit.trace(net, x)
    torch.testing.assert_close(traced(x), net(x))
    compiled = torch.compile(net, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), net(x))


def test_numpy_input_to_forward_is_refused_after_a_tensor_of_the_same_size():
    net = mlp()
    net(torch.zeros(2, 4))
    with pytest.raises(InputSizeError, match="expects a torch.Tensor"):
        net(torch.zeros(2, 4).numpy())


def test_module_dict_attribute_names_are_rejected_clearly():
    for name in ("training", "_modules", "keys"):
        with pytest.raises(NetworkError, match=f"'{name}' cannot name a layer"):
            Network([L.FeatureInput(2), L.Dense(1, name=name)])
