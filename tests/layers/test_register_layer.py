"""register_layer: custom modules and layers join the registry and record their arguments."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from deeptoolbox.errors import OptionError, SizeMismatchError, UnregisteredLayerError
from deeptoolbox.layers import Dense, Layer, register_layer, registered_layer, registered_layers
from deeptoolbox.layers._base import _REGISTRY, config_of, layer_type_name


@pytest.fixture(autouse=True)
def _restore_registry():
    saved = dict(_REGISTRY)
    yield
    _REGISTRY.clear()
    _REGISTRY.update(saved)


def test_plain_module_records_its_constructor_arguments():
    @register_layer
    class ScaleShift(nn.Module):
        def __init__(self, scale: float, shift: float = 0.0, *, clamp: bool = False, **extra):
            super().__init__()
            self.scale, self.shift, self.clamp = scale, shift, clamp

        def forward(self, x):
            return x * self.scale + self.shift

    module = ScaleShift(2.0, clamp=True, note="x")
    assert config_of(module) == {"scale": 2.0, "shift": 0.0, "clamp": True, "note": "x"}
    assert registered_layer("ScaleShift") is ScaleShift
    assert "ScaleShift" in registered_layers()
    assert layer_type_name(module) == "ScaleShift"
    rebuilt = ScaleShift(**json.loads(json.dumps(config_of(module))))
    assert torch.equal(rebuilt(torch.ones(2)), module(torch.ones(2)))
    assert module(torch.ones(1)).item() == 2.0


def test_registering_under_another_name():
    @register_layer(name="my-block")
    class Block(nn.Module):
        def __init__(self, width: int = 4):
            super().__init__()
            self.linear = nn.Linear(width, width)

        def forward(self, x):
            return self.linear(x)

    assert registered_layer("my-block") is Block
    assert "Block" not in registered_layers()
    assert layer_type_name(Block()) == "my-block"
    assert config_of(Block(8)) == {"width": 8}


def test_module_with_its_own_get_config_wins():
    @register_layer
    class Configured(nn.Module):
        def __init__(self, size: int = 3):
            super().__init__()
            self.size = size

        def get_config(self):
            return {"size": self.size, "version": 2}

    assert config_of(Configured()) == {"size": 3, "version": 2}


def test_unregistered_module_cannot_be_described():
    with pytest.raises(UnregisteredLayerError, match="@register_layer"):
        config_of(nn.ReLU())
    with pytest.raises(UnregisteredLayerError, match="Unknown layer type 'NoSuchLayer'"):
        registered_layer("NoSuchLayer")


def test_duplicate_name_raises_option_error():
    class Dense(nn.Module):  # same name as the built-in, another class
        def forward(self, x):
            return x

    with pytest.raises(OptionError, match="'Dense' is already used by deeptoolbox.layers"):
        register_layer(Dense)
    with pytest.raises(OptionError, match="Pass another name"):
        register_layer(name="Conv2d")(Dense)
    assert registered_layer("Dense").__module__ == "deeptoolbox.layers._dense"


def test_same_class_name_from_another_module_is_a_duplicate():
    def define(module_name: str) -> type:
        return type("Block", (nn.Module,), {"__module__": module_name, "__qualname__": "Block"})

    first = register_layer(define("package_one.blocks"))
    with pytest.raises(OptionError, match="'Block' is already used by package_one.blocks.Block"):
        register_layer(define("package_two.blocks"))
    assert registered_layer("Block") is first
    again = register_layer(define("package_one.blocks"))  # the module re-run: replaces itself
    assert registered_layer("Block") is again


def test_registered_module_without_constructor_arguments():
    @register_layer
    class Flip(nn.Module):
        def forward(self, x):
            return x.flip(1)

    assert config_of(Flip()) == {}
    assert layer_type_name(Flip()) == "Flip"


@pytest.mark.parametrize("thing", [42, "Dense", lambda x: x, object, torch.zeros(1)])
def test_non_module_raises_option_error(thing):
    with pytest.raises(OptionError, match="register_layer expects an nn.Module subclass"):
        register_layer(thing)


def test_instance_of_a_module_is_not_a_class():
    with pytest.raises(OptionError, match="Received: ReLU()"):
        register_layer(nn.ReLU())


def test_layer_subclass_with_its_own_size_rule():
    @register_layer
    class Repeat(Layer):
        """Repeat the channels of sequences ``times`` times."""

        def __init__(self, times: int = 2, *, name: str | None = None):
            super().__init__(name=name)
            if times < 1:
                raise OptionError(f"Repeat: `times` must be >= 1. Received: times={times}.")
            self.times = times

        def output_shape(self, input_shapes):
            (shape,) = input_shapes
            if len(shape) != 2:
                raise SizeMismatchError(f"Repeat expects sequences; received {shape}.")
            return (shape[0], shape[1] * self.times)

        def build(self, input_shapes):
            self.gain = nn.Parameter(torch.ones(input_shapes[0][1] * self.times))
            super().build(input_shapes)

        def forward(self, x):
            return x.repeat(1, 1, self.times) * self.gain

    layer = Repeat(3, name="rep")
    assert layer.name == "rep"
    assert layer.get_config() == {"times": 3}
    assert repr(layer) == "Repeat(times=3)"
    assert layer.output_shape([(None, 2)]) == (None, 6)
    with pytest.raises(SizeMismatchError):
        layer.output_shape([(2, 4, 4)])
    layer.build([(None, 2)])
    assert layer.is_built and layer.built_shapes == [(None, 2)]
    y = layer(torch.tensor([[[1.0, 2.0]]]))
    assert y.tolist() == [[[1.0, 2.0, 1.0, 2.0, 1.0, 2.0]]]
    clone = Repeat.from_config(layer.get_config())
    assert clone.times == 3 and not clone.is_built
    assert registered_layer("Repeat") is Repeat


def test_subclass_of_a_builtin_layer_records_its_own_arguments():
    class WideDense(Dense):
        def __init__(self, factor: int = 2, *, name: str | None = None):
            super().__init__(8 * factor, name=name)
            self.factor = factor

    layer = WideDense(3)
    assert layer.units == 24
    assert layer.get_config() == {"factor": 3}  # only the outermost constructor's arguments
    assert repr(layer) == "WideDense(factor=3)"
