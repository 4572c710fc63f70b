"""ImageDatastore with labels from a CSV (``labels="labels.csv"``, the Labeler's format):
reading, errors naming the file and line, relabel rewriting the CSV atomically, views."""

import errno
import os
import stat

import numpy as np
import pytest
import torch
from PIL import Image

from deeptoolbox.data import ImageDatastore
from deeptoolbox.errors import DataError, FileWriteError, OptionError


def _image(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 6), value, np.uint8)).save(path)


@pytest.fixture
def folder(tmp_path):
    """Five gray images (a.png ... d.png, sub/e.png; pixel value 10 * position) and a
    labels.csv for four of them, in an order that is not sorted, with an extra column."""
    root = tmp_path / "images"
    for i, name in enumerate(["a.png", "b.png", "c.png", "d.png", "sub/e.png"]):
        _image(root / name, 10 * (i + 1))
    (root / "labels.csv").write_text(
        "file,label,note\nc.png,dog,first\na.png,cat,\nsub/e.png,dog,nested\nb.png,cat,x\n"
    )
    return root


def _pixel(ds, i):
    return round(float(ds[i][0][0, 0, 0]) * 255)


def test_labels_come_from_the_csv_in_row_order_with_the_right_images(folder):
    ds = ImageDatastore(folder, labels="labels.csv")
    assert ds.label_file == str(folder / "labels.csv")
    assert [os.path.relpath(f, folder) for f in ds.files] == [
        "c.png", "a.png", os.path.join("sub", "e.png"), "b.png"]  # fmt: skip
    assert ds.labels.tolist() == ["dog", "cat", "dog", "cat"]
    assert ds.classes == ["cat", "dog"]
    assert [_pixel(ds, i) for i in range(4)] == [30, 10, 50, 20]  # d.png (no row) left out
    assert [ds.classes[int(ds[i][1])] for i in range(4)] == ds.labels.tolist()


def test_auto_opens_a_folder_with_the_labelers_labels_csv_in_csv_mode(folder):
    ds = ImageDatastore(folder)
    assert ds.label_file == str(folder / "labels.csv") and len(ds) == 4
    assert ImageDatastore(folder / "sub").label_file is None


def test_auto_ignores_a_labels_csv_without_the_label_columns(tmp_path):
    for name in ("cat/1.png", "dog/2.png"):
        _image(tmp_path / name, 1)
    (tmp_path / "labels.csv").write_text("id,breed\n1,siamese\n")
    ds = ImageDatastore(tmp_path)
    assert ds.label_file is None and ds.labels.tolist() == ["cat", "dog"]


def test_class_folder_and_list_modes_have_no_label_file(folder):
    assert ImageDatastore(folder, labels="folders").label_file is None
    assert ImageDatastore(folder, labels=None).label_file is None


def test_an_absolute_csv_elsewhere_and_other_column_names(folder, tmp_path):
    elsewhere = tmp_path / "meta" / "truth.csv"
    elsewhere.parent.mkdir()
    elsewhere.write_text("image,kind,score\nd.png,bird,0.5\nsub/e.png,cat,0.1\n")
    ds = ImageDatastore(folder, labels=str(elsewhere), label_columns=("image", "kind"))
    assert ds.label_file == str(elsewhere)  # the file column is relative to the folder
    assert [_pixel(ds, i) for i in range(2)] == [40, 50] and ds.labels.tolist() == ["bird", "cat"]


def test_a_missing_column_names_the_csv_and_the_columns(folder):
    (folder / "other.csv").write_text("file,class\na.png,cat\n")
    with pytest.raises(DataError, match=r"other\.csv' has no column 'label'.*\['file', 'class'\]"):
        ImageDatastore(folder, labels="other.csv")


def test_a_row_naming_a_missing_file_names_the_csv_and_line(folder):
    (folder / "labels.csv").write_text("file,label\na.png,cat\nghost.png,dog\n")
    with pytest.raises(DataError, match=r"line 3 of the label file '.*labels\.csv' names "
                                        r"'ghost\.png', which does not exist"):  # fmt: skip
        ImageDatastore(folder)


