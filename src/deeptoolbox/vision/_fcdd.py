"""FCDD, fully convolutional data description (Liznerski et al. 2021; MATLAB's
``fcddAnomalyDetector``): a fully convolutional network, trained from scratch with
``train()``, whose output map is small on normal regions and large on anomalous ones. With
normal images only, it learns from synthetic anomalies ("confetti": random blobs and strokes
pasted on the normal images), as the FCDD paper does without real outliers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError
from deeptoolbox.network import Network
from deeptoolbox.training import TrainingOptions, train
from deeptoolbox.vision._anomaly import AnomalyDetector

__all__ = ["FCDDDetector", "fcdd_network", "fcdd_loss", "SyntheticAnomalies"]


def fcdd_network(channels: int = 3, *, filters: Sequence[int] = (32, 64, 128),
                 name: str = "fcdd") -> Network:  # fmt: skip
    """The fully convolutional FCDD network as a toolbox Network, freshly initialized: one
    block of 3x3 convolution, batch normalization and ReLU per entry of ``filters``, 2x2 max
    pooling between blocks, and a 1x1 convolution ``"scores"`` to one output map (at stride
    ``2 ** (len(filters) - 1)``). It takes (N, ``channels``, H, W) images of any size.

    Example:
        >>> import torch
        >>> fcdd_network(3, filters=(8, 16))(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 1, 16, 16])
    """
    filters = tuple(filters)
    if not filters or any(isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in filters):
        raise OptionError(
            f"fcdd_network: `filters` must be positive ints, one per block. Received: {filters!r}."
        )
    chain: list = [L.TensorInput((channels, None, None), name="input")]
    for index, width in enumerate(filters, 1):
        if index > 1:
            chain.append(L.MaxPool2d(2, name=f"pool{index - 1}"))
        chain += [L.Conv2d(width, 3, padding="same", bias=False, weights_initializer="he",
                           name=f"conv{index}"),
                  L.BatchNorm(name=f"bn{index}"), L.ReLU(name=f"relu{index}")]  # fmt: skip
    chain.append(L.Conv2d(1, 1, name="scores"))
    net = Network(chain, name=name)
    net.initialize()
    return net


def pseudo_huber(outputs: torch.Tensor) -> torch.Tensor:
    """FCDD's anomaly score of a network output z: sqrt(z^2 + 1) - 1 (>= 0)."""
    return torch.sqrt(outputs**2 + 1) - 1


