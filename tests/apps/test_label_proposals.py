"""Auto-labeling in the Labeler with detectors and segmentation networks: proposals least
confident first, the threshold, accepting as proposed and as edited (files that reload in the
box-label and pixel-label datastores), the proposed masks, undo / redo, rejecting, bad input."""

import base64
import json

import numpy as np
import pytest

pytest.importorskip("fastapi")
import torch
from fastapi.testclient import TestClient
from PIL import Image

from deeptoolbox.apps import AppOptions, create_app
from deeptoolbox.apps._label_proposals import propose
from deeptoolbox.apps._labeler import LabelSession
from deeptoolbox.vision import BoxLabelDatastore, ObjectDetector, PixelLabelDatastore, detect, unet

TOKEN = "t" * 32


def _client(root, session):
    app = create_app(options=AppOptions(root=root, token=TOKEN))
    app.state.labeler = session
    return TestClient(app, headers={"X-Deeptoolbox-Token": TOKEN})


def _pictures(folder, count, size=(32, 32), mode="RGB"):
    """Images of different content (so their scores differ): noise of growing brightness."""
    generator = np.random.default_rng(0)
    names = []
    for i in range(count):
        channels = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
        pixels = (generator.random(channels) * 60 * (i + 1)).clip(0, 255).astype(np.uint8)
        names.append(f"im{i}.png")
        Image.fromarray(pixels).save(folder / names[-1])
    return names


def _detector(bias=0.0, spread=20.0, per_image=6):
    """A small real FCOS detector: random weights, the class logits' bias set to ``bias``
    and their weights scaled by ``spread`` (scores around sigmoid(bias), differing between
    images), boxes a few pixels wide, ``per_image`` detections per image."""
    torch.manual_seed(0)
    detector = ObjectDetector(["car", "person"], input_size=32)
    with torch.no_grad():
        detector.model.head.classification_head.cls_logits.bias.fill_(bias)
        detector.model.head.classification_head.cls_logits.weight.mul_(spread)
        detector.model.head.regression_head.bbox_reg.bias.fill_(1.0)
    detector.model.detections_per_img = per_image
    return detector


def _expected_boxes(detector, folder, names, threshold):
    """{file: [(x, y, width, height, label, score)]} from detect() at threshold 0, kept here
    by score and clipped to the 32 x 32 image: the reference the proposals are checked on."""
    images = [
        torch.from_numpy(np.asarray(Image.open(folder / n).convert("RGB")).copy())
        .permute(2, 0, 1)
        .float()
        / 255
        for n in names
    ]
    expected = {}
    with detector.score_threshold(0.0):
        found = detect(detector, images, 0.0)
    for name, result in zip(names, found, strict=True):
        boxes = []
        for (x0, y0, x1, y1), score, label in zip(
            result["boxes"].tolist(), result["scores"].tolist(), result["names"], strict=True
        ):
            x0, x1, y0, y1 = (min(max(v, 0.0), 32.0) for v in (x0, x1, y0, y1))
            if score >= threshold and x1 - x0 >= 1 and y1 - y0 >= 1:
                boxes.append((x0, y0, x1 - x0, y1 - y0, label, score))
        if boxes:
            expected[name] = boxes
    return expected


def _same_boxes(got, expected):
    """Lists of (numbers..., label[, score]) tuples: equal labels, numbers to 1e-5."""
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert [v for v in a if isinstance(v, str)] == [v for v in b if isinstance(v, str)]
        numbers = [v for v in a if not isinstance(v, str)]
        assert numbers == pytest.approx([v for v in b if not isinstance(v, str)], abs=1e-5)


