"""uint8 / uint16 images in the vision functions: scaled to [0, 1] as ImageDatastore reads
files (a new user's uint8 arrays gave silently wrong PSNR, noise and outputs before)."""

import numpy as np
import pytest
import torch

from deeptoolbox.data import ImageAugmenter
from deeptoolbox.errors import DataError, OptionError
from deeptoolbox.vision import (
    DenoisingImageDatastore,
    PixelLabelImageDatastore,
    denoise_image,
    dncnn,
    label_overlay,
    psnr,
    ssim,
)


def test_psnr_of_uint8_images_uses_the_peak_255_like_matlab():
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, (2, 1, 8, 8)).astype(np.uint8)
    noisy = np.clip(clean.astype(int) + rng.integers(-20, 21, clean.shape), 0, 255).astype(np.uint8)
    mse = ((noisy.astype(float) - clean) ** 2).reshape(2, -1).mean(1)
    expected = float(np.mean(10 * np.log10(255**2 / mse)))
    assert psnr(noisy, clean) == pytest.approx(expected, abs=1e-4)
    assert psnr(noisy, clean) == pytest.approx(psnr(noisy / 255.0, clean / 255.0), abs=1e-4)
    assert ssim(noisy, clean) == pytest.approx(ssim(noisy / 255.0, clean / 255.0), abs=1e-5)
    with pytest.raises(DataError, match="both be integer images"):
        psnr(noisy, clean / 255.0)


def test_denoise_image_returns_uint8_for_uint8_input():
    torch.manual_seed(0)
    net = dncnn(1, depth=3, filters=4)
    image = np.random.default_rng(1).integers(0, 256, (12, 10)).astype(np.uint8)
    out = denoise_image(net, image)
    assert out.dtype == torch.uint8 and out.shape == (12, 10)
    as_float = denoise_image(net, torch.as_tensor(image / 255.0, dtype=torch.float32))
    assert torch.equal(out, (as_float * 255).round().to(torch.uint8))


def test_uint8_arrays_in_the_datastores_are_scaled_to_unit_range():
    images = np.full((2, 1, 8, 8), 200, np.uint8)
    noisy, clean = DenoisingImageDatastore(images, noise_std=0.1, seed=0)[0]
    assert clean.max().item() == pytest.approx(200 / 255)
    assert (noisy - clean).std().item() == pytest.approx(0.1, abs=0.03)
    pairs = PixelLabelImageDatastore(images, np.zeros((2, 8, 8), np.int64))
    assert pairs[0][0].max().item() == pytest.approx(200 / 255)


def test_an_image_augmenter_is_refused_where_labels_must_move_with_the_image():
    images, labels = np.zeros((2, 1, 8, 8), np.float32), np.zeros((2, 8, 8), np.int64)
    with pytest.raises(OptionError, match="use a SegmentationAugmenter"):
        PixelLabelImageDatastore(images, labels, augmenter=ImageAugmenter(rotation=(-10, 10)))


def test_label_overlay_takes_matlab_colours_in_unit_range_and_refuses_unscaled_floats():
    labels = torch.tensor([[0, 1], [1, 0]])
    black = torch.zeros(3, 2, 2)
    matlab = label_overlay(black, labels, colors=[(0.0, 0.0, 0.0), (1.0, 0.0, 0.0)],
                           transparency=0)  # fmt: skip
    assert matlab[:, 0, 1].tolist() == [255, 0, 0]
    assert torch.equal(matlab, label_overlay(black, labels, colors=[(0, 0, 0), (255, 0, 0)],
                                             transparency=0))  # fmt: skip
    with pytest.raises(DataError, match=r"in \[0, 1\].*Divide 0..255 images by 255"):
        label_overlay(torch.full((3, 2, 2), 128.0), labels)
    with pytest.raises(OptionError, match="integers 0..255 or floats in"):
        label_overlay(black, labels, colors=[(0, 0, 0), (300, 0, 0)])


def test_unet_sizes_a_new_user_gets_wrong_are_explained():
    from deeptoolbox.vision import unet

    with pytest.raises(OptionError, match=r"channels first.*did you mean \(3, 16, 16\)"):
        unet((16, 16, 3), 2)
    with pytest.raises(OptionError, match="must be 2 or more"):
        unet((1, 16, 16), 1)


def test_evaluating_from_a_datastore_leaves_its_mode_as_it_was():
    from deeptoolbox.vision import evaluate_segmentation

    labels = np.zeros((2, 8, 8), np.int64)
    store = PixelLabelImageDatastore(np.zeros((2, 1, 8, 8), np.float32), labels)
    assert store.training
    evaluate_segmentation(torch.zeros(2, 8, 8, dtype=torch.long), store, num_classes=2)
    assert store.training


def test_evaluate_segmentation_takes_class_names_from_the_truth_datastore():
    from deeptoolbox.vision import evaluate_segmentation

    labels = np.zeros((1, 4, 4), np.int64)
    labels[0, :2] = 1
    store = PixelLabelImageDatastore(np.zeros((1, 1, 4, 4), np.float32), labels,
                                     classes=["sky", "road"])  # fmt: skip
    metrics = evaluate_segmentation(torch.as_tensor(labels), store)
    assert metrics.classes == ["sky", "road"]
    with pytest.raises(DataError, match="indices up to 1, so they have at least 2 classes"):
        evaluate_segmentation(torch.as_tensor(labels), labels, classes=["sky"])


def test_an_augmenter_fill_label_outside_the_classes_is_refused():
    from deeptoolbox.vision import SegmentationAugmenter

    images, labels = np.zeros((2, 1, 8, 8), np.float32), np.zeros((2, 8, 8), np.int64)
    with pytest.raises(OptionError, match=r"`fill` label 7 is not a class index of these 2"):
        PixelLabelImageDatastore(images, labels, classes=["a", "b"],
                                 augmenter=SegmentationAugmenter(rotation=(-5, 5), fill=7))  # fmt: skip
    ok = PixelLabelImageDatastore(images, labels, classes=["a", "b"],
                                  augmenter=SegmentationAugmenter(rotation=(-5, 5), fill=1))  # fmt: skip
    assert len(ok) == 2
