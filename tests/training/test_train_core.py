"""train(): solvers, losses, masking, multi-input, frozen layers, learn-rate factors, clipping."""

import math

import pytest
import torch
import torch.nn.functional as F

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import InputSizeError, OptionError, TrainingError
from deeptoolbox.training import TrainingOptions, loss_function, train
from deeptoolbox.training._losses import logits_mode


def quiet(**kw):
    return TrainingOptions(verbose=False, seed=0, **kw)


def blobs(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return x, y


def classifier():
    return Network([L.FeatureInput(2), L.Dense(16), L.ReLU(), L.Dense(2), L.Softmax()])


@pytest.mark.parametrize("solver", ["sgdm", "adam", "adamw", "rmsprop", "lbfgs"])
def test_every_solver_lowers_the_loss(solver):
    torch.manual_seed(0)
    x, y = blobs()
    size = 256 if solver == "lbfgs" else 32
    rate = {"lbfgs": 1.0, "sgdm": 0.05}.get(solver, 0.01)
    result = train(
        classifier(),
        (x, y),
        "crossentropy",
        quiet(solver=solver, max_epochs=5, mini_batch_size=size, initial_learn_rate=rate),
    )
    losses = result.history.column("loss", per="epoch")
    assert losses[-1] < 0.7 * losses[0]


def test_crossentropy_from_logits_matches_reference_and_is_stable():
    net = classifier()
    loss = loss_function("crossentropy")
    x = torch.randn(8, 2) * 1e4  # saturating logits: log(softmax) would give -inf
    y = torch.randint(0, 2, (8,))
    with logits_mode(net, loss) as skipped:
        logits = net(x)
        value = loss(logits, y)
    assert skipped and torch.isfinite(value)
    assert torch.allclose(value, F.cross_entropy(logits, y))
    one_hot = F.one_hot(y, 2).float()
    assert torch.allclose(loss(logits, one_hot), value)
    assert "forward" not in vars(net.layer(net.output_names[0]))  # Softmax restored
    assert torch.allclose(net(x[:1]).sum(), torch.tensor(1.0))


def test_class_weights_follow_pytorch_weighted_mean():
    logits, y = torch.randn(10, 3), torch.randint(0, 3, (10,))
    w = torch.tensor([1.0, 2.0, 5.0])
    value = loss_function("crossentropy", class_weights=w)(logits, y)
    assert torch.allclose(value, F.cross_entropy(logits, y, weight=w))
    with pytest.raises(OptionError, match=r"loss_function: `class_weights` has 2 values but the "
                       r"network gives 3 class scores"):  # fmt: skip
        loss_function("crossentropy", class_weights=w[:2])(logits, y)


@pytest.mark.parametrize("weights", [None, [0.5, 2.0, 1.0]])
@pytest.mark.parametrize("shape", [(7,), (2, 4, 5)])  # classification, per-pixel (N, H, W)
def test_ignored_targets_count_neither_in_the_sum_nor_in_the_denominator(shape, weights):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, shape, generator=g)
    logits = torch.randn(shape[0], 3, *shape[1:], generator=g)
    y.view(-1)[:3] = -100  # PyTorch's ignore_index
    w = None if weights is None else torch.tensor(weights)
    value = loss_function("crossentropy", class_weights=w)(logits, y)
    expected = F.cross_entropy(logits, y, weight=w, ignore_index=-100)
    assert float(value) == pytest.approx(float(expected), rel=1e-6)
    kept = y != -100  # the same as dropping the ignored elements
    if len(shape) == 1:
        assert float(value) == pytest.approx(
            float(F.cross_entropy(logits[kept], y[kept], weight=w)), rel=1e-6
        )


@pytest.mark.parametrize(
    "name,reference",
    [
        ("mse", F.mse_loss),
        ("mae", F.l1_loss),
        ("huber", F.huber_loss),
        ("binary-crossentropy", F.binary_cross_entropy_with_logits),
    ],
)
def test_regression_and_binary_losses_match_torch(name, reference):
    out, target = torch.randn(6, 2), torch.rand(6, 2)
    assert torch.allclose(loss_function(name)(out, target), reference(out, target))


@pytest.mark.parametrize("name", ["mse", "mae", "huber", "binary-crossentropy"])
def test_value_losses_name_both_shapes_when_targets_do_not_fit(name):
    loss = loss_function(name)
    with pytest.raises(InputSizeError, match=r"\(8, 4, 16, 16\).*\(8, 16, 16\).*'crossentropy'"):
        loss(torch.zeros(8, 4, 16, 16), torch.zeros(8, 16, 16, dtype=torch.long))
    with pytest.raises(InputSizeError, match=r"\(6, 3\) and the targets \(6, 2\)") as err:
        loss(torch.zeros(6, 3), torch.zeros(6, 2))
    assert "class indices" not in str(err.value)
    assert float(loss(torch.zeros(6, 3), torch.zeros(18))) >= 0  # same count: reshaped


