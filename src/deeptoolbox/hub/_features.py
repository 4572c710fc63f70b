"""Feature extraction: activations of a layer over data, and classical classifiers on them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from deeptoolbox.errors import OptionError, _LayerReached
from deeptoolbox.inference import _as_tensor, _batches, _num_inputs, _prepare, place_network
from deeptoolbox.network import find_module

__all__ = ["activations", "fit_classifier", "CLASSIFIERS"]

POOLINGS = ("avg", "max", None)


def _layer_module(net: nn.Module, layer: str) -> nn.Module:
    return find_module(net, layer, where="activations")


def _pool(x: torch.Tensor, pooling: str | None) -> torch.Tensor:
    if pooling is None or x.dim() <= 2:
        return x
    dims = tuple(range(2, x.dim())) if x.dim() >= 4 else (1,)  # images/volumes, or (N, T, C)
    return x.mean(dim=dims) if pooling == "avg" else x.amax(dim=dims)


def activations(
    net: nn.Module,
    data: Any,
    layer: str,
    *,
    pooling: str | None = "avg",
    batch_size: int = 128,
    device: str | torch.device = "auto",
) -> torch.Tensor:
    """Outputs of layer ``layer`` for every observation in ``data`` (MATLAB's ``activations`` /
    ``minibatchpredict(..., Outputs=layer)``).

    Runs in batches, in eval mode and without gradients; the forward pass stops at ``layer``.
    ``data`` is anything :func:`deeptoolbox.predict` takes (tensors, arrays, Datasets such as
    an ImageDatastore, loaders) and, for pretrained networks, image files / PIL images / uint8
    arrays, preprocessed as the network expects. ``pooling`` averages ("avg") or takes the
    maximum ("max") over the spatial axes of images (N, C, H, W) and volumes, and over time of
    sequences (N, T, C), giving (N, C) features; None keeps the full activations.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.ImageInput((1, 8, 8)), L.Conv2d(4, 3, padding="same", name="conv"), L.ReLU(),
        ...                L.GlobalAvgPool(), L.Dense(2)])
        >>> activations(net, torch.randn(10, 1, 8, 8), "conv").shape
        torch.Size([10, 4])
        >>> activations(net, torch.randn(10, 1, 8, 8), "conv", pooling=None).shape
        torch.Size([10, 4, 8, 8])
    """
    if pooling not in POOLINGS:
        raise OptionError(
            f"activations: `pooling` must be 'avg', 'max' or None. Received: pooling={pooling!r}."
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise OptionError(
            f"activations: `batch_size` must be a positive int. Received: {batch_size!r}."
        )
    module = _layer_module(net, layer)
    target, dtype = place_network(net, device)
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        value = output[0] if isinstance(output, tuple) else output
        captured.append(_pool(value.detach(), pooling).cpu())
        raise _LayerReached

    handle = module.register_forward_hook(hook)
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            for batch in _batches(_prepare(net, data), _num_inputs(net), batch_size):
                inputs = [_as_tensor(x, dtype).to(target) for x in batch]
                try:
                    net(*inputs)
                except _LayerReached:
                    continue
    finally:
        handle.remove()
        net.train(was_training)
    if not captured:
        raise OptionError("activations: `data` holds no observations.")
    return torch.cat(captured)


def _classifiers() -> dict[str, Any]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, RidgeClassifier
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC, LinearSVC

    return {
        "svm": lambda **o: LinearSVC(**{"C": 1.0, **o}),
        "svm-rbf": lambda **o: SVC(**{"kernel": "rbf", **o}),
        "logistic": lambda **o: LogisticRegression(**{"max_iter": 2000, **o}),
        "knn": lambda **o: KNeighborsClassifier(**{"n_neighbors": 5, **o}),
        "ridge": lambda **o: RidgeClassifier(**o),
        "forest": lambda **o: RandomForestClassifier(**{"n_estimators": 200, **o}),
    }


CLASSIFIERS = ("svm", "svm-rbf", "logistic", "knn", "ridge", "forest")


def _as_numpy(values: Any, what: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.dtype == object and what == "features":
        raise OptionError("fit_classifier: `features` must be numeric (N, D).")
    return array


def fit_classifier(
    features: Any,
    labels: Sequence[Any] | np.ndarray | torch.Tensor,
    model: str | Any = "svm",
    *,
    standardize: bool = True,
    **options: Any,
) -> Any:
    """Fit a scikit-learn classifier on extracted features (MATLAB's ``fitcecoc`` on
    ``activations``); returns the fitted estimator (``predict``, ``score``...).

    ``model``: "svm" (linear SVM, one-vs-rest; scales to large feature sets), "svm-rbf",
    "logistic", "knn", "ridge", "forest", or any unfitted scikit-learn estimator. ``options``
    go to the estimator (``C=0.1``). Features are standardized first unless
    ``standardize=False``. Features of more than two dimensions are flattened.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x = np.concatenate([rng.normal(-2, 1, (50, 3)), rng.normal(2, 1, (50, 3))])
        >>> y = ["a"] * 50 + ["b"] * 50
        >>> clf = fit_classifier(x, y, "logistic")
        >>> clf.score(x, y) > 0.95, clf.predict([[3, 3, 3]]).tolist()
        (True, ['b'])
    """
    from sklearn.base import clone, is_classifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = _as_numpy(features, "features")
    y = _as_numpy(labels, "labels")
    if x.ndim > 2:
        x = x.reshape(len(x), -1)
    if x.ndim != 2 or len(x) != len(y):
        raise OptionError(
            f"fit_classifier: `features` must be (N, D) with one label per row. Received "
            f"features of size {x.shape} and {len(y)} labels."
        )
    if isinstance(model, str):
        makers = _classifiers()
        if model not in makers:
            raise OptionError(
                f"fit_classifier: `model` must be one of {list(CLASSIFIERS)} or a scikit-learn "
                f"estimator. Received: model={model!r}."
            )
        estimator = makers[model](**options)
    elif hasattr(model, "fit") and hasattr(model, "get_params") and is_classifier(model):
        estimator = clone(model).set_params(**options) if options else clone(model)
    else:
        raise OptionError(
            f"fit_classifier: `model` must be one of {list(CLASSIFIERS)} or a scikit-learn "
            f"classifier. Received: {type(model).__name__}."
        )
    pipeline = make_pipeline(StandardScaler(), estimator) if standardize else estimator
    return pipeline.fit(x, y)