def test_detector_proposals_keep_the_boxes_at_the_threshold_least_confident_first(tmp_path):
    names = _pictures(tmp_path, 5)
    detector = _detector()
    everything = _expected_boxes(detector, tmp_path, names, 0.0)
    scores = sorted(s for boxes in everything.values() for *_, s in boxes)
    middle = len(scores) // 2  # half the boxes fall under the threshold
    threshold = (scores[middle - 1] + scores[middle]) / 2
    session = LabelSession(tmp_path, classes=["car"])
    session.set_boxes("im0.png", [{"x": 1, "y": 1, "width": 5, "height": 5, "label": "car"}])
    proposals = propose(session, detector, threshold=threshold)
    expected = _expected_boxes(detector, tmp_path, names, threshold)
    expected.pop("im0.png", None)  # it has boxes already: nothing proposed
    assert session.classes == ["car", "person"]
    assert {p["file"] for p in proposals} == set(expected) and expected
    for proposal in proposals:
        got = [
            (b["x"], b["y"], b["width"], b["height"], b["label"], b["score"])
            for b in proposal["boxes"]
        ]
        _same_boxes(got, expected[proposal["file"]])
        assert all(b["score"] >= threshold for b in proposal["boxes"])
        assert proposal["confidence"] == min(b["score"] for b in proposal["boxes"])
        assert proposal["kind"] == "boxes" and proposal["source"] == "detector"
    confidences = [p["confidence"] for p in proposals]
    assert confidences == sorted(confidences) and len(set(confidences)) > 1
    assert propose(session, detector, threshold=1.0) == []  # no box scores 1
    with pytest.raises(Exception, match=r"`threshold` must be a score in \[0, 1\].*1.5"):
        propose(session, detector, threshold=1.5)


def test_a_detector_that_proposes_nothing_says_so_per_image_and_in_the_api(tmp_path):
    names = _pictures(tmp_path, 3)
    detector = ObjectDetector(["car"], input_size=32)  # untrained: every score near 0.01
    assert not _expected_boxes(detector, tmp_path, names, 0.5)
    session = LabelSession(tmp_path, classes=["car"])
    session.set_boxes("im0.png", [{"x": 1, "y": 1, "width": 5, "height": 5, "label": "car"}])
    assert propose(session, detector, threshold=0.5) == []
    note = "the network proposed no boxes scoring 0.50 or more for this image"
    assert session.proposal_notes == {"im1.png": note, "im2.png": note}  # im0 has boxes
    assert session.proposal_status == (
        "The network proposed boxes for 0 of 2 images (none of the others had a box scoring "
        "0.50 or more)."
    )
    view = _client(tmp_path, session).get("/api/labeler").json()
    assert view["proposals"] == [] and view["proposal_notes"] == session.proposal_notes
    assert view["proposal_status"] == session.proposal_status
    session.set_boxes("im1.png", [{"x": 1, "y": 1, "width": 5, "height": 5, "label": "car"}])
    session.set_boxes("im2.png", [{"x": 1, "y": 1, "width": 5, "height": 5, "label": "car"}])
    propose(session, detector)
    assert session.proposal_status == "The network proposed nothing: every image has boxes already."
    assert session.proposal_notes == {}


def test_a_detector_that_proposes_some_boxes_names_the_images_it_left_out(tmp_path):
    names = _pictures(tmp_path, 5)
    detector = _detector()
    best = sorted(
        max(s for *_, s in bs) for bs in _expected_boxes(detector, tmp_path, names, 0.0).values()
    )
    threshold = (best[1] + best[2]) / 2  # the two images of the lowest best scores get none
    expected = _expected_boxes(detector, tmp_path, names, threshold)
    assert len(expected) == 3
    session = LabelSession(tmp_path)
    propose(session, detector, threshold=threshold)
    assert set(session.proposal_notes) == set(names) - set(expected)
    assert session.proposal_status == (
        "The network proposed boxes for 3 of 5 images (none of the others had a box scoring "
        f"{threshold:.2f} or more)."
    )


def test_a_threshold_under_the_detectors_own_cut_still_proposes_those_boxes(tmp_path):
    names = _pictures(tmp_path, 2)
    detector = _detector(bias=-8.0, spread=1.0)  # every score far under the model's own 0.05
    expected = _expected_boxes(detector, tmp_path, names, 0.0)
    assert expected and max(s for bs in expected.values() for *_, s in bs) < 0.05
    proposals = propose(LabelSession(tmp_path), detector, threshold=0.0)
    assert {p["file"] for p in proposals} == set(expected)
    assert detector.model.score_thresh == 0.05  # restored


