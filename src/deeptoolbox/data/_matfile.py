"""A structural check of MATLAB v5 .mat files before scipy reads them.

``scipy.io.loadmat`` crashes the process (SIGSEGV) on some damaged files, e.g. a numeric
matrix whose data element has an invalid type. This walks the file's data elements (tags,
sizes, compressed elements inflated within the read limits) and checks every numeric
matrix: flags, dimensions, name and data elements of valid types whose sizes match the
dimensions. A file that fails raises DataError naming the file; scipy then only sees files
whose structure is sound.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from deeptoolbox._limits import CHUNK_BYTES, current_limits
from deeptoolbox.errors import DataError
from deeptoolbox.errors import _MatDamaged as _Damaged

_HEADER = 128
_MATRIX, _COMPRESSED = 14, 15
_ITEMSIZE = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 9: 8, 12: 8, 13: 8, 16: 1, 17: 2, 18: 4}
_NUMERIC_CLASSES = set(range(6, 16))  # double, single, int8 ... uint64
_CHAR_CLASS, _SPARSE_CLASS = 4, 5
_COMPLEX_FLAG = 0x0800


def check_mat_v5(data: bytes, path: str) -> None:
    """Raise DataError when ``data`` (a v5 .mat file) is not structurally sound.

    Example:
        >>> import io, numpy as np, scipy.io
        >>> stream = io.BytesIO(); scipy.io.savemat(stream, {"x": np.ones((3, 2))})
        >>> check_mat_v5(stream.getvalue(), "x.mat")
    """
    if len(data) < _HEADER:
        raise DataError(f"cannot read '{path}': {len(data)} bytes, shorter than a .mat header.")
    order = {b"IM": "<", b"MI": ">"}.get(bytes(data[126:128]))
    if order is None:
        raise DataError(f"cannot read '{path}': no endian indicator in the .mat header.")
    try:
        _elements(memoryview(data), _HEADER, len(data), order, path)
    except _Damaged as err:
        raise DataError(f"cannot read '{path}': the .mat file is damaged ({err}).") from err


def _tag(data: memoryview, position: int, end: int, order: str) -> tuple[int, int, int, int]:
    """(type, size, data start, next element) of the element at ``position``."""
    if position + 8 > end:
        raise _Damaged(f"an element tag at byte {position} runs past the end")
    first = int.from_bytes(data[position : position + 4], "little" if order == "<" else "big")
    if first >> 16:  # small data element: type and size in 4 bytes, data in the next 4
        kind, size = first & 0xFFFF, first >> 16
        if size > 4:
            raise _Damaged(f"a small element at byte {position} declares {size} bytes")
        return kind, size, position + 4, position + 8
    size = int.from_bytes(data[position + 4 : position + 8], "little" if order == "<" else "big")
    start = position + 8
    padded = size if first == _COMPRESSED else size + (-size % 8)  # compressed: no padding
    if start + size > end:
        raise _Damaged(f"an element at byte {position} declares {size} bytes past the end")
    return first, size, start, min(start + padded, end)


def _elements(data: memoryview, position: int, end: int, order: str, path: str) -> None:
    while position < end:
        kind, size, start, position = _tag(data, position, end, order)
        if kind == _COMPRESSED:
            inflated = _inflate(bytes(data[start : start + size]), path)
            _elements(memoryview(inflated), 0, len(inflated), order, path)
        elif kind == _MATRIX:
            _matrix(data, start, start + size, order)
        elif kind not in _ITEMSIZE:
            raise _Damaged(f"an element of unknown type {kind}")


def _inflate(compressed: bytes, path: str) -> bytes:
    """Inflate in chunks, stopping as soon as the size or the ratio is over the limits."""
    where = f"SignalDatastore: '{path}'"
    inflater, pending, parts, size = zlib.decompressobj(), compressed, [], 0
    try:
        while pending or not inflater.eof:
            part = inflater.decompress(pending, CHUNK_BYTES)
            pending = inflater.unconsumed_tail
            if not part:
                break
            parts.append(part)
            size += len(part)
            current_limits().check(where, "the inflated size of a compressed element",
                                 "max_uncompressed_bytes", size)  # fmt: skip
            current_limits().check_ratio(where, "the compression ratio of an element", size,
                                         len(compressed))  # fmt: skip
    except zlib.error as err:
        raise _Damaged(f"a compressed element does not inflate: {err}") from err
    return b"".join(parts)


def _values(data: memoryview, start: int, kind: int, size: int, order: str) -> np.ndarray:
    dtype = {5: "i4", 6: "u4"}.get(kind)
    if dtype is None or size % 4:
        raise _Damaged(f"an array header element of type {kind} and {size} bytes")
    return np.frombuffer(data[start : start + size], dtype=order + dtype)


def _matrix(data: memoryview, position: int, end: int, order: str) -> None:
    if position == end:
        return  # an empty matrix element
    kind, size, start, position = _tag(data, position, end, order)
    flags = _values(data, start, kind, size, order)
    if len(flags) != 2:
        raise _Damaged("a matrix without its two flag words")
    array_class, complex_data = int(flags[0]) & 0xFF, bool(int(flags[0]) & _COMPLEX_FLAG)
    kind, size, start, position = _tag(data, position, end, order)
    dims = _values(data, start, kind, size, order)
    if array_class not in _NUMERIC_CLASSES | {_CHAR_CLASS}:
        return  # cells, structures, objects and sparse matrices: scipy checks their parts
    if len(dims) < 2 or (dims.astype(np.int64) < 0).any():
        raise _Damaged(f"a matrix with dimensions {dims.tolist()}")
    kind, size, start, position = _tag(data, position, end, order)  # the name
    if kind not in (1, 2):
        raise _Damaged(f"a matrix name of type {kind}")
    count = math.prod(int(d) for d in dims)
    for part in ("real", "imaginary")[: 1 + complex_data]:
        kind, size, start, position = _tag(data, position, end, order)
        if kind == 16 and array_class == _CHAR_CLASS:
            continue  # UTF-8 text: its byte count varies with the characters
        if kind not in _ITEMSIZE or size != count * _ITEMSIZE[kind]:
            raise _Damaged(
                f"the {part} part of a {'x'.join(map(str, dims.tolist()))} matrix holds {size} "
                f"bytes of type {kind}"
            )
