"""DeepLabv3 from torchvision (MATLAB's ``deeplabv3plus``), randomly initialized or with a
pretrained backbone from the hub's weights cache."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from deeptoolbox.errors import OptionError, WeightsError
from deeptoolbox.layers._base import check_positive_int

__all__ = ["DEEPLAB_BACKBONES", "DeepLabV3", "deeplabv3"]

DEEPLAB_BACKBONES = ("resnet50", "resnet101", "mobilenet_v3_large")


class DeepLabV3(nn.Module):
    """A torchvision DeepLabv3 that returns its segmentation scores (N, K, H, W) as one
    tensor (torchvision's returns a dict), with class names; built by :func:`deeplabv3`.

    ``model`` is the torchvision module (``model.backbone``, ``model.classifier``), for
    freezing layers or dropping down to PyTorch.

    Example:
        >>> import torch
        >>> net = deeplabv3(3, backbone="mobilenet_v3_large").eval()
        >>> net(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 3, 64, 64])
    """

    def __init__(self, model: nn.Module, classes: Sequence[str] | None = None) -> None:
        super().__init__()
        self.model = model
        self.classes = None if classes is None else [str(c) for c in classes]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def _load_backbone(model: nn.Module, backbone: str, weights: Any, cache_dir: Any) -> dict[str, Any]:
    from deeptoolbox.hub._pretrained import pretrained_module

    try:
        source = pretrained_module(backbone, weights, cache_dir=cache_dir)
    except WeightsError as err:  # the hub's hint names its own argument, weights=
        message = str(err).replace("pass weights=", "pass backbone_weights=")
        raise WeightsError(f"deeplabv3: {message}") from err
    state = source.state_dict()
    if backbone.startswith("mobilenet"):
        state = {
            k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")
        }
    else:
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = model.backbone.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise WeightsError(
            f"deeplabv3: the {backbone} weights do not fit the DeepLabv3 backbone: missing "
            f"{missing[:5]}, unexpected {unexpected[:5]}."
        )
    return {"backbone": backbone, "backbone_weights": str(weights)}


def deeplabv3(
    num_classes: int,
    *,
    backbone: str = "resnet50",
    backbone_weights: str | os.PathLike | None = None,
    classes: Sequence[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> DeepLabV3:
    """A DeepLabv3 segmentation network (torchvision's; the closest to MATLAB's
    ``deeplabv3plus``: atrous spatial pyramid pooling on a dilated backbone, without v3+'s
    decoder), trained with :func:`~deeptoolbox.train` and :func:`segmentation_loss`.

    Args:
        num_classes: classes to segment, background included.
        backbone: "resnet50", "resnet101" or "mobilenet_v3_large".
        backbone_weights: None (random initialization), "default" (the published ImageNet
            weights of the backbone from the hub's cache, downloaded once when allowed;
            with ``DEEPTOOLBOX_OFFLINE=1`` a missing file raises WeightsError naming where
            to put it), a weights tag ("IMAGENET1K_V2") or the path of a state-dict file of
            the classification model. The segmentation head always starts random.
        classes: class names, one per class.
        cache_dir: the weights cache folder (see ``hub.cache_dir``).

    Returns:
        A :class:`DeepLabV3` module: images (N, 3, H, W) in, scores (N, K, H, W) out.
        Normalize images as the backbone's weights expect (``hub.model_info(backbone)``).

    Example:
        >>> net = deeplabv3(2, backbone="mobilenet_v3_large", classes=["bg", "object"])
        >>> net.classes, type(net.model).__name__
        (['bg', 'object'], 'DeepLabV3')
    """
    from torchvision.models import segmentation

    check_positive_int("deeplabv3", "num_classes", num_classes, "deeplabv3(4)")
    if backbone not in DEEPLAB_BACKBONES:
        raise OptionError(
            f"deeplabv3: `backbone` must be one of {', '.join(map(repr, DEEPLAB_BACKBONES))}. "
            f"Received: backbone={backbone!r}."
        )
    if classes is not None and len(classes) != num_classes:
        raise OptionError(
            f"deeplabv3: `classes` must name {num_classes} classes (num_classes). Received "
            f"{len(classes)}: {list(classes)!r}."
        )
    build = getattr(segmentation, f"deeplabv3_{backbone}")
    model = build(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)
    net = DeepLabV3(model, classes)
    if backbone_weights is not None:
        net.provenance = _load_backbone(model, backbone, backbone_weights, cache_dir)
    return net
