"""The Labeler's API: class labels saved to class folders or a CSV, boxes as COCO JSON, undo,
bad label files, and a save interrupted before its rename."""

import os

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient
from PIL import Image

from deeptoolbox.apps import AppOptions, create_app
from deeptoolbox.apps._labeler import LabelSession
from deeptoolbox.data import ImageDatastore
from deeptoolbox.errors import DataError
from deeptoolbox.vision import BoxLabelDatastore

TOKEN = "t" * 32


def _images(folder, names, size=(20, 10)):
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((size[1], size[0]), len(name) * 9, np.uint8)).save(path)


def _client(root, session):
    app = create_app(options=AppOptions(root=root, token=TOKEN))
    app.state.labeler = session
    return TestClient(app, headers={"X-Deeptoolbox-Token": TOKEN})


def test_csv_labels_reload_into_an_image_datastore_with_exactly_those_labels(tmp_path):
    names = [f"im{i}.png" for i in range(5)]
    _images(tmp_path, names)
    client = _client(tmp_path, LabelSession(tmp_path, classes=["cat", "dog"]))
    assert client.get("/api/labeler").json()["mode"] == "csv"
    client.post("/api/labeler/label", json={"files": names[:3], "label": "cat"})
    view = client.post("/api/labeler/label", json={"files": names[3:], "label": "dog"}).json()
    assert [im["label"] for im in view["images"]] == ["cat"] * 3 + ["dog"] * 2
    rows = [line.split(",") for line in (tmp_path / "labels.csv").read_text().splitlines()[1:]]
    ds = ImageDatastore([str(tmp_path / f) for f, _ in rows], labels=[lbl for _, lbl in rows])
    assert dict(zip((os.path.basename(f) for f in ds.files), ds.labels, strict=True)) == {
        "im0.png": "cat",
        "im1.png": "cat",
        "im2.png": "cat",
        "im3.png": "dog",
        "im4.png": "dog",
    }
    client.post("/api/labeler/undo")
    assert (tmp_path / "labels.csv").read_text().splitlines()[1:] == [f"{n},cat" for n in names[:3]]
    assert (
        client.get(f"/api/labeler/image?file={names[0]}").content
        == (tmp_path / names[0]).read_bytes()
    )
    assert client.get("/api/labeler/image?file=../x.png").status_code == 400


def test_class_folders_move_files_and_undo_moves_them_back(tmp_path):
    _images(tmp_path, ["cat/a.png", "cat/b.png", "dog/c.png", "new.png"])
    session = LabelSession(tmp_path)
    client = _client(tmp_path, session)
    assert session.mode == "folders" and session.classes == ["cat", "dog"]
    client.post("/api/labeler/label", json={"files": ["cat/a.png", "new.png"], "label": "dog"})
    ds = ImageDatastore(tmp_path / "cat", labels=None), ImageDatastore(tmp_path, labels="folders")
    labels = {
        os.path.relpath(f, tmp_path): lbl for f, lbl in zip(ds[1].files, ds[1].labels, strict=True)
    }
    assert labels == {
        "cat/b.png": "cat",
        "dog/a.png": "dog",
        "dog/c.png": "dog",
        "dog/new.png": "dog",
    }
    client.post("/api/labeler/undo")
    assert sorted(session.files) == ["cat/a.png", "cat/b.png", "dog/c.png", "new.png"]
    assert (tmp_path / "new.png").is_file() and (tmp_path / "cat" / "a.png").is_file()


