"""Out-of-distribution detection: a discriminator that scores how familiar an input looks.

Scores are higher for inputs that look like the training data (in-distribution). Methods:

- ``"baseline"``: maximum softmax probability (Hendrycks & Gimpel, 2017);
- ``"odin"``: maximum softmax of temperature-scaled logits after a small input perturbation
  (Liang et al., 2018);
- ``"energy"``: ``T * logsumexp(logits / T)`` (Liu et al., 2020);
- ``"hbos"``: histogram-based outlier score (Goldstein & Dengel, 2012) of chosen layers'
  activations, captured with forward hooks and reduced by PCA.

The threshold is set on the in-distribution data so that ``true_positive_rate`` of it is
accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from deeptoolbox.data._adapter import adapt, form_error
from deeptoolbox.data._reading import reading_without_augmentation
from deeptoolbox.errors import OptionError
from deeptoolbox.robustness._graph import device_of, dtype_of, logits_function

__all__ = ["DistributionDiscriminator", "DiscriminatorEvaluation"]

METHODS = ("baseline", "odin", "energy", "hbos")


def _batches(data, batch_size: int):
    """Yield input batches of any form the toolbox reads (the first input of each batch)."""
    where = "DistributionDiscriminator: `data`"
    if isinstance(data, list) and data and isinstance(data[0], int | float):
        raise form_error(where, data)  # numbers, not observations (as it always refused)
    source = adapt(data, 1, where, targets=False, cast=False)
    with reading_without_augmentation(source.payload):
        for batch, _ in source.configure(batch_size, "never", 0).epoch(0):
            yield batch.inputs[0]


@dataclass
class DiscriminatorEvaluation:
    """How well a discriminator separates in- from out-of-distribution data.

    Attributes:
        auroc: area under the ROC curve (1 = perfect, 0.5 = chance).
        fpr_at_95_tpr: fraction of out-of-distribution data accepted when 95% of the
            in-distribution data is accepted.
        true_positive_rate: fraction of ``in_data`` accepted with the discriminator's threshold.
        false_positive_rate: fraction of ``out_data`` accepted with that threshold.
        in_scores, out_scores, threshold: the scores and threshold behind these numbers.

    Example:
        >>> import numpy as np
        >>> e = DiscriminatorEvaluation(1.0, 0.0, 1.0, 0.0, np.ones(3), np.zeros(3), 0.5)
        >>> fig = e.plot()
    """

    auroc: float
    fpr_at_95_tpr: float
    true_positive_rate: float
    false_positive_rate: float
    in_scores: np.ndarray
    out_scores: np.ndarray
    threshold: float

    def plot(self, ax=None):
        """Histogram of in- and out-of-distribution scores with the threshold; returns the figure."""
        return plot_distribution_scores(self.in_scores, self.out_scores, self.threshold, ax=ax)


def plot_distribution_scores(in_scores, out_scores, threshold: float | None = None, *, ax=None):
    """Histograms of in- and out-of-distribution scores (matplotlib); returns the figure.

    Example:
        >>> import numpy as np
        >>> fig = plot_distribution_scores(np.random.rand(50) + 1, np.random.rand(50), 1.0)
        >>> len(fig.axes)
        1
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.5))
    else:
        fig = ax.figure
    both = np.concatenate([np.asarray(in_scores), np.asarray(out_scores)])
    bins = np.linspace(both.min(), both.max() + 1e-12, 40)
    ax.hist(in_scores, bins=bins, alpha=0.6, label="in-distribution")
    ax.hist(out_scores, bins=bins, alpha=0.6, label="out-of-distribution")
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", label="threshold")
    ax.set_xlabel("distribution score (higher = more familiar)")
    ax.set_ylabel("count")
    ax.legend()
    fig.tight_layout()
    return fig


