"""KerasPlaceholder: stands for a Keras layer that import_keras cannot convert
(``import_keras(..., unsupported="placeholder")``), like :class:`OnnxPlaceholder` for ONNX."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from deeptoolbox.errors import NotInitializedError, OptionError, SizeMismatchError
from deeptoolbox.layers._base import Layer, Shape, register_layer

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
           "bfloat16": torch.bfloat16, "int64": torch.int64, "int32": torch.int32,
           "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool}  # fmt: skip


@register_layer
class KerasPlaceholder(Layer):
    """Stands for a Keras layer the toolbox cannot convert; replace it before running.

    ``import_keras(path, unsupported="placeholder")`` puts one in place of each layer of an
    unknown class (a custom registered layer, say) or with an unsupported option. It keeps
    the Keras ``class_name`` and ``keras_config`` (the layer's saved configuration), the
    ``reason`` it was not converted, and the layer's weights in Keras's order and layout as
    buffers ``weight_1``, ``weight_2``... (saved with the network; :attr:`keras_weights` lists
    them), so a replacement can use them. Its output size is the one Keras recorded in the
    file (``output_size``, toolbox layout), so the layers after it keep their weights.

    :func:`deeptoolbox.analyze` lists it as an error and the network refuses to run until it
    is replaced: ``net.replace_layer(name, layer)``. A placeholder whose output size the file
    does not record says so when sizes are asked for.

    Example:
        >>> layer = KerasPlaceholder("MyScale", keras_config={"factor": 2.0},
        ...                          output_size=(4,), input_sizes=[(4,)], name="scale")
        >>> layer.output_shape([(4,)])
        (4,)
        >>> print(layer.cannot_run())
        placeholder for the Keras layer MyScale, which import_keras cannot convert; replace it with a layer that computes it: net.replace_layer('scale', ...)
    """

    def __init__(
        self,
        class_name: str,
        *,
        keras_config: dict[str, Any] | None = None,
        reason: str = "",
        num_inputs: int = 1,
        output_size: Sequence[int | None] | None = None,
        input_sizes: Sequence[Sequence[int | None]] | None = None,
        weights: Sequence[dict[str, Any]] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if not isinstance(num_inputs, int) or num_inputs < 1:
            raise OptionError(
                f"KerasPlaceholder: `num_inputs` must be a positive integer. Received: "
                f"num_inputs={num_inputs!r}."
            )
        self.class_name = str(class_name)
        self.keras_config = dict(keras_config or {})
        self.reason = str(reason)
        self.num_inputs = num_inputs
        self.output_size = None if output_size is None else tuple(output_size)
        self.input_sizes = None if input_sizes is None else [tuple(s) for s in input_sizes]
        self.input_names = ("in",) if num_inputs == 1 else tuple(
            f"in{i}" for i in range(1, num_inputs + 1)
        )  # fmt: skip
        self._weight_specs = [dict(spec) for spec in weights or []]
        for index, spec in enumerate(self._weight_specs, start=1):
            dtype = str(spec.get("dtype", "float32"))
            if dtype not in _DTYPES:
                raise OptionError(
                    f"KerasPlaceholder: weight {index} has dtype {dtype!r}; supported: "
                    f"{sorted(_DTYPES)}."
                )
            shape = [int(d) for d in spec.get("shape", [])]
            self.register_buffer(f"weight_{index}", torch.zeros(shape, dtype=_DTYPES[dtype]))

    @property
    def keras_weights(self) -> list[torch.Tensor]:
        """The Keras layer's weights, in Keras's order and layout (kernel, bias...)."""
        return [getattr(self, f"weight_{i}") for i in range(1, len(self._weight_specs) + 1)]

    def get_config(self) -> dict[str, Any]:
        """The layer's description, JSON-safe (weight sizes included; values are weights)."""
        return {
            "class_name": self.class_name,
            "keras_config": self.keras_config,
            "reason": self.reason,
            "num_inputs": self.num_inputs,
            "output_size": None if self.output_size is None else list(self.output_size),
            "input_sizes": None
            if self.input_sizes is None
            else [list(size) for size in self.input_sizes],
            "weights": [
                {"shape": list(w.shape), "dtype": str(w.dtype).removeprefix("torch.")}
                for w in self.keras_weights
            ],
        }

    def _what(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return (
            f"placeholder for the Keras layer {self.class_name}, which import_keras cannot "
            f"convert{why}"
        )

    def cannot_run(self) -> str:
        """Why the network cannot run: the placeholder must be replaced."""
        return (
            f"{self._what()}; replace it with a layer that computes it: "
            f"net.replace_layer('{self.name}', ...)"
        )

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        current = [tuple(shape) for shape in input_shapes]
        if self.output_size is None:
            raise SizeMismatchError(
                f"{self._what()}: its output size cannot be known (the Keras file records none "
                f"for it); replace it with net.replace_layer('{self.name}', ...)"
            )
        if self.input_sizes is not None and current != self.input_sizes:
            raise SizeMismatchError(
                f"{self._what()}: its output size {self.output_size} is known only for inputs "
                f"of sizes {self.input_sizes} (received {current}); replace it with "
                f"net.replace_layer('{self.name}', ...)"
            )
        return self.output_size

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        raise NotInitializedError(f"Layer '{self.name}' is a {self.cannot_run()} first.")
