"""A Network as PyTorch tools expect it: edits through net.layers, compiled layers,
torch.export with a free batch, torch.fx, torchvision's feature extraction, init loops."""

import copy
import pickle
import warnings

import pytest
import torch
from torch import nn

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import NetworkError

close = torch.testing.assert_close


def mlp() -> Network:
    torch.manual_seed(0)
    return Network(
        [
            L.FeatureInput(16, name="x"),
            L.Dense(16, name="hidden"),
            L.ReLU(name="act"),
            L.Dense(4, name="fc"),
        ]  # fmt: skip
    )


def cnn() -> Network:
    """Strided 'same' convolutions (padding computed from the size), a branch and a join."""
    torch.manual_seed(0)
    net = Network([
        L.ImageInput((3, 16, 16), name="image"),
        L.Conv2d(8, 3, stride=2, padding="same", name="conv1"),
        L.BatchNorm(name="bn1"), L.ReLU(name="relu1"),
        L.Conv2d(8, 3, padding="same", name="conv2"), L.ReLU(name="relu2"),
        L.Addition(name="add"), L.GlobalAvgPool(name="gap"), L.Dense(5, name="fc"),
        L.Softmax(name="prob"),
    ])  # fmt: skip
    return net.connect("relu1", "add/in2").eval()


# -- net.layers[...] = ... ---------------------------------------------------------------------


def test_assigning_into_net_layers_replaces_the_layer():
    net = mlp()
    net(torch.randn(2, 16))  # compiles the execution plan
    net.layers["fc"] = nn.Linear(16, 7)
    out = net(torch.randn(3, 16))
    assert out.shape == (3, 7) and net.output_shape() == (7,)
    out.sum().backward()
    assert net.layer("fc").weight.grad is not None
    assert net.sources("fc") == {"in": "act"}
    assert "fc: Linear(in_features=16, out_features=7, bias=True) -> (7)" in repr(net)


def test_other_writes_to_net_layers_are_edits_too():
    net = mlp()
    net(torch.randn(2, 16))
    net.layers.fc = L.Dense(2)  # attribute syntax
    assert net(torch.randn(1, 16)).shape == (1, 2)
    net.layers.update({"extra": L.Dense(3)})  # a new name: added, unconnected
    assert net.sources("extra") == {"in": None}
    net.connect("fc", "extra")
    assert net(torch.randn(1, 16)).shape == (1, 3)
    del net.layers["extra"]
    assert net.layer_names == ["x", "hidden", "act", "fc"] and net.output_names == ["fc"]
    assert isinstance(net.layers.pop("fc"), L.Dense) and net.output_names == ["act"]
    with pytest.raises(NetworkError, match="cannot be replaced as a whole"):
        net.layers = nn.ModuleDict()


@pytest.mark.parametrize("duplicate", [copy.deepcopy, lambda n: pickle.loads(pickle.dumps(n))])
def test_copies_edit_themselves_not_the_original(duplicate):
    net = mlp()
    net(torch.randn(1, 16))  # the execution plan exists, and is copied too
    other = duplicate(net)
    other(torch.randn(1, 16))
    other.layers["fc"] = nn.Linear(16, 2)
    assert other(torch.randn(1, 16)).shape == (1, 2)
    assert net(torch.randn(1, 16)).shape == (1, 4) and isinstance(net.layer("fc"), L.Dense)


def test_compiled_layers_are_called_through_their_compiled_entry():
    net = mlp()
    net(torch.randn(2, 16))
    compiled = []

    def backend(graph, example_inputs):
        compiled.append(graph)
        return graph.forward

    net.layer("fc").compile(backend=backend)
    x = torch.randn(2, 16)
    out = net(x)
    assert compiled, "the layer's compiled call was bypassed"
    net.layer("fc")._compiled_call_impl = None
    close(out, net(x))


# -- torch.export, torch.fx, TorchScript --------------------------------------------------------


@pytest.mark.parametrize("build", [mlp, cnn])
def test_torch_export_with_a_free_batch_after_the_network_has_run(build):
    net = build().eval()
    size = (16,) if build is mlp else (3, 16, 16)
    net(torch.randn(4, *size))
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(net, (torch.randn(4, *size),), dynamic_shapes=(({0: batch},),))
    x = torch.randn(7, *size)
    close(program.module()(x), net(x))
    assert net._plan is not None and net(torch.randn(3, *size)).shape[0] == 3


@pytest.mark.parametrize("build", [mlp, cnn])
def test_fx_symbolic_trace_records_every_layer(build):
    net = build().eval()
    size = (16,) if build is mlp else (3, 16, 16)
    traced = torch.fx.symbolic_trace(net)
    x = torch.randn(3, *size)
    close(traced(x), net(x))
    called = [n.target for n in traced.graph.nodes if n.op == "call_module"]
    assert called == [f"layers.{name}" for name in net.layer_names if name not in ("x", "image")]


