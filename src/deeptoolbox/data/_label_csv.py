"""Class labels in a CSV file beside the images (``ImageDatastore(folder, labels="labels.csv")``):
reading it with errors that name the file and line, and writing label fixes back to it
atomically, keeping its row order and its other columns.

The Labeler (``deeptoolbox label FOLDER``, csv mode) writes exactly this format: a
``labels.csv`` in the folder with the columns ``file`` and ``label``, ``file`` relative to
the folder (``/`` as separator), one row per labelled image, unlabelled images left out.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deeptoolbox.errors import DataError, OptionError

__all__ = ["LABEL_FILE", "LabelTable", "label_file_of", "read_table", "labelled_rows",
           "write_labels"]  # fmt: skip

LABEL_FILE = "labels.csv"  # the name the Labeler gives its label CSV (apps/_labeler.py)


@dataclass
class LabelTable:
    """A label CSV as read: every row (other columns and blank lines kept for rewriting),
    the positions of the file and label columns, and the row of each file."""

    path: str
    folder: str
    rows: list[list[str]]  # rows[0] is the header
    lines: list[int]  # the line each row starts on (for messages)
    file_column: int
    label_column: int
    encoding: str
    newline: str
    by_file: dict[str, int]  # normalised absolute file path -> row index

    def file_path(self, value: str) -> str:
        """The image a ``file`` cell names: relative to the folder (``/`` or the system's
        separator) or absolute."""
        return os.path.normpath(os.path.join(self.folder, value.replace("/", os.sep)))


def check_columns(kind: str, label_columns: Any) -> tuple[str, str]:
    """Validate ``label_columns`` (the names of the file and label columns)."""
    if (isinstance(label_columns, str) or not isinstance(label_columns, Sequence)
            or len(label_columns) != 2 or not all(isinstance(c, str) and c for c in label_columns)
            or label_columns[0] == label_columns[1]):  # fmt: skip
        raise OptionError(
            f"{kind}: `label_columns` must be two different column names (file, label), such "
            f"as ('file', 'label'). Received: label_columns={label_columns!r}."
        )
    return label_columns[0], label_columns[1]


def _is_csv_name(labels: Any) -> bool:
    return isinstance(labels, str | os.PathLike) and os.fspath(labels).lower().endswith(".csv")


def _one_local_folder(location: Any) -> str | None:
    if isinstance(location, Sequence) and not isinstance(location, str) and len(location) == 1:
        location = location[0]
    if not isinstance(location, str | os.PathLike):
        return None
    path = os.fspath(location)
    return path if "://" not in path and os.path.isdir(path) else None


def _header(path: str) -> list[str] | None:
    try:
        with open(path, encoding="utf-8-sig", newline="") as stream:
            return next(csv.reader(stream), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def label_file_of(
    kind: str, location: Any, labels: Any, columns: tuple[str, str]
) -> tuple[str, str] | None:
    """``(label CSV, folder)`` when a datastore reads its labels from a CSV, else None.

    ``labels`` names a ``.csv`` file (relative to the folder ``location``, or absolute), or
    is "auto" and the folder holds a ``labels.csv`` whose header has both ``columns`` (what
    the Labeler writes); another ``labels.csv`` leaves "auto" reading folder names.
    """
    folder = _one_local_folder(location)
    if _is_csv_name(labels):
        if folder is None:
            raise OptionError(
                f"{kind}: labels={os.fspath(labels)!r} (a label CSV) needs `location` to be one "
                f"local folder, the one its file column is relative to. Received: {location!r}."
            )
        path = os.path.abspath(os.path.join(folder, os.fspath(labels)))
        if not os.path.isfile(path):
            raise DataError(f"{kind}: cannot find the label file '{path}' (labels="
                            f"{os.fspath(labels)!r}, relative to '{folder}').")  # fmt: skip
        return path, folder
    if not (isinstance(labels, str) and labels == "auto") or folder is None:
        return None
    path = os.path.abspath(os.path.join(folder, LABEL_FILE))
    header = _header(path) if os.path.isfile(path) else None
    found = header is not None and set(columns) <= {h.strip() for h in header}
    return (path, folder) if found else None


def read_table(kind: str, path: str, folder: str, columns: tuple[str, str]) -> LabelTable:
    """Read the label CSV ``path`` (its file column relative to ``folder``)."""
    try:
        with open(path, "rb") as stream:
            raw = stream.read()
        encoding = "utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8"
        text = raw.decode(encoding)
        reader = csv.reader(io.StringIO(text, newline=""))
        rows, lines = [], []
        for row in reader:
            rows.append(row)
            lines.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{kind}: cannot read the label file '{path}': {err}.") from err
    header = [h.strip() for h in rows[0]] if rows else []
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(
            f"{kind}: the label file '{path}' has no column {missing[0]!r} (line 1: columns "
            f"{header}). It needs the columns {list(columns)}; set `label_columns=(file, "
            "label)` to read other names."
        )
    table = LabelTable(path, folder, rows, lines, header.index(columns[0]),
                       header.index(columns[1]), encoding,
                       "\r\n" if "\r\n" in text else "\n", {})  # fmt: skip
    for i, row in enumerate(rows[1:], start=1):
        file = _cell(row, table.file_column)
        if not file:
            if any(cell.strip() for cell in row):
                raise DataError(f"{kind}: line {lines[i]} of the label file '{path}' has an "
                                f"empty {columns[0]!r} column: {row}.")  # fmt: skip
            continue  # a blank line
        key = table.file_path(file)
        if key in table.by_file:
            first = table.by_file[key]
            raise DataError(
                f"{kind}: the label file '{path}' lists {file!r} twice (lines "
                f"{lines[first]} and {lines[i]}); give each file one row."
            )
        table.by_file[key] = i
    return table


def _cell(row: list[str], column: int) -> str:
    return row[column].strip() if column < len(row) else ""


def labelled_rows(
    kind: str, table: LabelTable, extensions: tuple[str, ...] | None, classes: Any
) -> tuple[list[str], np.ndarray]:
    """The files and labels of a label table, in row order; every file must exist, have one
    of ``extensions`` and a non-empty label (one of ``classes`` when given)."""
    files, labels = [], []
    allowed = None if classes is None else {str(c) for c in classes}
    for key, i in table.by_file.items():
        row, line = table.rows[i], table.lines[i]
        where = f"line {line} of the label file '{table.path}'"
        name, label = _cell(row, table.file_column), _cell(row, table.label_column)
        if not os.path.isfile(key):
            raise DataError(f"{kind}: {where} names {name!r}, which does not exist ('{key}'). "
                            "Fix or remove the row.")  # fmt: skip
        suffix = os.path.splitext(key)[1].lower()
        if extensions is not None and suffix not in extensions:
            raise DataError(f"{kind}: {where} names {name!r}, whose extension {suffix!r} this "
                            f"datastore does not read. Allowed: {list(extensions)} "
                            "(option `extensions`).")  # fmt: skip
        if not label:
            raise DataError(f"{kind}: {where} gives {name!r} an empty label. Give it a class "
                            "or remove the row (unlabelled images have no row).")  # fmt: skip
        if allowed is not None and label not in allowed:
            raise DataError(f"{kind}: {where} gives {name!r} the class {label!r}, which is not "
                            f"in `classes` {list(classes)}.")  # fmt: skip
        files.append(key)
        labels.append(label)
    if not files:
        raise DataError(f"{kind}: the label file '{table.path}' labels no image (it has no "
                        "rows after its header).")  # fmt: skip
    return files, np.asarray(labels)


def write_labels(
    kind: str, path: str, folder: str, columns: tuple[str, str], changes: Mapping[str, str]
) -> None:
    """Rewrite the label CSV with ``changes`` ({file path: new label}) applied, atomically:
    the file is read again (rows kept in order, other columns as they are), and a failed
    write leaves it as it was."""
    from deeptoolbox._atomic import atomic_open

    if not changes:
        return
    table = read_table(kind, path, folder, columns)
    gone = [f for f in changes if os.path.normpath(f) not in table.by_file]
    if gone:
        raise DataError(
            f"{kind}.relabel: the label file '{path}' no longer has a row for {gone[:5]} (it "
            "changed since the datastore was made). Nothing was written; make the datastore "
            "again."
        )
    rows = [list(row) for row in table.rows]
    for file, label in changes.items():
        row = rows[table.by_file[os.path.normpath(file)]]
        row.extend([""] * (table.label_column + 1 - len(row)))
        row[table.label_column] = str(label)
    with atomic_open(path, "w", encoding=table.encoding, newline="") as stream:
        csv.writer(stream, lineterminator=table.newline).writerows(rows)
