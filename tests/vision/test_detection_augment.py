"""DetectionAugmenter keeps boxes on their objects: after the random transform, the box of
each object's transformed mask equals the transformed box (clipped at the image edge);
objects pushed out of the image are dropped with their labels."""

import numpy as np
import pytest
import torch

from deeptoolbox import datasets
from deeptoolbox.errors import OptionError
from deeptoolbox.vision import DetectionAugmenter


def _instance_masks(mask: np.ndarray, count: int) -> torch.Tensor:
    return torch.from_numpy(np.stack([mask == j + 1 for j in range(count)])).to(torch.uint8)


def _mask_box(mask: torch.Tensor) -> list[float]:
    rows, cols = torch.nonzero(mask, as_tuple=True)
    return [float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1)]


@pytest.mark.parametrize("options, tolerance", [
    ({"flip": "both"}, 0.0),                                   # exact
    ({"crop": (40, 36)}, 0.0),                                 # exact, boxes clipped at the edge
    ({"scale": (0.7, 1.4), "translation": 0.15}, 1.5),        # resampled mask: a pixel or so
    ({"flip": "horizontal", "scale": (0.8, 1.2), "color_jitter": 0.3}, 1.5),
])  # fmt: skip
def test_boxes_drawn_from_transformed_masks_match_the_transformed_boxes(options, tolerance):
    data = datasets.detection_shapes(10, image_size=48, objects=(2, 4), seed=5)
    augmenter = DetectionAugmenter(**options, min_size=2)
    torch.manual_seed(0)
    checked = 0
    for i in range(10):
        count = len(data.boxes[i])
        target = {"boxes": torch.from_numpy(data.boxes[i]),
                  "labels": torch.arange(count), "masks": _instance_masks(data.masks[i], count)}  # fmt: skip
        image, out = augmenter(torch.from_numpy(data.images[i]), target)
        assert image.shape[-2:] == out["masks"].shape[-2:]
        assert len(out["boxes"]) == len(out["labels"]) == len(out["masks"])
        height, width = image.shape[-2:]
        for box, mask in zip(out["boxes"], out["masks"], strict=True):
            if mask.sum() < 4:  # an object cut to a sliver: its box is clipped, mask may vanish
                continue
            drawn = np.array(_mask_box(mask))
            at_edge = box[0] <= 0 or box[1] <= 0 or box[2] >= width or box[3] >= height
            if at_edge:  # clipped: the box of the whole object, cut, still holds what is left
                assert (drawn[:2] >= box[:2].numpy() - tolerance).all(), (options, i)
                assert (drawn[2:] <= box[2:].numpy() + tolerance).all(), (options, i)
                continue
            assert np.allclose(box.tolist(), drawn, atol=tolerance), (options, i)
            checked += 1
    assert checked >= 10  # objects left whole, checked exactly


def test_objects_pushed_out_of_the_image_are_dropped_with_their_labels():
    target = {"boxes": torch.tensor([[1.0, 1.0, 5.0, 5.0], [20.0, 20.0, 30.0, 30.0]]),
              "labels": torch.tensor([7, 3])}  # fmt: skip
    augmenter = DetectionAugmenter(crop=(16, 16))
    torch.manual_seed(0)
    for _ in range(20):
        _, out = augmenter(torch.rand(3, 32, 32), target)
        assert len(out["boxes"]) == len(out["labels"])
        assert (out["boxes"][:, 2:] <= 16).all() and (out["boxes"][:, :2] >= 0).all()
        widths = out["boxes"][:, 2] - out["boxes"][:, 0]
        assert (widths >= 1).all()
    kept = {len(augmenter(torch.rand(3, 32, 32), target)[1]["labels"]) for _ in range(30)}
    assert 0 in kept or 1 in kept  # the crop leaves out at least one object sometimes


def test_bad_options_name_the_option():
    with pytest.raises(OptionError, match="translation_pixels.*use `translation` fractions"):
        DetectionAugmenter(translation_pixels=3)
    with pytest.raises(OptionError, match="`scale` must be a \\(min, max\\) pair"):
        DetectionAugmenter(scale=2)
    with pytest.raises(OptionError, match="min_size"):
        DetectionAugmenter(min_size=-1)
