"""The Labeler keeps its class list (labeler-classes.json), writes label files with ordinary
permissions, and agrees with ImageDatastore on where a folder's labels are."""

import json
import os
import stat

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pydantic")
from deeptoolbox.apps._labeler import CLASSES_FILE, LabelSession, write_atomic
from deeptoolbox.data import ImageDatastore
from deeptoolbox.errors import DataError, FileWriteError, OptionError


def _images(folder, names):
    for k, name in enumerate(names):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((6, 8), 20 * k, np.uint8)).save(path)


def test_an_added_class_is_kept_when_the_folder_is_opened_again(tmp_path):
    _images(tmp_path, ["a.png", "b.png"])
    session = LabelSession(tmp_path, classes=["cat"])
    session.add_class("dog")
    session.add_class("bird")
    assert json.loads((tmp_path / CLASSES_FILE).read_text()) == {"classes": ["cat", "dog", "bird"]}
    assert LabelSession(tmp_path).classes == ["cat", "dog", "bird"]  # no image has one yet
    assert LabelSession(tmp_path, classes=["dog", "fish"]).classes == ["dog", "fish", "cat", "bird"]
    session.set_labels(["a.png"], "bird")
    again = LabelSession(tmp_path)
    assert again.classes == ["cat", "dog", "bird"] and again.labels == {"a.png": "bird"}


def test_class_folders_keep_added_classes_and_the_datastore_leaves_unlabelled_images_out(
    tmp_path,
):
    _images(tmp_path, ["cat/1.png", "2.png"])
    session = LabelSession(tmp_path)
    assert session.mode == "folders"
    session.add_class("dog")
    assert LabelSession(tmp_path).classes == ["cat", "dog"]
    with pytest.warns(RuntimeWarning, match=r"left out 1 image.*2\.png"):
        assert ImageDatastore(tmp_path).labels.tolist() == ["cat"]


def test_a_damaged_class_list_is_refused_naming_it(tmp_path):
    _images(tmp_path, ["a.png"])
    (tmp_path / CLASSES_FILE).write_text('{"classes": ["cat", ""]}')
    with pytest.raises(DataError, match=r"labeler-classes\.json' must hold non-empty class"):
        LabelSession(tmp_path)
    (tmp_path / CLASSES_FILE).write_text("[cat")
    with pytest.raises(DataError, match=r"cannot read the class list '.*labeler-classes\.json'"):
        LabelSession(tmp_path)


def test_new_label_files_get_open_permissions_and_rewrites_keep_theirs(tmp_path):
    umask = os.umask(0o022)
    try:
        _images(tmp_path, ["a.png"])
        session = LabelSession(tmp_path, classes=["cat"])
        session.set_labels(["a.png"], "cat")
        session.add_class("dog")
        for name in ("labels.csv", CLASSES_FILE):
            assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644, name
        os.chmod(tmp_path / "labels.csv", 0o640)
        session.set_labels(["a.png"], "dog")
        assert stat.S_IMODE(os.stat(tmp_path / "labels.csv").st_mode) == 0o640
    finally:
        os.umask(umask)


def test_a_full_disk_keeps_the_last_saved_file(tmp_path, monkeypatch):
    import errno

    path = tmp_path / "labels.csv"
    write_atomic(path, "file,label\n")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(FileWriteError, match=r"No space left on device\. The last saved file"):
        write_atomic(path, "file,label\na.png,cat\n")
    assert path.read_text() == "file,label\n" and os.listdir(tmp_path) == ["labels.csv"]


def test_a_label_csv_in_a_folder_with_subfolders_opens_in_csv_mode_in_both(tmp_path):
    _images(tmp_path, ["day1/a.png", "day1/b.png", "day2/c.png"])
    session = LabelSession(tmp_path, classes=["cat", "dog"], labels="csv")
    session.set_labels(["day1/a.png", "day2/c.png"], "dog")
    assert LabelSession(tmp_path).mode == "csv"  # auto: the existing labels.csv wins
    ds = ImageDatastore(tmp_path)
    assert ds.label_file == str(tmp_path / "labels.csv")
    assert [os.path.relpath(f, tmp_path) for f in ds.files] == [
        os.path.join("day1", "a.png"), os.path.join("day2", "c.png")]  # fmt: skip
    ds.relabel({ds.files[0]: "dog", ds.files[1]: "dog"})  # no change: nothing written
    fixed = ImageDatastore(tmp_path, classes=["cat", "dog"])
    fixed.relabel({fixed.files[1]: "cat"})
    assert LabelSession(tmp_path).labels == {"day1/a.png": "dog", "day2/c.png": "cat"}


def test_apps_labeler_on_a_csv_datastore_opens_its_csv(tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from deeptoolbox import apps

    _images(tmp_path, ["cat/a.png", "cat/b.png", "c.png"])  # class folders, but a CSV too
    (tmp_path / "truth.csv").write_text("file,label\ncat/a.png,dog\nc.png,cat\n")
    ds = ImageDatastore(tmp_path, labels="truth.csv")
    handle = apps.labeler(ds, open_browser=False)
    try:
        session = handle.labeler
        assert session.mode == "csv" and session.label_path == tmp_path / "truth.csv"
        assert session.labels == {"cat/a.png": "dog", "c.png": "cat"}
        session.set_labels(["cat/b.png"], "dog")  # saved to the datastore's CSV: no file moves
    finally:
        handle.close()
    assert sorted(os.listdir(tmp_path / "cat")) == ["a.png", "b.png"]
    again = ImageDatastore(tmp_path, labels="truth.csv")
    assert dict(zip((os.path.relpath(f, tmp_path) for f in again.files), again.labels,
                    strict=True)) == {os.path.join("cat", "a.png"): "dog",
                                      os.path.join("cat", "b.png"): "dog", "c.png": "cat"}  # fmt: skip
    other = tmp_path / "other.csv"
    other.write_text("image,kind\nc.png,cat\n")
    with pytest.raises(OptionError, match=r"writes the columns \('file', 'label'\)"):
        apps.labeler(ImageDatastore(tmp_path, labels="other.csv",
                                    label_columns=("image", "kind")), open_browser=False)  # fmt: skip
