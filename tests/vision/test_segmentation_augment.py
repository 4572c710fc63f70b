"""SegmentationAugmenter moves the label map with the image, pixel for pixel."""

import pytest
import torch

from deeptoolbox import datasets
from deeptoolbox.errors import OptionError
from deeptoolbox.vision import IGNORE_INDEX, SegmentationAugmenter


def _encoded(masks: torch.Tensor, k: int) -> torch.Tensor:
    """An image whose channel c is 1 exactly where the mask is class c."""
    return torch.stack([(masks == c).float() for c in range(k)])


@pytest.mark.parametrize("seed", range(4))
def test_flips_shifts_and_crops_move_masks_exactly_with_images(seed):
    torch.manual_seed(seed)
    mask = torch.as_tensor(datasets.shapes(1, image_size=24, seed=seed).masks[0])
    aug = SegmentationAugmenter(flip="both", translation_pixels=(4, 3), crop=(18, 20), fill=0)
    image, labels = aug(_encoded(mask, 4), mask)
    assert image.shape == (4, 18, 20) and labels.shape == (18, 20) and labels.dtype == torch.int64
    assert torch.equal(image.argmax(0), labels)  # every pixel: the image says the same class


def test_rotation_and_zoom_agree_except_on_interpolated_edges():
    torch.manual_seed(0)
    data = datasets.shapes(8, image_size=32, seed=3)
    aug = SegmentationAugmenter(rotation=40, scale=(0.7, 1.3), shear=10)
    changed = 0
    for mask in torch.as_tensor(data.masks):
        image, labels = aug(_encoded(mask, 4), mask)
        inside = labels != IGNORE_INDEX
        agree = (image.argmax(0) == labels)[inside].float().mean()
        assert agree > 0.97
        assert set(labels.unique().tolist()) <= {IGNORE_INDEX, 0, 1, 2, 3}  # labels stay labels
        changed += int(not torch.equal(labels, mask))
    assert changed == 8


def test_colour_jitter_leaves_labels_alone_and_options_are_checked():
    mask = torch.ones(8, 8, dtype=torch.int64)
    _, labels = SegmentationAugmenter(color_jitter=0.5)(torch.rand(3, 8, 8), mask)
    assert torch.equal(labels, mask)
    with pytest.raises(OptionError, match="rotation"):
        SegmentationAugmenter(rotation="a lot")
    with pytest.raises(OptionError, match="fill"):
        SegmentationAugmenter(fill=0.5)
    with pytest.raises(OptionError, match=r"unknown option\(s\) extra, rotaton\. .*rotation"):
        SegmentationAugmenter(rotaton=10, extra=[])
    assert "flip='horizontal'" in repr(SegmentationAugmenter(flip="horizontal"))
