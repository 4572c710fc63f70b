"""The one data adapter (issue 12 item 3): every accepted form, every error, and the contract
that train, predict, evaluate, an explainer and a bound read the same forms and fail the same
way on the same bad data."""

import re

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from deeptoolbox import Network, evaluate, predict, train
from deeptoolbox import layers as L
from deeptoolbox.data import ArrayDatastore, Datastore
from deeptoolbox.data._adapter import adapt, input_tensor, network_source, split_batch
from deeptoolbox.data._base import make_dataloader
from deeptoolbox.data._reading import SequencePadding, reading_without_augmentation
from deeptoolbox.errors import DataFormError, InputSizeError, OptionError
from deeptoolbox.explain import gradient_attribution
from deeptoolbox.robustness import estimate_output_bounds
from deeptoolbox.training import TrainingOptions

X = torch.arange(40.0).reshape(10, 4) / 40
Y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])


def read(source, batch_size=4):
    """(inputs, targets) of every batch of one epoch, joined."""
    batches = [b for b, _ in source.configure(batch_size, "never", 0).epoch(0)]
    inputs = torch.cat([torch.as_tensor(b.inputs[0]) for b in batches])
    targets = None if batches[0].target is None else torch.cat([b.target for b in batches])
    return inputs, targets, [b.size for b in batches]


class Pairs(IterableDataset):
    def __iter__(self):
        for start in range(0, 10, 4):
            yield X[start : start + 4], Y[start : start + 4]


# -- accepted forms ------------------------------------------------------------------------------
FORMS = {
    "tensor": lambda: X,
    "numpy": lambda: X.double().numpy(),
    "nested list": lambda: X.tolist(),
    "tuple (x, y)": lambda: (X, Y),
    "list [x, y]": lambda: [X, Y],
    "numpy tuple": lambda: (X.numpy(), Y.numpy()),
    "datastore": lambda: ArrayDatastore(X.numpy(), targets=Y.numpy()),
    "torch Dataset": lambda: TensorDataset(X, Y),
    "DataLoader": lambda: DataLoader(TensorDataset(X, Y), batch_size=4),
    "list of batches": lambda: [(X[:4], Y[:4]), (X[4:8], Y[4:8]), (X[8:], Y[8:])],
    "generator of dicts": lambda: (
        {"inputs": X[s : s + 4], "targets": Y[s : s + 4]} for s in range(0, 10, 4)
    ),  # fmt: skip
    "IterableDataset": lambda: Pairs(),
}
WITH_TARGETS = [n for n in FORMS if n not in ("tensor", "numpy", "nested list")]
# Inference reads a *list* of arrays as a list of batches (as predict always has); only train
# and evaluate read [x, y] as inputs and targets. A tuple means (x, y) everywhere.
INFERENCE_FORMS = [n for n in FORMS if n != "list [x, y]"]


@pytest.mark.parametrize("name", sorted(FORMS))
def test_every_form_gives_the_same_observations(name):
    inputs, targets, sizes = read(adapt(FORMS[name](), 1, "test: `data`"))
    assert torch.allclose(inputs.float(), X)
    assert sizes == [4, 4, 2]
    if name in WITH_TARGETS:
        assert torch.equal(targets, Y)
    else:
        assert targets is None


def test_forms_map_to_three_kinds_and_count_what_they_can():
    kinds = {n: adapt(f(), 1).kind for n, f in FORMS.items()}
    assert {n for n, k in kinds.items() if k == "arrays"} == {
        "tensor", "numpy", "nested list", "tuple (x, y)", "list [x, y]", "numpy tuple"
    }  # fmt: skip
    assert {n for n, k in kinds.items() if k == "dataset"} == {"datastore", "torch Dataset"}
    source = adapt(TensorDataset(X, Y), 1).configure(4, "never", 0)
    assert source.batches_per_epoch() == 3 and list(source.global_batch_sizes(0)) == [4, 4, 2]


def test_float64_is_read_as_float32_for_training_and_kept_for_inference():
    data = X.double().numpy()
    assert adapt(data, 1).payload[0].dtype == torch.float32
    assert adapt(data, 1, cast=False).payload[0].dtype == torch.float64
    read_only = X.numpy().copy()
    read_only.flags.writeable = False
    assert torch.equal(adapt(read_only, 1).payload[0], X)  # copied, no warning


def test_several_inputs_come_as_a_tuple_with_or_without_targets():
    a, b = X, X * 2
    for data in ((a, b), (a, b, Y), [a, b, Y]):
        batch = next(adapt(data, 2).configure(10, "never", 0).epoch(0))[0]
        assert torch.equal(batch.inputs[0], a) and torch.equal(batch.inputs[1], b)
        assert (batch.target is None) == (len(data) == 2)


