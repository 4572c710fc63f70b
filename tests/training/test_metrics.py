"""Every metric name computes what it says (checked against scikit-learn); unknown names fail."""

import warnings

import numpy as np
import pytest
import torch
from sklearn import metrics as sk

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError
from deeptoolbox.training import TrainingOptions, evaluate
from deeptoolbox.training._metrics import METRIC_NAMES, compute_metrics


def classifier_and_data(n=60, classes=3):
    torch.manual_seed(0)
    net = Network([L.FeatureInput(4), L.Dense(classes), L.Softmax()])
    x = torch.randn(n, 4)
    y = torch.randint(0, classes, (n,))
    with torch.no_grad():
        probabilities = net.eval()(x).numpy()
    return net, x, y, probabilities


def reference(name, y, p):
    predicted = p.argmax(1)
    present = np.unique(y)
    macro = dict(average="macro", labels=present, zero_division=0)
    return {
        "accuracy": lambda: sk.accuracy_score(y, predicted),
        "precision": lambda: sk.precision_score(y, predicted, **macro),
        "recall": lambda: sk.recall_score(y, predicted, **macro),
        "fscore": lambda: sk.f1_score(y, predicted, **macro),
        "auc": lambda: sk.roc_auc_score(y, p, multi_class="ovr"),
        "crossentropy": lambda: sk.log_loss(y, p, labels=range(p.shape[1])),
        "loss": lambda: sk.log_loss(y, p, labels=range(p.shape[1])),
    }[name]()


@pytest.mark.parametrize("name", ["accuracy", "precision", "recall", "fscore", "auc",
                                  "crossentropy", "loss"])  # fmt: skip
def test_classification_metrics_match_sklearn(name):
    net, x, y, p = classifier_and_data()
    value = evaluate(net, (x, y), [name])[name]
    assert value == pytest.approx(reference(name, y.numpy(), p), rel=1e-5, abs=1e-6)


def test_binary_auc_matches_sklearn():
    net, x, y, p = classifier_and_data(classes=2)
    value = evaluate(net, (x, y), ["auc"])["auc"]
    assert value == pytest.approx(sk.roc_auc_score(y.numpy(), p[:, 1]), rel=1e-5)


@pytest.mark.parametrize("name", ["rmse", "mse", "mae", "loss"])
def test_regression_metrics_match_sklearn(name):
    torch.manual_seed(0)
    net = Network([L.FeatureInput(3), L.Dense(2)])
    x, y = torch.randn(40, 3), torch.randn(40, 2)
    with torch.no_grad():
        out = net(x).numpy()
    expected = {
        "rmse": np.sqrt(sk.mean_squared_error(y, out)),
        "mse": sk.mean_squared_error(y, out),
        "mae": sk.mean_absolute_error(y, out),
        "loss": sk.mean_squared_error(y, out),
    }[name]
    metrics = [name] if name != "loss" else ["rmse", "loss"]  # "loss" alone: mse by default
    value = evaluate(net, (x, y), metrics, loss="mse" if name == "loss" else None)[name]
    assert value == pytest.approx(float(expected), rel=1e-5)


def test_unknown_metric_names_are_refused_with_the_known_ones():
    net, x, y, _ = classifier_and_data()
    for name in ("foo", "f1", "accurcy"):
        with pytest.raises(OptionError) as info:
            evaluate(net, (x, y), [name])
        message = str(info.value)
        assert repr(name) in message and all(repr(k) in message for k in METRIC_NAMES)
    with pytest.raises(OptionError, match="unknown metric 'foo'"):
        compute_metrics(["foo"], torch.zeros(2, 2), torch.zeros(2))
    with pytest.raises(OptionError, match="`metrics`"):
        TrainingOptions(metrics=["loss"])  # already the table's own column


def test_every_known_name_gives_a_different_number():
    net, x, y, _ = classifier_and_data()
    names = ["accuracy", "precision", "recall", "fscore", "auc", "crossentropy"]
    values = evaluate(net, (x, y), names)
    assert len({round(values[n], 9) for n in names}) == len(names)


def test_a_class_without_observations_gives_no_warning():
    net, x, y, p = classifier_and_data()
    keep = y != 2  # class 2 has no observations in this set
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = evaluate(net, (x[keep], y[keep]), ["auc", "fscore"])
    kept = p[keep.numpy()]  # the network's probabilities over the three classes
    expected = np.mean([sk.roc_auc_score(y[keep].numpy() == c, kept[:, c]) for c in (0, 1)])
    assert value["auc"] == pytest.approx(expected, rel=1e-5)