def test_boxes_saved_as_coco_reload_with_exactly_those_boxes(tmp_path):
    _images(tmp_path, ["a.png", "b.png"])
    client = _client(tmp_path, LabelSession(tmp_path, classes=["car", "person"]))
    boxes = [
        {"x": 1, "y": 2, "width": 5, "height": 4, "label": "car"},
        {"x": 10, "y": 0, "width": 10, "height": 10, "label": "person"},
    ]
    client.post("/api/labeler/boxes", json={"file": "b.png", "boxes": boxes})
    ds = BoxLabelDatastore.from_coco(tmp_path / "boxes.json")
    assert len(ds) == 2 and ds[0]["boxes"].shape[0] == 0
    assert ds[1]["boxes"].tolist() == [[1.0, 2.0, 6.0, 6.0], [10.0, 0.0, 20.0, 10.0]]
    assert [ds.classes[i] for i in ds[1]["labels"].tolist()] == ["car", "person"]
    outside = client.post(
        "/api/labeler/boxes",
        json={
            "file": "a.png",
            "boxes": [{"x": 15, "y": 2, "width": 6, "height": 3, "label": "car"}],
        },
    )
    assert outside.status_code == 400 and "'a.png'" in outside.json()["detail"]
    assert "outside the image (20 x 10)" in outside.json()["detail"]
    client.post("/api/labeler/undo")
    assert BoxLabelDatastore.from_coco(tmp_path / "boxes.json")[1]["boxes"].shape[0] == 0


def test_a_label_file_with_an_unknown_class_or_file_is_refused_naming_it(tmp_path):
    _images(tmp_path, ["a.png"])
    (tmp_path / "labels.csv").write_text("file,label\na.png,zebra\n")
    with pytest.raises(DataError, match=r"labels.csv.*'a.png' the unknown class 'zebra'"):
        LabelSession(tmp_path, classes=["cat"])
    (tmp_path / "labels.csv").write_text("file,label\nmissing.png,cat\n")
    with pytest.raises(DataError, match=r"labels.csv' names 'missing.png'"):
        LabelSession(tmp_path, classes=["cat"])


def test_a_save_interrupted_before_the_rename_leaves_the_last_saved_file(tmp_path, monkeypatch):
    _images(tmp_path, ["a.png", "b.png"])
    session = LabelSession(tmp_path, classes=["cat", "dog"])
    session.set_labels(["a.png"], "cat")
    saved = (tmp_path / "labels.csv").read_text()

    def crash(source, target):
        raise OSError("killed between the temporary write and the rename")

    monkeypatch.setattr(os, "replace", crash)
    client = _client(tmp_path, session)
    response = client.post("/api/labeler/label", json={"files": ["b.png"], "label": "dog"})
    assert (
        response.status_code == 400 and "last saved file is unchanged" in response.json()["detail"]
    )
    assert (tmp_path / "labels.csv").read_text() == saved
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "labels.csv"]
    assert session.labels == {"a.png": "cat"}


def test_masks_saved_as_png_label_maps_reload_in_a_pixel_label_datastore(tmp_path):
    import base64
    import json

    from deeptoolbox.vision import PixelLabelDatastore

    _images(tmp_path, ["a.png", "b.png"], size=(6, 4))
    client = _client(tmp_path, LabelSession(tmp_path, classes=["road", "car"]))
    mask = np.zeros((4, 6), np.uint8)
    mask[1:3, 2:5] = 2  # car
    mask[3] = 1  # road
    body = {"file": "b.png", "mask": base64.b64encode(mask.tobytes()).decode()}
    view = client.post("/api/labeler/mask", json=body).json()
    assert (
        view["masks"] == ["b.png"] and view["images"][0]["file"] == "a.png"
    )  # masks are no images
    class_map = json.loads((tmp_path / "pixel-labels" / "classes.json").read_text())
    ds = PixelLabelDatastore(
        tmp_path / "pixel-labels", class_map["classes"], class_map["label_ids"]
    )
    assert class_map["classes"] == ["background", "road", "car"]
    assert ds[0].numpy().tolist() == mask.tolist()
    again = client.get("/api/labeler/mask?file=b.png").json()
    assert base64.b64decode(again["mask"]) == mask.tobytes()
    bad = mask.copy()
    bad[0, 0] = 7
    refused = client.post(
        "/api/labeler/mask",
        json={"file": "a.png", "mask": base64.b64encode(bad.tobytes()).decode()},
    )
    assert refused.status_code == 400 and "'a.png' has values [7]" in refused.json()["detail"]
    Image.fromarray(bad).save(tmp_path / "pixel-labels" / "b.png")
    stored = client.get("/api/labeler/mask?file=b.png")
    assert stored.status_code == 400 and "pixel-labels/b.png" in stored.json()["detail"]
    client.post("/api/labeler/undo")
    assert not (tmp_path / "pixel-labels" / "b.png").exists()