def test_duplicate_rows_for_one_file_name_both_lines(folder):
    (folder / "labels.csv").write_text("file,label\na.png,cat\nb.png,dog\n./a.png,dog\n")
    with pytest.raises(DataError, match=r"labels\.csv' lists '\./a\.png' twice \(lines 2 and 4\)"):
        ImageDatastore(folder, labels="labels.csv")


def test_an_empty_label_names_the_line(folder):
    (folder / "labels.csv").write_text("file,label\na.png,cat\nb.png, \n")
    with pytest.raises(DataError, match=r"line 3 of .*labels\.csv' gives 'b\.png' an empty label"):
        ImageDatastore(folder, labels="labels.csv")


def test_a_class_not_in_classes_names_the_line_and_the_class(folder):
    with pytest.raises(DataError, match=r"line 3 of .*labels\.csv' gives 'a\.png' the class "
                                        r"'cat', which is not in `classes` \['dog'\]"):  # fmt: skip
        ImageDatastore(folder, labels="labels.csv", classes=["dog"])
    ordered = ImageDatastore(folder, labels="labels.csv", classes=["dog", "cat", "bird"])
    assert ordered.classes == ["dog", "cat", "bird"] and int(ordered[0][1]) == 0


def test_a_file_with_an_extension_the_datastore_does_not_read(folder):
    (folder / "notes.txt").write_text("x")
    (folder / "labels.csv").write_text("file,label\nnotes.txt,cat\n")
    with pytest.raises(DataError, match=r"line 2 .* 'notes\.txt', whose extension '\.txt'"):
        ImageDatastore(folder, labels="labels.csv")


def test_option_errors_for_the_csv_location_and_columns(folder):
    with pytest.raises(DataError, match=r"cannot find the label file '.*nope\.csv'"):
        ImageDatastore(folder, labels="nope.csv")
    with pytest.raises(OptionError, match=r"needs `location` to be one local folder"):
        ImageDatastore([folder / "a.png", folder / "b.png"], labels="labels.csv")
    with pytest.raises(OptionError, match=r"`label_columns` must be two different column names"):
        ImageDatastore(folder, labels="labels.csv", label_columns=("file", "file"))
    (folder / "labels.csv").write_text("file,label\n")
    with pytest.raises(DataError, match=r"labels\.csv' labels no image"):
        ImageDatastore(folder, labels="labels.csv")


def test_relabel_rewrites_the_csv_keeping_row_order_and_other_columns(folder):
    ds = ImageDatastore(folder, labels="labels.csv")
    moved = ds.relabel({str(folder / "a.png"): "dog", ds.files[0]: "cat"})
    assert moved == {}  # nothing moves in CSV mode
    assert (folder / "labels.csv").read_text() == (
        "file,label,note\nc.png,cat,first\na.png,dog,\nsub/e.png,dog,nested\nb.png,cat,x\n"
    )
    assert ds.labels.tolist() == ["cat", "dog", "dog", "cat"]
    assert [int(ds[i][1]) for i in range(4)] == [0, 1, 1, 0]
    again = ImageDatastore(folder)
    assert again.labels.tolist() == ds.labels.tolist() and again.files == ds.files
    assert sorted(p.name for p in folder.iterdir()) == [
        "a.png", "b.png", "c.png", "d.png", "labels.csv", "sub"]  # fmt: skip


def test_relabel_keeps_crlf_line_ends_a_byte_order_mark_and_blank_lines(tmp_path):
    _image(tmp_path / "a.png", 1)
    _image(tmp_path / "b.png", 2)
    (tmp_path / "labels.csv").write_bytes(b"\xef\xbb\xbffile,label\r\na.png,x\r\n\r\nb.png,y\r\n")
    ds = ImageDatastore(tmp_path)
    ds.relabel({ds.files[1]: "x"})
    assert (tmp_path / "labels.csv").read_bytes() == (
        b"\xef\xbb\xbffile,label\r\na.png,x\r\n\r\nb.png,x\r\n"
    )


