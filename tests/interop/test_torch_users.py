"""Issue 25: from_torch and the PyTorch files, tried on models a PyTorch engineer writes.

The models: functional ops in ``forward`` (with ``F.dropout`` and an ``if self.training:``
branch), two inputs, a dict output, an LSTM returning ``(output, (h, c))``, a timm-style model
(``forward_features`` / ``forward_head`` / ``reset_classifier``, drop path), torchvision's
ResNet-18 and ``nn.TransformerEncoder``; plus shared weights (a siamese encoder, a weight-tied
language model) and ``weight_norm``. Every check compares against the original module.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import deeptoolbox as dtb
from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError
from deeptoolbox.interop import (
    export_onnx,
    export_pytorch,
    from_torch,
    load_original_state_dict,
    original_state_dict,
    original_state_dict_keys,
)
from deeptoolbox.interop._operators import OpaqueModule
from deeptoolbox.interop.torch._keys import untied, warn_untied
from deeptoolbox.layers import ModeSwitch

TOLERANCE = 1e-5


def _close(a: torch.Tensor, b: torch.Tensor, tolerance: float = TOLERANCE) -> bool:
    return a.shape == b.shape and float((a - b).abs().max()) <= tolerance * max(
        1.0, float(b.abs().max())
    )


def _kinds(net: dtb.Network) -> set[str]:
    return {type(layer).__name__ for layer in net.layers.values()}


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# -- the models -----------------------------------------------------------------------------------
class FunctionalNet(nn.Module):
    """Functional calls in forward, F.dropout(..., self.training) and a training-only branch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(F.max_pool2d(self.conv(x), 2))
        h = torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)
        h = F.dropout(h, 0.5, self.training)
        if self.training:
            h = h + 0.1 * torch.randn_like(h)
        return self.fc(h)


class TwoInputs(nn.Module):
    """An image and a feature vector."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.tabular = nn.Linear(3, 4)  # not `meta`: torch.fx's GraphModule has a .meta dict
        self.head = nn.Linear(8, 2)

    def forward(self, image: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        h = self.conv(image).mean((2, 3))
        return self.head(torch.cat([h, torch.relu(self.tabular(features))], dim=1))


class DictHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(3, 6)
        self.classifier = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = torch.tanh(self.body(x))
        return {"logits": self.classifier(features), "features": features}


class LSTMModel(nn.Module):
    def __init__(self, num_layers: int = 1) -> None:
        super().__init__()
        self.lstm = nn.LSTM(3, 4, num_layers=num_layers, batch_first=True)

    def forward(self, x: torch.Tensor):
        return self.lstm(x)


def _drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """timm's drop_path: a plain function that fx traces into."""
    if p == 0.0 or not training:
        return x
    keep = 1 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask.div_(keep)


class TimmStyle(nn.Module):
    """timm's model interface: forward_features / forward_head, get_classifier and
    reset_classifier, residual blocks with drop path."""

    def __init__(self, num_classes: int = 5, drop_path_rate: float = 0.2) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.drop_path_rate = drop_path_rate
        self.num_features = 8
        self.head = nn.Linear(8, num_classes)

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        self.head = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return torch.relu(x + _drop_path(self.block(x), self.drop_path_rate, self.training))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean((2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class TokenEncoder(nn.Module):
    """Token ids and a padding mask through nn.TransformerEncoder."""

    def __init__(self, norm_first: bool = False, activation: str = "relu") -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 16)
        layer = nn.TransformerEncoderLayer(
            16, 2, 32, batch_first=True, norm_first=norm_first, activation=activation
        )
        norm = nn.LayerNorm(16) if norm_first else None
        self.encoder = nn.TransformerEncoder(
            layer, 2, norm=norm, enable_nested_tensor=not norm_first
        )
        self.fc = nn.Linear(16, 3)

    def forward(self, tokens: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        return self.fc(self.encoder(self.embed(tokens), src_key_padding_mask=padding))


class Siamese(nn.Module):
    """One encoder applied to two inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 4))
        self.head = nn.Linear(4, 1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.head((self.encoder(a) - self.encoder(b)).abs())


class TiedLanguageModel(nn.Module):
    """Output projection tied to the token embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(16, 8)
        self.mix = nn.Linear(8, 8)
        self.out = nn.Linear(8, 16, bias=False)
        self.out.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.mix(self.embed(tokens))))