class _Histograms:
    """HBOS on one layer's activations: PCA, then one histogram per component."""

    def __init__(self, features: np.ndarray, variance_cutoff: float) -> None:
        from sklearn.decomposition import PCA

        limit = max(1, min(features.shape[0] - 1, features.shape[1]))
        self.pca = PCA(n_components=limit).fit(features)
        keep = int((self.pca.explained_variance_ratio_ >= variance_cutoff).sum())
        self.keep = max(1, keep)
        projected = self.pca.transform(features)[:, : self.keep]
        bins = max(5, int(np.sqrt(features.shape[0])))
        self.edges, self.heights = [], []
        for column in projected.T:
            counts, edges = np.histogram(column, bins=bins)
            self.edges.append(edges)
            self.heights.append(np.maximum(counts / counts.max(), 1e-3))

    def log_density(self, features: np.ndarray) -> np.ndarray:
        projected = self.pca.transform(features)[:, : self.keep]
        total = np.zeros(features.shape[0])
        for column, edges, heights in zip(projected.T, self.edges, self.heights, strict=True):
            index = np.searchsorted(edges, column, side="right") - 1
            inside = (column >= edges[0]) & (column <= edges[-1])
            index = np.clip(index, 0, len(heights) - 1)
            total += np.where(inside, np.log(heights[index]), np.log(1e-6))
        return total


