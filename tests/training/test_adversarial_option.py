"""TrainingOptions(adversarial=...): the callable sees every batch and its output is trained on."""

import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError
from deeptoolbox.robustness import AdversarialTraining, find_adversarial
from deeptoolbox.training import TrainingOptions, train


def problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 2, generator=g)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    net = Network([L.FeatureInput(2), L.Dense(16), L.ReLU(), L.Dense(2)])
    return net, x, y


def options(**kwargs):
    base = dict(solver="adam", initial_learn_rate=0.05, max_epochs=15, mini_batch_size=64,
                verbose=False, seed=0)  # fmt: skip
    return TrainingOptions(**{**base, **kwargs})


def test_the_callable_replaces_the_inputs_it_is_given():
    calls = []

    def erase(net, inputs, targets):
        calls.append((inputs.shape, targets.shape))
        return torch.zeros_like(inputs)  # nothing left to learn from

    net, x, y = problem()
    result = train(net, (x, y), "crossentropy", options(adversarial=erase))
    assert len(calls) == 4 * 15 and calls[0] == (torch.Size([64, 2]), torch.Size([64]))
    accuracy = (result.network(x).argmax(1) == y).float().mean()
    assert accuracy < 0.7


def spurious_problem():
    """Feature 0 predicts the class with a margin (90% right); feature 1 is tiny but perfect,
    so plain training leans on it, and an attack of 0.2 wipes it out."""
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(512, generator=g)
    x0 = x0 + 0.5 * torch.sign(x0)  # margin of 0.5 around the boundary
    y = (x0 > 0).long()
    flip = torch.rand(512, generator=g) < 0.1
    y = torch.where(flip, 1 - y, y)
    x = torch.stack([x0, 0.1 * (2 * y - 1).float()], dim=1)
    torch.manual_seed(0)
    net = Network([L.FeatureInput(2), L.Dense(16), L.ReLU(), L.Dense(2)])
    return net, x, y


def test_adversarial_training_improves_robust_accuracy():
    epsilon = 0.2
    net, x, y = spurious_problem()
    plain = train(net, (x, y), "crossentropy", options(max_epochs=30)).network
    net, _, _ = spurious_problem()
    attack = AdversarialTraining(method="pgd", epsilon=epsilon, mix=1.0, steps=5)
    robust = train(net, (x, y), "crossentropy", options(max_epochs=30, adversarial=attack))

    def robust_accuracy(model):
        result = find_adversarial(model, x, y, epsilon, method="pgd", steps=10)
        return 1 - result.success.float().mean().item()

    assert robust_accuracy(robust.network) > robust_accuracy(plain) + 0.1


def test_a_non_callable_is_refused():
    with pytest.raises(OptionError, match="adversarial"):
        TrainingOptions(adversarial="pgd")


def test_the_callable_sees_logits_of_a_network_ending_in_softmax():
    """The attack works on what the loss reads (logits), not on the probabilities, and the
    network itself keeps its Softmax."""
    seen = []

    def record(net, inputs, targets):
        with torch.no_grad():
            seen.append((net(inputs), softmax_net(inputs)))
        return inputs

    _, x, y = problem()
    torch.manual_seed(0)
    softmax_net = Network([L.FeatureInput(2), L.Dense(16), L.ReLU(), L.Dense(2), L.Softmax()])
    train(softmax_net, (x, y), "crossentropy", options(max_epochs=1, adversarial=record))
    assert len(seen) == 4
    for logits, probabilities in seen:
        torch.testing.assert_close(logits.softmax(1), probabilities)
        assert not torch.allclose(logits.sum(1), torch.ones(len(logits)))
