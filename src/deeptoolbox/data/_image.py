"""ImageDatastore: image files in folders, lists or fsspec URLs (MATLAB ``imageDatastore`` and
``augmentedImageDatastore``)."""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from deeptoolbox._limits import ReadLimits, read_limits
from deeptoolbox.data import _files, _label_csv
from deeptoolbox.data._augment import ImageAugmenter as ImageAugmenter
from deeptoolbox.data._base import Datastore
from deeptoolbox.errors import DataError, OptionError

__all__ = ["ImageDatastore", "IMAGE_EXTENSIONS", "COLOR_MODES", "OUTPUT_SIZE_MODES"]

IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".pgm",
    ".ppm",
)


COLOR_MODES = ("stored", "rgb", "gray")
OUTPUT_SIZE_MODES = ("resize", "centercrop", "randcrop")
_SIZE_MODE_ALIASES = {"center-crop": "centercrop", "random-crop": "randcrop"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_GRAY_PIL_MODES = ("1", "L", "LA", "La", "I", "F", "I;16", "I;16B", "I;16L")


def _is_palette_png(data: bytes) -> bool:
    # PNG signature, then the IHDR chunk: its colour type byte sits at offset 25 (3 = palette)
    return data[:8] == _PNG_SIGNATURE and len(data) > 25 and data[25] == 3


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by colour type


def png_is_sound(data: bytes) -> bool:
    """True when a PNG's chunks, checksums and image data are whole and consistent.

    torchvision's PNG decoder crashes the process (SIGSEGV) on image data that libpng
    reports as damaged, so a PNG goes to it only when this check passes; others go to
    Pillow, which raises an exception instead. The check inflates the image data once
    (zlib, in C) and reads each row's filter byte.
    """
    import zlib

    position, chunks = 8, []
    while position + 12 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        end = position + 12 + length
        if end > len(data):
            return False
        kind, body = data[position + 4 : position + 8], data[position + 8 : end - 4]
        if zlib.crc32(kind + body) != int.from_bytes(data[end - 4 : end], "big"):
            return False
        chunks.append((kind, body))
        position = end
        if kind == b"IEND":
            break
    if not chunks or chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND":
        return False
    header = chunks[0][1]
    if len(header) != 13 or header[12] != 0 or header[9] not in _PNG_CHANNELS:
        return False  # interlaced images go to Pillow too
    width, height = int.from_bytes(header[0:4], "big"), int.from_bytes(header[4:8], "big")
    row = (width * _PNG_CHANNELS[header[9]] * header[8] + 7) // 8 + 1
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(b"".join(b for k, b in chunks if k == b"IDAT"), row * height + 1)
    except zlib.error:
        return False
    if len(raw) != row * height or not inflater.eof or width == 0 or height == 0:
        return False
    return int(np.frombuffer(raw, dtype=np.uint8)[::row].max()) <= 4  # filter types 0-4


def _torchvision_decode(data: bytes, color: str) -> torch.Tensor:
    from torchvision.io import ImageReadMode
    from torchvision.io import decode_image as tv_decode

    def run(mode: ImageReadMode) -> torch.Tensor:
        with warnings.catch_warnings():  # deprecated for torchcodec since 0.29, still working
            warnings.simplefilter("ignore", DeprecationWarning)
            return tv_decode(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=mode)

    if color != "stored":
        return run(ImageReadMode.RGB if color == "rgb" else ImageReadMode.GRAY)
    if _is_palette_png(data):
        return run(ImageReadMode.RGB)  # UNCHANGED would give palette indices
    image = run(ImageReadMode.UNCHANGED)
    if image.shape[0] == 2:  # gray + alpha
        return image[:1]
    if image.shape[0] == 4:  # RGBA: drop alpha; CMYK JPEG: let the decoder convert
        return image[:3] if data[:8] == _PNG_SIGNATURE else run(ImageReadMode.RGB)
    return image


def _pillow_decode(data: bytes, color: str) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        gray = color == "gray" or (color == "stored" and image.mode in _GRAY_PIL_MODES)
        if gray and image.mode.startswith("I;16"):
            return np.asarray(image).astype(np.uint16)  # keep 16 bits: scaled to [0, 1] later
        return np.asarray(image.convert("L" if gray else "RGB"))


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR or a JPEG's frame header; None for other formats.

    Example:
        >>> declared_size(_PNG_SIGNATURE + bytes(4) + b"IHDR" + (640).to_bytes(4, "big")
        ...               + (480).to_bytes(4, "big"))
        (640, 480)
    """
    if data[:8] == _PNG_SIGNATURE and len(data) >= 24 and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        return None
    position = 2
    while position + 9 <= len(data):  # JPEG segments: FF marker, 2-byte length, payload
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker in _JPEG_FRAMES:
            return (int.from_bytes(data[position + 7 : position + 9], "big"),
                    int.from_bytes(data[position + 5 : position + 7], "big"))  # fmt: skip
        if marker == 0xD9 or marker == 0xDA:  # end of image, start of scan: no frame before
            return None
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    return None


# deflate (PNG) inflates at most ~1032-fold and JPEG far less: beyond this, no image fits
_MAX_PIXELS_PER_BYTE = 2000
_JPEG_FRAMES = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def decode_image(
    data: bytes, color: str, path: str, limits: ReadLimits | None = None
) -> torch.Tensor:
    """Decode image bytes to a (C, H, W) uint8 (or uint16) tensor: torchvision first, Pillow
    as fallback. ``color`` is "stored" (gray files give 1 channel, colour files 3, alpha
    dropped), "rgb" or "gray". The size a PNG or JPEG declares is checked against
    ``limits.max_image_pixels`` before anything is decoded."""
    size = declared_size(data)
    if size is not None:
        read_limits(limits, "ImageDatastore").check(
            f"ImageDatastore: '{path}'", "the declared width x height", "max_image_pixels",
            size[0] * size[1],
        )  # fmt: skip
        if size[0] * size[1] > _MAX_PIXELS_PER_BYTE * len(data) and size[0] * size[1] > 2**22:
            raise DataError(
                f"ImageDatastore: cannot read image '{path}': it declares {size[0]} x {size[1]} "
                f"pixels in {len(data):,} bytes, more than PNG or JPEG compression can hold: "
                "the file is truncated or forged."
            )
    try:  # torchvision's decoders: ~2.5x faster than Pillow on small PNGs
        if data[:8] != _PNG_SIGNATURE or png_is_sound(data):
            return _torchvision_decode(data, color)
    except (RuntimeError, ValueError):
        pass
    from PIL import Image

    try:
        array = _pillow_decode(data, color)
    except Image.UnidentifiedImageError as err:
        reason = "not an image, or corrupt: neither torchvision nor Pillow can decode it"
        raise DataError(f"ImageDatastore: cannot read image '{path}': {reason}.") from err
    except Exception as err:  # Pillow raises many types for truncated or damaged files
        reason = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        raise DataError(f"ImageDatastore: cannot read image '{path}': {reason}.") from err
    tensor = torch.from_numpy(array.copy())
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()


class ImageDatastore(Datastore):
    """Image files read lazily (MATLAB ``imageDatastore`` / ``augmentedImageDatastore``).

    ``ds[i]`` is a float32 (C, H, W) tensor in [0, 1] (8- and 16-bit files alike) —
    ``(image, class_index)`` when the datastore has labels. **Images are read as stored by
    default** (as MATLAB's ``imread``): a grayscale file gives 1 channel, a colour file 3
    (alpha dropped, palettes expanded). ``color="rgb"`` gives every image 3 channels (what
    pretrained networks need), ``color="gray"`` 1 channel. A folder that mixes gray and
    colour files needs one of them to stack batches.

    Args:
        location: a folder (searched recursively), a file, an fsspec URL
            (``memory://``, ``s3://``...) or a list of them.
        labels: "auto" (the folder's ``labels.csv`` when it has one with the
            ``label_columns``, as the Labeler writes it; else folder names when the files
            sit in subfolders), "folders" or "foldernames" (MATLAB's spelling; always the
            parent folder's name), a label CSV (a ``.csv`` path, relative to the folder
            ``location`` or absolute), None, or one label per file. With a CSV the
            datastore holds the files it lists, in its row order (images of the folder
            without a row are unlabelled and left out); its file column is relative to the
            folder.
        label_columns: the CSV's (file column, label column); other columns are kept.
        classes: the class order (default: sorted labels).
        extensions: file extensions to read from folders.
        recursive: search subfolders of the folders given (default True).
        output_size: (H, W) every image is brought to (None: keep the size).
        color: "stored" (the default: as the file has it), "rgb" (3 channels) or "gray" (1).
        output_size_mode: how images reach ``output_size`` (MATLAB's ``OutputSizeMode``):
            "resize" (the default: stretch), "centercrop" (crop, or pad with zeros, around
            the centre) or "randcrop" (a random window, padded with zeros where the image
            is smaller; random only while ``training`` is True, the centre crop otherwise).
        size_mode: the older name of ``output_size_mode``; "center-crop" is "centercrop".
        augmenter: an :class:`ImageAugmenter` (or any callable on a uint8 (C, H, W) tensor),
            applied after decoding and before sizing, only while ``training`` is True.
        on_error: "raise" (reading a bad file raises DataError) or "skip" (every file is
            decoded once now; unreadable ones are dropped with one warning).
        storage_options: fsspec options for URLs (credentials, ``endpoint_url``...); see
            "Remote data" in docs/data.md.
        cache_dir: a folder where remote files are copied on first read and read from
            afterwards (None: read them remotely every time).

    Example:
        >>> import tempfile
        >>> from deeptoolbox.datasets import digits, write_image_folder
        >>> images, labels = digits()
        >>> folder = write_image_folder(tempfile.mkdtemp(), images[:30], labels[:30])
        >>> ds = ImageDatastore(folder, output_size=(16, 16))  # gray PNGs: 1 channel
        >>> image, label = ds[0]
        >>> image.shape, ds.classes[:3]
        (torch.Size([1, 16, 16]), ['0', '1', '2'])
        >>> ImageDatastore(folder, color="rgb")[0][0].shape
        torch.Size([3, 8, 8])
        >>> _ = open(f"{folder}/labels.csv", "w").write("file,label\\n0/00000.png,zero\\n")
        >>> from_csv = ImageDatastore(folder, labels="labels.csv")
        >>> from_csv.labels.tolist(), from_csv.label_file == f"{folder}/labels.csv"
        (['zero'], True)
    """

    label_file: str | None
    """The label CSV the labels come from (absolute path), or None."""

    def __init__(
        self,
        location: _files.Location,
        *,
        labels: str | os.PathLike | Sequence[Any] | np.ndarray | None = "auto",
        label_columns: Sequence[str] = ("file", "label"),
        classes: Sequence[Any] | None = None,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        recursive: bool = True,
        output_size: int | Sequence[int] | None = None,
        color: str = "stored",
        output_size_mode: str | None = None,
        size_mode: str | None = None,
        augmenter: Any = None,
        on_error: str = "raise",
        storage_options: dict[str, Any] | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        if color not in COLOR_MODES:
            raise OptionError(
                "ImageDatastore: `color` must be 'stored' (as in the file), 'rgb' (3 channels) "
                f"or 'gray' (1 channel). Received: color={color!r}."
            )
        if augmenter is not None and not callable(augmenter):
            raise OptionError(
                f"ImageDatastore: `augmenter` must be an ImageAugmenter or a callable. "
                f"Received: {type(augmenter).__name__}."
            )
        _files.check_on_error("ImageDatastore", on_error)
        self._remote = _files.remote_access("ImageDatastore", storage_options, cache_dir)
        self.output_size = _check_size(output_size)
        self.output_size_mode = _check_size_mode(output_size_mode, size_mode)
        self.color, self.augmenter = color, augmenter
        self.label_columns = _label_csv.check_columns("ImageDatastore", label_columns)
        csv_file = _label_csv.label_file_of("ImageDatastore", location, labels,
                                            self.label_columns)  # fmt: skip
        self.label_file = None if csv_file is None else csv_file[0]
        self._label_folder = None if csv_file is None else csv_file[1]
        if csv_file is None:
            self._files, self._labels, self._classes, self._codes = _files.labelled_files(
                "ImageDatastore", location, extensions, recursive, labels, classes, on_error,
                self._decode, self._remote,
                keep=lambda files, roots: _folder_entries(files, roots, labels),
            )  # fmt: skip
        else:
            self._files, self._labels, self._classes, self._codes = self._csv_labels(
                *csv_file, extensions, classes, on_error
            )
        self._labels_from_folders = (
            csv_file is None and isinstance(labels, str) and self._labels is not None
        )
        self._init_view()

    def _csv_labels(self, path: str, folder: str, extensions: Sequence[str], classes: Any,
                    on_error: str) -> Any:  # fmt: skip
        allowed = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
        table = _label_csv.read_table("ImageDatastore", path, folder, self.label_columns)
        files, values = _label_csv.labelled_rows("ImageDatastore", table, allowed, classes)
        found = _files.check_classes("ImageDatastore", values, classes)
        if on_error == "skip":
            keep = _files.readable("ImageDatastore", files, self._decode)
            files, values = [files[i] for i in keep], values[keep]
        return files, values, found, _files.encode(values, found)

    @property
    def label_folder(self) -> str | None:
        """The folder the label CSV's file column is relative to (None without a CSV)."""
        return self._label_folder

    @property
    def size_mode(self) -> str:
        """The older name of ``output_size_mode``."""
        return self.output_size_mode

    @property
    def files(self) -> list[str]:
        """The file of each observation, in datastore order."""
        return [self._files[j] for j in self._order]

    def _count(self) -> int:
        return len(self._files)

    def _source_labels(self) -> np.ndarray | None:
        return self._labels

    def relabel(self, changes: Mapping[str | os.PathLike, Any]) -> dict[str, str]:
        """Change the labels of files, ``{file: new class}``, and write the change back.

        With labels from folder names, each file moves to the folder of its new class
        beside its current one (``root/cat/x.png`` -> ``root/dog/x.png``), so the next
        ``ImageDatastore(root)`` reads the new labels. Every change is checked before any
        file moves (the file must be in ``files``, the class in ``classes``, no file of the
        same name in the target folder), each move is atomic (a hard link then an unlink,
        never replacing a file), and a failed move puts the moved files back. With labels
        from a label CSV (:attr:`label_file`) no file moves: the CSV is rewritten
        atomically (a temporary file, then a rename; a failed write leaves it as it was),
        its rows in their order and its other columns unchanged. In both modes the new
        class must be one of ``classes`` (build the datastore with ``classes=`` listing it
        to add one). With labels given as a list, only this datastore's labels change.
        Views made from this datastore (``split``, ``subset``) see the new files and labels. Returns ``{old path: new path}``
        for the files moved (empty with a CSV).

        Example:
            >>> import tempfile
            >>> from deeptoolbox.datasets import digits, write_image_folder
            >>> images, labels = digits()
            >>> folder = write_image_folder(tempfile.mkdtemp(), images[:6], labels[:6])
            >>> ds = ImageDatastore(folder)
            >>> moved = ds.relabel({ds.files[0]: "5"})
            >>> ImageDatastore(folder).count_each_label()["5"], ds.count_each_label()["5"]
            (2, 2)
        """
        from deeptoolbox.data import _relabel

        if self._labels is None or self._codes is None or self._classes is None:
            raise DataError("ImageDatastore.relabel: the datastore has no labels to change.")
        plan = _relabel.plan_relabel("ImageDatastore", self._files, self._labels,
                                     list(self._classes), changes, self._labels_from_folders)  # fmt: skip
        moved = _relabel.move_files("ImageDatastore", self._files, plan) if (
            self._labels_from_folders) else {}  # fmt: skip
        if self.label_file is not None and self._label_folder is not None:
            _label_csv.write_labels("ImageDatastore", self.label_file, self._label_folder,
                                    self.label_columns,
                                    {self._files[j]: label for j, label, _ in plan})  # fmt: skip
        self._labels = _relabel.apply_labels(self._files, self._labels, self._codes,
                                             list(self._classes), plan)  # fmt: skip
        return moved

    def _decode(self, path: str) -> torch.Tensor:
        try:
            data = _files.read_bytes(path, self._remote)
        except OSError as err:
            raise DataError(f"ImageDatastore: cannot read image '{path}': {err}.") from err
        return decode_image(data, self.color, path)

    def _fit_size(self, image: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms import v2
        from torchvision.transforms.v2 import functional as F

        if self.output_size is None or tuple(image.shape[-2:]) == self.output_size:
            return image
        if self.output_size_mode == "resize":
            return F.resize(image, list(self.output_size), antialias=True)
        if self.output_size_mode == "randcrop" and self.training:
            return v2.RandomCrop(self.output_size, pad_if_needed=True)(image)
        return F.center_crop(image, list(self.output_size))

    def _load(self, j: int) -> Any:
        image = self._decode(self._files[j])
        if image.dtype == torch.uint16:  # 16-bit PNG/TIFF: scale to [0, 1] now
            image = image.to(torch.float32).div_(65535.0)
        if self.augmenter is not None and self.training:
            image = self.augmenter(image)
        image = self._fit_size(image)
        image = image.to(torch.float32).div_(255.0) if image.dtype == torch.uint8 else image
        if self._codes is None:
            return image
        return image, torch.tensor(self._codes[j])


LABELER_MASKS = "pixel-labels"  # the Labeler's label maps (apps/_labeler.py MASKS_FOLDER)
LABELER_CLASSES = "labeler-classes.json"  # the Labeler's class list (apps/_labeler.py)


def _relative_parts(path: str, root: str) -> list[str]:
    if _files.is_url(path):
        inner = path.split("://", 1)[1].strip("/")
        return inner[len(root.split("://", 1)[1].strip("/")) :].strip("/").split("/")
    return os.path.relpath(path, root).split(os.sep)


def _saved_by_labeler(root: str) -> bool:
    return not _files.is_url(root) and (
        os.path.isfile(os.path.join(root, LABELER_MASKS, "classes.json"))
        or os.path.isfile(os.path.join(root, LABELER_CLASSES))
    )


def _folder_entries(files: list[str], roots: list[str | None], labels: Any) -> list[int]:
    """The listed files an ImageDatastore keeps: none under a hidden entry (a name starting
    with '.') or in the Labeler's ``pixel-labels/`` of the folder listed; with labels from
    folder names, not the images directly in a folder the Labeler saved into (its
    unlabelled images, left out with a warning). Images directly in another folder whose
    other images sit in class folders get that folder's name, with a warning."""
    keep, loose, by_folder = [], {}, isinstance(labels, str)
    for i, (path, root) in enumerate(zip(files, roots, strict=True)):
        parts = [] if root is None else _relative_parts(path, root)
        if any(p.startswith(".") for p in parts) or (len(parts) > 1 and parts[0] == LABELER_MASKS
                                                     and _saved_by_labeler(root)):  # fmt: skip
            continue
        if by_folder and len(parts) == 1:
            loose.setdefault(root, []).append(i)
        keep.append(i)
    flat = {i for positions in loose.values() for i in positions}
    nested = {roots[i] for i in keep if i not in flat}
    for root, positions in loose.items():
        if root not in nested or (labels != "auto" and not _saved_by_labeler(root)):
            continue
        names = [os.path.basename(files[i]) for i in positions[:5]]
        if _saved_by_labeler(root):
            keep = [i for i in keep if i not in set(positions)]
            warnings.warn(f"ImageDatastore: left out {len(positions)} image(s) directly in "
                          f"'{root}' ({names}...): the Labeler saved into this folder, where "
                          "they are unlabelled (labelled images sit in class folders).",
                          RuntimeWarning, stacklevel=5)  # fmt: skip
        else:
            warnings.warn(f"ImageDatastore: {len(positions)} image(s) directly in '{root}' "
                          f"({names}...) are not in a class folder; their label is the "
                          f"folder's own name {_files.parent_name(files[positions[0]])!r}.",
                          RuntimeWarning, stacklevel=5)  # fmt: skip
    return keep


def _check_size_mode(output_size_mode: str | None, size_mode: str | None) -> str:
    given = [(n, v) for n, v in (("output_size_mode", output_size_mode), ("size_mode", size_mode))
             if v is not None]  # fmt: skip
    modes = {_SIZE_MODE_ALIASES.get(v, v) if isinstance(v, str) else v for _, v in given}
    if len(modes) > 1:
        raise OptionError(
            "ImageDatastore: `output_size_mode` and its older name `size_mode` disagree. "
            f"Received: output_size_mode={output_size_mode!r}, size_mode={size_mode!r}. "
            "Give only output_size_mode."
        )
    mode = modes.pop() if modes else "resize"
    if mode not in OUTPUT_SIZE_MODES:
        name, value = given[0]
        raise OptionError(
            f"ImageDatastore: `{name}` must be 'resize', 'centercrop' or 'randcrop' (MATLAB's "
            f"OutputSizeMode; 'center-crop' is accepted too). Received: {name}={value!r}."
        )
    return mode


def _check_size(output_size: Any, where: str = "ImageDatastore") -> tuple[int, int] | None:
    if output_size is None:
        return None
    size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
        raise OptionError(
            f"{where}: `output_size` must be (H, W) positive ints. Received: {output_size!r}."
        )
    return size  # type: ignore[return-value]
