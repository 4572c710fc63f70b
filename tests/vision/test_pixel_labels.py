"""PixelLabelDatastore and PixelLabelImageDatastore: label files read back as class indices,
bad files named in the errors, images paired with their maps."""

import numpy as np
import pytest
import torch
from PIL import Image

from deeptoolbox import datasets
from deeptoolbox.data import ImageDatastore
from deeptoolbox.errors import DataError, OptionError
from deeptoolbox.vision import (
    IGNORE_INDEX,
    PixelLabelDatastore,
    PixelLabelImageDatastore,
    write_pixel_labels,
)

CLASSES = ["background", "circle", "square", "triangle"]


def test_label_files_read_back_as_the_masks_they_were_written_from(tmp_path):
    data = datasets.shapes(6, image_size=16, seed=2)
    folder = write_pixel_labels(tmp_path, data.masks, label_ids=[0, 60, 120, 250])
    ds = PixelLabelDatastore(folder, CLASSES, [0, 60, 120, 250])
    assert len(ds) == 6 and ds.classes == CLASSES
    for i in range(6):
        assert torch.equal(ds[i], torch.as_tensor(data.masks[i]))
    counts = np.bincount(data.masks.ravel(), minlength=4)
    assert ds.count_each_label() == dict(zip(CLASSES, counts.tolist(), strict=True))


