"""The Labeler page's data: the images of one folder inside the app's root, their class
labels (class folders, or a label CSV) and bounding boxes (a COCO JSON file), changed from
the page and written back at once, atomically, with an undo history.

Class folders: ``folder/<class>/<image>``; images directly in ``folder`` are unlabelled,
and labelling one moves it into its class folder (labelled images move between class
folders through :meth:`deeptoolbox.data.ImageDatastore.relabel`). Label CSV: ``file,label``
rows, ``file`` relative to the folder, unlabelled images left out (a CSV's other columns
and row order are kept when it is written). Boxes: ``boxes.json`` in
the folder, COCO detection format, as :meth:`deeptoolbox.vision.BoxLabelDatastore.from_coco`
reads it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile  # noqa: F401  (the doctests use it)
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from deeptoolbox.apps import _files
from deeptoolbox.errors import DataError, FileWriteError, OptionError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")
BOXES_FILE = "boxes.json"
MASKS_FOLDER = "pixel-labels"  # label maps <image path with / as __>.png and classes.json
CLASSES_FILE = "labeler-classes.json"  # {"classes": [...]}: the class list, added ones too


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename:
    a reader (or a crash) sees the old file or the new one, never half of one.

    Example:
        >>> folder = Path(tempfile.mkdtemp())
        >>> write_atomic(folder / "labels.csv", "file,label\\n")
        >>> (folder / "labels.csv").read_text(), sorted(p.name for p in folder.iterdir())
        ('file,label\\n', ['labels.csv'])
    """
    from deeptoolbox._atomic import atomic_path  # open()'s permissions, not mkstemp's 0600

    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        with atomic_path(path, suffix=".tmp") as temporary, open(temporary, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    except OSError as err:  # FileWriteError too (disk full...): said the Labeler's way
        reason = err.strerror or str(err) or type(err).__name__
        raise FileWriteError(f"Labeler: cannot write {path}: {reason}. The last saved file "
                             "is unchanged.") from err  # fmt: skip


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size  # (width, height)
    except OSError as err:
        raise DataError(f"Labeler: cannot read the image '{path}': {err}.") from err


def read_label_csv(path: Path, files: list[str], classes: list[str] | None) -> dict[str, str]:
    """``{file: label}`` from a label CSV (columns ``file`` and ``label``); every file must
    be one of ``files`` and, when ``classes`` is given, every label one of them.

    Example:
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "labels.csv").write_text("file,label\\na.png,cat\\n")
        >>> read_label_csv(folder / "labels.csv", ["a.png", "b.png"], ["cat", "dog"])
        {'a.png': 'cat'}
    """
    try:
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"Labeler: cannot read the label file '{path}': {err}.") from err
    if rows and not {"file", "label"} <= set(rows[0]):
        raise DataError(f"Labeler: the label file '{path}' needs the columns file and label. "
                        f"Found: {list(rows[0])}.")  # fmt: skip
    labels: dict[str, str] = {}
    known = set(files)
    for line, row in enumerate(rows, start=2):
        file, label = (row["file"] or "").strip(), (row["label"] or "").strip()
        if file not in known:
            raise DataError(f"Labeler: line {line} of the label file '{path}' names {file!r}, "
                            "which is not an image of the folder.")  # fmt: skip
        if classes is not None and label not in classes:
            raise DataError(f"Labeler: line {line} of the label file '{path}' gives {file!r} "
                            f"the unknown class {label!r}. Allowed: {classes}.")  # fmt: skip
        labels[file] = label
    return labels


