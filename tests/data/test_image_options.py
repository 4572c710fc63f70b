"""ImageAugmenter ranges (signed numbers, pixels), ImageDatastore's colour default (as stored),
output_size_mode (MATLAB's OutputSizeMode), labels="foldernames" and ArrayDatastore images."""

import numpy as np
import pytest
import torch
from PIL import Image

from deeptoolbox.data import (
    ArrayDatastore,
    FileDatastore,
    ImageAugmenter,
    ImageDatastore,
    SignalDatastore,
    TextDatastore,
    loader,
)
from deeptoolbox.errors import OptionError


def dot_image(row=5, col=6, size=(12, 14)):
    image = torch.zeros(1, *size, dtype=torch.uint8)
    image[0, row, col] = 255
    return image


def dot_position(image):
    (row, col) = (image[0] > 0).nonzero()[0].tolist()
    return row, col


# ------------------------------------------------------------------- augmenter ranges
@pytest.mark.parametrize("name,limit", [("rotation", 360), ("shear", 89)])
def test_a_negative_number_means_the_symmetric_range(name, limit):
    negative = ImageAugmenter(**{name: -10})
    positive = ImageAugmenter(**{name: 10})
    assert negative.options[name] == positive.options[name] == (-10.0, 10.0)
    image = torch.randint(0, 255, (3, 16, 16), dtype=torch.uint8)
    torch.manual_seed(3)
    a = negative(image)
    torch.manual_seed(3)
    assert torch.equal(a, positive(image))
    with pytest.raises(OptionError, match=rf"a number r .*\[-\|r\|, \|r\|\].*<= {limit}"):
        ImageAugmenter(**{name: (10, -10)})


def test_single_numbers_for_translation_and_crop_and_clear_scale_message():
    aug = ImageAugmenter(translation=0.25, crop=8)
    assert aug.options["translation"] == (0.25, 0.25) and aug.options["crop"] == (8, 8)
    assert aug(torch.zeros(3, 16, 16, dtype=torch.uint8)).shape == (3, 8, 8)
    with pytest.raises(OptionError, match=r"scale.*\(min, max\) pair.*scale=1\.1"):
        ImageAugmenter(scale=1.1)
    with pytest.raises(OptionError, match=r"translation.*largest shift either way.*\[0, 1\]"):
        ImageAugmenter(translation=(-0.1, 0.1))
    with pytest.raises(OptionError, match="crop"):
        ImageAugmenter(crop=(4,))


def test_translation_in_pixels_shifts_by_exact_pixel_ranges():
    image = dot_image()
    right = ImageAugmenter(translation_pixels=((3, 3), (0, 0)))
    assert dot_position(right(image)) == (5, 9)
    up_left = ImageAugmenter(translation_pixels=((-2, -2), (-4, -4)))
    assert dot_position(up_left(image)) == (1, 4)
    torch.manual_seed(0)
    symmetric = ImageAugmenter(translation_pixels=(2, 1))  # x in [-2, 2], y in [-1, 1]
    shifts = {tuple(np.subtract(dot_position(symmetric(image)), (5, 6))) for _ in range(200)}
    assert {dy for dy, _ in shifts} == {-1, 0, 1} and {dx for _, dx in shifts} == {-2, -1, 0, 1, 2}


def test_translation_in_pixels_errors():
    with pytest.raises(OptionError, match="not both"):
        ImageAugmenter(translation=0.1, translation_pixels=3)
    with pytest.raises(OptionError, match=r"translation_pixels.*\(min, max\) pair of pixels"):
        ImageAugmenter(translation_pixels=(1, 2, 3))
    with pytest.raises(OptionError, match="translation_pixels"):
        ImageAugmenter(translation_pixels=((3, -3), 0))


def test_fraction_translation_still_works_as_before():
    torch.manual_seed(0)
    aug = ImageAugmenter(translation=(0.4, 0.0))  # width 14: |dx| <= round(5.6) = 6, dy = 0
    positions = {dot_position(aug(dot_image())) for _ in range(100)}
    assert {row for row, _ in positions} == {5}
    assert max(abs(col - 6) for _, col in positions) <= 6 and len(positions) > 5


# ------------------------------------------------------------------- colour as stored
def save(path, image, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt)
    return path


def rgb_pixels(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (6, 7, 3), dtype=np.uint8)


