"""Bundled digits and the synthetic generators: content, determinism and class structure."""

import numpy as np
import pytest
import torch

from deeptoolbox.data import ImageDatastore, SequenceDatastore
from deeptoolbox.datasets import digits, sensor_system, shapes, signals, write_image_folder
from deeptoolbox.errors import DataError, OptionError


def test_digits_match_scikit_learn():
    from sklearn.datasets import load_digits

    images, labels = digits()
    reference = load_digits()
    assert images.dtype == np.float32 and images.shape == (1797, 1, 8, 8)
    assert np.allclose(images[:, 0] * 16, reference.images)
    assert labels.tolist() == reference.target.astype(str).tolist()


def test_write_image_folder_round_trips_through_image_datastore(tmp_path):
    images, labels = digits()
    root = write_image_folder(tmp_path / "digits", images[:40], labels[:40])
    ds = ImageDatastore(root, color="gray")
    assert ds.count_each_label() == {str(d): int((labels[:40] == str(d)).sum()) for d in range(10)}
    for i, file in enumerate(ds.files):
        index = int(file.rsplit("/", 1)[1].split(".")[0])
        image, label = ds[i]
        assert ds.classes[int(label)] == labels[index]
        assert torch.allclose(image, torch.from_numpy(images[index]), atol=0.5 / 255 + 1e-6)
    assert not list(root.rglob("*.part"))
    with pytest.raises(DataError, match="3 images but 2 labels"):
        write_image_folder(tmp_path / "x", images[:3], labels[:2])


def test_shapes_labels_boxes_and_masks_agree():
    data = shapes(60, image_size=32, seed=4)
    assert data.images.shape == (60, 3, 32, 32) and data.masks.dtype == np.int64
    assert {c: int((data.labels == c).sum()) for c in data.classes} == {
        "circle": 20,
        "square": 20,
        "triangle": 20,
    }
    for image, label, box, mask in zip(
        data.images, data.labels, data.boxes, data.masks, strict=True
    ):
        assert set(np.unique(mask)) == {0, data.classes.index(label) + 1}
        rows, cols = np.nonzero(mask)
        assert box.tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
        inside = image[:, mask > 0].mean()
        outside = image[:, mask == 0].mean()
        assert inside > outside + 0.2
    square = data.masks[data.labels == "square"][0] > 0
    rows, cols = np.nonzero(square)
    assert square.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)


def test_generators_are_deterministic_by_seed():
    a, b, c = shapes(5, seed=1), shapes(5, seed=1), shapes(5, seed=2)
    assert np.array_equal(a.images, b.images) and not np.array_equal(a.images, c.images)
    s1, l1 = signals(9, seed=1)
    s2, l2 = signals(9, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(s1, s2, strict=True)) and list(l1) == list(l2)
    u1, y1 = sensor_system(2, length=50, seed=3)
    u2, y2 = sensor_system(2, length=50, seed=3)
    assert np.array_equal(u1, u2) and np.array_equal(y1, y2)


def band_power(x, low, high, rate=128.0):
    spectrum = np.abs(np.fft.rfft(x, axis=0)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    return spectrum[(freqs >= low) & (freqs <= high)].sum() / spectrum.sum()


def test_signals_have_class_dependent_events():
    seqs, labels = signals(90, length=(200, 300), channels=3, seed=0)
    assert all(s.dtype == np.float32 and s.shape[1] == 3 and 200 <= len(s) <= 300 for s in seqs)
    beta = {
        c: np.median(
            [band_power(s, 20, 30) for s, lab in zip(seqs, labels, strict=True) if lab == c]
        )
        for c in ("normal", "burst", "spike")
    }
    assert beta["burst"] > 3 * beta["normal"]
    peak = {
        c: np.median(
            [
                np.abs(np.diff(s, axis=0)).max()
                for s, lab in zip(seqs, labels, strict=True)
                if lab == c
            ]
        )
        for c in ("normal", "burst", "spike")
    }
    assert peak["spike"] > 1.5 * peak["normal"]
    ds = SequenceDatastore(seqs, labels)
    assert ds.count_each_label() == {"burst": 30, "normal": 30, "spike": 30}


def test_sensor_system_output_follows_the_command():
    u, y = sensor_system(5, length=400, noise=0.0, seed=0)
    assert u.shape == (5, 400, 2) and y.shape == (5, 400, 1) and u.dtype == np.float32
    for command, output in zip(u[:, :, 0], y[:, :, 0], strict=True):
        assert np.corrcoef(command, output)[0, 1] > 0.6
        assert np.all(np.abs(output) < 1.31)  # tanh saturation times (1 + 0.3 ambient)


@pytest.mark.parametrize(
    "call",
    [
        lambda: shapes(0),
        lambda: shapes(3, classes=["hexagon"]),
        lambda: shapes(3, image_size=4),
        lambda: signals(3, length=5),
        lambda: signals(3, channels=0),
        lambda: sensor_system(2, length=3),
    ],
)
def test_bad_generator_options(call):
    with pytest.raises(OptionError):
        call()