def test_relabel_refuses_a_file_that_is_not_in_the_datastore_naming_it(folder):
    before = (folder / "labels.csv").read_text()
    ds = ImageDatastore(folder)
    with pytest.raises(DataError, match=r"'.*d\.png' is not a file of this datastore"):
        ds.relabel({str(folder / "a.png"): "dog", str(folder / "d.png"): "cat"})
    assert (folder / "labels.csv").read_text() == before
    assert ds.labels.tolist() == ["dog", "cat", "dog", "cat"]


def test_relabel_to_a_class_outside_classes_is_refused_unless_classes_list_it(folder):
    before = (folder / "labels.csv").read_text()
    ds = ImageDatastore(folder)
    with pytest.raises(DataError, match=r"class 'bird' is not one of the datastore's classes"):
        ds.relabel({ds.files[0]: "bird"})
    assert (folder / "labels.csv").read_text() == before
    wider = ImageDatastore(folder, classes=["cat", "dog", "bird"])
    wider.relabel({wider.files[0]: "bird"})
    assert ImageDatastore(folder).count_each_label() == {"bird": 1, "cat": 2, "dog": 1}


def test_a_failed_rename_leaves_the_old_csv_and_the_labels(folder, monkeypatch):
    before = (folder / "labels.csv").read_bytes()
    ds = ImageDatastore(folder)

    def disk_error(source, target):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", disk_error)
    with pytest.raises(FileWriteError, match=r"labels\.csv'.*is unchanged"):
        ds.relabel({ds.files[0]: "cat"})
    assert (folder / "labels.csv").read_bytes() == before
    assert ds.labels.tolist() == ["dog", "cat", "dog", "cat"] and int(ds[0][1]) == 1
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []


def test_a_write_failing_midway_leaves_the_old_csv(folder, monkeypatch):
    import csv

    before = (folder / "labels.csv").read_bytes()
    ds = ImageDatastore(folder)

    class Broken:
        def __init__(self, stream, **kwargs):
            self.stream = stream

        def writerows(self, rows):
            self.stream.write("file,label\nc.png,")
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(csv, "writer", Broken)
    with pytest.raises(FileWriteError, match="No space left on device"):
        ds.relabel({ds.files[0]: "cat"})
    assert (folder / "labels.csv").read_bytes() == before
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def test_the_rewritten_csv_keeps_its_permissions(folder):
    os.chmod(folder / "labels.csv", 0o640)
    ds = ImageDatastore(folder)
    ds.relabel({ds.files[0]: "cat"})
    assert stat.S_IMODE(os.stat(folder / "labels.csv").st_mode) == 0o640


def test_a_csv_changed_since_the_datastore_was_made_is_not_overwritten(folder):
    ds = ImageDatastore(folder)
    (folder / "labels.csv").write_text("file,label\na.png,cat\n")
    with pytest.raises(DataError, match=r"no longer has a row for .*c\.png.*Nothing was written"):
        ds.relabel({ds.files[0]: "cat"})
    assert (folder / "labels.csv").read_text() == "file,label\na.png,cat\n"


def test_subset_split_and_shuffle_keep_each_files_label(folder):
    ds = ImageDatastore(folder, labels="labels.csv")
    truth = dict(zip(ds.files, ds.labels.tolist(), strict=True))
    views = [ds.subset([3, 0]), ds.shuffle(seed=1), *ds.split(0.5, seed=0)]
    for view in views:
        assert [truth[f] for f in view.files] == view.labels.tolist()
        for i in range(len(view)):
            image, code = view[i]
            assert view.classes[int(code)] == truth[view.files[i]]
            assert torch.equal(image, ImageDatastore([view.files[i]], labels=None)[0])
    shuffled = views[1]
    ds.relabel({ds.files[3]: "dog"})  # views share the datastore's labels
    assert shuffled.labels[shuffled.files.index(ds.files[3])] == "dog"


