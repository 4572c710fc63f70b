"""Every registered layer type round-trips through ONNX (issue 13): a tiny network around each
(the example layer of ``tests/layers/test_layer_contract.py``, whose table must name every
built-in registered type, so a new layer type is covered here automatically) is exported,
run in onnxruntime (outputs equal to the network's within 1e-5) and imported again (outputs
equal, and the layer comes back as its own type where the importer maps it).

Layer types that cannot be exported by design are listed with the reason and must raise a
clear error; known gaps are ``xfail(strict=True)`` with the precise reason, so fixing one
fails the test until its mark is removed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import ModelExportError
from deeptoolbox.interop import export_onnx, import_onnx
from deeptoolbox.layers import registered_layers
from deeptoolbox.network import input_ports

ATOL = 1e-5
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _contract():
    """The contract test's table of example layers (one per registered type)."""
    name = "_deeptoolbox_layer_contract_cases"
    if name not in sys.modules:
        path = Path(__file__).parents[1] / "layers" / "test_layer_contract.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


CONTRACT = _contract()
CASES = CONTRACT.CASES

NOT_EXPORTABLE = {
    "OnnxPlaceholder": "stands for an ONNX operator the toolbox cannot run: nothing to trace",
    "KerasPlaceholder": "stands for a Keras layer the toolbox cannot run: nothing to trace",
}
"""Types that cannot be exported by design -> why (they refuse to run; no contract example)."""

ROUND_TRIP_GAPS: dict[str, str] = {}
"""Types whose export or import fails today -> the precise reason (xfail, strict)."""

OPERATOR_FORMS = {
    "Dropout": "an identity at inference: the exporter writes no node for it",
    "SpatialDropout": "an identity at inference: the exporter writes no node for it",
    "StochasticDepth": "an identity at inference: the exporter writes no node for it",
    "NetworkLayer": "a nested network is exported flat: its layers come back, not the wrapper",
    "TorchFunction": "arbitrary torch code: comes back as the ONNX operators it was written as",
    "TorchModule": "arbitrary torch code: comes back as the ONNX operators it was written as",
    "ProjectedLSTM": "written as MatMul + LSTM: the record's weights are not in the graph "
    "(ONNX's gate order, projections multiplied out), so the nodes come back as Dense + LSTM",
    "ProjectedGRU": "written as MatMul + GRU: the record's weights are not in the graph "
    "(ONNX's gate order, projections multiplied out), so the nodes come back as Dense + GRU",
    "ModeSwitch": "the file is an inference graph: it holds the evaluation side only, and no "
    "node for the switch",
    "TensorInput": "input layers are rebuilt from the graph input's size: (N, T, C) comes "
    "back as a SequenceInput",
}
"""Types that round-trip exactly but come back as other layers or operators -> why."""


def _builtin_types() -> set[str]:
    """The registry's types defined inside the deeptoolbox package (not users' layers)."""
    return {name for name, cls in registered_layers().items()
            if cls.__module__.startswith("deeptoolbox.")}  # fmt: skip


def test_every_registered_type_is_covered():
    builtin = _builtin_types()
    assert len(builtin) >= 80
    missing = sorted(builtin - set(CASES) - set(NOT_EXPORTABLE))
    assert not missing, f"no example layer for: {missing} (add one to test_layer_contract.py)"
    listed = set(ROUND_TRIP_GAPS) | set(OPERATOR_FORMS) | set(NOT_EXPORTABLE)
    stale = sorted(listed - builtin)
    assert not stale, f"listed here but not registered: {stale}"


def _input_layer(shape: tuple, name: str, data: torch.Tensor) -> L.InputLayer:
    if not data.is_floating_point():
        return L.TensorInput(shape, name=name)
    if len(shape) == 1 and shape[0] is not None:
        return L.FeatureInput(shape[0], name=name)
    if len(shape) == 2 and shape[1] is not None:
        return L.SequenceInput(shape[1], length=shape[0], name=name)
    if len(shape) == 3 and None not in shape:
        return L.ImageInput(shape, normalization="none", name=name)
    if len(shape) == 4 and None not in shape:
        return L.VolumeInput(shape, normalization="none", name=name)
    return L.TensorInput(shape, name=name)


