"""BoxLabelDatastore and BoxLabelImageDatastore: boxes and labels read from arrays, tables,
CSV and COCO files and generated shapes; bad boxes and labels fail naming the file."""

import json

import numpy as np
import pytest
import torch

from deeptoolbox import datasets
from deeptoolbox.errors import DataError
from deeptoolbox.vision import BoxLabelDatastore, BoxLabelImageDatastore, DetectionAugmenter


def test_detection_shapes_are_reproducible_and_boxes_enclose_their_masks():
    a = datasets.detection_shapes(12, image_size=48, seed=3)
    b = datasets.detection_shapes(12, image_size=48, seed=3)
    c = datasets.detection_shapes(12, image_size=48, seed=4)
    assert np.array_equal(a.images, b.images) and not np.array_equal(a.images, c.images)
    assert sum(len(x) for x in a.boxes) > 12  # several objects per image
    for boxes, mask in zip(a.boxes, a.masks, strict=True):
        for j, box in enumerate(boxes):
            rows, cols = np.nonzero(mask == j + 1)
            assert box.tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
        # boxes do not touch, so every box holds only its own object
        for j, box in enumerate(boxes):
            x0, y0, x1, y1 = box.astype(int)
            assert set(np.unique(mask[y0:y1, x0:x1])) <= {0, j + 1}


def test_from_shapes_table_csv_and_coco_give_the_same_boxes(tmp_path):
    data = datasets.detection_shapes(5, image_size=40, seed=0)
    from_shapes = BoxLabelDatastore.from_shapes(data)
    rows = [{"file": f"im{i}.png", "x_min": x0, "y_min": y0, "x_max": x1, "y_max": y1,
             "label": str(label), "width": 40, "height": 40}
            for i in range(5) for (x0, y0, x1, y1), label in zip(data.boxes[i], data.labels[i],
                                                                 strict=True)]  # fmt: skip
    files = [f"im{i}.png" for i in range(5)]
    from_table = BoxLabelDatastore.from_table(rows, classes=list(data.classes), files=files)
    csv_path = tmp_path / "boxes.csv"
    csv_path.write_text("file,x_min,y_min,x_max,y_max,label\n" + "".join(
        f"{r['file']},{r['x_min']},{r['y_min']},{r['x_max']},{r['y_max']},{r['label']}\n"
        for r in rows))  # fmt: skip
    from_csv = BoxLabelDatastore.from_csv(csv_path, classes=list(data.classes))
    coco = {
        "images": [{"id": 10 + i, "file_name": f, "width": 40, "height": 40}
                   for i, f in enumerate(files)],
        "categories": [{"id": 5 + k, "name": n} for k, n in enumerate(data.classes)],
        "annotations": [{"id": n, "image_id": 10 + int(r["file"][2]), "iscrowd": 0,
                         "category_id": 5 + data.classes.index(r["label"]),
                         "bbox": [float(r["x_min"]), float(r["y_min"]),
                                  float(r["x_max"] - r["x_min"]), float(r["y_max"] - r["y_min"])]}
                        for n, r in enumerate(rows)],
    }  # fmt: skip
    coco_path = tmp_path / "instances.json"
    coco_path.write_text(json.dumps(coco))
    from_coco = BoxLabelDatastore.from_coco(coco_path)
    for ds in (from_table, from_csv, from_coco):
        assert ds.classes == list(data.classes) and len(ds) == 5
        for i in range(5):
            assert torch.equal(ds[i]["boxes"], from_shapes[i]["boxes"])
            assert torch.equal(ds[i]["labels"], from_shapes[i]["labels"])
    assert from_coco.files == files
    counts = from_shapes.count_each_label()
    assert sum(counts.values()) == sum(len(b) for b in data.boxes)


