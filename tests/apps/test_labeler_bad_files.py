"""Bad label files are refused when the Labeler opens, naming the file and the value."""

import json

import numpy as np
import pytest
from PIL import Image

from deeptoolbox.apps._labeler import LabelSession
from deeptoolbox.errors import DataError


def _folder(tmp_path):
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "a.png")
    return tmp_path


def test_mask_value_not_in_class_map_is_refused_at_open(tmp_path):
    folder = _folder(tmp_path)
    (folder / "pixel-labels").mkdir()
    (folder / "pixel-labels" / "classes.json").write_text(
        json.dumps({"classes": ["background", "cat"], "label_ids": [0, 1]})
    )
    Image.fromarray(np.full((20, 30), 7, np.uint8)).save(folder / "pixel-labels" / "a.png")
    with pytest.raises(DataError, match=r"pixel-labels/a\.png.*\[7\]"):
        LabelSession(folder)


def test_a_wrong_size_mask_names_both_sizes_and_the_file_at_open(tmp_path):
    folder = _folder(tmp_path)  # a.png is 30 x 20
    (folder / "pixel-labels").mkdir()
    (folder / "pixel-labels" / "classes.json").write_text(
        json.dumps({"classes": ["background", "cat"], "label_ids": [0, 1]})
    )
    Image.fromarray(np.ones((10, 15), np.uint8)).save(folder / "pixel-labels" / "a.png")
    with pytest.raises(DataError) as caught:
        LabelSession(folder)
    message = str(caught.value)
    assert "pixel-labels/a.png' is 15 x 10 (width x height)" in message
    assert "its image 'a.png' is 30 x 20" in message
    assert "[]" not in message and "values" not in message


def test_box_of_unknown_category_names_file_and_id(tmp_path):
    folder = _folder(tmp_path)
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "width": 30, "height": 20}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 99, "bbox": [1, 1, 5, 5]}],
        "categories": [{"id": 1, "name": "cat"}],
    }
    (folder / "boxes.json").write_text(json.dumps(coco))
    with pytest.raises(DataError, match=r"'a\.png' in '.*boxes\.json'.*category_id 99.*'cat'"):
        LabelSession(folder)


def test_label_issues_of_a_relative_folder_open_for_review(tmp_path, monkeypatch):
    from deeptoolbox.data import ImageDatastore
    from deeptoolbox.quality import find_label_issues

    for name in ["a/x.png", "a/y.png", "b/w.png", "b/z.png"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / name)
    monkeypatch.chdir(tmp_path.parent)
    folder = tmp_path.name  # relative, as in docs/data-quality.md
    ds = ImageDatastore(folder)
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.05, 0.95], [0.97, 0.03]])  # b/z looks like a
    flagged = LabelSession(folder).review(find_label_issues(ds, p))
    assert [(f["file"], f["given"], f["label"]) for f in flagged] == [("b/z.png", "b", "a")]
    issues = find_label_issues(np.array([0, 0, 1, 1]), p)  # no files: "#3"
    with pytest.raises(DataError, match=r"name no image of .*#3"):
        LabelSession(folder).review(issues)
