"""ImageDatastore and ImageAugmenter on image files the tests write themselves."""

import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from deeptoolbox.data import ImageAugmenter, ImageDatastore, loader
from deeptoolbox.errors import DataError, OptionError


def save(path, array, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)
    return array


def pixels(seed, shape=(6, 10, 3)):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


@pytest.fixture
def tree(tmp_path):
    """root/{cat,dog}/*.png plus a stray text file; returns (root, {relative path: array})."""
    written = {}
    for i, (label, name) in enumerate([("cat", "1.png"), ("cat", "2.png"), ("dog", "3.png")]):
        written[f"{label}/{name}"] = save(tmp_path / "root" / label / name, pixels(i))
    (tmp_path / "root" / "dog" / "notes.txt").write_text("not an image")
    return tmp_path / "root", written


def as_chw(array):
    return torch.from_numpy(np.array(array)).permute(2, 0, 1).float() / 255


def test_folder_tree_labels_from_folder_names_and_exact_pixels(tree):
    root, written = tree
    ds = ImageDatastore(root)
    assert len(ds) == 3 and ds.classes == ["cat", "dog"]
    assert list(ds.labels) == ["cat", "cat", "dog"]
    assert ds.count_each_label() == {"cat": 2, "dog": 1}
    for i, file in enumerate(ds.files):
        image, label = ds[i]
        relative = file[len(str(root)) + 1 :]
        assert torch.equal(image, as_chw(written[relative]))
        assert ds.classes[int(label)] == relative.split("/")[0]


def test_labels_none_list_and_wrong_length(tree):
    root, _ = tree
    assert isinstance(ImageDatastore(root, labels=None)[0], torch.Tensor)
    ds = ImageDatastore(root, labels=["x", "y", "x"])
    assert ds.count_each_label() == {"x": 2, "y": 1}
    with pytest.raises(DataError, match="3 files but 2 labels"):
        ImageDatastore(root, labels=["x", "y"])
    with pytest.raises(OptionError, match="labels"):
        ImageDatastore(root, labels="filenames")


def test_list_of_folders_and_files(tree):
    root, _ = tree
    both = ImageDatastore([root / "cat", root / "dog"], labels="folders")
    assert list(both.labels) == ["cat", "cat", "dog"]
    files = ImageDatastore([root / "cat" / "1.png", root / "dog" / "3.png"])
    assert files.labels is None and len(files) == 2  # "auto": no labels for files named directly
    named = ImageDatastore([root / "cat" / "1.png", root / "dog" / "3.png"], labels="folders")
    assert list(named.labels) == ["cat", "dog"]


def test_recursive_option_and_nested_folders(tmp_path):
    save(tmp_path / "a" / "deep" / "x.png", pixels(0))
    save(tmp_path / "a" / "y.png", pixels(1))
    assert len(ImageDatastore(tmp_path / "a")) == 2
    assert len(ImageDatastore(tmp_path / "a", recursive=False)) == 1
    assert sorted(ImageDatastore(tmp_path / "a", labels="folders").labels) == ["a", "deep"]


