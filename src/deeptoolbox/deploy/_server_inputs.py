"""Reading and checking inference requests before the model sees them.

A request body is JSON: ``{"inputs": X}`` for a one-input model, ``{"inputs": {"name": X,
...}}`` for several inputs, where each ``X`` is a nested list of numbers (observations first)
or ``{"npy": "<base64 of a .npy file>"}``. Every problem becomes a :class:`RequestError`
(a 4xx answer) naming the field, what was received and what is expected.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from typing import Any

import numpy as np

from deeptoolbox._limits import current_limits
from deeptoolbox.deploy._server_model import InputSpec, input_specs_summary
from deeptoolbox.errors import RequestError, ResourceLimitError

_ALLOWED_KINDS = "fiu"  # float, signed and unsigned integers
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(raw: bytes) -> Any:
    """Parse a JSON body; malformed JSON (or NaN / Infinity) is a 400 naming the position."""
    if not raw.strip():
        raise RequestError(400, "body", "The request body is empty.", received="no bytes",
                           expected='a JSON object such as {"inputs": [[...]]}')  # fmt: skip
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise RequestError(400, "body", f"The body is not valid JSON: {err.msg} at line "
                           f"{err.lineno}, column {err.colno}.", received=_excerpt(raw),
                           expected="a JSON object") from err  # fmt: skip
    except (ValueError, RecursionError) as err:
        raise RequestError(400, "body", f"The body is not valid JSON: {err}.",
                           received=_excerpt(raw), expected="a JSON object") from err  # fmt: skip


def _excerpt(raw: bytes, limit: int = 60) -> str:
    text = raw[:limit].decode("utf-8", errors="replace")
    return text + ("..." if len(raw) > limit else "")


def _kind_of(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value), "a value")  # fmt: skip


def request_inputs(payload: Any, specs: list[InputSpec]) -> list[np.ndarray]:
    """The checked float32 arrays of a parsed JSON body, one per model input, in order."""
    if not isinstance(payload, dict):
        raise RequestError(422, "body", "The body must be a JSON object.",
                           received=_kind_of(payload), expected='{"inputs": ...}')  # fmt: skip
    unknown = sorted(set(payload) - {"inputs"})
    if unknown:
        raise RequestError(422, unknown[0], "Unknown field.", received=unknown,
                           expected="only the field 'inputs'")  # fmt: skip
    if "inputs" not in payload:
        raise RequestError(422, "inputs", "The field 'inputs' is missing.", received="no inputs",
                           expected=f"inputs for {input_specs_summary(specs)}")  # fmt: skip
    values = _per_input(payload["inputs"], specs)
    fields = {s.name: f"inputs.{s.name}" if len(specs) > 1 else "inputs" for s in specs}
    arrays = [check_array(decode_value(values[s.name], fields[s.name]), s, fields[s.name])
              for s in specs]  # fmt: skip
    counts = {a.shape[0] for a in arrays}
    if len(counts) > 1:
        raise RequestError(422, "inputs", "The inputs hold different numbers of observations.",
                           received={s.name: int(a.shape[0]) for s, a in zip(specs, arrays, strict=True)},
                           expected="the same number for every input")  # fmt: skip
    return arrays


def _per_input(inputs: Any, specs: list[InputSpec]) -> dict[str, Any]:
    names = [s.name for s in specs]
    named = isinstance(inputs, dict) and not (
        len(specs) == 1 and "npy" in inputs and names[0] != "npy"
    )
    if not named:
        if len(specs) > 1:
            raise RequestError(422, "inputs", "This model takes several inputs: give an object "
                               "with one entry per input name.", received=_kind_of(inputs),
                               expected={n: "array" for n in names})  # fmt: skip
        return {names[0]: inputs}
    missing = [n for n in names if n not in inputs]
    extra = sorted(set(inputs) - set(names))
    if missing or extra:
        raise RequestError(422, "inputs", "The input names do not match the model's.",
                           received=sorted(inputs), expected=names)  # fmt: skip
    return inputs


def decode_value(value: Any, field: str) -> np.ndarray:
    """A nested list of numbers, or ``{"npy": base64}``, as a numpy array."""
    if isinstance(value, dict):
        if set(value) != {"npy"} or not isinstance(value["npy"], str):
            raise RequestError(422, field, "An object input must be {\"npy\": \"<base64 .npy>\"}.",
                               received=sorted(value), expected=["npy"])  # fmt: skip
        return _from_npy(value["npy"], field)
    if not isinstance(value, list):
        raise RequestError(422, field, "An input must be a nested array of numbers (observations "
                           "first) or {\"npy\": base64}.", received=_kind_of(value),
                           expected="an array")  # fmt: skip
    try:
        array = np.array(value)
    except (ValueError, OverflowError, TypeError) as err:
        raise RequestError(422, field, f"The nested array cannot be read: {err}.",
                           received=_ragged(value) or "a nested array of mixed depth",
                           expected="a rectangular nested array of numbers") from err  # fmt: skip
    return array


def _ragged(value: list, depth: int = 0) -> str | None:
    """Where a nested list stops being rectangular: ``'lengths [3, 2] at depth 1'``."""
    if not all(isinstance(v, list) for v in value):
        return None
    lengths = [len(v) for v in value]
    if len(set(lengths)) > 1:
        shown = lengths[:8] + (["..."] if len(lengths) > 8 else [])
        return f"arrays of lengths {shown} at depth {depth + 1}"
    for item in value:
        found = _ragged(item, depth + 1)
        if found:
            return found
    return None


def _from_npy(text: str, field: str) -> np.ndarray:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise RequestError(422, f"{field}.npy", f"Not valid base64: {err}.",
                           received=_excerpt(text.encode()), expected="base64 of a .npy file") from err  # fmt: skip
    try:
        current_limits().check_npy(data, f"{field}.npy")
    except ResourceLimitError as err:
        raise RequestError(422, f"{field}.npy", str(err), received=f"{len(data)} bytes",
                           expected="an array that fits in the bytes sent") from err  # fmt: skip
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as err:  # numpy raises several types for damaged or pickled files
        raise RequestError(422, f"{field}.npy", f"Not a readable .npy file: {err}.",
                           received=f"{len(data)} bytes", expected="a .npy file (numpy.save) of "
                           "numbers, without pickled objects") from err  # fmt: skip
    if not isinstance(array, np.ndarray):
        raise RequestError(422, f"{field}.npy", "The file holds several arrays (.npz).",
                           received="an .npz archive", expected="one array (.npy)")  # fmt: skip
    return array


def check_array(array: np.ndarray, spec: InputSpec, field: str) -> np.ndarray:
    """Check dtype, values and size of one input; returns it as C-contiguous float32."""
    if array.dtype.kind not in _ALLOWED_KINDS:
        kind = {"b": "booleans", "U": "strings", "S": "bytes", "O": "non-numbers or nulls",
                "c": "complex numbers"}.get(array.dtype.kind, str(array.dtype))  # fmt: skip
        raise RequestError(422, field, "The values must be numbers.", received=kind,
                           expected="int or float values")  # fmt: skip
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise RequestError(422, field, "The values must be finite.", received="NaN or Inf",
                           expected="finite numbers")  # fmt: skip
    if array.size and float(np.abs(array).max()) > _FLOAT32_MAX:
        raise RequestError(422, field, "A value is too large for float32.",
                           received=float(np.abs(array).max()), expected=f"|x| <= {_FLOAT32_MAX:.3g}")  # fmt: skip
    array = _with_channel_axis(array, spec)
    _check_size(array, spec, field)
    return np.ascontiguousarray(array, dtype=np.float32)


def _with_channel_axis(array: np.ndarray, spec: InputSpec) -> np.ndarray:
    """One-channel sequences may come as (N, T), as the toolbox's SequenceInput takes them."""
    if spec.kind == "SequenceInput" and spec.size[-1] == 1 and array.ndim == 2:
        return array[..., None]
    return array