def test_images_are_read_as_stored_by_default(tmp_path):
    rgb = Image.fromarray(rgb_pixels())
    gray = rgb.convert("L")
    files = {
        "gray.png": save(tmp_path / "gray.png", gray),
        "gray.bmp": save(tmp_path / "gray.bmp", gray, "BMP"),  # decoded by Pillow
        "graya.png": save(tmp_path / "graya.png", rgb.convert("LA")),
        "rgb.png": save(tmp_path / "rgb.png", rgb),
        "rgba.png": save(tmp_path / "rgba.png", rgb.convert("RGBA")),
        "palette.png": save(tmp_path / "palette.png", rgb.convert("P")),
        "cmyk.jpg": save(tmp_path / "cmyk.jpg", rgb.convert("CMYK"), "JPEG"),
    }
    stored = {name: ImageDatastore(path)[0] for name, path in files.items()}
    expected_gray = torch.from_numpy(np.array(gray)).float()[None] / 255
    for name in ("gray.png", "gray.bmp", "graya.png"):
        assert stored[name].shape == (1, 6, 7), name
    assert torch.equal(stored["gray.png"], expected_gray)
    assert torch.equal(stored["gray.bmp"], expected_gray)
    expected_rgb = torch.from_numpy(rgb_pixels()).permute(2, 0, 1).float() / 255
    assert torch.equal(stored["rgb.png"], expected_rgb) and torch.equal(
        stored["rgba.png"], expected_rgb
    )
    palette_rgb = np.array(Image.open(files["palette.png"]).convert("RGB"))
    assert torch.equal(stored["palette.png"], torch.from_numpy(palette_rgb).permute(2, 0, 1) / 255)
    assert stored["cmyk.jpg"].shape == (3, 6, 7)
    as_rgb = ImageDatastore(files["gray.png"], color="rgb")[0]
    assert as_rgb.shape == (3, 6, 7) and all(torch.equal(c, expected_gray[0]) for c in as_rgb)
    assert ImageDatastore(files["rgb.png"], color="gray")[0].shape == (1, 6, 7)
    with pytest.raises(OptionError, match=r"'stored'.*'rgb'.*'gray'"):
        ImageDatastore(files["rgb.png"], color="color")


def test_sixteen_bit_tiff_keeps_its_precision_through_pillow(tmp_path):
    array = (np.arange(48).reshape(6, 8) * 1300).astype(np.uint16)
    path = save(tmp_path / "deep.tif", Image.fromarray(array), "TIFF")
    image = ImageDatastore(path)[0]
    assert image.shape == (1, 6, 8)
    assert torch.allclose(image[0], torch.from_numpy(array.astype(np.float32) / 65535))


# ------------------------------------------------------------------- output size mode
@pytest.fixture
def numbered(tmp_path):
    pixels = (np.arange(100).reshape(10, 10) * 2).astype(np.uint8)
    save(tmp_path / "a.png", Image.fromarray(pixels))
    return tmp_path / "a.png", torch.from_numpy(pixels).float() / 255


def test_randcrop_picks_random_windows_in_training_and_the_centre_otherwise(numbered):
    path, full = numbered
    ds = ImageDatastore(path, output_size=(4, 4), output_size_mode="randcrop")
    torch.manual_seed(0)
    corners = set()
    for _ in range(40):
        crop = ds[0][0]
        row, col = divmod(int(round(float(crop[0, 0]) * 255 / 2)), 10)
        assert torch.equal(crop, full[row : row + 4, col : col + 4])
        corners.add((row, col))
    assert len(corners) > 5
    centre = ImageDatastore(path, output_size=(4, 4), output_size_mode="centercrop")[0][0]
    assert torch.equal(centre, full[3:7, 3:7])
    assert torch.equal(ds.eval()[0][0], centre)


