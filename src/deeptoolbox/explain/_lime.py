"""LIME: a weighted linear model of the score on which segments or features are kept.

Captum's ``Lime`` draws, transforms and weighs one sample at a time in Python, which
dominates the cost on all but the largest networks (see ``benchmarks/explain.py``). Here all
samples are drawn at once, the masked inputs go through the network in large batches, and the
weighted ridge regression is solved in closed form. The model is the same as Captum's and the
original LIME package's: binary segment masks, an exponential kernel on the cosine distance
to the intact input, and a linear surrogate with intercept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from deeptoolbox._deprecation import renamed_arguments
from deeptoolbox.errors import OptionError
from deeptoolbox.explain._common import (
    Prepared,
    Target,
    check_positive_int,
    evaluation,
    fill_values,
    prepare,
    run,
    target_weights,
)

__all__ = ["LimeExplanation", "image_lime", "lime"]


class LimeExplanation(torch.Tensor):
    """What LIME found: the attribution map, a tensor like every explainer's result, which
    also carries the segments and their weights.

    The tensor itself is the map: each element's weight, (N, H, W) for images, (N, T) for
    sequences, (N, C) for features. Arithmetic on it gives plain tensors.

    Attributes:
        map: the same values as a plain ``torch.Tensor``.
        weights: (N, S) weight of each segment or feature; images whose segmentation has
            fewer than S segments are padded with NaN.
        segments: (N, H, W) / (N, T) segment number of each element; None for features.

    Example:
        >>> import torch
        >>> result = LimeExplanation(torch.zeros(1, 2, 2), torch.tensor([[0.5]]),
        ...                          torch.zeros(1, 2, 2, dtype=torch.long))
        >>> result.shape, result.weights.shape
        (torch.Size([1, 2, 2]), torch.Size([1, 1]))
        >>> type(result + 1).__name__
        'Tensor'
    """

    weights: torch.Tensor
    segments: torch.Tensor | None

    # results of torch operations are plain tensors, as for nn.Parameter
    __torch_function__ = torch._C._disabled_torch_function_impl

    @staticmethod
    def __new__(
        cls, map: torch.Tensor, weights: torch.Tensor, segments: torch.Tensor | None
    ) -> LimeExplanation:
        result = torch.Tensor._make_subclass(cls, map.detach(), False)
        result.weights = weights
        result.segments = segments
        return result

    @property
    def map(self) -> torch.Tensor:
        return self.as_subclass(torch.Tensor)

    def __reduce_ex__(self, protocol: int) -> tuple:
        return LimeExplanation, (self.map.clone(), self.weights, self.segments)

    def __deepcopy__(self, memo: dict) -> LimeExplanation:
        segments = None if self.segments is None else self.segments.clone()
        return LimeExplanation(self.map.clone(), self.weights.clone(), segments)

    def __repr__(self) -> str:
        return f"LimeExplanation(map={self.map!r}, weights={self.weights!r}, segments=...)"


@renamed_arguments({"mask_value": "baseline"})
def image_lime(
    net: nn.Module,
    x: Any,
    target: Target = None,
    *,
    batch_size: int = 256,
    seed: int | None = 0,
    num_features: int = 49,
    num_samples: int = 2048,
    segmentation: str | torch.Tensor = "slic",
    baseline: str | float = "mean",
    kernel_width: float = 0.25,
    ridge: float = 1e-3,
    use_logits: bool = True,
) -> LimeExplanation:
    """LIME for images and sequences: which segments the target score depends on.

    The input is cut into about ``num_features`` segments; ``num_samples`` copies with random
    segments hidden (replaced by ``baseline``) go through the network, and a linear model
    of the score on the kept segments, weighted by closeness to the intact input, gives each
    segment's weight.

    Args:
        net: a deeptoolbox Network or any ``torch.nn.Module``.
        x: images (N, C, H, W) or sequences (N, T, C); one observation also works with a
            Network.
        target: what to explain, as for :func:`gradcam` (default: the predicted class).
        num_features: number of segments to aim for.
        num_samples: masked copies per observation (the first is the intact input).
        segmentation: "slic" (superpixels from scikit-image, images only), "grid" (a regular
            grid of cells, or equal time spans for sequences), or an integer tensor of
            segment numbers (H, W) / (N, H, W) / (T,) / (N, T).
        baseline: "mean" (each observation's mean per channel) or a number.
        kernel_width: width of the exponential kernel on the cosine distance.
        ridge: L2 penalty of the linear model (not applied to the intercept).
        seed: seed of the random masks (None: not reproducible).
        use_logits: when the network ends in a softmax, explain the score before it.
        batch_size: masked copies per forward pass.

    Deprecated names (they still work, with a DeprecationWarning): ``mask_value`` for
    ``baseline``.

    Returns:
        A :class:`LimeExplanation` (``map``, ``weights``, ``segments``).

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> from deeptoolbox.explain import image_lime
        >>> net = Network([L.ImageInput((1, 8, 8)), L.Conv2d(2, 3, padding="same"), L.GlobalAvgPool(), L.Dense(2)])
        >>> result = image_lime(net, torch.randn(1, 1, 8, 8), num_features=4,
        ...                     num_samples=64, segmentation="grid")
        >>> result.map.shape, result.weights.shape
        (torch.Size([1, 8, 8]), torch.Size([1, 4]))
    """
    func = "image_lime"
    prepared = prepare(func, net, x)
    if prepared.kind not in ("image", "sequence"):
        raise OptionError(
            f"{func}: takes images (N, C, H, W) or sequences (N, T, C); the input is "
            f"{prepared.kind} of size {tuple(prepared.x.shape)}. Use lime() for features."
        )
    num_features = check_positive_int(func, "num_features", num_features)
    segments = _segments(func, prepared, segmentation, num_features)
    fill = fill_values(func, prepared.x, prepared.kind, baseline)
    options = _Options(num_samples, kernel_width, ridge, seed, batch_size)
    return _explain(func, net, prepared, target, segments, fill, options, use_logits)


@renamed_arguments({"features": "x"})
def lime(
    net: nn.Module,
    x: Any,
    target: Target = None,
    *,
    batch_size: int = 1024,
    seed: int | None = 0,
    num_samples: int = 1024,
    baseline: float | torch.Tensor = 0.0,
    kernel_width: float = 0.75,
    ridge: float = 1e-3,
    use_logits: bool = True,
) -> LimeExplanation:
    """LIME for tabular data: a weight per feature for the target score.

    Copies of each observation with random features replaced by ``baseline`` go through the
    network; a weighted linear model of the score on which features were kept gives each
    feature's weight. A good ``baseline`` is the training data's mean per feature.

    Args:
        net: a network taking features (N, C).
        x: (N, C) observations, or one (C,) with a Network (``features=``, its deprecated
            name, still works with a DeprecationWarning).
        target: what to explain, as for :func:`gradcam` (default: the predicted class).
        num_samples: perturbed copies per observation.
        baseline: value of a hidden feature: a number or a (C,) tensor.
        kernel_width, ridge, seed, use_logits, batch_size: as for :func:`image_lime`.

    Returns:
        A :class:`LimeExplanation` whose ``map`` and ``weights`` are (N, C).

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> from deeptoolbox.explain import lime
        >>> net = Network([L.FeatureInput(3), L.Dense(1)])
        >>> x = torch.ones(1, 3)
        >>> result = lime(net, x, num_samples=200)
        >>> torch.allclose(result.weights, net.layer("dense_1").weight.detach(), atol=1e-2)
        True
    """
    func = "lime"
    prepared = prepare(func, net, x)
    if prepared.kind != "features" or prepared.x.dim() != 2:
        raise OptionError(
            f"lime: takes features (N, C); received {prepared.kind} of size "
            f"{tuple(prepared.x.shape)}. Use image_lime() for images and sequences."
        )
    x = prepared.x
    segments = torch.arange(x.shape[1], device=x.device).expand(len(x), -1)
    if isinstance(baseline, bool) or not isinstance(baseline, int | float | torch.Tensor):
        raise OptionError(
            f"lime: `baseline` must be a number or a (C,) tensor. Received: {baseline!r}."
        )
    fill = torch.as_tensor(baseline, dtype=x.dtype, device=x.device)
    if fill.dim() and tuple(fill.shape) not in ((x.shape[1],), tuple(x.shape)):
        raise OptionError(
            f"lime: `baseline` must have size ({x.shape[1]},) to match the features. "
            f"Received a tensor of size {tuple(fill.shape)}."
        )
    options = _Options(num_samples, kernel_width, ridge, seed, batch_size)
    result = _explain(func, net, prepared, target, segments, fill.expand_as(x), options, use_logits)
    return LimeExplanation(result.map, result.weights, None)


@dataclass(frozen=True)
class _Options:
    num_samples: int
    kernel_width: float
    ridge: float
    seed: int | None
    batch_size: int

    def check(self, func: str) -> None:
        check_positive_int(func, "num_samples", self.num_samples, 2)
        check_positive_int(func, "batch_size", self.batch_size)
        for option in ("kernel_width", "ridge"):
            value = getattr(self, option)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise OptionError(
                    f"{func}: `{option}` must be a number >= 0. Received: {option}={value!r}."
                )
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise OptionError(f"{func}: `seed` must be an int or None. Received: {self.seed!r}.")


def _explain(
    func: str,
    net: nn.Module,
    prepared: Prepared,
    target: Target,
    segments: torch.Tensor,
    fill: torch.Tensor,
    options: _Options,
    use_logits: bool,
) -> LimeExplanation:
    options.check(func)
    x = prepared.x
    generator = torch.Generator(device="cpu")
    generator.manual_seed(options.seed if options.seed is not None else torch.seed())
    counts = [int(s.max()) + 1 for s in segments]
    all_weights = torch.full((len(x), max(counts)), float("nan"), dtype=torch.float64)
    maps = []
    with evaluation(net, use_logits), torch.no_grad():
        target_w = target_weights(func, net, run(func, net, x), target)
        for i in range(len(x)):
            coefficients = _fit_one(net, x[i], fill[i], segments[i], counts[i], target_w[i],
                                    options, generator, func)  # fmt: skip
            all_weights[i, : counts[i]] = coefficients
            maps.append(coefficients.to(x.dtype).to(x.device)[segments[i]])
    device = prepared.device
    result_map = prepared.finish(torch.stack(maps))
    weights = all_weights.to(x.dtype).to(device)
    segments_out = segments.to(device)
    if not prepared.batched:
        weights, segments_out = weights[0], segments_out[0]
    return LimeExplanation(result_map, weights, segments_out)


def _fit_one(
    net: nn.Module,
    x: torch.Tensor,
    fill: torch.Tensor,
    segments: torch.Tensor,
    count: int,
    target_w: torch.Tensor,
    options: _Options,
    generator: torch.Generator,
    func: str,
) -> torch.Tensor:
    """Sample segment masks, score the masked copies, fit the weighted ridge regression."""
    keep = torch.rand(options.num_samples, count, generator=generator) < 0.5
    keep[0] = True  # the intact input anchors the model
    keep = keep.to(x.device)
    scores = []
    for rows in keep.split(options.batch_size):
        mask = rows[:, segments]  # (S, *positions)
        mask = mask.unsqueeze(1) if x.dim() == 3 and segments.dim() == 2 else mask
        if x.dim() == 2 and segments.dim() == 1:  # sequences (T, C): broadcast over channels
            mask = mask.unsqueeze(-1)
        batch = torch.where(mask, x.unsqueeze(0), fill.unsqueeze(0))
        output = run(func, net, batch)
        scores.append((output * target_w.unsqueeze(0)).reshape(len(batch), -1).sum(1))
    y = torch.cat(scores).double()
    z = keep.double()
    kept = z.sum(1)
    cosine = torch.sqrt(kept / count)  # cosine similarity of a 0/1 row with the all-ones row
    distance = 1.0 - cosine
    similarity = torch.exp(-(distance**2) / max(options.kernel_width, 1e-12) ** 2)
    return _weighted_ridge(z, y, similarity, options.ridge).cpu()


def _weighted_ridge(
    z: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, ridge: float
) -> torch.Tensor:
    """Coefficients of min sum w (y - b - z c)^2 + ridge |c|^2 (intercept b not penalized)."""
    design = torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype, device=z.device)], dim=1)
    weighted = design * weight.unsqueeze(1)
    gram = design.T @ weighted
    penalty = torch.full((design.shape[1],), ridge, dtype=z.dtype, device=z.device)
    penalty[-1] = 0.0
    gram = gram + torch.diag(penalty) + 1e-10 * torch.eye(len(gram), dtype=z.dtype, device=z.device)
    solution = torch.linalg.lstsq(gram, weighted.T @ y.unsqueeze(1)).solution
    return solution[:-1, 0]


def _segments(
    func: str, prepared: Prepared, segmentation: str | torch.Tensor, num_features: int
) -> torch.Tensor:
    """(N, *positions) segment numbers 0..S-1 per observation."""
    x = prepared.x
    positions = prepared.spatial_size
    if isinstance(segmentation, torch.Tensor):
        return _given_segments(func, segmentation, len(x), positions, x.device)
    if segmentation == "grid":
        grid = _grid(positions, num_features).to(x.device)
        return grid.expand(len(x), *positions)
    if segmentation == "slic":
        if prepared.kind != "image":
            raise OptionError(
                f"{func}: segmentation='slic' cuts images; for sequences use 'grid' (equal "
                "time spans) or a tensor of segment numbers."
            )
        return torch.stack([_slic(image, num_features) for image in x]).to(x.device)
    raise OptionError(
        f"{func}: `segmentation` must be 'slic', 'grid' or an integer tensor of segment "
        f"numbers. Received: {segmentation!r}."
    )


def _given_segments(
    func: str, segments: torch.Tensor, n: int, positions: tuple, device: torch.device
) -> torch.Tensor:
    if segments.is_floating_point() or segments.dtype == torch.bool:
        raise OptionError(f"{func}: `segmentation` must be an integer tensor of segment numbers.")
    if tuple(segments.shape) == positions:
        segments = segments.unsqueeze(0).expand(n, *positions)
    if tuple(segments.shape) != (n, *positions):
        raise OptionError(
            f"{func}: a `segmentation` tensor must have size {positions} or {(n, *positions)}. "
            f"Received: {tuple(segments.shape)}."
        )
    relabeled = [torch.unique(s, return_inverse=True)[1] for s in segments]
    return torch.stack(relabeled).to(device)


def _grid(positions: tuple[int, ...], num_features: int) -> torch.Tensor:
    """A regular grid of about ``num_features`` cells (time spans for sequences)."""
    per_axis = max(1, round(num_features ** (1 / len(positions))))
    labels = torch.zeros(positions, dtype=torch.long)
    for axis, size in enumerate(positions):
        cells = min(per_axis, size)
        index = (torch.arange(size) * cells) // size
        shape = [1] * len(positions)
        shape[axis] = size
        labels = labels * cells + index.view(shape)
    return torch.unique(labels, return_inverse=True)[1]


def _slic(image: torch.Tensor, num_features: int) -> torch.Tensor:
    """SLIC superpixels of one image (C, H, W), numbered 0..S-1."""
    try:
        from skimage.segmentation import slic
    except ImportError as err:  # pragma: no cover - scikit-image is in the "explain" extra
        raise OptionError(
            "image_lime: segmentation='slic' needs scikit-image (pip install "
            "'deeptoolbox[explain]'); or use segmentation='grid'."
        ) from err
    array = image.detach().float().cpu().numpy()
    low, high = array.min(), array.max()
    array = (array - low) / (high - low) if high > low else array * 0
    picture = array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
    labels = slic(
        picture,
        n_segments=num_features,
        compactness=1.0,  # for values scaled to [0, 1]: follows strong edges, else compact
        channel_axis=None if array.shape[0] == 1 else -1,
        convert2lab=False,
        start_label=0,
    )
    tensor = torch.from_numpy(labels.astype("int64"))
    return torch.unique(tensor, return_inverse=True)[1]
