"""The contract every built-in registered layer type keeps.

For each type, one example instance is checked for: its size rule against the real forward
output, a JSON round trip of its configuration (same outputs after ``load_state_dict``), an
evaluable repr, and gradients reaching every parameter. The table must name every built-in
registered type, so a new layer cannot be added without a contract case.
"""

from __future__ import annotations

import copy
import json
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import nn

import deeptoolbox.compress as compress  # registers the projected layers too
import deeptoolbox.interop as interop  # registers the interop operator layers too
import deeptoolbox.layers as L
import deeptoolbox.network as network
from deeptoolbox.layers import Layer, registered_layers

BATCH = 2
LENGTH = 5  # the concrete length used for free (None) sizes


def _random_inputs(shapes: list[tuple]) -> list[torch.Tensor]:
    return [torch.randn(BATCH, *(LENGTH if d is None else d for d in shape)) for shape in shapes]


def _token_ids(shapes: list[tuple]) -> list[torch.Tensor]:
    return [torch.randint(0, 10, (BATCH, LENGTH, 1))]


def _sequence_and_mask(shapes: list[tuple]) -> list[torch.Tensor]:
    mask = torch.ones(BATCH, LENGTH)
    mask[1, :2] = 0  # left padding in the second sequence
    return [torch.randn(BATCH, LENGTH, 4), mask]


def _bool_mask(shapes: list[tuple]) -> list[torch.Tensor]:
    x, mask = _sequence_and_mask(shapes)
    return [x, mask.bool()]  # masks carry no gradient


def _training_and_evaluation_sides(shapes: list[tuple]) -> list[torch.Tensor]:
    # ModeSwitch hands on one side per mode; the evaluation side gets no gradient in training
    # by design, so it is given as integers here (the size rule is the same)
    return [torch.randn(BATCH, 3), torch.randint(0, 4, (BATCH, 3))]


def _image_and_reference(shapes: list[tuple]) -> list[torch.Tensor]:
    # Crop2d reads only the reference's size, so it gets no gradient: given as integers here
    return [torch.randn(BATCH, *shapes[0]), torch.zeros(BATCH, *shapes[1], dtype=torch.long)]


def _cross_attention_inputs(shapes: list[tuple]) -> list[torch.Tensor]:
    values = torch.ones(BATCH, 6, dtype=torch.bool)
    values[0, 4:] = False
    allowed = torch.rand(BATCH, LENGTH, 6) > 0.3
    return [*_random_inputs(shapes[:3]), values, allowed]


def _query_key_value_mask(shapes: list[tuple]) -> list[torch.Tensor]:
    mask = torch.ones(BATCH, 6)
    mask[1, 4:] = 0  # the last two keys of the second sequence are padding
    return [*_random_inputs(shapes[:3]), mask.bool()]  # masks carry no gradient


def _small_network() -> network.Network:
    return network.Network([L.SequenceInput(3), L.Dense(4), L.Tanh(), L.Dense(2)], name="inner")


@dataclass(frozen=True)
class Case:
    """One example layer: how to make it, the sizes it is built for, and its forward data."""

    make: Callable[[], Layer]
    shapes: list[tuple]
    data: Callable[[list[tuple]], list[torch.Tensor]] | None = None  # default: randn of shapes
    data_shapes: list[tuple] | None = None  # input layers: the forward data's sizes

    def inputs(self) -> list[torch.Tensor]:
        if self.data is not None:
            return self.data(self.shapes)
        return _random_inputs(self.data_shapes if self.data_shapes is not None else self.shapes)


