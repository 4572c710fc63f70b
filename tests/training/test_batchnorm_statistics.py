"""TrainingOptions(batch_normalization_statistics=...): MATLAB's "population" and "moving".

"population" (the default when the last iteration's network is returned) replaces each
batch-norm layer's running mean and variance by its input's mean and variance over the
training data, computed with the final weights; "moving" keeps the running averages.
"""

import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError
from deeptoolbox.training import TrainingOptions, evaluate, train


def data(n=96):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g) * 3 + 2
    return x, (x[:, 0] > 2).long()


def bn_net():
    torch.manual_seed(0)
    return Network([L.FeatureInput(3), L.Dense(4, name="fc"), L.BatchNorm(name="bn"), L.ReLU(),
                    L.Dense(2), L.Softmax()])  # fmt: skip


def options(**kw):
    return TrainingOptions(**{"max_epochs": 2, "mini_batch_size": 32, "verbose": False,
                              "seed": 0, **kw})  # fmt: skip


def test_population_statistics_are_the_training_data_statistics():
    x, y = data()
    net = bn_net()
    train(net, (x, y), "crossentropy", options())  # "auto" without validation: population
    with torch.no_grad():
        features = net.layer("fc")(x)
    bn = net.layer("bn")
    torch.testing.assert_close(bn.running_mean, features.mean(0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(bn.running_var, features.var(0), atol=1e-5, rtol=1e-5)


def test_moving_keeps_the_running_averages_and_weights_are_the_same():
    x, y = data()
    moving, population = bn_net(), bn_net()
    train(moving, (x, y), "crossentropy", options(batch_normalization_statistics="moving"))
    train(population, (x, y), "crossentropy", options(batch_normalization_statistics="population"))
    torch.testing.assert_close(moving.layer("fc").weight, population.layer("fc").weight)
    with torch.no_grad():
        mean = moving.layer("fc")(x).mean(0)
    assert not torch.allclose(moving.layer("bn").running_mean, mean, atol=1e-3)
    torch.testing.assert_close(population.layer("bn").running_mean, mean, atol=1e-5, rtol=1e-5)


def test_torch_batchnorm_in_a_plain_module_and_sequence_batchnorm():
    x, y = data()
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU(),
                                 torch.nn.Linear(4, 2))  # fmt: skip
    train(module, (x, y), "crossentropy", options())
    with torch.no_grad():
        features = module[0](x)
    torch.testing.assert_close(module[1].running_mean, features.mean(0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(module[1].running_var, features.var(0), atol=1e-5, rtol=1e-5)
    torch.manual_seed(0)
    seq = Network([L.SequenceInput(2), L.Conv1d(3, 3, padding="same", name="conv"),
                   L.BatchNorm(name="bn"), L.GlobalAvgPool(), L.Dense(2), L.Softmax()])  # fmt: skip
    xs, ys = torch.randn(16, 7, 2), torch.randint(0, 2, (16,))
    train(seq, (xs, ys), "crossentropy", options(mini_batch_size=8))
    with torch.no_grad():
        steps = seq.layer("conv")(xs).reshape(-1, 3)
    torch.testing.assert_close(seq.layer("bn").running_mean, steps.mean(0), atol=1e-5, rtol=1e-5)


def test_auto_with_best_validation_keeps_moving_statistics_and_reports_them():
    x, y = data()
    net = bn_net()
    result = train(net, (x, y), "crossentropy", options(validation_data=(x, y)))
    with torch.no_grad():
        mean = net.layer("fc")(x).mean(0)
    assert not torch.allclose(net.layer("bn").running_mean, mean, atol=1e-3)  # moving
    net = bn_net()
    result = train(
        net,
        (x, y),
        "crossentropy",
        options(validation_data=(x, y), batch_normalization_statistics="population"),
    )
    returned = evaluate(net, (x, y), ["accuracy"], loss="crossentropy")
    assert result.final_validation["loss"] == pytest.approx(returned["loss"], rel=1e-5)


def test_bad_value_is_refused():
    with pytest.raises(OptionError, match="`batch_normalization_statistics`"):
        TrainingOptions(batch_normalization_statistics="batch")
