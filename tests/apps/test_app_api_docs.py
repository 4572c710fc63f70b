"""docs/apps.md's edit requests and upload, sent as the page writes them, so the docs cannot
drift from the server."""

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from deeptoolbox import Network, save
from deeptoolbox import layers as L
from deeptoolbox.apps import AppOptions, DesignerSession, create_app
from deeptoolbox.apps._session import EDITS

DOC = Path(__file__).resolve().parents[2] / "docs" / "apps.md"
TOKEN = "d" * 32


def _section() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("### Edit requests (`POST /api/edit`)")
    return text[start : text.index("\n## ", start)]


def _documented_bodies() -> list[dict]:
    block = re.search(r"```json\n(.*?)```", _section(), re.S)
    assert block, "the edit requests section has no ```json block of bodies"
    return [json.loads(line) for line in block.group(1).splitlines() if line.strip()]


def _documented_fields() -> dict[str, set[str]]:
    """op -> the field names of its table row."""
    rows = re.findall(r"^\| `(\w+)` \| (.*?) \| .* \|$", _section(), re.M)
    return {op: set(re.findall(r"`(\w+)`", fields)) for op, fields in rows if op != "op"}


def _network() -> Network:
    return Network([
        L.ImageInput((1, 12, 12), name="input"), L.Conv2d(4, 3, name="conv1"),
        L.ReLU(name="relu1"), L.Flatten(name="flat"), L.Dense(10, name="fc"),
        L.Softmax(name="softmax"),
    ])  # fmt: skip


@pytest.fixture
def client(tmp_path):
    app = create_app(DesignerSession(_network()), AppOptions(root=tmp_path, token=TOKEN))
    with TestClient(app, headers={"X-Deeptoolbox-Token": TOKEN}) as test_client:
        yield test_client


def test_the_documented_network_is_the_one_the_bodies_are_sent_to():
    assert " → ".join(_network().layer_names) in _section().replace("\n", " ")


def test_every_edit_op_is_documented_with_the_fields_it_reads():
    fields = _documented_fields()
    assert set(fields) == set(EDITS)
    bodies = _documented_bodies()
    assert {body["op"] for body in bodies} == set(EDITS)  # an example body of each op
    for body in bodies:
        assert set(body) - {"op"} <= fields[body["op"]], body


def test_the_documented_edit_bodies_succeed_in_order(client):
    for body in _documented_bodies():
        response = client.post("/api/edit", json=body)
        assert response.status_code == 200, (body, response.text)
    graph = response.json()
    layers = {layer["name"]: layer for layer in graph["layers"]}
    assert "side" not in layers and {"add", "relu_1"} <= set(layers)
    assert graph["classes"] == ["cat", "dog", "bird"]
    assert layers["fc"]["learn_rate_factor"] == 10 and layers["conv1"]["learn_rate_factor"] == 0.5
    assert not any(layer["frozen"] for layer in graph["layers"])  # the last freeze unfroze all
    assert {"source": "relu1", "destination": "add", "port": "in2"} in graph["connections"]


def test_the_documented_upload_url_opens_the_raw_file(client, tmp_path):
    text = DOC.read_text(encoding="utf-8")
    (url,) = re.findall(r"`(/api/upload\?filename=[^`]+\.\w+)`", text)  # the example's file
    filename = url.split("=", 1)[1]
    data = save(Network([L.FeatureInput(3, name="x"), L.Dense(2, name="y")]), tmp_path / filename)
    graph = client.post(url, content=data.read_bytes()).json()
    assert [layer["name"] for layer in graph["layers"]] == ["x", "y"]
    assert client.post("/api/upload", content=data.read_bytes()).status_code == 422
    refused = client.post("/api/upload?filename=model.bin", content=b"x")
    assert refused.status_code == 400
    for suffix in re.findall(r"`(\.\w+)`", text[text.index("`POST /api/upload?filename=") :])[:4]:
        assert (
            suffix in refused.json()["detail"]
        )  # the extensions the docs list are the allowed ones