CASES: dict[str, Case] = {
    "FeatureInput": Case(
        lambda: L.FeatureInput(
            3, normalization="zscore", mean=[0.0, 1.0, 2.0], std=[1.0, 2.0, 4.0]
        ),
        [],
        data_shapes=[(3,)],
    ),
    "ImageInput": Case(
        lambda: L.ImageInput((2, 4, 4), normalization="rescale-zero-one", min=-1.0, max=2.0),
        [],
        data_shapes=[(2, 4, 4)],
    ),
    "VolumeInput": Case(
        lambda: L.VolumeInput((1, 3, 4, 4), normalization="zerocenter", mean=0.5),
        [],
        data_shapes=[(1, 3, 4, 4)],
    ),
    "SequenceInput": Case(
        lambda: L.SequenceInput(
            3, normalization="rescale-symmetric", min=[-1.0, -2.0, -3.0], max=[1.0, 2.0, 3.0]
        ),
        [],
        data_shapes=[(None, 3)],
    ),
    "Dense": Case(lambda: L.Dense(4, bias_initializer="narrow-normal"), [(2, 3, 3)]),
    "Conv1d": Case(lambda: L.Conv1d(4, 3, stride=2, padding="same"), [(None, 3)]),
    "Conv2d": Case(lambda: L.Conv2d(4, 2, stride=2, groups=2, padding="same"), [(2, 7, 6)]),
    "Conv3d": Case(lambda: L.Conv3d(2, 3, padding="valid"), [(2, 4, 5, 6)]),
    "TransposedConv2d": Case(
        lambda: L.TransposedConv2d(3, 4, stride=2, cropping="same"), [(2, 3, 5)]
    ),
    "MaxPool1d": Case(lambda: L.MaxPool1d(2, padding="same"), [(None, 3)]),
    "AvgPool1d": Case(lambda: L.AvgPool1d(3, stride=2), [(None, 3)]),
    "MaxPool2d": Case(lambda: L.MaxPool2d(2), [(2, 6, 6)]),
    "AvgPool2d": Case(lambda: L.AvgPool2d(3, stride=2, padding="same"), [(2, 7, 5)]),
    "MaxPool3d": Case(lambda: L.MaxPool3d((2, 1, 2), padding="same"), [(2, 3, 4, 5)]),
    "AvgPool3d": Case(lambda: L.AvgPool3d(2, stride=1, padding=1), [(2, 3, 4, 4)]),
    "GlobalAvgPool": Case(lambda: L.GlobalAvgPool(), [(3, 4, 4)]),
    "TransposedConv1d": Case(lambda: L.TransposedConv1d(3, 4, stride=2, cropping=1), [(None, 2)]),
    "TransposedConv3d": Case(
        lambda: L.TransposedConv3d(2, 3, stride=(1, 2, 2), cropping="same"), [(2, 2, 3, 3)]
    ),
    "AdaptiveAvgPool1d": Case(lambda: L.AdaptiveAvgPool1d(3), [(None, 2)]),
    "AdaptiveAvgPool2d": Case(lambda: L.AdaptiveAvgPool2d((2, 3)), [(2, 5, 7)]),
    "AdaptiveAvgPool3d": Case(lambda: L.AdaptiveAvgPool3d(2), [(2, 3, 4, 5)]),
    "MaxUnpooling2d": Case(lambda: L.MaxUnpooling2d(2, padding="same"), [(2, 3, 2), (2, 5, 4)]),
    "Resize3d": Case(lambda: L.Resize3d(scale=(1, 2, 1.5), method="trilinear"), [(2, 2, 3, 4)]),
    "GlobalMaxPool": Case(lambda: L.GlobalMaxPool(), [(None, 3)]),
    "BatchNorm": Case(lambda: L.BatchNorm(momentum=0.2), [(2, 4, 4)]),
    "LayerNorm": Case(lambda: L.LayerNorm(epsilon=1e-3), [(None, 4)]),
    "GroupNorm": Case(lambda: L.GroupNorm(2), [(4, 3, 3)]),
    "ReLU": Case(lambda: L.ReLU(), [(3,)]),
    "LeakyReLU": Case(lambda: L.LeakyReLU(0.2), [(None, 3)]),
    "ELU": Case(lambda: L.ELU(0.5), [(3,)]),
    "GELU": Case(lambda: L.GELU("tanh"), [(3,)]),
    "Sigmoid": Case(lambda: L.Sigmoid(), [(3,)]),
    "Tanh": Case(lambda: L.Tanh(), [(3,)]),
    "Swish": Case(lambda: L.Swish(), [(3,)]),
    "Softmax": Case(lambda: L.Softmax(), [(3, 2, 2)]),
    "Dropout": Case(lambda: L.Dropout(0.3), [(6,)]),
    "ClippedReLU": Case(lambda: L.ClippedReLU(0.5), [(3, 2, 2)]),
    "PReLU": Case(lambda: L.PReLU(0.1), [(None, 3)]),
    "Softplus": Case(lambda: L.Softplus(), [(3,)]),
    "HardSwish": Case(lambda: L.HardSwish(), [(3, 2, 2)]),
    "HardSigmoid": Case(lambda: L.HardSigmoid(0.2, 0.4), [(3,)]),
    "Mish": Case(lambda: L.Mish(), [(None, 3)]),
    "SpatialDropout": Case(lambda: L.SpatialDropout(0.2), [(4, 3, 3)]),
    "InstanceNorm": Case(lambda: L.InstanceNorm(epsilon=1e-3), [(3, 4, 4)]),
    "CrossChannelNorm": Case(lambda: L.CrossChannelNorm(4, alpha=0.1), [(5, 3, 3)]),
    "LSTM": Case(lambda: L.LSTM(4, bidirectional=True, output_mode="last"), [(None, 3)]),
    "GRU": Case(lambda: L.GRU(4, num_layers=2), [(None, 3)]),
    "Embedding": Case(lambda: L.Embedding(10, 4, padding_index=0), [(None, 1)], _token_ids),
    "SelfAttention": Case(
        lambda: L.SelfAttention(2, causal=True, has_padding_mask=True, output_channels=6),
        [(None, 4), (None,)],
        _sequence_and_mask,
    ),
    "PositionEmbedding": Case(lambda: L.PositionEmbedding(8), [(None, 4)]),
    "Flatten": Case(lambda: L.Flatten(), [(2, 3, 3)]),
    "Reshape": Case(lambda: L.Reshape((3, -1)), [(2, 3, 3)]),
    "Resize2d": Case(lambda: L.Resize2d(output_size=(5, 3), method="bilinear"), [(2, 4, 4)]),
    "DepthToSpace": Case(lambda: L.DepthToSpace((2, 1), mode="crd"), [(4, 2, 3)]),
    "SpaceToDepth": Case(lambda: L.SpaceToDepth(2), [(2, 4, 6)]),
    "Crop1d": Case(lambda: L.Crop1d((1, 2)), [(None, 3)]),
    "Crop2d": Case(lambda: L.Crop2d(offset=(1, 0)), [(2, 6, 5), (1, 4, 4)], _image_and_reference),
    "Crop3d": Case(lambda: L.Crop3d(((1, 0), 1, (0, 2))), [(2, 4, 5, 6)]),
    "SimpleRNN": Case(lambda: L.SimpleRNN(4, bidirectional=True), [(None, 3)]),
    "Addition": Case(lambda: L.Addition(3), [(3,), (3,), (3,)]),
    "Multiplication": Case(lambda: L.Multiplication(), [(2, 3, 3), (2, 3, 3)]),
    "Concatenation": Case(lambda: L.Concatenation(axis="time"), [(None, 3), (None, 3)]),
    "PatchEmbedding": Case(lambda: L.PatchEmbedding((2, 3), 4), [(2, 4, 6)]),
    "SinusoidalPositionEncoding": Case(L.SinusoidalPositionEncoding, [(None, 4)]),
    "Attention": Case(
        lambda: L.Attention(2, attention_mask="causal", has_padding_mask=True, scale=0.3),
        [(None, 4), (6, 4), (6, 2), (6,)],
        _query_key_value_mask,
    ),
    "EmbeddingConcatenation": Case(L.EmbeddingConcatenation, [(None, 3)]),
    "Indexing1d": Case(lambda: L.Indexing1d(-2), [(None, 3)]),
    "FunctionLayer": Case(
        lambda: L.FunctionLayer("a * sigmoid(b) + mean(a, dim=1, keepdim=True)", inputs=["a", "b"]),
        [(None, 3), (None, 3)],
    ),
    "NetworkLayer": Case(lambda: network.NetworkLayer(_small_network()), [(None, 3)]),
    "TorchFunction": Case(
        lambda: interop.TorchFunction(
            "torch.Tensor.view", arguments=[{"input": 0}, {"size": 0, "dim": 0}, -1, 2]
        ),
        [(3, 4)],
    ),
    "TorchModule": Case(
        lambda: interop.TorchModule("torch.nn.Softplus", module_arguments={"beta": 2.0}), [(3,)]
    ),
    "StochasticDepth": Case(lambda: L.StochasticDepth(0.1, "row"), [(3, 4, 4)]),
    "ModeSwitch": Case(L.ModeSwitch, [(3,), (3,)], _training_and_evaluation_sides),
    "OnnxOperator": Case(
        lambda: interop.OnnxOperator(
            "Add", slots=["in1", "const1"], constants={"const1": {"shape": [3], "dtype": "float32"}}
        ),
        [(2, 3)],
    ),
    "TensorInput": Case(lambda: L.TensorInput((None, 3)), [], data_shapes=[(5, 3)]),
    # layers import_keras uses for Keras semantics
    "PaddingMask": Case(lambda: L.PaddingMask(), [(None, 1)], _token_ids),
    "MaskedSteps": Case(lambda: L.MaskedSteps("hold"), [(None, 4), (None,)], _bool_mask),
    "CrossAttention": Case(
        lambda: L.CrossAttention(
            2, key_dim=3, value_dim=2, has_key=True, masks=["value_mask", "attention_mask"]
        ),
        [(None, 4), (6, 3), (6, 2), (6,), (None, 6)],
        _cross_attention_inputs,
    ),
    "AvgPoolExcludingPadding": Case(
        lambda: L.AvgPoolExcludingPadding([3, 2], stride=[2, 2]), [(2, 5, 5)]
    ),
    "AxisLayerNorm": Case(lambda: L.AxisLayerNorm([1, 3]), [(3, 4, 5)]),
    "ScaleOffset": Case(lambda: L.ScaleOffset((3, 1, 1), trainable=True), [(3, 4, 4)]),
    "MergeDirections": Case(lambda: L.MergeDirections("ave"), [(None, 4)]),
    # projected layers made by deeptoolbox.compress.project
    "ProjectedDense": Case(lambda: compress.ProjectedDense(4, 2), [(2, 3, 3)]),
    "ProjectedConv1d": Case(lambda: compress.ProjectedConv1d(4, 3, 2, padding=1), [(None, 3)]),
    "ProjectedConv2d": Case(lambda: compress.ProjectedConv2d(4, 3, 2, stride=2), [(3, 7, 6)]),
    "ProjectedLSTM": Case(
        lambda: compress.ProjectedLSTM(4, 2, 3, output_mode="last"), [(None, 3)]
    ),  # fmt: skip
    "ProjectedGRU": Case(lambda: compress.ProjectedGRU(4, 2, 3), [(None, 3)]),
}


