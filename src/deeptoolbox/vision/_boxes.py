"""Box labels: BoxLabelDatastore (MATLAB's ``boxLabelDatastore``: boxes and class labels per
image, from arrays, a table, a CSV file or a COCO JSON file) and BoxLabelImageDatastore
(images paired with their boxes, MATLAB's ``combine(imds, blds)``), checked on reading."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from deeptoolbox.data._array import ArrayDatastore
from deeptoolbox.data._augment import ImageAugmenter
from deeptoolbox.data._base import Datastore
from deeptoolbox.errors import DataError, OptionError
from deeptoolbox.vision._unit import unit_images

__all__ = ["BoxLabelDatastore", "BoxLabelImageDatastore", "detection_collate"]

_COLUMNS = ("x_min", "y_min", "x_max", "y_max", "label")


def detection_collate(items: list[tuple[torch.Tensor, dict]]) -> tuple[torch.Tensor, list]:
    """Batch ``(image, target)`` observations: the images stacked (N, C, H, W), the target
    dicts kept as a list (each image has its own number of boxes), as torchvision's
    detection models take them.

    Example:
        >>> t = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
        >>> images, targets = detection_collate([(torch.zeros(3, 8, 8), t)] * 2)
        >>> tuple(images.shape), len(targets)
        ((2, 3, 8, 8), 2)
    """
    images = [image for image, _ in items]
    sizes = sorted({tuple(image.shape) for image in images})
    if len(sizes) > 1:
        raise DataError(
            f"BoxLabelImageDatastore: the images of a batch differ in size {sizes[:4]}; give "
            "the datastore an `output_size` (boxes are scaled with the images)."
        )
    return torch.stack(images), [target for _, target in items]


def _source(sources: Sequence[str] | None, i: int) -> str:
    return f"'{sources[i]}'" if sources is not None else f"observation {i}"


def _as_boxes(value: Any, where: str) -> np.ndarray:
    boxes = np.asarray(value, dtype=np.float64)
    if boxes.size == 0:
        return np.zeros((0, 4), np.float32)
    if boxes.ndim == 1 and boxes.shape[0] == 4:
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise DataError(
            f"BoxLabelDatastore: the boxes of {where} must be a (K, 4) array of [x_min, y_min, "
            f"x_max, y_max] rows. Received shape {boxes.shape}."
        )
    if not np.isfinite(boxes).all():
        raise DataError(f"BoxLabelDatastore: the boxes of {where} hold NaN or Inf values.")
    return boxes.astype(np.float32)


def check_boxes(boxes: np.ndarray, size: tuple[int, int] | None, where: str) -> None:
    """Raise DataError for a box of negative or zero size, or one outside the (H, W) image."""
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    bad = np.nonzero((width <= 0) | (height <= 0))[0]
    if bad.size:
        k = int(bad[0])
        raise DataError(
            f"BoxLabelDatastore: box {k} of {where} is {boxes[k].tolist()} [x_min, y_min, "
            f"x_max, y_max]: width {width[k]:g}, height {height[k]:g}; both must be positive "
            f"({bad.size} such box(es)). Boxes are corners, not [x, y, width, height]."
        )
    if size is None:
        return
    h, w = size
    outside = np.nonzero(
        (boxes[:, 0] < 0) | (boxes[:, 1] < 0) | (boxes[:, 2] > w) | (boxes[:, 3] > h)
    )[0]
    if outside.size:
        k = int(outside[0])
        raise DataError(
            f"BoxLabelDatastore: box {k} of {where} is {boxes[k].tolist()}, outside the image "
            f"of width {w} and height {h} (corners must lie in 0..{w} x 0..{h}; "
            f"{outside.size} such box(es)). Fix the labels, or clip them to the image."
        )


class BoxLabelDatastore(Datastore):
    """Bounding boxes and their class labels, one set per image (MATLAB's
    ``boxLabelDatastore``).

    ``ds[i]`` is ``{"boxes": float32 (K, 4), "labels": int64 (K,)}``: boxes as pixel corners
    ``[x_min, y_min, x_max, y_max]`` and labels as indices into ``classes`` (the format of
    torchvision's detection models). Boxes with a negative or zero width or height, boxes
    outside their image (when ``image_sizes`` are known) and labels that are not among
    ``classes`` raise :class:`DataError` naming the file (or observation) and the box.

    Build it from arrays, or with :meth:`from_table`, :meth:`from_csv`, :meth:`from_coco`
    and :meth:`from_shapes`; pair it with images through :class:`BoxLabelImageDatastore`.

    Args:
        boxes: one (K_i, 4) array per image (K_i may be 0).
        labels: one (K_i,) array per image of class names, or of class indices.
        classes: the class names (default: the sorted names found in ``labels``).
        image_sizes: (H, W) of every image, or one (H, W) for all: boxes are checked to
            lie inside.
        sources: the file name of each image, used in messages and by :meth:`from_table`.

    Example:
        >>> ds = BoxLabelDatastore([[[2, 2, 6, 8]], [[0, 0, 4, 4], [4, 4, 8, 8]]],
        ...                        [["cat"], ["dog", "cat"]], image_sizes=(8, 8))
        >>> ds[1]["labels"].tolist(), ds.classes, ds.count_each_label()
        ([1, 0], ['cat', 'dog'], {'cat': 2, 'dog': 1})
    """

    def __init__(
        self,
        boxes: Sequence[Any],
        labels: Sequence[Any],
        *,
        classes: Sequence[str] | None = None,
        image_sizes: Sequence[int] | Sequence[Sequence[int]] | None = None,
        sources: Sequence[str] | None = None,
    ) -> None:
        if len(boxes) != len(labels):
            raise DataError(
                f"BoxLabelDatastore: {len(boxes)} sets of boxes but {len(labels)} sets of "
                "labels; give one label per box, one set per image."
            )
        self.sources = None if sources is None else [str(s) for s in sources]
        if self.sources is not None and len(self.sources) != len(boxes):
            raise OptionError(
                f"BoxLabelDatastore: {len(self.sources)} `sources` for {len(boxes)} images."
            )
        sizes = _image_sizes(image_sizes, len(boxes))
        names = _class_names(labels, classes)
        self._boxes, self._labels = [], []
        for i, (b, raw) in enumerate(zip(boxes, labels, strict=True)):
            where = _source(self.sources, i)
            array = _as_boxes(b, where)
            index = _label_indices(raw, names, where)
            if len(index) != len(array):
                raise DataError(
                    f"BoxLabelDatastore: {where} has {len(array)} boxes but {len(index)} labels; "
                    "give one label per box."
                )
            check_boxes(array, sizes[i] if sizes is not None else None, where)
            self._boxes.append(torch.from_numpy(array))
            self._labels.append(torch.from_numpy(index))
        self.image_sizes = sizes
        self._classes = names
        self._init_view()

    def _count(self) -> int:
        return len(self._boxes)

    def _load(self, j: int) -> dict[str, torch.Tensor]:
        return {"boxes": self._boxes[j].clone(), "labels": self._labels[j].clone()}

    @property
    def files(self) -> list[str] | None:
        """The source (file name) of each image, in datastore order (None without them)."""
        return None if self.sources is None else [self.sources[j] for j in self._order]

    def count_each_label(self) -> dict[str, int]:
        """Number of boxes of each class (MATLAB's ``countEachLabel``).

        Example:
            >>> BoxLabelDatastore([[[0, 0, 2, 2]]], [["a"]], classes=["a", "b"]).count_each_label()
            {'a': 1, 'b': 0}
        """
        counts = np.zeros(len(self._classes), np.int64)
        for j in self._order:
            counts += np.bincount(self._labels[j].numpy(), minlength=len(counts))
        return dict(zip(self._classes, counts.tolist(), strict=True))

    # -- readers -------------------------------------------------------------------------
    @classmethod
    def from_table(
        cls,
        table: Any,
        *,
        classes: Sequence[str] | None = None,
        files: Sequence[str] | None = None,
    ) -> BoxLabelDatastore:
        """Boxes from a table with one row per box: columns ``file``, ``x_min``, ``y_min``,
        ``x_max``, ``y_max``, ``label`` and optionally ``width`` and ``height`` (the image's,
        for the bounds check). A pandas DataFrame, a dict of columns or a list of row dicts.
        Images come in order of first appearance, or in the order of ``files`` (which may
        name images without boxes).

        Example:
            >>> rows = [{"file": "a.png", "x_min": 1, "y_min": 1, "x_max": 3, "y_max": 4,
            ...          "label": "car"}]
            >>> ds = BoxLabelDatastore.from_table(rows, files=["a.png", "b.png"])
            >>> len(ds), ds[1]["boxes"].shape
            (2, torch.Size([0, 4]))
        """
        rows = _table_rows(table)
        order = list(files) if files is not None else []
        grouped: dict[str, list[dict]] = {f: [] for f in order}
        for number, row in enumerate(rows):
            missing = [c for c in ("file", *_COLUMNS) if c not in row]
            if missing:
                raise DataError(
                    f"BoxLabelDatastore.from_table: row {number} has no column(s) {missing}. "
                    f"Columns needed: file, {', '.join(_COLUMNS)} (and optionally width, height)."
                )
            name = str(row["file"])
            if name not in grouped:
                if files is not None:
                    raise DataError(
                        f"BoxLabelDatastore.from_table: row {number} names file {name!r}, "
                        "which is not in `files`."
                    )
                grouped[name] = []
            grouped[name].append(row)
        boxes, labels, sizes = [], [], []
        for name, group in grouped.items():
            where = f"row(s) of '{name}'"
            try:
                boxes.append([[float(r[c]) for c in _COLUMNS[:4]] for r in group])
            except (TypeError, ValueError) as err:
                raise DataError(f"BoxLabelDatastore.from_table: a box of {where}: {err}.") from err
            labels.append([str(r["label"]) for r in group])
            size = [(int(float(r["height"])), int(float(r["width"])))
                    for r in group if r.get("width") not in (None, "")]  # fmt: skip
            sizes.append(size[0] if size else None)
        known = None if any(s is None for s in sizes) else sizes
        if known is None and any(s is not None for s in sizes):
            for i, size in enumerate(sizes):  # check the boxes of the images whose size is known
                if size is not None:
                    check_boxes(_as_boxes(boxes[i], f"'{list(grouped)[i]}'"), size,
                                f"'{list(grouped)[i]}'")  # fmt: skip
        return cls(boxes, labels, classes=classes, image_sizes=known, sources=list(grouped))

    @classmethod
    def from_csv(
        cls,
        path: str | os.PathLike,
        *,
        classes: Sequence[str] | None = None,
        files: Sequence[str] | None = None,
    ) -> BoxLabelDatastore:
        """Boxes from a CSV file with a header row, one row per box (see :meth:`from_table`);
        ``files`` gives the images' order and may name images without boxes.

        Example:
            >>> import tempfile, pathlib
            >>> path = pathlib.Path(tempfile.mkdtemp()) / "boxes.csv"
            >>> _ = path.write_text("file,x_min,y_min,x_max,y_max,label\\nimg.png,0,0,5,5,cat\\n")
            >>> BoxLabelDatastore.from_csv(path)[0]["boxes"].tolist()
            [[0.0, 0.0, 5.0, 5.0]]
        """
        try:
            with open(path, newline="", encoding="utf-8") as file:
                rows = list(csv.DictReader(file))
        except OSError as err:
            raise DataError(f"BoxLabelDatastore.from_csv: cannot read '{path}': {err}.") from err
        try:
            return cls.from_table(rows, classes=classes, files=files)
        except DataError as err:
            raise DataError(f"{err} (file '{path}')") from None

    @classmethod
    def from_coco(cls, annotations: str | os.PathLike | Mapping[str, Any]) -> BoxLabelDatastore:
        """Boxes from a COCO annotation file (or its parsed dict): ``images`` (id,
        file_name, width, height), ``annotations`` (image_id, category_id, bbox as
        ``[x, y, width, height]``) and ``categories`` (id, name). Every image is kept, with
        or without boxes; crowd annotations (``iscrowd=1``) are left out.

        Example:
            >>> coco = {"images": [{"id": 7, "file_name": "a.jpg", "width": 10, "height": 10}],
            ...         "annotations": [{"id": 1, "image_id": 7, "category_id": 3,
            ...                          "bbox": [1, 2, 4, 5]}],
            ...         "categories": [{"id": 3, "name": "person"}]}
            >>> BoxLabelDatastore.from_coco(coco)[0]["boxes"].tolist()
            [[1.0, 2.0, 5.0, 7.0]]
        """
        where = "BoxLabelDatastore.from_coco"
        if isinstance(annotations, Mapping):
            data, name = annotations, "the annotations"
        else:
            name = f"'{annotations}'"
            try:
                data = json.loads(Path(annotations).read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                raise DataError(f"{where}: cannot read {name}: {err}.") from err
        missing = [k for k in ("images", "annotations", "categories") if k not in data]
        if missing:
            raise DataError(f"{where}: {name} has no {missing} (COCO detection format).")
        categories = {c["id"]: str(c["name"]) for c in data["categories"]}
        images = {im["id"]: im for im in data["images"]}
        boxes: dict[Any, list] = {i: [] for i in images}
        labels: dict[Any, list] = {i: [] for i in images}
        for a in data["annotations"]:
            if a.get("iscrowd", 0):
                continue
            if a["image_id"] not in images or a["category_id"] not in categories:
                raise DataError(
                    f"{where}: annotation {a.get('id')} of {name} names image {a['image_id']} "
                    f"and category {a['category_id']}; "
                    f"{'no such image' if a['image_id'] not in images else 'no such category'}."
                )
            x, y, w, h = (float(v) for v in a["bbox"])
            if w <= 0 or h <= 0:
                file = images[a["image_id"]].get("file_name")
                raise DataError(
                    f"{where}: annotation {a.get('id')} of '{file}' in {name} has bbox "
                    f"{a['bbox']} [x, y, width, height]: width and height must be positive."
                )
            boxes[a["image_id"]].append([x, y, x + w, y + h])
            labels[a["image_id"]].append(categories[a["category_id"]])
        ids = list(images)
        sizes = [(int(images[i]["height"]), int(images[i]["width"])) for i in ids]
        return cls([boxes[i] for i in ids], [labels[i] for i in ids],
                   classes=sorted(set(categories.values())), image_sizes=sizes,
                   sources=[str(images[i].get("file_name", i)) for i in ids])  # fmt: skip

    @classmethod
    def from_shapes(cls, data: Any) -> BoxLabelDatastore:
        """The boxes of generated shapes: :func:`deeptoolbox.datasets.detection_shapes`
        (several per image) or :func:`deeptoolbox.datasets.shapes` (one per image).

        Example:
            >>> from deeptoolbox import datasets
            >>> ds = BoxLabelDatastore.from_shapes(datasets.shapes(4, image_size=16))
            >>> len(ds), ds.classes
            (4, ['circle', 'square', 'triangle'])
        """
        boxes, labels = data.boxes, data.labels
        if isinstance(boxes, np.ndarray) and boxes.ndim == 2:  # shapes(): one box per image
            boxes, labels = [b[None] for b in boxes], [[label] for label in labels]
        size = tuple(int(s) for s in data.images.shape[-2:])
        return cls(boxes, labels, classes=list(data.classes), image_sizes=size)


def _image_sizes(sizes: Any, n: int) -> list[tuple[int, int]] | None:
    if sizes is None:
        return None
    array = np.asarray(sizes)
    if array.shape == (2,):
        return [(int(array[0]), int(array[1]))] * n
    if array.shape == (n, 2):
        return [(int(h), int(w)) for h, w in array]
    raise OptionError(
        f"BoxLabelDatastore: `image_sizes` must be one (H, W) pair or one per image ({n}). "
        f"Received shape {array.shape}."
    )


def _is_name(value: Any) -> bool:
    return isinstance(value, str | np.str_)


def _class_names(labels: Sequence[Any], classes: Sequence[str] | None) -> list[str]:
    if classes is not None:
        if isinstance(classes, str) or not classes or len(set(classes)) != len(classes):
            raise OptionError(
                "BoxLabelDatastore: `classes` must be a non-empty list of distinct names. "
                f"Received: {classes!r}."
            )
        return [str(c) for c in classes]
    names = {str(v) for group in labels for v in np.asarray(group).reshape(-1) if _is_name(v)}
    if not names:
        raise OptionError(
            "BoxLabelDatastore: give `classes` when the labels are class indices (or the "
            "labels hold no names)."
        )
    return sorted(names)


def _label_indices(raw: Any, classes: list[str], where: str) -> np.ndarray:
    values = np.asarray(raw).reshape(-1)
    if values.size == 0:
        return np.zeros(0, np.int64)
    if values.dtype.kind in "iu":
        bad = values[(values < 0) | (values >= len(classes))]
        if bad.size:
            raise DataError(
                f"BoxLabelDatastore: {where} has label index {int(bad[0])}, but there are "
                f"{len(classes)} classes {classes[:20]} (indices 0..{len(classes) - 1})."
            )
        return values.astype(np.int64)
    names = [str(v) for v in values]
    unknown = sorted(set(names) - set(classes))
    if unknown:
        raise DataError(
            f"BoxLabelDatastore: {where} has label(s) {unknown[:10]} that are not among the "
            f"classes {classes[:20]}. Add them to `classes` or fix the labels."
        )
    return np.asarray([classes.index(n) for n in names], np.int64)


def _table_rows(table: Any) -> list[Mapping[str, Any]]:
    if hasattr(table, "to_dict") and hasattr(table, "columns"):  # a pandas DataFrame
        return table.to_dict("records")
    if isinstance(table, Mapping):
        columns = {k: list(v) for k, v in table.items()}
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise DataError(
                f"BoxLabelDatastore.from_table: columns of different lengths {lengths}."
            )
        n = lengths.pop() if lengths else 0
        return [{k: v[i] for k, v in columns.items()} for i in range(n)]
    if isinstance(table, Sequence) and all(isinstance(r, Mapping) for r in table):
        return list(table)
    raise OptionError(
        "BoxLabelDatastore.from_table: `table` must be a pandas DataFrame, a dict of columns or "
        f"a list of row dicts. Received: {type(table).__name__}."
    )


class BoxLabelImageDatastore(Datastore):
    """Images paired with their boxes, for object detection (MATLAB's ``combine(imds,
    blds)``).

    ``ds[i]`` is ``(image, {"boxes", "labels"})``, a float32 (C, H, W) image and its
    targets; batches stack the images and keep the targets a list (:func:`detection_collate`),
    ready for ``train(detector, ds, "model")``. Each image's boxes are checked against its
    size (a box outside raises :class:`DataError` naming the file). With ``output_size``
    images are resized and their boxes scaled with them. While ``ds.training`` is True the
    ``augmenter`` (a :class:`DetectionAugmenter`, or any callable ``(image, target) ->
    (image, target)``) transforms image and boxes together.

    Args:
        images: an ImageDatastore (``labels=None``), any Dataset of (C, H, W) images, or an
            (N, C, H, W) array (uint8 / uint16 scaled to [0, 1]).
        boxes: a :class:`BoxLabelDatastore`.
        output_size: (H, W) every image is resized to (None: keep).
        augmenter: applied while training only.

    Example:
        >>> from deeptoolbox import datasets
        >>> data = datasets.detection_shapes(4, image_size=32)
        >>> ds = BoxLabelImageDatastore(data.images, BoxLabelDatastore.from_shapes(data))
        >>> image, target = ds[0]
        >>> tuple(image.shape), target["boxes"].shape[1], ds.classes
        ((3, 32, 32), 4, ['circle', 'square', 'triangle'])
    """

    collate_fn = staticmethod(detection_collate)

    def __init__(
        self,
        images: Dataset | np.ndarray | torch.Tensor,
        boxes: BoxLabelDatastore,
        *,
        output_size: int | Sequence[int] | None = None,
        augmenter: Any = None,
    ) -> None:
        if isinstance(images, np.ndarray | torch.Tensor):
            if images.ndim != 4:
                raise OptionError(
                    "BoxLabelImageDatastore: `images` must be a Dataset or an (N, C, H, W) array."
                    f" Received shape {tuple(images.shape)}."
                )
            images = ArrayDatastore(unit_images(images))
        if not isinstance(boxes, BoxLabelDatastore):
            raise OptionError(
                "BoxLabelImageDatastore: `boxes` must be a BoxLabelDatastore. Received: "
                f"{type(boxes).__name__}."
            )
        if len(images) != len(boxes):  # type: ignore[arg-type]
            raise DataError(
                f"BoxLabelImageDatastore: {len(images)} images but {len(boxes)} sets of boxes; "  # type: ignore[arg-type]
                "give one set (possibly empty) per image."
            )
        if isinstance(augmenter, ImageAugmenter):
            raise OptionError(
                "BoxLabelImageDatastore: `augmenter` is an ImageAugmenter, which moves the image "
                "alone; use a DetectionAugmenter, which moves the boxes with it."
            )
        if augmenter is not None and not callable(augmenter):
            raise OptionError(
                "BoxLabelImageDatastore: `augmenter` must be a DetectionAugmenter or a callable "
                f"(image, target) -> (image, target). Received: {type(augmenter).__name__}."
            )
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.output_size = None if output_size is None else tuple(int(s) for s in output_size)
        self.images, self.box_labels, self.augmenter = images, boxes, augmenter
        self._image_of = _pairing(getattr(images, "files", None), boxes.sources, len(boxes))
        self._classes = boxes.classes
        self._init_view()

    def _count(self) -> int:
        return len(self.box_labels)

    @property
    def files(self) -> list[str] | None:
        """The image file of each observation, in datastore order (None without files)."""
        images = getattr(self.images, "files", None)
        if images:
            return [images[self._image_of[j]] for j in self._order]
        files = self.box_labels.sources
        return None if files is None else [files[j] for j in self._order]

    def train(self, mode: bool = True) -> Datastore:
        """Set the training mode here and in the image datastore; returns ``self``.

        Example:
            >>> ds = BoxLabelImageDatastore(np.zeros((1, 3, 4, 4)),
            ...                             BoxLabelDatastore([[]], [[]], classes=["a"]))
            >>> ds.eval().training
            False
        """
        if isinstance(self.images, Datastore):
            self.images.train(mode)
        return super().train(mode)

    def _where(self, j: int) -> str:
        files = getattr(self.images, "files", None)
        if isinstance(files, list) and self._image_of[j] < len(files):
            return f"image '{files[self._image_of[j]]}'"
        return f"image {_source(self.box_labels.sources, j)}"

    def _load(self, j: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image = self.images[self._image_of[j]]
        image = image[0] if isinstance(image, tuple | list) else image
        image = torch.as_tensor(image, dtype=torch.float32)
        target = self.box_labels._load(j)
        if image.dim() != 3:
            raise DataError(
                f"BoxLabelImageDatastore: {self._where(j)} is {tuple(image.shape)}; images must "
                "be (C, H, W)."
            )
        check_boxes(target["boxes"].numpy(), tuple(image.shape[-2:]), self._where(j))
        if self.output_size is not None and tuple(image.shape[-2:]) != self.output_size:
            image, target = _resized(image, target, self.output_size)
        if self.augmenter is not None and self.training:
            image, target = self.augmenter(image, target)
        return image, target


def _pairing(images: list[str] | None, sources: list[str] | None, count: int) -> list[int]:
    """For each set of boxes, the position of its image: by file name when the boxes name
    files (a CSV's or COCO file's ``file`` column) and the images are files, else by position.
    A box file naming images that are not there, or naming one twice, raises DataError."""
    if not images or not sources:
        return list(range(count))

    def key(path: str) -> str:
        return path.replace("\\", "/")

    full = [key(p) for p in images]
    found: list[int | None] = []
    for source in map(key, sources):
        matches = [i for i, p in enumerate(full) if p == source or p.endswith("/" + source)]
        found.append(matches[0] if len(matches) == 1 else None)
    if all(f is None for f in found) and all("/" not in s and "." not in s for s in sources):
        return list(range(count))  # the boxes name no files (ids): pair by position
    missing = [s for s, f in zip(sources, found, strict=True) if f is None]
    if missing:
        raise DataError(
            f"BoxLabelImageDatastore: the boxes name files the images do not have (or have "
            f"more than once): {missing[:5]}{' ...' if len(missing) > 5 else ''}. Images are "
            f"matched to boxes by file name; the images are e.g. {images[:3]}."
        )
    if len(set(found)) != len(found):
        raise DataError("BoxLabelImageDatastore: the boxes name the same image file twice.")
    return [int(f) for f in found]  # type: ignore[arg-type]


def _resized(image: torch.Tensor, target: dict, size: tuple[int, ...]) -> tuple[torch.Tensor, dict]:
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    boxes = tv_tensors.BoundingBoxes(target["boxes"], format="XYXY",
                                     canvas_size=tuple(image.shape[-2:]))  # fmt: skip
    out, boxes = v2.Resize(list(size), antialias=True)(tv_tensors.Image(image), boxes)
    return out.as_subclass(torch.Tensor), {**target, "boxes": boxes.as_subclass(torch.Tensor)}