def test_extension_filter_and_bad_locations(tree, tmp_path):
    root, _ = tree
    assert len(ImageDatastore(root, extensions=[".txt"], labels=None)) == 1
    with pytest.raises(DataError, match=r"notes.txt.*'\.txt'.*extensions"):
        ImageDatastore(root / "dog" / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        ImageDatastore(tmp_path / "empty")
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("x")
    with pytest.raises(DataError, match=r"\['\.txt'\]"):
        ImageDatastore(tmp_path / "texts")
    with pytest.raises(DataError, match="no such file"):
        ImageDatastore(tmp_path / "missing")


def test_output_size_resize_crop_and_gray(tmp_path):
    array = np.zeros((20, 40, 3), np.uint8)
    array[:, :, 0] = 200
    save(tmp_path / "one" / "a.png", array)
    resized = ImageDatastore(tmp_path, output_size=(8, 8), labels=None)[0]
    assert resized.shape == (3, 8, 8) and torch.allclose(resized[0], torch.full((8, 8), 200 / 255))
    cropped = ImageDatastore(tmp_path, output_size=(10, 50), size_mode="center-crop", labels=None)[
        0
    ]
    assert cropped.shape == (3, 10, 50)
    assert cropped[0, :, 0].sum() == 0 and cropped[0, :, 5:45].min() > 0.7  # padded at the sides
    gray = ImageDatastore(tmp_path, color="gray", labels=None)[0]
    expected = np.asarray(Image.fromarray(array).convert("L"))[0, 0] / 255
    assert gray.shape == (1, 20, 40) and abs(float(gray[0, 0, 0]) - expected) < 2 / 255
    with pytest.raises(OptionError, match="output_size"):
        ImageDatastore(tmp_path, output_size=(0, 3))
    with pytest.raises(OptionError, match="color"):
        ImageDatastore(tmp_path, color="cmyk")


@pytest.mark.parametrize("fmt,ext", [("JPEG", "jpg"), ("BMP", "bmp"), ("TIFF", "tif")])
def test_other_formats_decode(tmp_path, fmt, ext):
    array = pixels(3, (8, 8, 3))
    save(tmp_path / "c" / f"x.{ext}", array, fmt)
    image = ImageDatastore(tmp_path, labels=None)[0]
    reference = np.asarray(Image.open(tmp_path / "c" / f"x.{ext}").convert("RGB"))  # Pillow
    tolerance = 3 / 255 if fmt == "JPEG" else 0  # JPEG decoders may round differently
    assert (image - as_chw(reference)).abs().max() <= tolerance + 1e-6


def test_corrupt_file_raises_with_path_and_skip_warns_once(tree):
    root, _ = tree
    bad = root / "dog" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    ds = ImageDatastore(root)
    index = ds.files.index(str(bad))
    with pytest.raises(DataError, match=r"broken\.png"):
        ds[index]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        skipped = ImageDatastore(root, on_error="skip")
    messages = [str(w.message) for w in caught if "skipped" in str(w.message)]
    assert len(messages) == 1 and "broken.png" in messages[0]
    assert len(skipped) == 3 and str(bad) not in skipped.files
    with pytest.raises(OptionError, match="on_error"):
        ImageDatastore(root, on_error="ignore")


def test_fsspec_memory_urls():
    import fsspec

    fs = fsspec.filesystem("memory")
    arrays = {}
    for label, seed in (("red", 0), ("blue", 1), ("red", 2)):
        buffer = io.BytesIO()
        arrays[f"/dtb-images/{label}/{seed}.png"] = pixels(seed, (5, 7, 3))
        Image.fromarray(arrays[f"/dtb-images/{label}/{seed}.png"]).save(buffer, format="PNG")
        fs.pipe(f"/dtb-images/{label}/{seed}.png", buffer.getvalue())
    try:
        ds = ImageDatastore("memory://dtb-images")
        assert ds.classes == ["blue", "red"] and ds.count_each_label() == {"blue": 1, "red": 2}
        for i, url in enumerate(ds.files):
            assert url.startswith("memory://")
            assert torch.equal(ds[i][0], as_chw(arrays[url[len("memory://") :]]))
        with pytest.raises(DataError, match="no such file"):
            ImageDatastore("memory://dtb-nothing-here")
    finally:
        fs.rm("/dtb-images", recursive=True)


def test_augmenter_only_in_training_mode(tmp_path):
    array = np.zeros((4, 8, 3), np.uint8)
    array[:, :4] = 255  # left half white: a horizontal flip moves it right
    save(tmp_path / "k" / "a.png", array)
    ds = ImageDatastore(tmp_path, labels=None, augmenter=ImageAugmenter(flip="horizontal"))
    torch.manual_seed(0)
    lefts = {float(ds[0][0, 0, 0]) for _ in range(30)}
    assert lefts == {0.0, 1.0}  # both flipped and unflipped in training
    ds.eval()
    assert {float(ds[0][0, 0, 0]) for _ in range(30)} == {1.0}
    assert ds.train().training
    many = ds.subset([0] * 16)  # augmenter travels to worker processes
    firsts = torch.cat([b[:, 0, 0, 0] for b in loader(many, batch_size=4, workers=2)])
    assert set(firsts.tolist()) == {0.0, 1.0}


def test_file_urls_and_top_level_files(tmp_path):
    save(tmp_path / "top.png", pixels(0))
    save(tmp_path / "sub" / "inner.png", pixels(1))
    ds = ImageDatastore(f"file://{tmp_path}", labels="folders")
    assert all(f.startswith("file:///") for f in ds.files)
    assert sorted(ds.labels) == sorted([tmp_path.name, "sub"])
    assert torch.equal(ds[ds.files.index(f"file://{tmp_path}/top.png")][0], as_chw(pixels(0)))
    flat = tmp_path / "flat"
    save(flat / "a.png", pixels(2))
    assert ImageDatastore(f"file://{flat}").labels is None  # "auto": no subfolders, no labels


def test_augmenter_options_and_errors():
    image = torch.randint(0, 255, (3, 20, 20), dtype=torch.uint8)
    aug = ImageAugmenter(
        flip="both",
        rotation=(-10, 10),
        scale=(0.9, 1.1),
        translation=(0.1, 0.1),
        shear=5,
        crop=(16, 16),
        color_jitter=0.2,
    )
    assert aug(image).shape == (3, 16, 16)
    assert "rotation" in repr(aug)
    for bad in (
        {"flip": "diagonal"},
        {"rotation": (10, -10)},
        {"scale": (0, 1)},
        {"translation": (2, 0)},
        {"crop": (0, 4)},
        {"color_jitter": -1},
    ):
        with pytest.raises(OptionError, match=next(iter(bad))):
            ImageAugmenter(**bad)


def test_crop_augmenter_then_output_size(tmp_path):
    save(tmp_path / "k" / "a.png", pixels(0, (20, 20, 3)))
    aug = ImageAugmenter(crop=(10, 10))
    ds = ImageDatastore(tmp_path, labels=None, augmenter=aug, output_size=(12, 12))
    assert ds[0].shape == (3, 12, 12) and ds.eval()[0].shape == (3, 12, 12)


def test_split_and_loader_with_workers(tmp_path):
    for i in range(12):
        save(tmp_path / ("ab"[i % 2]) / f"{i}.png", pixels(i, (9, 9, 3)))
    ds = ImageDatastore(tmp_path)
    train, test = ds.split(0.5, seed=0)
    assert train.count_each_label() == test.count_each_label() == {"a": 3, "b": 3}
    assert not set(train.files) & set(test.files)
    batches = list(loader(train, batch_size=4, workers=2, shuffle=True, seed=0))
    assert [tuple(b[0].shape) for b in batches] == [(4, 3, 9, 9), (2, 3, 9, 9)]
    assert sorted(torch.cat([b[1] for b in batches]).tolist()) == [0, 0, 0, 1, 1, 1]


def test_16_bit_images_scale_to_unit_range(tmp_path):
    array = (np.arange(64).reshape(8, 8) * 1000).astype(np.uint16)
    Image.fromarray(array).save(tmp_path / "deep.png")
    image = ImageDatastore(tmp_path / "deep.png", color="gray")[0]
    assert image.dtype == torch.float32
    assert torch.allclose(image[0], torch.from_numpy(array.astype(np.float32) / 65535))