def _check_size(array: np.ndarray, spec: InputSpec, field: str) -> None:
    expected = spec.describe()
    received = list(array.shape)
    if array.ndim == len(spec.size) and array.ndim > 0 and _fits(array.shape, spec.size):
        raise RequestError(422, field, "One observation without the batch axis: wrap it in a "
                           "list ([...]).", received=received, expected=expected)  # fmt: skip
    if array.ndim != len(spec.size) + 1:
        raise RequestError(422, field, f"Wrong number of dimensions for input '{spec.name}' "
                           f"({spec.kind}).", received=received, expected=expected)  # fmt: skip
    if array.shape[0] == 0:
        raise RequestError(422, field, "No observations.", received=received, expected=expected)
    if not _fits(array.shape[1:], spec.size) or 0 in array.shape:
        raise RequestError(422, field, f"Wrong size for input '{spec.name}' ({spec.kind}).",
                           received=received, expected=expected)  # fmt: skip


def _fits(shape: tuple[int, ...], size: tuple[int | None, ...]) -> bool:
    return len(shape) == len(size) and all(
        want is None or want == got for want, got in zip(size, shape, strict=True)
    )


def encode_array(array: np.ndarray) -> tuple[Any, int]:
    """A float array as nested lists for JSON, NaN / Inf as null; returns ``(lists, count of
    non-finite values)``."""
    finite = np.isfinite(array)
    bad = int(array.size - int(finite.sum()))
    if bad == 0:
        return array.tolist(), 0
    as_objects = array.astype(object)
    as_objects[~finite] = None
    return as_objects.tolist(), bad
