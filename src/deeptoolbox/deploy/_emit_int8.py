"""C statements for the int8 ops of a planned graph (kernels in _ckernels_int8)."""

from __future__ import annotations

import numpy as np

from deeptoolbox.deploy._emit import c_float, output_mode
from deeptoolbox.deploy._emit_float import FloatOps, _call, conv2d_layout
from deeptoolbox.deploy._ir import Op
from deeptoolbox.deploy._plan import Scratch

_ACCUMULATORS = {
    "q_dense": lambda a: a["out"],
    "q_conv1d": lambda a: a["F"],
    "q_conv2d": lambda a: a["F"],
    "q_tconv2d": lambda a: a["OH"] * a["OW"],
}


def scratch_i8(op: Op, batch: int, streaming: bool) -> list[Scratch]:
    """Scratch (int32 sums, recurrent state) and persistent state of one int8 op."""
    if op.kind in _ACCUMULATORS:
        return [Scratch("acc", "i32", _ACCUMULATORS[op.kind](op.attrs))]
    if op.kind not in ("q_lstm", "q_gru"):
        return []
    a = op.attrs
    needs = [Scratch("hn", "i8", a["H"])]
    for d in range(a["directions"]):
        states = [(f"h{d}", "i8", a["zh"])]
        if op.kind == "q_lstm":
            states.append((f"c{d}", "i16", 0))
        for key, dtype, fill in states:
            state_key = f"{op.output}:{key}" if streaming else key
            needs.append(Scratch(state_key, dtype, batch * a["H"], streaming, fill))
    return needs


def _int64(value: int) -> str:
    return f"INT64_C({int(value)})"


