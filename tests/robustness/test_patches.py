"""CROWN with patches (convolution-shaped coefficients) against the all-dense reference path.

Both paths compute the same bounds up to float rounding; these tests check it node by node on
convolutions with stride, padding, dilation and groups, in 1-D (toolbox channels-last and torch
channels-first), 2-D and 3-D, through pooling, BatchNorm, transposed convolutions, residual
additions and concatenations, and check that the bounds hold (sampling, corners, PGD).
"""

import pytest
import torch
from torch import nn

from conftest import assert_sound
from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.robustness import estimate_output_bounds
from deeptoolbox.robustness._budget import Budget
from deeptoolbox.robustness._crown import Propagator
from deeptoolbox.robustness._graph import to_graph


def _conv2d_variants():
    return Network([
        L.ImageInput((2, 9, 9), normalization="zscore", mean=[0.1, 0.2], std=[0.5, 0.8]),
        L.Conv2d(4, 3, stride=2, padding=1), L.ReLU(),
        L.Conv2d(6, 3, dilation=2, padding=2), L.BatchNorm(), L.ReLU(),
        L.Conv2d(6, 3, groups=2, stride=2, padding="same"), L.ReLU(),
        L.Conv2d(4, (2, 3), padding=(0, 1)), L.LeakyReLU(0.1),
        L.Flatten(), L.Dense(3),
    ])  # fmt: skip


def _conv1d_sequence():
    return Network([
        L.SequenceInput(3, length=14), L.Conv1d(6, 3, stride=2, padding="same"), L.ReLU(),
        L.MaxPool1d(2, padding=0), L.Conv1d(4, 3, dilation=2, padding=2), L.ReLU(),
        L.AvgPool1d(2, padding=0), L.Conv1d(4, 1, padding=0), L.ReLU(), L.GlobalAvgPool(),
        L.Dense(3),
    ])  # fmt: skip


def _conv3d_volume():
    return Network([
        L.VolumeInput((1, 6, 6, 6)), L.Conv3d(3, 3, padding=1), L.ReLU(),
        L.Conv3d(2, 3, stride=2, padding=1), L.ReLU(), L.Flatten(), L.Dense(3),
    ])  # fmt: skip


def _transposed():
    return Network([
        L.ImageInput((2, 6, 6)), L.Conv2d(4, 3, padding=1), L.ReLU(),
        L.TransposedConv2d(3, 3, stride=2, cropping="same"), L.ReLU(),
        L.Conv2d(3, 3, stride=2, padding=0), L.ReLU(), L.MaxPool2d(2, padding=0),
        L.Flatten(), L.Dense(3),
    ])  # fmt: skip


def _residual():
    net = Network([
        L.ImageInput((3, 8, 8)), L.Conv2d(4, 3, padding=1, name="c1"), L.ReLU(name="r1"),
        L.Conv2d(4, 3, padding=1, name="c2"), L.BatchNorm(name="bn2"), L.Addition(name="add1"),
        L.ReLU(name="r2"), L.Conv2d(6, 3, stride=2, padding=1, name="c3"), L.ReLU(name="r3"),
        L.Conv2d(6, 3, padding=1, name="c4"), L.Addition(name="add2"), L.ReLU(name="r4"),
        L.Concatenation(name="cat"), L.ReLU(name="r5"), L.Conv2d(4, 2, padding=0, name="c5"),
        L.ReLU(name="r6"), L.GlobalMaxPool(name="gmax"), L.Dense(3, name="out"),
    ])  # fmt: skip
    net.add_layers([L.Conv2d(6, 1, stride=2, padding=0, name="short")])
    net.connect("r2", "short")
    net.connect("r1", "add1/in2").connect("short", "add2/in2")
    net.add_layers([L.AvgPool2d(2, padding=0, name="pool")])
    net.connect("r2", "pool").connect("pool", "cat/in2")
    return net


def _torch_sequential():
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding="same", dilation=2, groups=2), nn.BatchNorm2d(4), nn.ReLU(),
        nn.AvgPool2d(2, padding=1), nn.Conv2d(4, 3, 2, padding=0), nn.ReLU(),
        nn.MaxPool2d(2, stride=1, padding=0), nn.Flatten(), nn.Linear(3, 3),
    )  # fmt: skip