def _builtin_types() -> set[str]:
    """Registered types defined at module level inside the deeptoolbox package."""
    names = set()
    for name, cls in registered_layers().items():
        module = sys.modules.get(cls.__module__)
        defined_there = module is not None and getattr(module, cls.__qualname__, None) is cls
        if cls.__module__.startswith("deeptoolbox.") and defined_there:
            names.add(name)
    return names


def _json_round_trip(config: dict) -> dict:
    return json.loads(json.dumps(config))


def _built(case: Case) -> Layer:
    layer = case.make()
    layer.build(case.shapes)
    return layer


def _concrete(shape: tuple) -> tuple:
    return tuple(LENGTH if d is None else d for d in shape)


def test_every_builtin_layer_type_has_a_contract_case():
    builtin = _builtin_types()
    assert len(builtin) >= 38
    # refuse to run; tests/interop/test_onnx_import.py, tests/interop/test_keras_placeholder.py
    runs_by_design = {"OnnxPlaceholder", "KerasPlaceholder"}
    missing = sorted(builtin - set(CASES) - runs_by_design)
    assert not missing, f"add contract cases for the new layer types: {missing}"
    stale = sorted(set(CASES) - builtin)
    assert not stale, f"contract cases for types that are not registered: {stale}"


@pytest.mark.parametrize("type_name", sorted(CASES))
def test_case_makes_the_registered_type(type_name):
    layer = CASES[type_name].make()
    assert type(layer) is registered_layers()[type_name]
    assert isinstance(layer, Layer) and isinstance(layer, nn.Module)


