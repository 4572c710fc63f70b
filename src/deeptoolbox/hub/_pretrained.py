"""pretrained() and pretrained_module(): registry models with their weights, as Networks.

torchvision models are built with ``weights=None`` and the weights are then read from the
cache (downloaded once, checksum verified) or from a local file, so loading never goes through
pickle and works offline with a filled cache. ``"timm:NAME"`` and ``"hf:ORG/NAME"`` go through
timm and transformers when those packages are installed.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deeptoolbox.errors import MissingDependencyError, OptionError, WeightsError
from deeptoolbox.hub._registry import ModelInfo, model_info, resolve_name, torchvision_info
from deeptoolbox.hub._weights import fetch, load_weights_file
from deeptoolbox.interop import from_torch

__all__ = ["pretrained", "pretrained_module"]

Weights = str | os.PathLike | None
_AUX = {"googlenet": ("aux1.", "aux2."), "inception": ("AuxLogits.",)}
_FILE_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")


def _require(package: str, name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError as err:
        raise MissingDependencyError(
            f"pretrained({name!r}) needs the {package} package, which is not installed. Install "
            f"it with `pip install {package}` and try again."
        ) from err


def _weights_choice(info: ModelInfo, weights: Weights) -> tuple[Any, Path | None]:
    """Return (torchvision weights enum or None, local file or None) for ``weights``."""
    from torchvision import models

    enum_class = models.get_model_weights(info.name)
    if weights is None:
        return None, None
    if isinstance(weights, str) and weights in ("default", "DEFAULT"):
        return enum_class.DEFAULT, None
    if isinstance(weights, str) and weights in info.weight_tags:
        return enum_class[weights], None
    path = Path(weights)
    text = str(weights)
    looks_like_file = "/" in text or os.sep in text or text.endswith(_FILE_SUFFIXES)
    if isinstance(weights, os.PathLike) or path.is_file() or looks_like_file:
        return None, path
    raise OptionError(
        f"pretrained({info.name!r}): `weights` must be 'default', one of {list(info.weight_tags)}, "
        f"the path of a weights file, or None (random weights). Received: {weights!r}."
    )


def _builder_options(
    info: ModelInfo, enum: Any, from_file: bool, options: dict[str, Any]
) -> dict[str, Any]:
    """Builder arguments that make a ``weights=None`` model match the published weights."""
    chosen: dict[str, Any] = {}
    if enum is not None:
        chosen["num_classes"] = len(enum.meta["categories"])
        if info.family == "vit":
            chosen["image_size"] = enum.meta["min_size"][0]
    if info.family in _AUX:
        chosen["init_weights"] = False  # weights are loaded next (or left at torch's init)
        if enum is not None or from_file:
            chosen.update(transform_input=True, aux_logits=True)
    return {**chosen, **options}


def _load_state(module: nn.Module, state: dict[str, torch.Tensor], what: str, family: str) -> None:
    auxiliary = _AUX.get(family, ())
    try:
        result = module.load_state_dict(state, strict=not auxiliary)
    except RuntimeError as err:
        raise WeightsError(
            f"{what}: the weights do not fit the architecture: {err}".strip()[:2000]
        ) from err
    missing = [k for k in getattr(result, "missing_keys", []) if not k.startswith(auxiliary)]
    unexpected = list(getattr(result, "unexpected_keys", []))
    if missing or unexpected:
        raise WeightsError(
            f"{what}: the weights do not fit the architecture: missing keys {missing[:8]}, "
            f"unexpected keys {unexpected[:8]}."
        )


def _drop_auxiliary(module: nn.Module, family: str, options: dict[str, Any]) -> None:
    """torchvision drops the auxiliary classifiers of pretrained GoogLeNet / Inception v3."""
    if family not in _AUX or options.get("aux_logits"):
        return
    module.aux_logits = False
    for attribute in ("aux1", "aux2", "AuxLogits"):
        if hasattr(module, attribute):
            setattr(module, attribute, None)


def _torchvision_module(
    name: str, weights: Weights, cache_dir: Any, options: dict[str, Any]
) -> tuple[nn.Module, ModelInfo, dict[str, Any]]:
    from torchvision import models

    info = model_info(name)
    enum, path = _weights_choice(info, weights)
    if enum is not None:
        info = torchvision_info(name, enum)
    kwargs = _builder_options(info, enum, path is not None, options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # googlenet/inception init notices
        module = models.get_model(name, weights=None, **kwargs)
    provenance: dict[str, Any] = {"weights": None}
    if enum is not None:
        file = fetch(info.url, directory=cache_dir, what=f"pretrained({name!r})")
        _load_state(
            module, load_weights_file(file), f"pretrained({name!r}) from {file}", info.family
        )
        provenance = {"weights": enum.name, "url": info.url, "file": str(file)}
    elif path is not None:
        state = load_weights_file(path)
        _load_state(module, state, f"pretrained({name!r}) from {path}", info.family)
        provenance = {"weights": str(path)}
    _drop_auxiliary(module, info.family, options)
    provenance["categories"] = list(enum.meta["categories"]) if enum is not None else None
    return module.eval(), info, provenance


def _timm_module(
    name: str, weights: Weights, cache_dir: Any, options: dict[str, Any]
) -> tuple[nn.Module, ModelInfo, dict[str, Any]]:
    timm = _require("timm", name)
    model_name = name.split(":", 1)[1]
    extra = {"cache_dir": str(cache_dir)} if cache_dir is not None else {}
    download = isinstance(weights, str) and weights in ("default", "DEFAULT")
    module = timm.create_model(model_name, pretrained=download, **extra, **options)
    if weights is not None and not download:
        _load_state(module, load_weights_file(weights), f"pretrained({name!r}) from {weights}", "")
    config = timm.data.resolve_data_config({}, model=module)
    size = tuple(int(d) for d in config["input_size"])
    crop_pct = float(config.get("crop_pct", 0.875) or 0.875)
    preprocessing = {
        "type": "image_classification",
        "resize_size": int(size[-1] / crop_pct),
        "crop_size": size[-1],
        "mean": [float(v) for v in config["mean"]],
        "std": [float(v) for v in config["std"]],
        "interpolation": str(config.get("interpolation", "bilinear")),
    }
    info = ModelInfo(
        name=name, family=type(module).__name__.lower(), source="timm",
        parameters=sum(p.numel() for p in module.parameters()), input_size=size,  # type: ignore[arg-type]
        accuracy=None, license=str(getattr(module, "pretrained_cfg", {}).get("license", "see model card")),
        weights=str(weights), preprocessing=preprocessing,
    )  # fmt: skip
    categories = _timm_categories(timm, module)
    return module.eval(), info, {"weights": None if weights is None else str(weights),
                                 "categories": categories}  # fmt: skip


def _timm_categories(timm: Any, module: nn.Module) -> list[str] | None:
    try:
        subset = timm.data.infer_imagenet_subset(module)
        return list(timm.data.ImageNetInfo(subset).label_descriptions()) if subset else None
    except (AttributeError, TypeError, ValueError):
        return None


class _Logits(nn.Module):
    """Return ``.logits`` of a transformers image classifier, so it yields one tensor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


