"""Plain torch modules are first-class in train() and inference (issue: PyTorch users).

Own optimizer and scheduler, several inputs (from forward's signature), tuple and dict
outputs in predict/evaluate/classify, and global random generators left alone.
"""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import deeptoolbox as dtb
from deeptoolbox.errors import OptionError
from deeptoolbox.inference import count_inputs
from deeptoolbox.training import TrainingOptions, evaluate, train


def blobs(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return x, (x[:, 0] + x[:, 1] > 0).long()


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def quiet(**kw):
    return TrainingOptions(**{"max_epochs": 3, "mini_batch_size": 16, "shuffle": "never",
                              "verbose": False, "seed": 0, **kw})  # fmt: skip


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 2), nn.Linear(3, 2)

    def forward(self, a, b, scale=1.0):
        return (self.a(a) + self.b(b)) * scale


class DictOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 2)

    def forward(self, x):
        logits = self.body(x)
        return {"logits": logits, "features": torch.tanh(logits), "aux_loss": logits.pow(2).mean()}


def test_own_optimizer_gives_the_hand_written_loop():
    x, y = blobs()
    module = mlp()
    optimizer = torch.optim.AdamW(module.parameters(), lr=0.01, weight_decay=0.1)
    result = train(module, (x, y), "crossentropy", quiet(), optimizer=optimizer)
    reference = mlp()
    hand = torch.optim.AdamW(reference.parameters(), lr=0.01, weight_decay=0.1)
    for _ in range(3):
        for start in range(0, 64, 16):
            hand.zero_grad()
            F.cross_entropy(reference(x[start : start + 16]), y[start : start + 16]).backward()
            hand.step()
    for mine, theirs in zip(result.network.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs)
    assert result.history.column("learn_rate") == [0.01] * 12


def test_own_scheduler_steps_per_epoch_or_per_iteration():
    x, y = blobs()
    module = mlp()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    step = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    result = train(module, (x, y), "crossentropy", quiet(), optimizer=optimizer, scheduler=step)
    assert result.history.column("learn_rate", per="epoch") == [0.1, 0.05, 0.025]
    module = mlp()
    optimizer = torch.optim.SGD(module.parameters(), lr=1.0)
    per_step = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1 / (k + 1))
    result = train(module, (x, y), "crossentropy", quiet(max_epochs=1), optimizer=optimizer,
                   scheduler={"scheduler": per_step, "interval": "iteration"})  # fmt: skip
    assert result.history.column("learn_rate") == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4])
    module = mlp()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=0, factor=0.5)
    train(module, (x, y), "crossentropy", quiet(validation_data=(x, 1 - y)),
          optimizer=optimizer, scheduler=plateau)  # fmt: skip
    assert optimizer.param_groups[0]["lr"] < 0.1  # validation loss rose: the rate was cut


def test_conflicting_options_and_bad_optimizers_are_refused():
    x, y = blobs()
    module = mlp()
    optimizer = torch.optim.Adam(module.parameters())
    with pytest.raises(OptionError, match=r"\['solver', 'initial_learn_rate'\] would be ignored"):
        train(module, (x, y), "crossentropy", quiet(solver="adam", initial_learn_rate=0.1),
              optimizer=optimizer)  # fmt: skip
    with pytest.raises(OptionError, match="not parameters of `net`"):
        train(mlp(), (x, y), "crossentropy", quiet(), optimizer=optimizer)
    with pytest.raises(OptionError, match="needs your `optimizer`"):
        train(module, (x, y), "crossentropy", quiet(),
              scheduler=torch.optim.lr_scheduler.StepLR(optimizer, 1))  # fmt: skip
    with pytest.raises(OptionError, match="torch.optim.Optimizer"):
        train(module, (x, y), "crossentropy", quiet(), optimizer="adam")


