"""activations() and fit_classifier(): feature extraction and classical classifiers on top."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import LayerNotFoundError, OptionError
from deeptoolbox.hub import activations, fit_classifier
from deeptoolbox.training import TrainingOptions, train


def shapes(count, size=24, seed=0):
    """Images of circles, squares and triangles at random places and sizes, with noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = np.zeros((count, 1, size, size), dtype=np.float32)
    labels = rng.integers(0, 3, count)
    for image, label in zip(images, labels, strict=True):
        r = rng.uniform(size / 6, size / 3)
        cy, cx = rng.uniform(r + 1, size - r - 1, 2)
        if label == 0:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
        elif label == 1:
            mask = (abs(yy - cy) <= r * 0.8) & (abs(xx - cx) <= r * 0.8)
        else:
            mask = (yy - cy + r >= 0) & (yy - cy <= r) & (abs(xx - cx) <= (yy - cy + r) / 2)
        image[0] = mask + rng.normal(0, 0.2, (size, size))
    return torch.from_numpy(images), torch.from_numpy(labels)


def cnn():
    torch.manual_seed(0)
    return Network([
        L.ImageInput((1, 20, 20), name="in"), L.Conv2d(8, 3, padding="same", name="conv1"), L.BatchNorm(),
        L.ReLU(), L.MaxPool2d(2), L.Conv2d(16, 3, padding="same", name="conv2"), L.BatchNorm(),
        L.ReLU(name="relu2"), L.GlobalMaxPool(name="pool"), L.Dense(3, name="fc"), L.Softmax(),
    ], classes=["circle", "square", "triangle"])  # fmt: skip


def test_activations_match_the_layer_output_with_each_pooling():
    net = cnn().eval()
    x = torch.randn(10, 1, 20, 20)
    captured = {}
    handle = net.layer("relu2").register_forward_hook(lambda m, i, o: captured.update(out=o))
    with torch.no_grad():
        net(x)
    handle.remove()
    full = captured["out"]
    torch.testing.assert_close(activations(net, x, "relu2", pooling=None, batch_size=3), full)
    torch.testing.assert_close(activations(net, x, "relu2", batch_size=4), full.mean(dim=(2, 3)))
    torch.testing.assert_close(activations(net, x, "relu2", pooling="max"), full.amax(dim=(2, 3)))
    dataset = TensorDataset(x, torch.zeros(10))  # targets are ignored
    torch.testing.assert_close(
        activations(net, dataset, "pool", batch_size=4), full.amax(dim=(2, 3))
    )
    assert net.training is False and not net.layer("relu2")._forward_hooks


def test_activations_on_plain_modules_and_sequences():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    x = torch.randn(5, 1, 8, 8)
    model(x)
    expected = torch.relu(model[0](x)).amax(dim=(2, 3))
    torch.testing.assert_close(
        activations(model, x, "1", pooling="max").detach(), expected.detach()
    )
    net = Network([L.SequenceInput(3), L.Dense(4, name="fc")])
    sequences = torch.randn(6, 9, 3)
    with torch.no_grad():
        expected = net.layer("fc")(sequences).mean(dim=1)
    torch.testing.assert_close(activations(net, sequences, "fc"), expected)


def test_activations_errors_name_the_problem():
    net = cnn()
    with pytest.raises(LayerNotFoundError, match="conv3"):
        activations(net, torch.randn(2, 1, 20, 20), "conv3")
    with pytest.raises(OptionError, match="pooling"):
        activations(net, torch.randn(2, 1, 20, 20), "conv1", pooling="mean")
    with pytest.raises(LayerNotFoundError, match="no module 'nope'"):
        activations(nn.Sequential(nn.ReLU()), torch.randn(2, 3), "nope")


@pytest.mark.parametrize("model", ["svm", "svm-rbf", "logistic", "knn", "ridge", "forest"])
def test_fit_classifier_models(model):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-1.5, 1, (60, 4)), rng.normal(1.5, 1, (60, 4))])
    y = np.array(["neg"] * 60 + ["pos"] * 60)
    classifier = fit_classifier(torch.from_numpy(x), y, model)
    assert classifier.score(x, y) > 0.9 and set(classifier.predict(x)) == {"neg", "pos"}


def test_fit_classifier_options_and_errors():
    from sklearn.svm import SVC

    x, y = np.random.default_rng(1).normal(size=(20, 3)), [0, 1] * 10
    assert fit_classifier(x, y, SVC(), C=0.5, standardize=False).C == 0.5
    with pytest.raises(OptionError, match="'tree'"):
        fit_classifier(x, y, "tree")
    with pytest.raises(OptionError, match="one label per row"):
        fit_classifier(x, y[:5])
    with pytest.raises(OptionError, match="scikit-learn classifier"):
        fit_classifier(x, y, object())


@pytest.mark.slow
def test_features_of_a_trained_network_plus_svm_classify_shapes():
    x, y = shapes(400, size=20)
    net = cnn()
    options = TrainingOptions(solver="adam", initial_learn_rate=0.02, max_epochs=5,
                              mini_batch_size=25, verbose=False, seed=0)  # fmt: skip
    train(net, (x[:300], y[:300]), "crossentropy", options)
    features = activations(net, x, "relu2", pooling="max")
    classifier = fit_classifier(features[:300], y[:300].numpy(), "svm")
    assert classifier.score(features[300:].numpy(), y[300:].numpy()) > 0.95