def test_rgb_label_ids_and_several_ids_per_class(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[0] = (255, 0, 0)
    rgb[1] = (0, 0, 255)
    rgb[2] = (0, 255, 0)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    ds = PixelLabelDatastore(
        tmp_path, ["sky", "road"], [[(0, 0, 0), (0, 255, 0)], [(255, 0, 0), (0, 0, 255)]]
    )
    assert ds[0].tolist() == [[1] * 5, [1] * 5, [0] * 5, [0] * 5]


def test_palette_pngs_read_as_indices_for_gray_ids_and_as_colours_for_rgb_ids(tmp_path):
    indices = np.array([[0, 1, 1], [2, 0, 255]], np.uint8)
    image = Image.fromarray(indices, mode="P")
    palette = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (3 * 252) + [224, 224, 192]  # VOC's
    image.putpalette(palette)
    image.save(tmp_path / "voc.png")
    classes = ["background", "aeroplane", "bicycle", "void"]
    by_index = PixelLabelDatastore(tmp_path, classes, [0, 1, 2, 255])
    assert by_index[0].tolist() == [[0, 1, 1], [2, 0, 3]]
    by_colour = PixelLabelDatastore(
        tmp_path, classes, [(0, 0, 0), (128, 0, 0), (0, 128, 0), (224, 224, 192)]
    )
    assert by_colour[0].tolist() == [[0, 1, 1], [2, 0, 3]]
    with pytest.raises(DataError, match=r"voc\.png"):
        PixelLabelDatastore(tmp_path, classes[:3], [0, 1, 2])[0]  # index 255 is in no class


def test_values_in_no_class_raise_naming_the_file_or_are_ignored(tmp_path):
    mask = np.zeros((4, 4), np.uint8)
    mask[0, 0] = 7
    Image.fromarray(mask).save(tmp_path / "bad.png")
    with pytest.raises(DataError, match=r"bad\.png.*\[7\].*Allowed values: \[0, 1\]"):
        PixelLabelDatastore(tmp_path, ["a", "b"], [0, 1])[0]
    ignored = PixelLabelDatastore(tmp_path, ["a", "b"], [0, 1], undefined="ignore")[0]
    assert ignored[0, 0] == IGNORE_INDEX and int((ignored == 0).sum()) == 15


def test_bad_options_are_rejected():
    with pytest.raises(OptionError, match="one id"):
        PixelLabelDatastore(".", ["a", "b"], [0])
    with pytest.raises(OptionError, match="for class 'a' and for class 'b'"):
        PixelLabelDatastore(".", ["a", "b"], [3, 3])
    with pytest.raises(OptionError, match="undefined"):
        PixelLabelDatastore(".", ["a"], [0], undefined="drop")
    with pytest.raises(OptionError, match="mix gray"):
        PixelLabelDatastore(".", ["a", "b"], [0, (1, 2, 3)])


def test_class_weights_balance_the_pixel_counts(tmp_path):
    masks = np.zeros((2, 4, 4), np.int64)
    masks[0, :1] = 1  # class 1: 4 pixels, all in image 0
    folder = write_pixel_labels(tmp_path, masks)
    ds = PixelLabelDatastore(folder, ["a", "b"], [0, 1])
    counts, image_pixels = np.array([28, 4]), np.array([32, 16])
    frequency = counts / image_pixels
    assert ds.class_weights() == pytest.approx(np.median(frequency) / frequency)
    assert ds.class_weights("inverse-frequency") == pytest.approx(32 / (2 * counts))


def test_images_pair_with_their_label_files_and_sizes_must_match(tmp_path):
    data = datasets.shapes(5, image_size=16, seed=1)
    datasets.write_image_folder(tmp_path / "images", data.images, ["all"] * 5)
    write_pixel_labels(tmp_path / "labels", data.masks)
    images = ImageDatastore(tmp_path / "images", labels=None)
    labels = PixelLabelDatastore(tmp_path / "labels", CLASSES, [0, 1, 2, 3])
    ds = PixelLabelImageDatastore(images, labels)
    image, mask = ds[3]
    assert ds.classes == CLASSES and image.shape == (3, 16, 16)
    assert torch.equal(mask, torch.as_tensor(data.masks[3]))
    assert torch.allclose(image, torch.as_tensor(data.images[3]), atol=1 / 255)
    small = PixelLabelDatastore(tmp_path / "labels", CLASSES, [0, 1, 2, 3], output_size=(8, 8))
    with pytest.raises(DataError, match=r"00000\.png' is \(3, 16, 16\).*00000\.png' is \(8, 8\)"):
        PixelLabelImageDatastore(images, small)[0]
    with pytest.raises(DataError, match="5 images but 4 label maps"):
        PixelLabelImageDatastore(images, labels.subset([0, 1, 2, 3]))


def test_arrays_are_accepted_and_augmentation_runs_only_in_training():
    data = datasets.shapes(4, image_size=16, seed=0)

    def flip(image, labels):
        return image.flip(-1), labels.flip(-1)

    ds = PixelLabelImageDatastore(data.images, data.masks, classes=CLASSES, augmenter=flip)
    assert torch.equal(ds[0][1], torch.as_tensor(data.masks[0]).flip(-1))
    assert torch.equal(ds.eval()[0][1], torch.as_tensor(data.masks[0]))
    with pytest.raises(OptionError, match="rank 3"):
        PixelLabelImageDatastore(data.images, data.masks[0])


def test_gray_ids_an_8_bit_file_cannot_hold_are_refused_naming_the_file(tmp_path):
    mask = np.zeros((4, 5), np.uint16)
    mask[1:3, 1:4] = 300
    Image.fromarray(mask.astype(np.uint8)).save(tmp_path / "eight.png")  # 300 wraps to 44
    Image.fromarray(mask).save(tmp_path / "sixteen.png")  # 16-bit gray (I;16)
    for name in ("eight", "sixteen"):
        (tmp_path / name).mkdir()
        (tmp_path / f"{name}.png").rename(tmp_path / name / "a.png")
    eight = PixelLabelDatastore(tmp_path / "eight", ["background", "part"], [0, 300])
    with pytest.raises(DataError, match=r"eight/a.png' stores 8-bit values .*\[300\]"):
        eight[0]
    sixteen = PixelLabelDatastore(tmp_path / "sixteen", ["background", "part"], [0, 300])
    assert int(sixteen[0].sum()) == 6  # the six pixels of class 1
