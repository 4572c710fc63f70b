"""PatchCore (Roth et al. 2022; MATLAB's ``patchCoreAnomalyDetector``): patch features from
intermediate layers of a backbone, a memory bank of normal patches thinned by greedy coreset
subsampling, and anomaly scores that are distances to the nearest memory patch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from deeptoolbox import layers as L
from deeptoolbox.errors import DataError, OptionError
from deeptoolbox.network import Network, find_module
from deeptoolbox.vision._anomaly import AnomalyDetector

__all__ = [
    "PatchCoreDetector",
    "patchcore_backbone",
    "greedy_coreset",
    "nearest_neighbor_distances",
]


def patchcore_backbone(channels: int = 3, *, filters: Sequence[int] = (32, 64, 128, 128),
                       seed: int = 0) -> Network:  # fmt: skip
    """A small convolutional feature extractor with fixed random weights, for PatchCore
    where no pretrained weights are at hand: a toolbox Network of 3x3 convolutions and
    ReLUs, ``"stage1"`` to ``"stage3"`` at strides 2, 4 and 8 (after a stride-1 ``"stem"``).

    Random convolutions already separate local textures well enough for PatchCore on simple
    surfaces (the generated inspection data); on real parts use a pretrained backbone, e.g.
    ``hub.pretrained_module("resnet18")`` with ``layers=("layer2", "layer3")``. The weights are
    drawn from ``seed`` (He initialization), so the same seed gives the same features.

    Example:
        >>> import torch
        >>> net = patchcore_backbone()
        >>> net(torch.rand(1, 3, 32, 32)).shape
        torch.Size([1, 128, 4, 4])
    """
    filters = tuple(filters)
    if len(filters) != 4 or any(isinstance(f, bool) or not isinstance(f, int) or f < 1
                                for f in filters):  # fmt: skip
        raise OptionError(
            "patchcore_backbone: `filters` must be 4 positive ints (stem, stage1..3). "
            f"Received: filters={filters!r}."
        )
    names = ("stem", "stage1", "stage2", "stage3")
    chain: list = [L.TensorInput((channels, None, None), name="input")]
    for index, (name, width) in enumerate(zip(names, filters, strict=True)):
        chain += [L.Conv2d(width, 3, stride=1 if index == 0 else 2, padding="same" if index == 0
                           else 1, weights_initializer="he", name=f"{name}_conv"),
                  L.ReLU(name=name)]  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = Network(chain, name="patchcore_backbone")
        net.initialize()
    return net.eval()


def _check_features(features: Any, what: str) -> torch.Tensor:
    if not isinstance(features, torch.Tensor) or features.dim() != 2 or features.shape[0] < 1:
        shape = (
            tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        )
        raise DataError(f"{what}: features must be an (M, D) tensor, M >= 1. Received {shape}.")
    return features.float()


def greedy_coreset(
    features: torch.Tensor,
    size: int,
    *,
    projection_dim: int | None = 128,
    seed: int = 0,
) -> torch.Tensor:
    """Indices of ``size`` rows of ``features`` (M, D) chosen by greedy farthest-point
    (k-center) selection, PatchCore's coreset: start from a random row (``seed``), then
    repeatedly take the row farthest from all rows chosen so far. The chosen rows cover the
    others: every row lies within the last chosen distance of one of them.

    Distances are measured after a random Gaussian projection to ``projection_dim``
    dimensions when D is larger (Johnson-Lindenstrauss, as PatchCore does; None: exact).
    Returns int64 indices in the order chosen.

    Example:
        >>> import torch
        >>> points = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0], [0.0, 3.0]])
        >>> greedy_coreset(points, 3, seed=1).tolist()
        [1, 2, 3]
    """
    x = _check_features(features, "greedy_coreset")
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= len(x):
        raise OptionError(
            f"greedy_coreset: `size` must be an int in [1, {len(x)}] (the number of feature "
            f"rows). Received: size={size!r}."
        )
    generator = torch.Generator().manual_seed(seed)
    if projection_dim is not None and x.shape[1] > projection_dim:
        projection = torch.randn(x.shape[1], projection_dim, generator=generator)
        x = x @ projection.to(x.device) / projection_dim**0.5
    chosen = torch.empty(size, dtype=torch.long)
    chosen[0] = int(torch.randint(len(x), (), generator=generator))
    nearest = torch.linalg.vector_norm(x - x[chosen[0]], dim=1)
    for step in range(1, size):
        chosen[step] = int(torch.argmax(nearest))
        nearest = torch.minimum(nearest, torch.linalg.vector_norm(x - x[chosen[step]], dim=1))
    return chosen


def nearest_neighbor_distances(
    queries: torch.Tensor, bank: torch.Tensor, *, chunk_size: int = 4096
) -> torch.Tensor:
    """(M,) Euclidean distance of each query row (M, D) to its nearest row of ``bank``
    (K, D), computed in chunks of ``chunk_size`` queries with ``torch.cdist``.

    Example:
        >>> import torch
        >>> nearest_neighbor_distances(torch.tensor([[0.0, 0.0], [3.0, 4.0]]),
        ...                            torch.tensor([[0.0, 1.0], [3.0, 3.0]])).tolist()
        [1.0, 1.0]
    """
    q, b = (
        _check_features(queries, "nearest_neighbor_distances"),
        _check_features(bank, "nearest_neighbor_distances"),
    )
    if q.shape[1] != b.shape[1]:
        raise DataError(
            f"nearest_neighbor_distances: queries have {q.shape[1]} features, the bank "
            f"{b.shape[1]}; they must match."
        )
    parts = [
        torch.cdist(q[i : i + chunk_size], b).amin(dim=1) for i in range(0, len(q), chunk_size)
    ]
    return torch.cat(parts)


def _find_module(backbone: nn.Module, name: str) -> nn.Module:
    return find_module(backbone, name, where="PatchCoreDetector: the backbone", noun="layer")


class PatchCoreDetector(AnomalyDetector):
    """A PatchCore anomaly detector (MATLAB's ``patchCoreAnomalyDetector``), trained on
    normal images only by :func:`train_anomaly_detector`.

    Each image's patch features are the outputs of ``layers`` of ``backbone`` (a frozen
    feature extractor), each averaged over a 3x3 neighbourhood, resized to the first layer's
    grid and concatenated. Training keeps ``coreset_fraction`` of all normal patches as the
    memory bank (:func:`greedy_coreset`); a patch's anomaly score is its distance to the
    nearest memory patch (:func:`nearest_neighbor_distances`), and the image score the
    largest score of its map.

    Args:
        backbone: a Network or torch module (default :func:`patchcore_backbone`, random
            weights); e.g. ``hub.pretrained_module("resnet18")`` when its weights are cached.
        layers: names of the backbone's layers (Network layer names or module paths) whose
            outputs are the features (default ``("stage2", "stage3")`` of the default
            backbone).
        coreset_fraction: the fraction of training patches kept, in (0, 1].
        smoothing_sigma: the Gaussian smoothing of the upsampled maps, in pixels.

    Example:
        >>> import torch
        >>> from deeptoolbox import datasets
        >>> from deeptoolbox.vision import train_anomaly_detector
        >>> detector = PatchCoreDetector(coreset_fraction=0.25)
        >>> _ = train_anomaly_detector(detector, datasets.inspection(4, 0, image_size=32).images)
        >>> detector.memory_bank.shape  # 25% of 4 images x 8 x 8 patches; 128 + 128 features
        torch.Size([64, 256])
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        *,
        layers: Sequence[str] | None = None,
        coreset_fraction: float = 0.1,
        smoothing_sigma: float = 4.0,
    ) -> None:
        super().__init__(smoothing_sigma=smoothing_sigma)
        if backbone is not None and not isinstance(backbone, nn.Module):
            raise OptionError(
                "PatchCoreDetector: `backbone` must be a Network or a torch.nn.Module. "
                f"Received: {type(backbone).__name__}."
            )
        if backbone is None and layers is None:
            layers = ("stage2", "stage3")
        if layers is None or isinstance(layers, str) or not layers:
            raise OptionError(
                "PatchCoreDetector: `layers` must name one or more layers of the backbone, "
                f"e.g. layers=('layer2', 'layer3') for a ResNet. Received: layers={layers!r}."
            )
        if (
            isinstance(coreset_fraction, bool)
            or not isinstance(coreset_fraction, int | float)
            or not 0 < coreset_fraction <= 1
        ):
            raise OptionError(
                "PatchCoreDetector: `coreset_fraction` must be a number in (0, 1]. Received: "
                f"coreset_fraction={coreset_fraction!r}."
            )
        self.backbone = (patchcore_backbone() if backbone is None else backbone).eval()
        self.backbone.requires_grad_(False)
        self.layers = tuple(layers)
        self._modules_by_layer = {name: _find_module(self.backbone, name) for name in self.layers}
        self.coreset_fraction = float(coreset_fraction)
        self.register_buffer("memory_bank", torch.empty(0, 0))

    def train(self, mode: bool = True) -> PatchCoreDetector:
        """Set the mode; the backbone stays in eval mode (its features are fixed)."""
        super().train(mode)
        self.backbone.eval()
        return self

    def patch_features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, D, h, w) features of every patch of (N, C, H, W) images.

        Example:
            >>> import torch
            >>> PatchCoreDetector().patch_features(torch.rand(2, 3, 32, 32)).shape
            torch.Size([2, 256, 8, 8])
        """
        captured: dict[str, torch.Tensor] = {}
        hooks = [module.register_forward_hook(lambda _m, _i, out, name=name: captured.__setitem__(name, out))
                 for name, module in self._modules_by_layer.items()]  # fmt: skip
        try:
            with torch.no_grad():
                self.backbone(images)
        finally:
            for hook in hooks:
                hook.remove()
        maps = [captured[name] for name in self.layers]
        size = maps[0].shape[-2:]
        pooled = [
            nn.functional.avg_pool2d(m, 3, stride=1, padding=1, count_include_pad=False)
            for m in maps
        ]
        resized = [nn.functional.interpolate(m, size=size, mode="bilinear", align_corners=False)
                   if m.shape[-2:] != size else m for m in pooled]  # fmt: skip
        return torch.cat(resized, dim=1)

    def fit(self, images: torch.Tensor, options: Any = None) -> None:
        """Fill the memory bank with a coreset of the normal images' patch features."""
        device = next(iter(self.backbone.parameters()), self.memory_bank).device
        features = torch.cat([self.patch_features(images[i : i + 32].to(device))
                              for i in range(0, len(images), 32)])  # fmt: skip
        rows = features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])
        size = max(1, round(self.coreset_fraction * len(rows)))
        self.memory_bank = rows[greedy_coreset(rows, size).to(rows.device)]

    def patch_scores(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 1, h, w) distances of each patch to the nearest memory-bank patch."""
        features = self.patch_features(images)
        n, d, h, w = features.shape
        rows = features.permute(0, 2, 3, 1).reshape(-1, d)
        return nearest_neighbor_distances(rows, self.memory_bank).view(n, 1, h, w)