class Int8Ops(FloatOps):
    """Turns each int8 op into calls; records the kernels used."""

    def qweight(self, op: Op, key: str, dtype: str, values: np.ndarray | None = None) -> str:
        values = op.params[key] if values is None else values
        owner = None if self.streaming else self.graph.ops.index(op)
        return self.constants.add(op.label, key, values, dtype, owner)

    def _requant_params(self, op: Op) -> list[str]:
        return [
            self.qweight(op, "bias", "i32"),
            self.qweight(op, "mult", "i32"),
            self.qweight(op, "shift", "i8"),
        ]

    def _q_quantize(self, index: int, op: Op) -> list[str]:
        a = op.attrs
        outer = self.batch * self.graph.values[op.output].numel // (a["channels"] * a["inner"])
        return [
            _call(
                self._use("quantize_i8"),
                *self._io(op),
                self.qweight(op, "a", "f32"),
                self.qweight(op, "b", "f32"),
                outer,
                a["channels"],
                a["inner"],
            )
        ]

    def _q_dequantize(self, index: int, op: Op) -> list[str]:
        count = self.batch * self.graph.values[op.output].numel
        return [
            _call(
                self._use("dequantize_i8"),
                *self._io(op),
                count,
                op.attrs["zero"],
                c_float(op.attrs["scale"]),
            )
        ]

    def _q_dense(self, index: int, op: Op) -> list[str]:
        a = op.attrs
        w = self.qweight(op, "weight_t", "i8", op.params["weight"].T)
        return [
            _call(
                self._use("dense_i8"),
                *self._io(op),
                self.scratch(index, "acc"),
                w,
                *self._requant_params(op),
                self.batch * a["rows"],
                a["in"],
                a["out"],
                a["zx"],
                a["zy"],
                a["lo"],
            )
        ]

    def _q_conv2d(self, index: int, op: Op) -> list[str]:
        a = op.attrs
        keys = ("C", "H", "W", "F", "OH", "OW", "KH", "KW", "SH", "SW", "DH", "DW", "PT", "PL", "G")
        return [
            _call(
                self._use("conv2d_i8"),
                *self._io(op),
                self.scratch(index, "acc"),
                self.qweight(op, "weight_g", "i8", conv2d_layout(op)),
                *self._requant_params(op),
                self.batch,
                *(a[k] for k in keys),
                a["zx"],
                a["zy"],
                a["lo"],
            )
        ]

    def _q_conv1d(self, index: int, op: Op) -> list[str]:
        a = op.attrs
        groups, filters = a["G"], a["F"]
        w = op.params["weight"]
        w = w.reshape(groups, filters // groups, w.shape[1], w.shape[2]).transpose(0, 3, 2, 1)
        keys = ("T", "C", "F", "OT", "K", "S", "D", "P", "G")
        return [
            _call(
                self._use("conv1d_i8"),
                *self._io(op),
                self.scratch(index, "acc"),
                self.qweight(op, "weight_g", "i8", w),
                *self._requant_params(op),
                self.batch,
                *(a[k] for k in keys),
                a["zx"],
                a["zy"],
                a["lo"],
            )
        ]

    def _q_tconv2d(self, index: int, op: Op) -> list[str]:
        a = op.attrs
        keys = ("C", "H", "W", "F", "OH", "OW", "KH", "KW", "SH", "SW", "PT", "PL")
        return [
            _call(
                self._use("tconv2d_i8"),
                *self._io(op),
                self.scratch(index, "acc"),
                self.qweight(op, "weight", "i8"),
                *self._requant_params(op),
                self.batch,
                *(a[k] for k in keys),
                a["zx"],
                a["zy"],
                a["lo"],
            )
        ]

    def _q_pool2d(self, index: int, op: Op) -> list[str]:
        a = op.attrs
        keys = ("C", "H", "W", "OH", "OW", "KH", "KW", "SH", "SW", "PT", "PL")
        return [
            _call(
                self._use("pool2d_i8"),
                *self._io(op),
                self.batch,
                *(a[k] for k in keys),
                int(a["mode"] == "avg"),
                a["zx"],
            )
        ]

    def _q_pool1d(self, index: int, op: Op) -> list[str]:
        a = op.attrs
        keys = ("T", "C", "OT", "K", "S", "P")
        return [
            _call(
                self._use("pool1d_i8"),
                *self._io(op),
                self.batch,
                *(a[k] for k in keys),
                int(a["mode"] == "avg"),
                a["zx"],
            )
        ]

    def _q_gpool(self, index: int, op: Op) -> list[str]:
        a = op.attrs
        return [
            _call(
                self._use("gpool_i8"),
                *self._io(op),
                self.batch,
                a["positions"],
                a["channels"],
                int(a["channels_last"]),
                int(a["mode"] == "avg"),
                a["zx"],
            )
        ]

    def _q_affine(self, index: int, op: Op) -> list[str]:
        a = op.attrs
        outer = self.batch * self.graph.values[op.output].numel // (a["channels"] * a["inner"])
        return [
            _call(
                self._use("affine_i8"),
                *self._io(op),
                self.qweight(op, "weight", "i8"),
                *self._requant_params(op),
                outer,
                a["channels"],
                a["inner"],
                a["zx"],
                a["zy"],
            )
        ]

    def _q_lut(self, index: int, op: Op) -> list[str]:
        count = self.batch * self.graph.values[op.output].numel
        return [_call(self._use("lut_i8"), *self._io(op), self.qweight(op, "table", "i8"), count)]

    def _q_softmax(self, index: int, op: Op) -> list[str]:
        a = op.attrs
        return [
            _call(
                self._use("softmax_i8"),
                *self._io(op),
                self.qweight(op, "table", "i32"),
                self.batch * a["outer"],
                a["channels"],
                a["inner"],
            )
        ]

    def _q_add(self, index: int, op: Op) -> list[str]:
        count = self.batch * self.graph.values[op.output].numel
        pointers = ", ".join(self.value(v) for v in op.inputs)
        call = _call(
            self._use("add_i8"),
            "xs",
            self.value(op.output),
            self.qweight(op, "zeros", "i32"),
            self.qweight(op, "mults", "i32"),
            len(op.inputs),
            count,
            op.attrs["shift"],
            op.attrs["zy"],
        )
        return [
            "{",
            f"    const int8_t *const xs[{len(op.inputs)}] = {{{pointers}}};",
            f"    {call}",
            "}",
        ]

    def _q_mul(self, index: int, op: Op) -> list[str]:
        a = op.attrs
        count = self.batch * self.graph.values[op.output].numel
        return [
            _call(
                self._use("mul_i8"),
                self.value(op.inputs[0]),
                self.value(op.inputs[1]),
                self.value(op.output),
                count,
                a["za"],
                a["zb"],
                a["mult"],
                a["shift"],
                a["zy"],
            )
        ]

    def _q_concat(self, index: int, op: Op) -> list[str]:
        a, out = op.attrs, self.value(op.output)
        total, offset, lines = sum(a["inners"]), 0, []
        for name, inner, (zero, mult, shift) in zip(
            op.inputs, a["inners"], a["parts"], strict=True
        ):
            lines.append(
                _call(
                    self._use("concat_i8"),
                    self.value(name),
                    out,
                    self.batch * a["outer"],
                    inner,
                    total,
                    offset,
                    zero,
                    mult,
                    shift,
                    a["zy"],
                )
            )
            offset += inner
        return lines

    def _q_recurrent(self, index: int, op: Op) -> list[str]:
        a, lines = op.attrs, []
        x, y = self._io(op)
        hidden, directions = a["H"], a["directions"]
        lstm = op.kind == "q_lstm"
        for d in range(directions):
            h = self._state(index, op, f"h{d}")
            states = [h, self._state(index, op, f"c{d}")] if lstm else [h]
            if not self.streaming:
                lines.append(_call(self._use("fill_i8"), h, self.batch * hidden, a["zh"]))
                if lstm:
                    lines.append(_call(self._use("zero_i16"), states[1], self.batch * hidden))
            lines.append(
                _call(
                    self._use("lstm_i8" if lstm else "gru_i8"),
                    x,
                    y,
                    *states,
                    self.scratch(index, "hn"),
                    *self._recurrent_params(op, d),
                    self.batch,
                    a["T"],
                    a["C"],
                    hidden,
                    d,
                    output_mode(a),
                    directions * hidden,
                    d * hidden,
                    a["zx"],
                    a["zh"],
                    *self._recurrent_scalars(op, d),
                )
            )
        return lines

    def _recurrent_params(self, op: Op, d: int) -> list[str]:
        names = [
            self.qweight(op, f"wx{d}", "i8"),
            self.qweight(op, f"wh{d}", "i8"),
            self.qweight(op, f"b{d}", "i32"),
        ]
        if op.kind == "q_gru":
            names.append(self.qweight(op, f"bh{d}", "i32"))
        names += [
            self.qweight(op, f"mx{d}", "i32"),
            self.qweight(op, f"mh{d}", "i32"),
            self.qweight(op, f"ps{d}", "i8"),
            self.qweight(op, f"lut{d}", "i8"),
        ]
        if op.kind == "q_lstm":
            names.append(self.qweight(op, f"lutc{d}", "i8"))
        return names

    def _recurrent_scalars(self, op: Op, d: int) -> list[str]:
        a = op.attrs
        if op.kind == "q_lstm":
            return [_int64(a[f"bc{d}"]), a[f"mt{d}"], a[f"st{d}"], a[f"mo{d}"], a[f"so{d}"]]
        return [_int64(a[f"bn{d}"]), a[f"sg{d}"]]

    _q_lstm = _q_recurrent
    _q_gru = _q_recurrent

    def reset(self, fills: list) -> list[str]:
        """Statements of NAME_reset(): hidden states to their zero point, cells to zero."""
        lines = []
        for buffer, fill in fills:
            if buffer.space == "arena_i16":
                lines.append(
                    _call(self._use("zero_i16"), self.buffers.expr(buffer), buffer.elements)
                )
            else:
                lines.append(
                    _call(self._use("fill_i8"), self.buffers.expr(buffer), buffer.elements, fill)
                )
        return lines
