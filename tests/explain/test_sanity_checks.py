"""Sanity checks (Adebayo et al., 2018) on a network trained on generated shapes."""

import copy

import pytest
import torch
from explain_nets import dilate, make_shapes, mass_inside, shapes_cnn, train_briefly
from scipy.stats import spearmanr

from deeptoolbox.explain import gradcam, gradient_attribution, occlusion_sensitivity

pytestmark = pytest.mark.slow  # trains a small CNN (a few seconds on an idle CPU)


@pytest.fixture(scope="module")
def trained():
    x, y, _ = make_shapes(480, seed=0)
    net = shapes_cnn()
    train_briefly(net, x, y, epochs=5)
    test_x, test_y, test_masks = make_shapes(96, seed=1)
    keep = test_y < 3  # the "none" class has no shape to find
    return net, test_x[keep], test_y[keep], test_masks[keep]


def boxes_around(masks: torch.Tensor, grow: int = 1) -> torch.Tensor:
    boxes = torch.zeros_like(masks)
    for i, mask in enumerate(masks):
        (r0, c0), (r1, c1) = torch.nonzero(mask).min(0).values, torch.nonzero(mask).max(0).values
        boxes[i, r0 : r1 + 1, c0 : c1 + 1] = True
    return torch.stack([dilate(b, grow) for b in boxes])


def mean_rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    values = [
        spearmanr(p.flatten().numpy(), q.flatten().numpy()).statistic
        for p, q in zip(a, b, strict=True)
    ]
    return float(sum(values) / len(values))


def randomized(net):
    """Cascading randomization of every layer's weights (Adebayo et al.)."""
    copy_ = copy.deepcopy(net)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for parameter in copy_.parameters():
            parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator))
    return copy_


def test_network_learned_the_shapes(trained):
    net, x, y, _ = trained
    assert (net.eval()(x).argmax(1) == y).float().mean() > 0.9


def test_gradcam_puts_its_mass_on_the_shape(trained):
    net, x, y, masks = trained
    boxes = boxes_around(masks)
    maps = gradcam(net, x, y)
    share = mass_inside(maps, boxes)
    area = boxes.float().mean()
    assert share.mean() > 0.7 and share.mean() > 2 * area
    peaks = maps.flatten(1).argmax(1)
    assert boxes.flatten(1)[torch.arange(len(x)), peaks].float().mean() > 0.9
    occlusion = occlusion_sensitivity(net, x, y, mask_size=4, stride=2)
    assert mass_inside(occlusion.clamp_min(0), boxes).mean() > 0.6


def test_randomizing_weights_changes_the_maps(trained):
    net, x, y, _ = trained
    random_net = randomized(net)
    for explain in (gradcam, gradient_attribution):
        trained_maps = explain(net, x, y)
        random_maps = explain(random_net, x, y)
        assert mean_rank_correlation(trained_maps, random_maps) < 0.5
        # the same network explained twice is perfectly rank-correlated: the check can fail
        assert mean_rank_correlation(trained_maps, explain(net, x, y)) > 0.999
