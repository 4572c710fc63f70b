"""predict/classify on image files, PIL images and uint8 arrays for any network with an ImageInput.

The reference is an ImageDatastore with ``output_size`` set to the input size: classifying a
file must give the network exactly what training on that folder gave it.
"""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import deeptoolbox as dtb
from deeptoolbox import layers as L
from deeptoolbox.data import ImageDatastore
from deeptoolbox.errors import DataError, InputSizeError


def image_net(channels=3, size=(12, 10)):
    torch.manual_seed(0)
    net = dtb.Network(
        [
            L.ImageInput((channels, *size), normalization="zscore", name="img"),
            L.Conv2d(4, 3, padding=1, name="conv"),
            L.ReLU(),
            L.GlobalAvgPool(),
            L.Dense(3, name="fc"),
            L.Softmax(),
        ],
        classes=["apple", "pear", "plum"],
    )
    net.layer("img").compute_statistics(torch.rand(16, channels, *size) * 0.5 + 0.2)
    return net.eval()


def write_images(folder, count=4, seed=0):
    """RGB PNGs of different sizes in class folders (PNG is lossless: pixels are exact)."""
    rng = np.random.default_rng(seed)
    paths, arrays = [], []
    for index in range(count):
        pixels = rng.integers(0, 256, (20 + 3 * index, 17 + index, 3), dtype=np.uint8)
        path = folder / ["apple", "pear"][index % 2] / f"{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
        arrays.append(pixels)
    return paths, arrays


def datastore_batch(folder, size, color="rgb"):
    store = ImageDatastore(folder, output_size=size, color=color)
    return store, torch.stack([store[i][0] for i in range(len(store))])


def test_classify_an_image_file_gives_the_network_what_its_datastore_gave(tmp_path):
    net = image_net()
    write_images(tmp_path)
    store, batch = datastore_batch(tmp_path, (12, 10))
    expected = dtb.predict(net, batch)
    for index, path in enumerate(store.files):
        torch.testing.assert_close(dtb.predict(net, path), expected[index : index + 1])
    labels, scores = dtb.classify(net, store.files[0])
    assert labels.tolist() == [net.classes[int(expected[0].argmax())]]
    torch.testing.assert_close(scores, expected[:1])
    torch.testing.assert_close(dtb.predict(net, store.files), expected)  # a list of paths
    labels, _ = dtb.classify(net, [tmp_path / "apple" / "0.png", store.files[1]])
    assert labels.shape == (2,)


def test_uint8_arrays_and_pil_images_are_read_like_files(tmp_path):
    net = image_net()
    paths, arrays = write_images(tmp_path, count=2)
    from_file = dtb.predict(net, paths[0])
    hwc = arrays[0]
    torch.testing.assert_close(dtb.predict(net, hwc), from_file)  # H x W x C, as imread
    torch.testing.assert_close(dtb.predict(net, Image.fromarray(hwc)), from_file)
    chw = torch.from_numpy(hwc).permute(2, 0, 1)
    torch.testing.assert_close(dtb.predict(net, chw), from_file)  # a uint8 tensor (C, H, W)
    torch.testing.assert_close(dtb.predict(net, np.stack([hwc, hwc])), from_file.repeat(2, 1))
    torch.testing.assert_close(dtb.classify(net, hwc)[1], from_file)
    mixed = dtb.predict(net, [hwc, Image.fromarray(arrays[1]), paths[0]])
    torch.testing.assert_close(mixed[[0, 2]], from_file.repeat(2, 1))
    torch.testing.assert_close(mixed[1:2], dtb.predict(net, paths[1]))


def test_uint8_batch_used_to_crash_inside_the_first_convolution():
    net = image_net(size=(8, 8))
    pixels = np.random.default_rng(3).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    scores = dtb.predict(net, pixels)
    reference = dtb.predict(net, torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255)
    torch.testing.assert_close(scores, reference)


def test_gray_network_reads_color_files_as_its_gray_datastore(tmp_path):
    net = image_net(channels=1, size=(9, 9))
    paths, arrays = write_images(tmp_path, count=2)
    store, batch = datastore_batch(tmp_path, (9, 9), color="gray")
    torch.testing.assert_close(dtb.predict(net, store.files), dtb.predict(net, batch))
    gray = np.asarray(Image.fromarray(arrays[0]).convert("L"))  # (H, W) uint8
    # Pillow's and libpng's RGB-to-gray conversions round differently by one level at most
    from_file = dtb.predict(net, paths[0])
    torch.testing.assert_close(dtb.predict(net, gray), from_file, atol=2e-3, rtol=0)
    from_rgb_array = dtb.predict(net, arrays[0])
    torch.testing.assert_close(from_rgb_array, from_file, atol=2e-3, rtol=0)


def test_image_reading_errors_name_the_file_and_the_layer(tmp_path):
    net = image_net()
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match="broken.jpg"):
        dtb.classify(net, str(tmp_path / "broken.jpg"))
    with pytest.raises(DataError, match="missing.png"):
        dtb.classify(net, tmp_path / "missing.png")
    five = image_net(channels=5)
    with pytest.raises(DataError, match="'img' takes images with 5 channel"):
        dtb.predict(five, np.zeros((12, 10, 3), dtype=np.uint8))


def test_missing_batch_axis_hint_names_the_numpy_spelling():
    net = image_net()
    with pytest.raises(InputSizeError) as info:
        dtb.predict(net, np.zeros((3, 12, 10), dtype=np.float32))
    assert "x[None]" in str(info.value) and "np.expand_dims(x, 0)" in str(info.value)
    assert "x.unsqueeze(0)" in str(info.value)
    with pytest.raises(InputSizeError, match="one channels-last image") as info:
        dtb.predict(net, np.zeros((12, 10, 3), dtype=np.float32))
    assert "x.transpose(2, 0, 1)[None]" in str(info.value)
    with pytest.raises(InputSizeError, match=r"x.transpose\(0, 3, 1, 2\)"):
        dtb.predict(net, np.zeros((2, 12, 10, 3), dtype=np.float32))


def test_read_only_numpy_input_gives_no_torch_warning():
    net = image_net()
    x = np.random.default_rng(0).random((4, 3, 12, 10)).astype(np.float32)
    x.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = dtb.predict(net, x)
        labels, _ = dtb.classify(net, x)
    torch.testing.assert_close(scores, dtb.predict(net, torch.from_numpy(x.copy())))
    assert labels.shape == (4,)
    pixels = np.zeros((12, 10, 3), dtype=np.uint8)
    pixels.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dtb.predict(net, pixels).shape == (1, 3)


def test_networks_without_an_image_input_leave_arrays_alone():
    net = dtb.Network([L.FeatureInput(3), L.Dense(2)])
    assert dtb.predict(net, np.ones((4, 3), dtype=np.float32)).shape == (4, 2)
    from deeptoolbox.hub import prepare_images

    assert prepare_images(net, np.zeros((4, 3), dtype=np.uint8)) is None
    assert prepare_images(image_net(), torch.zeros(1, 3, 12, 10)) is None
