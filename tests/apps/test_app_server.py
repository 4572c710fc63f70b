"""The apps server's JSON API, through httpx (FastAPI's TestClient)."""

import json
import time

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from deeptoolbox import Network, load, save
from deeptoolbox import layers as L
from deeptoolbox.apps import AppOptions, DesignerSession, create_app
from deeptoolbox.network import to_python

TOKEN = "t" * 32


def _lenet_head() -> Network:
    return Network([
        L.ImageInput((1, 12, 12), name="input"),
        L.Conv2d(4, 3, padding=0, name="conv1"),
        L.ReLU(name="relu1"),
        L.Flatten(name="flat"),
        L.Dense(10, name="fc"),
        L.Softmax(name="softmax"),
    ])  # fmt: skip


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / "root"
    folder.mkdir()
    return folder


@pytest.fixture
def client(root):
    app = create_app(
        DesignerSession(_lenet_head()), AppOptions(root=root, token=TOKEN, max_upload_bytes=50_000)
    )
    with TestClient(app, headers={"X-Deeptoolbox-Token": TOKEN}) as test_client:
        yield test_client


def _edit(client, **request):
    return client.post("/api/edit", json=request)


def test_every_api_route_refuses_a_missing_or_wrong_token(root):
    app = create_app(options=AppOptions(root=root, token=TOKEN))
    anonymous, wrong = TestClient(app), TestClient(app, headers={"X-Deeptoolbox-Token": "x" * 32})
    routes = [(r.path, sorted(r.methods)[0]) for r in app.routes if r.path.startswith("/api/")]
    assert len(routes) >= 15
    for path, method in routes:
        url = path.replace("{run_id}", "run1")
        assert anonymous.request(method, url).status_code == 401, url
        assert wrong.request(method, url).status_code == 401, url
    assert anonymous.get("/").status_code == 401
    assert anonymous.get("/openapi.json").status_code == 401
    assert anonymous.get(f"/api/graph?token={TOKEN}").status_code == 200


def test_graph_has_sizes_learnables_ports_and_the_analyze_table(client):
    graph = client.get("/api/graph").json()
    rows = {layer["name"]: layer for layer in graph["layers"]}
    assert rows["conv1"]["output_size"] == [4, 10, 10]
    assert rows["conv1"]["learnables"] == 4 * 9 + 4
    assert rows["fc"]["learnables"] == 400 * 10 + 10
    assert rows["conv1"]["category"] == "Convolution"
    assert rows["fc"]["inputs"] == ["in"] and rows["fc"]["config"]["units"] == 10
    assert graph["ok"] and graph["total_learnables"] == 40 + 4010
    assert "Network 'network': 6 layers" in graph["table"]
    assert {"source": "conv1", "destination": "relu1", "port": "in"} in graph["connections"]
    assert graph["can_undo"] is False


def test_library_groups_layers_with_their_fields(client):
    library = client.get("/api/library").json()
    by_type = {entry["type"]: entry for entry in library}
    assert by_type["Conv2d"]["category"] == "Convolution"
    fields = {f["name"]: f for f in by_type["Conv2d"]["fields"]}
    assert fields["filters"]["required"] and fields["stride"]["default"] == 1
    assert by_type["Addition"]["inputs"] == ["in1", "in2"]
    assert "Layer" not in by_type


def test_edits_add_connect_rename_duplicate_set_remove_and_undo_redo(client):
    _edit(client, op="remove", names=["softmax"])
    graph = _edit(client, op="add", type="Dense", config={"units": 3}, name="fc2").json()
    assert next(x for x in graph["layers"] if x["name"] == "fc2")["output_size"] is None
    graph = _edit(client, op="connect", source="fc", destination="fc2").json()
    assert next(x for x in graph["layers"] if x["name"] == "fc2")["output_size"] == [3]
    graph = _edit(client, op="rename", name="fc2", new_name="head").json()
    assert [x["name"] for x in graph["layers"]][-1] == "head"
    assert {"source": "fc", "destination": "head", "port": "in"} in graph["connections"]
    graph = _edit(client, op="set", name="head", config={"units": 5}).json()
    assert next(x for x in graph["layers"] if x["name"] == "head")["output_size"] == [5]
    graph = _edit(client, op="duplicate", name="head").json()
    assert graph["layers"][-1]["type"] == "Dense" and graph["layers"][-1]["config"]["units"] == 5
    graph = _edit(client, op="disconnect", source="fc", destination="head").json()
    assert next(x for x in graph["layers"] if x["name"] == "head")["issues"]
    graph = client.post("/api/undo").json()
    assert {"source": "fc", "destination": "head", "port": "in"} in graph["connections"]
    assert graph["can_redo"]
    graph = client.post("/api/redo").json()
    assert {"source": "fc", "destination": "head", "port": "in"} not in graph["connections"]
    assert client.post("/api/redo").status_code == 400


