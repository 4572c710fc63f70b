"""from_torch on models that compute tensors from their parameters alone (relative position biases)
and fold the batch size into other dimensions: Swin, MaxViT, a Hugging Face ViT."""

import warnings

import pytest
import torch

import deeptoolbox as dtb
from deeptoolbox.errors import OptionError
from deeptoolbox.interop import from_torch
from deeptoolbox.interop._operators import OpaqueModule, TorchFunction

torchvision = pytest.importorskip("torchvision")


def _convert(module, x, *, dropped: str | None = None):
    """from_torch without an opaque layer; ``dropped`` names the training-only layers that
    conversion through torch.export must warn about (None: no warning at all)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = from_torch(module, x)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    if dropped is None:
        assert messages == []
    else:
        assert len(messages) == 1 and dropped in messages[0] and "not in the network" in messages[0]
    kinds = [type(net.layer(name)) for name in net.layer_names]
    assert OpaqueModule not in kinds
    return net


def _check_outputs_and_round_trip(net, module, x, tmp_path):
    with torch.no_grad():
        expected = module(x)
        torch.testing.assert_close(net.eval()(x), expected, atol=1e-5, rtol=0)
        dtb.save(net, tmp_path / "net.zip")
        loaded = dtb.load(tmp_path / "net.zip").eval()
        torch.testing.assert_close(loaded(x), expected, atol=1e-5, rtol=0)


def _trains(net, x, shape):
    """One SGD step changes the network's parameter of this shape (gradients reach it)."""
    tables = [p for p in net.parameters() if tuple(p.shape) == shape]
    assert tables, f"no parameter of shape {shape}"
    before = [t.detach().clone() for t in tables]
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    net.train()
    net(x).square().mean().backward()
    optimizer.step()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in tables)
    assert all(not torch.equal(b, t) for b, t in zip(before, tables, strict=True))


def _expressions(net):
    found = []
    for name in net.layer_names:
        layer = net.layer(name)
        if isinstance(layer, TorchFunction):
            found += [a for a in [*layer.arguments, *layer.keywords.values()] if "call" in str(a)]
    return found


@pytest.mark.slow
def test_swin_traces_into_layers_with_a_trainable_bias_table(tmp_path):
    torch.manual_seed(0)
    module = torchvision.models.swin_t(weights=None).eval()
    net = _convert(module, torch.randn(1, 3, 64, 64), dropped="StochasticDepth")
    assert len(net.layer_names) > 50
    _check_outputs_and_round_trip(net, module, torch.randn(3, 3, 64, 64), tmp_path)
    assert _expressions(net)  # the bias is computed from the table at run time
    _trains(net, torch.randn(2, 3, 64, 64), (169, 3))


@pytest.mark.slow
def test_maxvit_traces_into_layers_with_a_trainable_bias_table(tmp_path):
    torch.manual_seed(0)
    module = torchvision.models.maxvit_t(weights=None).eval()
    net = _convert(module, torch.randn(1, 3, 224, 224))
    assert len(net.layer_names) > 50
    _check_outputs_and_round_trip(net, module, torch.randn(2, 3, 224, 224), tmp_path)
    assert _expressions(net)
    _trains(net, torch.randn(1, 3, 224, 224), (169, 2))


def test_hugging_face_vit_traces_into_layers(tmp_path):
    transformers = pytest.importorskip("transformers")
    from deeptoolbox.hub._pretrained import _Logits

    config = transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=3,
    )  # fmt: skip
    torch.manual_seed(0)
    module = _Logits(transformers.ViTForImageClassification(config)).eval()
    net = _convert(module, torch.randn(1, 3, 32, 32))
    assert len(net.layer_names) > 50
    _check_outputs_and_round_trip(net, module, torch.randn(3, 3, 32, 32), tmp_path)
    _trains(net, torch.randn(2, 3, 32, 32), (1, 1, 32))  # the class token, expanded per batch


class _Biased(torch.nn.Module):
    """A bias gathered from a table by an index buffer, as relative position biases are."""

    def __init__(self) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(torch.randn(5, 2))
        self.register_buffer("index", torch.tensor([[0, 4], [3, 1]]))

    def forward(self, x):
        bias = self.table[self.index.view(-1)].view(2, 2, 2).permute(2, 0, 1).sum(0)
        return x @ bias + self.table.sum()


def test_a_parameter_expression_is_stored_evaluated_and_trained(tmp_path):
    module = _Biased()
    net = _convert(module, torch.randn(1, 2))
    x = torch.randn(4, 2)
    _check_outputs_and_round_trip(net, module, x, tmp_path)
    (call,) = [a for a in _expressions(net) if isinstance(a, dict)][:1]
    assert call["call"].startswith("torch.Tensor.") and call["args"]
    _trains(net, x, (5, 2))


def test_a_call_outside_the_allowed_namespaces_is_refused():
    with pytest.raises(OptionError, match=r"`call` must name a function in .*'os\.system'"):
        TorchFunction(
            "operator.add", arguments=[{"input": 0}, {"call": "os.system", "args": ["ls"]}]
        )
    with pytest.raises(OptionError, match="a call must be"):
        TorchFunction("operator.add", arguments=[{"input": 0}, {"call": "torch.ones", "args": 1}])


@pytest.mark.parametrize(
    "name",
    ["torch.save", "torch.load", "torch.from_file", "operator.call", "torch.Tensor.__class__"],
)
def test_stored_names_cannot_reach_files_processes_or_arbitrary_callables(name):
    # a network file is data: a crafted one must not write files or escape through
    # operator.call(getattr(...)) chains when it is loaded and run
    with pytest.raises(OptionError, match="must name a function"):
        TorchFunction(name, arguments=[{"input": 0}])
    with pytest.raises(OptionError, match="must name a function"):
        TorchFunction("operator.add", arguments=[{"input": 0}, {"call": name, "args": []}])


def test_stored_getattr_reads_public_attributes_only():
    layer = TorchFunction("builtins.getattr", arguments=[{"input": 0}, "__class__"])
    with pytest.raises(OptionError, match="public attributes only"):
        layer(torch.zeros(2, 3))
    shape = TorchFunction("builtins.getattr", arguments=[{"input": 0}, "shape"])
    assert shape(torch.zeros(2, 3)) == torch.Size([2, 3])
