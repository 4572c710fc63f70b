"""docs/matlab-layers.md, MATLAB's layer list mapped to deeptoolbox, read as a test.

Every row names a deeptoolbox layer as a constructor call and an example input size (or says
what to use instead). Each listed layer must exist, build in a network from that input,
compute finite outputs of the size the network declares, and give the same outputs after a
save/load round trip. Rows whose notes say "ONNX round trip as it" also go through
export_onnx and import_onnx and must come back as the same layer class, computing the same.

A row may say "not yet" only for a call listed in PENDING (a layer being added in the
same release), and is skipped only while its layer is missing; PENDING is empty now.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import deeptoolbox.compress as compress
import deeptoolbox.layers as L
from deeptoolbox import Network, load, save
from deeptoolbox.errors import OptionError
from deeptoolbox.layers import InputLayer, Layer
from deeptoolbox.network import NetworkLayer
from deeptoolbox.network._shapes import input_ports

PAGE = Path(__file__).parents[2] / "docs" / "matlab-layers.md"
CATEGORIES = [
    "Input", "Convolution and fully connected", "Sequence", "Activation", "Normalization",
    "Dropout and cropping", "Pooling and unpooling", "Combination", "Data manipulation",
    "Attention and transformers",
]  # fmt: skip
PENDING: set[str] = set()
"""Rows allowed to say "not yet" (a layer being added in the same release): none now."""
LENGTH = 5  # the length given to free time axes (T)


@dataclass(frozen=True)
class Row:
    category: str
    matlab: str
    toolbox: str
    example: str
    notes: str = ""

    @property
    def pending(self) -> bool:
        return self.toolbox.startswith("not yet:")

    @property
    def replaced(self) -> bool:
        return self.toolbox.startswith("use instead:")

    @property
    def call(self) -> str:
        spans = re.findall(r"`([^`]+)`", self.toolbox)
        assert len(spans) == 1, f"{self.matlab}: one constructor call expected, got {spans}"
        return spans[0]


def _rows() -> list[Row]:
    rows, category = [], None
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            category = line[3:].strip()
        elif line.startswith("| ") and not line.startswith(("| MATLAB layer", "| ---")):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            assert len(cells) == 4, f"a row of four cells expected: {line}"
            rows.append(Row(category, cells[0], cells[1], cells[2], cells[3]))
    return rows


ROWS = _rows()
LAYER_ROWS = [r for r in ROWS if not r.replaced]


def _small_network() -> Network:
    return Network([L.SequenceInput(3), L.Dense(4), L.Tanh(), L.Dense(2)], name="inner")


def _resolve(function: ast.expr) -> type | None:
    """The class a call names: ``L.X``, ``compress.X`` or ``NetworkLayer``; None if absent."""
    if isinstance(function, ast.Name) and function.id == "NetworkLayer":
        return NetworkLayer
    modules = {"L": L, "compress": compress}
    owner = function.value if isinstance(function, ast.Attribute) else None
    if isinstance(owner, ast.Name) and owner.id in modules:
        return getattr(modules[owner.id], function.attr, None)
    raise AssertionError(f"unknown callee {ast.unparse(function)}")


def _value(node: ast.expr):
    if isinstance(node, ast.Name) and node.id == "network":
        return _small_network()
    return ast.literal_eval(node)


def _make(row: Row) -> Layer:
    tree = ast.parse(row.call, mode="eval").body
    assert isinstance(tree, ast.Call), f"{row.matlab}: {row.call} is not a call"
    cls = _resolve(tree.func)
    if cls is None and row.pending:
        pytest.skip(f"{row.call}: not in deeptoolbox yet (listed in PENDING)")
    assert cls is not None, f"{row.matlab}: {row.call} names no deeptoolbox layer"
    arguments = [_value(a) for a in tree.args]
    keywords = {k.arg: _value(k.value) for k in tree.keywords}
    try:
        return cls(*arguments, **keywords)
    except OptionError:
        if row.pending:
            pytest.skip(f"{row.call}: option not supported yet (listed in PENDING)")
        raise


def _sizes(example: str) -> list[tuple]:
    sizes = []
    for part in example.split(";"):
        text = part.strip().replace("T", "None")
        value = ast.literal_eval(text)
        sizes.append(value if isinstance(value, tuple) else (value,))
    return sizes


def _input_layer(shape: tuple, name: str) -> InputLayer:
    if len(shape) == 1:
        return L.FeatureInput(shape[0], name=name)
    if len(shape) == 2:
        return L.SequenceInput(shape[1], length=shape[0], name=name)
    if len(shape) == 3:
        return L.ImageInput(shape, normalization="none", name=name)
    return L.VolumeInput(shape, normalization="none", name=name)


def _network(row: Row, layer: Layer) -> tuple[Network, list[torch.Tensor]]:
    if isinstance(layer, InputLayer):
        net = Network([layer, L.ReLU(name="after")])
        shape = tuple(LENGTH if d is None else d for d in layer.shape)
        return net, [torch.rand(2, *shape) * 3]
    sizes = _sizes(row.example)
    ports = input_ports(layer)
    assert len(sizes) == len(ports), f"{row.matlab}: {len(ports)} ports {ports}, sizes {sizes}"
    net = Network(name="row")
    for index, shape in enumerate(sizes):
        net.add_layers(_input_layer(shape, f"input{index}"))
    net.add_layers({"layer": layer})
    for index, port in enumerate(ports):
        net.connect(f"input{index}", f"layer/{port}")
    data = [torch.rand(2, *(LENGTH if d is None else d for d in s)) * 3 for s in sizes]
    return net, data


def test_the_page_has_every_category_and_only_known_rows_pending():
    found = {r.category for r in ROWS}
    assert set(CATEGORIES) <= found, f"missing categories: {set(CATEGORIES) - found}"
    pending = {r.call for r in ROWS if r.pending}
    assert pending <= PENDING, f"rows marked 'not yet' outside PENDING: {pending - PENDING}"
    assert len(LAYER_ROWS) >= 60


def test_every_public_layer_class_is_in_the_table():
    text = PAGE.read_text(encoding="utf-8")
    infrastructure = {"Layer", "StatefulLayer", "InputLayer"}
    public = [
        name for name in L.__all__
        if isinstance(getattr(L, name), type) and issubclass(getattr(L, name), Layer)
        and name not in infrastructure
    ]  # fmt: skip
    missing = [name for name in public if f"L.{name}(" not in text]
    assert not missing, f"add rows to docs/matlab-layers.md for: {missing}"


@pytest.mark.parametrize("row", LAYER_ROWS, ids=lambda r: f"{r.matlab}->{r.call}")
def test_row_builds_runs_and_round_trips(row, tmp_path):
    torch.manual_seed(0)
    layer = _make(row)
    net, data = _network(row, layer)
    assert net.issues == [], f"{row.call}: {net.issues}"
    net.eval()
    with torch.no_grad():
        output = net(*data)
    declared = net.output_shape()
    assert len(declared) == output.dim() - 1
    assert all(d is None or d == n for d, n in zip(declared, output.shape[1:], strict=True))
    assert torch.isfinite(output).all()
    again = load(save(net, tmp_path / "row.zip")).eval()
    name = net.input_names[0] if isinstance(layer, InputLayer) else "layer"
    assert type(again.layer(name)) is type(layer)
    with torch.no_grad():
        torch.testing.assert_close(again(*data), output, rtol=0, atol=0)


ONNX_ROWS = [r for r in LAYER_ROWS if "ONNX round trip as it" in r.notes]


@pytest.mark.parametrize("row", ONNX_ROWS, ids=lambda r: f"{r.matlab}->{r.call}")
def test_onnx_round_trip_rows_come_back_as_the_same_layer(row, tmp_path):
    from deeptoolbox.interop import export_onnx, import_onnx

    torch.manual_seed(0)
    layer = _make(row)
    net, data = _network(row, layer)
    net.eval()
    back = import_onnx(export_onnx(net, tmp_path / "row.onnx")).eval()
    name = net.input_names[0] if isinstance(layer, InputLayer) else "layer"
    assert type(back.layer(name)) is type(layer)
    with torch.no_grad():
        torch.testing.assert_close(back(*data), net(*data), rtol=1e-4, atol=1e-5)


def test_some_rows_promise_an_onnx_round_trip():
    assert len(ONNX_ROWS) >= 4, [r.call for r in ONNX_ROWS]


@pytest.mark.parametrize("row", [r for r in ROWS if r.replaced], ids=lambda r: r.matlab)
def test_use_instead_rows_name_something_that_exists(row):
    text = row.toolbox.removeprefix("use instead:").strip()
    assert text, f"{row.matlab}: say what to use instead"
    for callee in re.findall(r"\bL\.(\w+)\(", text):
        assert hasattr(L, callee), f"{row.matlab}: L.{callee} does not exist"
    for callee in re.findall(r"`(\w+)\(", text):
        assert callee in {"train"} or hasattr(L, callee), f"{row.matlab}: {callee}?"
