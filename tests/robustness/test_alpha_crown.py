"""alpha-CROWN on every layer: optimized slopes for intermediate bounds as well as outputs.

The optimized bounds must be sound (they contain the outputs of 10,000 random points and of
PGD points pushed toward each bound) and never looser than plain CROWN, layer by layer.
"""

import time

import pytest
import torch
from torch import nn

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.robustness import _crown, estimate_output_bounds, verify_robustness
from deeptoolbox.robustness._bounds import lower_bound_of
from deeptoolbox.robustness._budget import Budget, Deadline
from deeptoolbox.robustness._crown import Propagator
from deeptoolbox.robustness._graph import to_graph
from deeptoolbox.robustness._verify import margin_spec


def _mlp():
    torch.manual_seed(0)
    return Network([L.FeatureInput(6), L.Dense(32), L.ReLU(), L.Dense(32), L.ReLU(),
                    L.Dense(32), L.LeakyReLU(0.1), L.Dense(4)]).eval()  # fmt: skip


def _cnn():
    torch.manual_seed(1)
    return Network([L.ImageInput((1, 8, 8)), L.Conv2d(4, 3, padding="same"), L.ReLU(),
                    L.Conv2d(6, 3, stride=2), L.ReLU(), L.Flatten(), L.Dense(16), L.ReLU(),
                    L.Dense(3)]).eval()  # fmt: skip


CASES = {"mlp": (_mlp, (6,), 0.4), "cnn": (_cnn, (1, 8, 8), 0.15)}


def _pgd_extremes(net, lo, hi, outputs: int, steps: int = 40) -> torch.Tensor:
    """Points of the box pushed toward the largest and the smallest value of each output."""
    found = []
    for sign in (1.0, -1.0):
        for j in range(outputs):
            x = (lo + (hi - lo) * torch.rand(8, *lo.shape[1:])).requires_grad_(True)
            for step in range(steps):
                value = sign * net(x)[:, j].sum()
                (grad,) = torch.autograd.grad(value, x)
                size = (hi - lo) * 0.2 * (1 - step / steps)
                x = torch.max(torch.min(x.detach() + size * grad.sign(), hi), lo)
                x.requires_grad_(True)
            found.append(x.detach())
    return torch.cat(found)


@pytest.mark.parametrize("name", list(CASES))
def test_optimized_bounds_are_sound_and_never_looser_than_crown(name):
    make, shape, radius = CASES[name]
    net = make()
    torch.manual_seed(2)
    center = torch.rand(1, *shape)
    lo, hi = center - radius, center + radius
    crown = estimate_output_bounds(net, lo, hi, method="crown")
    alpha = estimate_output_bounds(net, lo, hi, method="crown", optimize_slopes=True)
    assert bool((alpha.lower >= crown.lower - 1e-5).all())
    assert bool((alpha.upper <= crown.upper + 1e-5).all())
    assert float(alpha.width.sum()) < float(crown.width.sum()) * 0.995  # it does tighten
    points = torch.cat([lo + (hi - lo) * torch.rand(10_000, *shape),
                        _pgd_extremes(net, lo, hi, crown.lower.shape[1])])  # fmt: skip
    with torch.no_grad():
        outputs = net(points)
    assert bool((outputs >= alpha.lower - 1e-5).all())
    assert bool((outputs <= alpha.upper + 1e-5).all())
    # the PGD points come close to the bounds: these are not vacuous
    assert float((outputs.max(0).values - alpha.upper).max()) > -float(alpha.width.max())


@pytest.mark.parametrize("name", list(CASES))
def test_intermediate_bounds_are_optimized_soundly(name):
    """Each layer's optimized interval lies within CROWN's and contains the layer's values."""
    make, shape, radius = CASES[name]
    net = make()
    graph = to_graph(net)
    torch.manual_seed(3)
    center = torch.rand(1, *shape)
    lo, hi = center - radius, center + radius
    plain = Propagator(graph, lo, hi, "crown", Budget(2**30))
    plain.intervals(len(graph.nodes) - 1)
    optimized = Propagator(
        graph, lo, hi, "crown", Budget(2**30), alpha_steps=20, known=plain.bounds
    )  # as lower_bound_of builds it
    optimized.intervals(len(graph.nodes) - 1)
    assert optimized.alpha_gain and all(g >= 0 for g in optimized.alpha_gain.values())
    assert max(optimized.alpha_gain.values()) > 0
    points = lo + (hi - lo) * torch.rand(10_000, *shape)
    with torch.no_grad():
        values = graph.run(points)
    pairs = zip(plain.bounds, optimized.bounds, strict=True)
    for i, ((p_lo, p_hi), (o_lo, o_hi)) in enumerate(pairs):
        assert bool((o_lo >= p_lo - 1e-5).all() and (o_hi <= p_hi + 1e-5).all()), i
        v = values[i].flatten(1)
        assert bool((v >= o_lo.flatten(1) - 1e-5).all() and (v <= o_hi.flatten(1) + 1e-5).all()), i


