import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from deeptoolbox import Network, classify, predict
from deeptoolbox import layers as L
from deeptoolbox.errors import InputSizeError, OptionError


def classifier(softmax=True):
    torch.manual_seed(0)
    chain = [L.FeatureInput(4, name="x"), L.Dense(8), L.ReLU(), L.Dropout(0.5), L.Dense(3)]
    return Network(chain + ([L.Softmax()] if softmax else []), classes=["a", "b", "c"])


def test_predict_batches_arrays_and_matches_one_forward_pass():
    net = classifier()
    x = torch.randn(301, 4)
    with torch.no_grad():
        expected = net.eval()(x)
    net.train()
    for data in (x, x.numpy(), x.double().numpy()):
        out = predict(net, data, batch_size=64)
        torch.testing.assert_close(out, expected)
    assert net.training  # mode restored


def test_predict_accepts_datasets_loaders_and_iterables():
    net = classifier().eval()
    x, y = torch.randn(50, 4), torch.randint(0, 3, (50,))
    with torch.no_grad():
        expected = net(x)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    torch.testing.assert_close(predict(net, loader), expected)
    torch.testing.assert_close(predict(net, TensorDataset(x), batch_size=7), expected)
    torch.testing.assert_close(predict(net, [x[:20], x[20:]]), expected)
    torch.testing.assert_close(predict(net, ({"inputs": x[:5]}, {"inputs": x[5:]})), expected)


def test_predict_runs_without_gradients():
    net = classifier()
    out = predict(net, torch.randn(3, 4))
    assert not out.requires_grad


def test_predict_multi_input_multi_output():
    net = Network([L.FeatureInput(3, name="a"), L.Dense(2, name="da"), L.Addition(name="add")])
    net.add_layers([L.FeatureInput(2, name="b"), L.Dense(2, name="db")]).connect("db", "add/in2")
    net.add_layers(L.Dense(5, name="side")).connect("a", "side")
    a, b = torch.randn(10, 3), torch.randn(10, 2)
    summed, side = predict(net, (a, b), batch_size=4)
    da, db, sd = net.layer("da"), net.layer("db"), net.layer("side")
    with torch.no_grad():
        torch.testing.assert_close(summed, da(a) + db(b))
        torch.testing.assert_close(side, sd(a))
    with pytest.raises(InputSizeError, match="different numbers of observations"):
        predict(net, (a, b[:3]))


def test_wrong_size_input_names_the_input_layer():
    net = classifier()
    with pytest.raises(InputSizeError, match="Input layer 'x' expects features of size N x C"):
        predict(net, torch.randn(5, 7))


def test_bad_options():
    net = classifier()
    with pytest.raises(OptionError, match="batch_size"):
        predict(net, torch.randn(2, 4), batch_size=0)
    with pytest.raises(OptionError, match="device"):
        predict(net, torch.randn(2, 4), device="tpu9")
    with pytest.raises(OptionError, match="Received: int"):
        predict(net, 5)
    with pytest.raises(InputSizeError, match="no observations"):
        predict(net, [])


def test_classify_labels_and_scores():
    net = classifier()
    x = torch.randn(20, 4)
    labels, scores = classify(net, x)
    with torch.no_grad():
        expected = net.eval()(x)
    torch.testing.assert_close(scores, expected)
    assert list(labels) == [["a", "b", "c"][i] for i in expected.argmax(1)]


def test_classify_applies_softmax_when_network_has_none():
    net = classifier(softmax=False).eval()
    x = torch.randn(6, 4)
    _, scores = classify(net, x)
    with torch.no_grad():
        torch.testing.assert_close(scores, torch.softmax(net(x), 1))
    torch.testing.assert_close(scores.sum(1), torch.ones(6))


def test_classify_without_classes_gives_indices_and_checks_count():
    net = classifier()
    net.classes = None
    labels, _ = classify(net, torch.randn(4, 4))
    assert labels.dtype.kind == "i"
    net.classes = ["only", "two"]
    with pytest.raises(OptionError, match="3 scores per observation but net.classes lists 2"):
        classify(net, torch.randn(4, 4))


def test_classify_sequence_outputs_per_step():
    net = Network([L.SequenceInput(3), L.Dense(2), L.Softmax()], classes=["lo", "hi"])
    labels, scores = classify(net, np.random.randn(2, 5, 3).astype(np.float32))
    assert labels.shape == (2, 5) and scores.shape == (2, 5, 2)
    assert set(labels.ravel()) <= {"lo", "hi"}


def test_predict_works_on_plain_modules():
    module = torch.nn.Linear(4, 2)
    x = torch.randn(9, 4)
    with torch.no_grad():
        torch.testing.assert_close(predict(module, x, batch_size=4), module(x))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_predict_uses_the_gpu():
    net = classifier()
    out = predict(net, torch.randn(8, 4))
    assert next(net.parameters()).is_cuda and out.device.type == "cpu"


def test_predict_accepts_nested_lists_of_numbers():
    net = classifier().eval()
    rows = [[0.1, 0.2, 0.3, 0.4], [1.0, 2.0, 3.0, 4.0]]
    with torch.no_grad():
        expected = net(torch.tensor(rows))
    torch.testing.assert_close(predict(net, rows), expected)
