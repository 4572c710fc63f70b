"""network/ modules depend one way: _network imports _analyze and _serialize, never the reverse."""

import ast
from pathlib import Path

import pytest

import deeptoolbox.network as network_package
from deeptoolbox import Network
from deeptoolbox import layers as L

PACKAGE = Path(network_package.__file__).parent


def _runtime_imports(path: Path) -> set[str]:
    """Modules imported by ``path`` outside ``if TYPE_CHECKING:`` blocks (lazy ones too)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            skipped |= {id(child) for child in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


@pytest.mark.parametrize("module", ["_analyze", "_serialize"])
def test_analysis_and_serialization_never_import_the_network_module(module):
    assert "deeptoolbox.network._network" not in _runtime_imports(PACKAGE / f"{module}.py")


def test_the_import_scan_sees_a_lazy_import_and_skips_type_checking_blocks(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\n"
        "def f():\n    from b import c\n"
    )
    assert _runtime_imports(path) == {"typing", "b"}


class _Subnet(Network):
    pass


def test_from_json_builds_the_class_it_is_called_on():
    text = Network([L.FeatureInput(2), L.Dense(1, name="fc")]).to_json()
    rebuilt = _Subnet.from_json(text)
    assert type(rebuilt) is _Subnet and rebuilt.layer_names == ["featureinput_1", "fc"]
    assert type(Network.from_json(text)) is Network