def test_bad_boxes_and_labels_name_the_file_and_the_box(tmp_path):
    with pytest.raises(DataError, match=r"box 1 of 'b.png' is \[5.0, 5.0, 3.0, 9.0\].*width -2"):
        BoxLabelDatastore([[[0, 0, 2, 2]], [[0, 0, 1, 1], [5, 5, 3, 9]]], [["a"], ["a", "a"]],
                          sources=["a.png", "b.png"])  # fmt: skip
    with pytest.raises(
        DataError, match="box 0 of 'a.png'.*outside the image of width 8 and height 6"
    ):
        BoxLabelDatastore([[[0, 0, 9, 2]]], [["a"]], image_sizes=(6, 8), sources=["a.png"])
    with pytest.raises(DataError, match=r"observation 1 has label\(s\) \['zebra'\].*\['a', 'b'\]"):
        BoxLabelDatastore([[[0, 0, 2, 2]], [[0, 0, 2, 2]]], [["a"], ["zebra"]], classes=["a", "b"])
    with pytest.raises(DataError, match="observation 0 has 2 boxes but 1 labels"):
        BoxLabelDatastore([[[0, 0, 2, 2], [1, 1, 3, 3]]], [["a"]])
    coco = {
        "images": [{"id": 1, "file_name": "x.jpg", "width": 9, "height": 9}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [{"id": 4, "image_id": 1, "category_id": 1, "bbox": [1, 1, -2, 3]}],
    }
    with pytest.raises(
        DataError, match="annotation 4 of 'x.jpg'.*width and height must be positive"
    ):
        BoxLabelDatastore.from_coco(coco)
    # boxes outside the image found when the images are read (their size known only then)
    boxes = BoxLabelDatastore([[[0, 0, 4, 4]], [[10, 0, 20, 4]]], [["a"], ["a"]],
                              sources=["p.png", "q.png"])  # fmt: skip
    ds = BoxLabelImageDatastore(np.zeros((2, 3, 16, 16), np.float32), boxes)
    ds[0]
    with pytest.raises(DataError, match="box 0 of image 'q.png'.*outside the image of width 16"):
        ds[1]


def test_image_datastore_resizes_boxes_with_images_and_batches_keep_targets_a_list():
    data = datasets.detection_shapes(6, image_size=32, seed=1)
    boxes = BoxLabelDatastore.from_shapes(data)
    ds = BoxLabelImageDatastore(data.images, boxes, output_size=(64, 48))
    image, target = ds[2]
    assert tuple(image.shape) == (3, 64, 48)
    expected = torch.from_numpy(data.boxes[2]) * torch.tensor([1.5, 2.0, 1.5, 2.0])
    assert torch.allclose(target["boxes"], expected)
    images, targets = ds.collate_fn([ds[i] for i in range(4)])
    assert tuple(images.shape) == (4, 3, 64, 48) and isinstance(targets, list)
    assert [len(t["boxes"]) for t in targets] == [len(b) for b in data.boxes[:4]]
    sub = ds.subset([3, 1])
    assert torch.equal(sub[0][1]["labels"], ds[3][1]["labels"]) and sub.classes == ds.classes


def test_augmenter_is_applied_while_training_only():
    data = datasets.detection_shapes(2, image_size=32, seed=2)
    ds = BoxLabelImageDatastore(data.images, BoxLabelDatastore.from_shapes(data),
                                augmenter=DetectionAugmenter(flip="horizontal"))  # fmt: skip
    ds.eval()
    assert torch.equal(ds[0][0], torch.from_numpy(data.images[0]))
    torch.manual_seed(0)
    flipped = [ds.train()[0] for _ in range(8)]
    mirrored = torch.from_numpy(data.images[0]).flip(-1)
    assert any(torch.equal(image, mirrored) for image, _ in flipped)


def _image_folder(tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for name, colour, (x0, y0, x1, y1) in (("a.png", (255, 0, 0), (5, 10, 25, 30)),
                                           ("b.png", (0, 0, 255), (30, 5, 60, 20))):  # fmt: skip
        pixels = np.zeros((40, 64, 3), np.uint8)
        pixels[y0:y1, x0:x1] = colour  # each image's object where its own box says
        Image.fromarray(pixels).save(folder / name)
    return folder


def test_images_and_boxes_are_paired_by_file_name_not_by_position(tmp_path):
    from deeptoolbox.data import ImageDatastore

    folder = _image_folder(tmp_path)
    csv = tmp_path / "boxes.csv"  # b.png listed first, with another box than a.png
    csv.write_text("file,x_min,y_min,x_max,y_max,label\n"
                   "b.png,30,5,60,20,blue\na.png,5,10,25,30,red\n")  # fmt: skip
    boxes = BoxLabelDatastore.from_csv(csv)
    assert boxes.files == ["b.png", "a.png"]
    ds = BoxLabelImageDatastore(ImageDatastore(folder, labels=None), boxes)
    for image, target in (ds[i] for i in range(len(ds))):
        x0, y0, x1, y1 = target["boxes"][0].long().tolist()
        colour = image[:, y0:y1, x0:x1].mean(dim=(1, 2))
        expected = {"red": 0, "blue": 2}[ds.classes[int(target["labels"][0])]]
        assert int(colour.argmax()) == expected  # the box lies on its own image's object
    assert sorted(p.rsplit("/", 1)[-1] for p in ds.files) == ["a.png", "b.png"]
    # an image without objects: named in `files`, it gets an empty set of boxes
    only_b = tmp_path / "only_b.csv"
    only_b.write_text("file,x_min,y_min,x_max,y_max,label\nb.png,30,5,60,20,blue\n")
    some = BoxLabelDatastore.from_csv(only_b, files=["a.png", "b.png"], classes=["red", "blue"])
    paired = BoxLabelImageDatastore(ImageDatastore(folder, labels=None), some)
    assert [len(paired[i][1]["labels"]) for i in range(2)] == [0, 1]
    csv.write_text("file,x_min,y_min,x_max,y_max,label\nc.png,1,1,5,5,red\nb.png,1,1,5,5,red\n")
    with pytest.raises(DataError, match=r"name files the images do not have .*'c.png'"):
        BoxLabelImageDatastore(ImageDatastore(folder, labels=None), BoxLabelDatastore.from_csv(csv))
