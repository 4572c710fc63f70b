"""Segmentation losses against their formulas, and training a U-Net with them."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deeptoolbox import datasets
from deeptoolbox.errors import InputSizeError, OptionError
from deeptoolbox.training import TrainingOptions, train
from deeptoolbox.vision import evaluate_segmentation, segment, segmentation_loss, unet


def _case():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(2, 3, 4, 5, generator=g)
    labels = torch.randint(0, 3, (2, 4, 5), generator=g)
    labels[0, 0, :2] = -100
    return scores, labels


def test_weighted_crossentropy_is_the_weighted_mean_over_real_pixels():
    scores, labels = _case()
    w = torch.tensor([0.5, 2.0, 1.0])
    expected = F.cross_entropy(scores, labels, weight=w, ignore_index=-100)  # PyTorch's own
    got = segmentation_loss("crossentropy", class_weights=w)(scores, labels)
    assert float(got) == pytest.approx(float(expected), rel=1e-6)


def test_focal_loss_follows_its_formula():
    scores, labels = _case()
    p = scores.softmax(1).numpy()
    t = labels.numpy()
    values = [-(1 - p[n, t[n, i, j], i, j]) ** 2 * np.log(p[n, t[n, i, j], i, j])
              for n in range(2) for i in range(4) for j in range(5) if t[n, i, j] >= 0]  # fmt: skip
    assert float(segmentation_loss("focal")(scores, labels)) == pytest.approx(
        np.mean(values), rel=1e-5
    )


def test_dice_loss_follows_its_formula_and_the_sum_adds_up():
    scores, labels = _case()
    p, t = scores.softmax(1).numpy(), labels.numpy()
    dice = []
    for c in range(3):
        real = t >= 0
        pc, tc = p[:, c][real], (t[real] == c).astype(float)
        dice.append((2 * (pc * tc).sum() + 1) / (pc.sum() + tc.sum() + 1))
    assert float(segmentation_loss("dice")(scores, labels)) == pytest.approx(
        1 - np.mean(dice), rel=1e-5
    )
    both = segmentation_loss("crossentropy+dice")(scores, labels)
    assert float(both) == pytest.approx(
        float(F.cross_entropy(scores, labels, ignore_index=-100)) + 1 - np.mean(dice), rel=1e-5
    )


def test_bad_inputs_and_options_raise():
    scores, labels = _case()
    with pytest.raises(InputSizeError, match=r"0..2"):
        segmentation_loss()(scores, labels + 3)
    with pytest.raises(InputSizeError, match="labels must be"):
        segmentation_loss()(scores, labels[:, :2])
    with pytest.raises(OptionError, match="2 values"):
        segmentation_loss(class_weights=[1.0, 1.0])(scores, labels)
    with pytest.raises(OptionError, match="name"):
        segmentation_loss("lovasz")


@pytest.mark.parametrize("name", ["dice", "focal"])
def test_a_unet_trained_briefly_segments_shapes_far_above_chance(name):
    data = datasets.shapes(160, image_size=16, seed=0)
    x, y = torch.as_tensor(data.images), torch.as_tensor(data.masks)
    net = unet((3, 16, 16), 4, depth=2, filters=8)
    options = TrainingOptions(solver="adam", initial_learn_rate=0.01, max_epochs=6,
                              mini_batch_size=16, verbose=False, seed=0)  # fmt: skip
    train(net, (x[:128], y[:128]), segmentation_loss(name), options)  # trained on the logits
    m = evaluate_segmentation(segment(net, x[128:]), y[128:], num_classes=4)
    # all background would give global accuracy 0.84 and mean IoU 0.21 (IoU 0.84, 0, 0, 0);
    # six epochs leave the shape classes uneven from run to run, hence the margins
    assert m.global_accuracy > 0.9 and m.iou[0] > 0.9
    assert m.mean_iou > 0.45 and m.iou[1:].mean() > 0.3
