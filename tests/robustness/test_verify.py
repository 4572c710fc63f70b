"""verify_robustness on networks whose answers can be checked exhaustively."""

import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError
from deeptoolbox.robustness import find_adversarial, verify_robustness


@pytest.fixture(scope="module")
def disk_net():
    """A 2-D classifier (inside / outside a disk) trained with a plain loop."""
    torch.manual_seed(0)
    x = torch.rand(600, 2) * 2 - 1
    y = ((x**2).sum(1) < 0.45).long()
    net = Network([L.FeatureInput(2), L.Dense(16), L.ReLU(), L.Dense(16), L.ReLU(), L.Dense(2),
                   L.Softmax()])  # fmt: skip
    optimizer = torch.optim.Adam(net.parameters(), lr=0.03)
    for _ in range(150):
        optimizer.zero_grad()
        loss = torch.nn.functional.nll_loss(torch.log(net(x) + 1e-9), y)
        loss.backward()
        optimizer.step()
    return net.eval()


def _grid_violation(net, x, label, epsilon, steps=101):
    """True when a point of a dense grid over the box changes the class."""
    axis = torch.linspace(-epsilon, epsilon, steps)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2) + x
    with torch.no_grad():
        return bool((net(grid).argmax(1) != label).any())


def test_branch_and_bound_answers_agree_with_a_grid(disk_net):
    torch.manual_seed(1)
    x = torch.rand(30, 2) * 2 - 1
    with torch.no_grad():
        labels = disk_net(x).argmax(1)
    result = verify_robustness(disk_net, x, labels, 0.08, branch_and_bound=True, time_limit=5)
    assert "unproven" not in result.status  # 2-D boxes are always decided by splitting
    assert result.counts["verified"] > 0 and result.counts["violated"] > 0
    for i, status in enumerate(result.status):
        violated = _grid_violation(disk_net, x[i], labels[i], 0.08)
        if status == "verified":
            assert not violated, f"observation {i} verified but the grid finds a violation"
        else:
            point = result.counterexamples[i]
            assert float((point - x[i]).abs().max()) <= 0.08 + 1e-6
            with torch.no_grad():
                assert int(disk_net(point[None]).argmax(1)) != int(labels[i])


def test_verified_results_are_never_contradicted_by_attacks(disk_net):
    torch.manual_seed(2)
    x = torch.rand(40, 2) * 2 - 1
    with torch.no_grad():
        labels = disk_net(x).argmax(1)
    result = verify_robustness(disk_net, x, labels, 0.05)
    verified = torch.tensor([s == "verified" for s in result.status])
    assert bool(verified.any())
    assert bool((result.margin_lower_bounds[verified] > 0).all())
    for seed in range(3):
        attack = find_adversarial(disk_net, x, labels, 0.05, method="pgd", steps=30, seed=seed)
        assert not bool((attack.success & verified).any())
    nan = torch.isnan(result.counterexamples).all(1)
    assert torch.equal(nan, torch.tensor([s != "violated" for s in result.status]))


def test_misclassified_inputs_are_violated_and_zero_epsilon_is_decided(disk_net):
    x = torch.tensor([[0.0, 0.0], [0.95, 0.95]])
    with torch.no_grad():
        labels = disk_net(x).argmax(1)
    result = verify_robustness(disk_net, x, 1 - labels, 0.01)
    assert result.status == ["violated", "violated"]
    torch.testing.assert_close(result.counterexamples, x)
    assert verify_robustness(disk_net, x, labels, 0.0).status == ["verified", "verified"]


def test_time_limit_is_respected():
    torch.manual_seed(0)
    net = Network([L.FeatureInput(2), L.Dense(64), L.ReLU(), L.Dense(64), L.ReLU(), L.Dense(3)])
    x = torch.zeros(1, 2)
    label = net(x).argmax(1)
    result = verify_robustness(net, x, label, 3.0, attack=False, branch_and_bound=True,
                               time_limit=0.5)  # fmt: skip
    assert result.status[0] in ("unproven", "violated")
    assert result.seconds[0] < 5


def test_bad_options(disk_net):
    x = torch.zeros(1, 2)
    with pytest.raises(OptionError, match="epsilon"):
        verify_robustness(disk_net, x, [0], -0.1)
    with pytest.raises(OptionError, match="time_limit"):
        verify_robustness(disk_net, x, [0], 0.1, time_limit=0)
    with pytest.raises(OptionError, match="label"):
        verify_robustness(disk_net, x, [5], 0.1)
