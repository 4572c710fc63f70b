"""Top-k predictions and the logic behind ``deeptoolbox models`` / ``deeptoolbox classify``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from deeptoolbox.errors import DeepToolboxError, OptionError

__all__ = ["top_classes", "models_command", "classify_command"]


def top_classes(
    net: torch.nn.Module, images: Any, *, top: int = 5
) -> list[list[tuple[str, float]]]:
    """The ``top`` most likely classes and their probabilities, for each observation.

    ``images`` is anything :func:`deeptoolbox.classify` takes (for pretrained networks: image
    files, PIL images, uint8 arrays, or preprocessed float tensors).

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(3), L.Softmax()], classes=["a", "b", "c"])
        >>> [len(row) for row in top_classes(net, torch.randn(4, 2), top=2)]
        [2, 2, 2, 2]
    """
    from deeptoolbox.inference import classify

    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise OptionError(f"top_classes: `top` must be a positive int. Received: top={top!r}.")
    _, scores = classify(net, images)
    if scores.dim() != 2:
        raise OptionError(
            f"top_classes: expected one score vector per observation; the network gives scores "
            f"of size {tuple(scores.shape)}."
        )
    classes = getattr(net, "classes", None) or [str(i) for i in range(scores.shape[1])]
    values, indices = scores.float().topk(min(top, scores.shape[1]), dim=1)
    return [
        [(classes[i], float(v)) for v, i in zip(row_v.tolist(), row_i.tolist(), strict=True)]
        for row_v, row_i in zip(values, indices, strict=True)
    ]


def models_command(family: str | None = None) -> int:
    """``deeptoolbox models``: print the registry table; returns the exit status.

    Example:
        >>> models_command("squeezenet")  # doctest: +ELLIPSIS
        name ...
        0
    """
    from deeptoolbox.hub._registry import list_pretrained

    try:
        print(list_pretrained(family=family))
    except DeepToolboxError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


_MODEL_FILE_SUFFIXES = (".zip", ".onnx", ".keras", ".h5", ".pt", ".pt2")


def _is_model_file(model: str) -> bool:
    """A model file or saved-network folder, rather than a registry name."""
    path = Path(model).expanduser()
    if path.is_dir():
        return (path / "network.json").is_file()
    return path.suffix.lower() in _MODEL_FILE_SUFFIXES or path.is_file()


def _open_model(model: str, weights: str | None, cache_dir: str | None) -> torch.nn.Module:
    """A network from a model file (saved network, ONNX, Keras, PyTorch) or the hub registry."""
    if _is_model_file(model):
        if weights is not None:
            raise OptionError(
                f"classify: --weights applies to pretrained model names; {model} is a model "
                "file that holds its own weights. Drop --weights."
            )
        from deeptoolbox.interop import read_model

        return read_model(Path(model).expanduser())
    from deeptoolbox.hub._pretrained import pretrained

    chosen: str | None = "default" if weights is None else weights
    if isinstance(chosen, str) and chosen.lower() == "none":
        chosen = None
    return pretrained(model, weights=chosen, cache_dir=cache_dir)


def classify_command(
    image: str,
    model: str,
    *,
    weights: str | None = None,
    top: int = 5,
    cache_dir: str | None = None,
) -> int:
    """``deeptoolbox classify IMAGE --model NAME_OR_FILE [--weights FILE] [--top 5]``.

    Prints the top classes of ``image``. ``model`` is a pretrained model name (see
    ``deeptoolbox models``) or a model file: a network saved with ``deeptoolbox.save``
    (``.zip`` or folder), ``.onnx``, ``.keras``/``.h5``, ``.pt``/``.pt2``. The image is resized
    to the network's input size (and normalized as the network was trained). ``weights``
    (pretrained names only) is a weights file, a weights tag, "none" for random weights, or
    None for the published weights. Returns the exit status (2 with a message on stderr for
    a bad model, image or weights file).

    Example:
        >>> classify_command("missing.jpg", "no_such_model")
        2
    """
    try:
        net = _open_model(model, weights, cache_dir)
        rows = top_classes(net, image, top=top)[0]
    except (DeepToolboxError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    width = max(len(label) for label, _ in rows)
    print(f"{image} ({model}):")
    for label, probability in rows:
        print(f"  {label.ljust(width)}  {probability:7.2%}")
    return 0