def test_inference_reads_a_list_of_arrays_as_batches_as_predict_always_has():
    source = adapt([X[:6], X[6:]], 1, targets=False).configure(100, "never", 0)
    assert source.kind == "iterable"
    assert [b.size for b, _ in source.epoch(0)] == [6, 4]
    assert adapt((X, Y), 1, targets=False).kind == "arrays"  # a tuple: inputs, targets


def test_shuffled_order_depends_on_seed_and_epoch_only_and_resumes_at_any_batch():
    for data in ((X, Y), TensorDataset(X, Y)):
        source = adapt(data, 1).configure(3, "every-epoch", 7)
        first = [b.target.tolist() for b, _ in source.epoch(0)]
        again = [b.target.tolist() for b, _ in source.epoch(0)]
        other = [b.target.tolist() for b, _ in source.epoch(1)]
        resumed = [b.target.tolist() for b, _ in source.epoch(0, skip=2)]
        assert first == again and first != other and resumed == first[2:]
        assert sorted(sum(first, [])) == sorted(Y.tolist())


def test_sequence_lists_are_padded_with_a_mask_as_train_does():
    net = Network([L.SequenceInput(2), L.LSTM(3, output_mode="last"), L.Dense(2)])
    sequences = [torch.ones(3, 2), torch.ones(5, 2) * 2]
    source = network_source(net, (sequences, [0, 1]), SequencePadding(direction="left"), "data")
    batch = next(source.configure(2, "never", 0).epoch(0))[0]
    assert batch.inputs[0].shape == (2, 5, 2)
    assert batch.mask.tolist() == [[False, False, True, True, True], [True] * 5]
    assert batch.inputs[0][0, :2].abs().sum() == 0  # padded on the left with zeros
    assert batch.target.tolist() == [0, 1]


def test_string_labels_become_classes_matched_to_the_network_by_name():
    net = Network([L.FeatureInput(4), L.Dense(2)], classes=["no", "yes"])
    labels = np.array(["yes", "no"] * 5)
    source = network_source(net, (X, labels), SequencePadding(), "data")
    assert torch.equal(read(source)[1], torch.tensor([1, 0] * 5))


def test_dict_batches_pass_their_mask_to_a_mask_input():
    batch = split_batch({"inputs": X, "mask": torch.ones(10, 1)}, 2, mask_input=True)
    assert len(batch.inputs) == 2 and batch.inputs[1].dtype == torch.float32


class ModeProbe(Datastore):
    """Each observation says whether the datastore read it in training mode."""

    def __init__(self):
        self._init_view()

    def _count(self):
        return 6

    def _load(self, j):
        return torch.tensor([float(self.training)])


def test_workers_persist_across_epochs_and_follow_the_reading_mode():
    source = adapt(ModeProbe(), 1).configure(3, "never", 0)
    source.num_workers = 1
    assert read(source, 3)[0].flatten().tolist() == [1.0] * 6
    loader = source._loader()
    assert loader.persistent_workers and loader.num_workers == 1
    assert read(source, 3)[0].flatten().tolist() == [1.0] * 6
    assert source._loader() is loader  # one loader, workers kept for the next epoch
    with reading_without_augmentation(source.payload):
        assert read(source, 3)[0].flatten().tolist() == [0.0] * 6  # not the workers' old copy


def test_dataloaders_pin_memory_when_cuda_is_present():
    ds = ArrayDatastore(np.ones((4, 2)))
    assert make_dataloader(ds, batch_size=2).pin_memory == torch.cuda.is_available()
    assert make_dataloader(ds, batch_size=2, pin_memory=False).pin_memory is False


def test_input_tensor_joins_the_inputs_of_any_form():
    for name in INFERENCE_FORMS:
        assert torch.allclose(input_tensor(FORMS[name](), "x").float(), X), name
    on_device = X.clone()
    assert input_tensor(on_device, "x") is on_device


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [42, "images/", None, {"inputs": X}, 3.5], ids=repr)
def test_unreadable_forms_name_the_argument_what_was_found_and_what_is_allowed(bad):
    with pytest.raises(DataFormError) as info:
        adapt(bad, 1, "predict: `data`")
    message = str(info.value)
    assert message.startswith("predict: `data` must be a tensor or numpy array")
    assert "a Dataset or datastore, a DataLoader, or an iterable of batches" in message
    assert f"Received: {type(bad).__name__}" in message
    assert isinstance(info.value, OptionError) and isinstance(info.value, InputSizeError)