def _tokens(batch: int, length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 20, (batch, length), generator=generator)
    padding = torch.zeros(batch, length, dtype=torch.bool)
    padding[-1, length - 2 :] = True  # the last sequence is padded at its end
    return tokens, padding


def _sgd_step(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
    optimizer = torch.optim.SGD(module.parameters(), lr=0.5)
    optimizer.zero_grad()
    module(*inputs).square().mean().backward()
    optimizer.step()


# -- item 1: training-mode behaviour --------------------------------------------------------------
def test_f_dropout_and_a_training_branch_keep_their_training_behaviour():
    torch.manual_seed(0)
    module = FunctionalNet()
    net = from_torch(module.eval(), torch.randn(2, 3, 8, 8))
    assert isinstance(net.layer("dropout"), L.Dropout)  # was TorchFunction(training=False)
    assert "ModeSwitch" in _kinds(net)  # both sides of `if self.training:`
    x = torch.randn(4, 3, 8, 8)
    net.train()
    module.train()
    assert not torch.equal(net(x), net(x))  # dropout and noise in training
    for seed in (1, 2):  # exactly the original's training outputs, given the same random state
        torch.manual_seed(seed)
        expected = module(x)
        torch.manual_seed(seed)
        assert _close(net(x), expected)
    net.eval()
    module.eval()
    assert torch.equal(net(x), net(x)) and _close(net(x), module(x))


def test_training_behaviour_survives_save_and_load(tmp_path):
    torch.manual_seed(0)
    module = FunctionalNet()
    net = from_torch(module.eval(), torch.randn(2, 3, 8, 8))
    again = dtb.load(dtb.save(net, tmp_path / "functional.zip"))
    x = torch.randn(3, 3, 8, 8)
    torch.manual_seed(5)
    expected = module.train()(x)
    torch.manual_seed(5)
    assert _close(again.train()(x), expected)
    assert _close(again.eval()(x), module.eval()(x))


def test_timm_style_drop_path_is_kept_in_training():
    torch.manual_seed(0)
    module = TimmStyle().eval()
    net = from_torch(module, torch.randn(2, 3, 8, 8))
    assert "ModeSwitch" in _kinds(net) and "OpaqueModule" not in _kinds(net)
    x = torch.randn(6, 3, 8, 8)
    module.train()
    net.train()
    torch.manual_seed(3)
    expected = module(x)
    torch.manual_seed(3)
    assert _close(net(x), expected)  # same rows dropped, same batch statistics


class AuxiliaryInTraining(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.aux = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor):
        return (self.fc(x), self.aux(x)) if self.training else self.fc(x)


def test_training_only_outputs_are_refused_loudly_and_the_module_kept_whole():
    module = AuxiliaryInTraining().eval()
    with pytest.warns(UserWarning, match="differently made results in training"):
        net = from_torch(module, torch.randn(2, 3))
    assert isinstance(net.layer("module"), OpaqueModule)  # runs the module's own code
    x = torch.randn(4, 3)
    assert _close(net.eval()(x), module(x))


# -- item 2: shared weights -----------------------------------------------------------------------
def test_siamese_encoder_keeps_one_set_of_weights_and_trains_as_one():
    torch.manual_seed(0)
    module = Siamese()
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    net = from_torch(module, (a, b))
    assert _count(net) == _count(module) == 54  # was 89 parameters for 49, or here 84 for 54
    assert net.layer("encoder_0").weight is net.layer("encoder_0_1").weight
    _sgd_step(module, (a, b))
    _sgd_step(net, (a, b))
    assert _close(net(a, b), module(a, b))


def test_tied_language_model_stays_tied_through_save_and_load(tmp_path):
    torch.manual_seed(0)
    module = TiedLanguageModel()
    tokens = torch.randint(0, 16, (2, 7))
    net = from_torch(module, tokens)
    assert _count(net) == _count(module)
    assert net.layer("out").weight is net.layer("embed").weight
    again = dtb.load(dtb.save(net, tmp_path / "tied.zip"))
    assert again.layer("out").weight is again.layer("embed").weight
    assert _count(again) == _count(module)
    _sgd_step(module, (tokens,))
    _sgd_step(again, (tokens,))
    assert _close(again(tokens), module(tokens))


def test_copies_of_a_shared_tensor_are_named_in_a_warning():
    module = Siamese()
    net = from_torch(module, (torch.randn(2, 4), torch.randn(2, 4)))
    origins = {"layers.encoder_0.weight": module.encoder[0].weight,
               "layers.encoder_0_1.weight": module.encoder[0].weight}  # fmt: skip
    assert untied(net, origins) == []
    net.layer("encoder_0_1").weight = nn.Parameter(module.encoder[0].weight.detach().clone())
    assert untied(net, origins) == ["layers.encoder_0.weight", "layers.encoder_0_1.weight"]
    with pytest.warns(UserWarning, match="layers.encoder_0_1.weight"):
        warn_untied(module, net, origins)


# -- item 4: free sizes ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def resnet18() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


@pytest.mark.parametrize("dynamic_dims", ["all", {0: (2, 3)}])
def test_resnet18_converted_at_32_runs_at_224(resnet18, dynamic_dims):
    assert from_torch(resnet18, torch.randn(1, 3, 32, 32)).layer("x").shape == (3, 32, 32)
    net = from_torch(resnet18, torch.randn(1, 3, 32, 32), dynamic_dims=dynamic_dims)
    assert net.layer(net.input_names[0]).shape == (3, None, None)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert _close(net(x), resnet18(x))


def test_transformer_converted_at_length_7_runs_at_length_9():
    torch.manual_seed(0)
    module = TokenEncoder().eval()
    net = from_torch(module, _tokens(2, 7))
    tokens, padding = _tokens(3, 9, seed=1)
    with torch.no_grad():
        assert _close(net(tokens, padding), module(tokens, padding))


def test_dynamic_dims_asked_for_explicitly_or_not_at_all():
    torch.manual_seed(0)
    module = FunctionalNet().eval()
    fixed = from_torch(module, torch.randn(1, 3, 8, 8), dynamic_dims=None)
    assert fixed.layer(fixed.input_names[0]).shape == (3, 8, 8)
    with pytest.raises(OptionError, match="'all' \\(image sizes too\\)"):
        from_torch(module, torch.randn(1, 3, 8, 8), dynamic_dims="images")
    free = from_torch(module, torch.randn(1, 3, 8, 8), dynamic_dims={0: (2, 3)})
    x = torch.randn(2, 3, 12, 20)
    with torch.no_grad():
        assert _close(free(x), module(x))
    flat = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2)).eval()
    with pytest.raises(OptionError, match=r"does not run with the sizes `dynamic_dims` frees"):
        from_torch(flat, torch.randn(1, 3, 8, 8), dynamic_dims={0: (2, 3)})
    with pytest.raises(OptionError, match=r"can leave free \[2, 3\]"):
        from_torch(module, torch.randn(1, 3, 8, 8), dynamic_dims={0: (1,)})  # channels
    with pytest.raises(OptionError, match="takes 1 input"):
        from_torch(module, torch.randn(1, 3, 8, 8), dynamic_dims={1: (2,)})
    every = from_torch(flat, torch.randn(1, 3, 8, 8), dynamic_dims="all")  # needs 8 x 8
    assert every.layer(every.input_names[0]).shape == (3, 8, 8)


