"""Validation data, evaluate(), predict() and classify() read datastores without augmentation.

MATLAB uses an augmentedImageDatastore's augmentation only for training; parts from
``split()`` keep the training mode of their parent, so the reading functions switch them to
eval mode for the read and restore the mode afterwards.
"""

import numpy as np
import pytest
import torch
from PIL import Image

import deeptoolbox as dtb
from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.data import ArrayDatastore, ImageAugmenter, ImageDatastore
from deeptoolbox.training import TrainingOptions, evaluate, train


class NoisyDatastore(ArrayDatastore):
    """Adds random noise while in training mode, and records the mode of every read."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.modes = []

    def _load(self, j):
        x, y = super()._load(j)
        self.modes.append(self.training)
        return (x + 5 * torch.randn_like(x) if self.training else x), y


def noisy(n=48):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g)
    labels = np.where(x[:, 0].numpy() > 0, "pos", "neg")
    return NoisyDatastore(x.numpy(), targets=labels)


def small_net():
    torch.manual_seed(0)
    return Network([L.FeatureInput(2), L.Dense(2), L.Softmax()])


def test_validation_reads_without_augmentation_and_training_with_it():
    ds = noisy()
    train_part, valid_part = ds.split(0.5, seed=0)
    assert valid_part.training  # split parts keep the parent's training mode
    options = TrainingOptions(max_epochs=2, mini_batch_size=8, verbose=False, seed=0,
                              validation_data=valid_part, validation_frequency=2)  # fmt: skip
    train_part.modes.clear()
    train(small_net(), train_part, "crossentropy", options)
    reads = train_part.modes  # the views share the list: training and validation reads
    assert True in reads and False in reads
    assert valid_part.training and train_part.training  # modes restored


def test_evaluate_is_repeatable_and_agrees_with_classify():
    ds = noisy()
    _, test_part = ds.split(0.5, seed=0)
    net = small_net()
    first = evaluate(net, test_part, ["accuracy"], loss="crossentropy")
    second = evaluate(net, test_part, ["accuracy"], loss="crossentropy")
    assert first == second
    labels, _ = dtb.classify(net, test_part)
    names = np.asarray(ds.classes)[labels] if labels.dtype.kind == "i" else labels
    assert first["accuracy"] == pytest.approx(float(np.mean(names == test_part.labels)))
    assert test_part.training


def test_an_augmented_image_datastore_evaluates_the_same_twice(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(6):
            pixels = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f"{i}.png")
    augmenter = ImageAugmenter(flip="horizontal", rotation=30, translation=(0.3, 0.3))
    _, test_part = ImageDatastore(tmp_path, augmenter=augmenter).split(0.5, seed=0)
    torch.manual_seed(0)
    net = Network([L.ImageInput((3, 8, 8)), L.Conv2d(2, 3, padding="same"), L.ReLU(),
                   L.GlobalAvgPool(), L.Dense(2), L.Softmax()], classes=["a", "b"])  # fmt: skip
    values = [evaluate(net, test_part, ["accuracy"], loss="crossentropy") for _ in range(3)]
    assert values[0] == values[1] == values[2]
    outputs = [dtb.predict(net, test_part) for _ in range(2)]
    torch.testing.assert_close(outputs[0], outputs[1])
    assert test_part.training
