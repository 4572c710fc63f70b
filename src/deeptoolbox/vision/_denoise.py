"""Image denoising: a DnCNN-style residual denoiser as a toolbox Network (MATLAB's
``denoisingNetwork``), noisy/clean pairs made on the fly from any image datastore (MATLAB's
``denoisingImageDatastore``), ``denoise_image`` and PSNR / SSIM (torchmetrics)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from deeptoolbox.data._array import ArrayDatastore
from deeptoolbox.data._base import Datastore
from deeptoolbox.errors import DataError, OptionError
from deeptoolbox.inference import predict
from deeptoolbox.layers import _activation, _combine, _conv, _input, _norm
from deeptoolbox.layers._base import check_positive_int
from deeptoolbox.network._network import Network
from deeptoolbox.vision._unit import integer_max, unit_images

__all__ = [
    "dncnn",
    "DenoisingImageDatastore",
    "denoise_image",
    "psnr",
    "ssim",
    "DenoisingMetrics",
    "evaluate_denoising",
]


def dncnn(
    channels: int = 1,
    *,
    depth: int = 17,
    filters: int = 64,
    name: str = "dncnn",
) -> Network:
    """A DnCNN residual denoiser (Zhang et al. 2017; MATLAB's ``denoisingNetwork("DnCNN")``)
    as a toolbox Network, freshly initialized, for images of any size.

    ``depth`` 3x3 convolutions with ``padding="same"``: the first with a ReLU, the middle
    ones with batch normalization and ReLU, the last (``"residual"``) giving ``channels``
    maps, the negative of the estimated noise. An addition layer adds it to the input, so
    the network outputs the clean image itself (residual learning): train it with "mse" on
    ``(noisy, clean)`` pairs, e.g. a :class:`DenoisingImageDatastore`. The input layer
    takes (N, ``channels``, H, W) batches of any H and W.

    Example:
        >>> import torch
        >>> net = dncnn(1, depth=5, filters=16)
        >>> net(torch.rand(2, 1, 24, 20)).shape
        torch.Size([2, 1, 24, 20])
    """
    check_positive_int("dncnn", "channels", channels, "dncnn(3)")
    check_positive_int("dncnn", "filters", filters, "filters=64")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 2:
        raise OptionError(
            f"dncnn: `depth` must be an int >= 2 (convolutions). Received: depth={depth!r}."
        )
    net = Network(name=name)
    with net.editing():
        net.add_layers(_input.TensorInput((channels, None, None), name="input"))
        layers: list = [_conv.Conv2d(filters, 3, padding="same", weights_initializer="he", name="conv1"),
                        _activation.ReLU(name="relu1")]  # fmt: skip
        for index in range(2, depth):
            layers += [
                _conv.Conv2d(filters, 3, padding="same", bias=False, weights_initializer="he",
                             name=f"conv{index}"),
                _norm.BatchNorm(name=f"bn{index}"),
                _activation.ReLU(name=f"relu{index}"),
            ]  # fmt: skip
        layers.append(_conv.Conv2d(channels, 3, padding="same", name="residual"))
        layers.append(_combine.Addition(name="denoised"))
        net.add_layers(layers).connect("input", "conv1").connect("input", "denoised/in2")
    net.initialize()
    with torch.no_grad():  # start near the identity: a small residual
        net.layer("residual").weight.mul_(0.1)
    return net


def _noise_range(noise_std: Any) -> tuple[float, float]:
    pair = (noise_std, noise_std) if isinstance(noise_std, int | float) else noise_std
    pair = tuple(pair) if isinstance(pair, Sequence) and not isinstance(pair, str) else ()
    ok = len(pair) == 2 and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in pair
    )
    if not ok or not 0 <= pair[0] <= pair[1] <= 1:
        raise OptionError(
            "DenoisingImageDatastore: `noise_std` must be a standard deviation s or a (min, max) "
            "range of them (each observation draws one), with 0 <= min <= max <= 1 for images "
            f"in [0, 1]. Received: noise_std={noise_std!r}. Example: noise_std=(0.05, 0.2)."
        )
    return float(pair[0]), float(pair[1])


class DenoisingImageDatastore(Datastore):
    """Noisy/clean image pairs made on the fly from any image datastore (MATLAB's
    ``denoisingImageDatastore``): ``ds[i]`` is ``(noisy, clean)``, float32 (C, H, W).

    Each observation adds Gaussian noise of a standard deviation drawn from ``noise_std``
    to the image (or to a random ``patch_size`` patch of it). While ``ds.training`` is True
    every read draws new noise (and a new patch) from torch's global generator, so each
    epoch sees new pairs; in eval mode (``ds.eval()``, and in ``predict``/``evaluate``) the
    noise and the centre patch depend only on ``seed`` and the observation, so a held-out
    set gives the same pairs every time. The noisy image is not clipped to [0, 1].

    Args:
        images: an ImageDatastore (labels are dropped), any Dataset of (C, H, W) images, or
            an (N, C, H, W) array.
        noise_std: a standard deviation, or a (min, max) range.
        patch_size: an int or (H, W): crop patches of that size (None: whole images).
        patches_per_image: observations made from each image (MATLAB's ``PatchesPerImage``).
        seed: the seed of the eval-mode noise.

    Example:
        >>> import torch
        >>> ds = DenoisingImageDatastore(torch.rand(4, 1, 32, 32), noise_std=0.1,
        ...                              patch_size=16, patches_per_image=2).eval()
        >>> noisy, clean = ds[0]
        >>> len(ds), tuple(noisy.shape), bool(torch.equal(ds[0][0], noisy))
        (8, (1, 16, 16), True)
    """

    def __init__(
        self,
        images: Dataset | np.ndarray | torch.Tensor,
        *,
        noise_std: float | Sequence[float] = (0.05, 0.2),
        patch_size: int | Sequence[int] | None = None,
        patches_per_image: int = 1,
        seed: int = 0,
    ) -> None:
        if isinstance(images, np.ndarray | torch.Tensor):
            if images.ndim != 4:
                raise OptionError(
                    "DenoisingImageDatastore: an array of `images` must be (N, C, H, W). "
                    f"Received shape {tuple(images.shape)}."
                )
            images = ArrayDatastore(unit_images(images))  # uint8 / uint16 scaled to [0, 1]
        if not isinstance(images, Dataset):
            raise OptionError(
                "DenoisingImageDatastore: `images` must be an image datastore, a Dataset or an "
                f"(N, C, H, W) array. Received: {type(images).__name__}."
            )
        self.images = images
        self.noise_std = _noise_range(noise_std)
        size = (patch_size, patch_size) if isinstance(patch_size, int) else patch_size
        if size is not None and (
            len(size) != 2
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size)
        ):
            raise OptionError(
                "DenoisingImageDatastore: `patch_size` must be a positive int or (H, W). "
                f"Received: patch_size={patch_size!r}."
            )
        self.patch_size = None if size is None else tuple(size)
        self.patches_per_image = check_positive_int(
            "DenoisingImageDatastore", "patches_per_image", patches_per_image, "patches_per_image=8"
        )
        self.seed = int(seed)
        self._init_view()

    def _count(self) -> int:
        return len(self.images) * self.patches_per_image  # type: ignore[arg-type]

    def train(self, mode: bool = True) -> Datastore:
        """Set the training mode here and in the image datastore; returns ``self``.

        Example:
            >>> import torch
            >>> DenoisingImageDatastore(torch.rand(1, 1, 4, 4)).eval().training
            False
        """
        if isinstance(self.images, Datastore):
            self.images.train(mode)
        return super().train(mode)

    def _load(self, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = j // self.patches_per_image
        image = self.images[index]
        image = torch.as_tensor(image[0] if isinstance(image, tuple | list) else image).float()
        if image.dim() != 3:
            raise DataError(
                f"DenoisingImageDatastore: image {index} must be (C, H, W). Received shape "
                f"{tuple(image.shape)}."
            )
        generator = (
            None if self.training else torch.Generator().manual_seed(self.seed * 1_000_003 + j)
        )
        clean = self._patch(image, index, generator)
        low, high = self.noise_std
        std = low + (high - low) * float(torch.rand((), generator=generator))
        noisy = clean + std * torch.randn(clean.shape, generator=generator)
        return noisy, clean

    def _patch(self, image: torch.Tensor, index: int, generator: Any) -> torch.Tensor:
        if self.patch_size is None:
            return image
        (ph, pw), (h, w) = self.patch_size, image.shape[-2:]
        if ph > h or pw > w:
            raise DataError(
                f"DenoisingImageDatastore: image {index} is {h}x{w}, smaller than "
                f"patch_size={self.patch_size}. Lower `patch_size` or resize the images."
            )
        top = int(torch.randint(0, h - ph + 1, (), generator=generator))
        left = int(torch.randint(0, w - pw + 1, (), generator=generator))
        return image[:, top : top + ph, left : left + pw]


def denoise_image(
    net: torch.nn.Module, images: Any, *, batch_size: int = 16, device: str = "auto"
) -> torch.Tensor:
    """Denoise images with a trained denoiser (MATLAB's ``denoiseImage``), clipped to [0, 1].

    ``images`` is one image (C, H, W) or (H, W) (a 1-channel network), or a batch
    (N, C, H, W), as a tensor or array; the result has the same size. uint8 / uint16 images
    are scaled to [0, 1] for the network and the result is returned in their type and range
    (as MATLAB returns the input's class); float images are taken to be in [0, 1].

    Example:
        >>> import torch
        >>> denoise_image(dncnn(1, depth=3, filters=8), torch.rand(20, 30)).shape
        torch.Size([20, 30])
    """
    peak = integer_max(images)
    x = unit_images(images)
    if x.dim() not in (2, 3, 4):
        raise DataError(
            f"denoise_image: `images` must be (H, W), (C, H, W) or (N, C, H, W). Received shape "
            f"{tuple(x.shape)}."
        )
    batch = x.reshape(
        (1, 1, *x.shape) if x.dim() == 2 else (1, *x.shape) if x.dim() == 3 else x.shape
    )
    out = predict(net, batch, batch_size=batch_size, device=device).clamp(0, 1).reshape(x.shape)
    if peak is None:
        return out
    return (out * peak).round().to(torch.uint8 if peak == 255 else torch.uint16)


def _pair(images: Any, references: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Both on the [0, 1] scale: integer images (uint8, uint16) are divided by their type's
    maximum, so ``data_range=1`` is right for them too."""
    if (integer_max(images) is None) != (integer_max(references) is None):
        raise DataError(
            f"{what}: `images` and `references` must both be integer images (uint8/uint16) or "
            f"both float images in [0, 1]. Received {getattr(images, 'dtype', type(images))} "
            f"and {getattr(references, 'dtype', type(references))}."
        )
    a, b = unit_images(images), unit_images(references)
    if a.shape != b.shape or a.dim() not in (3, 4):
        raise DataError(
            f"{what}: `images` and `references` must be (N, C, H, W) (or (C, H, W)) of the same "
            f"size. Received {tuple(a.shape)} and {tuple(b.shape)}."
        )
    return (a[None], b[None]) if a.dim() == 3 else (a, b)


def psnr(images: Any, references: Any, *, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, the mean over images (torchmetrics; MATLAB's ``psnr``).

    Images are on the [0, 1] scale (``data_range=1``); uint8 / uint16 images are scaled by
    their type's maximum first, so their PSNR is MATLAB's with peak 255 / 65535.

    Example:
        >>> import torch
        >>> round(psnr(torch.full((1, 1, 4, 4), 0.1), torch.zeros(1, 1, 4, 4)), 2)  # 10 log10(1/0.01)
        20.0
    """
    from torchmetrics.functional.image import peak_signal_noise_ratio

    a, b = _pair(images, references, "psnr")
    values = peak_signal_noise_ratio(a, b, data_range=data_range, reduction="none", dim=(1, 2, 3))
    return float(values.mean())


def ssim(images: Any, references: Any, *, data_range: float = 1.0) -> float:
    """Structural similarity index as MATLAB's ``ssim`` computes it: local statistics under
    a Gaussian window (sigma 1.5, 11 x 11) with the image edges replicated, C1 = (0.01 L)^2,
    C2 = (0.03 L)^2, the SSIM map averaged over every pixel and channel of an image, then
    the mean over images.

    Example:
        >>> import torch
        >>> x = torch.rand(2, 1, 16, 16)
        >>> round(ssim(x, x), 4)
        1.0
    """
    a, b = _pair(images, references, "ssim")
    if isinstance(data_range, bool) or not isinstance(data_range, int | float) or data_range <= 0:
        raise OptionError(f"ssim: `data_range` must be a number > 0. Received: {data_range!r}.")
    a, b = a.double(), b.double()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mean_a, mean_b = _gaussian_blur(a), _gaussian_blur(b)
    var_a = _gaussian_blur(a * a) - mean_a**2
    var_b = _gaussian_blur(b * b) - mean_b**2
    covariance = _gaussian_blur(a * b) - mean_a * mean_b
    index = ((2 * mean_a * mean_b + c1) * (2 * covariance + c2)) / (
        (mean_a**2 + mean_b**2 + c1) * (var_a + var_b + c2)
    )
    return float(index.mean(dim=(1, 2, 3)).mean())


def _gaussian_blur(x: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """Separable Gaussian filter of each channel, 2 ceil(3 sigma) + 1 taps, edges replicated
    (MATLAB's ``imgaussfilt`` defaults)."""
    radius = math.ceil(3 * sigma)
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    n, c, h, w = x.shape
    flat = torch.nn.functional.pad(x.reshape(n * c, 1, h, w), (radius,) * 4, mode="replicate")
    flat = torch.nn.functional.conv2d(flat, kernel.view(1, 1, 1, -1))
    flat = torch.nn.functional.conv2d(flat, kernel.view(1, 1, -1, 1))
    return flat.reshape(n, c, h, w)


@dataclass(frozen=True)
class DenoisingMetrics:
    """PSNR (dB) and SSIM of the noisy input and of the denoised output against the clean
    images, built by :func:`evaluate_denoising`; ``psnr_gain`` is their PSNR difference.

    Example:
        >>> DenoisingMetrics(20.0, 26.5, 0.5, 0.8).psnr_gain
        6.5
    """

    psnr_noisy: float
    psnr_denoised: float
    ssim_noisy: float
    ssim_denoised: float

    @property
    def psnr_gain(self) -> float:
        """The PSNR the denoiser gains over its noisy input, in dB."""
        return self.psnr_denoised - self.psnr_noisy


def evaluate_denoising(
    net: torch.nn.Module, data: Any, *, batch_size: int = 16
) -> DenoisingMetrics:
    """PSNR and SSIM before and after denoising: ``data`` is ``(noisy, clean)`` arrays or a
    Dataset of such pairs (a :class:`DenoisingImageDatastore` is read in eval mode, so its
    noise is reproducible). The noisy images are scored clipped to [0, 1], as displayed.

    Example:
        >>> import torch
        >>> clean = torch.full((2, 1, 16, 16), 0.5)
        >>> m = evaluate_denoising(dncnn(1, depth=3, filters=4), (clean + 0.1, clean))
        >>> round(m.psnr_noisy, 1)
        20.0
    """
    if isinstance(data, Dataset):
        was = getattr(data, "training", None)
        if was is not None:
            data.eval()  # type: ignore[attr-defined]
        try:
            pairs = [data[i] for i in range(len(data))]  # type: ignore[arg-type]
        finally:
            if was:
                data.train(was)  # type: ignore[attr-defined]
        noisy, clean = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
    elif isinstance(data, tuple) and len(data) == 2:
        noisy, clean = _pair(data[0], data[1], "evaluate_denoising")
    else:
        raise OptionError(
            "evaluate_denoising: `data` must be (noisy, clean) arrays or a Dataset of pairs. "
            f"Received: {type(data).__name__}."
        )
    denoised = denoise_image(net, noisy, batch_size=batch_size)
    shown = noisy.clamp(0, 1)
    return DenoisingMetrics(
        psnr(shown, clean), psnr(denoised, clean), ssim(shown, clean), ssim(denoised, clean)
    )
