"""No code outside deeptoolbox/network reads or writes private state of a Network.

Importers, exporters and generated code build and inspect networks through the public
editing API (``net.editing()``, ``add_layers``, ``connect``, ``execution_order``,
``input_sizes``...), so the Network can change its internals freely.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from torch import nn

import deeptoolbox
from deeptoolbox import Network
from deeptoolbox import layers as L

SOURCE = Path(deeptoolbox.__file__).parent
ISSUE_PATTERN = re.compile(r"\._deferred|\._connect|\._changed")  # issue 12's grep


def _outside_network() -> list[Path]:
    files = sorted(SOURCE.rglob("*.py"))
    assert len(files) > 50  # the package sources are there
    return [f for f in files if "network" not in f.relative_to(SOURCE).parts[:1]]


def _private_names() -> set[str]:
    """Private attributes of Network that plain nn.Modules do not have."""
    module_names = set(vars(nn.Module)) | set(vars(nn.Module()))
    net = Network([L.FeatureInput(2), L.Dense(1)])
    found = {n for n in [*vars(Network), *vars(net)] if n.startswith("_") and not n.endswith("__")}
    return found - module_names


def test_the_issue_grep_finds_nothing_outside_network():
    hits = []
    for path in _outside_network():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if ISSUE_PATTERN.search(line):
                hits.append(f"{path.relative_to(SOURCE)}:{number}: {line.strip()}")
    assert hits == []


def test_no_private_network_attribute_is_used_outside_network():
    private = _private_names()
    assert {"_resolution", "_plan", "_connections", "_deferred", "_resolve"} <= private
    hits = []
    for path in _outside_network():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or node.attr not in private:
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue  # another class's own state of the same name (data._classes)
            hits.append(f"{path.relative_to(SOURCE)}:{node.lineno}: .{node.attr}")
    assert hits == []


def test_the_check_sees_a_private_access(tmp_path):
    code = "def f(net):\n    net._resolution.order\n    net._changed()\n"
    tree = ast.parse(code)
    names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert {"_resolution", "_changed"} <= names & _private_names()
    assert ISSUE_PATTERN.search(code)


def test_apps_and_interop_use_the_public_graph_helpers():
    """The designer and the importers read layer records, ports and sizes through
    deeptoolbox.network's public names, not through its private modules."""
    private_modules = ("deeptoolbox.network._serialize", "deeptoolbox.network._shapes")
    hits = []
    for path in _outside_network():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in private_modules:
                hits.append(f"{path.relative_to(SOURCE)}:{node.lineno}: {node.module}")
    assert hits == []


def test_public_graph_helpers_round_trip_a_network():
    from deeptoolbox.network import (
        architecture,
        from_architecture,
        input_ports,
        layer_record,
        probe_output_size,
        resolve_layer,
    )

    net = Network([L.FeatureInput(3), L.Dense(2, name="fc")])
    rebuilt = from_architecture(architecture(net), Network)
    assert rebuilt.layer_names == net.layer_names
    assert layer_record("fc", net.layer("fc"))["config"]["units"] == 2
    assert input_ports(L.Addition(2)) == ("in1", "in2")
    assert resolve_layer(L.Dense(4), [(3,)]) == ((4,), True)
    assert probe_output_size(nn.Linear(3, 4), [(3,)]) == (4,)
