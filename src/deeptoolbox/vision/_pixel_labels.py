"""Pixel labels: PixelLabelDatastore (MATLAB's ``pixelLabelDatastore``), images paired with
their label maps (MATLAB's ``pixelLabelImageDatastore`` / ``combine(imds, pxds)``), and a
writer of label-map files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from deeptoolbox._atomic import atomic_path
from deeptoolbox.data import _files
from deeptoolbox.data._array import ArrayDatastore
from deeptoolbox.data._augment import ImageAugmenter
from deeptoolbox.data._base import Datastore
from deeptoolbox.data._image import IMAGE_EXTENSIONS, _check_size, decode_image
from deeptoolbox.errors import DataError, OptionError
from deeptoolbox.vision._unit import unit_images

__all__ = [
    "IGNORE_INDEX",
    "PixelLabelDatastore",
    "PixelLabelImageDatastore",
    "write_pixel_labels",
]

IGNORE_INDEX = -100
"""Label of pixels that belong to no class (PyTorch's ``ignore_index``): losses and metrics
skip them."""

_UNDEFINED = ("error", "ignore")
LabelId = int | Sequence[int]


def _label_value(value: Any, where: str) -> int:
    """One label id as an int: a gray value, or an RGB triple packed as r * 65536 + g * 256 + b."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool) and 0 <= value <= 65535:
        return int(value)
    if (
        isinstance(value, Sequence)
        and len(value) == 3
        and all(isinstance(c, int | np.integer) and 0 <= c <= 255 for c in value)
    ):
        r, g, b = (int(c) for c in value)
        return -(r * 65536 + g * 256 + b) - 1  # negative: RGB ids never collide with gray ones
    raise OptionError(
        f"PixelLabelDatastore: {where} must be a gray value (an int in 0..65535) or an RGB "
        f"triple (three ints in 0..255). Received: {value!r}."
    )


def _check_label_ids(classes: Sequence[Any], label_ids: Sequence[Any]) -> dict[int, int]:
    """The class index of each label id; a class may have several ids (a list of them)."""
    if isinstance(classes, str) or not isinstance(classes, Sequence) or not classes:
        raise OptionError(
            "PixelLabelDatastore: `classes` must be a non-empty list of class names. Received: "
            f"{classes!r}. Example: classes=['background', 'road'], label_ids=[0, 255]."
        )
    if len(set(map(str, classes))) != len(classes):
        raise OptionError(f"PixelLabelDatastore: `classes` has duplicates: {list(classes)!r}.")
    if not isinstance(label_ids, Sequence) or len(label_ids) != len(classes):
        raise OptionError(
            f"PixelLabelDatastore: `label_ids` must give one id (or a list of ids) per class: "
            f"{len(classes)} for classes {list(classes)!r}. Received: label_ids={label_ids!r}."
        )
    table: dict[int, int] = {}
    for index, (name, ids) in enumerate(zip(classes, label_ids, strict=True)):
        several = isinstance(ids, list) or (
            isinstance(ids, tuple) and ids and not isinstance(ids[0], int | np.integer)
        )
        for value in ids if several else [ids]:
            code = _label_value(value, f"the label id of class {name!r}")
            if code in table:
                raise OptionError(
                    f"PixelLabelDatastore: label id {value!r} is given for class "
                    f"{classes[table[code]]!r} and for class {name!r}; each id names one class."
                )
            table[code] = index
    return table


def _check_reachable(ids: torch.Tensor | None, path: str) -> None:
    """An 8-bit label file holds 0..255: a gray label id above that could never be found."""
    if ids is None or not bool((ids > 255).any()):
        return
    raise DataError(
        f"PixelLabelDatastore: label image '{path}' stores 8-bit values (0..255), but label "
        f"ids {[int(v) for v in ids[ids > 255][:8]]} are above 255, so their classes could "
        "never appear. Give the ids the file holds, or write 16-bit label images."
    )


def _decode_ids(path: str, rgb: bool, remote: _files.Remote | None = None,
                ids_wanted: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """A label file's ids as an int64 (H, W) tensor (RGB packed as in :func:`_label_value`);
    ``ids_wanted``: the gray ids the classes use, checked against an 8-bit file's range."""
    try:
        data = _files.read_bytes(path, remote)
    except OSError as err:
        raise DataError(f"PixelLabelDatastore: cannot read label image '{path}': {err}.") from err
    stored = decode_image(data, "stored", path)
    image = stored.to(torch.int64)
    if not rgb and (stored.dtype == torch.uint8 or _is_palette_png(data)):
        _check_reachable(ids_wanted, path)
    if not rgb and _is_palette_png(data):
        return _palette_indices(data, path)  # MATLAB reads indexed label files as indices
    if image.shape[0] == 1:
        if rgb:
            raise DataError(
                f"PixelLabelDatastore: '{path}' is a gray image, but `label_ids` are RGB "
                "triples. Give gray values as label ids, or write the labels in colour."
            )
        return image[0]
    if not rgb:
        if bool((image == image[:1]).all()):
            return image[0]  # gray values stored in an RGB file
        raise DataError(
            f"PixelLabelDatastore: '{path}' is a colour image, but `label_ids` are gray values. "
            "Give RGB triples as label ids, e.g. label_ids=[(0, 0, 0), (255, 0, 0)]."
        )
    return -(image[0] * 65536 + image[1] * 256 + image[2]) - 1


def _is_palette_png(data: bytes) -> bool:
    """True for a PNG with a colour palette (IHDR colour type 3), as VOC / Cityscapes write."""
    return (
        data[:8] == b"\x89PNG\r\n\x1a\n"
        and len(data) > 25
        and data[12:16] == b"IHDR"
        and data[25] == 3
    )


def _palette_indices(data: bytes, path: str) -> torch.Tensor:
    """The palette indices of an indexed PNG (already decoded once, so it is sound)."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        if image.mode != "P":
            raise DataError(
                f"PixelLabelDatastore: '{path}' declares a palette but reads as {image.mode}."
            )
        return torch.from_numpy(np.asarray(image, dtype=np.int64).copy())


class PixelLabelDatastore(Datastore):
    """Label maps stored as image files, one per image (MATLAB's ``pixelLabelDatastore``).

    Each pixel value of a file (a gray value, or an RGB colour) is a *label id*;
    ``label_ids`` maps them to ``classes``. An indexed (palette) PNG, as PASCAL VOC writes,
    is read as its palette indices when the ids are gray values (as MATLAB reads it), and as
    its colours when they are RGB triples. ``ds[i]`` is an int64 (H, W) tensor of class
    indices (positions in ``classes``). Pixels whose value is in no class raise
    :class:`DataError` naming the file and the values (``undefined="error"``, the default),
    or get :data:`IGNORE_INDEX` (``undefined="ignore"``, MATLAB's ``<undefined>``), which the
    losses and :func:`evaluate_segmentation` skip.

    Pair it with the images through :class:`PixelLabelImageDatastore`. Files are read in
    sorted order, so name each label file as its image (``00012.png`` for ``00012.png``).

    Args:
        location: a folder (searched recursively), a file, an fsspec URL or a list of them.
        classes: the class names, e.g. ``["background", "circle"]``.
        label_ids: for each class its id, or a list of ids: gray values (ints) or RGB
            triples (``(255, 0, 0)``).
        extensions: file extensions to read from folders.
        recursive: search subfolders (default True).
        output_size: (H, W) every label map is brought to (nearest-neighbour; None: keep).
        undefined: "error" or "ignore": what values in no class become (see above).
        storage_options, cache_dir: fsspec options for URLs and a folder for local copies
            of remote files, as for :class:`~deeptoolbox.data.ImageDatastore`.

    Example:
        >>> import tempfile
        >>> import numpy as np
        >>> masks = np.zeros((2, 4, 4), np.int64); masks[1, :2] = 1
        >>> folder = write_pixel_labels(tempfile.mkdtemp(), masks, label_ids=[0, 255])
        >>> ds = PixelLabelDatastore(folder, ["background", "object"], [0, 255])
        >>> ds[1].tolist()[:3], ds.count_each_label()
        ([[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0]], {'background': 24, 'object': 8})
    """

    def __init__(
        self,
        location: _files.Location,
        classes: Sequence[str],
        label_ids: Sequence[LabelId | Sequence[LabelId]],
        *,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        recursive: bool = True,
        output_size: int | Sequence[int] | None = None,
        undefined: str = "error",
        storage_options: dict[str, Any] | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        if undefined not in _UNDEFINED:
            raise OptionError(
                "PixelLabelDatastore: `undefined` must be 'error' (values in no class raise) or "
                f"'ignore' (they become IGNORE_INDEX = -100). Received: undefined={undefined!r}."
            )
        table = _check_label_ids(classes, label_ids)
        self._ids = torch.tensor(sorted(table), dtype=torch.int64)
        self._index = torch.tensor([table[int(v)] for v in self._ids], dtype=torch.int64)
        self._rgb = bool((self._ids < 0).any())
        if self._rgb and bool((self._ids >= 0).any()):
            raise OptionError(
                "PixelLabelDatastore: `label_ids` mix gray values and RGB triples; give all of "
                f"one kind. Received: label_ids={label_ids!r}."
            )
        self.undefined = undefined
        self.output_size = _check_size(output_size, "PixelLabelDatastore")
        self.label_ids = list(label_ids)
        self._remote = _files.remote_access("PixelLabelDatastore", storage_options, cache_dir)
        self._files, _ = _files.list_files(
            "PixelLabelDatastore", location, extensions, recursive, self._remote
        )
        self._files = sorted(self._files)
        self._classes = [str(c) for c in classes]
        self._init_view()

    @property
    def files(self) -> list[str]:
        """The file of each label map, in datastore order."""
        return [self._files[j] for j in self._order]

    def _count(self) -> int:
        return len(self._files)

    def _load(self, j: int) -> torch.Tensor:
        path = self._files[j]
        ids = _decode_ids(path, self._rgb, self._remote, self._ids)
        if self.output_size is not None and tuple(ids.shape) != self.output_size:
            from torchvision.transforms.v2 import InterpolationMode
            from torchvision.transforms.v2 import functional as F

            ids = F.resize(ids[None], list(self.output_size), InterpolationMode.NEAREST)[0]
        return self._classify(ids, path)

    def _classify(self, ids: torch.Tensor, path: str) -> torch.Tensor:
        position = torch.searchsorted(self._ids, ids).clamp_max(len(self._ids) - 1)
        known = self._ids[position] == ids
        if not bool(known.all()) and self.undefined == "error":
            unknown = torch.unique(ids[~known])
            shown = [_show_id(int(v)) for v in unknown[:8]]
            raise DataError(
                f"PixelLabelDatastore: label image '{path}' has pixel values {shown}"
                f"{' ...' if len(unknown) > 8 else ''} ({int((~known).sum())} pixels) that are "
                f"in no class. Allowed values: {[_show_id(int(v)) for v in self._ids[:20]]} "
                f"(classes {self._classes}). Add them to `label_ids`, or pass "
                "undefined='ignore' to leave those pixels out of training and evaluation."
            )
        return torch.where(known, self._index[position], IGNORE_INDEX)

    def count_each_label(self) -> dict[str, int]:
        """Number of pixels of each class over the datastore (MATLAB's ``countEachLabel``
        ``PixelCount``); reads every file.

        Example:
            >>> import tempfile
            >>> folder = write_pixel_labels(tempfile.mkdtemp(), np.eye(3, dtype=np.int64)[None])
            >>> PixelLabelDatastore(folder, ["a", "b"], [0, 1]).count_each_label()
            {'a': 6, 'b': 3}
        """
        return dict(zip(self._classes, self._pixel_counts()[0].tolist(), strict=True))

    def _pixel_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixels of each class, and pixels of the images where each class appears."""
        k = len(self._classes)
        counts, image_pixels = np.zeros(k, np.int64), np.zeros(k, np.int64)
        for i in range(len(self)):
            labels = self[i]
            found = np.bincount(labels[labels >= 0].numpy(), minlength=k)
            counts += found
            image_pixels[found > 0] += labels.numel()
        return counts, image_pixels

    def class_weights(self, method: str = "median-frequency") -> list[float]:
        """Class weights that balance the classes' pixel counts, for the segmentation losses.

        ``"median-frequency"`` (MATLAB's class-weighting example): the frequency of a class
        is its pixel count over the pixels of the images where it appears; its weight is
        the median frequency over its frequency. ``"inverse-frequency"``: the total pixel
        count over (number of classes x the class's pixel count). A class that never
        appears gets weight 0.

        Example:
            >>> import tempfile
            >>> folder = write_pixel_labels(tempfile.mkdtemp(), np.eye(4, dtype=np.int64)[None])
            >>> PixelLabelDatastore(folder, ["a", "b"], [0, 1]).class_weights("inverse-frequency")
            [0.6666666666666666, 2.0]
        """
        if method not in ("median-frequency", "inverse-frequency"):
            raise OptionError(
                "PixelLabelDatastore.class_weights: `method` must be 'median-frequency' or "
                f"'inverse-frequency'. Received: method={method!r}."
            )
        counts, image_pixels = self._pixel_counts()
        present = counts > 0
        weights = np.zeros(len(counts))
        if method == "inverse-frequency":
            weights[present] = counts.sum() / (len(counts) * counts[present])
        else:
            frequency = counts[present] / image_pixels[present]
            weights[present] = np.median(frequency) / frequency
        return weights.tolist()


def _show_id(code: int) -> int | tuple[int, int, int]:
    if code >= 0:
        return code
    packed = -code - 1
    return (packed // 65536, packed // 256 % 256, packed % 256)


def _source_name(part: Any, i: int, what: str) -> str:
    """The file behind observation ``i`` of ``part``, or 'observation i' without files."""
    files = getattr(part, "files", None)
    if isinstance(files, list) and i < len(files):
        return f"{what} '{files[i]}'"
    return f"{what} of observation {i}"


class PixelLabelImageDatastore(Datastore):
    """Images paired with their label maps, for semantic segmentation (MATLAB's
    ``pixelLabelImageDatastore`` and ``combine(imds, pxds)``).

    ``ds[i]`` is ``(image, labels)``: a float32 (C, H, W) image and an int64 (H, W) map of
    class indices, ready for ``train(net, ds, loss)``. An image and its label map of
    different sizes raise :class:`DataError` naming both files. While ``ds.training`` is
    True (the default) the ``augmenter`` (a :class:`SegmentationAugmenter`) moves the image
    and its labels together; ``predict``, ``segment`` and ``evaluate`` read in eval mode.

    Args:
        images: an ImageDatastore (read without labels: ``labels=None``), any Dataset of
            (C, H, W) images, or an (N, C, H, W) array.
        labels: a :class:`PixelLabelDatastore`, any Dataset of (H, W) class-index maps, or an
            (N, H, W) int array.
        classes: the class names (default: those of ``labels`` when it has them).
        augmenter: a :class:`SegmentationAugmenter` or a callable ``(image, labels) ->
            (image, labels)``, applied while training only.

    Example:
        >>> from deeptoolbox import datasets
        >>> shapes = datasets.shapes(8, image_size=16)
        >>> ds = PixelLabelImageDatastore(shapes.images, shapes.masks,
        ...                               classes=["background", *shapes.classes])
        >>> image, labels = ds[0]
        >>> tuple(image.shape), tuple(labels.shape), ds.classes[1]
        ((3, 16, 16), (16, 16), 'circle')
    """

    def __init__(
        self,
        images: Dataset | np.ndarray | torch.Tensor,
        labels: Dataset | np.ndarray | torch.Tensor,
        *,
        classes: Sequence[str] | None = None,
        augmenter: Any = None,
    ) -> None:
        self.images = _as_dataset(images, "images", 4)
        self.pixel_labels = _as_dataset(labels, "labels", 3)
        n_images, n_labels = len(self.images), len(self.pixel_labels)  # type: ignore[arg-type]
        if n_images != n_labels:
            raise DataError(
                f"PixelLabelImageDatastore: {n_images} images but {n_labels} label maps; give "
                "one label map per image (use subset() to align them)."
            )
        if isinstance(augmenter, ImageAugmenter):
            raise OptionError(
                "PixelLabelImageDatastore: `augmenter` is an ImageAugmenter, which moves the "
                "image alone; use a SegmentationAugmenter (same options), which moves the image "
                "and its labels together."
            )
        if augmenter is not None and not callable(augmenter):
            raise OptionError(
                "PixelLabelImageDatastore: `augmenter` must be a SegmentationAugmenter or a "
                f"callable (image, labels) -> (image, labels). Received: {type(augmenter).__name__}."
            )
        self.augmenter = augmenter
        names = classes if classes is not None else getattr(self.pixel_labels, "classes", None)
        self._classes = None if names is None else [str(c) for c in names]
        fill = getattr(augmenter, "options", {}).get("fill") if augmenter is not None else None
        if (
            self._classes is not None
            and fill is not None
            and fill != IGNORE_INDEX
            and not (0 <= fill < len(self._classes))
        ):
            raise OptionError(
                f"PixelLabelImageDatastore: the augmenter's `fill` label {fill} is not a class "
                f"index of these {len(self._classes)} classes (0..{len(self._classes) - 1}) nor "
                f"IGNORE_INDEX ({IGNORE_INDEX}); pixels brought in by its warps would get it."
            )
        self._init_view()

    @property
    def files(self) -> list[str] | None:
        """The image file of each observation, in datastore order (None without files)."""
        files = getattr(self.images, "files", None)
        return None if files is None else [files[j] for j in self._order]

    def _count(self) -> int:
        return len(self.images)  # type: ignore[arg-type]

    def train(self, mode: bool = True) -> Datastore:
        """Set the training mode here and in the image and label datastores; returns ``self``.

        Example:
            >>> import numpy as np
            >>> ds = PixelLabelImageDatastore(np.zeros((1, 1, 2, 2)), np.zeros((1, 2, 2), int))
            >>> ds.eval().training
            False
        """
        for part in (self.images, self.pixel_labels):
            if isinstance(part, Datastore):
                part.train(mode)
        return super().train(mode)

    def _load(self, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[j]
        image = image[0] if isinstance(image, tuple | list) else image
        image = torch.as_tensor(image, dtype=torch.float32)
        labels = torch.as_tensor(self.pixel_labels[j]).long()
        if labels.dim() == 3 and labels.shape[0] == 1:
            labels = labels[0]
        if image.dim() != 3 or labels.dim() != 2 or image.shape[-2:] != labels.shape:
            raise DataError(
                f"PixelLabelImageDatastore: {_source_name(self.images, j, 'image')} is "
                f"{tuple(image.shape)} (C, H, W) but {_source_name(self.pixel_labels, j, 'label map')}"
                f" is {tuple(labels.shape)}; a label map must be (H, W) with the image's height "
                "and width. Give both datastores the same `output_size`, or fix the files."
            )
        if self.augmenter is not None and self.training:
            image, labels = self.augmenter(image, labels)
        return image, labels


def _as_dataset(value: Any, option: str, rank: int) -> Dataset:
    if isinstance(value, Dataset):
        return value
    if isinstance(value, np.ndarray | torch.Tensor) and value.ndim == rank:
        # images: uint8 / uint16 scaled to [0, 1] as ImageDatastore reads files; labels as given
        return ArrayDatastore(unit_images(value) if rank == 4 else torch.as_tensor(value))
    shape = getattr(value, "shape", None)
    raise OptionError(
        f"PixelLabelImageDatastore: `{option}` must be a Dataset or an array of rank {rank} "
        f"({'(N, C, H, W)' if rank == 4 else '(N, H, W)'}). Received: {type(value).__name__}"
        f"{'' if shape is None else f' of shape {tuple(shape)}'}."
    )


def write_pixel_labels(
    folder: str | os.PathLike,
    masks: np.ndarray | torch.Tensor,
    *,
    label_ids: Sequence[int] | None = None,
    prefix: str = "",
) -> Path:
    """Write (N, H, W) class-index maps as 8-bit gray PNG files ``folder/<prefix>00012.png``.

    Class ``k`` is written as ``label_ids[k]`` (default: ``k`` itself), so
    :class:`PixelLabelDatastore` reads the files back with the same ids. Returns the folder.

    Example:
        >>> import tempfile
        >>> folder = write_pixel_labels(tempfile.mkdtemp(), np.zeros((3, 8, 8), np.int64))
        >>> sorted(p.name for p in folder.iterdir())
        ['00000.png', '00001.png', '00002.png']
    """
    from PIL import Image

    array = np.asarray(masks)
    if array.ndim != 3 or array.dtype.kind not in "iu":
        raise DataError(
            "write_pixel_labels: `masks` must be an (N, H, W) int array of class indices. "
            f"Received: dtype {array.dtype}, shape {array.shape}."
        )
    ids = np.arange(256) if label_ids is None else np.asarray(label_ids, dtype=np.int64)
    if ids.ndim != 1 or ids.min(initial=0) < 0 or ids.max(initial=0) > 255:
        raise OptionError(
            "write_pixel_labels: `label_ids` must be gray values in 0..255, one per class. "
            f"Received: label_ids={label_ids!r}."
        )
    if array.size and (array.min() < 0 or array.max() >= len(ids)):
        raise DataError(
            f"write_pixel_labels: class indices must lie in 0..{len(ids) - 1} (one label id "
            f"each). Received indices from {array.min()} to {array.max()}."
        )
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    for index, mask in enumerate(array):
        with atomic_path(root / f"{prefix}{index:05d}.png", suffix=".part") as temporary:
            Image.fromarray(ids[mask].astype(np.uint8)).save(temporary, format="PNG")
    return root
