"""Limits on what a file may make a reader allocate: the readers' guard against untrusted input.

A saved network, a checkpoint, a Keras or an ONNX file can declare far more than it holds: a
zip member that inflates a thousandfold, a JSON document nested 10^5 levels deep, a tensor of
10^12 elements in a header, a graph of millions of nodes. Every reader checks such
declarations against :class:`ReadLimits` before it allocates anything, and raises
:class:`~deeptoolbox.errors.ResourceLimitError` naming the file, the limit and how to raise
it. The defaults are far above what real networks need (docs/security.md).
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, fields
from typing import Any

from deeptoolbox.errors import OptionError, ResourceLimitError

__all__ = ["ReadLimits", "current_limits", "read_limits"]

MiB = 2**20
# members smaller than this may inflate as much as they like (a few MiB cannot exhaust memory)
_RATIO_FLOOR = 16 * MiB
CHUNK_BYTES = 4 * MiB  # what readers inflate at a time
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_SAFETENSORS_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2,
                         "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8,
                         "U64": 8, "F64": 8}  # fmt: skip


@dataclass(frozen=True)
class ReadLimits:
    """How much a file read from an untrusted source may ask for (every reader's ``limits=``).

    Attributes:
        max_uncompressed_bytes: total size of the members read from a zip-based file.
        max_compression_ratio: uncompressed / compressed size of a zip member (or of a
            compressed HDF5 dataset) larger than 16 MiB; zip bombs inflate 1000-fold.
        max_members: entries in a zip-based file.
        max_json_bytes: size of a JSON document (network.json, a Keras config, a header).
        max_json_depth: nesting of arrays and objects in a JSON document.
        max_nodes: layers of a network, nodes of an ONNX graph.
        max_tensor_elements: elements of one tensor declared in a header (safetensors, ONNX
            initializers, HDF5 datasets, .npy files); a tensor must also fit in the file that
            holds it.
        max_image_pixels: width x height an image file declares, checked before it is decoded
            (Pillow's own bomb check stops at 179 million pixels; this one covers the faster
            decoders tried first).

    Example:
        >>> import deeptoolbox as dtb
        >>> limits = dtb.ReadLimits(max_nodes=10)
        >>> limits.max_nodes, limits.max_json_depth
        (10, 200)
        >>> # dtb.load("big.zip", limits=dtb.ReadLimits(max_uncompressed_bytes=64 * 2**30))
    """

    max_uncompressed_bytes: int = 16 * 2**30
    max_compression_ratio: float = 200.0
    max_members: int = 10_000
    max_json_bytes: int = 256 * MiB
    max_json_depth: int = 200
    max_nodes: int = 250_000
    max_tensor_elements: int = 2**34
    max_image_pixels: int = 2**28

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise OptionError(
                    f"ReadLimits: `{field.name}` must be a positive number. Received: {value!r}."
                )

    def __enter__(self) -> ReadLimits:
        """``with ReadLimits(...):`` makes these the limits of every reader called inside
        (in this thread; DataLoader worker processes keep the defaults)."""
        _ACTIVE.set((*_ACTIVE.get(), self))
        return self

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.set(_ACTIVE.get()[:-1])

    def exceeded(self, where: str, what: str, limit: str, value: float) -> ResourceLimitError:
        """The error for ``value`` over the limit named ``limit`` (not raised here)."""
        allowed = getattr(self, limit)
        return ResourceLimitError(
            f"{where}: {what} is {value:,}, over the limit {limit}={allowed:,}. If you trust "
            f"this file, raise the limit: pass limits=deeptoolbox.ReadLimits({limit}=...) to "
            f"readers that take `limits`, or read it inside `with deeptoolbox.ReadLimits("
            f"{limit}=...):` (docs/security.md).",
            limit=limit,
            value=value,
        )

    def check(self, where: str, what: str, limit: str, value: float) -> None:
        """Raise :class:`ResourceLimitError` when ``value`` is over the limit ``limit``."""
        if value > getattr(self, limit):
            raise self.exceeded(where, what, limit, value)

    # -- zip archives -----------------------------------------------------------------------

    def read_zip_members(
        self, archive: zipfile.ZipFile, names: Iterable[str], where: str
    ) -> dict[str, bytes]:
        """Read ``names`` from ``archive``, never inflating more than the limits allow.

        The sizes a zip declares can lie, so the members are inflated in chunks and the
        count is kept on what really comes out.
        """
        infos = archive.infolist()
        self.check(where, "the number of zip entries", "max_members", len(infos))
        names = list(names)
        self.check(where, "the declared uncompressed size of the members read",
                   "max_uncompressed_bytes",
                   sum(archive.getinfo(n).file_size for n in names))  # fmt: skip
        total, members = 0, {}
        for name in names:
            info = archive.getinfo(name)
            chunks: list[bytes] = []
            size = 0
            with archive.open(info) as member:
                while chunk := member.read(CHUNK_BYTES):
                    size += len(chunk)
                    total += len(chunk)
                    self.check(where, "the uncompressed size of the members read",
                               "max_uncompressed_bytes", total)  # fmt: skip
                    # the member cannot consume more than compress_size compressed bytes
                    self.check_ratio(where, f"the compression ratio of '{name}'", size,
                                     info.compress_size)  # fmt: skip
                    chunks.append(chunk)
            members[name] = b"".join(chunks)
        return members

    def check_ratio(self, where: str, what: str, inflated: int, compressed: int) -> None:
        """``inflated`` bytes out of ``compressed`` within ``max_compression_ratio`` (checked
        once more than 16 MiB came out: small data may inflate as much as it likes)."""
        if inflated > _RATIO_FLOOR:
            ratio = round(inflated / max(compressed, 1), 1)
            self.check(where, what, "max_compression_ratio", ratio)

    # -- JSON ---------------------------------------------------------------------------------

    def load_json(self, data: bytes | str, where: str) -> Any:
        """``json.loads`` after checking the document's size and nesting depth.

        Example:
            >>> ReadLimits().load_json(b'{"a": [1, 2]}', "x.json")
            {'a': [1, 2]}
        """
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        self.check(where, "the size of the JSON document (bytes)", "max_json_bytes", len(raw))
        self.check(where, "the nesting depth of the JSON document", "max_json_depth",
                   json_depth(raw))  # fmt: skip
        try:
            return json.loads(raw)
        except RecursionError as err:  # deeper than Python's own recursion limit
            raise self.exceeded(where, "the nesting depth of the JSON document",
                                "max_json_depth", self.max_json_depth + 1) from err  # fmt: skip

    # -- tensor headers -----------------------------------------------------------------------

    def check_tensor(self, where: str, name: str, shape: Iterable[int], itemsize: int,
                     available: int) -> None:  # fmt: skip
        """A declared tensor: at most ``max_tensor_elements``, and no larger than the
        ``available`` bytes of the file that holds it."""
        elements = math.prod(int(d) for d in shape)
        self.check(where, f"the element count of tensor '{name}'", "max_tensor_elements",
                   elements)  # fmt: skip
        if elements * itemsize > available:
            raise ResourceLimitError(
                f"{where}: tensor '{name}' declares {elements:,} elements "
                f"({elements * itemsize:,} bytes), more than the {available:,} bytes that hold "
                "it: the file is truncated or forged.",
                limit="file size",
                value=elements * itemsize,
            )

    def check_stored_tensor(self, where: str, name: str, shape: Iterable[int], itemsize: int,
                            stored: int) -> None:  # fmt: skip
        """A tensor kept compressed (or unwritten) in ``stored`` bytes, as in an HDF5 dataset:
        at most ``max_tensor_elements``, and inflating no more than the compression limit."""
        elements = math.prod(int(d) for d in shape)
        self.check(where, f"the element count of tensor '{name}'", "max_tensor_elements",
                   elements)  # fmt: skip
        if elements * itemsize > _RATIO_FLOOR:
            ratio = elements * itemsize / max(stored, 1)
            self.check(where, f"the ratio of tensor '{name}' to the bytes stored for it",
                       "max_compression_ratio", round(ratio, 1))  # fmt: skip

    def check_safetensors(self, data: bytes, where: str) -> None:
        """Check a safetensors buffer's header before safetensors allocates its tensors."""
        if len(data) < 8:
            return  # too short to be safetensors; the reader says so
        size = int.from_bytes(data[:8], "little")
        self.check(where, "the size of the safetensors header (bytes)", "max_json_bytes", size)
        if size > len(data) - 8:
            return  # truncated: safetensors reports it
        try:
            header = self.load_json(data[8 : 8 + size], where)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return  # not JSON: safetensors reports it
        if not isinstance(header, dict):
            return
        self.check(where, "the number of tensors", "max_nodes", len(header))
        available = len(data) - 8 - size
        for name, entry in header.items():
            if name == "__metadata__" or not isinstance(entry, dict):
                continue
            shape, dtype = entry.get("shape"), entry.get("dtype")
            if isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape):
                self.check_tensor(where, name, shape, _SAFETENSORS_ITEMSIZE.get(dtype, 1),
                                  available)  # fmt: skip

    def check_npy(self, data: bytes, where: str) -> None:
        """Check a .npy buffer's declared shape against the limits and the bytes it holds,
        before numpy allocates the array (it does so from the header alone)."""
        import numpy as np

        stream = io.BytesIO(data)
        try:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        except Exception:  # noqa: BLE001 - numpy's header parser raises many types
            return  # not a readable header: numpy reports it when it loads the file
        if dtype.hasobject:
            return  # refused by allow_pickle=False
        self.check_tensor(where, "the .npy array", shape, dtype.itemsize,
                          len(data) - stream.tell())  # fmt: skip