def test_fx_traces_a_network_inside_another_module():
    net = cnn()
    model = nn.Sequential(net, nn.Flatten()).eval()
    traced = torch.fx.symbolic_trace(model)
    called = [n.target for n in traced.graph.nodes if n.op == "call_module"]
    assert called[0] == "0.layers.conv1" and called[-1] == "1"
    x = torch.randn(2, 3, 16, 16)
    close(traced(x), model(x))


def test_fx_traces_recurrent_layers():
    torch.manual_seed(0)
    net = Network([L.SequenceInput(3), L.LSTM(4, name="lstm"), L.Dense(2, name="fc")]).eval()
    x = torch.randn(2, 5, 3)
    close(torch.fx.symbolic_trace(net)(x), net(x))


def test_torchvision_feature_extractor_on_a_network():
    from torchvision.models.feature_extraction import (
        create_feature_extractor,
        get_graph_node_names,
    )

    net = cnn()
    _, names = get_graph_node_names(net)
    assert names[-4:] == ["layers.add", "layers.gap", "layers.fc", "layers.prob"]
    extractor = create_feature_extractor(net, {"layers.relu2": "features", "layers.fc": "fc"})
    x = torch.randn(2, 3, 16, 16)
    features = extractor(x)
    seen = {}
    for name in ("relu2", "fc"):
        net.layer(name).register_forward_hook(lambda m, i, o, name=name: seen.update({name: o}))
    net(x)
    close(features["features"], seen["relu2"])
    close(features["fc"], seen["fc"])
    assert features["features"].shape == (2, 8, 8, 8)


def test_torch_jit_script_says_to_trace_or_export_instead():
    with pytest.raises(NetworkError, match=r"torch.jit.trace\(net, example\) or torch.export"):
        torch.jit.script(mlp())


# -- torch's layer classes and attribute names ----------------------------------------------------


def test_an_isinstance_init_loop_reaches_toolbox_layers():
    net = cnn()
    for module in net.modules():  # a typical PyTorch initialization loop
        if isinstance(module, nn.Conv2d):
            nn.init.constant_(module.weight, 0.5)
        elif isinstance(module, nn.Linear):
            nn.init.zeros_(module.weight)
            nn.init.ones_(module.bias)
    assert torch.all(net.layer("conv1").weight == 0.5)
    assert torch.all(net.layer("fc").weight == 0) and torch.all(net.layer("fc").bias == 1)


def test_toolbox_layers_have_torchs_attribute_names():
    net = cnn()
    conv, fc = net.layer("conv1"), net.layer("fc")
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (3, 8, (3, 3))
    assert (conv.stride, conv.padding, conv.dilation, conv.groups) == ((2, 2), "same", (1, 1), 1)
    assert (conv.padding_mode, conv.transposed) == ("zeros", False)
    assert (fc.in_features, fc.out_features) == (8, 5)
    assert isinstance(fc, nn.Linear) and isinstance(conv, nn.Conv2d)
    seq = L.Conv1d(4, 3, padding=1)
    assert isinstance(seq, nn.Conv1d) and seq.in_channels is None  # known once built
    seq.build([(None, 2)])
    assert (seq.in_channels, seq.out_channels, seq.padding) == (2, 4, (1,))
    up = L.TransposedConv2d(4, 2, stride=2)
    up.build([(3, 5, 5)])
    assert isinstance(up, nn.ConvTranspose2d) and (up.in_channels, up.out_channels) == (3, 4)


# -- replacing an input layer keeps the weights ---------------------------------------------------


def test_replacing_the_input_layer_keeps_every_weight_whose_size_does_not_change():
    net = cnn()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is re-initialized: no warning
        net.replace_layer("image", L.ImageInput((3, 32, 32)))
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert net(torch.randn(1, 3, 32, 32)).shape == (1, 5)


def test_layers_whose_weight_sizes_change_are_reinitialized_with_a_warning():
    torch.manual_seed(0)
    net = Network([L.ImageInput((1, 8, 8)), L.Conv2d(4, 3, padding="same", name="conv"),
                   L.Dense(3, name="fc")])  # fmt: skip
    conv = net.layer("conv").weight.clone()
    with pytest.warns(UserWarning, match=r"layers 'fc' were re-initialized") as record:
        net.replace_layer("imageinput_1", L.ImageInput((1, 6, 6)))
    assert len(record) == 1 and "'conv'" not in str(record[0].message)
    assert torch.equal(net.layer("conv").weight, conv)
    assert net.layer("fc").weight.shape == (3, 4 * 6 * 6)