def test_accepted_box_proposals_as_proposed_and_as_edited_reload_in_a_box_datastore(tmp_path):
    names = _pictures(tmp_path, 3)
    session = LabelSession(tmp_path)
    proposals = propose(session, _detector(), threshold=0.0)
    client = _client(tmp_path, session)
    first, second = proposals[0], proposals[1]
    client.post("/api/labeler/proposals/accept", json={"file": first["file"]})
    edited = [
        {"x": 2.0, "y": 3.0, "width": 10.0, "height": 8.0, "label": "person"},
        {"x": 20.0, "y": 20.0, "width": 12.0, "height": 12.0, "label": "car"},
    ]
    view = client.post(
        "/api/labeler/proposals/accept", json={"file": second["file"], "boxes": edited}
    ).json()
    assert [p["file"] for p in view["proposals"]] == [p["file"] for p in proposals[2:]]
    ds = BoxLabelDatastore.from_coco(tmp_path / "boxes.json")
    files = [im["file_name"] for im in json.loads((tmp_path / "boxes.json").read_text())["images"]]
    assert files == names
    saved = {}
    for i, name in enumerate(files):
        item = ds[i]
        saved[name] = [
            (*box, ds.classes[label])
            for box, label in zip(item["boxes"].tolist(), item["labels"].tolist(), strict=True)
        ]
    proposed = [
        (b["x"], b["y"], b["x"] + b["width"], b["y"] + b["height"], b["label"])
        for b in first["boxes"]
    ]
    _same_boxes(saved[first["file"]], proposed)
    assert saved[second["file"]] == [
        (2.0, 3.0, 12.0, 11.0, "person"),
        (20.0, 20.0, 32.0, 32.0, "car"),
    ]
    left = [n for n in names if n not in (first["file"], second["file"])]
    assert all(saved[n] == [] for n in left)


def test_undo_puts_an_accepted_proposal_back_and_redo_accepts_it_again(tmp_path):
    _pictures(tmp_path, 2)
    session = LabelSession(tmp_path)
    proposals = [dict(p) for p in propose(session, _detector(), threshold=0.0)]
    client = _client(tmp_path, session)
    file = proposals[0]["file"]
    box = {"x": 4.0, "y": 4.0, "width": 6.0, "height": 6.0, "label": "car"}
    client.post("/api/labeler/proposals/accept", json={"file": file, "boxes": [box]})
    view = client.post("/api/labeler/undo").json()
    assert [p["file"] for p in view["proposals"]] == [p["file"] for p in proposals]
    assert view["proposals"][0]["boxes"] == proposals[0]["boxes"] and view["can_redo"]
    assert BoxLabelDatastore.from_coco(tmp_path / "boxes.json")[0]["boxes"].shape[0] == 0
    view = client.post("/api/labeler/redo").json()
    assert [p["file"] for p in view["proposals"]] == [p["file"] for p in proposals[1:]]
    ds = BoxLabelDatastore.from_coco(tmp_path / "boxes.json")
    index = session.files.index(file)
    assert ds[index]["boxes"].tolist() == [[4.0, 4.0, 10.0, 10.0]]
    assert not view["can_redo"]
    again = client.post("/api/labeler/redo")
    assert again.status_code == 400 and "nothing to redo" in again.json()["detail"]


def _segmenter():
    torch.manual_seed(0)
    return unet((1, 8, 8), 3, depth=1, filters=4, classes=["background", "road", "car"])


def _argmax(net, folder, name):
    image = torch.from_numpy(np.asarray(Image.open(folder / name).convert("L")).copy())
    with torch.no_grad():
        probabilities = net.eval()(image.float()[None, None] / 255)[0]
    top, index = probabilities.max(dim=0)
    return index.numpy(), float(top.mean())


def test_mask_proposals_least_confident_first_and_the_proposed_mask_route(tmp_path):
    names = _pictures(tmp_path, 4, size=(8, 8), mode="L")
    net = _segmenter()
    session = LabelSession(tmp_path, classes=["car"])  # car gets id 1, road id 2
    session.set_mask("im3.png", base64.b64encode(np.zeros(64, np.uint8).tobytes()).decode())
    proposals = propose(session, net)
    assert session.mask_classes == ["background", "car", "road"]
    ids = np.array([0, 2, 1])  # the network's class index -> the session's label id
    expected = {n: _argmax(net, tmp_path, n) for n in names[:3]}
    assert [p["file"] for p in proposals] == sorted(expected, key=lambda n: expected[n][1])
    assert [p["confidence"] for p in proposals] == pytest.approx(
        sorted(c for _, c in expected.values())
    )
    client = _client(tmp_path, session)
    for name in names[:3]:
        got = client.get(f"/api/labeler/proposals/mask?file={name}").json()
        assert (got["width"], got["height"]) == (8, 8)
        mask = np.frombuffer(base64.b64decode(got["mask"]), np.uint8).reshape(8, 8)
        assert mask.tolist() == ids[expected[name][0]].tolist()
    missing = client.get("/api/labeler/proposals/mask?file=im3.png")
    assert missing.status_code == 400 and "no proposal for 'im3.png'" in missing.json()["detail"]


