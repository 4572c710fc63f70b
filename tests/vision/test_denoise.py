"""DnCNN denoiser, noisy/clean pairs on the fly, PSNR and SSIM against direct formulas."""

import numpy as np
import pytest
import torch

from deeptoolbox import datasets
from deeptoolbox.errors import DataError, OptionError
from deeptoolbox.network import analyze, load, save
from deeptoolbox.training import TrainingOptions, train
from deeptoolbox.vision import (
    DenoisingImageDatastore,
    denoise_image,
    dncnn,
    evaluate_denoising,
    psnr,
    ssim,
)


def test_dncnn_is_a_residual_network_of_any_image_size(tmp_path):
    net = dncnn(3, depth=4, filters=8).eval()
    assert analyze(net).ok and len([n for n in net.layer_names if n.startswith("conv")]) == 3
    assert net.sources("denoised") == {"in1": "residual", "in2": "input"}
    x = torch.rand(2, 3, 12, 20)
    with torch.no_grad():
        residual = net.layer("residual").weight.zero_(), net.layer("residual").bias.zero_()
    assert residual and torch.allclose(net(x), x)  # a zero residual passes the image through
    save(net, tmp_path / "dncnn")
    assert torch.allclose(load(tmp_path / "dncnn").eval()(x), x)
    with pytest.raises(OptionError, match="depth"):
        dncnn(depth=1)


def test_pairs_draw_new_noise_in_training_and_fixed_noise_in_eval():
    images = torch.full((3, 1, 16, 16), 0.5)
    ds = DenoisingImageDatastore(images, noise_std=0.1, patch_size=8, patches_per_image=4, seed=3)
    assert len(ds) == 12
    noisy, clean = ds[5]
    assert noisy.shape == clean.shape == (1, 8, 8) and not torch.equal(ds[5][0], noisy)
    ds.eval()
    assert torch.equal(ds[5][0], ds[5][0]) and not torch.equal(ds[5][0], ds[6][0])
    big = DenoisingImageDatastore(torch.full((1, 1, 128, 128), 0.5), noise_std=0.1).eval()
    assert float((big[0][0] - big[0][1]).std()) == pytest.approx(0.1, rel=0.05)
    with pytest.raises(OptionError, match="noise_std"):
        DenoisingImageDatastore(images, noise_std=(0.3, 0.1))
    with pytest.raises(DataError, match="smaller than patch_size"):
        DenoisingImageDatastore(images, patch_size=32)[0]


def _matlab_ssim(images, references, data_range=1.0):
    """MATLAB's ssim written out with scipy: imgaussfilt (sigma 1.5, 11 taps, 'replicate'
    edges = scipy's 'nearest') per channel, the map's mean per image, the mean over images."""
    from scipy.ndimage import gaussian_filter

    def blur(x):
        return gaussian_filter(x.astype(np.float64), 1.5, mode="nearest", truncate=5 / 1.5)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    scores = []
    for a, b in zip(images, references, strict=True):
        maps = []
        for x, y in zip(a, b, strict=True):
            mx, my = blur(x), blur(y)
            vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
            maps.append((2 * mx * my + c1) * (2 * cxy + c2)
                        / ((mx**2 + my**2 + c1) * (vx + vy + c2)))  # fmt: skip
        scores.append(np.mean(maps))
    return float(np.mean(scores))


def test_psnr_and_ssim_agree_with_direct_computations():
    rng = np.random.default_rng(0)
    clean = rng.random((2, 1, 24, 24)).astype(np.float32)
    noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
    mse = ((noisy - clean) ** 2).reshape(2, -1).mean(1)
    assert psnr(noisy, clean) == pytest.approx(np.mean(10 * np.log10(1 / mse)), rel=1e-5)
    from skimage.metrics import structural_similarity

    reference = np.mean([structural_similarity(noisy[i, 0], clean[i, 0], data_range=1.0,
                                               gaussian_weights=True, sigma=1.5,
                                               use_sample_covariance=False) for i in range(2)])  # fmt: skip
    assert ssim(noisy, clean) == pytest.approx(reference, abs=0.02)
    assert ssim(noisy, clean) == pytest.approx(_matlab_ssim(noisy, clean), abs=1e-6)
    big = rng.random((1, 3, 16, 20)).astype(np.float32)
    assert ssim(big * 0.9, big) == pytest.approx(_matlab_ssim(big * 0.9, big), abs=1e-6)
    with pytest.raises(DataError, match="same size"):
        psnr(noisy, clean[:1])


def test_a_briefly_trained_dncnn_gains_psnr_on_held_out_images():
    data = datasets.shapes(48, image_size=24, noise=0.0, seed=0)
    gray = torch.as_tensor(data.images).mean(1, keepdim=True)
    pairs = DenoisingImageDatastore(gray[:40], noise_std=(0.05, 0.15), patch_size=16,
                                    patches_per_image=4)  # fmt: skip
    held_out = DenoisingImageDatastore(gray[40:], noise_std=0.1, seed=1)
    net = dncnn(1, depth=5, filters=16)
    before = evaluate_denoising(net, held_out)
    options = TrainingOptions(solver="adam", initial_learn_rate=2e-3, max_epochs=6,
                              mini_batch_size=16, verbose=False, seed=0)  # fmt: skip
    train(net, pairs, "mse", options)
    after = evaluate_denoising(net, held_out)
    assert before.psnr_noisy == pytest.approx(after.psnr_noisy)  # the same held-out noise
    assert after.psnr_gain > 2.0 and after.ssim_denoised > after.ssim_noisy
    one = denoise_image(net, held_out.eval()[0][0][0])
    assert one.shape == (24, 24) and float(one.min()) >= 0