def test_masked_sequence_loss_ignores_padding():
    net = Network([L.SequenceInput(3), L.GRU(8), L.Dense(2), L.Softmax()])
    loss = loss_function("crossentropy")
    x, y = torch.randn(2, 5, 3), torch.randint(0, 2, (2, 5))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    with logits_mode(net, loss):
        a = loss(net(x), y, mask)
        x2, y2 = x.clone(), y.clone()
        x2[0, 3:] = 100.0  # change the padding only
        y2[0, 3:] = 1 - y2[0, 3:]
        b = loss(net(x2), y2, mask)
    assert torch.allclose(a, b)


def test_sequence_to_sequence_training_with_mask_batches():
    torch.manual_seed(0)
    x = torch.randn(32, 6, 2)
    y = (x[..., 0] > 0).long()
    mask = torch.ones(32, 6, dtype=torch.bool)
    mask[::2, 4:] = False
    batches = [
        {"inputs": x[i : i + 8], "targets": y[i : i + 8], "mask": mask[i : i + 8]}
        for i in range(0, 32, 8)
    ]
    net = Network(
        [L.SequenceInput(2), L.Conv1d(8, 3, padding="same"), L.ReLU(), L.Dense(2), L.Softmax()]
    )
    result = train(
        net, batches, "crossentropy", quiet(solver="adam", initial_learn_rate=0.02, max_epochs=15)
    )
    losses = result.history.column("loss", per="epoch")
    assert losses[-1] < 0.6 * losses[0]


def test_multi_input_network_trains():
    torch.manual_seed(0)
    net = Network().add_layers([L.FeatureInput(2, name="a"), L.Dense(4, name="fa")])
    net.add_layers([L.FeatureInput(3, name="b"), L.Dense(4, name="fb")])
    net.add_layers([L.Concatenation(2, name="cat"), L.Dense(1, name="out")])
    net.connect("fa", "cat/in1").connect("fb", "cat/in2")
    a, b = torch.randn(64, 2), torch.randn(64, 3)
    y = a.sum(1, keepdim=True) - b.sum(1, keepdim=True)
    result = train(
        net,
        (a, b, y),
        "mse",
        quiet(solver="adam", initial_learn_rate=0.05, max_epochs=20, mini_batch_size=16),
    )
    losses = result.history.column("loss", per="epoch")
    assert losses[-1] < 0.1 * losses[0]


def test_dataset_and_dataloader_and_collate_fn_are_accepted():
    x, y = blobs(64)

    class Items(torch.utils.data.Dataset):
        calls = 0

        def __len__(self):
            return 64

        def __getitem__(self, i):
            return x[i], y[i]

        @staticmethod
        def collate_fn(items):
            Items.calls += 1
            return torch.stack([a for a, _ in items]), torch.stack([b for _, b in items])

    result = train(classifier(), Items(), "crossentropy", quiet(max_epochs=1, mini_batch_size=16))
    assert Items.calls == 4 and result.history.iterations[-1]["iteration"] == 4
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    result = train(classifier(), loader, "crossentropy", quiet(max_epochs=2))
    assert [r["iteration"] for r in result.history.epochs] == [2, 4]


def test_frozen_layers_keep_weights_and_batchnorm_statistics_exactly():
    torch.manual_seed(0)
    net = Network(
        [
            L.FeatureInput(2),
            L.Dense(8, name="fc1"),
            L.BatchNorm(name="bn"),
            L.ReLU(),
            L.Dense(2, name="fc2"),
            L.Softmax(),
        ]
    ).freeze(["fc1", "bn"])
    before = {k: v.clone() for k, v in net.state_dict().items()}
    train(net, blobs(), "crossentropy", quiet(max_epochs=2, mini_batch_size=32))
    after = net.state_dict()
    for key in before:
        if key.startswith(("layers.fc1.", "layers.bn.")):
            assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before["layers.fc2.weight"], after["layers.fc2.weight"])


def test_learn_rate_factors_scale_the_update():
    x, y = blobs(32)
    updates = {}
    for factor in (1.0, 3.0, 0.0):
        torch.manual_seed(0)
        net = Network([L.FeatureInput(2), L.Dense(2, name="fc"), L.Softmax()])
        net.set_learn_rate_factor("fc", factor)
        start = net.layer("fc").weight.detach().clone()
        options = quiet(max_epochs=1, mini_batch_size=32, momentum=0.0, l2_regularization=0.0)
        if factor == 0.0:
            with pytest.raises(OptionError, match="no trainable parameters"):
                train(net, (x, y), "crossentropy", options)
            continue
        train(net, (x, y), "crossentropy", options)
        updates[factor] = net.layer("fc").weight.detach() - start
    assert torch.allclose(updates[3.0], 3 * updates[1.0], atol=1e-6)