def test_accepted_mask_proposals_as_proposed_and_as_edited_reload_in_a_pixel_datastore(tmp_path):
    names = _pictures(tmp_path, 2, size=(8, 8), mode="L")
    net = _segmenter()
    session = LabelSession(tmp_path)
    propose(session, net)
    client = _client(tmp_path, session)
    proposed = np.frombuffer(
        base64.b64decode(client.get("/api/labeler/proposals/mask?file=im0.png").json()["mask"]),
        np.uint8,
    )
    client.post("/api/labeler/proposals/accept", json={"file": "im0.png"})
    painted = np.zeros((8, 8), np.uint8)
    painted[2:5, 1:7] = 2  # car
    body = {"file": "im1.png", "mask": base64.b64encode(painted.tobytes()).decode()}
    view = client.post("/api/labeler/proposals/accept", json=body).json()
    assert view["proposals"] == [] and view["masks"] == names
    class_map = json.loads((tmp_path / "pixel-labels" / "classes.json").read_text())
    assert class_map["classes"] == ["background", "road", "car"]
    ds = PixelLabelDatastore(
        tmp_path / "pixel-labels", class_map["classes"], class_map["label_ids"]
    )
    assert ds[0].numpy().ravel().tolist() == proposed.tolist()
    assert ds[1].numpy().tolist() == painted.tolist()
    client.post("/api/labeler/undo")
    assert not (tmp_path / "pixel-labels" / "im1.png").exists()
    assert [p["file"] for p in client.get("/api/labeler").json()["proposals"]] == ["im1.png"]


def test_bad_accepts_are_refused_naming_the_field_and_change_nothing(tmp_path):
    _pictures(tmp_path, 2)
    session = LabelSession(tmp_path)
    proposals = propose(session, _detector(), threshold=0.0)
    client = _client(tmp_path, session)
    file = proposals[0]["file"]

    def refused(body):
        response = client.post("/api/labeler/proposals/accept", json=body)
        assert 400 <= response.status_code < 500, response.text
        return json.dumps(response.json()["detail"])

    assert "`file` 'nope.png' is not an image" in refused({"file": "nope.png"})
    outside = {"x": 30, "y": 0, "width": 8, "height": 4, "label": "car"}
    assert f"of '{file}' is empty or outside the image (32 x 32)" in refused(
        {"file": file, "boxes": [outside]}
    )
    assert "needs x, y, width, height and label" in refused(
        {"file": file, "boxes": [{"x": 1, "y": 1, "width": 2, "label": "car"}]}
    )
    assert "unknown class 'bus'" in refused(
        {"file": file, "boxes": [{"x": 1, "y": 1, "width": 2, "height": 2, "label": "bus"}]}
    )
    assert "accept it with `boxes`" in refused({"file": file, "mask": "AAAA"})
    assert "boxes" in refused({"file": file, "boxes": "not a list"})  # FastAPI: the field
    assert [p["file"] for p in session.proposals] == [p["file"] for p in proposals]
    assert not (tmp_path / "boxes.json").exists() and not session._history


def test_rejecting_a_proposal_is_undone_and_redone(tmp_path):
    _pictures(tmp_path, 3)
    session = LabelSession(tmp_path)
    proposals = [p["file"] for p in propose(session, _detector(), threshold=0.0)]
    client = _client(tmp_path, session)
    view = client.post(
        "/api/labeler/proposals/decide", json={"file": proposals[1], "accept": False}
    )
    assert [p["file"] for p in view.json()["proposals"]] == [proposals[0], proposals[2]]
    view = client.post("/api/labeler/undo").json()
    assert [p["file"] for p in view["proposals"]] == proposals
    view = client.post("/api/labeler/redo").json()
    assert [p["file"] for p in view["proposals"]] == [proposals[0], proposals[2]]
    assert not (tmp_path / "boxes.json").exists()  # rejecting saves nothing