def test_size_mode_aliases_and_errors(numbered):
    path, _ = numbered
    old = ImageDatastore(path, output_size=(4, 6), size_mode="center-crop")
    new = ImageDatastore(path, output_size=(4, 6), output_size_mode="centercrop")
    assert old.output_size_mode == old.size_mode == "centercrop"
    assert torch.equal(old[0], new[0])
    both = ImageDatastore(path, output_size=(4, 6), size_mode="center-crop",
                          output_size_mode="centercrop")  # fmt: skip
    assert both.output_size_mode == "centercrop"
    assert ImageDatastore(path, output_size=(4, 6))[0].shape == (1, 4, 6)  # resize by default
    with pytest.raises(OptionError, match="disagree"):
        ImageDatastore(path, size_mode="resize", output_size_mode="randcrop")
    with pytest.raises(OptionError, match=r"output_size_mode.*'randcrop'.*Received: .*'crop'"):
        ImageDatastore(path, output_size_mode="crop")


def test_randcrop_pads_images_smaller_than_the_output(numbered):
    path, full = numbered
    ds = ImageDatastore(path, output_size=(12, 12), output_size_mode="randcrop")
    crop = ds[0][0]
    assert crop.shape == (12, 12) and float(crop.sum()) == pytest.approx(float(full.sum()))


# ------------------------------------------------------------------- labels="foldernames"
def test_foldernames_is_accepted_wherever_labels_are(tmp_path):
    for label in ("ok", "bad"):
        save(tmp_path / "img" / label / "x.png", Image.fromarray(rgb_pixels()))
        (tmp_path / "sig" / label).mkdir(parents=True)
        np.save(tmp_path / "sig" / label / "x.npy", np.zeros((5, 2), np.float32))
    images = ImageDatastore(tmp_path / "img", labels="foldernames")
    assert sorted(images.labels) == ["bad", "ok"]
    assert list(images.labels) == list(ImageDatastore(tmp_path / "img", labels="folders").labels)
    files = FileDatastore(tmp_path / "sig", np.load, labels="foldernames")
    assert files.classes == ["bad", "ok"]
    signals = SignalDatastore(tmp_path / "sig", labels="foldernames")
    assert signals.count_each_label() == {"bad": 1, "ok": 1}
    for label in ("ok", "bad"):
        (tmp_path / "txt" / label).mkdir(parents=True)
        (tmp_path / "txt" / label / "a.txt").write_text(f"{label} pump")
    texts = TextDatastore.from_files(tmp_path / "txt", labels="foldernames")
    assert texts.count_each_label() == {"bad": 1, "ok": 1}
    with pytest.raises(OptionError, match="'foldernames'"):
        ImageDatastore(tmp_path / "img", labels="filenames")


# ------------------------------------------------------------------- ArrayDatastore images
def test_array_datastore_augments_images_only_in_training_mode():
    images = np.zeros((6, 1, 4, 8), np.float32)
    images[:, :, :, :4] = 1.0  # left half bright: a horizontal flip moves it right
    ds = ArrayDatastore(images, targets=list("ababab"), augmenter=ImageAugmenter(flip="horizontal"))
    torch.manual_seed(0)
    lefts = {float(ds[0][0][0, 0, 0]) for _ in range(30)}
    assert lefts == {0.0, 1.0}
    x, y = ds[1]
    assert x.shape == (1, 4, 8) and int(y) == 1
    ds.eval()
    assert {float(ds[0][0][0, 0, 0]) for _ in range(30)} == {1.0}
    train_part, _ = ds.train().split(0.5, seed=0)
    batch, _ = next(iter(loader(train_part.subset([0] * 40), batch_size=40)))
    assert set(batch[:, 0, 0, 0].tolist()) == {0.0, 1.0}  # views keep the augmenter


def test_array_datastore_augmenter_needs_image_arrays():
    with pytest.raises(OptionError, match=r"\(N, C, H, W\).*\(5, 8, 8\).*x\[:, None\]"):
        ArrayDatastore(np.zeros((5, 8, 8)), augmenter=ImageAugmenter(flip="both"))
    with pytest.raises(OptionError, match="callable"):
        ArrayDatastore(np.zeros((5, 1, 8, 8)), augmenter="flip")


def test_flip_none_spelled_as_a_string_means_no_flip():
    from deeptoolbox.data import ImageAugmenter

    image = torch.arange(16.0).reshape(1, 4, 4)
    augmenter = ImageAugmenter(flip="none")
    assert augmenter.options["flip"] is None
    assert torch.equal(augmenter(image), image)


def test_an_augmenter_with_no_options_is_a_no_op():
    from deeptoolbox.data import ImageAugmenter

    image = torch.rand(3, 5, 5)
    assert torch.equal(ImageAugmenter()(image), image)