def _hf_module(
    name: str, weights: Weights, cache_dir: Any, options: dict[str, Any]
) -> tuple[nn.Module, ModelInfo, dict[str, Any]]:
    from deeptoolbox.hub._weights import is_offline

    repo = name.split(":", 1)[1]
    if repo.startswith("timm/"):
        return _timm_module(f"timm:hf-hub:{repo}", weights, cache_dir, options)
    transformers = _require("transformers", name)
    hub = {"cache_dir": None if cache_dir is None else str(cache_dir),
           "local_files_only": is_offline()}  # fmt: skip
    auto = transformers.AutoModelForImageClassification
    if isinstance(weights, str) and weights in ("default", "DEFAULT"):
        model = auto.from_pretrained(repo, **hub, **options)
    else:
        model = auto.from_config(transformers.AutoConfig.from_pretrained(repo, **hub), **options)
        if weights is not None:
            _load_state(
                model, load_weights_file(weights), f"pretrained({name!r}) from {weights}", ""
            )
    processor = transformers.AutoImageProcessor.from_pretrained(repo, **hub)
    size = getattr(processor, "crop_size", None) or getattr(processor, "size", {}) or {}
    crop = int(size.get("height") or size.get("shortest_edge") or 224)
    resize = getattr(processor, "size", {}) or {}
    preprocessing = {
        "type": "image_classification",
        "resize_size": int(resize.get("shortest_edge") or resize.get("height") or crop),
        "crop_size": crop,
        "mean": [float(v) for v in processor.image_mean],
        "std": [float(v) for v in processor.image_std],
        "interpolation": "bilinear",
    }
    labels = model.config.id2label
    info = ModelInfo(
        name=name, family=model.config.model_type, source="huggingface",
        parameters=sum(p.numel() for p in model.parameters()), input_size=(3, crop, crop),
        accuracy=None, license="see model card", weights=str(weights), preprocessing=preprocessing,
    )  # fmt: skip
    categories = [labels[i] for i in range(len(labels))]
    return _Logits(model).eval(), info, {"weights": str(weights), "categories": categories}