class LabelSession:
    """Class labels and boxes of the images of one folder, saved at every change.

    Args:
        folder: the image folder.
        classes: the class names (default: the class folders' or the CSV's labels);
            more can be added from the page.
        labels: "folders" (class subfolders), "csv" (a label CSV) or "auto" (folders when
            the folder has image subfolders, else csv).
        label_file: the CSV's name inside the folder (csv mode).

    Example:
        >>> from PIL import Image
        >>> folder = Path(tempfile.mkdtemp())
        >>> for name in ("a.png", "b.png"):
        ...     Image.new("L", (8, 6)).save(folder / name)
        >>> session = LabelSession(folder, classes=["cat", "dog"], labels="csv")
        >>> _ = session.set_labels(["a.png", "b.png"], "dog")
        >>> (folder / "labels.csv").read_text().splitlines()
        ['file,label', 'a.png,dog', 'b.png,dog']
        >>> _ = session.undo()
        >>> (folder / "labels.csv").read_text().splitlines()
        ['file,label']
    """

    def __init__(self, folder: str | os.PathLike, *, classes: list[str] | None = None,
                 labels: str = "auto", label_file: str = "labels.csv") -> None:  # fmt: skip
        self.folder = Path(folder).resolve()
        if not self.folder.is_dir():
            raise OptionError(f"Labeler: {str(folder)!r} is not a folder of images.")
        if labels not in ("auto", "folders", "csv"):
            raise OptionError(f"Labeler: `labels` must be 'auto', 'folders' or 'csv'. "
                              f"Received: {labels!r}.")  # fmt: skip
        self._lock = threading.Lock()
        self.files = sorted(
            str(p.relative_to(self.folder)).replace(os.sep, "/")
            for p in self.folder.rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(self.folder).parts)
            and p.relative_to(self.folder).parts[0] != MASKS_FOLDER
        )  # fmt: skip
        nested = any("/" in f for f in self.files)
        self.label_path = self.folder / label_file  # auto: an existing label CSV wins, as in
        csv_mode = self.label_path.is_file() or not nested  # ImageDatastore's labels="auto"
        self.mode = ("csv" if csv_mode else "folders") if labels == "auto" else labels
        if self.mode == "folders":
            self.labels = {f: f.rsplit("/", 2)[-2] for f in self.files if "/" in f}
        elif self.label_path.is_file():
            self.labels = read_label_csv(self.label_path, self.files, classes)
        else:
            self.labels = {}
        found = sorted(set(self.labels.values()))
        self.classes = list(classes) if classes is not None else found
        saved = self._saved_classes()  # classes added on the page earlier, in their order
        if saved:
            self.classes = ([*saved, *[c for c in self.classes if c not in saved]]
                            if classes is None else
                            [*self.classes, *[c for c in saved if c not in self.classes]])  # fmt: skip
        unknown = sorted(set(found) - set(self.classes))
        if unknown:
            raise DataError(f"Labeler: the class folders of '{self.folder}' name classes "
                            f"{unknown} that are not in classes={self.classes}.")  # fmt: skip
        stored = self._stored_mask_classes()
        if stored is not None:  # saved label maps keep their ids: their classes come first
            given = [c for c in self.classes if c != "background"]
            if classes is not None and given[: len(stored)] != stored:
                raise DataError(
                    f"Labeler: the saved label maps in '{self.folder / MASKS_FOLDER}' use the "
                    f"classes {stored} (ids 1, 2, ...), but classes={list(classes)} would give "
                    "them other ids. Start with those classes first, in that order (new ones "
                    "after them)."
                )
            self.classes = stored + [c for c in self.classes if c not in stored]
        self.boxes = self._read_boxes()
        box_classes = sorted({b["label"] for bs in self.boxes.values() for b in bs})
        self.classes += [c for c in box_classes if c not in self.classes]
        self._history: list[tuple[str, Any]] = []
        self._redo: list[tuple[str, Any]] = []  # undone changes; valid while _history is
        self._redo_at = 0  # as long as the last undo/redo left it (a new change drops them)
        self._csv_rows_off: dict[str, tuple[int, int, list[str]]] = {}  # rows of unlabelled
        # files: where they were (index among the rows kept, order of leaving) and the row
        self.proposals: list[dict[str, Any]] = []
        self.proposal_masks: dict[str, Any] = {}  # file: proposed label map (_label_proposals)
        self.proposal_status = ""  # what the last network run proposed, for the page
        self.proposal_notes: dict[str, str] = {}  # file: why the network proposed nothing
        for file in self.files:  # a saved label map that does not fit is refused at open
            if self.mask_path(file).is_file():
                self.get_mask(file)

    # ---- class labels ----
    def describe(self) -> dict[str, Any]:
        """The page's view: folder, mode, classes, images with their labels and boxes."""
        return {
            "folder": str(self.folder), "mode": self.mode, "classes": self.classes,
            "images": [{"file": f, "label": self.labels.get(f), "boxes": self.boxes.get(f, [])}
                       for f in self.files],
            "can_undo": bool(self._history), "can_redo": self._can_redo(),
            "label_file": self._label_file_name(),
            "mask_classes": self.mask_classes, "proposals": self.proposals,
            "proposal_status": self.proposal_status, "proposal_notes": self.proposal_notes,
            "masks": [f for f in self.files if self.mask_path(f).is_file()],
        }  # fmt: skip

    def _label_file_name(self) -> str:
        return self.label_path.name if self.mode == "csv" else ""

    def path_of(self, file: str) -> Path:
        """The image ``file`` (one of :attr:`files`) on disk."""
        if file not in self.files:
            raise DataError(f"Labeler: {file!r} is not an image of {self.folder}.")
        return _files.confined(self.folder, file)

    def _saved_classes(self) -> list[str]:
        path = self.folder / CLASSES_FILE
        if not path.is_file():
            return []
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))["classes"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataError(f"Labeler: cannot read the class list '{path}' (expected "
                            f'{{"classes": [...]}}): {type(err).__name__}: {err}.') from err  # fmt: skip
        if not isinstance(saved, list) or not all(isinstance(c, str) and c for c in saved):
            raise DataError(f"Labeler: the class list '{path}' must hold non-empty class "
                            f"names. Found: {saved!r}.")  # fmt: skip
        return list(dict.fromkeys(saved))

    def add_class(self, name: str) -> dict[str, Any]:
        """Add a class, saved with the others to ``labeler-classes.json`` in the folder (so
        reopening the folder lists it before any image has it)."""
        name = str(name).strip()
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise OptionError(f"Labeler: {name!r} is not a usable class name (it becomes a "
                              "folder name: no slashes, not empty, no leading dot).")  # fmt: skip
        if name not in self.classes:
            with self._lock:
                write_atomic(self.folder / CLASSES_FILE,
                             json.dumps({"classes": [*self.classes, name]}, indent=1))  # fmt: skip
                self.classes.append(name)
        return self.describe()

    def set_labels(self, files: list[str], label: str | None) -> dict[str, Any]:
        """Give ``files`` the class ``label`` (None: unlabelled) and save; undoable."""
        if label is not None and label not in self.classes:
            raise OptionError(f"Labeler: unknown class {label!r}. Allowed: {self.classes} "
                              "(add a class first).")  # fmt: skip
        if not files:
            raise OptionError("Labeler: select one or more images to label.")
        with self._lock:
            for file in files:
                self.path_of(file)
            before = {f: self.labels.get(f) for f in files}
            changes = {f: label for f in files if before[f] != label}
            self._apply(changes)
            done = {self._current(f, label) for f in files} if label is not None else set()
            taken = [p for p in self.proposals if p["file"] in done]
            self.proposals = [p for p in self.proposals if p["file"] not in done]
            self._history.append(("labels", (before, taken)))
        return self.describe()

    def _apply(self, changes: dict[str, str | None]) -> None:
        if not changes:
            return
        if self.mode == "csv":
            labels = dict(self.labels)
            for file, label in changes.items():
                if label is None:
                    labels.pop(file, None)
                else:
                    labels[file] = label
            self._write_csv(labels)
            self.labels = labels
            return
        renamed = self._move(changes)
        for old_file, new_file in renamed.items():  # label maps follow their images
            mask, moved = self.mask_path(old_file), self.mask_path(new_file)
            if mask.is_file() and not moved.exists():
                os.replace(mask, moved)
        self.files = sorted(renamed.get(f, f) for f in self.files)
        self.boxes = {renamed.get(f, f): b for f, b in self.boxes.items()}
        self.proposals = [{**p, "file": renamed.get(p["file"], p["file"])} for p in self.proposals]
        self.labels = {f: f.rsplit("/", 2)[-2] for f in self.files if "/" in f}
        if renamed and self.boxes:
            self._write_boxes(self.boxes)

    def _write_csv(self, labels: dict[str, str]) -> None:
        """Write ``labels`` to the label CSV, keeping what the file holds besides them: its
        other columns, its row order, blank lines, BOM and line ends. An image that loses its
        label loses its row (kept aside, so undo puts it back where it was, other cells
        too); newly labelled images get rows at the end."""
        from deeptoolbox.data._label_csv import read_table

        header, rows, encoding, newline = ["file", "label"], [], "utf-8", "\n"
        file_column, label_column = 0, 1
        if self.label_path.is_file():
            table = read_table("Labeler", str(self.label_path), str(self.folder),
                               ("file", "label"))  # fmt: skip
            header, rows = table.rows[0], [list(row) for row in table.rows[1:]]
            file_column, label_column = table.file_column, table.label_column
            encoding, newline = table.encoding, table.newline
        kept: list[list[str]] = []
        written = set()
        for row in rows:
            name = row[file_column].strip() if file_column < len(row) else ""
            if name and name in self.files and name not in labels:
                self._csv_rows_off[name] = (len(kept), len(self._csv_rows_off), row)
                continue  # unlabelled: its row leaves the file
            if name in labels:
                row.extend([""] * (label_column + 1 - len(row)))
                row[label_column] = labels[name]
                written.add(name)
            kept.append(row)
        back, new = [], []
        for file in self.files:
            if file in labels and file not in written:
                if file in self._csv_rows_off:  # a row that left: back in its place
                    place, order, row = self._csv_rows_off.pop(file)
                    back.append((place, order, row))
                else:
                    row = [""] * max(len(header), file_column + 1, label_column + 1)
                    row[file_column] = file
                    new.append(row)
                row[label_column] = labels[file]
        before: dict[int, int] = {}  # rows put back at each place so far
        for place, _, row in sorted(back, key=lambda item: item[:2]):
            at = min(place, len(kept)) + sum(n for p, n in before.items() if p <= place)
            kept.insert(min(at, len(kept)), row)
            before[place] = before.get(place, 0) + 1
        kept += new
        out = io.StringIO()
        csv.writer(out, lineterminator=newline).writerows([header, *kept])
        write_atomic(self.label_path, out.getvalue().encode(encoding))

    def _move(self, changes: dict[str, str | None]) -> dict[str, str]:
        """Class folders: labelled files move through ImageDatastore.relabel, unlabelled
        ones (in the folder itself) into their class folder, and back to the folder for
        label None. Returns {old file: new file}."""
        from deeptoolbox.data import ImageDatastore

        for file, label in changes.items():
            target = self._target(file, label)
            if (self.folder / target).exists():
                raise DataError(f"Labeler: cannot move {file!r} to {target!r}: a file of that "
                                "name is already there. Nothing was moved.")  # fmt: skip
        renamed: dict[str, str] = {}
        relabel = {str(self.folder / f): lbl for f, lbl in changes.items()
                   if f in self.labels and lbl is not None}  # fmt: skip
        if relabel:
            labelled = [str(self.folder / f) for f in self.files if f in self.labels]
            ds = ImageDatastore(labelled, labels="folders", classes=sorted(
                set(self.classes) | set(self.labels.values())))  # fmt: skip
            for old, new in ds.relabel(relabel).items():
                renamed[self._relative(old)] = self._relative(new)
        for file, label in changes.items():
            if file in renamed:
                continue
            target = self._target(file, label)
            (self.folder / target).parent.mkdir(parents=True, exist_ok=True)
            os.rename(self.folder / file, self.folder / target)  # checked above: no overwrite
            renamed[file] = target
        return renamed

    def _target(self, file: str, label: str | None) -> str:
        name = file.rsplit("/", 1)[-1]
        return name if label is None else f"{label}/{name}"

    def _relative(self, path: str) -> str:
        return str(Path(path).resolve().relative_to(self.folder)).replace(os.sep, "/")

    # ---- boxes ----
    def set_boxes(self, file: str, boxes: list[dict[str, Any]]) -> dict[str, Any]:
        """Replace the boxes of image ``file`` (``{x, y, width, height, label}`` in pixels)
        and save ``boxes.json``; undoable."""
        with self._lock:
            width, height = _image_size(self.path_of(file))
            checked = [self._check_box(file, box, width, height) for box in boxes]
            before = {file: self.boxes.get(file, [])}
            updated = dict(self.boxes)
            updated[file] = checked
            self._write_boxes(updated)
            self.boxes = updated
            self._history.append(("boxes", before))
        return self.describe()

    def _check_box(self, file: str, box: dict[str, Any], width: int, height: int) -> dict:
        try:
            x, y, w, h = (float(box[k]) for k in ("x", "y", "width", "height"))
            label = str(box["label"])
        except (KeyError, TypeError, ValueError) as err:
            raise OptionError(f"Labeler: a box of {file!r} needs x, y, width, height and "
                              f"label. Received: {box!r}.") from err  # fmt: skip
        if label not in self.classes:
            raise OptionError(f"Labeler: a box of {file!r} has the unknown class {label!r}. "
                              f"Allowed: {self.classes}.")  # fmt: skip
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
            raise DataError(f"Labeler: the box [x={x}, y={y}, width={w}, height={h}] of "
                            f"{file!r} is empty or outside the image ({width} x {height}).")  # fmt: skip
        return {"x": x, "y": y, "width": w, "height": h, "label": label}

    def _write_boxes(self, boxes: dict[str, list[dict[str, Any]]]) -> None:
        categories = sorted({b["label"] for bs in boxes.values() for b in bs} | set(self.classes))
        category_id = {name: i + 1 for i, name in enumerate(categories)}
        images, annotations = [], []
        for image_id, file in enumerate(self.files, start=1):
            width, height = _image_size(self.folder / file)
            images.append({"id": image_id, "file_name": file, "width": width, "height": height})
            for box in boxes.get(file, []):
                annotations.append({
                    "id": len(annotations) + 1, "image_id": image_id,
                    "category_id": category_id[box["label"]], "iscrowd": 0,
                    "bbox": [box["x"], box["y"], box["width"], box["height"]],
                    "area": box["width"] * box["height"],
                })  # fmt: skip
        coco = {"images": images, "annotations": annotations,
                "categories": [{"id": i, "name": n} for n, i in category_id.items()]}  # fmt: skip
        write_atomic(self.folder / BOXES_FILE, json.dumps(coco, indent=1))

    def _read_boxes(self) -> dict[str, list[dict[str, Any]]]:
        path = self.folder / BOXES_FILE
        if not path.is_file():
            return {}
        try:
            coco = json.loads(path.read_text(encoding="utf-8"))
            names = {c["id"]: str(c["name"]) for c in coco["categories"]}
            files = {im["id"]: im for im in coco["images"]}
            boxes: dict[str, list[dict[str, Any]]] = {}
            for a in coco["annotations"]:
                image = files[a["image_id"]]
                x, y, w, h = (float(v) for v in a["bbox"])
                if a["category_id"] not in names:
                    raise DataError(f"Labeler: annotation {a.get('id')} of "
                                    f"'{image['file_name']}' in '{path}' has the category_id "
                                    f"{a['category_id']!r}, which is not in its categories "
                                    f"{names}.")  # fmt: skip
                label = names[a["category_id"]]
                if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > image["width"] or (
                        y + h > image["height"]):  # fmt: skip
                    raise DataError(f"Labeler: annotation {a.get('id')} of "
                                    f"'{image['file_name']}' in '{path}' has the box "
                                    f"{a['bbox']}, outside the image ({image['width']} x "
                                    f"{image['height']}).")  # fmt: skip
                boxes.setdefault(str(image["file_name"]), []).append(
                    {"x": x, "y": y, "width": w, "height": h, "label": label}
                )
        except (OSError, ValueError, KeyError, TypeError) as err:
            if isinstance(err, DataError):
                raise
            raise DataError(f"Labeler: cannot read the box file '{path}' (COCO detection "
                            f"format): {type(err).__name__}: {err}.") from err  # fmt: skip
        return boxes

    # ---- auto-labeling and review ----
    def propose(self, net: Any, *, batch_size: int = 64) -> list[dict[str, Any]]:
        """Run the classifier ``net`` (a Network with an image input and ``classes``) over
        the unlabelled images: one proposal each, ``{file, label, confidence, source}``,
        least confident first (the most informative to label by hand first).

        Example:
            >>> import torch
            >>> from PIL import Image
            >>> from deeptoolbox import Network, layers as L
            >>> folder = Path(tempfile.mkdtemp())
            >>> for name in ("a.png", "b.png"):
            ...     Image.new("L", (4, 4)).save(folder / name)
            >>> _ = torch.manual_seed(0)
            >>> net = Network([L.ImageInput((1, 4, 4)), L.Flatten(), L.Dense(2), L.Softmax()],
            ...               classes=["cat", "dog"])
            >>> session = LabelSession(folder, classes=["cat", "dog"])
            >>> [p["file"] for p in session.propose(net)]
            ['a.png', 'b.png']
        """
        from deeptoolbox.data import ImageDatastore
        from deeptoolbox.inference import classify

        classes = list(getattr(net, "classes", None) or [])
        if not classes:
            raise OptionError("Labeler: the auto-labeling network has no `classes` (give a "
                              "classifier trained with class names).")  # fmt: skip
        self.classes += [str(c) for c in classes if str(c) not in self.classes]
        from deeptoolbox.apps._label_proposals import _keep

        files = [f for f in self.files if f not in self.labels]
        if not files:
            return _keep(self, [], files, "a class")
        shape = net.output_shape(net.input_names[0])
        if shape is None or len(shape) != 3:
            raise OptionError(f"Labeler: auto-labeling needs a network with an image input "
                              f"(C, H, W). Its input is {shape}.")  # fmt: skip
        channels, height, width = shape
        ds = ImageDatastore([str(self.folder / f) for f in files], labels=None,
                            output_size=(height, width), color="gray" if channels == 1 else "rgb")  # fmt: skip
        labels, scores = classify(net, ds, batch_size=batch_size, device="cpu")
        confidence = scores.max(dim=1).values.tolist()
        proposals = [{"file": f, "label": str(lbl), "confidence": float(c), "source": "network"}
                     for f, lbl, c in zip(files, labels.tolist(), confidence, strict=True)]  # fmt: skip
        return _keep(self, proposals, files, "a class")

    def review(self, issues: Any) -> list[dict[str, Any]]:
        """Show a :class:`~deeptoolbox.quality.LabelIssues` list (files of this folder) as
        proposals: the suggested class of each likely mislabelled image, worst first."""
        proposals, missing = [], []
        for record in issues.to_records():
            file = str(record["file"])  # a datastore's path (absolute, or relative to the
            if file not in self.files and os.path.exists(file):  # working folder), or one
                path = Path(file).resolve()  # relative to this folder
                if path.is_relative_to(self.folder):
                    file = self._relative(file)
            if record["is_issue"] and file not in self.files:
                missing.append(str(record["file"]))
            elif file in self.files and record["is_issue"]:
                proposals.append({"file": file, "label": str(record["suggested"]),
                                  "confidence": record["quality"], "source": "label issue",
                                  "given": str(record["given"])})  # fmt: skip
        if missing:
            raise DataError(f"Labeler: {len(missing)} flagged label issue(s) name no image of "
                            f"'{self.folder}' ({missing[:3]}...): find the issues on a "
                            "datastore of this folder's files.")  # fmt: skip
        self.classes += [p["label"] for p in proposals if p["label"] not in self.classes]
        self.proposals = proposals
        return proposals

    def decide(self, file: str, accept: bool) -> dict[str, Any]:
        """Accept (save its label, boxes or mask) or reject the proposal for ``file``; both
        are undoable (undo puts the proposal back on the list)."""
        from deeptoolbox.apps._label_proposals import accept as accept_proposal
        from deeptoolbox.apps._label_proposals import proposal_of

        proposal = proposal_of(self, file)
        if accept:  # it leaves the list (and undo puts it back)
            return accept_proposal(self, file)
        with self._lock:
            before = list(self.proposals)
            self.proposals = [p for p in self.proposals if p is not proposal]
            self._history.append(("proposals", before))
        return self.describe()

    # ---- pixel masks ----
    def _stored_mask_classes(self) -> list[str] | None:
        """The classes (after "background") of the saved ``classes.json``, or None."""
        path = self.folder / MASKS_FOLDER / "classes.json"
        if not path.is_file():
            return None
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            names, ids = list(stored["classes"]), list(stored["label_ids"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataError(f"Labeler: cannot read the class map '{path}': {err}.") from err
        if ids != list(range(len(names))) or names[:1] != ["background"]:
            raise DataError(
                f"Labeler: the class map '{path}' must list 'background' first with label ids "
                f"0, 1, 2...; found classes {names}, label_ids {ids}."
            )
        return [str(n) for n in names[1:]]

    @property
    def mask_classes(self) -> list[str]:
        """The label maps' classes: "background" (id 0), then :attr:`classes` (ids 1, 2...)."""
        return ["background", *[c for c in self.classes if c != "background"]]

    def mask_path(self, file: str) -> Path:
        """Where the label map of image ``file`` is saved."""
        return self.folder / MASKS_FOLDER / (file.replace("/", "__").rsplit(".", 1)[0] + ".png")

    def get_mask(self, file: str) -> dict[str, Any]:
        """The label map of ``file`` as base64 bytes of class ids (row-major), or None."""
        import base64

        import numpy as np
        from PIL import Image

        width, height = _image_size(self.path_of(file))
        path = self.mask_path(file)
        if not path.is_file():
            return {"file": file, "width": width, "height": height, "mask": None}
        with Image.open(path) as image:
            ids = np.asarray(image)
        if ids.ndim != 2:
            raise DataError(f"Labeler: the label map '{path}' of the image {file!r} must be a "
                            f"one-channel PNG of class ids; it has shape {ids.shape} (channels "
                            "last).")  # fmt: skip
        if ids.shape != (height, width):
            raise DataError(f"Labeler: the label map '{path}' is {ids.shape[1]} x "
                            f"{ids.shape[0]} (width x height), but its image {file!r} is "
                            f"{width} x {height}: a label map has one class id per image "
                            "pixel.")  # fmt: skip
        bad = sorted(set(np.unique(ids).tolist()) - set(range(len(self.mask_classes))))
        if bad:
            raise DataError(f"Labeler: the label map '{path}' of {file!r} has the values {bad}, "
                            f"which are not ids of the class map "
                            f"{dict(enumerate(self.mask_classes))}.")  # fmt: skip
        return {"file": file, "width": width, "height": height,
                "mask": base64.b64encode(ids.astype(np.uint8).tobytes()).decode()}  # fmt: skip

    def set_mask(self, file: str, mask: str) -> dict[str, Any]:
        """Save the label map of ``file`` (base64 bytes of class ids, row-major) as a PNG,
        with ``classes.json`` (classes and label ids); undoable."""
        import base64
        import binascii

        import numpy as np

        with self._lock:
            width, height = _image_size(self.path_of(file))
            try:
                ids = np.frombuffer(base64.b64decode(mask, validate=True), np.uint8)
            except (binascii.Error, ValueError) as err:
                raise OptionError(f"Labeler: the mask of {file!r} is not base64.") from err
            if ids.size != width * height:
                raise DataError(f"Labeler: the mask of {file!r} has {ids.size} pixels; the "
                                f"image has {width} x {height} = {width * height}.")  # fmt: skip
            bad = sorted(set(np.unique(ids).tolist()) - set(range(len(self.mask_classes))))
            if bad:
                raise DataError(f"Labeler: the mask of {file!r} has values {bad} that are not "
                                f"in the class map {dict(enumerate(self.mask_classes))}.")  # fmt: skip
            path = self.mask_path(file)
            before = path.read_bytes() if path.is_file() else None
            self._write_mask(path, ids.reshape(height, width))
            self._history.append(("mask", (path, before)))
        return self.describe()

    def _write_mask(self, path: Path, ids: Any) -> None:
        from PIL import Image

        path.parent.mkdir(exist_ok=True)
        out = io.BytesIO()
        Image.fromarray(ids).save(out, format="PNG")
        classes = self.mask_classes
        write_atomic(path.parent / "classes.json", json.dumps(
            {"classes": classes, "label_ids": list(range(len(classes)))}, indent=1))  # fmt: skip
        write_atomic(path, out.getvalue())

    # ---- undo and redo ----
    def undo(self) -> dict[str, Any]:
        """Undo the last change (labels, boxes, a mask, an accepted proposal) and save."""
        with self._lock:
            if not self._history:
                raise OptionError("Labeler: nothing to undo.")
            if not self._can_redo():
                self._redo = []
            self._redo.append(self._restore(*self._history.pop()))
            self._redo_at = len(self._history)
        return self.describe()

    def redo(self) -> dict[str, Any]:
        """Redo the last undone change (until a new change is made) and save."""
        with self._lock:
            if not self._can_redo():
                raise OptionError("Labeler: nothing to redo.")
            self._history.append(self._restore(*self._redo.pop()))
            self._redo_at = len(self._history)
        return self.describe()

    def _can_redo(self) -> bool:
        return bool(self._redo) and len(self._history) == self._redo_at

    def _restore(self, kind: str, before: Any) -> tuple[str, Any]:
        """Put back the state ``before`` of one change; returns the state it replaced, in
        the same form (what undoes this restore)."""
        if kind == "proposal":  # an accepted proposal: its change, and the proposal list
            change, proposals = before
            replaced = self._restore(*change)
            now, self.proposals = self.proposals, proposals
            return ("proposal", (replaced, now))
        if kind == "proposals":  # a rejected proposal: the list before
            now, self.proposals = self.proposals, before
            return ("proposals", now)
        if kind == "mask":
            path, data = before
            now = path.read_bytes() if path.is_file() else None
            if data is None:
                path.unlink(missing_ok=True)
            else:
                write_atomic(path, data)
            return ("mask", (path, now))
        if kind == "labels":  # before: labels, the proposals to put back (and to take off)
            labels, back, *rest = before
            off = rest[0] if rest else []
            now = {self._current(f, lbl): self.labels.get(self._current(f, lbl))
                   for f, lbl in labels.items()}  # fmt: skip
            self._apply({self._current(f, lbl): lbl for f, lbl in labels.items()
                         if self.labels.get(self._current(f, lbl)) != lbl})  # fmt: skip
            names = {self._current(p["file"], None) for p in off}
            kept = [p for p in self.proposals if p["file"] not in names]
            back = [{**p, "file": self._current(p["file"], None)} for p in back]
            self.proposals = sorted([*kept, *back], key=lambda p: p["confidence"])
            return ("labels", (now, off, back))
        updated = dict(self.boxes)
        now = {f: self.boxes.get(f, []) for f in before}
        updated.update(before)
        self._write_boxes(updated)
        self.boxes = updated
        return ("boxes", now)

    def _current(self, file: str, label: str | None) -> str:
        """Where ``file`` is now (class folders move files when they are labelled)."""
        if file in self.files:
            return file
        name = file.rsplit("/", 1)[-1]
        return next(f for f in self.files if f.rsplit("/", 1)[-1] == name)


class LabelRequest(BaseModel):
    """The body of ``POST /api/labeler/label``: images and their class (None: unlabelled)."""

    files: list[str]
    label: str | None


class BoxesRequest(BaseModel):
    """The body of ``POST /api/labeler/boxes``: all boxes of one image."""

    file: str
    boxes: list[dict[str, Any]]


class MaskRequest(BaseModel):
    """The body of ``POST /api/labeler/mask``: a label map, base64 bytes of class ids."""

    file: str
    mask: str


class DecisionRequest(BaseModel):
    """The body of ``POST /api/labeler/proposals/decide``."""

    file: str
    accept: bool


class ClassRequest(BaseModel):
    """The body of ``POST /api/labeler/classes``."""

    name: str


def add_labeler_routes(app: Any) -> None:
    """``/api/labeler``: the folder's images and labels; label, boxes, classes, undo."""
    from fastapi import Query
    from fastapi.responses import FileResponse

    options = app.state.options

    def session() -> LabelSession:
        if app.state.labeler is None:
            raise OptionError("Labeler: no folder is open; start it with `deeptoolbox label "
                              "FOLDER` or apps.labeler(folder).")  # fmt: skip
        return app.state.labeler

    @app.get("/api/labeler", summary="the labeler's folder, classes, images and labels")
    def get_labeler() -> dict[str, Any]:
        return session().describe()

    @app.get("/api/labeler/image", summary="one image of the folder")
    def get_image(file: str = Query(...)) -> Any:
        path = session().path_of(file)
        _files.confined(options.root, str(path))
        return FileResponse(path)

    @app.post("/api/labeler/label", summary="give images a class (None: unlabelled); saved")
    def post_label(request: LabelRequest) -> dict[str, Any]:
        return session().set_labels(request.files, request.label)

    @app.post("/api/labeler/boxes", summary="replace the boxes of one image; saved as COCO")
    def post_boxes(request: BoxesRequest) -> dict[str, Any]:
        return session().set_boxes(request.file, request.boxes)

    @app.get("/api/labeler/mask", summary="the label map of one image (base64 class ids)")
    def get_mask(file: str = Query(...)) -> dict[str, Any]:
        return session().get_mask(file)

    @app.post("/api/labeler/mask", summary="save the label map of one image as a PNG")
    def post_mask(request: MaskRequest) -> dict[str, Any]:
        return session().set_mask(request.file, request.mask)

    @app.post("/api/labeler/proposals/decide", summary="accept (save) or reject a proposal")
    def post_decide(request: DecisionRequest) -> dict[str, Any]:
        return session().decide(request.file, request.accept)

    @app.post("/api/labeler/classes", summary="add a class")
    def post_class(request: ClassRequest) -> dict[str, Any]:
        return session().add_class(request.name)

    @app.post("/api/labeler/undo", summary="undo the last label or box change")
    def post_undo() -> dict[str, Any]:
        return session().undo()