def test_a_size_mismatch_is_shown_on_both_layers(client):
    _edit(client, op="add", type="Addition", name="add")
    _edit(client, op="connect", source="relu1", destination="add/in1")
    graph = _edit(client, op="connect", source="input", destination="add/in2").json()
    rows = {layer["name"]: layer for layer in graph["layers"]}
    assert not graph["ok"]
    for name in ("add", "relu1", "input"):
        assert any("same size" in i["message"] for i in rows[name]["issues"]), name
    assert "ERROR" in graph["table"]


def test_transfer_learning_edits(client):
    graph = _edit(client, op="replace_head", classes=["a", "b", "c"], learn_rate_factor=10).json()
    rows = {layer["name"]: layer for layer in graph["layers"]}
    assert rows["fc"]["output_size"] == [3] and rows["fc"]["learn_rate_factor"] == 10
    assert graph["classes"] == ["a", "b", "c"]
    graph = _edit(client, op="freeze", up_to="conv1").json()
    assert [x["name"] for x in graph["layers"] if x["frozen"]] == ["input", "conv1"]
    graph = _edit(client, op="learn_rate_factor", names=["conv1"], factor=0.5).json()
    assert next(x for x in graph["layers"] if x["name"] == "conv1")["learn_rate_factor"] == 0.5
    graph = _edit(client, op="freeze").json()
    assert not any(x["frozen"] for x in graph["layers"])


@pytest.mark.parametrize(
    "request_body, words",
    [
        ({"op": "explode"}, "unknown op"),
        ({"op": "add", "type": "NoSuchLayer"}, "NoSuchLayer"),
        ({"op": "add", "type": "Dense", "config": {"units": -2}}, "units"),
        ({"op": "add", "type": "Dense", "config": {"nonsense": 1, "units": 2}}, "nonsense"),
        ({"op": "add", "type": "Dense", "config": [1, 2]}, "config"),
        ({"op": "connect", "source": "nowhere", "destination": "fc"}, "nowhere"),
        ({"op": "connect", "source": 3, "destination": "fc"}, "source"),
        ({"op": "set", "name": "conv1", "config": {"filters": 0}}, "filters"),
        ({"op": "rename", "name": "fc", "new_name": "conv1"}, "conv1"),
        ({"op": "rename", "name": "fc", "new_name": "bad name"}, "bad name"),
        ({"op": "remove", "names": "fc"}, "names"),
        ({"op": "learn_rate_factor", "names": ["fc"], "factor": -1}, "factor"),
        ({"op": "freeze", "up_to": "ghost"}, "ghost"),
        ({"op": "replace_head", "classes": 0}, "classes"),
    ],
)
def test_bad_edits_are_clear_4xx_and_leave_the_network_unchanged(client, request_body, words):
    before = client.get("/api/network.json").json()
    response = client.post("/api/edit", json=request_body)
    assert 400 <= response.status_code < 500, response.text
    assert words in response.json()["detail"]
    assert client.get("/api/network.json").json() == before


@pytest.mark.parametrize(
    "body",
    [
        "not json at all",
        {"format": "something else"},
        {"format": "deeptoolbox.network", "format_version": 2, "layers": [{"name": "x"}]},
        {"format": "deeptoolbox.network", "format_version": 2,
         "layers": [{"name": "x", "type": "Dense", "config": {"units": "many"}}]},
        {"format": "deeptoolbox.network", "format_version": 2, "layers": [],
         "connections": [["a", "b"]]},
        {"format": "deeptoolbox.network", "format_version": 99},
        [1, 2, 3],
    ],
)  # fmt: skip
def test_malformed_graphs_are_refused_with_a_4xx(client, body):
    if isinstance(body, str):
        response = client.put("/api/graph", content=body,
                              headers={"content-type": "application/json"})  # fmt: skip
    else:
        response = client.put("/api/graph", json=body)
    assert 400 <= response.status_code < 500, response.text
    assert client.get("/api/graph").json()["layers"][1]["name"] == "conv1"


