"""evaluate_detection against values computed by hand: IoU from the box corners, COCO's
101-point interpolated AP from a ranked list of hits and misses, written out here without
torchmetrics or COCO code."""

import math

import numpy as np
import pytest
import torch

from deeptoolbox.errors import DataError
from deeptoolbox.vision import BoxLabelDatastore, box_overlay, evaluate_detection

THRESHOLDS = np.linspace(0.5, 0.95, 10)


def iou(a, b) -> float:
    """Intersection over union of two [x_min, y_min, x_max, y_max] boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def interpolated_ap(hits: list[bool], positives: int) -> float:
    """COCO AP: detections ranked by score, precision made monotone, read at recall
    0, 0.01, ..., 1 (0 where a recall level is never reached)."""
    tp = np.cumsum(hits)
    fp = np.cumsum([not h for h in hits])
    recall, precision = tp / positives, tp / (tp + fp)
    for i in range(len(precision) - 2, -1, -1):
        precision[i] = max(precision[i], precision[i + 1])
    levels = np.linspace(0, 1, 101)
    read = [precision[np.searchsorted(recall, r, side="left")] if r <= recall[-1] else 0.0
            for r in levels]  # fmt: skip
    return float(np.mean(read))


def one(boxes, labels, scores=None):
    item = {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels)}
    if scores is not None:
        item["scores"] = torch.tensor(scores)
    return item


def test_perfect_boxes_give_one_everywhere():
    truth = [one([[0, 0, 10, 10], [20, 20, 40, 30]], [0, 1]), one([[5, 5, 25, 25]], [1])]
    found = [{**t, "scores": torch.linspace(0.9, 0.6, len(t["labels"]))} for t in truth]
    m = evaluate_detection(found, truth, classes=["a", "b"])
    assert (m.map, m.map_50, m.map_75) == (1.0, 1.0, 1.0)
    assert m.ap == {"a": 1.0, "b": 1.0} and m.ap_50 == {"a": 1.0, "b": 1.0}
    assert np.allclose(m.precision["b"], 1.0) and len(m.recall_levels) == 101


def test_results_that_name_their_classes_are_matched_by_name_not_by_index():
    # a detector whose classes are in another order than the data's: its label 0 is "b"
    truth = [one([[0, 0, 10, 10], [20, 20, 40, 30]], [0, 1]), one([[5, 5, 25, 25]], [1])]
    detector_classes = ["b", "a", "extra"]
    found = []
    for t in truth:
        names = [["a", "b"][int(k)] for k in t["labels"]]
        found.append({"boxes": t["boxes"], "scores": torch.full((len(names),), 0.9),
                      "labels": torch.tensor([detector_classes.index(n) for n in names]),
                      "names": names})  # fmt: skip
    found[1]["boxes"] = torch.cat([found[1]["boxes"], torch.tensor([[50.0, 50, 60, 60]])])
    found[1]["scores"] = torch.tensor([0.9, 0.5])
    found[1]["labels"] = torch.tensor([0, 2])
    found[1]["names"] = ["b", "extra"]  # a class the ground truth does not have
    m = evaluate_detection(found, truth, classes=["a", "b"])
    assert (m.map, m.map_50) == (1.0, 1.0) and m.ap["a"] == 1.0 and m.ap["b"] == 1.0
    assert math.isnan(m.ap["extra"])  # no truth: not scored, and no effect on the mean
    with pytest.raises(DataError, match="2 labels but 1 names"):
        evaluate_detection([{**found[0], "names": ["a"]}], truth[:1], classes=["a", "b"])


def test_a_shifted_box_counts_at_the_iou_thresholds_it_passes():
    truth_box, shifted = [10, 10, 30, 30], [12, 11, 32, 31]
    overlap = iou(truth_box, shifted)  # 18 * 19 / (400 + 400 - 342) = 0.7467
    assert 0.7 < overlap < 0.75
    m = evaluate_detection([one([shifted], [0], [0.9])], [one([truth_box], [0])])
    passed = THRESHOLDS[overlap + 1e-9 >= THRESHOLDS]  # 0.5, ..., 0.7: five of ten
    assert m.map_50 == pytest.approx(1.0) and m.map_75 == pytest.approx(0.0)
    assert m.map == pytest.approx(len(passed) / 10)


def test_ranked_hits_and_misses_give_the_interpolated_ap_computed_by_hand():
    # two objects; detections by score: hit, false positive (IoU 0.36 with object 2), hit
    truth = [one([[0, 0, 10, 10], [50, 50, 70, 70]], [0, 0])]
    found = [one([[0, 0, 10, 10], [54, 54, 74, 74], [50, 50, 70, 71]], [0, 0, 0],
                 [0.9, 0.8, 0.7])]  # fmt: skip
    assert iou([50, 50, 70, 70], [54, 54, 74, 74]) < 0.5  # 256 / 544
    overlap = iou([50, 50, 70, 70], [50, 50, 70, 71])  # 400 / 420 = 0.952
    m = evaluate_detection(found, truth, classes=["object"])
    expected_50 = interpolated_ap([True, False, True], 2)  # (51 * 1 + 50 * 2/3) / 101
    assert expected_50 == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert m.map_50 == pytest.approx(expected_50, abs=1e-6)
    # at each IoU threshold t, the third detection hits only while t <= its IoU
    per_threshold = [interpolated_ap([True, False, t <= overlap], 2) for t in THRESHOLDS]
    assert m.map == pytest.approx(np.mean(per_threshold), abs=1e-6)
    curve = m.precision["object"]
    assert np.allclose(curve[:51], 1.0) and np.allclose(curve[51:], 2 / 3)


def test_classes_are_scored_apart_and_a_class_without_truth_is_nan():
    truth = [one([[0, 0, 10, 10]], [0]), one([[0, 0, 10, 10]], [1])]
    found = [one([[0, 0, 10, 10]], [0], [0.9]), one([[0, 0, 10, 10]], [0], [0.9])]
    m = evaluate_detection(found, truth, classes=["a", "b", "c"])
    assert m.ap_50["a"] == pytest.approx(interpolated_ap([True, False], 1))  # 1.0
    assert m.ap_50["b"] == 0.0 and math.isnan(m.ap_50["c"])
    assert m.map_50 == pytest.approx(0.5)  # mean over the classes with ground truth


def test_ground_truth_from_a_datastore_and_bad_input_named():
    store = BoxLabelDatastore([[[0, 0, 10, 10]]], [["cat"]])
    m = evaluate_detection([one([[0, 0, 10, 10]], [0], [0.5])], store)
    assert m.classes == ["cat"] and m.map == 1.0
    with pytest.raises(DataError, match="1 results but 2 ground-truth images"):
        evaluate_detection([one([[0, 0, 1, 1]], [0], [0.5])], [one([[0, 0, 1, 1]], [0])] * 2)
    with pytest.raises(
        DataError, match=r"result 0 must be a dict with \['boxes', 'scores', 'labels'\]"
    ):
        evaluate_detection([one([[0, 0, 1, 1]], [0])], [one([[0, 0, 1, 1]], [0])])
    with pytest.raises(DataError, match="result 0 has labels \\[3\\], but there are 1 classes"):
        evaluate_detection([one([[0, 0, 1, 1]], [3], [0.5])], store)


def test_box_overlay_draws_each_box_in_its_class_colour(tmp_path):
    image = torch.zeros(3, 32, 32)
    picture = box_overlay(image, torch.tensor([[4.0, 4.0, 20.0, 16.0]]), ["a"], classes=["a", "b"])
    assert picture.dtype == torch.uint8
    edge = picture[:, 4, 10]  # top edge of the box, away from the label text
    assert edge.sum() > 0 and picture[:, 28, 28].sum() == 0
    m = evaluate_detection([one([[0, 0, 9, 9]], [0], [1.0])], [one([[0, 0, 9, 9]], [0])])
    assert m.plot_precision_recall(tmp_path / "pr.png").stat().st_size > 1000
