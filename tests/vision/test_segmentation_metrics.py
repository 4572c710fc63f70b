"""evaluate_segmentation against a direct numpy computation, segment and label_overlay."""

import numpy as np
import pytest
import torch

from deeptoolbox.errors import DataError
from deeptoolbox.vision import evaluate_segmentation, label_overlay, segment, unet


def _reference(pred: np.ndarray, truth: np.ndarray, k: int) -> dict:
    """The metrics written out class by class with boolean masks."""
    keep = truth >= 0
    p, t = pred[keep], truth[keep]
    confusion = np.array([[np.sum((t == i) & (p == j)) for j in range(k)] for i in range(k)])
    iou, acc, dice = [], [], []
    for c in range(k):
        inter, union = np.sum((p == c) & (t == c)), np.sum((p == c) | (t == c))
        iou.append(inter / union if union else np.nan)
        acc.append(inter / np.sum(t == c) if np.sum(t == c) else np.nan)
        size = np.sum(p == c) + np.sum(t == c)
        dice.append(2 * inter / size if size else np.nan)
    freq = np.array([np.sum(t == c) for c in range(k)])
    weighted = sum(freq[c] * iou[c] for c in range(k) if freq[c]) / freq.sum()
    return {"confusion": confusion, "iou": np.array(iou), "accuracy": np.array(acc),
            "dice": np.array(dice), "global": np.mean(p == t), "weighted": weighted}  # fmt: skip


def test_metrics_equal_a_direct_numpy_computation_on_hand_made_masks():
    truth = np.array([[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2], [0, 0, 0, -100]],
                      [[3, 3, 0, 0], [3, 3, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0]]])  # fmt: skip
    pred = np.array([[[0, 1, 1, 1], [0, 0, 1, 0], [2, 2, 0, 2], [0, 0, 3, 2]],
                     [[3, 0, 0, 0], [3, 3, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0]]])  # fmt: skip
    m = evaluate_segmentation(pred, truth, classes=["bg", "a", "b", "c"])
    ref = _reference(pred, truth, 4)
    np.testing.assert_array_equal(m.confusion_matrix, ref["confusion"])
    np.testing.assert_allclose(m.iou, ref["iou"])
    np.testing.assert_allclose(m.class_accuracy, ref["accuracy"])
    np.testing.assert_allclose(m.dice, ref["dice"])
    assert m.global_accuracy == pytest.approx(ref["global"])
    assert m.mean_iou == pytest.approx(np.mean(ref["iou"]))
    assert m.mean_accuracy == pytest.approx(np.mean(ref["accuracy"]))
    assert m.weighted_iou == pytest.approx(ref["weighted"])
    first = _reference(pred[:1], truth[:1], 4)
    assert m.image_accuracy[0] == pytest.approx(first["global"])
    assert m.image_mean_iou[0] == pytest.approx(np.nanmean(first["iou"]))
    assert m.class_metrics["a"]["dice"] == pytest.approx(ref["dice"][1])
    assert "mean_iou" in str(m)


def test_random_maps_of_different_sizes_match_the_reference():
    rng = np.random.default_rng(0)
    truth = [rng.integers(0, 5, size=s) for s in ((7, 9), (12, 5), (3, 3))]
    pred = [np.where(rng.random(t.shape) < 0.7, t, rng.integers(0, 5, t.shape)) for t in truth]
    m = evaluate_segmentation(pred, truth, num_classes=5)
    ref = _reference(np.concatenate([p.ravel() for p in pred]),
                     np.concatenate([t.ravel() for t in truth]), 5)  # fmt: skip
    np.testing.assert_array_equal(m.confusion_matrix, ref["confusion"])
    assert m.mean_iou == pytest.approx(np.nanmean(ref["iou"]))


def test_absent_classes_are_nan_and_left_out_of_the_means():
    truth = np.zeros((1, 2, 2), int)
    m = evaluate_segmentation(truth, truth, num_classes=3)
    assert m.mean_iou == 1.0 and np.isnan(m.iou[1:]).all() and m.mean_accuracy == 1.0


def test_mismatched_inputs_raise_naming_the_observation():
    with pytest.raises(DataError, match="observation 1"):
        evaluate_segmentation(
            [np.zeros((2, 2), int)] * 2, [np.zeros((2, 2), int), np.zeros((3, 2), int)]
        )
    with pytest.raises(DataError, match=r"\[7\] outside 0..1"):
        evaluate_segmentation(np.full((1, 2, 2), 7), np.zeros((1, 2, 2), int), num_classes=2)
    prediction = np.zeros((1, 2, 2), int)
    prediction[0, 0, 0] = -100
    with pytest.raises(
        DataError,
        match=r"observation 0: the predicted map holds \[-100\].*only "
        r"the truth may mark pixels",
    ):
        evaluate_segmentation(prediction, np.zeros((1, 2, 2), int), num_classes=2)
    with pytest.raises(DataError, match="2 predicted maps but 1"):
        evaluate_segmentation(np.zeros((2, 2, 2), int), np.zeros((1, 2, 2), int))


def test_segment_gives_the_argmax_class_of_every_pixel():
    net = unet((1, 8, 8), 3, depth=1, filters=4, classes=["a", "b", "c"])
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        expected = net.eval()(x).argmax(1)
    assert torch.equal(segment(net, x, batch_size=2), expected)


def test_label_overlay_blends_class_colours_and_skips_excluded_classes():
    image = torch.full((3, 2, 2), 0.5)
    labels = torch.tensor([[0, 1], [1, -100]])
    out = label_overlay(image, labels, colors=[(0, 0, 0), (255, 0, 0)], transparency=0.5,
                        included_labels=[1])  # fmt: skip
    assert out.dtype == torch.uint8 and out.shape == (3, 2, 2)
    assert out[:, 0, 1].tolist() == pytest.approx([191, 64, 64], abs=1)  # 0.5 * 128 + 0.5 * 255
    assert out[:, 0, 0].tolist() == [128, 128, 128] and out[:, 1, 1].tolist() == [128, 128, 128]
    with pytest.raises(DataError, match="must match"):
        label_overlay(image, torch.zeros(3, 3, dtype=torch.long))
