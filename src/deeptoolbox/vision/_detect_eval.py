"""evaluate_detection (MATLAB's ``evaluateObjectDetection``): COCO mean average precision
(torchmetrics' MeanAveragePrecision with the faster-coco-eval or pycocotools backend),
per-class AP and precision-recall curves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from deeptoolbox.errors import DataError, OptionError

__all__ = ["DetectionMetrics", "evaluate_detection"]


@dataclass(frozen=True)
class DetectionMetrics:
    """Detection quality over a set of images (see :func:`evaluate_detection`).

    Attributes:
        map: mean AP over IoU thresholds 0.5:0.05:0.95 (COCO's primary metric).
        map_50: mean AP at IoU 0.5 (PASCAL VOC's metric).
        map_75: mean AP at IoU 0.75.
        ap: AP@[0.5:0.95] of each class (NaN for a class with no ground truth).
        ap_50: AP@0.5 of each class.
        recall_levels: the 101 recall levels of the curves (0, 0.01, ..., 1).
        precision: for each class, its interpolated precision at each recall level at
            IoU 0.5 (NaN where the class has no ground truth); 0 where a recall is not
            reached.
        classes: the class names.

    Example:
        >>> truth = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([0])}]
        >>> found = [{**truth[0], "scores": torch.tensor([0.9])}]
        >>> evaluate_detection(found, truth, classes=["a"]).map
        1.0
    """

    map: float
    map_50: float
    map_75: float
    ap: dict[str, float]
    ap_50: dict[str, float]
    recall_levels: np.ndarray = field(repr=False)
    precision: dict[str, np.ndarray] = field(repr=False)
    classes: list[str] = field(repr=False)

    def plot_precision_recall(self, path: str | Path) -> Path:
        """Write the precision-recall curve of every class at IoU 0.5 to ``path`` (PNG).

        Example:
            >>> import tempfile, pathlib
            >>> truth = [{"boxes": torch.tensor([[0.0, 0, 9, 9]]), "labels": torch.tensor([0])}]
            >>> m = evaluate_detection([{**truth[0], "scores": torch.tensor([1.0])}], truth)
            >>> m.plot_precision_recall(pathlib.Path(tempfile.mkdtemp()) / "pr.png").exists()
            True
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(4.2, 3.4))
        for name in self.classes:
            curve = self.precision[name]
            if not np.isnan(curve).all():
                axis.plot(self.recall_levels, curve, label=f"{name} (AP50 {self.ap_50[name]:.3f})")
        axis.set_xlabel("recall")
        axis.set_ylabel("precision")
        axis.set_xlim(0, 1.0)
        axis.set_ylim(0, 1.02)
        axis.set_title(f"IoU 0.5: mAP {self.map_50:.3f}", fontsize=9)
        axis.legend(fontsize=7, loc="lower left")
        figure.tight_layout()
        path = Path(path)
        figure.savefig(path, dpi=90)
        plt.close(figure)
        return path


def _targets(ground_truth: Any) -> list[dict[str, torch.Tensor]]:
    from deeptoolbox.inference import reading_without_augmentation
    from deeptoolbox.vision._boxes import BoxLabelDatastore

    if isinstance(ground_truth, BoxLabelDatastore):
        return [ground_truth[i] for i in range(len(ground_truth))]
    if isinstance(ground_truth, Dataset):
        with reading_without_augmentation(ground_truth):
            items = [ground_truth[i] for i in range(len(ground_truth))]  # type: ignore[arg-type]
        return [item[1] if isinstance(item, tuple | list) else item for item in items]
    if isinstance(ground_truth, list | tuple):
        return list(ground_truth)
    raise OptionError(
        "evaluate_detection: `ground_truth` must be a BoxLabelDatastore, a "
        "BoxLabelImageDatastore or a list of {'boxes', 'labels'} dicts. Received: "
        f"{type(ground_truth).__name__}."
    )


def _check(items: list[Any], keys: tuple[str, ...], what: str) -> list[dict[str, Any]]:
    checked = []
    for number, item in enumerate(items):
        if not isinstance(item, dict) or any(k not in item for k in keys):
            found = sorted(item) if isinstance(item, dict) else type(item).__name__
            raise DataError(
                f"evaluate_detection: {what} {number} must be a dict with {list(keys)}. "
                f"Received: {found}."
            )
        entry = {k: torch.as_tensor(item[k]).detach().cpu() for k in keys}
        entry["boxes"] = entry["boxes"].float().reshape(-1, 4)
        entry["labels"] = entry["labels"].long().reshape(-1)
        if "scores" in entry:
            entry["scores"] = entry["scores"].float().reshape(-1)
        if item.get("names") is not None:
            entry["names"] = [str(n) for n in item["names"]]
        checked.append(entry)
    return checked


