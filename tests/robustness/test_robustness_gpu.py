"""The robustness tools run on the network's device (CUDA when present)."""

import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.robustness import estimate_output_bounds, find_adversarial, verify_robustness

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_attack_bounds_and_verification_on_cuda():
    torch.manual_seed(0)
    net = Network([L.FeatureInput(4), L.Dense(16), L.ReLU(), L.Dense(3)]).cuda()
    x = torch.randn(8, 4)
    label = net(x.cuda()).argmax(1).cpu()
    attack = find_adversarial(net, x, label, 0.5, method="pgd")
    assert attack.inputs.device.type == "cuda"
    bounds = estimate_output_bounds(net, x - 0.1, x + 0.1, optimize_slopes=True)
    assert bounds.lower.device.type == "cuda"
    with torch.no_grad():
        assert bool(bounds.contains(net(x.cuda()), tolerance=1e-5).all())
    result = verify_robustness(net, x, label, 0.01, branch_and_bound=True, time_limit=2)
    assert len(result.status) == 8


def test_convolution_patches_and_budget_on_cuda_match_the_cpu():
    from deeptoolbox.robustness._budget import default_max_memory

    torch.manual_seed(0)
    net = Network([L.ImageInput((3, 16, 16)), L.Conv2d(8, 3, stride=2, padding=1), L.BatchNorm(),
                   L.ReLU(), L.Conv2d(8, 3, padding=1), L.ReLU(), L.MaxPool2d(2, padding=0),
                   L.Flatten(), L.Dense(4)])  # fmt: skip
    net.initialize()
    net.eval()
    x = torch.rand(6, 3, 16, 16)
    cpu = estimate_output_bounds(net, x - 0.03, x + 0.03)
    net.cuda()
    assert default_max_memory(torch.device("cuda")) > 0
    gpu = estimate_output_bounds(net, x - 0.03, x + 0.03, optimize_slopes=True, iterations=3)
    assert gpu.lower.device.type == "cuda" and gpu.notes == []
    assert bool((gpu.lower.cpu() >= cpu.lower - 1e-4).all())
    assert bool((gpu.upper.cpu() <= cpu.upper + 1e-4).all())
    with torch.no_grad():
        assert bool(gpu.contains(net(x.cuda()), tolerance=1e-4).all())
    label = net(x.cuda()).argmax(1).cpu()
    result = verify_robustness(net, x - 0.01, x + 0.01, label, time_limit=2)
    assert len(result.status) == 6