def _network(type_name: str) -> tuple[Network, list[torch.Tensor]]:
    """The example layer named ``target``, fed by one input layer per input; an input layer
    itself is followed by a Tanh (a network needs an output that is not its input)."""
    case = CASES[type_name]
    inputs = case.inputs()
    layer = case.make()
    net = Network(name=f"every_{type_name.lower()}")
    with net.editing():
        if not case.shapes:
            layer.name = "target"
            net.add_layers([layer, L.Tanh(name="after")])
        else:
            for i, (shape, x) in enumerate(zip(case.shapes, inputs, strict=True)):
                net.add_layers(_input_layer(shape, f"x{i}", x))
            net.add_layers({"target": layer})
            ports = input_ports(layer)
            for i in range(len(case.shapes)):
                net.connect(f"x{i}", f"target/{ports[i]}")
    net.initialize()
    generator = torch.Generator().manual_seed(len(type_name))
    with torch.no_grad():  # random weights: defaults (unit scales, zero biases) hide mistakes
        for tensor in net.parameters():
            tensor.add_(torch.randn(tensor.shape, generator=generator) * 0.1)
    return net.eval(), inputs


def _run(net: Network, inputs: list[torch.Tensor]) -> np.ndarray:
    with torch.no_grad():
        return net(*inputs).float().numpy()


def _onnxruntime(path: Path, inputs: list[torch.Tensor]) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {arg.name: x.numpy() for arg, x in zip(session.get_inputs(), inputs, strict=True)}
    return np.asarray(session.run(None, feeds)[0], dtype=np.float32)


def _marked(type_name: str, gaps: dict[str, str]):
    if type_name in gaps:
        return pytest.param(type_name, marks=pytest.mark.xfail(strict=True, reason=gaps[type_name]))
    return type_name


EXPORTED = sorted(CASES)


@pytest.mark.parametrize("type_name", [_marked(t, ROUND_TRIP_GAPS) for t in EXPORTED])
def test_the_layer_round_trips_through_onnx(type_name, tmp_path):
    net, inputs = _network(type_name)
    path = export_onnx(net, tmp_path / "layer.onnx", example_inputs=inputs)
    want = _run(net, inputs)
    np.testing.assert_allclose(_onnxruntime(path, inputs), want, atol=ATOL)
    imported = import_onnx(path)
    np.testing.assert_allclose(_run(imported, inputs), want, atol=ATOL)


@pytest.mark.parametrize(
    "type_name",
    [_marked(t, {**ROUND_TRIP_GAPS, **OPERATOR_FORMS}) for t in EXPORTED],
)
def test_the_layer_comes_back_as_its_type(type_name, tmp_path):
    net, inputs = _network(type_name)
    imported = import_onnx(export_onnx(net, tmp_path / "layer.onnx", example_inputs=inputs))
    kinds = {name: type(imported.layer(name)).__name__ for name in imported.layer_names}
    assert kinds.get("target") == type_name, kinds


def _placeholder(type_name: str):
    if type_name == "OnnxPlaceholder":
        from deeptoolbox.interop import OnnxPlaceholder

        return OnnxPlaceholder("NonMaxSuppression", name="target")
    from deeptoolbox.interop.keras._placeholder import KerasPlaceholder

    return KerasPlaceholder("MyScale", output_size=(4,), input_sizes=[(4,)], name="target")


@pytest.mark.parametrize("type_name", sorted(NOT_EXPORTABLE))
def test_placeholders_cannot_be_exported_and_say_which_layer(type_name, tmp_path):
    net = Network([L.FeatureInput(4, name="x"), _placeholder(type_name)])
    with pytest.raises(ModelExportError, match=r"placeholder.*replace_layer\('target'"):
        export_onnx(net, tmp_path / "layer.onnx")
    assert not (tmp_path / "layer.onnx").exists()


def test_the_docs_list_the_types_that_come_back_as_other_layers():
    """docs/interop-onnx.md's table names exactly the types listed here (with their reasons)."""
    import re

    text = (Path(__file__).parents[2] / "docs" / "interop-onnx.md").read_text()
    table = text.split("<!-- onnx-other-forms: start -->")[1].split("<!-- onnx-other-forms: end")[0]
    rows = [line.split("|")[1] for line in table.splitlines()[2:] if line.startswith("|")]
    named = {name for row in rows for name in re.findall(r"`(\w+)`", row)}
    assert named == set(OPERATOR_FORMS) | set(ROUND_TRIP_GAPS)