def test_put_graph_round_trips_network_json(client):
    other = Network([L.FeatureInput(3, name="x"), L.Dense(2, name="y")], name="small")
    graph = client.put("/api/graph", json=json.loads(other.to_json())).json()
    assert graph["name"] == "small" and [x["name"] for x in graph["layers"]] == ["x", "y"]
    assert client.get("/api/network.json").json() == json.loads(other.to_json())
    assert client.post("/api/undo").json()["layers"][1]["name"] == "conv1"
    assert client.post("/api/new", json={"name": "blank"}).json()["layers"] == []


def test_python_export_rebuilds_the_same_network_json(client):
    _edit(client, op="freeze", up_to="conv1")
    code = client.get("/api/python").json()["code"]
    namespace: dict = {}
    exec(code, namespace)
    rebuilt = namespace["build_network"]()
    assert json.loads(rebuilt.to_json()) == client.get("/api/network.json").json()


def test_save_and_open_inside_the_root(client, root):
    assert client.post("/api/save", json={"path": "nets/lenet.zip"}).json() == {
        "path": "nets/lenet.zip"
    }
    assert load(root / "nets" / "lenet.zip").layer_names[1] == "conv1"
    client.post("/api/save", json={"path": "code/build.py", "format": "python"})
    assert "def build_network" in (root / "code" / "build.py").read_text()
    client.post("/api/new", json={})
    graph = client.post("/api/open", json={"path": "nets/lenet.zip"}).json()
    assert graph["layers"][1]["name"] == "conv1"
    listing = client.get("/api/files", params={"folder": "nets"}).json()
    assert listing["entries"] == [{"name": "lenet.zip", "folder": False, "path": "nets/lenet.zip"}]
    response = client.post("/api/save", json={"path": "x.zip", "format": "pickle"})
    assert response.status_code == 400 and "pickle" in response.json()["detail"]
    response = client.post("/api/save", json={"path": "net.onnx"})  # toolbox format by default
    assert response.status_code == 400
    assert "'net.onnx' ends in .onnx, which is a onnx file" in response.json()["detail"]
    assert not (root / "net.onnx").exists()
    response = client.post("/api/open", json={"path": "missing.zip"})
    assert response.status_code == 404


def test_onnx_save_and_open(client, root):
    pytest.importorskip("onnx")
    assert (
        client.post("/api/save", json={"path": "lenet.onnx", "format": "onnx"}).status_code == 200
    )
    graph = client.post("/api/open", json={"path": "lenet.onnx"}).json()
    assert graph["layers"][-1]["output_size"] == [10]


@pytest.mark.parametrize("path", ["../outside.zip", "nets/../../outside.zip", "/etc/passwd",
                                  "/tmp/elsewhere.zip"])  # fmt: skip
def test_paths_outside_the_root_are_refused(client, root, path):
    for response in (
        client.post("/api/open", json={"path": path}),
        client.post("/api/save", json={"path": path}),
        client.get("/api/files", params={"folder": path}),
    ):
        assert response.status_code == 403, response.text
        assert "outside the folder" in response.json()["detail"]
    assert not (root.parent / "outside.zip").exists()


