"""The ONNX operator registry: every supported op in one place, joined from the operator
modules whatever the import order, and the docs table generated from it.

Run ``python tests/interop/test_onnx_registry.py --update`` to rewrite the docs table.
"""

import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import deeptoolbox.interop.onnx._registry as registry
from deeptoolbox.interop import onnx_operator_table, supported_onnx_operators

DOCS = Path(__file__).parents[2] / "docs" / "interop-onnx.md"
_TABLE = re.compile(
    r"(<!-- onnx-operators: start[^\n]*-->\n)(.*?)(\n<!-- onnx-operators: end -->)", re.S
)


def _docs_table() -> str:
    found = _TABLE.search(DOCS.read_text())
    assert found, f"{DOCS} lost its onnx-operators markers"
    return found.group(2).strip()


def test_the_docs_list_exactly_the_registry():
    assert _docs_table() == onnx_operator_table(), (
        "docs/interop-onnx.md lists other operators than the registry; run "
        "`PYTHONPATH=src python tests/interop/test_onnx_registry.py --update`"
    )
    listed = [row.split("|")[1].strip() for row in _docs_table().splitlines()[2:]]
    assert listed == supported_onnx_operators() == sorted(registry.OPERATORS)


def test_the_registry_is_the_union_of_every_operator_module():
    union = {}
    for module in registry.OPERATOR_MODULES:
        assert module.OPERATORS, module.__name__
        union.update(module.OPERATORS)
    assert dict(registry.OPERATORS) == union
    assert {"Conv", "Flatten", "Resize", "LSTM", "GRU", "RNN", "Gather"} <= set(union)
    with pytest.raises(TypeError):
        registry.OPERATORS["Conv"] = None  # read-only: ops are added in their module


def test_an_op_defined_in_two_modules_is_refused():
    first = types.SimpleNamespace(__name__="first", OPERATORS={"Relu": print})
    second = types.SimpleNamespace(__name__="second", OPERATORS={"Relu": repr})
    with pytest.raises(RuntimeError, match="'Relu' is defined in both first and second"):
        registry._join([first, second])


def test_the_operator_layers_see_every_op_whichever_module_is_imported_first():
    code = (
        "import deeptoolbox.interop.onnx._ops_tensor\n"  # once the first to be imported
        "from deeptoolbox.interop.onnx._layers import OPERATORS\n"
        "print(len(OPERATORS), 'Resize' in OPERATORS, 'LSTM' in OPERATORS)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(len(registry.OPERATORS)), "True", "True"]


def _update_docs() -> None:
    text = DOCS.read_text()
    DOCS.write_text(_TABLE.sub(lambda m: m.group(1) + onnx_operator_table() + m.group(3), text))


if __name__ == "__main__" and "--update" in sys.argv:
    _update_docs()
