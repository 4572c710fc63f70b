"""train / evaluate / validation_data take (inputs, string labels) arrays, as MATLAB's
trainnet(X, T) with a categorical T: the labels name the classes, matched by name."""

import numpy as np
import pytest
import torch

import deeptoolbox as dtb
from deeptoolbox import layers as L
from deeptoolbox.training import TrainingOptions
from deeptoolbox.training._data import as_labelled_arrays

X = np.repeat(np.eye(3, dtype=np.float32) * 3, 4, axis=0)  # 12 observations, 3 clusters
LABELS = np.repeat(np.array(["b", "c", "a"]), 4)  # not in sorted order


def options(**extra):
    return TrainingOptions(solver="adam", initial_learn_rate=0.1, max_epochs=30, verbose=False,
                           seed=0, execution_environment="cpu", **extra)  # fmt: skip


def test_train_takes_string_labels_and_names_the_classes():
    net = dtb.Network([L.FeatureInput(3), L.Dense(3), L.Softmax()])
    dtb.train(net, (X, LABELS), "crossentropy", options(validation_data=(X, list(LABELS))))
    assert net.classes == ["a", "b", "c"]
    predicted, _ = dtb.classify(net, X)
    assert predicted.tolist() == LABELS.tolist()
    assert dtb.evaluate(net, (torch.from_numpy(X), LABELS), ["accuracy"])["accuracy"] == 1.0


def test_string_labels_are_matched_to_the_networks_classes_by_name():
    net = dtb.Network([L.FeatureInput(3), L.Dense(3), L.Softmax()], classes=["c", "a", "b"])
    dtb.train(net, (X, LABELS), "crossentropy", options())
    assert net.classes == ["c", "a", "b"]
    assert dtb.classify(net, X)[0].tolist() == LABELS.tolist()


def test_two_inputs_with_string_labels():
    net = dtb.Network([L.FeatureInput(3, name="a"), L.Dense(3, name="fa")])
    net.add_layers([L.FeatureInput(3, name="b"), L.Dense(3, name="fb")])
    net.add_layers([L.Addition(name="add"), L.Softmax(name="prob")])
    net.connect("fa", "add/in1")
    net.connect("fb", "add/in2")
    ds = as_labelled_arrays(net, (X, X, LABELS))
    assert ds.classes == ["a", "b", "c"] and len(ds) == 12
    inputs_a, inputs_b, target = ds[0]
    assert torch.equal(inputs_a, inputs_b) and ds.classes[int(target)] == "b"


@pytest.mark.parametrize("data", [(X, np.arange(12)), (X, X[:, :1]), [X, LABELS]])
def test_other_data_is_left_alone(data):
    net = dtb.Network([L.FeatureInput(3), L.Dense(3)])
    assert as_labelled_arrays(net, data) is data