def test_arrays_of_different_lengths_and_empty_data_are_refused():
    with pytest.raises(InputSizeError, match=r"different numbers of observations.*\[10, 9\]"):
        adapt((X, Y[:9]), 1, "train: `data`")
    with pytest.raises(InputSizeError, match=r"`data` holds no observations \(size \(0, 4\)\)"):
        adapt(torch.zeros(0, 4), 1, "train: `data`")
    with pytest.raises(InputSizeError, match="`data` holds no observations"):
        adapt(TensorDataset(torch.zeros(0, 4)), 1, "train: `data`")
    with pytest.raises(DataFormError, match="0-d array.*x\\[None\\]"):
        adapt(torch.tensor(1.0), 1, "train: `data`")


def test_bad_batches_name_what_a_batch_must_be():
    with pytest.raises(DataFormError, match=r"each batch must be a tensor, a tuple .*str 'ab'"):
        list(adapt(["ab"], 1, "train: `data`").epoch(0))
    with pytest.raises(DataFormError, match=r"input_2, target\).*tuple of 1 item"):
        list(adapt([(X,)], 2, "train: `data`").epoch(0))
    with pytest.raises(DataFormError, match=r"needs the key 'inputs'.*\['x'\]"):
        list(adapt([{"x": X}], 1, "train: `data`").epoch(0))


def test_batches_of_different_sizes_cannot_be_joined_into_one_input():
    with pytest.raises(InputSizeError, match=r"different sizes \[\(3,\), \(4,\)\]"):
        input_tensor([torch.ones(2, 4), torch.ones(2, 3)], "gradcam: `x`")


# -- one contract over the callers -------------------------------------------------------------
def classifier() -> Network:
    torch.manual_seed(0)
    return Network([L.FeatureInput(4), L.Dense(3), L.Softmax()])


def quiet() -> TrainingOptions:
    return TrainingOptions(max_epochs=1, mini_batch_size=4, shuffle="never", verbose=False,
                           initial_learn_rate=1e-9)  # fmt: skip


CALLERS = {
    "train": lambda net, data: train(net, data, "crossentropy", quiet()),
    "predict": lambda net, data: predict(net, data, batch_size=4),
    "evaluate": lambda net, data: evaluate(net, data, ["accuracy"], batch_size=4),
    "gradient_attribution": lambda net, data: gradient_attribution(net, data, target=0),
    "estimate_output_bounds": lambda net, data: estimate_output_bounds(net, data, data),
}


@pytest.mark.parametrize("name", sorted(FORMS))
def test_every_caller_reads_every_form_like_the_tensor(name):
    net = classifier()
    with torch.no_grad():
        scores = net(X)
    if name in WITH_TARGETS:
        accuracy = float((scores.argmax(1) == Y).float().mean())
        assert evaluate(net, FORMS[name](), ["accuracy"])["accuracy"] == pytest.approx(accuracy)
        result = train(net, FORMS[name](), "crossentropy", quiet())
        assert len(result.history.iterations) == 3  # 10 observations in batches of 4
    if name not in INFERENCE_FORMS:
        return
    assert torch.allclose(predict(net, FORMS[name]()), scores, atol=1e-6)
    expected = gradient_attribution(net, X, target=0)
    assert torch.allclose(gradient_attribution(net, FORMS[name](), target=0), expected)
    bounds = estimate_output_bounds(net, FORMS[name](), FORMS[name]())
    assert torch.allclose(bounds.lower, estimate_output_bounds(net, X, X).lower, atol=1e-5)


BAD = {
    "an int": 42,
    "a path string": "data.csv",
    "no observations": torch.zeros(0, 4),
    "lengths that differ": (X, Y[:9]),
}


def _without_prefix(message: str) -> str:
    return re.sub(r"^\S+: `\w+`", "", message)


@pytest.mark.parametrize("bad", sorted(BAD))
def test_every_caller_gives_the_same_error_for_the_same_bad_data(bad):
    found = {}
    for caller, call in CALLERS.items():
        with pytest.raises(InputSizeError) as info:
            call(classifier(), BAD[bad])
        found[caller] = (type(info.value), _without_prefix(str(info.value)))
        assert str(info.value).startswith(caller), str(info.value)  # names the function
    assert len(set(found.values())) == 1, found


def test_attacks_and_distribution_scores_read_the_same_forms():
    from deeptoolbox.robustness import DistributionDiscriminator, find_adversarial

    net = classifier()
    reference = find_adversarial(net, X, Y, 0.1, method="fgsm").inputs
    found = find_adversarial(net, TensorDataset(X, Y), Y, 0.1, method="fgsm").inputs
    assert torch.allclose(found, reference)
    discriminator = DistributionDiscriminator(net, X)
    loader = DataLoader(TensorDataset(X, Y), batch_size=3)
    assert torch.allclose(discriminator.scores(loader), discriminator.scores(X))
    with pytest.raises(DataFormError, match=r"DistributionDiscriminator: `data` must be .*list"):
        DistributionDiscriminator(net, [1, 2, 3])
