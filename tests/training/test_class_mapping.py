"""Targets are matched to the network's classes by name; the data's classes otherwise.

A datastore numbers its classes in sorted order; a network may list them in another order
(``Network(..., classes=["coffee", "chelsea", "astronaut"])``). train(), validation and
evaluate() must agree with classify(), whose labels are the network's names.
"""

import numpy as np
import pytest
import torch
from PIL import Image

import deeptoolbox as dtb
from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.data import ArrayDatastore, ImageDatastore
from deeptoolbox.errors import OptionError
from deeptoolbox.inference import SequencePadding
from deeptoolbox.training import TrainingOptions, evaluate, train
from deeptoolbox.training._data import data_source, map_classes

COLOURS = {"astronaut": (220, 30, 30), "chelsea": (30, 220, 30), "coffee": (30, 30, 220)}
NET_ORDER = ["coffee", "chelsea", "astronaut"]  # not the sorted order the datastore uses


def image_folder(tmp_path, per_class=8):
    rng = np.random.default_rng(0)
    for name, colour in COLOURS.items():
        (tmp_path / name).mkdir()
        for i in range(per_class):
            pixels = np.clip(rng.normal(colour, 40, (8, 8, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f"{i}.png")
    return ImageDatastore(tmp_path)


def image_net(classes=None):
    torch.manual_seed(0)
    return Network(
        [L.ImageInput((3, 8, 8)), L.GlobalAvgPool(), L.Dense(3), L.Softmax()], classes=classes
    )


def options(**kw):
    settings = dict(solver="adam", initial_learn_rate=0.1, max_epochs=30, mini_batch_size=8,
                    verbose=False, seed=0)  # fmt: skip
    return TrainingOptions(**{**settings, **kw})


def test_training_maps_the_datastores_indices_onto_the_networks_classes(tmp_path):
    ds = image_folder(tmp_path)
    assert ds.classes == ["astronaut", "chelsea", "coffee"]
    net = image_net(NET_ORDER)
    train(net, ds, "crossentropy", options(validation_data=ds, metrics=["accuracy"]))
    labels, _ = dtb.classify(net, ds)
    right = float(np.mean(labels == ds.labels))
    assert right == 1.0
    assert evaluate(net, ds, ["accuracy"])["accuracy"] == pytest.approx(right)
    assert net.classes == NET_ORDER  # the network keeps its own order


def test_a_network_without_classes_takes_the_datastores(tmp_path):
    ds = image_folder(tmp_path)
    net = image_net()
    train(net, ds, "crossentropy", options(max_epochs=1))
    assert net.classes == ds.classes


def test_validation_and_evaluation_data_are_mapped_too():
    x = np.eye(3, dtype=np.float32).repeat(4, 0) * 3
    names = np.array(["b", "c", "a"]).repeat(4)
    torch.manual_seed(0)
    net = Network([L.FeatureInput(3), L.Dense(3), L.Softmax()], classes=["c", "a", "b"])
    train_ds = ArrayDatastore(x, targets=names)
    valid_ds = ArrayDatastore(x[4:], targets=names[4:])  # classes "a" and "c" only: a subset
    result = train(net, train_ds, "crossentropy",
                   options(validation_data=valid_ds, metrics=["accuracy"], max_epochs=20))  # fmt: skip
    assert result.final_validation["accuracy"] == 1.0
    assert evaluate(net, valid_ds, ["accuracy"])["accuracy"] == 1.0
    labels, _ = dtb.classify(net, x)
    assert list(labels) == list(names)


def test_targets_are_renumbered_by_name():
    net = Network([L.FeatureInput(1), L.Dense(3)], classes=NET_ORDER)
    ds = ArrayDatastore(np.zeros((3, 1)), targets=["astronaut", "chelsea", "coffee"])
    source = data_source(net, ds, SequencePadding(), "data").configure(3, "never", 0)
    batch, _ = next(source.epoch(0))
    assert [NET_ORDER[i] for i in batch.target.tolist()] == ["astronaut", "chelsea", "coffee"]
    one_hot = torch.eye(2)  # data classes ["chelsea", "coffee"] as one-hot rows
    mapped = map_classes(one_hot, (torch.tensor([1, 0]), 3))
    assert mapped.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]


def test_classes_the_network_does_not_know_are_refused():
    net = Network([L.FeatureInput(1), L.Dense(2), L.Softmax()], classes=["cat", "dog"])
    ds = ArrayDatastore(np.zeros((4, 1)), targets=["cat", "dog", "cow", "cat"])
    with pytest.raises(OptionError, match=r"classes \['cow'\] that the network does not know"):
        train(net, ds, "crossentropy", options(max_epochs=1))
    good = ArrayDatastore(np.zeros((2, 1)), targets=["cat", "dog"])
    with pytest.raises(OptionError, match="`validation_data`"):
        train(net, good, "crossentropy", options(max_epochs=1, validation_data=ds))
    with pytest.raises(OptionError, match="evaluate"):
        evaluate(net, ds)


def test_class_indices_without_names_are_used_as_they_are():
    net = Network([L.FeatureInput(1), L.Dense(2)], classes=["b", "a"])
    ds = ArrayDatastore(np.zeros((2, 1)), targets=np.array([0, 1]))  # ints: indices, not names
    source = data_source(net, ds, SequencePadding(), "data").configure(2, "never", 0)
    assert next(source.epoch(0))[0].target.tolist() == [0, 1]