def test_on_error_skip_drops_an_unreadable_row_and_relabel_still_writes(folder):
    (folder / "broken.png").write_bytes(b"not a png")
    with open(folder / "labels.csv", "a") as stream:
        stream.write("broken.png,cat\n")
    with pytest.warns(RuntimeWarning, match=r"skipped 1 unreadable file.*broken\.png"):
        ds = ImageDatastore(folder, on_error="skip")
    assert len(ds) == 4
    ds.relabel({ds.files[-1]: "dog"})
    rows = (folder / "labels.csv").read_text().splitlines()
    assert rows[-2:] == ["b.png,dog,x", "broken.png,cat"]


def test_class_folders_skip_hidden_entries_and_the_labelers_pixel_labels(tmp_path):
    for name in ("cat/1.png", "dog/2.png", ".cache/3.png", "cat/.4.png", "pixel-labels/cat__1.png"):
        _image(tmp_path / name, 1)
    (tmp_path / "pixel-labels" / "classes.json").write_text(
        '{"classes": ["background", "cat"], "label_ids": [0, 1]}'
    )
    for labels in ("auto", "folders"):
        ds = ImageDatastore(tmp_path, labels=labels)
        assert [os.path.relpath(f, tmp_path) for f in ds.files] == [
            os.path.join("cat", "1.png"), os.path.join("dog", "2.png")]  # fmt: skip
        assert ds.classes == ["cat", "dog"]
    assert len(ImageDatastore(tmp_path, labels=None)) == 2


def test_a_folder_named_pixel_labels_without_the_labelers_class_map_is_a_class(tmp_path):
    for name in ("cat/1.png", "pixel-labels/2.png"):
        _image(tmp_path / name, 1)
    assert ImageDatastore(tmp_path).classes == ["cat", "pixel-labels"]


def test_images_directly_in_a_folder_the_labeler_saved_into_are_left_out(tmp_path):
    for name in ("cat/1.png", "dog/2.png", "todo.png"):
        _image(tmp_path / name, 1)
    (tmp_path / "labeler-classes.json").write_text('{"classes": ["cat", "dog", "bird"]}')
    with pytest.warns(RuntimeWarning, match=r"left out 1 image.*todo\.png.*the Labeler saved"):
        ds = ImageDatastore(tmp_path)
    assert ds.labels.tolist() == ["cat", "dog"]


def test_images_directly_in_another_folder_get_its_name_with_a_warning(tmp_path):
    root = tmp_path / "root"
    for name in ("cat/1.png", "top.png"):
        _image(root / name, 1)
    with pytest.warns(RuntimeWarning, match=r"1 image\(s\) directly in .*label is the folder's "
                                            r"own name 'root'"):  # fmt: skip
        ds = ImageDatastore(root)
    assert sorted(ds.labels.tolist()) == ["cat", "root"]


def test_labels_as_an_array_still_work_beside_a_labels_csv(folder):
    ds = ImageDatastore(folder / "sub", labels=np.asarray(["bird"]))
    assert ds.label_file is None and ds.labels.tolist() == ["bird"]
    listed = ImageDatastore(
        [str(folder / "a.png"), str(folder / "b.png")], labels=np.asarray(["x", "y"])
    )
    assert listed.labels.tolist() == ["x", "y"]


def test_spaces_around_csv_cells_never_make_a_class_of_their_own(tmp_path):
    root = tmp_path / "images"
    for name in ("a.png", "b.png", "c.png"):
        _image(root / name, 0)
    (root / "labels.csv").write_text("file,label\na.png, cat\n b.png ,cat\nc.png, 0\n")
    ds = ImageDatastore(root, labels="labels.csv")
    assert ds.labels.tolist() == ["cat", "cat", "0"] and ds.classes == ["0", "cat"]
    ds.relabel({ds.files[2]: " cat "})  # written as it is read back: without the spaces
    assert (root / "labels.csv").read_text().splitlines()[-1] == "c.png,cat"
    again = ImageDatastore(root, labels="labels.csv")
    assert again.labels.tolist() == ["cat", "cat", "cat"] and again.classes == ["cat"]
