"""combine() with several targets (MATLAB's combine(dsX, dsT1, dsT2) for a multi-output
trainnet): every target reaches the loss in order; the network's input count decides which
parts are inputs."""

import numpy as np
import torch

import deeptoolbox as dtb
from deeptoolbox import layers as L
from deeptoolbox.data import ArrayDatastore, SequenceDatastore, combine, loader
from deeptoolbox.training import loss_function
from deeptoolbox.training._data import split_batch


def regression_and_class_data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    label = x[:, :3].argmax(axis=1)  # class target: which of the first three is largest
    value = (x[:, :1] * 2 - x[:, 3:4]).astype(np.float32)  # regression target, (n, 1)
    return x, label, value


def two_output_network():
    torch.manual_seed(0)
    net = dtb.Network([
        L.FeatureInput(4, name="x"), L.Dense(32, name="hidden"), L.ReLU(name="relu"),
        L.Dense(3, name="scores"),                     # class scores (logits)
    ])  # fmt: skip
    net.add_layers(L.Dense(1, name="value"))
    net.connect("relu", "value")
    return net


def test_combined_parts_give_every_target_in_order():
    x, label, value = regression_and_class_data(10)
    ds = combine(ArrayDatastore(x), ArrayDatastore(label), ArrayDatastore(value))
    observation = ds[3]
    assert len(observation) == 3 and int(observation[1]) == label[3]
    batch = next(iter(loader(ds, batch_size=4)))
    parsed = split_batch(batch, num_inputs=1)
    assert len(parsed.inputs) == 1 and isinstance(parsed.target, tuple)
    labels, values = parsed.target
    assert labels.tolist() == label[:4].tolist()
    assert torch.equal(values, torch.from_numpy(value[:4]))
    two_inputs = split_batch(batch, num_inputs=2)  # two network inputs: part 2 is an input
    assert len(two_inputs.inputs) == 2 and torch.equal(two_inputs.target, values)


def test_train_a_two_output_network_on_combined_targets():
    x, label, value = regression_and_class_data()
    ds = combine(ArrayDatastore(x), ArrayDatastore(label), ArrayDatastore(value))
    crossentropy, mse = loss_function("crossentropy"), loss_function("mse")
    seen = []

    def per_output_loss(outputs, targets):  # one loss per output, in net.output_names order
        (scores, predicted), (classes, values) = outputs, targets
        seen.append((classes.dtype, tuple(values.shape[1:])))
        return crossentropy(scores, classes) + mse(predicted, values)

    net = two_output_network()
    options = dtb.TrainingOptions(solver="adam", initial_learn_rate=0.05, max_epochs=8,
                                  mini_batch_size=32, verbose=False, seed=0)  # fmt: skip
    dtb.train(net, ds, per_output_loss, options)
    assert set(seen) == {(torch.int64, (1,))}
    scores, predicted = dtb.predict(net, torch.from_numpy(x))
    accuracy = float((scores.argmax(1).numpy() == label).mean())
    error = float(((predicted.numpy() - value) ** 2).mean())
    assert accuracy > 0.9
    assert error < 0.05 * float(value.var())  # the second target trained the second output


def test_two_input_network_takes_the_first_two_parts_as_inputs():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(200, 3)).astype(np.float32)
    b = rng.normal(size=(200, 2)).astype(np.float32)
    target = (a.sum(1, keepdims=True) - 2 * b[:, :1]).astype(np.float32)
    torch.manual_seed(0)
    net = dtb.Network([L.FeatureInput(3, name="a"), L.Dense(1, name="da"), L.Addition(name="add")])
    net.add_layers([L.FeatureInput(2, name="b"), L.Dense(1, name="db")]).connect("db", "add/in2")
    ds = combine(ArrayDatastore(a), ArrayDatastore(b), ArrayDatastore(target))
    options = dtb.TrainingOptions(solver="adam", initial_learn_rate=0.1, max_epochs=20,
                                  mini_batch_size=50, verbose=False, seed=0)  # fmt: skip
    dtb.train(net, ds, "mse", options)
    predicted = dtb.predict(net, (torch.from_numpy(a), torch.from_numpy(b)))
    assert float(((predicted.numpy() - target) ** 2).mean()) < 1e-3


def test_padded_sequences_with_several_targets():
    rng = np.random.default_rng(2)
    sequences = [rng.normal(size=(t, 2)).astype(np.float32) for t in (5, 3, 4)]
    label, value = np.array([0, 1, 0]), np.array([[0.5], [1.5], [2.5]], np.float32)
    ds = combine(SequenceDatastore(sequences), ArrayDatastore(label), ArrayDatastore(value))
    batch = next(iter(loader(ds, batch_size=3)))
    assert batch["inputs"].shape == (3, 5, 2) and batch["mask"].sum(1).tolist() == [5, 3, 4]
    labels, values = batch["targets"]
    assert labels.tolist() == [0, 1, 0] and torch.equal(values, torch.from_numpy(value))
    parsed = split_batch(batch, num_inputs=1)
    assert parsed.mask is not None and len(parsed.target) == 2


def test_several_targets_move_to_the_training_device():
    from deeptoolbox.training._engine import _to

    moved = _to((torch.zeros(2), torch.ones(2, 1)), torch.device("meta"))
    assert isinstance(moved, tuple) and [t.device.type for t in moved] == ["meta", "meta"]