def test_time_share_limits_the_optimization(monkeypatch):
    """With a deadline, optimizing the intermediate layers stops at its share of the time
    (ALPHA_SHARE of 1 s here) even when the steps would go on improving."""
    monkeypatch.setattr(_crown, "STALL", 10**9)  # no stopping on convergence
    graph = to_graph(_mlp())
    lo, hi = -torch.ones(1, 6), torch.ones(1, 6)
    optimized = Propagator(graph, lo, hi, "crown", Budget(2**30, Deadline(1.0)),
                           alpha_steps=100_000)  # fmt: skip
    start = time.monotonic()
    optimized.intervals(len(graph.nodes) - 1)
    elapsed = time.monotonic() - start
    assert _crown.ALPHA_SHARE * 0.5 < elapsed < 0.6  # 100,000 steps would take minutes
    assert not optimized.out_of_time and len(optimized.bounds) == len(graph.nodes)


def test_verify_robustness_optimizes_every_layer_never_looser_than_the_margins_alone():
    """verify_robustness(optimize_slopes=True) used to optimize the margins' slopes only;
    with every layer optimized too its margins are never looser than that, tighter on a
    deep network, and below every sampled margin."""
    torch.manual_seed(0)
    layers = [nn.Linear(10, 64), nn.ReLU()]
    for _ in range(3):
        layers += [nn.Linear(64, 64), nn.ReLU()]
    net = nn.Sequential(*layers, nn.Linear(64, 5)).eval()
    x = torch.rand(6, 10)
    with torch.no_grad():
        labels = net(x).argmax(1)
    eps = 0.1
    result = verify_robustness(net, x, labels, eps, optimize_slopes=True, attack=False,
                               timeout=None)  # fmt: skip
    spec = margin_spec(labels, 5, torch.float32)
    graph = to_graph(net)
    before = lower_bound_of(graph, x - eps, x + eps, spec, "crown", True,
                            positive_is_enough=True).amin(1)  # fmt: skip
    plain = lower_bound_of(graph, x - eps, x + eps, spec, "crown").amin(1)
    assert bool((before > plain).all())  # the outputs-only optimization did something
    assert bool((result.margin_lower_bounds >= before - 1e-6).all())
    gain = float((result.margin_lower_bounds - before).mean())
    assert gain > 0.05 * float((before - plain).mean())  # every layer adds to it
    points = x[:, None] + eps * (2 * torch.rand(6, 4000, 10) - 1)
    with torch.no_grad():
        logits = net(points.reshape(-1, 10)).reshape(6, 4000, 5)
    margins = torch.einsum("nsk,njk->nsj", logits, spec).amin(2).amin(1)
    assert bool((result.margin_lower_bounds <= margins + 1e-5).all())


def test_convolution_layers_share_their_slopes_in_patches(monkeypatch):
    """Image-like layers are optimized in patches with one slope per neuron and side
    (_optimize_shared), dense layers with one per bound; both sound and tighter than CROWN."""
    calls = {"shared": [], "dense": []}
    shared, dense = Propagator._optimize_shared, Propagator._optimize_chunk

    def spy_shared(self, i, *args):
        calls["shared"].append(i)
        return shared(self, i, *args)

    def spy_dense(self, i, *args, **kwargs):
        calls["dense"].append(i)
        return dense(self, i, *args, **kwargs)

    monkeypatch.setattr(Propagator, "_optimize_shared", spy_shared)
    monkeypatch.setattr(Propagator, "_optimize_chunk", spy_dense)
    graph = to_graph(_cnn())
    torch.manual_seed(3)
    center = torch.rand(1, 1, 8, 8)
    lo, hi = center - 0.15, center + 0.15
    plain = Propagator(graph, lo, hi, "crown", Budget(2**30))
    plain.intervals(len(graph.nodes) - 1)
    optimized = Propagator(graph, lo, hi, "crown", Budget(2**30), alpha_steps=20,
                           known=plain.bounds)  # fmt: skip
    optimized.intervals(len(graph.nodes) - 1)
    conv = [i for i, n in enumerate(graph.nodes) if isinstance(n.module, L.Conv2d)]
    assert conv[1] in calls["shared"] and conv[1] not in calls["dense"]
    assert optimized.alpha_gain[conv[1]] > 0
    points = lo + (hi - lo) * torch.rand(20_000, 1, 8, 8)
    with torch.no_grad():
        values = graph.run(points)[conv[1]].flatten(1)
    o_lo, o_hi = (t.flatten(1) for t in optimized.bounds[conv[1]])
    assert bool((values >= o_lo - 1e-5).all() and (values <= o_hi + 1e-5).all())