def test_a_symlink_out_of_the_root_is_refused(client, root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    save(_lenet_head(), outside / "net.zip")
    (root / "link").symlink_to(outside)
    assert client.post("/api/open", json={"path": "link/net.zip"}).status_code == 403


def test_upload_opens_a_model_and_the_size_limit_holds(client, tmp_path):
    small = save(Network([L.FeatureInput(3, name="x"), L.Dense(2, name="y")]), tmp_path / "s.zip")
    data = small.read_bytes()
    graph = client.post("/api/upload", params={"filename": "s.zip"}, content=data).json()
    assert [x["name"] for x in graph["layers"]] == ["x", "y"]
    response = client.post("/api/upload", params={"filename": "big.zip"}, content=b"0" * 60_000)
    assert response.status_code == 413 and "50,000" in response.json()["detail"]
    response = client.post("/api/upload", params={"filename": "bad.exe"}, content=b"MZ")
    assert response.status_code == 400
    response = client.post("/api/upload", params={"filename": "m.pt2"}, content=b"PK")
    assert response.status_code == 400 and "--trust-code" in response.json()["detail"]
    response = client.post("/api/upload", params={"filename": "broken.zip"}, content=b"junk")
    assert 400 <= response.status_code < 500
    assert client.post("/api/upload", content=data).status_code == 422


def test_the_openapi_schema_documents_the_api(client):
    schema = client.get("/openapi.json").json()
    assert {"/api/graph", "/api/edit", "/api/library", "/api/save", "/api/runs"} <= set(
        schema["paths"]
    )


def test_to_python_of_the_designer_network_matches(client):
    session_net = Network.from_json(json.dumps(client.get("/api/network.json").json()))
    assert to_python(session_net) == client.get("/api/python").json()["code"]


def test_experiment_routes_list_table_and_trial(client, root):
    experiments = pytest.importorskip("deeptoolbox.experiments")

    def setup(params, monitor):
        monitor.metrics = ["loss"]
        monitor.record(1, loss=params["x"] * 2)
        return {}

    experiments.Experiment("e1", setup, {"x": [1.0, 2.0]}, metric="loss", direction="minimize",
                           store=root / "experiments.db", artifacts=False).run(
        workers=0, verbose=False)  # fmt: skip
    listing = client.get("/api/experiments").json()["experiments"]
    assert [e["name"] for e in listing] == ["e1"] and listing[0]["counts"] == {"completed": 2}
    table = client.get("/api/experiments/e1").json()
    assert table["metric"] == "loss" and sorted(r["loss"] for r in table["rows"]) == [2.0, 4.0]
    trial = client.get("/api/experiments/e1/trials/1").json()
    assert trial["params"] == {"x": 2.0} and trial["value"] == 4.0
    assert client.get("/api/experiments/nope").status_code == 404
    assert client.get("/api/experiments/e1/trials/7").status_code == 404
    assert client.get("/api/experiments", params={"store": "../x.db"}).status_code == 403
    assert client.get("/api/experiments", params={"store": "notes.txt"}).status_code == 400


def test_experiment_table_puts_its_metric_right_after_the_parameters(client, root):
    """The metric the experiment is judged by comes before the other metrics and the
    bookkeeping columns, so the page shows it without scrolling to the far right."""
    experiments = pytest.importorskip("deeptoolbox.experiments")

    def setup(params, monitor):
        monitor.metrics = ["aaa_loss", "mmm", "score", "zzz"]
        monitor.record(1, aaa_loss=1.0, mmm=2.0, score=params["x"], zzz=3.0)
        return {}

    experiments.Experiment("order", setup, {"x": [1.0, 2.0], "y": [0]}, metric="score",
                           store=root / "experiments.db", artifacts=False).run(
        workers=0, verbose=False)  # fmt: skip
    table = client.get("/api/experiments/order").json()
    columns = table["columns"]
    assert columns[:6] == ["trial", "status", "x", "y", "score", "best_score"], columns
    assert {"aaa_loss", "mmm", "zzz", "duration", "error"} <= set(columns[6:])
    assert len(columns) == len(set(columns))
    assert sorted(r["score"] for r in table["rows"]) == [1.0, 2.0]


SWEEP_SETUP = """
def setup(params, monitor):
    monitor.metrics = ["loss"]
    for step in range(1, 4):
        monitor.record(step, loss=(params["x"] - 0.3) ** 2 + 1 / step)
    return {}
"""


def _wait_for_trials(client, name: str, done: int, timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        table = client.get(f"/api/experiments/{name}").json()
        if table["counts"].get("completed", 0) >= done and table["workers"] == 0:
            return table
        time.sleep(0.3)
    raise AssertionError(f"the trials of {name} did not finish: {table}")


def test_experiment_created_and_run_from_the_app(client, root):
    pytest.importorskip("deeptoolbox.experiments")
    (root / "sweep.py").write_text(SWEEP_SETUP)
    created = client.post("/api/experiments", json={
        "name": "grid", "setup": "sweep.py:setup", "metric": "loss", "direction": "minimize",
        "parameters": {"x": [0.9, 0.1, 0.5], "scale": {"type": "fixed", "value": 2}},
    })  # fmt: skip
    assert created.status_code == 200, created.text
    assert created.json()["counts"] == {"queued": 3}
    table = client.get("/api/experiments/grid").json()
    assert table["workers"] == 0 and {row["status"] for row in table["rows"]} == {"queued"}
    started = client.post("/api/experiments/grid/run", json={"workers": 1})
    assert started.status_code == 200 and len(started.json()["workers"]) == 1
    table = _wait_for_trials(client, "grid", 3)
    by_x = {row["x"]: row["loss"] for row in table["rows"]}
    assert by_x == pytest.approx({x: (x - 0.3) ** 2 + 1 / 3 for x in (0.9, 0.1, 0.5)})
    assert client.post("/api/experiments/grid/trials/0/stop").status_code == 400  # not running
    assert client.post("/api/experiments/grid/cancel").json() == {"name": "grid",
                                                                  "cancelled": True}  # fmt: skip


def test_random_strategy_with_ranges_from_the_app(client, root):
    pytest.importorskip("deeptoolbox.experiments")
    (root / "sweep.py").write_text(SWEEP_SETUP)
    created = client.post("/api/experiments", json={
        "name": "draws", "setup": "sweep.py:setup", "metric": "loss", "direction": "minimize",
        "strategy": "random", "trials": 2,
        "parameters": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
    })  # fmt: skip
    assert created.json()["counts"] == {"queued": 2}


@pytest.mark.parametrize(
    ("change", "status", "names"),
    [
        ({"setup": "../sweep.py:setup"}, 403, "outside the folder"),
        ({"setup": "sweep.py:missing"}, 400, "no function 'missing'"),
        ({"setup": "sweep.py"}, 400, "file.py:function"),
        ({"setup": "no_such_module_xyz:setup"}, 400, "cannot import module"),
        ({"parameters": {"x": {"type": "normal"}}}, 400, "kind one of values, uniform"),
        ({"parameters": {"x": {"type": "uniform", "low": 0.0}}}, 400, "needs 'high'"),
        ({"store": "../x.db"}, 403, "outside the folder"),
    ],
)
def test_bad_new_experiments_are_refused_with_the_reason(client, root, change, status, names):
    pytest.importorskip("deeptoolbox.experiments")
    (root / "sweep.py").write_text(SWEEP_SETUP)
    body = {"name": "bad", "setup": "sweep.py:setup", "metric": "loss",
            "parameters": {"x": [0.1]}, **change}  # fmt: skip
    response = client.post("/api/experiments", json=body)
    assert response.status_code == status and names in response.json()["detail"], response.text


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"strategy": "grid"}, "strategy", "'exhaustive', 'random' or 'bayesian'"),
        ({"direction": "up"}, "direction", "'maximize' or 'minimize'"),
        ({"trials": -1}, "trials", "greater than or equal to 1"),
        ({"trials": "many"}, "trials", "valid integer"),
        ({"name": "a/b"}, "name", "match pattern"),
        ({"parameters": {}}, "parameters", "at least 1 item"),
        ({"parameters": [1]}, "parameters", "valid dictionary"),
        ({"workers": 2}, "workers", "Extra inputs"),
    ],
)
def test_a_malformed_new_experiment_is_422_naming_the_field(client, root, change, field, says):
    """Checked by the request model before anything runs (these were 400s from the
    Experiment's own checks, or accepted and ignored: an unknown field)."""
    (root / "sweep.py").write_text(SWEEP_SETUP)
    body = {"name": "bad", "setup": "sweep.py:setup", "metric": "loss",
            "parameters": {"x": [0.1]}, **change}  # fmt: skip
    response = client.post("/api/experiments", json=body)
    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", field] and says in problem["msg"], problem