def test_reopening_keeps_the_class_ids_of_saved_label_maps(tmp_path):
    import base64

    _images(tmp_path, ["a.png", "b.png"], size=(6, 4))
    first = LabelSession(tmp_path, classes=["cat", "dog"])
    mask = np.zeros((4, 6), np.uint8)
    mask[1:3, 1:3] = 1  # cat
    first.set_mask("a.png", base64.b64encode(mask.tobytes()).decode())
    first.set_labels(["b.png"], "dog")  # the CSV now names dog only
    again = LabelSession(tmp_path)  # no classes given: cat keeps id 1
    assert again.mask_classes == ["background", "cat", "dog"]
    assert base64.b64decode(again.get_mask("a.png")["mask"]) == mask.tobytes()
    with pytest.raises(DataError, match=r"use the classes \['cat', 'dog'\]"):
        LabelSession(tmp_path, classes=["dog", "cat"])  # would turn the cat pixels into dog


def test_in_class_folders_masks_follow_their_images_and_undo_restores_a_proposal(tmp_path):
    import base64

    import torch

    from deeptoolbox import Network
    from deeptoolbox import layers as L

    _images(tmp_path, ["cat/c1.png", "dog/d1.png", "u1.png", "u2.png"], size=(4, 4))
    session = LabelSession(tmp_path, classes=["cat", "dog"])
    assert session.mode == "folders"
    mask = np.zeros((4, 4), np.uint8)
    mask[1:3, 1:3] = 2
    session.set_mask("u1.png", base64.b64encode(mask.tobytes()).decode())
    session.set_labels(["u1.png"], "dog")  # u1.png moves to dog/
    assert (tmp_path / "dog" / "u1.png").is_file()
    moved = session.get_mask("dog/u1.png")["mask"]
    assert moved is not None and base64.b64decode(moved) == mask.tobytes()
    torch.manual_seed(0)
    net = Network([L.ImageInput((1, 4, 4)), L.Flatten(), L.Dense(2), L.Softmax()],
                  classes=["cat", "dog"])  # fmt: skip
    (proposal,) = [p for p in session.propose(net) if p["file"] == "u2.png"]
    session.decide("u2.png", accept=True)
    assert not any(p["file"] == "u2.png" for p in session.proposals)
    session.undo()  # the image goes back, and so does its proposal, under its current name
    assert (tmp_path / "u2.png").is_file()
    (back,) = [p for p in session.proposals if p["file"] == "u2.png"]
    assert back["label"] == proposal["label"]
    session.decide("u2.png", accept=True)  # and it can be accepted again


def test_auto_labeling_proposals_least_confident_first_and_accepted_ones_saved(tmp_path):
    import torch

    from deeptoolbox import Network
    from deeptoolbox import layers as L
    from deeptoolbox.inference import classify

    names = [f"im{i}.png" for i in range(4)]
    for i, name in enumerate(names):  # brightness 0, 80, 160, 240
        Image.fromarray(np.full((4, 4), 80 * i, np.uint8)).save(tmp_path / name)
    torch.manual_seed(0)
    net = Network(
        [L.ImageInput((1, 4, 4)), L.Flatten(), L.Dense(2), L.Softmax()], classes=["dark", "light"]
    )
    session = LabelSession(tmp_path, classes=["dark", "light"])
    session.set_labels(["im0.png"], "dark")
    proposals = session.propose(net)
    ds = ImageDatastore([str(tmp_path / n) for n in names[1:]], labels=None, color="gray")
    labels, scores = classify(net, ds, device="cpu")
    expected = sorted(
        zip(names[1:], labels.tolist(), scores.max(dim=1).values.tolist(), strict=True),
        key=lambda t: t[2],
    )
    assert [(p["file"], p["label"]) for p in proposals] == [(f, lbl) for f, lbl, _ in expected]
    assert [p["confidence"] for p in proposals] == pytest.approx([c for _, _, c in expected])
    client = _client(tmp_path, session)
    first, second, third = (p["file"] for p in proposals)
    client.post("/api/labeler/proposals/decide", json={"file": first, "accept": True})
    view = client.post(
        "/api/labeler/proposals/decide", json={"file": second, "accept": False}
    ).json()
    assert [p["file"] for p in view["proposals"]] == [third]
    saved = dict(line.split(",") for line in (tmp_path / "labels.csv").read_text().splitlines()[1:])
    assert saved == {"im0.png": "dark", first: proposals[0]["label"]}


