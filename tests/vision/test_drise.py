"""D-RISE: the saliency of a detection peaks on the object the detector looks at, with a
detector whose dependence on the pixels is known by construction, and with a trained one."""

import pytest
import torch

from deeptoolbox.errors import OptionError
from deeptoolbox.vision import ObjectDetector, drise
from deeptoolbox.vision._drise import random_masks

OBJECT = [20, 8, 32, 20]  # x_min, y_min, x_max, y_max


class LooksAtTheObject(torch.nn.Module):
    """Finds class 1 at OBJECT with a score that rises steeply (a sigmoid, as a trained
    detector's) with the light left on the object, and class 0 at a fixed box in the corner
    whose score reads the opposite corner."""

    classes = ["decoy", "object"]

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, images):
        x0, y0, x1, y1 = OBJECT
        out = []
        for image in images:
            on_object = torch.sigmoid(12 * (image[:, y0:y1, x0:x1].mean() / 0.8 - 0.5))
            corner = torch.sigmoid(12 * (image[:, 36:, 36:].mean() / 0.8 - 0.5))
            out.append({"boxes": torch.tensor([OBJECT, [0, 0, 10, 10]], dtype=torch.float32),
                        "labels": torch.tensor([1, 0]),
                        "scores": torch.stack([on_object, corner]) * self.scale})  # fmt: skip
        return out


def _image():
    image = torch.full((3, 48, 48), 0.8)  # every pixel lit: only the masks change the scores
    return image


def test_saliency_peaks_on_the_object_the_detection_depends_on():
    saliency = drise(LooksAtTheObject(), _image(), OBJECT, "object", num_masks=2000, seed=0)
    assert saliency.shape == (48, 48)
    x0, y0, x1, y1 = OBJECT
    inside = saliency[y0:y1, x0:x1].mean()
    outside = torch.cat([saliency[:, :16].flatten(), saliency[32:, :].flatten()])
    # away from the object the map is the mean weight plus noise; on it, clearly more
    assert inside - outside.mean() > 4 * outside.std()
    peak = divmod(int(saliency.argmax()), 48)
    assert y0 - 3 <= peak[0] < y1 + 3 and x0 - 3 <= peak[1] < x1 + 3
    # the decoy's corner drives only the decoy: explaining it moves the peak there
    decoy = drise(LooksAtTheObject(), _image(), [0, 0, 10, 10], 0, num_masks=2000, seed=0)
    assert decoy[36:, 36:].mean() - decoy[y0:y1, x0:x1].mean() > 4 * decoy[:, :16].std()


def test_masks_are_reproducible_and_keep_the_probability_asked_for():
    a = random_masks(200, (40, 30), probability=0.3, generator=torch.Generator().manual_seed(1))
    b = random_masks(200, (40, 30), probability=0.3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (200, 40, 30)
    assert a.mean().item() == pytest.approx(0.3, abs=0.03)


def test_drise_with_an_object_detector_and_bad_arguments():
    detector = ObjectDetector(["a", "b"], input_size=32)
    saliency = drise(detector, torch.rand(3, 32, 32), [4, 4, 20, 20], "b", num_masks=8)
    assert saliency.shape == (32, 32) and torch.isfinite(saliency).all()
    assert detector.model.score_thresh == 0.05  # restored
    with pytest.raises(OptionError, match="not trained on class\\(es\\) \\['zebra'\\]"):
        drise(detector, torch.rand(3, 32, 32), [4, 4, 20, 20], "zebra")
    with pytest.raises(OptionError, match="`target_box` must be"):
        drise(detector, torch.rand(3, 32, 32), [4, 4, 2, 20], 0)