def test_running_an_unknown_experiment_is_404(client):
    pytest.importorskip("deeptoolbox.experiments")
    assert client.post("/api/experiments/nope/run", json={}).status_code == 404
    assert client.post("/api/experiments/nope/run", json={"workers": 0}).status_code == 422


def test_start_page_lists_the_hub_and_opens_with_cached_weights(client, tmp_path, monkeypatch):
    """squeezenet1_1's weights written by the test into the cache open with the network;
    without them it opens with random weights and a note saying where the file goes."""
    import torch
    import torchvision

    from deeptoolbox import hub

    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("DEEPTOOLBOX_CACHE", str(cache))
    monkeypatch.setenv("DEEPTOOLBOX_OFFLINE", "1")
    listing = client.get("/api/pretrained").json()
    rows = {row["name"]: row for row in listing["models"]}
    assert listing["cache"] == str(cache) and len(rows) == len(hub.list_pretrained())
    assert rows["squeezenet1_1"]["cached"] is False and rows["resnet18"]["family"] == "resnet"

    opened = client.post("/api/pretrained", json={"name": "squeezenet1_1"}).json()
    assert opened["can_undo"] and any("random weights" in note for note in opened["notes"])
    assert str(cache) in " ".join(opened["notes"])

    torch.manual_seed(3)
    published = torchvision.models.squeezenet1_1()
    torch.save(published.state_dict(), cache / hub.model_info("squeezenet1_1").file_name)
    rows = {row["name"]: row for row in client.get("/api/pretrained").json()["models"]}
    assert rows["squeezenet1_1"]["cached"]
    opened = client.post("/api/pretrained", json={"name": "squeezenet1_1"}).json()
    assert opened["notes"] == []
    first_conv = published.state_dict()["features.0.weight"]
    session_net = client.app.state.session.network
    assert any(torch.equal(p.detach(), first_conv) for p in session_net.parameters())
    assert client.post("/api/undo").json()["can_redo"]  # opening it is one undoable edit


