"""ReadLimits for ONNX files: the graph's node count is read from the protobuf wire format
before ``onnx.load`` builds a Python object per node, and each initializer's declared size is
compared with the bytes that hold it before it becomes a tensor."""

from __future__ import annotations

import mmap
from pathlib import Path

from deeptoolbox._limits import ReadLimits

_MODEL_GRAPH = 7  # ModelProto.graph
_GRAPH_NODE = 1  # GraphProto.node
_LENGTH_DELIMITED = 2


def check_node_count(path: Path, limits: ReadLimits) -> None:
    """Count the nodes of the file's main graph, stopping once the count is over the limit.

    A file that is not valid protobuf is left to ``onnx.load`` to report.
    """
    if path.stat().st_size == 0:
        return
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        try:
            graph = _find_field(data, 0, len(data), _MODEL_GRAPH)
            if graph is None:
                return
            count = _count_field(data, *graph, _GRAPH_NODE, stop_after=limits.max_nodes)
        except IndexError:  # a truncated field
            return
    limits.check(str(path), "the number of graph nodes", "max_nodes", count)


def check_initializers(model, path: Path, limits: ReadLimits) -> None:
    """Every initializer: at most ``max_tensor_elements``, and no more than its data holds."""
    import onnx

    for tensor in model.graph.initializer:
        try:
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        except (KeyError, TypeError, ValueError):
            continue  # an unknown or string type: the importer reports it
        if tensor.data_type == onnx.TensorProto.STRING:
            continue
        if tensor.HasField("raw_data"):
            available = len(tensor.raw_data)
        else:
            field = onnx.helper.tensor_dtype_to_field(tensor.data_type)
            available = len(getattr(tensor, field)) * itemsize
        limits.check_tensor(f"{path}: initializer", tensor.name, tensor.dims, itemsize, available)


def check_folded_size(node, inputs: list, path: Path, limits: ReadLimits | None) -> None:
    """Before a constant node that creates a tensor from a shape is computed (ConstantOfShape,
    Expand, Tile, Range): its size is checked against the limits and against the file, which
    cannot hold a reason for a tensor thousands of times its own size."""
    import numpy as np

    elements = _created_elements(node.op_type, inputs, np)
    if elements is None or limits is None:
        return
    where = f"{path}: constant node '{node.name}' ({node.op_type})"
    limits.check_stored_tensor(where, node.output[0], (elements,), 4, path.stat().st_size)


def _created_elements(op: str, inputs: list, np) -> int | None:
    try:
        values = [None if v is None else np.asarray(v) for v in inputs]
        if op == "ConstantOfShape" and values and values[0] is not None:
            return int(np.prod(values[0].astype(np.int64)))
        if op == "Expand" and len(values) > 1 and values[0] is not None and values[1] is not None:
            shape = np.broadcast_shapes(values[0].shape, tuple(int(d) for d in values[1]))
            return int(np.prod(shape))
        if op == "Tile" and len(values) > 1 and values[0] is not None and values[1] is not None:
            return int(values[0].size * np.prod(values[1].astype(np.int64)))
        if op == "Range" and len(values) == 3 and all(v is not None for v in values):
            start, limit, delta = (float(v) for v in values)
            return max(int(np.ceil((limit - start) / delta)), 0) if delta else None
    except (ValueError, TypeError, OverflowError):
        return None  # the operator reports the bad input itself
    return None


def _varint(data, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def _skip(data, position: int, wire_type: int) -> int | None:
    """The position after a field's value; None for wire types that cannot appear in ONNX."""
    if wire_type == 0:
        return _varint(data, position)[1]
    if wire_type == 1:
        return position + 8
    if wire_type == _LENGTH_DELIMITED:
        length, position = _varint(data, position)
        return position + length
    if wire_type == 5:
        return position + 4
    return None


def _find_field(data, start: int, end: int, number: int) -> tuple[int, int] | None:
    """(start, end) of the last length-delimited field ``number`` in data[start:end]."""
    found, position = None, start
    while position < end:
        key, position = _varint(data, position)
        if key >> 3 == number and key & 7 == _LENGTH_DELIMITED:
            length, position = _varint(data, position)
            found, position = (position, position + length), position + length
            continue
        position = _skip(data, position, key & 7)
        if position is None:
            return None
    return found


def _count_field(data, start: int, end: int, number: int, stop_after: int) -> int:
    count, position = 0, start
    wanted = number << 3 | _LENGTH_DELIMITED  # one byte for field numbers below 16
    while position < end and count <= stop_after:
        if data[position] == wanted and data[position + 1] < 0x80:  # short fields, inlined
            position += 2 + data[position + 1]
            count += 1
            continue
        key, position = _varint(data, position)
        count += key >> 3 == number
        position = _skip(data, position, key & 7)
        if position is None:
            break
    return count
