"""C statements for the float32 ops of a planned graph (kernels in _ckernels)."""

from __future__ import annotations

import numpy as np

from deeptoolbox.deploy._emit import Buffers, Constants, c_float, output_mode
from deeptoolbox.deploy._ir import Graph, Op
from deeptoolbox.deploy._plan import MemoryPlan, Scratch


def conv2d_layout(op: Op) -> np.ndarray:
    """Conv2d weights (F, C/G, KH, KW) as the kernels read them: (G, C/G, KH, KW, F/G)."""
    w, groups = op.params["weight"], op.attrs["G"]
    w = w.reshape(groups, w.shape[0] // groups, *w.shape[1:])
    return w.transpose(0, 2, 3, 4, 1)


def scratch_f32(op: Op, batch: int, streaming: bool) -> list[Scratch]:
    """Scratch and (when streaming) persistent state of one float op."""
    if op.kind == "conv2d":
        return [Scratch("acc", "f32", op.attrs["F"])]
    if op.kind not in ("lstm", "gru"):
        return []
    hidden, needs = op.attrs["H"], [Scratch("hn", "f32", op.attrs["H"])]
    for d in range(op.attrs["directions"]):
        keys = [f"h{d}", f"c{d}"] if op.kind == "lstm" else [f"h{d}"]
        for key in keys:
            state_key = f"{op.output}:{key}" if streaming else key
            needs.append(Scratch(state_key, "f32", batch * hidden, persistent=streaming))
    return needs


def _call(kernel: str, *args) -> str:
    return f"{kernel}({', '.join(str(a) for a in args)});"


class FloatOps:
    """Turns each op into calls; records the kernels used."""

    def __init__(
        self,
        graph: Graph,
        plan: MemoryPlan,
        buffers: Buffers,
        constants: Constants,
        batch: int,
        streaming: bool,
    ) -> None:
        self.graph, self.plan, self.buffers, self.constants = graph, plan, buffers, constants
        self.batch, self.streaming = batch, streaming
        self.kernels: set[str] = set()

    def value(self, name: str) -> str:
        return self.buffers.expr(self.plan.buffers[name])

    def scratch(self, index: int, key: str) -> str:
        return self.buffers.expr(self.plan.scratch[(index, key)])

    def weight(self, op: Op, key: str, values: np.ndarray | None = None) -> str:
        values = op.params[key] if values is None else values
        owner = None if self.streaming else self.graph.ops.index(op)
        return self.constants.add(op.label, key, values, "f32", owner)

    def statements(self) -> list[str]:
        lines: list[str] = []
        for index, op in enumerate(self.graph.ops):
            if op.kind == "reshape":
                continue
            shapes = " + ".join(str(self.graph.values[v].shape) for v in op.inputs)
            lines.append(
                f"/* {op.label}: {op.kind} {shapes} -> {self.graph.values[op.output].shape} */"
            )
            lines += getattr(self, f"_{op.kind}")(index, op)
        for index, source in self.plan.copies:
            count = self.graph.values[self.graph.outputs[index]].numel * self.batch
            self.kernels.add("copy_f32")
            lines.append(
                _call("copy_f32", self.buffers.expr(source), self.buffers.outputs[index], count)
            )
        return lines

    def _use(self, kernel: str) -> str:
        self.kernels.add(kernel)
        return kernel

    def _io(self, op: Op) -> tuple[str, str]:
        return self.value(op.inputs[0]), self.value(op.output)

    def _dense(self, index: int, op: Op) -> list[str]:
        a = op.attrs
        w = self.weight(op, "weight_t", op.params["weight"].T)
        return [
            _call(
                self._use("dense_f32"),
                *self._io(op),
                w,
                self.weight(op, "bias"),
                self.batch * a["rows"],
                a["in"],
                a["out"],
                int(a["relu"]),
            )
        ]

    def _conv2d(self, index: int, op: Op) -> list[str]:
        a = op.attrs
        keys = ("C", "H", "W", "F", "OH", "OW", "KH", "KW", "SH", "SW", "DH", "DW", "PT", "PL", "G")
        return [
            _call(
                self._use("conv2d_f32"),
                *self._io(op),
                self.scratch(index, "acc"),
                self.weight(op, "weight_g", conv2d_layout(op)),
                self.weight(op, "bias"),
                self.batch,
                *(a[k] for k in keys),
                int(a["relu"]),
            )
        ]

    def _conv1d(self, index: int, op: Op) -> list[str]:
        a = op.attrs
        groups, filters = a["G"], a["F"]
        w = op.params["weight"]  # (F, C/G, K) -> (G, K, C/G, F/G)
        w = w.reshape(groups, filters // groups, w.shape[1], w.shape[2]).transpose(0, 3, 2, 1)
        keys = ("T", "C", "F", "OT", "K", "S", "D", "P", "G")
        return [
            _call(
                self._use("conv1d_f32"),
                *self._io(op),
                self.weight(op, "weight_g", w),
                self.weight(op, "bias"),
                self.batch,
                *(a[k] for k in keys),
                int(a["relu"]),
            )
        ]

    def _tconv2d(self, index: int, op: Op) -> list[str]:
        a = op.attrs
        keys = ("C", "H", "W", "F", "OH", "OW", "KH", "KW", "SH", "SW", "PT", "PL")
        return [
            _call(
                self._use("tconv2d_f32"),
                *self._io(op),
                self.weight(op, "weight"),
                self.weight(op, "bias"),
                self.batch,
                *(a[k] for k in keys),
                int(a["relu"]),
            )
        ]

    def _pool2d(self, index: int, op: Op) -> list[str]:
        a = op.attrs
        keys = ("C", "H", "W", "OH", "OW", "KH", "KW", "SH", "SW", "PT", "PL")
        return [
            _call(
                self._use("pool2d_f32"),
                *self._io(op),
                self.batch,
                *(a[k] for k in keys),
                int(a["mode"] == "avg"),
            )
        ]

    def _pool1d(self, index: int, op: Op) -> list[str]:
        a = op.attrs
        keys = ("T", "C", "OT", "K", "S", "P")
        return [
            _call(
                self._use("pool1d_f32"),
                *self._io(op),
                self.batch,
                *(a[k] for k in keys),
                int(a["mode"] == "avg"),
            )
        ]

    def _gpool(self, index: int, op: Op) -> list[str]:
        a = op.attrs
        return [
            _call(
                self._use("gpool_f32"),
                *self._io(op),
                self.batch,
                a["positions"],
                a["channels"],
                int(a["channels_last"]),
                int(a["mode"] == "avg"),
            )
        ]

    def _affine(self, index: int, op: Op) -> list[str]:
        a = op.attrs
        outer = self.batch * self.graph.values[op.output].numel // (a["channels"] * a["inner"])
        return [
            _call(
                self._use("affine_f32"),
                *self._io(op),
                self.weight(op, "scale"),
                self.weight(op, "shift"),
                outer,
                a["channels"],
                a["inner"],
            )
        ]

    def _act(self, index: int, op: Op) -> list[str]:
        fn = op.attrs["fn"]
        count = self.batch * self.graph.values[op.output].numel
        extra = [c_float(op.attrs["alpha"])] if fn in ("leaky_relu", "elu") else []
        return [_call(self._use(f"{fn}_f32"), *self._io(op), count, *extra)]

    def _softmax(self, index: int, op: Op) -> list[str]:
        a = op.attrs
        return [
            _call(
                self._use("softmax_f32"),
                *self._io(op),
                self.batch * a["outer"],
                a["channels"],
                a["inner"],
            )
        ]

    def _elementwise(self, op: Op, kernel: str) -> list[str]:
        count = self.batch * self.graph.values[op.output].numel
        out = self.value(op.output)
        inputs = [self.value(v) for v in op.inputs]
        lines = [_call(self._use(kernel), inputs[0], inputs[1], out, count)]
        lines += [_call(kernel, out, other, out, count) for other in inputs[2:]]
        return lines

    def _add(self, index: int, op: Op) -> list[str]:
        return self._elementwise(op, "add_f32")

    def _mul(self, index: int, op: Op) -> list[str]:
        return self._elementwise(op, "mul_f32")

    def _concat(self, index: int, op: Op) -> list[str]:
        a, out = op.attrs, self.value(op.output)
        total, offset, lines = sum(a["inners"]), 0, []
        for name, inner in zip(op.inputs, a["inners"], strict=True):
            lines.append(
                _call(
                    self._use("concat_f32"),
                    self.value(name),
                    out,
                    self.batch * a["outer"],
                    inner,
                    total,
                    offset,
                )
            )
            offset += inner
        return lines

    def _state(self, index: int, op: Op, key: str) -> str:
        return self.scratch(index, f"{op.output}:{key}" if self.streaming else key)

    def _recurrent(self, index: int, op: Op) -> list[str]:
        a, lines = op.attrs, []
        x, y = self._io(op)
        hidden, directions = a["H"], a["directions"]
        for d in range(directions):
            states = [f"h{d}", f"c{d}"] if op.kind == "lstm" else [f"h{d}"]
            pointers = [self._state(index, op, key) for key in states]
            if not self.streaming:
                lines += [_call(self._use("zero_f32"), p, self.batch * hidden) for p in pointers]
            if op.kind == "lstm":
                bias = op.params[f"bx{d}"] + op.params[f"bh{d}"]
                weights = [
                    self.weight(op, f"wx{d}"),
                    self.weight(op, f"wh{d}"),
                    self.weight(op, f"b{d}", bias),
                ]
            else:
                weights = [self.weight(op, f"{k}{d}") for k in ("wx", "wh", "bx", "bh")]
            lines.append(
                _call(
                    self._use(f"{op.kind}_f32"),
                    x,
                    y,
                    *pointers,
                    self.scratch(index, "hn"),
                    *weights,
                    self.batch,
                    a["T"],
                    a["C"],
                    hidden,
                    d,
                    output_mode(a),
                    directions * hidden,
                    d * hidden,
                )
            )
        return lines

    _lstm = _recurrent
    _gru = _recurrent

    def reset(self, fills: list) -> list[str]:
        """Statements of NAME_reset(): every persistent state buffer back to zero."""
        return [_call(self._use("zero_f32"), self.buffers.expr(b), b.elements) for b, _ in fills]
