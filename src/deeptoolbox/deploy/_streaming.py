"""Whether a recurrent network can run one time step at a time (``NAME_step``)."""

from __future__ import annotations

from deeptoolbox import layers as L
from deeptoolbox.deploy._ir import Graph, Op

POINTWISE = frozenset({"act", "add", "mul", "dense"})


def _keeps_steps_apart(op: Op, graph: Graph) -> bool:
    a = op.attrs
    if op.kind in POINTWISE:
        return True
    shape = graph.values[op.inputs[0]].shape
    if op.kind == "affine":
        return a["inner"] == 1 and a["channels"] in (1, shape[-1])
    if op.kind in ("softmax", "concat"):
        return a["outer"] == shape[0]
    if op.kind == "conv1d":
        return a["K"] == 1 and a["S"] == 1 and a["P"] == 0
    if op.kind == "pool1d":
        return a["K"] == 1 and a["S"] == 1
    if op.kind in ("lstm", "gru"):
        return a["directions"] == 1
    return False


def streaming_problem(graph: Graph, net) -> str | None:
    """None when every op keeps time steps apart (except unidirectional recurrence), else why."""
    if not any(op.kind in ("lstm", "gru") for op in graph.ops):
        return "the network has no LSTM or GRU layer"
    timed = {
        value
        for value, layer in zip(graph.inputs, graph.input_layers, strict=True)
        if type(net.layer(layer)) is L.SequenceInput
    }
    for op in graph.ops:
        if not timed & set(op.inputs):
            continue
        if not _keeps_steps_apart(op, graph):
            why = "is bidirectional" if op.kind in ("lstm", "gru") else "mixes time steps"
            return f"layer '{op.label}' {why}, so the network cannot run one step at a time"
        if (
            len(graph.values[op.output].shape) == 2
            and op.kind not in ("lstm", "gru")
            or op.kind in ("lstm", "gru")
            and op.attrs["sequence"]
        ):
            timed.add(op.output)
    return None