DEFAULT_LIMITS = ReadLimits()
_ACTIVE: ContextVar[tuple[ReadLimits, ...]] = ContextVar("deeptoolbox_read_limits", default=())


def current_limits() -> ReadLimits:
    """The limits in force: the innermost ``with ReadLimits(...):`` block's, else the defaults.

    Example:
        >>> with ReadLimits(max_nodes=5):
        ...     current_limits().max_nodes
        5
        >>> current_limits().max_nodes
        250000
    """
    active = _ACTIVE.get()
    return active[-1] if active else DEFAULT_LIMITS


def read_limits(limits: ReadLimits | None, func: str) -> ReadLimits:
    """The limits a reader applies: ``limits`` itself, or those in force for None.

    Example:
        >>> read_limits(None, "load").max_json_depth
        200
    """
    if limits is None:
        return current_limits()
    if not isinstance(limits, ReadLimits):
        raise OptionError(
            f"{func}: `limits` must be a deeptoolbox.ReadLimits or None. "
            f"Received: {type(limits).__name__}."
        )
    return limits


def json_depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON document (strings skipped).

    Example:
        >>> json_depth(b'{"a": [[1], "]]]"]}')
        3
    """
    import numpy as np

    stripped = _JSON_STRING.sub(b'""', data)
    codes = np.frombuffer(stripped, dtype=np.uint8)
    steps = np.zeros(len(codes), dtype=np.int32)
    steps[(codes == ord("[")) | (codes == ord("{"))] = 1
    steps[(codes == ord("]")) | (codes == ord("}"))] = -1
    return int(np.cumsum(steps).max(initial=0))
