"""TabularDatastore: CSV / Parquet tables read in chunks through pyarrow, bounded memory."""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from deeptoolbox.data import _files
from deeptoolbox.data._base import _check_fractions
from deeptoolbox.errors import DataError, OptionError

__all__ = ["TabularDatastore"]

_FORMATS = {".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}


def _format_of(path: str) -> str:
    fmt = _FORMATS.get(os.path.splitext(path)[1].lower())
    if fmt is None:
        raise DataError(
            f"TabularDatastore: cannot tell the format of '{path}' from its extension. "
            f"Allowed: {sorted(_FORMATS)}."
        )
    return fmt


class TabularDatastore(IterableDataset):
    """A CSV or Parquet table (one file, several, or fsspec URLs) read in chunks of
    ``read_size`` rows (MATLAB ``tabularTextDatastore`` / ``parquetDatastore``).

    Iterating gives one batch per chunk, ``(X, y)``: X float32 (n, F) with categorical
    predictors one-hot encoded (``feature_names`` lists the F columns), and y the class
    index (int64, classification: a text or ``categorical`` response) or the float32
    value(s) (regression); X alone without a response. Only one chunk (plus one pyarrow
    read block) is in memory at a time. With DataLoader workers, or parts from
    :meth:`partition` (which ``train()`` takes for each process), the files' *read units*
    (Parquet row groups; CSV files whole) are dealt out, so each reader downloads and
    parses only its own units (chunks are dealt out instead when there are fewer units
    than readers). Unlike the map-style datastores there is no ``len``/indexing (use
    ``num_rows``); ``split`` assigns rows at random, without stratification.

    Args:
        location: a .csv/.tsv/.txt or .parquet file, URL, or a list of them (same columns).
        predictors: input column names (default: every column but the response).
        response: target column name(s), or None.
        categorical: predictor columns to one-hot encode (default: the text columns).
        categories: the categories of some columns, {name: [values]}; others are found by
            one pass over the data when the datastore is built.
        classes: the class order of a categorical response (default: sorted values).
        read_size: rows per chunk.
        block_size: bytes pyarrow parses at a time from CSV files. pyarrow's streaming
            reader keeps a few dozen blocks in flight, so memory is about
            ``read_size`` rows plus ~35 x ``block_size`` (2-3 MB at the default 64 KiB).
        storage_options: fsspec options for URLs (credentials, ``endpoint_url``...).
        cache_dir: a folder where remote files are copied on first read and read from
            afterwards (None: read them remotely every time).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "t.csv")
        >>> with open(path, "w") as f:
        ...     _ = f.write("x,colour,y\\n1,red,a\\n2,blue,b\\n3,red,a\\n")
        >>> ds = TabularDatastore(path, response="y", read_size=2)
        >>> ds.feature_names, ds.classes, ds.num_rows
        (['x', 'colour=blue', 'colour=red'], ['a', 'b'], 3)
        >>> [tuple(X.shape) for X, y in ds]
        [(2, 3), (1, 3)]
    """

    collate_fn = None

    def __init__(
        self,
        location: _files.Location,
        *,
        predictors: Sequence[str] | None = None,
        response: str | Sequence[str] | None = None,
        categorical: Sequence[str] | None = None,
        categories: dict[str, Sequence[Any]] | None = None,
        classes: Sequence[Any] | None = None,
        read_size: int = 10_000,
        block_size: int = 1 << 16,
        storage_options: dict[str, Any] | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        for name, value in (("read_size", read_size), ("block_size", block_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionError(
                    f"TabularDatastore: `{name}` must be a positive int. Received: {value!r}."
                )
        self.read_size, self.block_size = read_size, block_size
        extensions = tuple(_FORMATS)
        self._remote = _files.remote_access("TabularDatastore", storage_options, cache_dir)
        self.files, _ = _files.list_files(
            "TabularDatastore", location, extensions, True, self._remote
        )
        self._formats = [_format_of(f) for f in self.files]
        schema = self._schema()
        columns = list(schema.names)
        self.response = [response] if isinstance(response, str) else list(response or [])
        self.predictors = (
            list(predictors)
            if predictors is not None
            else [c for c in columns if c not in self.response]
        )
        self._check_columns(columns, [*self.predictors, *self.response])
        text = {c for c in columns if _is_text(schema.field(c).type)}
        self.categorical = (
            [c for c in self.predictors if c in text] if categorical is None else list(categorical)
        )
        self._check_columns(self.predictors, self.categorical, "`categorical`")
        self._classify = len(self.response) == 1 and self.response[0] in text
        self._transforms: tuple[Callable[[Any], Any], ...] = ()
        self._partition = (1, 0)
        self._unit_list: list[tuple[int, int | None]] | None = None
        self._row_filter: tuple[list[float], int, int] | None = None
        self._shuffle_seed: int | None = None
        self._iterator: Iterator[Any] | None = None
        self._lookahead: list[Any] = []
        self._categories = self._find_categories(dict(categories or {}), classes)

    # ------------------------------------------------------------------ reading
    def _schema(self) -> Any:
        import pyarrow.parquet as pq

        try:
            with self._remote.open(self.files[0]) as source:
                if self._formats[0] == "parquet":
                    return pq.ParquetFile(source).schema_arrow
                return self._csv_reader(source, self._formats[0], None).schema
        except (OSError, ValueError) as err:  # pyarrow.ArrowInvalid is a ValueError
            raise DataError(f"TabularDatastore: cannot read '{self.files[0]}': {err}") from err

    def _csv_reader(self, source: Any, fmt: str, columns: list[str] | None) -> Any:
        import pyarrow as pa
        from pyarrow import csv

        types = {}
        if columns is not None:  # fixed types, so later blocks cannot disagree with the first
            text = {*self.categorical, *(self.response if self._classify else [])}
            types = {c: pa.string() if c in text else pa.float64() for c in columns}
        return csv.open_csv(
            source,
            read_options=csv.ReadOptions(block_size=self.block_size),
            parse_options=csv.ParseOptions(delimiter="\t" if fmt == "tsv" else ","),
            convert_options=csv.ConvertOptions(include_columns=columns, column_types=types),
        )

    def _check_columns(self, columns: list[str], wanted: list[str], what: str = "columns") -> None:
        missing = [c for c in wanted if c not in columns]
        if missing:
            raise DataError(
                f"TabularDatastore: {what} {missing} not found in '{self.files[0]}'. "
                f"Available: {columns}."
            )

    def _units(self) -> list[tuple[int, int | None]]:
        """The read units, ``(file index, row group)``: each Parquet row group, each CSV
        file whole (row group None). Found once (Parquet footers only)."""
        import pyarrow.parquet as pq

        if self._unit_list is None:
            units: list[tuple[int, int | None]] = []
            for index, path in enumerate(self.files):
                if self._formats[index] != "parquet":
                    units.append((index, None))
                    continue
                try:
                    with self._remote.open(path) as source:
                        groups = pq.ParquetFile(source).num_row_groups
                except (OSError, ValueError) as err:
                    raise DataError(f"TabularDatastore: cannot read '{path}': {err}") from err
                units.extend((index, g) for g in range(groups))
            self._unit_list = units
        return self._unit_list

    def _file_batches(
        self, index: int, groups: list[int | None], columns: list[str]
    ) -> Iterator[Any]:
        """The record batches of some read units of one file (the file opened once), with
        the rows of a ``split`` part selected."""
        import pyarrow.parquet as pq

        path = self.files[index]
        try:
            with self._remote.open(path) as source:
                parquet = pq.ParquetFile(source) if self._formats[index] == "parquet" else None
                for group in groups:
                    batches = (
                        self._csv_reader(source, self._formats[index], columns)
                        if parquet is None
                        else parquet.iter_batches(
                            batch_size=self.read_size, row_groups=[group], columns=columns
                        )
                    )
                    place = 0 if group is None else group + 1
                    for number, batch in enumerate(batches):
                        yield self._split_rows(batch, (index, place, number))
        except (OSError, ValueError, KeyError) as err:  # pyarrow.ArrowInvalid is a ValueError
            raise DataError(f"TabularDatastore: cannot read '{path}': {err}") from err

    def _split_rows(self, batch: Any, key: tuple[int, int, int]) -> Any:
        """The rows of ``batch`` in this split part: each row draws a number from a generator
        seeded by the batch's place in the files, so a row's part never depends on how the
        files are dealt out to processes or workers."""
        if self._row_filter is None:
            return batch
        bounds, seed, k = self._row_filter
        u = np.random.default_rng([seed, *key]).random(batch.num_rows)
        return batch.filter(np.asarray((u >= bounds[k]) & (u < bounds[k + 1])))

    def _tables(
        self, columns: list[str], units: list[tuple[int, int | None]] | None = None
    ) -> Iterator[Any]:
        """Tables of exactly ``read_size`` rows (the last may be shorter) across the read
        ``units`` (default: all)."""
        import pyarrow as pa

        pending = None
        units = self._units() if units is None else units
        for index, same_file in itertools.groupby(units, key=lambda unit: unit[0]):
            for batch in self._file_batches(index, [g for _, g in same_file], columns):
                table = pa.Table.from_batches([batch])
                pending = table if pending is None else pa.concat_tables([pending, table])
                while pending.num_rows >= self.read_size:
                    yield pending.slice(0, self.read_size)
                    pending = pending.slice(self.read_size)
        if pending is not None and pending.num_rows:
            yield pending

    def _find_categories(self, given: dict[str, Sequence[Any]], classes: Any) -> dict[str, list]:
        needed = [c for c in self.categorical if c not in given]
        if self._classify and classes is None:
            needed.append(self.response[0])
        found: dict[str, set] = {c: set() for c in needed}
        if needed:
            for table in self._tables(needed):
                for c in needed:
                    found[c].update(
                        v for v in table.column(c).unique().to_pylist() if v is not None
                    )
        result = {c: list(v) for c, v in given.items()}
        result.update({c: sorted(v) for c, v in found.items()})
        if self._classify and classes is not None:
            result[self.response[0]] = list(classes)
        return result

    # ------------------------------------------------------------------ conversion
    @property
    def feature_names(self) -> list[str]:
        """The columns of X: numeric predictors, and ``name=value`` for one-hot columns."""
        names: list[str] = []
        for c in self.predictors:
            if c in self.categorical:
                names.extend(f"{c}={v}" for v in self._categories[c])
            else:
                names.append(c)
        return names

    @property
    def classes(self) -> list[Any] | None:
        """Class names of a categorical response (None for regression or no response)."""
        return list(self._categories[self.response[0]]) if self._classify else None

    def _codes(self, table: Any, column: str) -> np.ndarray:
        import pyarrow as pa
        import pyarrow.compute as pc

        values = table.column(column)
        categories = self._categories[column]
        codes = pc.index_in(values, value_set=pa.array(categories, type=values.type))
        bad = pc.and_(pc.is_null(codes), pc.is_valid(values))
        if pc.any(bad).as_py():
            unknown = pc.filter(values, bad).unique().to_pylist()[:5]
            raise DataError(
                f"TabularDatastore: column '{column}' has values {unknown} that are not in its "
                f"categories {categories[:20]}. Add them to `categories`/`classes`."
            )
        return codes.to_numpy(zero_copy_only=False)

    def _convert(self, table: Any) -> Any:
        parts = []
        for c in self.predictors:
            if c in self.categorical:
                codes = self._codes(table, c)
                onehot = np.zeros((len(codes), len(self._categories[c])), np.float32)
                valid = ~np.isnan(codes.astype(np.float64))
                onehot[np.flatnonzero(valid), codes[valid].astype(np.int64)] = 1.0
                parts.append(onehot)
            else:
                column = table.column(c).to_numpy(zero_copy_only=False)
                parts.append(np.asarray(column, dtype=np.float32)[:, None])
        x = (
            torch.from_numpy(np.concatenate(parts, axis=1))
            if parts
            else torch.zeros(table.num_rows, 0)
        )
        if not self.response:
            return x
        if self._classify:
            y = torch.from_numpy(self._codes(table, self.response[0]).astype(np.int64))
        else:
            values = [
                np.asarray(table.column(c).to_numpy(zero_copy_only=False), np.float32)
                for c in self.response
            ]
            y = torch.from_numpy(values[0] if len(values) == 1 else np.stack(values, axis=1))
        return x, y

    def _chunks(self) -> Iterator[Any]:
        worker = get_worker_info()
        parts, part = self._partition
        if worker is not None:
            parts, part = parts * worker.num_workers, part * worker.num_workers + worker.id
        columns = list(dict.fromkeys([*self.predictors, *self.response]))
        units = self._units()
        by_unit = parts > 1 and len(units) >= parts  # each reader reads only its own units
        tables = self._tables(columns, units[part::parts] if by_unit else units)
        for number, table in enumerate(tables):
            if parts > 1 and not by_unit and number % parts != part:
                continue
            table = self._shuffle_rows(table, number)
            if table.num_rows == 0:
                continue
            chunk = self._convert(table)
            for fn in self._transforms:
                chunk = fn(chunk)
            yield chunk

    def _shuffle_rows(self, table: Any, number: int) -> Any:
        if self._shuffle_seed is not None:
            rng = np.random.default_rng([self._shuffle_seed, number])
            table = table.take(rng.permutation(table.num_rows))
        return table

    def __iter__(self) -> Iterator[Any]:
        return self._chunks()

    def __repr__(self) -> str:
        return (
            f"TabularDatastore({len(self.files)} file(s), predictors={self.predictors}, "
            f"response={self.response or None}, read_size={self.read_size})"
        )

    # ------------------------------------------------------------------ datastore API
    def read(self) -> Any:
        """The next chunk ``(X, y)``; raises DataError at the end (see ``has_data``/``reset``).

        Example:
            >>> import tempfile, os
            >>> path = os.path.join(tempfile.mkdtemp(), "t.csv")
            >>> _ = open(path, "w").write("a,b\\n1,2\\n3,4\\n")
            >>> TabularDatastore(path, response="b").read()[0].tolist()
            [[1.0], [3.0]]
        """
        if not self.has_data():
            raise DataError("TabularDatastore: no more data to read. Call reset() first.")
        return self._lookahead.pop()

    def has_data(self) -> bool:
        """True while ``read()`` has chunks left."""
        if self._iterator is None:
            self._iterator = self._chunks()
        if not self._lookahead:
            self._lookahead = [c for c in [next(self._iterator, None)] if c is not None]
        return bool(self._lookahead)

    def reset(self) -> None:
        """Start ``read()`` again from the first chunk."""
        self._iterator, self._lookahead = None, []

    def readall(self) -> Any:
        """Every chunk joined: ``(X, y)`` for the whole table (needs it to fit in memory)."""
        chunks = list(self._chunks())
        if not chunks:
            raise DataError("TabularDatastore: the table has no rows.")
        if isinstance(chunks[0], tuple):
            return tuple(torch.cat(items) for items in zip(*chunks, strict=True))
        return torch.cat(chunks)

    def preview(self, rows: int = 8) -> Any:
        """The first ``rows`` rows, as ``(X, y)``."""
        chunk = next(iter(self._chunks()), None)
        if chunk is None:
            raise DataError("TabularDatastore: the table has no rows.")
        return tuple(t[:rows] for t in chunk) if isinstance(chunk, tuple) else chunk[:rows]

    @property
    def num_rows(self) -> int:
        """Number of rows (from Parquet metadata, else one pass over the data)."""
        import pyarrow.parquet as pq

        plain = self._row_filter is None and self._partition == (1, 0)
        if plain and all(f == "parquet" for f in self._formats):
            total = 0
            for path in self.files:
                with self._remote.open(path) as source:
                    total += pq.ParquetFile(source).metadata.num_rows
            return total
        chunks = self._copy()._chunks()
        return sum(int((c[0] if isinstance(c, tuple) else c).shape[0]) for c in chunks)

    @property
    def labels(self) -> np.ndarray | None:
        """The class name of every row (one pass over the data); None without classes."""
        if not self._classify:
            return None
        classes = np.asarray(self.classes)
        return np.concatenate([classes[y.numpy()] for _, y in self._chunks()])

    def count_each_label(self) -> dict[Any, int]:
        """Rows of each class (one pass over the data)."""
        if not self._classify:
            raise DataError("TabularDatastore.count_each_label: the response is not categorical.")
        counts = np.zeros(len(self.classes or []), np.int64)
        for _, y in self._chunks():
            counts += np.bincount(y.numpy(), minlength=len(counts))
        return {c: int(n) for c, n in zip(self.classes or [], counts, strict=True)}

    def _copy(self) -> TabularDatastore:
        new = copy.copy(self)
        new._iterator, new._lookahead = None, []
        return new

    def partition(self, n: int, i: int) -> TabularDatastore:
        """Part ``i`` (0-based) of ``n`` (MATLAB ``partition(ds, n, i)`` with i from 0): every
        n-th read unit (Parquet row group, CSV file), or every n-th chunk when there are
        fewer units than parts; the parts cover each row once, and a part reads only its
        own units.

        Example:
            >>> import tempfile, os, pyarrow as pa, pyarrow.parquet as pq
            >>> path = os.path.join(tempfile.mkdtemp(), "t.parquet")
            >>> pq.write_table(pa.table({"x": list(range(8))}), path, row_group_size=2)
            >>> [TabularDatastore(path).partition(2, i).readall()[:, 0].tolist() for i in (0, 1)]
            [[0.0, 1.0, 4.0, 5.0], [2.0, 3.0, 6.0, 7.0]]
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1 or not 0 <= i < n:
            raise OptionError(
                f"TabularDatastore.partition: need n >= 1 and 0 <= i < n. Received n={n!r}, i={i!r}."
            )
        new = self._copy()
        parts, part = self._partition
        new._partition = (parts * n, part + parts * i)
        return new

    def shard(self, num_shards: int, index: int) -> TabularDatastore:
        """The part of process ``index`` among ``num_shards``: ``partition(num_shards,
        index)`` under the name PyTorch and tf.data use (``train()`` takes it by itself)."""
        return self.partition(num_shards, index)

    def split(
        self, fractions: float | Sequence[float], *, stratify: bool = False, seed: int = 0
    ) -> tuple[TabularDatastore, ...]:
        """Split rows at random by ``fractions`` (one part per fraction, plus the rest);
        each row lands in exactly one part. ``stratify=True`` is not available for streams."""
        if stratify:
            raise OptionError(
                "TabularDatastore.split: stratify=True needs every label up front; streams split "
                "at random (stratify=False). Read into an ArrayDatastore to stratify."
            )
        if self._row_filter is not None:
            raise OptionError("TabularDatastore.split: this datastore is already a split part.")
        bounds = _check_fractions("TabularDatastore", fractions)
        parts = []
        for k in range(len(bounds) - 1):
            new = self._copy()
            new._row_filter = (bounds, int(seed), k)
            parts.append(new)
        return tuple(parts)

    def shuffle(self, seed: int | None = None) -> TabularDatastore:
        """Shuffle the rows inside each chunk (a stream cannot be shuffled globally)."""
        new = self._copy()
        new._shuffle_seed = (
            int(np.random.default_rng(seed).integers(2**31)) if seed is None else seed
        )
        return new

    def transform(self, fn: Callable[[Any], Any]) -> TabularDatastore:
        """Apply ``fn`` to each chunk ``(X, y)`` when it is read (lazy)."""
        if not callable(fn):
            raise OptionError(
                f"TabularDatastore.transform: `fn` must be callable. Received: {fn!r}."
            )
        new = self._copy()
        new._transforms = (*self._transforms, fn)
        return new


def _is_text(arrow_type: Any) -> bool:
    import pyarrow as pa

    return (
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or (pa.types.is_dictionary(arrow_type))
    )