def test_label_issues_open_for_review_with_their_suggested_class(tmp_path):
    from deeptoolbox.quality import find_label_issues

    _images(tmp_path, ["a/x.png", "a/y.png", "b/z.png", "b/w.png"])
    ds = ImageDatastore(tmp_path)
    assert [os.path.relpath(f, tmp_path) for f in ds.files] == [
        "a/x.png",
        "a/y.png",
        "b/w.png",
        "b/z.png",
    ]
    probabilities = np.array(
        [[0.9, 0.1], [0.9, 0.1], [0.05, 0.95], [0.97, 0.03]]
    )  # b/z looks like a
    issues = find_label_issues(ds, probabilities)
    session = LabelSession(tmp_path)
    flagged = session.review(issues)
    assert [(p["file"], p["given"], p["label"]) for p in flagged] == [("b/z.png", "b", "a")]
    session.decide("b/z.png", accept=True)
    assert ImageDatastore(tmp_path).count_each_label() == {"a": 3, "b": 1}


KILLED_WRITER = """
import sys
from deeptoolbox.apps._labeler import LabelSession

session = LabelSession(sys.argv[1], classes=["cat", "dog"])
names = session.files
print("ready", flush=True)
step = 0
while True:  # relabel all images again and again until killed
    session.set_labels(names, ["cat", "dog"][step % 2])
    step += 1
"""


def test_a_server_killed_while_saving_leaves_a_whole_label_file(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    names = [f"im{i:03d}.png" for i in range(300)]
    _images(tmp_path, names, size=(2, 2))
    process = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)],
                               stdout=subprocess.PIPE, text=True, env={**os.environ})  # fmt: skip
    assert process.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    session = LabelSession(tmp_path, classes=["cat", "dog"])  # reads back, or raises
    assert set(session.labels) == set(names) and len(set(session.labels.values())) == 1


def test_csv_writes_keep_other_columns_row_order_and_unlabelled_rows_come_back_on_undo(tmp_path):
    _images(tmp_path, ["a.png", "b.png", "c.png", "d.png"])
    original = '\ufefffile,label,notes\r\nc.png,dog,blurry\r\na.png,cat,\r\nb.png,cat,"x, y"\r\n'
    (tmp_path / "labels.csv").write_bytes(original.encode("utf-8"))
    session = LabelSession(tmp_path, classes=["cat", "dog"])
    assert session.mode == "csv" and session.labels == {
        "a.png": "cat",
        "b.png": "cat",
        "c.png": "dog",
    }
    session.set_labels(["b.png"], "dog")
    session.set_labels(["d.png"], "cat")
    raw = (tmp_path / "labels.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM and the CRLF line ends stay
    assert raw.decode("utf-8-sig").split("\r\n") == [
        "file,label,notes",
        "c.png,dog,blurry",
        "a.png,cat,",
        'b.png,dog,"x, y"',
        "d.png,cat,",
        "",
    ]
    session.set_labels(["c.png"], None)  # unlabelled: its row leaves the file
    ds = ImageDatastore(tmp_path)
    assert [os.path.basename(f) for f in ds.files] == ["a.png", "b.png", "d.png"]
    assert ds.labels.tolist() == ["cat", "dog", "cat"]
    session.undo()  # ... and comes back where it was, with its notes
    text = (tmp_path / "labels.csv").read_text(encoding="utf-8-sig")
    assert text.splitlines()[1:3] == ["c.png,dog,blurry", "a.png,cat,"]
    session.undo()
    session.undo()
    assert (tmp_path / "labels.csv").read_bytes() == original.encode("utf-8")