def _torch_conv1d():
    return nn.Sequential(
        nn.Conv1d(2, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Conv1d(4, 4, 3, padding=2,
        dilation=2), nn.ReLU(), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(4 * 5, 2),
    )  # fmt: skip


NETWORKS = {
    "conv2d-stride-dilation-groups": (_conv2d_variants, (2, 9, 9)),
    "conv1d-sequence": (_conv1d_sequence, (14, 3)),
    "conv3d": (_conv3d_volume, (1, 6, 6, 6)),
    "transposed-conv": (_transposed, (2, 6, 6)),
    "residual-concat-batchnorm": (_residual, (3, 8, 8)),
    "torch-conv2d": (_torch_sequential, (2, 10, 10)),
    "torch-conv1d": (_torch_conv1d, (2, 20)),
}


def _randomized(build, seed):
    torch.manual_seed(seed)
    net = build()
    if isinstance(net, Network):
        net.initialize()
    for module in net.modules():
        if isinstance(module, L.BatchNorm | nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            with torch.no_grad():
                module.weight.uniform_(-1.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return net.eval()


def _propagate(net, lo, hi, patches):
    graph = to_graph(net).without_softmax()
    propagator = Propagator(graph, lo, hi, "crown", Budget(2**30), patches=patches)
    size = propagator.shapes[-1][0]
    eye = torch.eye(size)
    spec = torch.cat([eye, -eye])[None]
    return propagator, propagator.linear_lower(spec, False, 1)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_patches_give_the_dense_bounds_node_by_node(name):
    build, shape = NETWORKS[name]
    net = _randomized(build, seed=len(name))
    lo = torch.rand(2, *shape) * 2 - 1
    hi = lo + 0.25
    with torch.no_grad():
        patched, bound = _propagate(net, lo, hi, patches=True)
        dense, reference = _propagate(net, lo, hi, patches=False)
    assert patched.steps["patches"] > 0, "the patches path was not taken"
    assert dense.steps["patches"] == 0
    for i, ((a_lo, a_hi), (b_lo, b_hi)) in enumerate(zip(patched.bounds, dense.bounds,
                                                          strict=True)):  # fmt: skip
        node = patched.nodes[i].name
        torch.testing.assert_close(a_lo, b_lo, rtol=1e-4, atol=1e-5, msg=f"lower of {node}")
        torch.testing.assert_close(a_hi, b_hi, rtol=1e-4, atol=1e-5, msg=f"upper of {node}")
    torch.testing.assert_close(bound, reference, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_patch_bounds_hold_under_sampling_and_attack(name):
    build, shape = NETWORKS[name]
    net = _randomized(build, seed=len(name) + 1)
    lo = torch.rand(2, *shape) * 2 - 1
    hi = lo + 0.3
    crown = estimate_output_bounds(net, lo, hi, method="crown")
    alpha = estimate_output_bounds(net, lo, hi, method="crown", optimize_slopes=True,
                                   iterations=4)  # fmt: skip
    ibp = estimate_output_bounds(net, lo, hi, method="ibp")
    assert_sound(net, lo, hi, alpha.lower, alpha.upper)
    assert bool((crown.lower >= ibp.lower - 1e-5).all() and (crown.upper <= ibp.upper + 1e-5).all())
    assert bool((alpha.lower >= crown.lower - 1e-5).all())
    assert float(crown.width.mean()) < float(ibp.width.mean())


def test_max_pooling_is_relaxed_not_just_bounded_by_intervals():
    """Through max pooling, CROWN keeps the dependence on the input (tighter than intervals)."""
    torch.manual_seed(0)
    net = Network([L.ImageInput((1, 6, 6)), L.Conv2d(3, 3, padding=1), L.ReLU(),
                   L.MaxPool2d(2, padding=0), L.Flatten(), L.Dense(2)])  # fmt: skip
    net.initialize()
    lo = torch.rand(1, 1, 6, 6)
    hi = lo + 0.05
    graph = to_graph(net)
    with torch.no_grad():
        relaxed = Propagator(graph, lo, hi, "crown", Budget(2**30))
        spec = torch.cat([torch.eye(2), -torch.eye(2)])[None]
        tight = relaxed.linear_lower(spec, False, 1)
        intervals = Propagator(graph, lo, hi, "crown", Budget(2**30))
        pool = next(i for i, node in enumerate(graph.nodes) if node.kind == "max")
        intervals.ops.pop(pool)  # the max-pooling node: bounded by its interval instead
        loose = intervals.linear_lower(spec, False, 1)
    assert bool((tight >= loose - 1e-6).all()) and float((tight - loose).sum()) > 1e-4
    bounds = estimate_output_bounds(net, lo, hi)
    assert_sound(net, lo, hi, bounds.lower, bounds.upper)


def test_only_unstable_neurons_are_bounded_with_crown():
    torch.manual_seed(0)
    net = Network([L.ImageInput((1, 8, 8)), L.Conv2d(4, 3, padding=1), L.ReLU(),
                   L.Conv2d(4, 3, padding=1), L.ReLU(), L.Flatten(), L.Dense(2)])  # fmt: skip
    net.initialize()
    lo = torch.rand(1, 1, 8, 8)
    hi = lo + 0.02
    graph = to_graph(net)
    with torch.no_grad():
        interval = Propagator(graph, lo, hi, "ibp", Budget(2**30))
        interval.intervals(len(graph.nodes) - 1)
        lows, highs = interval.bounds[2]  # the second convolution, before its ReLU
        unstable = int(((lows < 0) & (highs > 0)).sum())
        propagator = Propagator(graph, lo, hi, "crown", Budget(2**30))
        calls = []
        original = propagator.backward

        def counting(start, form, alphas=None):
            calls.append((start, form.rows))
            return original(start, form, alphas)

        propagator.backward = counting
        propagator.linear_lower(torch.eye(2)[None], False, 1)
    assert 0 < unstable < 4 * 64
    # the first convolution reads the input box directly: its intervals are exact, no CROWN;
    # the second gets one lower and one upper row per unstable neuron; then the output
    assert [start for start, _ in calls] == [2] * (len(calls) - 1) + [5]
    assert sum(rows for start, rows in calls if start == 2) == 2 * unstable


@pytest.mark.parametrize("in_shape", [(3, 4, 5), (2, 3, 4, 2), (6, 3)])
def test_global_average_pooling_rule_equals_the_autograd_transpose(in_shape):
    from deeptoolbox.robustness._linear import Form
    from deeptoolbox.robustness._ops import GenericOp, MeanOp

    layer = L.GlobalAvgPool()
    reference = torch.zeros(1, *in_shape)
    out_shape = tuple(layer(reference).shape[1:])
    coefficients = torch.randn(2, 5, *out_shape)
    (mean,), mean_constant = MeanOp(in_shape).backward(Form(coefficients))
    (generic,), generic_constant = GenericOp(layer, [in_shape], out_shape, reference).backward(
        Form(coefficients)
    )
    torch.testing.assert_close(mean.values, generic.values)
    torch.testing.assert_close(torch.as_tensor(mean_constant).expand(2, 5), generic_constant)