def test_start_page_refuses_an_unknown_architecture(client):
    response = client.post("/api/pretrained", json={"name": "resnet9000"})
    assert response.status_code == 400 and "'resnet9000' is not a pretrained" in response.text


def _classifier_setup(params, monitor):
    """Stores made-up validation predictions the way built-in classification training does."""
    import numpy as np

    rng = np.random.default_rng(int(params["seed"]))
    truth = rng.choice(["cat", "dog", "fox"], size=40).tolist()
    predicted = [t if rng.random() < 0.6 else str(rng.choice(["cat", "dog", "fox"]))
                 for t in truth]  # fmt: skip
    (monitor.artifacts / "validation-predictions.json").write_text(
        json.dumps({"classes": ["cat", "dog", "fox"], "truth": truth, "predicted": predicted})
    )
    monitor.metrics = ["loss"]
    monitor.record(1, loss=1.0)
    return {"loss": 1.0}


def test_trial_confusion_matrix_matches_sklearn_and_annotations_are_saved(client, root):
    experiments = pytest.importorskip("deeptoolbox.experiments")
    metrics = pytest.importorskip("sklearn.metrics")
    experiments.Experiment("cls", _classifier_setup, {"seed": [1, 2]}, metric="loss",
                           direction="minimize", store=root / "experiments.db").run(
        workers=0, verbose=False)  # fmt: skip
    labels = ["cat", "dog", "fox"]
    for number in (0, 1):
        record = experiments.load_experiment("cls", root / "experiments.db").trial(number)
        stored = json.loads(record.artifact("validation-predictions.json").read_text())
        truth, predicted = stored["truth"], stored["predicted"]
        got = client.get(f"/api/experiments/cls/trials/{number}/confusion").json()
        assert got["classes"] == labels
        assert got["matrix"] == metrics.confusion_matrix(truth, predicted, labels=labels).tolist()
        assert got["accuracy"] == pytest.approx(metrics.accuracy_score(truth, predicted))
        assert got["recall"] == pytest.approx(
            metrics.recall_score(truth, predicted, labels=labels, average=None)
        )
        assert got["precision"] == pytest.approx(
            metrics.precision_score(truth, predicted, labels=labels, average=None)
        )
    assert client.get("/api/experiments/cls/trials/9/confusion").status_code == 404
    saved = client.put("/api/experiments/cls/trials/1/annotation", json={"text": "lr too high"})
    assert saved.json() == {"name": "cls", "trial": 1, "annotation": "lr too high"}
    assert client.get("/api/experiments/cls/trials/1").json()["annotation"] == "lr too high"
    reread = experiments.load_experiment("cls", root / "experiments.db").trial(1)
    assert reread.annotation == "lr too high"
    assert client.put("/api/experiments/cls/trials/1/annotation", json={"text": ""}).is_success
    assert experiments.load_experiment("cls", root / "experiments.db").trial(1).annotation == ""
    missing = client.put("/api/experiments/cls/trials/5/annotation", json={"text": "x"})
    assert missing.status_code == 404


def test_a_trial_without_stored_predictions_has_no_confusion_matrix(client, root):
    experiments = pytest.importorskip("deeptoolbox.experiments")

    def setup(params, monitor):
        return {"loss": params["x"]}

    experiments.Experiment("plain", setup, {"x": [1.0]}, metric="loss", direction="minimize",
                           store=root / "experiments.db", artifacts=False).run(
        workers=0, verbose=False)  # fmt: skip
    response = client.get("/api/experiments/plain/trials/0/confusion")
    assert response.status_code == 404 and "validation-predictions.json" in response.text


