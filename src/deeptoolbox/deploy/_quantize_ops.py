"""Turn a float Graph into an int8 Graph ("q_" ops with integer parameters).

Each value gets int8 (scale, zero point) parameters: from its measured range, from its input
(pooling and reshapes keep them), or fixed by the function (sigmoid and softmax in [0, 1),
tanh in [-1, 1)). Network inputs are quantized on entry (input normalization folded in) and
outputs dequantized on exit, so the C functions keep float inputs and outputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from deeptoolbox.deploy._ir import Graph, Op
from deeptoolbox.deploy._quantize import (
    lookup_table,
    multiplier,
    multipliers,
    qparams,
    quantize_bias,
    quantize_weights,
    round_away,
    shared_multipliers,
)
from deeptoolbox.deploy._quantize_recurrent import quantize_recurrent
from deeptoolbox.errors import CodegenError

_erf = np.vectorize(math.erf)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


FUNCTIONS = {
    "relu": lambda x, a: np.maximum(x, 0.0),
    "leaky_relu": lambda x, a: np.where(x < 0, a * x, x),
    "elu": lambda x, a: np.where(x > 0, x, a * np.expm1(np.minimum(x, 0.0))),
    "gelu": lambda x, a: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),
    "gelu_tanh": lambda x, a: (
        0.5 * x * (1.0 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    ),
    "sigmoid": lambda x, a: _sigmoid(x),
    "tanh": lambda x, a: np.tanh(x),
    "swish": lambda x, a: x * _sigmoid(x),
}
FIXED_OUTPUT = {"sigmoid": (1.0 / 256, -128), "tanh": (1.0 / 128, 0), "softmax": (1.0 / 256, -128)}
ACCUMULATOR_LIMIT = 2**31 - 1


class Int8Graph:
    """Builds the int8 graph; ``missing`` lists the ranges that were needed but not given."""

    def __init__(self, graph: Graph, ranges: Mapping[str, tuple[float, float]]) -> None:
        self.src, self.ranges = graph, ranges
        self.qp: dict[str, tuple[float, int]] = {}
        self.missing: list[str] = []
        self.rename: dict[str, str] = {}
        self.out = Graph({}, [], list(graph.inputs), [], graph.input_layers, graph.output_layers)

    def build(self) -> Graph:
        for name in self.src.inputs:
            self.out.add_value(name, self.src.values[name].shape, "f32")
        fused = self._quantize_inputs()
        for op in self.src.ops:
            if id(op) not in fused:
                getattr(self, f"_{op.kind}")(op)
        for name in self.src.outputs:
            source = self.rename.get(name, name)
            scale, zero = self.qp[source]
            self._emit(
                "q_dequantize",
                [source],
                f"{name}#float",
                op_layers=[name],
                dtype="f32",
                attrs={"scale": scale, "zero": zero},
            )
            self.out.outputs.append(f"{name}#float")
        if self.missing:
            raise CodegenError(
                "int8 code needs the value range of: "
                + ", ".join(sorted(set(self.missing)))
                + ". Pass calibration_data=... (inputs like the ones the network will see), or "
                "add these names to `ranges`."
            )
        return self.out

    # -- helpers ------------------------------------------------------------------------------
    def _range(self, key: str) -> tuple[float, float]:
        if key not in self.ranges:
            self.missing.append(key)
            return (-1.0, 1.0)
        return self.ranges[key]

    def _emit(
        self, kind, inputs, output, *, op_layers, attrs=None, params=None, dtype="i8", qp=None
    ) -> Op:
        shape = (
            self.src.values[output]
            if output in self.src.values
            else self.src.values[output.split("#")[0]]
        ).shape
        self.out.add_value(output, shape, dtype)
        if qp is not None:
            self.qp[output] = qp
        op = Op(
            kind,
            [self.rename.get(i, i) for i in inputs],
            output,
            list(op_layers),
            dict(attrs or {}),
            dict(params or {}),
        )
        self.out.ops.append(op)
        return op

    def _params(self, value: str) -> tuple[float, int]:
        return self.qp[self.rename.get(value, value)]

    def _quantize_inputs(self) -> set[int]:
        """Quantize each input on entry, folding an input normalization into it."""
        fused = set()
        for raw, layer in zip(self.src.inputs, self.src.input_layers, strict=True):
            qp = qparams(*self._range(layer))
            scale, shift = np.ones(1), np.zeros(1)
            channels = inner = 1
            output = f"{layer}#q"
            normalize = [op for op in self.src.consumers(raw) if op.kind == "affine"]
            if raw != layer and normalize:
                op = normalize[0]
                fused.add(id(op))
                scale, shift = op.params["scale"], op.params["shift"]
                channels, inner, output = op.attrs["channels"], op.attrs["inner"], layer
            else:
                self.rename[raw] = output
            a = (scale.astype(np.float64) / qp[0]).astype(np.float32)
            b = (shift.astype(np.float64) / qp[0] + qp[1] + 0.5).astype(np.float32)
            self.out.add_value(output, self.src.values[raw].shape, "i8")
            self.qp[output] = qp
            self.out.ops.append(
                Op(
                    "q_quantize",
                    [raw],
                    output,
                    [layer],
                    {"channels": channels, "inner": inner},
                    {"a": a, "b": b},
                )
            )
        return fused

    # -- op kinds -----------------------------------------------------------------------------
    def _linear(self, op: Op, axis: int) -> None:
        sx, zx = self._params(op.inputs[0])
        sy, zy = qp = qparams(*self._range(op.output))
        weight, scales = quantize_weights(op.params["weight"], axis)
        bias = quantize_bias(op.params["bias"], sx * scales)
        fan_in = weight.size // weight.shape[axis]
        if fan_in * 255 * 127 + int(np.abs(bias).max(initial=0)) > ACCUMULATOR_LIMIT:
            raise CodegenError(
                f"Layer '{op.label}': {fan_in} inputs per output can overflow the int32 sums of "
                "int8 code. Use precision='float32' for this network."
            )
        mult, shift = multipliers(sx * scales / sy)
        attrs = {**op.attrs, "zx": zx, "zy": zy, "lo": zy if op.attrs["relu"] else -128}
        params = {"weight": weight, "bias": bias, "mult": mult, "shift": shift}
        self._emit(
            f"q_{op.kind}",
            op.inputs,
            op.output,
            op_layers=op.layers,
            attrs=attrs,
            params=params,
            qp=qp,
        )

    def _dense(self, op: Op) -> None:
        self._linear(op, 0)

    _conv1d = _dense
    _conv2d = _dense

    def _tconv2d(self, op: Op) -> None:
        self._linear(op, 1)

    def _same_params(self, op: Op) -> None:
        qp = self._params(op.inputs[0])
        self._emit(
            f"q_{op.kind}" if op.kind != "reshape" else "reshape",
            op.inputs,
            op.output,
            op_layers=op.layers,
            attrs={**op.attrs, "zx": qp[1]},
            qp=qp,
        )

    _pool1d = _same_params
    _pool2d = _same_params
    _gpool = _same_params
    _reshape = _same_params

    def _affine(self, op: Op) -> None:
        sx, zx = self._params(op.inputs[0])
        sy, zy = qp = qparams(*self._range(op.output))
        scale = op.params["scale"].astype(np.float64)
        steps = np.where(scale != 0, np.abs(scale) / 127.0, 1.0)
        weight = np.clip(round_away(scale / steps), -127, 127).astype(np.int64)
        bias = quantize_bias(op.params["shift"], sx * steps)
        mult, shift = multipliers(sx * steps / sy)
        self._emit(
            "q_affine",
            op.inputs,
            op.output,
            op_layers=op.layers,
            attrs={**op.attrs, "zx": zx, "zy": zy},
            qp=qp,
            params={"weight": weight, "bias": bias, "mult": mult, "shift": shift},
        )

    def _act(self, op: Op) -> None:
        sx, zx = self._params(op.inputs[0])
        fn = op.attrs["fn"]
        sy, zy = qp = FIXED_OUTPUT.get(fn) or qparams(*self._range(op.output))
        function = FUNCTIONS[fn]
        table = lookup_table(lambda x: function(x, op.attrs["alpha"]), sx, zx, sy, zy)
        self._emit(
            "q_lut", op.inputs, op.output, op_layers=op.layers, qp=qp, params={"table": table}
        )

    def _softmax(self, op: Op) -> None:
        sx, _ = self._params(op.inputs[0])
        table = round_away(np.exp((np.arange(256) - 255.0) * sx) * 65536.0).astype(np.int64)
        self._emit(
            "q_softmax",
            op.inputs,
            op.output,
            op_layers=op.layers,
            attrs=op.attrs,
            params={"table": table},
            qp=FIXED_OUTPUT["softmax"],
        )

    def _add(self, op: Op) -> None:
        sy, zy = qp = qparams(*self._range(op.output))
        inputs = [self._params(v) for v in op.inputs]
        mults, shift = shared_multipliers([np.array([s / sy]) for s, _ in inputs], bits=31)
        params = {
            "zeros": np.array([z for _, z in inputs], dtype=np.int64),
            "mults": np.concatenate(mults),
        }
        self._emit(
            "q_add",
            op.inputs,
            op.output,
            op_layers=op.layers,
            qp=qp,
            params=params,
            attrs={"shift": int(shift[0]), "zy": zy},
        )

    def _mul(self, op: Op) -> None:
        if len(op.inputs) != 2:
            raise CodegenError(f"Internal error: '{op.label}' multiplies more than two values.")
        (sa, za), (sb, zb) = (self._params(v) for v in op.inputs)
        sy, zy = qp = qparams(*self._range(op.output))
        mult, shift = multiplier(sa * sb / sy)
        self._emit(
            "q_mul",
            op.inputs,
            op.output,
            op_layers=op.layers,
            qp=qp,
            attrs={"za": za, "zb": zb, "zy": zy, "mult": mult, "shift": shift},
        )

    def _concat(self, op: Op) -> None:
        sy, zy = qp = qparams(*self._range(op.output))
        parts = []
        for value in op.inputs:
            s, z = self._params(value)
            parts.append((z, *multiplier(s / sy)))
        self._emit(
            "q_concat",
            op.inputs,
            op.output,
            op_layers=op.layers,
            qp=qp,
            attrs={**op.attrs, "parts": parts, "zy": zy},
        )

    def _recurrent(self, op: Op) -> None:
        x = self._params(op.inputs[0])
        qp = qparams(*self._range(op.output))
        attrs, params = quantize_recurrent(op, x, qp, self.ranges)
        self._emit(
            f"q_{op.kind}",
            op.inputs,
            op.output,
            op_layers=op.layers,
            qp=qp,
            attrs={**op.attrs, **attrs},
            params=params,
        )

    _lstm = _recurrent
    _gru = _recurrent


def split_multiplications(graph: Graph) -> Graph:
    """Rewrite each Multiplication of n > 2 inputs as a chain of two-input ones (for int8)."""
    ops = []
    for op in graph.ops:
        if op.kind != "mul" or len(op.inputs) <= 2:
            ops.append(op)
            continue
        current = op.inputs[0]
        for k, other in enumerate(op.inputs[1:], 1):
            last = k == len(op.inputs) - 1
            output = op.output if last else f"{op.output}#{k}"
            if not last:
                graph.add_value(output, graph.values[op.output].shape)
            ops.append(Op("mul", [current, other], output, op.layers))
            current = output
    graph.ops = ops
    return graph