class DistributionDiscriminator:
    """Tell inputs like the training data from the rest (MATLAB's networkDistributionDiscriminator).

    Args:
        net: a classification network (any module returning class scores).
        in_data: in-distribution data (tensor, array or Dataset) to set the threshold on.
        method: "baseline", "odin", "energy" or "hbos".
        true_positive_rate: fraction of in-distribution data to accept (sets the threshold).
        layers: layer names whose activations HBOS uses (default: the input of the last layer).
        temperature: for "odin" (default 1000) and "energy" (default 1).
        noise: ODIN's input perturbation size (default 0: temperature scaling only).
        variance_cutoff: HBOS keeps principal components explaining at least this fraction
            of the variance.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(3)])
        >>> d = DistributionDiscriminator(net, torch.randn(100, 2), method="energy")
        >>> d.is_in_distribution(torch.randn(4, 2)).shape
        torch.Size([4])
    """

    def __init__(
        self,
        net: torch.nn.Module,
        in_data,
        *,
        method: str = "baseline",
        true_positive_rate: float = 0.95,
        layers: Sequence[str] | str | None = None,
        temperature: float | None = None,
        noise: float = 0.0,
        variance_cutoff: float = 1e-3,
        batch_size: int = 256,
    ) -> None:
        if method not in METHODS:
            raise OptionError(
                f"DistributionDiscriminator: `method` must be one of {METHODS}. Received: "
                f"method={method!r}."
            )
        if isinstance(true_positive_rate, bool) or not 0 < true_positive_rate <= 1:
            raise OptionError(
                "DistributionDiscriminator: `true_positive_rate` must be in (0, 1]. Received: "
                f"true_positive_rate={true_positive_rate!r}."
            )
        self.net, self.method = net, method
        self.true_positive_rate = float(true_positive_rate)
        self.temperature = float(temperature or (1000.0 if method == "odin" else 1.0))
        self.noise, self.batch_size = float(noise), int(batch_size)
        self.layers = self._layer_names(layers) if method == "hbos" else []
        self._logits = logits_function(net)
        self.histograms_: list[_Histograms] = []
        if method == "hbos":
            activations = self._activations(in_data)
            self.histograms_ = [_Histograms(a, variance_cutoff) for a in activations]
        in_scores = self.scores(in_data).numpy()
        self.threshold_ = float(np.quantile(in_scores, 1 - self.true_positive_rate))

    def _layer_names(self, layers) -> list[str]:
        modules = dict(self.net.named_modules())
        prefix = "layers." if hasattr(self.net, "layer_names") else ""
        if layers is None:
            names = getattr(self.net, "layer_names", None)
            if not names:
                raise OptionError("DistributionDiscriminator: method='hbos' needs `layers` names.")
            last = self.net.output_names[0]
            source = list(self.net.sources(last).values())[0]
            if type(self.net.layer(last)).__name__ == "Softmax":
                source = list(self.net.sources(source).values())[0]
            layers = [source]
        layers = [layers] if isinstance(layers, str) else list(layers)
        for name in layers:
            if prefix + name not in modules:
                known = getattr(self.net, "layer_names", [n for n in modules if n])
                raise OptionError(
                    f"DistributionDiscriminator: no layer named {name!r}. Layers: {known}."
                )
        return layers

    def _module(self, name: str) -> torch.nn.Module:
        if hasattr(self.net, "layer_names"):
            return self.net.layer(name)
        return dict(self.net.named_modules())[name]

    def _activations(self, data) -> list[np.ndarray]:
        captured: dict[str, list[torch.Tensor]] = {n: [] for n in self.layers}
        handles = [
            self._module(n).register_forward_hook(
                lambda _m, _i, out, n=n: captured[n].append(out.detach().flatten(1).cpu())
            )
            for n in self.layers
        ]
        try:
            with torch.no_grad():
                self._outputs(data, self.net)
        finally:
            for handle in handles:
                handle.remove()
        return [torch.cat(captured[n]).double().numpy() for n in self.layers]

    def _outputs(self, data, function) -> list:
        device, dtype = device_of(self.net), dtype_of(self.net)
        was_training = self.net.training
        self.net.eval()
        try:
            results = []
            for batch in _batches(data, self.batch_size):
                x = torch.as_tensor(batch).to(device=device, dtype=dtype)
                results.append(function(x))
            return results
        finally:
            self.net.train(was_training)

    def _score_batch(self, x: torch.Tensor) -> torch.Tensor:
        t = self.temperature
        if self.method == "odin" and self.noise > 0:
            x = x.detach().requires_grad_(True)
            with torch.enable_grad():
                top = torch.log_softmax(self._logits(x) / t, dim=1).amax(dim=1).sum()
                (grad,) = torch.autograd.grad(top, x)
            x = (x + self.noise * grad.sign()).detach()
        with torch.no_grad():
            logits = self._logits(x)
            if self.method == "energy":
                return (t * torch.logsumexp(logits / t, dim=1)).cpu()
            scale = t if self.method == "odin" else 1.0
            return torch.softmax(logits / scale, dim=1).amax(dim=1).cpu()

    def scores(self, x) -> torch.Tensor:
        """Distribution score of each observation (higher = more like the training data).

        Example:
            >>> import torch
            >>> from deeptoolbox import Network, layers as L
            >>> d = DistributionDiscriminator(Network([L.FeatureInput(2), L.Dense(3)]),
            ...                               torch.randn(50, 2))
            >>> d.scores(torch.randn(5, 2)).shape
            torch.Size([5])
        """
        if self.method == "hbos":
            activations = self._activations(x)
            total = sum(
                h.log_density(a) for h, a in zip(self.histograms_, activations, strict=True)
            )
            return torch.as_tensor(total, dtype=torch.float32)
        parts = self._outputs(x, self._score_batch)
        return torch.cat(parts) if parts else torch.zeros(0)

    @property
    def threshold(self) -> float:
        """Scores at or above this value are in-distribution."""
        return self.threshold_

    def is_in_distribution(self, x) -> torch.Tensor:
        """True for each observation whose score reaches the threshold (isInNetworkDistribution)."""
        return self.scores(x) >= self.threshold_

    def evaluate(self, in_data, out_data) -> DiscriminatorEvaluation:
        """AUROC, FPR at 95% TPR and the rates at this threshold on held-out data.

        Example:
            >>> import torch
            >>> from deeptoolbox import Network, layers as L
            >>> d = DistributionDiscriminator(Network([L.FeatureInput(2), L.Dense(3)]),
            ...                               torch.randn(50, 2), method="energy")
            >>> 0 <= d.evaluate(torch.randn(20, 2), 10 * torch.randn(20, 2)).auroc <= 1
            True
        """
        from sklearn.metrics import roc_auc_score, roc_curve

        inside, outside = self.scores(in_data).numpy(), self.scores(out_data).numpy()
        truth = np.concatenate([np.ones(len(inside)), np.zeros(len(outside))])
        both = np.concatenate([inside, outside])
        fpr, tpr, _ = roc_curve(truth, both)
        at_95 = float(fpr[np.searchsorted(tpr, 0.95, side="left")])
        return DiscriminatorEvaluation(
            auroc=float(roc_auc_score(truth, both)),
            fpr_at_95_tpr=at_95,
            true_positive_rate=float((inside >= self.threshold_).mean()),
            false_positive_rate=float((outside >= self.threshold_).mean()),
            in_scores=inside, out_scores=outside, threshold=self.threshold_,
        )  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"DistributionDiscriminator(method={self.method!r}, true_positive_rate="
            f"{self.true_positive_rate}, threshold={self.threshold_:.4g})"
        )