@pytest.mark.parametrize("type_name", sorted(CASES))
def test_output_shape_matches_forward(type_name):
    case = CASES[type_name]
    layer = _built(case).eval()
    assert layer.is_built
    inputs = case.inputs()
    with torch.no_grad():
        output = layer(*inputs)
    assert output.shape[0] == BATCH
    declared = layer.output_shape(case.shapes)
    if case.data_shapes is None:  # sizes of the data actually fed, free lengths made concrete
        fed = [tuple(x.shape[1:]) for x in inputs]
        assert tuple(output.shape[1:]) == layer.output_shape(fed)
    assert len(declared) == output.dim() - 1
    for want, got in zip(declared, output.shape[1:], strict=True):
        assert want is None or want == got, (declared, tuple(output.shape))
    assert torch.isfinite(output).all()


@pytest.mark.parametrize("type_name", sorted(CASES))
def test_config_round_trips_through_json(type_name):
    case = CASES[type_name]
    layer = _built(case).eval()
    config = layer.get_config()
    text = json.dumps(config)  # raises on anything that is not JSON
    clone = type(layer).from_config(json.loads(text))
    assert type(clone) is type(layer)
    assert _json_round_trip(clone.get_config()) == _json_round_trip(config)
    clone.build(case.shapes)
    clone.load_state_dict(layer.state_dict())
    clone.eval()
    inputs = case.inputs()
    with torch.no_grad():
        torch.testing.assert_close(clone(*inputs), layer(*inputs), rtol=0, atol=0)