def test_two_input_modules_take_tuple_batches():
    assert count_inputs(TwoInputs()) == 2 and count_inputs(nn.LSTM(2, 3)) == 1
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 4, generator=g), torch.randn(64, 3, generator=g)
    y = (a[:, 0] - b[:, 0] > 0).long()
    torch.manual_seed(0)
    module = TwoInputs()
    result = train(module, (a, b, y), "crossentropy",
                   quiet(solver="adam", initial_learn_rate=0.05, max_epochs=20))  # fmt: skip
    losses = result.history.column("loss", per="epoch")
    assert losses[-1] < 0.5 * losses[0]
    with torch.no_grad():
        expected = module(a, b)
    torch.testing.assert_close(dtb.predict(module, (a, b), batch_size=10), expected)
    accuracy = evaluate(module, (a, b, y), ["accuracy"])["accuracy"]
    assert accuracy == pytest.approx(float((expected.argmax(1) == y).float().mean()))


def test_dict_and_tuple_outputs_work_in_predict_evaluate_and_classify():
    x, y = blobs()
    torch.manual_seed(0)
    module = DictOutput()
    train(module, (x, y), lambda out, t: F.cross_entropy(out["logits"], t), quiet())
    out = dtb.predict(module, x, batch_size=10)
    with torch.no_grad():
        direct = module(x)
    assert list(out) == ["logits", "features", "aux_loss"]
    torch.testing.assert_close(out["logits"], direct["logits"])
    assert out["aux_loss"].shape == (7,)  # one value per batch of 10
    values = evaluate(module, (x, y), ["accuracy"])  # the first output: "logits"
    assert values["accuracy"] == pytest.approx(
        float((direct["logits"].argmax(1) == y).float().mean())
    )
    labels, scores = dtb.classify(module, x)
    assert labels.tolist() == direct["logits"].argmax(1).tolist()
    lstm = nn.LSTM(3, 5, batch_first=True)
    seqs = torch.randn(10, 6, 3)
    output, (h, c) = dtb.predict(lstm, seqs, batch_size=4)
    with torch.no_grad():
        d_output, (d_h, d_c) = lstm(seqs)
    torch.testing.assert_close(output, d_output)
    torch.testing.assert_close(h, d_h)  # recurrent states joined on their batch axis (1)
    torch.testing.assert_close(c, d_c)


class TupleOutput(DictOutput):
    def forward(self, x):
        return tuple(super().forward(x).values())


def first_logits(outputs):
    return outputs["logits"] if isinstance(outputs, dict) else outputs[0]


@pytest.mark.parametrize("make", [DictOutput, TupleOutput])
def test_evaluate_scores_a_built_in_loss_on_the_first_output(make):
    x, y = blobs()
    torch.manual_seed(0)
    module = make()
    with torch.no_grad():
        logits = module.body(x)
    values = evaluate(module, (x, y), ["accuracy", "loss"], loss="crossentropy")
    assert values["loss"] == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
    assert values["accuracy"] == pytest.approx(float((logits.argmax(1) == y).float().mean()))
    custom = evaluate(module, (x, y), ["accuracy"], loss=lambda out, t: first_logits(out).sum())
    assert custom["loss"] == pytest.approx(float(logits.sum()), rel=1e-4)  # all the outputs


def test_a_built_in_loss_on_dict_outputs_in_train_names_them():
    x, y = blobs()
    with pytest.raises(OptionError, match=r"3 outputs \('logits', 'features', 'aux_loss'\)"):
        train(DictOutput(), (x, y), "crossentropy", quiet(max_epochs=1))


def test_train_leaves_global_random_state_alone_and_stays_reproducible():
    x, y = blobs()
    nets = []
    for _ in range(2):
        torch.manual_seed(0)
        nets.append(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 2)))
    torch.manual_seed(123)
    np.random.seed(7)
    random.seed(5)
    state, numpy_before, python_before = (
        torch.get_rng_state(),
        np.random.get_state(),
        random.getstate(),
    )
    expected = torch.rand(3)  # what the caller's stream gives next
    torch.set_rng_state(state)
    runs = [train(net, (x, y), "crossentropy", quiet(shuffle="every-epoch", seed=3))
            for net in nets]  # fmt: skip
    assert torch.equal(torch.rand(3), expected) and torch.initial_seed() == 123
    assert np.array_equal(np.random.get_state()[1], numpy_before[1])
    assert random.getstate() == python_before
    first, second = (list(r.network.parameters()) for r in runs)
    for a, b in zip(first, second, strict=True):  # same seed, dropout and order: same weights
        torch.testing.assert_close(a, b)