def _mean_average_precision() -> Any:
    from torchmetrics.detection import MeanAveragePrecision

    for backend in ("faster_coco_eval", "pycocotools"):
        try:
            return MeanAveragePrecision(box_format="xyxy", iou_type="bbox", class_metrics=True,
                                        extended_summary=True, backend=backend)  # fmt: skip
        except ModuleNotFoundError:
            continue
    raise OptionError(
        "evaluate_detection needs faster-coco-eval or pycocotools (COCO evaluation): "
        "pip install 'deeptoolbox[vision]'."
    )


def evaluate_detection(
    results: Sequence[dict[str, Any]],
    ground_truth: Any,
    *,
    classes: Sequence[str] | None = None,
) -> DetectionMetrics:
    """Score detections against ground-truth boxes (MATLAB's ``evaluateObjectDetection``):
    COCO's mean average precision over IoU 0.5:0.95, at 0.5 and 0.75, per-class AP and
    precision-recall curves (101-point interpolated, as COCO), computed by torchmetrics'
    ``MeanAveragePrecision`` with the faster-coco-eval backend (pycocotools when it is
    missing).

    ``results`` are :func:`detect`'s output (dicts with ``boxes``, ``scores``, ``labels``),
    one per image; when they carry ``names`` (as ``detect`` gives them), boxes are matched to
    the ground truth's classes by name, whatever the detector's class order; ``ground_truth`` is a :class:`BoxLabelDatastore`, a
    :class:`BoxLabelImageDatastore` or a list of ``{"boxes", "labels"}`` dicts, in the same
    order. Detect with a low threshold (0.05) for a full precision-recall curve.

    Example:
        >>> truth = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([0])}]
        >>> shifted = [{"boxes": torch.tensor([[5.0, 0, 15, 10]]), "labels": torch.tensor([0]),
        ...             "scores": torch.tensor([0.8])}]  # IoU 1/3: a miss and a false positive
        >>> evaluate_detection(shifted, truth, classes=["a"]).map_50
        0.0
    """
    targets = _check(_targets(ground_truth), ("boxes", "labels"), "ground truth")
    predictions = _check(list(results), ("boxes", "scores", "labels"), "result")
    if len(predictions) != len(targets):
        raise DataError(
            f"evaluate_detection: {len(predictions)} results but {len(targets)} ground-truth "
            "images; give one of each per image, in the same order."
        )
    names = classes if classes is not None else getattr(ground_truth, "classes", None)
    if names is None:
        top = max([int(t["labels"].max()) for t in targets + predictions if len(t["labels"])],
                  default=0)  # fmt: skip
        names = [str(k) for k in range(top + 1)]
    names = [str(n) for n in names]
    predictions, names = _by_name(predictions, names)
    for what, items in (("ground truth", targets), ("result", predictions)):
        for number, item in enumerate(items):
            labels = item["labels"]
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(names)):
                raise DataError(
                    f"evaluate_detection: {what} {number} has labels {labels.tolist()[:10]}, but "
                    f"there are {len(names)} classes {names[:20]}."
                )
    metric = _mean_average_precision()
    metric.update(predictions, targets)
    values = metric.compute()
    return _summarize(values, names, targets)


def _by_name(predictions: list[dict], names: list[str]) -> tuple[list[dict], list[str]]:
    """Results that name their classes (``detect`` gives ``names``) get their labels as
    positions in the ground truth's ``names``, whatever order the detector's classes are in;
    names the ground truth lacks are added after its own (they can only be false positives)."""
    names = list(names)
    remapped = []
    for item in predictions:
        given = item.get("names")
        if given is None:
            remapped.append(item)
            continue
        if len(given) != len(item["labels"]):
            raise DataError(
                f"evaluate_detection: a result has {len(item['labels'])} labels but "
                f"{len(given)} names; give one name per box (as detect does)."
            )
        for name in map(str, given):
            if name not in names:
                names.append(name)
        labels = torch.tensor([names.index(str(n)) for n in given], dtype=torch.long)
        rest = {k: v for k, v in item.items() if k != "names"}
        remapped.append({**rest, "labels": labels.to(item["labels"].device)})
    return remapped, names


def _summarize(values: dict[str, Any], names: list[str], targets: list[dict]) -> DetectionMetrics:
    present = values["classes"].reshape(-1).tolist()
    with_truth = {int(c) for t in targets for c in t["labels"].tolist()}
    precision = values["precision"]  # (T IoUs, R recalls, K classes, A areas, M max dets)
    levels = np.linspace(0.0, 1.0, precision.shape[1])
    ap, ap_50, curves = {}, {}, {}
    for k, name in enumerate(names):
        if k not in present or k not in with_truth:
            ap[name] = ap_50[name] = float("nan")
            curves[name] = np.full(len(levels), np.nan)
            continue
        column = present.index(k)
        curve = precision[0, :, column, 0, -1].double().numpy()
        curves[name] = np.where(curve < 0, 0.0, curve)
        ap_50[name] = float(curves[name].mean())
        ap[name] = float(values["map_per_class"].reshape(-1)[column])
    mean = {key: float(values[key]) for key in ("map", "map_50", "map_75")}
    return DetectionMetrics(mean["map"], mean["map_50"], mean["map_75"], ap, ap_50, levels,
                            curves, list(names))  # fmt: skip
