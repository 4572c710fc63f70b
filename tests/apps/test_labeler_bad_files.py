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