def test_two_input_model_converts_with_free_image_size():
    torch.manual_seed(0)
    module = TwoInputs().eval()
    net = from_torch(module, (torch.randn(2, 1, 6, 6), torch.randn(2, 3)), dynamic_dims="all")
    assert len(net.input_names) == 2
    image, features = torch.randn(3, 1, 10, 7), torch.randn(3, 3)
    with torch.no_grad():
        assert _close(net(image, features), module(image, features))


# -- item 7: export and save ----------------------------------------------------------------------
def _token_network() -> dtb.Network:
    torch.manual_seed(0)
    return dtb.Network([
        L.SequenceInput(1), L.Embedding(20, 8), L.SelfAttention(2), L.LayerNorm(), L.Dense(3),
    ]).eval()  # fmt: skip


@pytest.mark.parametrize("fmt", ["exported-program", "torchscript"])
def test_exported_token_transformer_takes_integer_token_ids(tmp_path, fmt):
    net = _token_network()
    path = export_pytorch(net, tmp_path / ("tokens.pt2" if fmt != "torchscript" else "t.pt"),
                          format=fmt)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loaded = torch.export.load(path).module() if fmt != "torchscript" else torch.jit.load(path)
    lengths = (8, 11) if fmt != "torchscript" else (8,)  # the program keeps the length free
    for length in lengths:
        tokens = torch.randint(0, 20, (3, length))  # int64 (N, T), as a tokenizer gives them
        with torch.no_grad():
            assert _close(loaded(tokens), net(tokens))


