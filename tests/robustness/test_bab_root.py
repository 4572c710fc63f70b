"""Branch and bound starts from the root box's alpha-CROWN bounds (``root=``).

Every domain lies inside the root box, so the root's bounds hold on it and are intersected
with the domain's own: branching must answer exactly as before (checked against a dense grid
of the 2-D input box) while bounding no more domains.
"""

import functools
import time

import pytest
import torch
from torch import nn

from deeptoolbox.robustness import _verify, verify_robustness
from deeptoolbox.robustness._bounds import lower_bound_of
from deeptoolbox.robustness._graph import to_graph
from deeptoolbox.robustness._relu_branch import relu_split_and_bound


def _mlp(seed, width=12):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1)).eval()  # fmt: skip


def _least_on_grid(net, n=301) -> float:
    axis = torch.linspace(-1, 1, n)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        return float(net(grid).min())


def test_keep_returns_sound_node_bounds_tighter_than_plain_crown():
    net = _mlp(2)
    graph = to_graph(net)
    lo, hi = -torch.ones(1, 2), torch.ones(1, 2)
    plain, alpha = [], []
    lower_bound_of(graph, lo, hi, torch.ones(1, 1, 1), "crown", keep=plain)
    lower_bound_of(graph, lo, hi, torch.ones(1, 1, 1), "crown", optimize=True,
                   intermediate=True, keep=alpha)  # fmt: skip
    assert len(plain) == len(alpha) == len(graph.nodes)
    points = lo + (hi - lo) * torch.rand(20_000, 2)
    with torch.no_grad():
        values = graph.run(points)
    for (p_lo, p_hi), (a_lo, a_hi), v in zip(plain, alpha, values, strict=True):
        assert bool((a_lo >= p_lo - 1e-6).all() and (a_hi <= p_hi + 1e-6).all())
        assert bool((v >= a_lo - 1e-5).all() and (v <= a_hi + 1e-5).all())
    assert sum(float((h - l_).sum()) for l_, h in alpha) < sum(
        float((h - l_).sum()) for l_, h in plain
    )


@functools.cache
def _domains(seed) -> dict:
    """Domains bounded to prove a true property, starting from plain CROWN and from the
    root's alpha-CROWN bounds; both must prove it and neither may prove a false one."""
    net = _mlp(seed)
    graph = to_graph(net)
    least = _least_on_grid(net)
    lo, hi, spec = -torch.ones(2), torch.ones(2), torch.ones(1, 1)
    root: list = []
    bound = lower_bound_of(graph, lo[None], hi[None], spec[None], "crown", optimize=True,
                           intermediate=True, keep=root)  # fmt: skip
    proven = least - 0.02  # true, and alpha-CROWN alone does not prove it: branching needed
    assert float(bound[0, 0]) < proven
    counts = {}
    for name, start in (("plain", None), ("alpha", root)):
        stats: dict = {}
        status, _ = relu_split_and_bound(graph, lo, hi, spec, offset=torch.tensor([-proven]),
                                         deadline=time.monotonic() + 30, root=start,
                                         stats=stats)  # fmt: skip
        assert status == "verified", name
        counts[name] = stats["domains"]
        # above the grid's least value the property is false: never "verified"
        wrong, _ = relu_split_and_bound(graph, lo, hi, spec, offset=torch.tensor([-least - 0.01]),
                                        deadline=time.monotonic() + 1, root=start)  # fmt: skip
        assert wrong == "unproven", name
    return counts


@pytest.mark.parametrize("seed", [2, 3, 4, 5])
def test_alpha_root_gives_the_same_verdicts_with_no_more_domains(seed):
    counts = _domains(seed)
    assert counts["alpha"] <= counts["plain"], counts


def test_the_alpha_root_saves_domains_overall():
    counts = [_domains(s) for s in (2, 4, 5)]
    assert sum(c["alpha"] for c in counts) < sum(c["plain"] for c in counts)


def test_verify_robustness_passes_the_root_and_answers_as_without(monkeypatch):
    """Same statuses with and without the root bounds; counterexamples change the class."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    x = torch.rand(4, 20)
    with torch.no_grad():
        labels = net(x).argmax(1)
    original = _verify.relu_split_and_bound
    roots = []

    def spy(*args, root=None, **kwargs):
        roots.append(root)
        return original(*args, root=root, **kwargs)

    monkeypatch.setattr(_verify, "relu_split_and_bound", spy)
    with_root = verify_robustness(net, x, labels, 0.12, branch_and_bound=True,
                                  optimize_slopes=True, timeout=5)  # fmt: skip
    assert roots and all(r is not None and len(r) == 3 for r in roots)
    monkeypatch.setattr(_verify, "relu_split_and_bound",
                        lambda *a, root=None, **k: original(*a, **k))  # fmt: skip
    without = verify_robustness(net, x, labels, 0.12, branch_and_bound=True,
                                optimize_slopes=True, timeout=5)  # fmt: skip
    assert with_root.status == without.status
    assert "unproven" not in with_root.status
    for i, status in enumerate(with_root.status):
        if status == "violated":
            point = with_root.counterexamples[i]
            assert float((point - x[i]).abs().max()) <= 0.12 + 1e-6
            with torch.no_grad():
                assert int(net(point[None]).argmax(1)) != int(labels[i])