def _module(name: str, weights: Weights, cache_dir: Any, options: dict[str, Any]):
    if not isinstance(name, str) or not name:
        raise OptionError(f"pretrained: `name` must be a model name string. Received: {name!r}.")
    if name.startswith("timm:"):
        return _timm_module(name, weights, cache_dir, options)
    if name.startswith(("hf:", "hf-hub:")):
        return _hf_module(name, weights, cache_dir, options)
    resolved, note = resolve_name(name)
    module, info, provenance = _torchvision_module(resolved, weights, cache_dir, options)
    if resolved != name or note:
        provenance = {**provenance, "requested": name, "note": note}
    return module, info, provenance


def pretrained_module(
    name: str,
    weights: Weights = "default",
    *,
    cache_dir: str | os.PathLike | None = None,
    **options: Any,
) -> nn.Module:
    """The plain PyTorch module of a registry model with its weights loaded, in eval mode.

    Same arguments as :func:`pretrained`; use it to drop down to PyTorch. ``options`` go to
    the model builder (``num_classes=10`` with ``weights=None``, for example).

    Example:
        >>> import torch
        >>> model = pretrained_module("squeezenet1_1", weights=None, num_classes=5)
        >>> model(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 5])
    """
    module, _, _ = _module(name, weights, cache_dir, options)
    return module


def _unique(names: list[str]) -> list[str]:
    """Make class names unique ('crane', 'crane (2)'), as a Network requires."""
    seen: dict[str, int] = {}
    unique = []
    for label in names:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return unique


def _checked_input_size(name: str, info: ModelInfo, input_size: Any) -> tuple[int, int, int]:
    size = tuple(input_size) if isinstance(input_size, list | tuple) else None
    valid = (
        size is not None
        and len(size) == 3
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in size)
    )
    if not valid or size[0] != info.input_size[0] or size[1] != size[2]:  # type: ignore[index]
        raise OptionError(
            f"pretrained({name!r}): `input_size` must be (C, H, W) with C = "
            f"{info.input_size[0]} (the weights' channels) and H = W (the preprocessing crops "
            f"squares). Received: input_size={input_size!r}. Example: input_size=(3, 64, 64)."
        )
    if info.family in ("vit", "swin", "maxvit") and size != info.input_size:
        raise OptionError(
            f"pretrained({name!r}): {info.family} models are built for "
            f"{info.input_size[1]}x{info.input_size[2]} images (their position embeddings or "
            f"windows fix the size); received input_size={input_size!r}. Resize the images to "
            "that size instead."
        )
    return size  # type: ignore[return-value]


