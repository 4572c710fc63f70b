"""interop is three packages (onnx, keras, torch) plus shared modules (issue 12 item 4)."""

import importlib
from pathlib import Path

import pytest

import deeptoolbox.interop as interop

PACKAGE = Path(interop.__file__).parent


@pytest.mark.parametrize("name", ["onnx", "keras", "torch"])
def test_each_format_is_a_package_whose_names_are_the_interop_ones(name):
    package = importlib.import_module(f"deeptoolbox.interop.{name}")
    assert Path(package.__file__).parent == PACKAGE / name
    assert package.__all__ and set(package.__all__) <= set(interop.__all__)
    for public in package.__all__:
        assert getattr(package, public) is getattr(interop, public)


def test_no_flat_format_module_is_left_and_the_operator_layers_are_shared():
    prefixes = ("_onnx_", "_keras_", "_torch")
    assert sorted(p.name for p in PACKAGE.glob("_*.py") if p.name.startswith(prefixes)) == []
    from deeptoolbox.interop._operators import OpaqueModule, TorchFunction, TorchModule

    shared = (TorchFunction, TorchModule, OpaqueModule)
    assert (interop.TorchFunction, interop.TorchModule, interop.OpaqueModule) == shared
    assert TorchFunction.__module__ == "deeptoolbox.interop._operators"