def test_a_layer_of_unknown_size_has_unknown_learnables_in_the_graph(client):
    added = _edit(client, op="add", type="Dense", config={"units": 3}, name="loose")
    assert added.status_code == 200, added.text
    graph = added.json()
    rows = {layer["name"]: layer for layer in graph["layers"]}
    assert rows["loose"]["learnables"] is None and rows["relu1"]["learnables"] == 0
    assert graph["unsized"] == ["loose"] and graph["total_learnables"] == 40 + 4010
    assert "(+ 1 layer of unknown size)" in graph["table"].splitlines()[0]


def test_thinning_a_long_trial_history_keeps_its_ends_and_extremes():
    """5,000 rows of two metrics become at most 1,000, with the first and last rows, the
    global min and max of each metric, and every 500-row stretch's own min and max."""
    import math

    from deeptoolbox.apps._experiments import thin_rows

    rows = [{"iteration": i, "loss": math.sin(i / 40) + i / 5000, "accuracy": (i * 37 % 101) / 100}
            for i in range(1, 5001)]  # fmt: skip
    kept = thin_rows(rows, 1000)
    assert len(kept) <= 1000 and kept[0] == rows[0] and kept[-1] == rows[-1]
    assert [r["iteration"] for r in kept] == sorted({r["iteration"] for r in kept})
    for name in ("loss", "accuracy"):
        for start in range(0, 5000, 500):
            stretch = [r[name] for r in rows[start : start + 500]]
            inside = [r[name] for r in kept if start < r["iteration"] <= start + 500]
            assert min(inside) == min(stretch) and max(inside) == max(stretch)
    assert thin_rows(rows[:800], 1000) == rows[:800]


def test_trial_details_send_every_recorded_row_of_a_short_trial(client, root):
    experiments = pytest.importorskip("deeptoolbox.experiments")

    def setup(params, monitor):
        monitor.metrics = ["loss"]
        for step in range(1, 1501):
            monitor.record(step, loss=1 / step)
        return {}

    experiments.Experiment("long", setup, {"x": [1.0]}, metric="loss", direction="minimize",
                           store=root / "experiments.db", artifacts=False).run(
        workers=0, verbose=False)  # fmt: skip
    history = client.get("/api/experiments/long/trials/0").json()["history"]
    assert 2 < len(history) <= 1000
    assert history[0]["iteration"] == 1 and history[-1]["iteration"] == 1500


def test_a_kernel_that_does_not_fit_keeps_its_learnables_in_the_graph(client):
    """The error is shown and the learnables still come from the known channel count."""
    response = _edit(client, op="set", name="conv1", config={"kernel_size": 40})
    assert response.status_code == 200, response.text
    graph = response.json()
    conv = {layer["name"]: layer for layer in graph["layers"]}["conv1"]
    assert any("does not fit" in issue["message"] for issue in conv["issues"])
    assert conv["learnables"] == 4 * 1 * 40 * 40 + 4  # 4 filters of 40x40 on 1 channel
    assert "conv1" not in graph["unsized"]


@pytest.mark.parametrize(
    "request_body, layer",
    [
        ({"op": "set", "name": "fc", "config": {"foo": 1}}, "layer 'fc' (Dense)"),
        ({"op": "add", "type": "Dense", "config": {"foo": 1}}, "new Dense layer"),
        ({"op": "add", "type": "Dense", "name": "fc2", "config": {"foo": 1}}, "layer 'fc2'"),
    ],
)
def test_an_unknown_setting_names_the_layer_and_the_accepted_settings(client, request_body, layer):
    before = client.get("/api/network.json").json()
    response = client.post("/api/edit", json=request_body)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert layer in detail and "unknown option `foo`" in detail
    library = {entry["type"]: entry for entry in client.get("/api/library").json()}
    settings = [field["name"] for field in library["Dense"]["fields"]]
    assert settings and f"Dense takes: {', '.join(settings)}." in detail
    assert "GET /api/library" in detail
    assert client.get("/api/network.json").json() == before


def test_an_unknown_setting_suggests_the_close_one(client):
    response = _edit(client, op="set", name="conv1", config={"filter": 2})
    assert response.status_code == 400
    assert "Did you mean `filters`?" in response.json()["detail"]
