"""ObjectDetector: torchvision's detection models (FCOS, RetinaNet, Faster R-CNN, SSDlite)
with a small toolbox backbone or a torchvision one, built without downloading weights and
trained by ``train(detector, data, "model")``; detect() gives boxes, scores and labels."""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from deeptoolbox.errors import InputSizeError, OptionError

__all__ = ["ObjectDetector", "ARCHITECTURES", "BACKBONES"]

ARCHITECTURES = ("fcos", "retinanet", "fasterrcnn", "ssdlite")
BACKBONES = ("small", "resnet18", "resnet34", "resnet50")
_BACKGROUND_CLASS = ("fasterrcnn", "ssdlite")  # torchvision's label 0 is background there


class SmallBackbone(nn.Module):
    """A small convolutional backbone with a feature pyramid, for CPU training in minutes:
    conv-batchnorm-ReLU stages at strides 2, 4, 8 and 16 and an FPN over the last three
    (``out_channels`` channels each, keys "0", "1", "2").

    Example:
        >>> features = SmallBackbone(3, 32)(torch.zeros(1, 3, 64, 64))
        >>> {k: tuple(v.shape[-2:]) for k, v in features.items()}
        {'0': (16, 16), '1': (8, 8), '2': (4, 4)}
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 64, width: int = 32) -> None:
        from torchvision.ops import FeaturePyramidNetwork

        super().__init__()

        def stage(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            )  # fmt: skip

        widths = [width // 2, width, 2 * width, 2 * width]
        self.stages = nn.ModuleList()
        for cin, cout in zip([in_channels, *widths[:-1]], widths, strict=True):
            self.stages.append(stage(cin, cout))
        self.fpn = FeaturePyramidNetwork(widths[1:], out_channels)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        levels = OrderedDict()
        for number, block in enumerate(self.stages):
            x = block(x)
            if number >= 1:
                levels[str(number - 1)] = x
        return self.fpn(levels)


def _size(input_size: Any) -> tuple[int, int, int]:
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(size) == 2:
        size = (3, *size)
    if len(size) != 3 or not all(isinstance(s, int) and s >= 16 for s in size[1:]) or size[0] < 1:
        raise OptionError(
            "ObjectDetector: `input_size` must be (H, W) or (C, H, W) with H, W >= 16 (or one "
            f"int for square images). Received: input_size={input_size!r}."
        )
    return size  # type: ignore[return-value]


def _backbone(backbone: Any, architecture: str, channels: int) -> nn.Module:
    if isinstance(backbone, nn.Module):
        if not isinstance(getattr(backbone, "out_channels", None), int):
            raise OptionError(
                "ObjectDetector: a `backbone` module needs an int `out_channels` (the channels "
                "of every feature map it returns, as torchvision's detection models require)."
            )
        return backbone
    if backbone == "small":
        return SmallBackbone(channels)
    if backbone in BACKBONES:
        if channels != 3:
            raise OptionError(
                f"ObjectDetector: backbone={backbone!r} reads 3-channel images; input_size has "
                f"{channels}. Use backbone='small' for other channel counts."
            )
        from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
        from torchvision.ops.feature_pyramid_network import LastLevelP6P7

        extra = LastLevelP6P7(256, 256) if architecture in ("fcos", "retinanet") else None
        return resnet_fpn_backbone(
            backbone_name=backbone, weights=None, norm_layer=nn.BatchNorm2d,
            trainable_layers=5, returned_layers=[2, 3, 4], extra_blocks=extra,
        )  # fmt: skip
    raise OptionError(
        f"ObjectDetector: `backbone` must be one of {BACKBONES} or a torch module with "
        f"`out_channels` returning a dict of feature maps. Received: backbone={backbone!r}."
    )


def _strides(backbone: nn.Module, size: tuple[int, int, int]) -> tuple[list[str], list[int]]:
    """The feature map names of ``backbone`` and their strides (one dummy forward pass)."""
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        features = backbone(torch.zeros(1, *size))
    backbone.train(was_training)
    if isinstance(features, torch.Tensor):
        features = OrderedDict([("0", features)])
    strides = [max(1, round(size[1] / f.shape[-2])) for f in features.values()]
    return list(features), strides


def _build(architecture: str, backbone: nn.Module, classes: int, size: tuple[int, int, int],
           mean: list[float], std: list[float]) -> nn.Module:  # fmt: skip
    from torchvision.models import detection
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    common = {"min_size": min(size[1:]), "max_size": max(size[1:]),
              "image_mean": mean, "image_std": std}  # fmt: skip
    if architecture == "ssdlite":
        from torchvision.models.detection.transform import GeneralizedRCNNTransform

        model = detection.ssdlite320_mobilenet_v3_large(
            weights=None, weights_backbone=None, num_classes=classes + 1, score_thresh=0.01,
        )  # fmt: skip
        model.transform = GeneralizedRCNNTransform(**common, size_divisible=1,
                                                   fixed_size=tuple(size[1:]))  # fmt: skip
        return model
    names, strides = _strides(backbone, size)
    if architecture == "fcos":
        anchors = AnchorGenerator(tuple((s,) for s in strides), ((1.0,),) * len(strides))
        head = detection.fcos.FCOSHead(backbone.out_channels, 1, classes, num_convs=2)
        return detection.FCOS(backbone, classes, anchor_generator=anchors, head=head,
                              score_thresh=0.05, **common)  # fmt: skip
    scales = tuple(tuple(4 * s * 2 ** (k / 3) for k in range(3)) for s in strides)
    ratios = ((0.5, 1.0, 2.0),) * len(strides)
    if architecture == "retinanet":
        anchors = AnchorGenerator(scales, ratios)
        return detection.RetinaNet(backbone, classes, anchor_generator=anchors, **common)
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    anchors = AnchorGenerator(tuple((4 * s,) for s in strides), ratios)
    pooled = [n for n in names if n != "pool"]
    return detection.FasterRCNN(
        backbone, None, rpn_anchor_generator=anchors,
        box_roi_pool=MultiScaleRoIAlign(pooled, output_size=7, sampling_ratio=2),
        box_head=TwoMLPHead(backbone.out_channels * 49, 256),
        box_predictor=FastRCNNPredictor(256, classes + 1), **common,
    )  # fmt: skip


class ObjectDetector(nn.Module):
    """An object detector over torchvision's detection models (MATLAB's ``yolov4ObjectDetector``
    / ``fasterRCNNObjectDetector``, trained by ``train`` instead of ``trainYOLOv4ObjectDetector``).

    ``architecture`` is "fcos" (anchor-free, the quickest to train from scratch),
    "retinanet", "fasterrcnn" (two stages) or "ssdlite" (its own MobileNetV3 backbone).
    ``backbone`` is "small" (:class:`SmallBackbone`: a few conv stages and an FPN, trains on
    a CPU in minutes), "resnet18" / "resnet34" / "resnet50" (torchvision's, with an FPN,
    random weights: nothing is downloaded) or a module with ``out_channels`` that returns a
    dict of feature maps. Anchor sizes follow the strides of the backbone's feature maps.

    Images are float (N, C, H, W) in [0, 1] of ``input_size`` (H, W) or (C, H, W); they are
    normalized with ``image_mean`` / ``image_std`` inside. Labels are indices into
    ``classes``. In train mode ``detector(images, targets)`` (a list of ``{"boxes",
    "labels"}`` dicts) returns a dict of losses, so ``train(detector, data, "model", ...)``
    trains it; in eval mode ``detector(images)`` returns one ``{"boxes", "scores",
    "labels"}`` dict per image (use :func:`detect`).

    Example:
        >>> torch.manual_seed(0) and None
        >>> detector = ObjectDetector(["circle", "square"], input_size=(32, 32))
        >>> targets = [{"boxes": torch.tensor([[4.0, 4.0, 12.0, 12.0]]), "labels": torch.tensor([1])}]
        >>> sorted(detector.train()(torch.rand(1, 3, 32, 32), targets))
        ['bbox_ctrness', 'bbox_regression', 'classification']
        >>> sorted(detector.eval()(torch.rand(1, 3, 32, 32))[0])
        ['boxes', 'labels', 'scores']
    """

    def __init__(
        self,
        classes: Sequence[str],
        architecture: str = "fcos",
        *,
        backbone: str | nn.Module = "small",
        input_size: int | Sequence[int] = (224, 224),
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(classes, str) or not classes or len(set(classes)) != len(classes):
            raise OptionError(
                "ObjectDetector: `classes` must be a non-empty list of distinct class names. "
                f"Received: classes={classes!r}."
            )
        if architecture not in ARCHITECTURES:
            raise OptionError(
                f"ObjectDetector: `architecture` must be one of {ARCHITECTURES}. Received: "
                f"architecture={architecture!r}."
            )
        if architecture == "ssdlite" and backbone not in ("small", "mobilenet_v3_large"):
            raise OptionError(
                "ObjectDetector: architecture='ssdlite' has its own MobileNetV3 backbone; leave "
                f"`backbone` out or pass 'mobilenet_v3_large'. Received: backbone={backbone!r}."
            )
        self.classes = [str(c) for c in classes]
        self.architecture = architecture
        self.input_size = _size(input_size)
        channels = self.input_size[0]
        mean = list(image_mean) if image_mean is not None else [0.5] * channels
        std = list(image_std) if image_std is not None else [0.25] * channels
        self.backbone_name = backbone if isinstance(backbone, str) else type(backbone).__name__
        body = None if architecture == "ssdlite" else _backbone(backbone, architecture, channels)
        self.model = _build(architecture, body, len(self.classes), self.input_size, mean, std)
        self._offset = 1 if architecture in _BACKGROUND_CLASS else 0

    def extra_repr(self) -> str:
        return (f"architecture={self.architecture!r}, backbone={self.backbone_name!r}, "
                f"classes={self.classes!r}, input_size={self.input_size}")  # fmt: skip

    def _images(self, images: Any) -> list[torch.Tensor]:
        if isinstance(images, torch.Tensor) and images.dim() == 4:
            images = list(images)
        if not isinstance(images, list | tuple) or not images:
            raise InputSizeError(
                "ObjectDetector: `images` must be an (N, C, H, W) tensor or a list of (C, H, W) "
                f"tensors. Received: {type(images).__name__}"
                f"{' of size ' + str(tuple(images.shape)) if isinstance(images, torch.Tensor) else ''}."
            )
        channels = self.input_size[0]
        for number, image in enumerate(images):
            if (
                not isinstance(image, torch.Tensor)
                or image.dim() != 3
                or image.shape[0] != channels
            ):
                shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image)
                raise InputSizeError(
                    f"ObjectDetector: image {number} is {shape}; the detector takes ({channels}, "
                    "H, W) images (input_size "
                    f"{self.input_size})."
                )
        return list(images)

    def _targets(self, targets: Any, count: int) -> list[dict[str, torch.Tensor]]:
        if not isinstance(targets, list | tuple) or len(targets) != count:
            raise InputSizeError(
                f"ObjectDetector: training needs one target dict per image ({count}); received "
                f"{type(targets).__name__}"
                f"{f' of {len(targets)}' if isinstance(targets, list | tuple) else ''}. Read the "
                "data with a BoxLabelImageDatastore."
            )
        checked = []
        for number, target in enumerate(targets):
            boxes, labels = target.get("boxes"), target.get("labels")
            if not isinstance(boxes, torch.Tensor) or not isinstance(labels, torch.Tensor):
                raise InputSizeError(
                    f"ObjectDetector: target {number} must be a dict with tensors 'boxes' (K, 4) "
                    f"and 'labels' (K,). Received keys {sorted(target)}."
                )
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(self.classes)):
                raise InputSizeError(
                    f"ObjectDetector: target {number} has labels {labels.tolist()[:10]}; labels "
                    f"are indices of the {len(self.classes)} classes (0..{len(self.classes) - 1})."
                )
            checked.append({"boxes": boxes.float().reshape(-1, 4),
                            "labels": labels.long() + self._offset})  # fmt: skip
        return checked

    def forward(self, images: Any, targets: list[dict[str, torch.Tensor]] | None = None) -> Any:
        images = self._images(images)
        if self.training:
            if targets is None:
                raise InputSizeError(
                    "ObjectDetector: in train mode the detector needs targets (it returns its "
                    "losses); call detector.eval() or detect() to detect objects. To train it, "
                    "use train(detector, data, 'model', options): loss='model' hands it the "
                    "targets and minimizes the losses it returns."
                )
            return self.model(images, self._targets(targets, len(images)))
        detections = self.model(images)
        return [{**d, "labels": d["labels"] - self._offset} for d in detections]

    @contextlib.contextmanager
    def score_threshold(self, value: float) -> Iterator[None]:
        """Within the block, the model keeps detections scoring at least ``value`` (before
        :func:`detect`'s own threshold); restored afterwards.

        Example:
            >>> detector = ObjectDetector(["a"], input_size=32)
            >>> with detector.score_threshold(0.001):
            ...     inside = detector.model.score_thresh
            >>> inside, detector.model.score_thresh
            (0.001, 0.05)
        """
        owner = self.model.roi_heads if self.architecture == "fasterrcnn" else self.model
        saved = owner.score_thresh
        owner.score_thresh = float(value)
        try:
            yield
        finally:
            owner.score_thresh = saved


def check_classes(detector: Any, classes: Any) -> list[int] | None:
    """The indices of ``classes`` among the detector's, or an OptionError naming those it does
    not know."""
    if classes is None:
        return None
    known = list(getattr(detector, "classes", None) or [])
    names = [classes] if isinstance(classes, str) else list(classes)
    unknown = [c for c in names if c not in known]
    if unknown:
        raise OptionError(
            f"detect: the detector was not trained on class(es) {unknown}; it detects "
            f"{known}. Pass `classes` from these, or train a detector with the classes you need."
        )
    return [known.index(c) for c in names]


def as_image_list(images: Any, where: str) -> list[torch.Tensor]:
    """Images of any accepted form as a list of float (C, H, W) tensors in [0, 1]: one
    (C, H, W) image, an (N, C, H, W) batch (tensor or numpy; uint8 / uint16 scaled), a list
    of images, or a Dataset whose items are images or (image, target) pairs (read without
    augmentation). Float images with values far outside [0, 1] (0-255 floats) are refused."""
    pictures = _image_list(images, where)
    for index, picture in enumerate(pictures):
        _check_unit_range(picture, index, where)
    return pictures


def _check_unit_range(picture: torch.Tensor, index: int, where: str) -> None:
    low, high = float(picture.min()), float(picture.max())
    if low < -0.5 or high > 1.5:
        raise OptionError(
            f"{where}: image {index} is a float image with values in [{low:g}, {high:g}]; "
            "detectors take images in [0, 1]. Divide 0-255 values by 255, or pass uint8 "
            "images (scaled automatically)."
        )


def _image_list(images: Any, where: str) -> list[torch.Tensor]:
    from torch.utils.data import Dataset

    from deeptoolbox.inference import reading_without_augmentation
    from deeptoolbox.vision._unit import unit_images

    if isinstance(images, Dataset):
        with reading_without_augmentation(images):
            items = [images[i] for i in range(len(images))]  # type: ignore[arg-type]
        return [unit_images(item[0] if isinstance(item, tuple | list) else item) for item in items]
    if isinstance(images, np.ndarray | torch.Tensor):
        values = unit_images(images)
        if values.dim() == 3:
            return [values]
        if values.dim() == 4:
            return list(values)
    elif isinstance(images, list | tuple) and images:
        return [unit_images(image) for image in images]
    shape = getattr(images, "shape", None)
    raise InputSizeError(
        f"{where}: `images` must be a (C, H, W) image, an (N, C, H, W) batch, a list of images "
        f"or a Dataset of them. Received: {type(images).__name__}"
        f"{'' if shape is None else f' of size {tuple(shape)}'}."
    )