@pytest.mark.slow
def test_export_onnx_checks_integer_inputs_with_integers(tmp_path):
    import onnxruntime

    net = _token_network()
    path = export_onnx(net, tmp_path / "tokens.onnx", sample_inputs=torch.randint(0, 20, (2, 7)))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(int64)"
    # its own sample: token ids, checked as such (a fresh network: torch.export of a network
    # that has run is another fix of issue 25, in network/)
    export_onnx(_token_network(), tmp_path / "default.onnx")


@pytest.mark.parametrize("kind", ["weight_norm", "spectral_norm", "weight_norm_hook"])
def test_networks_with_parametrized_weights_save_and_load(tmp_path, kind):
    torch.manual_seed(0)
    net = dtb.Network([L.FeatureInput(3), L.Dense(4, name="fc"), L.Tanh(), L.Dense(2)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the hook-based form is deprecated
        if kind == "weight_norm":
            nn.utils.parametrizations.weight_norm(net.layer("fc"))
        elif kind == "spectral_norm":
            nn.utils.parametrizations.spectral_norm(net.layer("fc"))
        else:
            nn.utils.weight_norm(net.layer("fc"))
    x = torch.randn(5, 3)
    expected = net.eval()(x)
    again = dtb.load(dtb.save(net, tmp_path / f"{kind}.zip")).eval()
    assert again.state_dict().keys() == net.state_dict().keys()  # the parametrization is back
    assert _close(again(x), expected)
    again.train()(x).sum().backward()  # and trains through it
    trained = [n for n, p in again.named_parameters() if p.grad is not None and "fc" in n]
    assert len(trained) >= 2


def test_an_unknown_parametrization_is_saved_as_its_effective_weight(tmp_path):
    class Doubled(nn.Module):
        def forward(self, weight: torch.Tensor) -> torch.Tensor:
            return 2 * weight

    net = dtb.Network([L.FeatureInput(3), L.Dense(2, name="fc")])
    nn.utils.parametrize.register_parametrization(net.layer("fc"), "weight", Doubled())
    x = torch.randn(4, 3)
    with pytest.warns(UserWarning, match="fc.weight' is parametrized by Doubled"):
        path = dtb.save(net, tmp_path / "doubled.zip")
    again = dtb.load(path)
    assert "layers.fc.weight" in again.state_dict() and _close(again(x), net(x))


# -- item 8: the original state_dict keys ---------------------------------------------------------
def test_state_dicts_load_both_ways_through_the_key_mapping(resnet18, tmp_path):
    net = from_torch(resnet18, torch.randn(1, 3, 32, 32))
    keys = original_state_dict_keys(net)
    assert keys["layer1.0.conv1.weight"] == "layers.layer1_0_conv1.weight"
    assert set(keys) == set(resnet18.state_dict())
    x = torch.randn(2, 3, 32, 32)
    fresh = torchvision.models.resnet18(weights=None).eval()
    assert str(fresh.load_state_dict(original_state_dict(net))) == "<All keys matched successfully>"
    with torch.no_grad():
        assert _close(fresh(x), net(x))
    other = torchvision.models.resnet18(weights=None).eval()  # other weights, loaded into net
    again = load_original_state_dict(
        dtb.load(dtb.save(net, tmp_path / "r.zip")), other.state_dict()
    ).eval()
    with torch.no_grad():
        assert _close(again(x), other(x))
    with pytest.raises(OptionError, match=r"missing keys: \['fc.bias'\]"):
        load_original_state_dict(
            net, {k: v for k, v in other.state_dict().items() if k != "fc.bias"}
        )


def test_split_attention_weights_map_back_to_in_proj_weight():
    torch.manual_seed(0)
    module = TokenEncoder().eval()
    net = from_torch(module, _tokens(2, 5))
    key = "encoder.layers.0.self_attn.in_proj_weight"
    assert [name for name, _, _ in original_state_dict_keys(net)[key]["parts"]] == [
        "layers.encoder_layers_0_self_attn.query_weight",
        "layers.encoder_layers_0_self_attn.key_weight",
        "layers.encoder_layers_0_self_attn.value_weight",
    ]
    fresh = TokenEncoder().eval()
    fresh.load_state_dict(original_state_dict(net))
    tokens, padding = _tokens(2, 5, seed=3)
    with torch.no_grad():
        assert _close(fresh(tokens, padding), net(tokens, padding))


def test_a_network_not_made_by_from_torch_has_no_original_keys():
    with pytest.raises(OptionError, match="only networks made by from_torch"):
        original_state_dict_keys(dtb.Network([L.FeatureInput(2), L.Dense(1)]))


# -- item 9: outputs, errors and transformers -----------------------------------------------------
@pytest.mark.parametrize("num_layers", [1, 2])
def test_lstm_returning_output_and_state_converts(num_layers):
    torch.manual_seed(0)
    module = LSTMModel(num_layers).eval()
    net = from_torch(module, torch.randn(2, 5, 3))
    assert net.output_names == ["output_1", "output_2_1", "output_2_2"]
    assert _count(net) == _count(module)  # the three LSTM layers share one set of weights
    x = torch.randn(3, 8, 3)
    output, (h, c) = module(x)
    with torch.no_grad():
        found = net(x)
    assert all(_close(a, b) for a, b in zip(found, (output, h, c), strict=True))


def test_dict_outputs_become_output_layers_named_after_the_keys():
    torch.manual_seed(0)
    module = DictHead().eval()
    net = from_torch(module, torch.randn(2, 3))
    assert net.output_names == ["logits", "features"]
    x = torch.randn(4, 3)
    expected = module(x)
    logits, features = net(x)
    assert _close(logits, expected["logits"]) and _close(features, expected["features"])


def test_outputs_that_are_not_tensors_get_one_clear_error():
    class ReturnsNone(nn.Module):
        def forward(self, x):
            return x, {"extra": None}

    with pytest.raises(OptionError) as caught:
        from_torch(ReturnsNone(), torch.randn(2, 3))
    message = str(caught.value)
    assert "returns output[1]['extra'] = NoneType" in message
    assert "tuples, lists and dicts (string keys) of tensors, nested or not" in message


@pytest.mark.parametrize(
    ("norm_first", "activation"), [(False, "relu"), (True, "gelu"), (False, "gelu")]
)
def test_transformer_encoder_maps_onto_toolbox_layers(tmp_path, norm_first, activation):
    torch.manual_seed(0)
    module = TokenEncoder(norm_first, activation).eval()
    net = from_torch(module, _tokens(2, 6))
    kinds = _kinds(net)
    assert {"SelfAttention", "LayerNorm", "Dense", "Addition"} <= kinds
    assert "OpaqueModule" not in kinds and dtb.analyze(net).ok
    tokens, padding = _tokens(3, 9, seed=2)
    with torch.no_grad():
        expected = module(tokens, padding)  # nested tensors (post-norm): zeros at padding
        assert _close(net(tokens, padding), expected)
        again = dtb.load(dtb.save(net, tmp_path / "encoder.zip")).eval()
        assert _close(again(tokens, padding), expected)
    real = ~padding
    module.train()
    net.train()
    with torch.no_grad():  # training: dropout off to compare; padded steps are free in torch
        for m in list(module.modules()) + list(net.modules()):
            if isinstance(m, nn.Dropout | nn.MultiheadAttention | L.Dropout | L.SelfAttention):
                m.eval()
        assert _close(net(tokens, padding)[real], module(tokens, padding)[real])


def test_transformer_encoder_exports_to_onnx(tmp_path):
    torch.manual_seed(0)
    net = from_torch(TokenEncoder().eval(), _tokens(2, 6))
    # saved and loaded: a network that has not run yet (torch.export of a network after it ran
    # is another fix of issue 25, in network/)
    again = dtb.load(dtb.save(net, tmp_path / "encoder.zip"))
    export_onnx(again, tmp_path / "encoder.onnx")  # checked against the network by onnxruntime


def test_multihead_self_attention_maps_onto_self_attention():
    class Attend(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
            return self.attention(x, x, x, key_padding_mask=padding, need_weights=False)[0]

    torch.manual_seed(0)
    module = Attend().eval()
    padding = torch.zeros(2, 5, dtype=torch.bool)
    padding[1, 3:] = True
    net = from_torch(module, (torch.randn(2, 5, 8), padding))
    assert isinstance(net.layer("attention"), L.SelfAttention)
    x = torch.randn(2, 7, 8)
    padding = torch.zeros(2, 7, dtype=torch.bool)
    padding[0, 5:] = True
    with torch.no_grad():
        assert _close(net(x, padding), module(x, padding))


def test_example_models_of_the_issue_need_no_opaque_layer(resnet18):
    """The seven models, converted layer by layer (no OpaqueModule) with identical outputs."""
    torch.manual_seed(0)
    cases = [
        (FunctionalNet(), (torch.randn(2, 3, 8, 8),)),
        (TwoInputs(), (torch.randn(2, 1, 6, 6), torch.randn(2, 3))),
        (DictHead(), (torch.randn(2, 3),)),
        (LSTMModel(), (torch.randn(2, 5, 3),)),
        (TimmStyle(), (torch.randn(2, 3, 8, 8),)),
        (resnet18, (torch.randn(1, 3, 32, 32),)),
        (TokenEncoder(), _tokens(2, 6)),
    ]
    for module, inputs in cases:
        module.eval()
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # nothing wrapped, nothing untied
            warnings.filterwarnings("ignore", message=".*nested.*")  # torch's own notice
            net = from_torch(module, inputs)
        assert "OpaqueModule" not in _kinds(net), type(module).__name__
        with torch.no_grad():
            expected, found = module(*inputs), net(*inputs)
        expected = expected.values() if isinstance(expected, dict) else expected
        flat = (
            [expected] if isinstance(expected, torch.Tensor)
            else [t for e in expected for t in ([e] if isinstance(e, torch.Tensor) else e)]
        )  # fmt: skip
        found = [found] if isinstance(found, torch.Tensor) else list(found)
        assert all(_close(a, b) for a, b in zip(found, flat, strict=True))


def test_mode_switch_passes_on_the_value_of_the_current_mode():
    switch = ModeSwitch(name="switch")
    a, b = torch.ones(2, 3), torch.zeros(2, 3)
    assert torch.equal(switch.train()(a, b), a) and torch.equal(switch.eval()(a, b), b)
    assert switch.output_shape([(3,), (3,)]) == (3,)
    with pytest.raises(dtb.errors.SizeMismatchError, match="training side gives size"):
        switch.output_shape([(3,), (4,)])


def test_a_parametrized_module_kept_opaque_is_named_in_a_warning():
    """weight_norm on a submodule: from_torch cannot map it and says so (it used to be silent)."""
    torch.manual_seed(0)
    module = nn.Sequential(nn.utils.parametrizations.weight_norm(nn.Linear(3, 4)), nn.ReLU())
    x = torch.randn(2, 3)
    with pytest.warns(UserWarning, match="Linear with parametrized weight.*dtb.save refuses"):
        net = from_torch(module, x)
    assert torch.allclose(net(x), module(x))
