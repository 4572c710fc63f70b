"""TrainingOptions validation, schedules, validation, early stopping and best-network output."""

import math

import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError
from deeptoolbox.training import Cosine, Piecewise, TrainingOptions, Warmup, train


@pytest.mark.parametrize(
    "option,value,allowed",
    [
        ("solver", "sgd", "'sgdm'"),
        ("shuffle", "always", "'every-epoch'"),
        ("max_epochs", 0, "an int >= 1"),
        ("mini_batch_size", 8.5, "an int >= 1"),
        ("initial_learn_rate", -1.0, "a number > 0"),
        ("validation_patience", 0, "an int >= 1 (or math.inf)"),
        ("execution_environment", "tpu", "'multi-gpu'"),
        ("precision", "fp16", "'16-mixed'"),
        ("plots", "yes", "'training-progress'"),
        ("verbose", 1, "True or False"),
        ("metrics", ["accurcy"], "'accuracy'"),
        ("gradient_threshold_method", "l1", "'global-l2norm'"),
    ],
)
def test_bad_values_name_option_value_and_allowed_set(option, value, allowed):
    with pytest.raises(OptionError) as info:
        TrainingOptions(**{option: value})
    message = str(info.value)
    shown = repr(value[0] if isinstance(value, list) else value)
    assert f"`{option}`" in message and shown in message and allowed in message


def test_matlab_defaults():
    o = TrainingOptions()
    assert (o.solver, o.learn_rate, o.momentum, o.l2_regularization) == ("sgdm", 0.01, 0.9, 1e-4)
    assert (o.max_epochs, o.mini_batch_size, o.shuffle) == (30, 128, "once")
    assert (o.validation_frequency, o.verbose_frequency) == (50, 50)
    assert TrainingOptions(solver="adam").learn_rate == 0.001
    assert o.validation_patience == math.inf


def rates(schedule, epochs=4, per_epoch=2, **kw):
    x = torch.randn(per_epoch * 8, 2)
    net = Network([L.FeatureInput(2), L.Dense(1)])
    options = TrainingOptions(
        verbose=False,
        max_epochs=epochs,
        mini_batch_size=8,
        seed=0,
        initial_learn_rate=1.0,
        learn_rate_schedule=schedule,
        momentum=0.0,
        **kw,
    )
    result = train(net, (x, torch.zeros(len(x), 1)), "mse", options)
    return [round(r, 6) for r in result.history.column("learn_rate")]


def test_schedules_give_the_expected_learn_rates():
    assert rates("none") == [1.0] * 8
    assert rates("piecewise", learn_rate_drop_period=2, learn_rate_drop_factor=0.5) == [
        1.0,
        1.0,
        1.0,
        1.0,
        0.5,
        0.5,
        0.5,
        0.5,
    ]
    assert rates(Piecewise(0.1, 1), epochs=2) == [1.0, 1.0, 0.1, 0.1]
    cosine = [round(0.5 * (1 + math.cos(math.pi * k / 8)), 6) for k in range(8)]
    assert rates(Cosine()) == cosine
    assert rates("polynomial") == [round(1 - k / 8, 6) for k in range(8)]
    assert rates([Warmup(epochs=1, initial_factor=0.0), "polynomial"], epochs=3) == [
        0.0,
        0.5,
        1.0,
        0.75,
        0.5,
        0.25,
    ]
    assert rates(lambda t: 1 / (1 + t), epochs=1) == [1.0, round(1 / 1.5, 6)]


def noisy_regression(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 4, generator=g)
    y = x @ torch.randn(4, 1, generator=g)
    return x, y


def test_early_stopping_stops_after_patience_validations():
    x, y = noisy_regression()
    net = Network([L.FeatureInput(4), L.Dense(1)])
    # validation targets unrelated to training targets: validation loss gets worse steadily
    options = TrainingOptions(
        verbose=False,
        seed=0,
        max_epochs=50,
        mini_batch_size=64,
        solver="adam",
        initial_learn_rate=0.05,
        validation_data=(x, -y),
        validation_frequency=1,
        validation_patience=3,
    )
    result = train(net, (x, y), "mse", options)
    validation = result.history.column("validation_loss")
    assert "did not improve for 3" in result.stop_reason
    best = validation.index(min(validation))
    assert len(validation) == best + 4  # the best, then 3 that were not better
    assert len(result.history.epochs) == best + 4  # one validation per epoch here


def test_best_validation_network_is_returned():
    x, y = noisy_regression()
    target = 0.3 * y  # validation loss falls while the fit nears 0.3 y, then rises
    options = dict(
        verbose=False,
        seed=0,
        max_epochs=40,
        mini_batch_size=64,
        solver="adam",
        initial_learn_rate=0.05,
        validation_data=(x, target),
        validation_frequency=1,
    )
    torch.manual_seed(0)
    net = Network([L.FeatureInput(4), L.Dense(1)])
    result = train(net, (x, y), "mse", TrainingOptions(output_network="best-validation", **options))
    mse = float(torch.mean((result.network(x).detach() - target) ** 2))
    validation = result.history.column("validation_loss")
    best = validation.index(min(validation))
    assert 0 < best < len(validation) - 1
    assert math.isclose(mse, min(validation), rel_tol=1e-5)
    assert result.best_epoch == best + 1  # one iteration (and validation) per epoch
    torch.manual_seed(0)
    last = train(
        Network([L.FeatureInput(4), L.Dense(1)]),
        (x, y),
        "mse",
        TrainingOptions(output_network="last-iteration", **options),
    )
    assert float(torch.mean((last.network(x).detach() - target) ** 2)) > mse


def test_metrics_are_recorded_for_training_and_validation():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 2, generator=g)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    net = Network([L.FeatureInput(2), L.Dense(2), L.Softmax()])
    options = TrainingOptions(
        verbose=False,
        seed=0,
        max_epochs=8,
        mini_batch_size=32,
        validation_data=(x, y),
        solver="adam",
        initial_learn_rate=0.05,
        output_network="last-iteration",
        metrics=["accuracy", "precision", "recall", "fscore", "auc"],
        validation_frequency=4,
    )
    result = train(net, (x, y), "crossentropy", options)
    final = result.final_validation
    predicted = net(x).argmax(1)
    assert math.isclose(final["accuracy"], float((predicted == y).float().mean()), rel_tol=1e-6)
    from sklearn.metrics import f1_score, roc_auc_score

    scores = net(x).detach()
    assert math.isclose(final["auc"], roc_auc_score(y, scores[:, 1]), rel_tol=1e-5)
    assert math.isclose(final["fscore"], f1_score(y, predicted, average="macro"), rel_tol=1e-6)
    assert final["auc"] > 0.9
    for name in ("accuracy", "fscore"):
        assert result.history.column(f"validation_{name}")
        assert result.history.column(name)