def _resized_preprocessing(spec: dict[str, Any], size: tuple[int, int, int]) -> dict[str, Any]:
    """The weights' preprocessing for another crop size (the resize keeps its ratio)."""
    if not spec or size[1] == spec.get("crop_size"):
        return dict(spec)
    ratio = spec["resize_size"] / spec["crop_size"]
    return {**spec, "crop_size": size[1], "resize_size": round(size[1] * ratio)}


def pretrained(
    name: str,
    weights: Weights = "default",
    *,
    cache_dir: str | os.PathLike | None = None,
    input_size: tuple[int, int, int] | None = None,
    **options: Any,
):
    """A pretrained image classifier as a :class:`~deeptoolbox.Network` (MATLAB's
    ``imagePretrainedNetwork``).

    The network carries its class names (``net.classes``), its input size and the resize /
    crop / normalization of its weights in ``net.metadata``, so ``classify(net, "cat.jpg")``
    preprocesses the image itself. Float tensors are taken as already preprocessed.

    Args:
        name: a registry name (see :func:`list_pretrained`: "resnet18", "mobilenet_v3_small",
            "vit_b_16"...), MATLAB's name for it ("squeezenet" gives squeezenet1_1 with a
            note, "mobilenetv2", "efficientnetb0", "inceptionv3"...), ``"timm:NAME"`` (needs
            timm) or ``"hf:ORG/NAME"`` (needs transformers; ``"hf:timm/NAME"`` goes through
            timm).
        weights: "default" (the published weights, downloaded once into the cache), a weights
            tag such as "IMAGENET1K_V1", the path of a local ``.safetensors`` / ``.pth`` state
            dict, or None for random weights.
        cache_dir: weights cache folder (default ``$DEEPTOOLBOX_CACHE``, else torch.hub's
            ``checkpoints`` folder, so earlier torchvision downloads are reused).
        input_size: (C, H, W) images the network takes, when not the weights' own size
            (``(3, 64, 64)`` for small images; the same weights, and ``classify``'s crop
            follows). Convolutional families only: ViT, Swin and MaxViT fix their size.
        **options: passed to the model builder (``num_classes=10`` with ``weights=None``).

    Raises:
        UnknownModelError: ``name`` is not in the registry.
        WeightsError: the weights are not cached while ``DEEPTOOLBOX_OFFLINE=1`` (the message
            says which file to put where), the download failed, or a file does not fit.
        ChecksumError: a download does not match its published SHA-256.
        MissingDependencyError: timm / transformers are needed and not installed.

    Example:
        >>> import torch
        >>> net = pretrained("squeezenet1_1", weights=None)
        >>> net.metadata["input_size"], len(net.classes)
        ([3, 224, 224], 1000)
        >>> pretrained("squeezenet1_1", weights=None, input_size=(3, 64, 64)).metadata["input_size"]
        [3, 64, 64]
    """
    module, info, provenance = _module(name, weights, cache_dir, options)
    size = info.input_size if input_size is None else _checked_input_size(name, info, input_size)
    note = provenance.get("note")
    if note:
        warnings.warn(note, UserWarning, stacklevel=2)
    categories = provenance.pop("categories", None)
    net = from_torch(module, torch.zeros(1, *size))
    outputs = net.output_names
    width = net.output_shape(outputs[0]) if len(outputs) == 1 else None
    if categories is None and "num_classes" not in options:  # random or local weights
        categories = _default_categories(info)
    if categories is not None and width is not None and width[-1] == len(categories):
        net.classes = _unique([str(c) for c in categories])
    net.metadata.update(
        {
            "input_size": list(size),
            "preprocessing": _resized_preprocessing(info.preprocessing, size),
            "pretrained": {
                "name": info.name, "family": info.family, "source": info.source,
                "license": info.license, "head": info.head, **provenance,
            },
        }
    )  # fmt: skip
    return net


def _default_categories(info: ModelInfo) -> list[str] | None:
    """ImageNet categories for a random-weights torchvision model of the default width."""
    if info.source != "torchvision":
        return None
    from torchvision import models

    return list(models.get_model_weights(info.name).DEFAULT.meta["categories"])