def fcdd_loss(outputs: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """FCDD's pixel-wise loss: with A = sqrt(z^2 + 1) - 1 the score of output z, normal
    positions add A and anomalous ones -log(1 - exp(-A)), so normal scores go to 0 and
    anomalous ones up. ``masks`` (N, 1, H, W) in [0, 1] mark the anomalous pixels at the
    image size; each output position takes the fraction of its pixels that are anomalous.

    Example:
        >>> import torch
        >>> z = torch.zeros(1, 1, 2, 2)
        >>> float(fcdd_loss(z, torch.zeros(1, 1, 4, 4)))  # normal everywhere, scores 0
        0.0
    """
    scores = pseudo_huber(outputs)
    fraction = nn.functional.adaptive_avg_pool2d(masks.to(scores), scores.shape[-2:])
    anomalous = -torch.log((-torch.expm1(-scores)).clamp(min=1e-6))
    return ((1 - fraction) * scores + fraction * anomalous).mean()


class SyntheticAnomalies(Dataset):
    """Normal images, half of them (``anomaly_fraction``) with synthetic anomalies pasted
    on: ``ds[i]`` is ``(image, mask)`` with a float (1, H, W) mask of the pasted pixels.

    Each anomaly is one to three "confetti" pieces — filled ellipses or strokes (thick line
    segments) of a random colour and opacity — a generic stand-in for real defects, drawn
    anew on every read from torch's global generator (``train()`` seeds it from
    ``options.seed``).

    Example:
        >>> import torch
        >>> ds = SyntheticAnomalies(torch.full((4, 3, 16, 16), 0.5), anomaly_fraction=1.0)
        >>> image, mask = ds[0]
        >>> tuple(image.shape), tuple(mask.shape), bool(mask.any())
        ((3, 16, 16), (1, 16, 16), True)
    """

    def __init__(
        self, images: torch.Tensor, *, anomaly_fraction: float = 0.5, views_per_image: int = 1
    ) -> None:
        if not isinstance(anomaly_fraction, int | float) or not 0 <= anomaly_fraction <= 1:
            raise OptionError(
                "SyntheticAnomalies: `anomaly_fraction` must be a number in [0, 1]. Received: "
                f"{anomaly_fraction!r}."
            )
        if (
            isinstance(views_per_image, bool)
            or not isinstance(views_per_image, int)
            or views_per_image < 1
        ):
            raise OptionError(
                "SyntheticAnomalies: `views_per_image` must be an int >= 1. Received: "
                f"{views_per_image!r}."
            )
        self.images = images
        self.anomaly_fraction = float(anomaly_fraction)
        self.views_per_image = views_per_image

    def __len__(self) -> int:
        return len(self.images) * self.views_per_image

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = torch.as_tensor(self.images[index // self.views_per_image]).clone()
        mask = torch.zeros(1, *image.shape[-2:])
        if float(torch.rand(())) < self.anomaly_fraction:
            for _ in range(int(torch.randint(1, 4, ()))):
                alpha = _confetti(*image.shape[-2:])
                colour = torch.rand(image.shape[0], 1, 1)
                image = image * (1 - alpha) + colour * alpha
                mask = torch.maximum(mask, (alpha > 0.15).float())
        return image, mask


def _confetti(height: int, width: int) -> torch.Tensor:
    """(1, H, W) opacity of one random ellipse or stroke."""
    y, x = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    cy, cx = float(torch.rand(())) * height, float(torch.rand(())) * width
    angle = float(torch.rand(())) * math.pi
    u = (x - cx) * math.cos(angle) + (y - cy) * math.sin(angle)
    v = -(x - cx) * math.sin(angle) + (y - cy) * math.cos(angle)
    side = min(height, width)
    if float(torch.rand(())) < 0.5:  # an ellipse
        a, b = (0.03 + 0.1 * torch.rand(2)) * side
        inside = (u / a) ** 2 + (v / b) ** 2 <= 1
    else:  # a stroke
        half_length, half_width = (
            (0.1 + 0.2 * float(torch.rand(()))) * side,
            0.5 + float(torch.rand(())),
        )
        inside = (u.abs() <= half_length) & (v.abs() <= half_width)
    return inside[None].float() * (0.4 + 0.6 * float(torch.rand(())))


class FCDDDetector(AnomalyDetector):
    """An FCDD anomaly detector (MATLAB's ``fcddAnomalyDetector``), the from-scratch
    alternative to :class:`PatchCoreDetector`: a fully convolutional network trained by
    :func:`train_anomaly_detector` (with :func:`~deeptoolbox.train` and :func:`fcdd_loss`)
    on normal images and :class:`SyntheticAnomalies` made from them. Its patch scores are
    the pseudo-Huber scores of the network's output map.

    Args:
        network: the fully convolutional network (default :func:`fcdd_network`), giving
            (N, 1, h, w) maps.
        anomaly_fraction: the fraction of training images given synthetic anomalies.
        views_per_image: training observations made from each normal image per epoch, each
            with its own synthetic anomalies (more iterations from few images).
        smoothing_sigma: the Gaussian smoothing of the upsampled maps, in pixels.

    Example:
        >>> import torch
        >>> from deeptoolbox import datasets
        >>> from deeptoolbox.training import TrainingOptions
        >>> from deeptoolbox.vision import train_anomaly_detector
        >>> detector = FCDDDetector(fcdd_network(3, filters=(8, 8)), views_per_image=1)
        >>> options = TrainingOptions(max_epochs=1, mini_batch_size=4, verbose=False, seed=0)
        >>> _ = train_anomaly_detector(detector, datasets.inspection(8, 0, image_size=32).images, options)
        >>> detector.patch_scores(torch.rand(1, 3, 32, 32)).shape
        torch.Size([1, 1, 16, 16])
    """

    def __init__(
        self,
        network: nn.Module | None = None,
        *,
        anomaly_fraction: float = 0.5,
        views_per_image: int = 8,
        smoothing_sigma: float = 4.0,
    ) -> None:
        super().__init__(smoothing_sigma=smoothing_sigma)
        if network is not None and not isinstance(network, nn.Module):
            raise OptionError(
                "FCDDDetector: `network` must be a Network or a torch.nn.Module giving "
                f"(N, 1, h, w) maps. Received: {type(network).__name__}."
            )
        self.network = fcdd_network() if network is None else network
        SyntheticAnomalies(torch.empty(0), anomaly_fraction=anomaly_fraction,
                           views_per_image=views_per_image)  # validates  # fmt: skip
        self.anomaly_fraction = float(anomaly_fraction)
        self.views_per_image = views_per_image

    def fit(self, images: torch.Tensor, options: Any = None) -> None:
        """Train the network on the normal images with synthetic anomalies."""
        if options is None:
            options = TrainingOptions(solver="adam", initial_learn_rate=1e-3, max_epochs=10,
                                      mini_batch_size=16, verbose=False, seed=0)  # fmt: skip
        data = SyntheticAnomalies(images, anomaly_fraction=self.anomaly_fraction,
                                  views_per_image=self.views_per_image)  # fmt: skip
        train(self.network, data, fcdd_loss, options)

    def patch_scores(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 1, h, w) pseudo-Huber scores of the network's output map."""
        return pseudo_huber(self.network(images))
