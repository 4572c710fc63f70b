"""The registry of pretrained image classifiers and :func:`list_pretrained`.

Entries are read from torchvision's weight enums (``meta["num_params"]``, ``meta["_metrics"]``,
``meta["categories"]``, the URL and the transforms preset), so nothing is downloaded and the
figures are the ones torchvision publishes.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from deeptoolbox.errors import UnknownModelError

__all__ = [
    "ModelInfo", "ModelTable", "list_pretrained", "model_info", "resolve_name", "FAMILY_HEADS",
    "MATLAB_NAMES",
]  # fmt: skip

# Module path of the final learnable layer (the classifier head) of each torchvision family.
FAMILY_HEADS: dict[str, str] = {
    "alexnet": "classifier.6",
    "convnext": "classifier.2",
    "densenet": "classifier",
    "efficientnet": "classifier.1",
    "googlenet": "fc",
    "inception": "fc",
    "maxvit": "classifier.5",
    "mnasnet": "classifier.1",
    "mobilenet_v2": "classifier.1",
    "mobilenet_v3": "classifier.3",
    "regnet": "fc",
    "resnet": "fc",
    "shufflenet_v2": "fc",
    "squeezenet": "classifier.1",
    "swin": "head",
    "vgg": "classifier.6",
    "vit": "heads.head",
}
_FAMILY_NAMES = {
    "mobilenetv2": "mobilenet_v2",
    "mobilenetv3": "mobilenet_v3",
    "shufflenetv2": "shufflenet_v2",
    "swin_transformer": "swin",
    "vision_transformer": "vit",
}
_HASH = re.compile(r"-([a-f0-9]{6,})\.")

# MATLAB's imagePretrainedNetwork names -> (registry name, note when the model differs)
_SIZE_NOTE = (
    "MATLAB's {matlab} takes {size}x{size} images; torchvision's {name} is built and trained "
    "for 224x224. Pass input_size=(3, {size}, {size}) for MATLAB's size."
)
MATLAB_NAMES: dict[str, tuple[str, str | None]] = {
    "squeezenet": ("squeezenet1_1", "MATLAB's squeezenet is SqueezeNet v1.1: loading "
                   "squeezenet1_1. " + _SIZE_NOTE.format(matlab="squeezenet", size=227,
                                                           name="squeezenet1_1")),
    "alexnet": ("alexnet", _SIZE_NOTE.format(matlab="alexnet", size=227, name="alexnet")),
    "googlenet": ("googlenet", None),
    "inceptionv3": ("inception_v3", None),
    "densenet201": ("densenet201", None),
    "mobilenetv2": ("mobilenet_v2", None),
    "resnet18": ("resnet18", None),
    "resnet50": ("resnet50", None),
    "resnet101": ("resnet101", None),
    "efficientnetb0": ("efficientnet_b0", None),
    "vgg16": ("vgg16", None),
    "vgg19": ("vgg19", None),
}  # fmt: skip
_MATLAB_ELSEWHERE = {  # MATLAB names whose model torchvision does not have
    "xception": "pretrained('timm:legacy_xception') (with timm)",
    "inceptionresnetv2": "pretrained('timm:inception_resnet_v2') (with timm)",
    "nasnetlarge": "pretrained('timm:nasnetalarge') (with timm)",
    "darknet53": "pretrained('timm:darknet53') (with timm)",
    "shufflenet": "pretrained('shufflenet_v2_x1_0'): MATLAB's shufflenet is ShuffleNet v1, "
    "which torchvision does not have; v2 is its successor",
    "nasnetmobile": "a model from timm ('timm:NAME') or the Hugging Face Hub ('hf:ORG/NAME'); "
    "torchvision has no NASNet",
    "darknet19": "pretrained('timm:darknet53') (with timm); torchvision has no DarkNet",
}
TORCHVISION_LICENSE = "BSD-3-Clause"


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one pretrained model (its default weights).

    ``accuracy`` is the ImageNet-1K top-1 / top-5 accuracy in percent that the source
    publishes (None where it publishes none); ``preprocessing`` is the resize / crop /
    normalization the weights were trained with.

    Example:
        >>> info = model_info("resnet18")
        >>> info.family, info.parameters, info.input_size, info.accuracy["top1"]
        ('resnet', 11689512, (3, 224, 224), 69.758)
    """

    name: str
    family: str
    source: str
    parameters: int | None
    input_size: tuple[int, int, int]
    accuracy: dict[str, float] | None
    license: str
    weights: str
    url: str | None = None
    file_name: str | None = None
    sha256_prefix: str | None = None
    head: str | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)
    weight_tags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The entry as a plain dict (JSON-safe).

        Example:
            >>> model_info("squeezenet1_1").to_dict()["file_name"]
            'squeezenet1_1-b8a52dc0.pth'
        """
        data = asdict(self)
        data["input_size"] = list(self.input_size)
        data["weight_tags"] = list(self.weight_tags)
        return data


class ModelTable(Sequence[ModelInfo]):
    """A list of :class:`ModelInfo` rows that prints as a table.

    Example:
        >>> table = list_pretrained(family="squeezenet")
        >>> [row["name"] for row in table.to_list()]
        ['squeezenet1_0', 'squeezenet1_1']
        >>> print(str(table).splitlines()[0].split())
        ['name', 'family', 'parameters', 'input', 'top-1', 'top-5', 'license']
    """

    _COLUMNS = ("name", "family", "parameters", "input", "top-1", "top-5", "license")

    def __init__(self, rows: Sequence[ModelInfo]) -> None:
        self._rows = list(rows)

    def __getitem__(self, index):  # type: ignore[override]
        return self._rows[index]

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[ModelInfo]:
        return iter(self._rows)

    @property
    def names(self) -> list[str]:
        """The model names, in table order."""
        return [row.name for row in self._rows]

    def to_list(self) -> list[dict[str, Any]]:
        """The rows as a list of dicts (feed it to ``pandas.DataFrame`` if you like)."""
        return [row.to_dict() for row in self._rows]

    def _cells(self, row: ModelInfo) -> list[str]:
        accuracy = row.accuracy or {}
        return [
            row.name,
            row.family,
            "-" if row.parameters is None else f"{row.parameters / 1e6:.1f}M",
            "x".join(str(d) for d in row.input_size),
            f"{accuracy['top1']:.1f}" if "top1" in accuracy else "-",
            f"{accuracy['top5']:.1f}" if "top5" in accuracy else "-",
            row.license,
        ]

    def __str__(self) -> str:
        lines = [list(self._COLUMNS), *(self._cells(row) for row in self._rows)]
        widths = [max(len(line[i]) for line in lines) for i in range(len(self._COLUMNS))]
        text = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                for line in lines]  # fmt: skip
        text.insert(1, "  ".join("-" * w for w in widths))
        text.append(
            f"{len(self._rows)} models; accuracy: ImageNet-1K top-1/top-5 (%) as published. "
            "Also: pretrained('timm:NAME') with timm, pretrained('hf:ORG/NAME') with transformers."
        )
        return "\n".join(text)

    def __repr__(self) -> str:
        return f"ModelTable({len(self._rows)} models)"


def _family(builder_module: str) -> str:
    tail = builder_module.rsplit(".", 1)[-1]
    return _FAMILY_NAMES.get(tail, tail)


def _preprocessing(weights: Any) -> dict[str, Any]:
    """The resize / crop / normalization of a torchvision weights' ``transforms`` preset."""
    preset = weights.transforms
    keywords = dict(getattr(preset, "keywords", {}))
    target = getattr(preset, "func", preset)
    defaults = {
        key: p.default
        for key, p in inspect.signature(target.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    values = {**defaults, **keywords}
    interpolation = values.get("interpolation", "bilinear")
    return {
        "type": "image_classification",
        "resize_size": int(values["resize_size"]),
        "crop_size": int(values["crop_size"]),
        "mean": [float(v) for v in values["mean"]],
        "std": [float(v) for v in values["std"]],
        "interpolation": getattr(interpolation, "value", str(interpolation)),
    }


def torchvision_info(name: str, weights: Any) -> ModelInfo:
    """Build the :class:`ModelInfo` of torchvision model ``name`` with ``weights`` (an enum)."""
    from torchvision import models

    meta = weights.meta
    family = _family(models.get_model_builder(name).__module__)
    metrics = meta.get("_metrics", {}).get("ImageNet-1K")
    accuracy = {"top1": metrics["acc@1"], "top5": metrics["acc@5"]} if metrics else None
    file_name = weights.url.rsplit("/", 1)[-1]
    digest = _HASH.search(file_name)
    preprocessing = _preprocessing(weights)
    crop = preprocessing["crop_size"]
    return ModelInfo(
        name=name,
        family=family,
        source="torchvision",
        parameters=meta.get("num_params"),
        input_size=(3, crop, crop),
        accuracy=accuracy,
        license="CC-BY-NC-4.0" if "SWAG" in weights.name else TORCHVISION_LICENSE,
        weights=weights.name,
        url=weights.url,
        file_name=file_name,
        sha256_prefix=digest.group(1) if digest else None,
        head=FAMILY_HEADS.get(family),
        preprocessing=preprocessing,
        weight_tags=tuple(w.name for w in models.get_model_weights(name)),
    )


@functools.cache
def _torchvision_table() -> dict[str, ModelInfo]:
    from torchvision import models

    def natural(name: str) -> list:
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]

    table = {}
    for name in sorted(models.list_models(module=models), key=natural):
        table[name] = torchvision_info(name, models.get_model_weights(name).DEFAULT)
    return table


def resolve_name(name: str) -> tuple[str, str | None]:
    """The registry name for ``name``, which may be spelled as MATLAB's
    ``imagePretrainedNetwork`` spells it, and a note when the model differs from MATLAB's.

    Example:
        >>> resolve_name("mobilenetv2")
        ('mobilenet_v2', None)
        >>> resolve_name("squeezenet")[0]
        'squeezenet1_1'
    """
    if not isinstance(name, str):
        return name, None
    if name in _torchvision_table():
        return name, None
    key = name.lower()
    if key in MATLAB_NAMES:
        return MATLAB_NAMES[key]
    if key in _MATLAB_ELSEWHERE:
        raise UnknownModelError(
            f"pretrained: MATLAB's {name!r} is not in the registry (torchvision's models). "
            f"Use {_MATLAB_ELSEWHERE[key]}; see deeptoolbox.hub.list_pretrained() for the rest."
        )
    return name, None


def model_info(name: str) -> ModelInfo:
    """Registry entry of a torchvision model name (or MATLAB's name for it, e.g.
    ``"mobilenetv2"``); unknown names get close matches listed.

    Example:
        >>> model_info("mobilenet_v3_small").head
        'classifier.3'
        >>> model_info("efficientnetb0").name
        'efficientnet_b0'
    """
    table = _torchvision_table()
    name, _ = resolve_name(name)
    if name in table:
        return table[name]
    close = difflib.get_close_matches(str(name), list(table), n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise UnknownModelError(
        f"pretrained: unknown model {name!r}.{hint} See deeptoolbox.hub.list_pretrained() for "
        "the registry, or use 'timm:NAME' (timm) or 'hf:ORG/NAME' (Hugging Face Hub)."
    )


def list_pretrained(*, family: str | None = None) -> ModelTable:
    """The registry of pretrained image classifiers as a printable table.

    Each row gives the name, family, parameter count, input size (C, H, W), the ImageNet-1K
    top-1 / top-5 accuracy the source publishes, and the weights' license. Models from timm
    (``"timm:NAME"``) and the Hugging Face Hub (``"hf:ORG/NAME"``) load by name as well when
    those packages are installed; they are not listed.

    Args:
        family: keep only this family ("resnet", "mobilenet_v3", "vit"...).

    Example:
        >>> table = list_pretrained()
        >>> "resnet50" in table.names and len(table) >= 10
        True
        >>> table.to_list()[0]["name"]
        'alexnet'
    """
    rows = list(_torchvision_table().values())
    if family is not None:
        families = sorted({row.family for row in rows})
        if family not in families:
            raise UnknownModelError(
                f"list_pretrained: unknown family {family!r}. Families: {families}."
            )
        rows = [row for row in rows if row.family == family]
    return ModelTable(rows)
