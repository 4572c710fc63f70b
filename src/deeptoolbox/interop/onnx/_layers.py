"""Layers that imported ONNX graphs use where no toolbox layer is equivalent.

* :class:`OnnxOperator` runs one ONNX operator (its constant inputs are buffers, saved with the
  weights), so any supported graph becomes a Network that can be analyzed, saved and edited.
* :class:`OnnxPlaceholder` stands for an operator the toolbox cannot run: ``analyze`` reports
  it and the network refuses to run until it is replaced (``net.replace_layer``).

Inputs of any rank use :class:`deeptoolbox.layers.TensorInput`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from deeptoolbox.errors import NotInitializedError, OptionError, SizeMismatchError
from deeptoolbox.interop.onnx._opset import as_tensor as as_tensor  # the importers' helper
from deeptoolbox.interop.onnx._registry import OPERATORS
from deeptoolbox.layers._base import Layer, Shape, register_layer

_DTYPE_NAMES = {
    "float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
    "bfloat16": torch.bfloat16, "int64": torch.int64, "int32": torch.int32,
    "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool,
    "uint16": torch.uint16, "uint32": torch.uint32, "uint64": torch.uint64,
}  # fmt: skip


def dtype_name(dtype: torch.dtype) -> str:
    """The name under which a torch dtype is written to network.json.

    Example:
        >>> dtype_name(torch.int64)
        'int64'
    """
    return str(dtype).removeprefix("torch.")


def encode_attribute(value: Any) -> Any:
    """Make an ONNX attribute value JSON-safe (tensors become a tagged dict)."""
    if isinstance(value, torch.Tensor):
        return {
            "tensor": value.reshape(-1).tolist(),
            "shape": list(value.shape),
            "dtype": dtype_name(value.dtype),
        }
    return value


def decode_attribute(value: Any) -> Any:
    """Inverse of :func:`encode_attribute`."""
    if isinstance(value, dict) and {"tensor", "shape", "dtype"} <= value.keys():
        data = torch.tensor(value["tensor"], dtype=_DTYPE_NAMES[value["dtype"]])
        return data.reshape(value["shape"])
    return value


@register_layer
class OnnxOperator(Layer):
    """One ONNX operator as a layer: ``OnnxOperator("Transpose", attributes={"perm": [0, 2, 1]})``.

    ``slots`` lists the operator's inputs in ONNX order: ``"in1"``, ``"in2"``... for inputs
    that come from other layers (the layer's ports), ``"const1"``... for constant inputs (buffers
    described by ``constants``: name -> {"shape", "dtype"}; their values are weights), or None
    for an omitted optional input. ``output_index`` picks one output of a multi-output operator;
    ``output_size`` is the size (batch excluded, None for free lengths) found at import for
    inputs of sizes ``input_sizes``. The stored size is used only while the inputs still have
    those sizes; after an edit upstream (a wider layer, say) the size is computed by running
    the operator on zeros of the new sizes.

    Example:
        >>> layer = OnnxOperator("Transpose", attributes={"perm": [0, 2, 1]},
        ...                      output_size=(5, 3), input_sizes=[(3, 5)])
        >>> layer(torch.zeros(2, 3, 5)).shape
        torch.Size([2, 5, 3])
        >>> layer.output_shape([(3, 5)]), layer.output_shape([(4, 5)])
        ((5, 3), (5, 4))
    """

    def __init__(
        self,
        op_type: str,
        *,
        attributes: dict[str, Any] | None = None,
        slots: Sequence[str | None] | None = None,
        constants: dict[str, dict[str, Any]] | None = None,
        output_index: int = 0,
        output_size: Sequence[int | None] | None = None,
        input_sizes: Sequence[Sequence[int | None]] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.op_type = op_type
        self._check_operator()
        self.attributes = {k: decode_attribute(v) for k, v in (attributes or {}).items()}
        self.slots = list(slots) if slots is not None else ["in1"]
        self.output_index = output_index
        self.output_size = None if output_size is None else tuple(output_size)
        self.input_sizes = None if input_sizes is None else [tuple(s) for s in input_sizes]
        ports = [s for s in self.slots if s is not None and s.startswith("in")]
        self.input_names = tuple(dict.fromkeys(ports)) or ()
        for key, spec in (constants or {}).items():
            if spec["dtype"] not in _DTYPE_NAMES:
                raise OptionError(
                    f"OnnxOperator: constant {key!r} has dtype {spec['dtype']!r}; supported: "
                    f"{sorted(_DTYPE_NAMES)}."
                )
            self.register_buffer(key, torch.zeros(spec["shape"], dtype=_DTYPE_NAMES[spec["dtype"]]))

    def get_config(self) -> dict[str, Any]:
        """The layer's current description (sizes found at import included), JSON-safe."""
        constants = {
            key: {"shape": list(buffer.shape), "dtype": dtype_name(buffer.dtype)}
            for key, buffer in self.named_buffers(recurse=False)
        }
        return {
            "op_type": self.op_type,
            "attributes": {k: encode_attribute(v) for k, v in self.attributes.items()},
            "slots": list(self.slots),
            "constants": constants,
            "output_index": self.output_index,
            "output_size": None if self.output_size is None else list(self.output_size),
            "input_sizes": None
            if self.input_sizes is None
            else [list(size) for size in self.input_sizes],
        }

    def _check_operator(self) -> None:
        if self.op_type not in OPERATORS:
            raise OptionError(
                f"OnnxOperator: ONNX operator {self.op_type!r} is not supported. Supported: "
                f"{', '.join(sorted(OPERATORS))}."
            )

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        current = [tuple(shape) for shape in input_shapes]
        if self.output_size is not None and current == self.input_sizes:
            return self.output_size
        from deeptoolbox.network import probe_output_size

        try:
            size = probe_output_size(self, input_shapes)
        except SizeMismatchError:
            if self.output_size is not None and self._compatible(current):
                return self.output_size  # sizes as at import, up to free lengths
            raise
        self.output_size, self.input_sizes = tuple(size), current  # saved with the network
        return self.output_size

    def _compatible(self, current: list[tuple[int | None, ...]]) -> bool:
        """True when ``current`` may be the import's input sizes: equal where both are known
        (files saved before ``input_sizes`` was recorded carry none: trusted as before)."""
        if self.input_sizes is None:
            return True
        return len(current) == len(self.input_sizes) and all(
            len(a) == len(b)
            and all(x is None or y is None or x == y for x, y in zip(a, b, strict=True))
            for a, b in zip(current, self.input_sizes, strict=True)
        )

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        ports = dict(zip(self.input_names, inputs, strict=True))
        values = [
            None if slot is None else ports[slot] if slot in ports else getattr(self, slot)
            for slot in self.slots
        ]
        result = OPERATORS[self.op_type](values, self.attributes)
        if isinstance(result, tuple):
            return result[self.output_index]
        return result


@register_layer
class OnnxPlaceholder(OnnxOperator):
    """Stands for an ONNX operator the toolbox cannot run; replace it before running the network.

    ``analyze(net)`` lists it as an error, and calling the network raises
    :class:`~deeptoolbox.errors.NotInitializedError` naming it. Its constant inputs are kept as
    buffers, so a replacement can use them.

    Example:
        >>> layer = OnnxPlaceholder("NonMaxSuppression", name="nms")
        >>> try:
        ...     layer.output_shape([(4,)])
        ... except SizeMismatchError as err:
        ...     "NonMaxSuppression" in str(err)
        True
    """

    def _check_operator(self) -> None:
        pass

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        raise SizeMismatchError(
            f"placeholder for the unsupported ONNX operator {self.op_type!r}: replace it with a "
            f"layer that computes it, e.g. net.replace_layer('{self.name}', MyLayer())"
        )

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        raise NotInitializedError(
            f"Layer '{self.name}' is a placeholder for the unsupported ONNX operator "
            f"{self.op_type!r}; replace it with net.replace_layer('{self.name}', ...) first."
        )