@pytest.mark.parametrize("method", ["l2norm", "global-l2norm", "absolute-value"])
def test_gradient_clipping_bounds_the_step(method):
    torch.manual_seed(0)
    net = Network([L.FeatureInput(2), L.Dense(1, name="fc")])
    start = [p.detach().clone() for p in net.parameters()]
    x = torch.randn(16, 2) * 100
    options = quiet(
        max_epochs=1,
        mini_batch_size=16,
        momentum=0.0,
        l2_regularization=0.0,
        initial_learn_rate=1.0,
        gradient_threshold=0.5,
        gradient_threshold_method=method,
    )
    train(net, (x, torch.zeros(16, 1)), "mse", options)
    steps = [p.detach() - s for p, s in zip(net.parameters(), start, strict=True)]
    if method == "l2norm":
        assert all(float(s.norm()) <= 0.5 + 1e-5 for s in steps)
    elif method == "global-l2norm":
        assert float(torch.cat([s.flatten() for s in steps]).norm()) <= 0.5 + 1e-5
    else:
        assert all(float(s.abs().max()) <= 0.5 + 1e-6 for s in steps)


def test_nan_loss_raises_training_error_with_last_good_network():
    x, y = blobs(64)
    x[40] = math.nan  # batch 3 of 4 holds a NaN
    net = classifier()
    with pytest.raises(TrainingError, match="iteration 3") as info:
        train(net, (x, y), "crossentropy", quiet(max_epochs=1, mini_batch_size=16, shuffle="never"))
    result = info.value.result
    assert "learn_rate" in str(info.value)
    assert all(torch.isfinite(p).all() for p in result.network.parameters())
    assert [r["iteration"] for r in result.history.iterations] == [1, 2]


def test_bad_arguments_name_the_problem():
    with pytest.raises(OptionError, match="`net`"):
        train("net", blobs(), "crossentropy")
    with pytest.raises(OptionError, match="`options`"):
        train(classifier(), blobs(), "crossentropy", {"max_epochs": 1})
    with pytest.raises(OptionError, match="'crossentropy'"):
        train(classifier(), blobs(), "cross-entropy", quiet(max_epochs=1))
    with pytest.raises(OptionError, match="Dataset"):
        train(classifier(), 42, "crossentropy", quiet(max_epochs=1))


def test_bf16_mixed_precision_on_cpu_trains():
    torch.manual_seed(0)
    result = train(
        classifier(),
        blobs(),
        "crossentropy",
        quiet(
            precision="bf16-mixed",
            solver="adam",
            initial_learn_rate=0.05,
            max_epochs=3,
            mini_batch_size=32,
        ),
    )
    losses = result.history.column("loss", per="epoch")
    assert result.precision == "bf16-mixed" and losses[-1] < losses[0]
    with pytest.raises(OptionError, match="'16-mixed' needs a GPU"):
        train(
            classifier(),
            blobs(),
            "crossentropy",
            quiet(precision="16-mixed", execution_environment="cpu"),
        )


@pytest.mark.slow
def test_compiled_training_matches_eager_closely():
    results = []
    for compile_ in (False, True):
        torch.manual_seed(0)
        net = classifier()
        train(
            net, blobs(), "crossentropy", quiet(compile=compile_, max_epochs=2, mini_batch_size=64)
        )
        results.append(net.layer("dense_1").weight.detach().clone())
    assert torch.allclose(results[0], results[1], atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["auto", "16-mixed"])
def test_gpu_training_defaults_and_float16(precision):
    torch.manual_seed(0)
    net = Network(
        [
            L.ImageInput((1, 8, 8)),
            L.Conv2d(8, 3, padding="same", name="conv"),
            L.ReLU(),
            L.Flatten(),
            L.Dense(2),
            L.Softmax(),
        ]
    )
    x = torch.randn(128, 1, 8, 8)
    y = (x.mean((1, 2, 3)) > 0).long()
    result = train(
        net,
        (x, y),
        "crossentropy",
        quiet(precision=precision, solver="adam", max_epochs=3, mini_batch_size=32),
    )
    assert result.device.startswith("cuda")
    assert result.precision == ("bf16-mixed" if precision == "auto" else "16-mixed")
    assert net.layer("conv").weight.is_contiguous(memory_format=torch.channels_last)
    losses = result.history.column("loss", per="epoch")
    assert losses[-1] < losses[0]
