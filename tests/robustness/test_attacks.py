"""find_adversarial (FGSM, BIM, PGD; L-inf and L2) and AdversarialTraining."""

import pytest
import torch

from conftest import accuracy, digits_network, train
from deeptoolbox.errors import OptionError
from deeptoolbox.robustness import AdversarialTraining, find_adversarial


@pytest.mark.parametrize("method", ["fgsm", "bim", "pgd"])
def test_linf_attacks_drive_accuracy_down_within_ball_and_range(digits, digits_net, method):
    _, _, x, y = digits
    clean = accuracy(digits_net, x, y)
    result = find_adversarial(digits_net, x, y, 0.15, method=method, input_range=(0.0, 1.0))
    attacked = accuracy(digits_net, result.inputs, y)
    assert clean > 0.9
    assert attacked < (0.2 if method == "fgsm" else 0.1)
    assert float((result.inputs - x).abs().max()) <= 0.15 + 1e-6
    assert float(result.inputs.min()) >= 0.0 and float(result.inputs.max()) <= 1.0
    with torch.no_grad():
        predictions = digits_net(result.inputs).argmax(1)
    assert torch.equal(predictions, result.predictions)
    assert torch.equal(result.success, (predictions != y))
    assert float(result.perturbation_norm.max()) <= 0.15 + 1e-6


def test_iterative_attacks_beat_fgsm(digits, digits_net):
    _, _, x, y = digits
    fgsm = find_adversarial(digits_net, x, y, 0.05, method="fgsm").success_rate
    pgd = find_adversarial(digits_net, x, y, 0.05, method="pgd", steps=20).success_rate
    assert pgd >= fgsm


def test_l2_attack_stays_in_the_l2_ball(digits, digits_net):
    _, _, x, y = digits
    result = find_adversarial(digits_net, x[:100], y[:100], 1.5, method="pgd", norm="l2", steps=20)
    norms = (result.inputs - x[:100]).flatten(1).norm(dim=1)
    assert float(norms.max()) <= 1.5 + 1e-4
    torch.testing.assert_close(norms, result.perturbation_norm)
    assert result.success_rate > 0.5


def test_targeted_attack_reaches_the_target(digits, digits_net):
    _, _, x, y = digits
    target = (y[:50] + 1) % 10
    result = find_adversarial(digits_net, x[:50], y[:50], 0.3, method="pgd", steps=30,
                              targeted=target, input_range=(0, 1))  # fmt: skip
    assert torch.equal(result.success, result.predictions == target)
    assert result.success_rate > 0.8


def test_attack_works_on_plain_modules_and_restores_training_mode():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 2)).train()
    result = find_adversarial(model, torch.randn(8, 2), torch.zeros(8, dtype=torch.long), 5.0)
    assert model.training and result.inputs.shape == (8, 2)
    assert result.success_rate > 0.5  # a linear model can always be pushed across its boundary


def test_bad_options_name_the_option(digits_net):
    x, y = torch.zeros(2, 64), torch.zeros(2)
    for kwargs, option in [({"method": "cw"}, "method"), ({"norm": "l1"}, "norm"),
                           ({"steps": 0}, "steps"), ({"input_range": (1, 0)}, "input_range")]:  # fmt: skip
        with pytest.raises(OptionError, match=option):
            find_adversarial(digits_net, x, y, 0.1, **kwargs)
    with pytest.raises(OptionError, match="epsilon"):
        find_adversarial(digits_net, x, y, -1.0)
    with pytest.raises(OptionError, match="label"):
        find_adversarial(digits_net, x, torch.zeros(3), 0.1)
    with pytest.raises(OptionError, match="mix"):
        AdversarialTraining(mix=2)


@pytest.mark.slow
def test_adversarial_training_raises_robust_accuracy(digits):
    x, y, x_test, y_test = digits
    plain = train(digits_network(seed=1), x, y, epochs=12, batch=200, lr=0.02)
    options = AdversarialTraining(method="fgsm", epsilon=0.1, mix=0.5, input_range=(0, 1))
    robust = train(digits_network(seed=1), x, y, epochs=12, batch=200, lr=0.02, adversarial=options)

    def robust_accuracy(net):
        attack = find_adversarial(net, x_test, y_test, 0.1, method="pgd", input_range=(0, 1))
        return accuracy(net, attack.inputs, y_test)

    assert accuracy(robust, x_test, y_test) > 0.85
    assert robust_accuracy(robust) > robust_accuracy(plain) + 0.2


def test_labels_and_targets_may_be_class_names(digits, digits_net):
    _, _, x, y = digits
    x, y = x[:40], y[:40]
    names = [f"digit {i}" for i in range(10)]
    digits_net.classes = names
    try:
        by_index = find_adversarial(digits_net, x, y, 0.1, method="pgd", steps=5)
        by_name = find_adversarial(digits_net, x, [names[i] for i in y.tolist()], 0.1,
                                   method="pgd", steps=5)  # fmt: skip
        torch.testing.assert_close(by_name.inputs, by_index.inputs)
        assert torch.equal(by_name.success, by_index.success)
        targeted = find_adversarial(digits_net, x, y, 0.3, method="pgd", steps=10,
                                    targeted="digit 3")  # fmt: skip
        assert torch.equal(targeted.success, targeted.predictions == 3)
        with pytest.raises(OptionError, match="'seven' is not a class.*digit 0"):
            find_adversarial(digits_net, x[:1], "seven", 0.1)
    finally:
        digits_net.classes = None
    with pytest.raises(OptionError, match="no class names"):
        find_adversarial(digits_net, x[:1], "digit 1", 0.1)