@pytest.mark.parametrize("type_name", sorted(CASES))
def test_repr_is_the_constructor_call(type_name):
    layer = CASES[type_name].make()
    text = repr(layer)
    assert text.startswith(f"{type_name}(") and text.endswith(")")
    assert "\n" not in text
    namespace = {**vars(L), **vars(interop), **vars(compress), **vars(network)}
    rebuilt = eval(text, {"__builtins__": {}}, namespace)  # noqa: S307 - our own repr
    assert type(rebuilt) is type(layer)
    assert _json_round_trip(rebuilt.get_config()) == _json_round_trip(layer.get_config())


@pytest.mark.parametrize("type_name", sorted(CASES))
def test_backward_reaches_every_parameter(type_name):
    torch.manual_seed(0)
    case = CASES[type_name]
    layer = _built(case).train()
    inputs = case.inputs()
    for x in inputs:
        positions_only = type_name == "MaxUnpooling2d" and x is inputs[1]  # the reference
        if x.is_floating_point() and not (type_name == "SelfAttention" and x.dim() == 2):
            x.requires_grad_(not positions_only)
    output = layer(*inputs)
    if output.dtype == torch.bool:  # a mask (PaddingMask): nothing to differentiate
        return
    (output * torch.randn_like(output)).sum().backward()
    for name, param in layer.named_parameters():
        assert param.grad is not None, f"{type_name}.{name} got no gradient"
        assert torch.isfinite(param.grad).all()
    grads = [p.grad.abs().sum() for p in layer.parameters()]
    if grads:
        assert sum(grads) > 0
    for x in inputs:
        if x.requires_grad:
            assert x.grad is not None and torch.isfinite(x.grad).all()
            assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("type_name", sorted(CASES))
def test_copies_and_pickles_compute_the_same(type_name):
    case = CASES[type_name]
    layer = _built(case).eval()
    inputs = case.inputs()
    with torch.no_grad():
        expected = layer(*inputs)
        for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
            assert repr(clone) == repr(layer)
            torch.testing.assert_close(clone(*inputs), expected, rtol=0, atol=0)


def test_learnable_layers_have_parameters_after_build():
    learnable = {
        "Dense", "Conv1d", "Conv2d", "Conv3d", "TransposedConv2d", "BatchNorm", "LayerNorm",
        "TransposedConv1d", "TransposedConv3d",
        "GroupNorm", "InstanceNorm", "PReLU", "LSTM", "GRU", "Embedding", "SelfAttention",
        "PositionEmbedding", "PatchEmbedding", "EmbeddingConcatenation", "NetworkLayer",
        "CrossAttention", "AxisLayerNorm", "ProjectedDense", "ProjectedConv1d", "ProjectedConv2d",
        "ProjectedLSTM", "ProjectedGRU", "SimpleRNN", "ScaleOffset",
    }  # fmt: skip
    for type_name, case in CASES.items():
        count = sum(p.numel() for p in _built(case).parameters())
        assert (count > 0) == (type_name in learnable), type_name
