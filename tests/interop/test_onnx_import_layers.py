"""import_onnx maps recurrent, 1-D convolution and global pooling patterns onto toolbox layers
(LSTM, GRU, Conv1d, GlobalAvgPool, GlobalMaxPool) exactly, keeps operators where they do not
fit, and keeps operator sizes right after edits upstream.

Files come from three writers: the toolbox's own export_onnx, torch.onnx.export of plain torch
modules, and onnx.helper for variants no exporter writes. Outputs are compared with
onnxruntime: |network - onnxruntime| <= 1e-5 (float32).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from torch import nn

from deeptoolbox import Network, analyze, load, save
from deeptoolbox import layers as L
from deeptoolbox.interop import OnnxOperator, export_onnx, import_onnx

RNG = np.random.default_rng(0)
ATOL = 1e-5


def _kinds(net: Network) -> dict[str, str]:
    return {name: type(net.layer(name)).__name__ for name in net.layer_names}


def _onnxruntime(path, *inputs: np.ndarray) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {a.name: x for a, x in zip(session.get_inputs(), inputs, strict=True)}
    return session.run(None, feeds)


def _check_outputs(net: Network, path, x: np.ndarray, *, reference: bool = False) -> None:
    """Compare with onnxruntime (or onnx's reference evaluator, for what onnxruntime lacks)."""
    with torch.no_grad():
        got = net.eval()(torch.from_numpy(x)).numpy()
    if reference:
        evaluator = ReferenceEvaluator(str(path))
        want = evaluator.run(None, {evaluator.input_names[0]: x})[0]
    else:
        want = _onnxruntime(path, x)[0]
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


def _train_step_and_reload(net: Network, x: torch.Tensor, tmp_path) -> None:
    """One optimizer step changes the outputs; the network saves and loads with them."""
    net.train()
    before = net.eval()(x).detach()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    net.train()
    loss = net(x).square().mean()
    loss.backward()
    optimizer.step()
    after = net.eval()(x).detach()
    assert not torch.allclose(before, after)
    again = load(save(net, tmp_path / "net.zip")).eval()
    torch.testing.assert_close(again(x), after, rtol=0, atol=1e-6)


# -- files from the toolbox's own exporter -----------------------------------------------------


@pytest.fixture(scope="module")
def own_files(tmp_path_factory):
    """Toolbox networks and the files export_onnx writes for them (exported once)."""
    folder = tmp_path_factory.mktemp("own")
    torch.manual_seed(0)
    nets = {
        "bilstm": Network([L.SequenceInput(3), L.LSTM(4, bidirectional=True, name="lstm")]),
        "bigru": Network([
            L.SequenceInput(3),
            L.GRU(5, bidirectional=True, output_mode="last", name="gru"),
            L.Dense(2, name="fc"),
        ]),
        "bigru_final": Network([
            L.SequenceInput(3),
            L.GRU(5, bidirectional=True, output_mode="final_state", name="gru"),
            L.Dense(2, name="fc"),
        ]),
        "birnn": Network([L.SequenceInput(3), L.SimpleRNN(4, bidirectional=True, name="rnn")]),
        "rnn_last": Network([
            L.SequenceInput(3),
            L.SimpleRNN(5, output_mode="last", name="rnn"),
            L.Dense(2, name="fc"),
        ]),
        "conv1d": Network([
            L.SequenceInput(3),
            L.Conv1d(6, 3, padding="same", name="conv"),
            L.LSTM(5, output_mode="last", name="lstm"),
        ]),
        "pooling": Network([
            L.SequenceInput(3),
            L.Conv1d(4, 3, stride=2, padding="valid", name="conv"),
            L.GlobalAvgPool(name="gap"),
        ]),
        "image": Network([
            L.ImageInput((2, 6, 6)),
            L.Conv2d(3, 3, padding="same", name="conv"),
            L.GlobalMaxPool(name="gmp"),
            L.Dense(2, name="fc"),
        ]),
    }  # fmt: skip
    return {name: (net, export_onnx(net, folder / f"{name}.onnx")) for name, net in nets.items()}


OWN_KINDS = {
    "bilstm": {"lstm": "LSTM"},
    "bigru": {"gru": "GRU", "fc": "Dense"},
    "bigru_final": {"gru": "GRU", "fc": "Dense"},
    "birnn": {"rnn": "SimpleRNN"},
    "rnn_last": {"rnn": "SimpleRNN", "fc": "Dense"},
    "conv1d": {"conv": "Conv1d", "lstm": "LSTM"},
    "pooling": {"conv": "Conv1d"},
    "image": {"conv": "Conv2d", "fc": "Dense"},
}


@pytest.mark.parametrize("case", sorted(OWN_KINDS))
def test_own_exports_import_as_toolbox_layers(case, own_files, tmp_path):
    original, path = own_files[case]
    net = import_onnx(path)
    kinds = _kinds(net)
    assert {k: kinds.get(k) for k in OWN_KINDS[case]} == OWN_KINDS[case]
    assert not any(isinstance(m, OnnxOperator) for m in net.layers.values()), kinds
    pools = [k for k in kinds.values() if k.startswith("Global")]
    assert pools == {"pooling": ["GlobalAvgPool"], "image": ["GlobalMaxPool"]}.get(case, [])
    shape = (3, 2, 6, 6) if case == "image" else (3, 7, 3)
    x = RNG.standard_normal(shape).astype(np.float32)
    _check_outputs(net, path, x)
    with torch.no_grad():  # and the same numbers as the network that was exported
        expected = original.eval()(torch.from_numpy(x))
    torch.testing.assert_close(net(torch.from_numpy(x)), expected, rtol=0, atol=ATOL)
    assert analyze(net).ok
    _train_step_and_reload(net, torch.from_numpy(x), tmp_path)


def test_imported_recurrent_layers_keep_their_options(own_files):
    lstm = import_onnx(own_files["bilstm"][1]).layer("lstm")
    assert (lstm.hidden_size, lstm.bidirectional, lstm.output_mode) == (4, True, "sequence")
    assert lstm.rnn.input_size == 3
    net = import_onnx(own_files["bigru"][1])
    gru = net.layer("gru")
    assert (gru.hidden_size, gru.bidirectional, gru.output_mode) == (5, True, "last")
    assert net.output_shape() == (2,)
    # each direction's final state (ONNX's Y_h) stays that, not MATLAB's last time step
    gru = import_onnx(own_files["bigru_final"][1]).layer("gru")
    assert (gru.bidirectional, gru.output_mode) == (True, "final_state")
    rnn = import_onnx(own_files["birnn"][1]).layer("rnn")
    assert (rnn.hidden_size, rnn.bidirectional, rnn.output_mode) == (4, True, "sequence")
    rnn = import_onnx(own_files["rnn_last"][1]).layer("rnn")
    assert (rnn.hidden_size, rnn.bidirectional, rnn.output_mode) == (5, False, "last")


# -- files from torch.onnx.export of plain torch modules ---------------------------------------


class _Recurrent(nn.Module):
    def __init__(self, kind: str, bidirectional: bool, output: str, layers: int = 1) -> None:
        super().__init__()
        module = nn.LSTM if kind == "lstm" else nn.GRU
        self.rnn = module(3, 4, layers, batch_first=True, bidirectional=bidirectional)
        self.output = output

    def forward(self, x):
        y, state = self.rnn(x)
        if self.output == "last_step":
            return y[:, -1]
        hidden = state[0] if isinstance(state, tuple) else state
        if self.output == "state":
            return hidden[-1]
        if self.output == "both_states":
            return torch.cat([hidden[-2], hidden[-1]], dim=-1)
        return y


class _Conv1d(nn.Module):
    def __init__(self, **options) -> None:
        super().__init__()
        self.conv = nn.Conv1d(3, 4, 3, **options)

    def forward(self, x):
        return self.conv(x.transpose(1, 2)).transpose(1, 2)


class _Pooled(nn.Module):
    def __init__(self, pool: str) -> None:
        super().__init__()
        self.conv, self.pool = nn.Conv2d(2, 3, 3), pool

    def forward(self, x):
        x = self.conv(x)
        if self.pool == "adaptive":  # GlobalAveragePool -> Flatten
            return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        if self.pool == "amax":  # ReduceMax(keepdims) -> Reshape
            return x.amax((2, 3), keepdim=True).flatten(1)
        return x.mean((2, 3))  # ReduceMean without kept dimensions


TORCH_CASES = {
    # name: (module, input size, expected toolbox layer kind)
    "lstm": (lambda: _Recurrent("lstm", False, "sequence"), (2, 5, 3), "LSTM"),
    "bilstm": (lambda: _Recurrent("lstm", True, "sequence"), (2, 5, 3), "LSTM"),
    "gru_last_step": (lambda: _Recurrent("gru", False, "last_step"), (2, 5, 3), "GRU"),
    "gru_state": (lambda: _Recurrent("gru", False, "state"), (2, 5, 3), "GRU"),
    "lstm_state": (lambda: _Recurrent("lstm", False, "state"), (2, 5, 3), "LSTM"),
    "bilstm_states": (lambda: _Recurrent("lstm", True, "both_states"), (2, 5, 3), "LSTM"),
    "stacked_gru": (lambda: _Recurrent("gru", False, "sequence", 2), (2, 5, 3), "GRU"),
    "stacked_bilstm": (lambda: _Recurrent("lstm", True, "sequence", 2), (2, 5, 3), "LSTM"),
    "stacked_lstm_state": (lambda: _Recurrent("lstm", False, "state", 2), (2, 5, 3), "LSTM"),
    "stacked_bigru_states": (lambda: _Recurrent("gru", True, "both_states", 3), (2, 5, 3), "GRU"),
    "conv1d": (lambda: _Conv1d(padding=1), (2, 6, 3), "Conv1d"),
    "conv1d_strided": (lambda: _Conv1d(stride=2, dilation=2, bias=False), (2, 9, 3), "Conv1d"),
    "adaptive_avgpool": (lambda: _Pooled("adaptive"), (2, 2, 6, 6), "GlobalAvgPool"),
    "amax": (lambda: _Pooled("amax"), (2, 2, 6, 6), "GlobalMaxPool"),
    "mean": (lambda: _Pooled("mean"), (2, 2, 6, 6), "GlobalAvgPool"),
}


@pytest.fixture(scope="module")
def torch_files(tmp_path_factory):
    """Plain torch modules written by torch's TorchScript exporter (free batch and length)."""
    folder = tmp_path_factory.mktemp("torch")
    files = {}
    for name, (make, size, _) in TORCH_CASES.items():
        torch.manual_seed(1)
        model = make().eval()
        axes = {0: "batch"} if len(size) == 4 else {0: "batch", 1: "time"}
        path = folder / f"{name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (torch.randn(size),), str(path), dynamo=False,
                              input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": axes, "y": {0: "batch"}})  # fmt: skip
        files[name] = (model, path)
    return files


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_torch_exports_import_as_toolbox_layers(case, torch_files):
    model, path = torch_files[case]
    net = import_onnx(path)
    kinds = [k for k in _kinds(net).values() if not k.endswith("Input")]
    expected = TORCH_CASES[case][2]
    assert expected in kinds and "OnnxOperator" not in kinds, kinds
    assert kinds.count(expected) == model.rnn.num_layers if hasattr(model, "rnn") else 1
    size = list(TORCH_CASES[case][1])
    size[0] = 3
    if len(size) == 3:
        size[1] += 2  # another batch size and length than at export
    x = RNG.standard_normal(size).astype(np.float32)
    _check_outputs(net, path, x)
    with torch.no_grad():
        torch.testing.assert_close(net(torch.from_numpy(x)), model(torch.from_numpy(x)),
                                   rtol=0, atol=ATOL)  # fmt: skip


def test_torch_dynamo_export_of_bidirectional_gru(tmp_path):
    """The torch.export-based exporter computes the reshape target from Shape at run time."""
    torch.manual_seed(2)
    model = _Recurrent("gru", True, "sequence").eval()
    path = tmp_path / "bigru.onnx"
    time = torch.export.Dim("time", min=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(2, 5, 3),), str(path), dynamo=True,
                          input_names=["x"], dynamic_shapes=({1: time},))  # fmt: skip
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"Shape", "Reshape", "GRU"} <= ops
    net = import_onnx(path)
    assert [k for k in _kinds(net).values() if not k.endswith("Input")] == ["GRU"]
    length = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[1]
    steps = 5 if length.HasField("dim_value") else 8
    _check_outputs(net, path, RNG.standard_normal((2, steps, 3)).astype(np.float32))


# -- hand-written files: what fits and what does not -------------------------------------------

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _recurrent_model(
    op: str = "LSTM",
    *,
    layout: int = 0,
    initial: str = "none",
    bias: bool = True,
    directions: int = 1,
    extra_inputs=(),
    **attrs,
):
    """x (N, T, 3) -> [Transpose] -> op (hidden 4) -> Y reshaped to (N, T, D*4)."""
    hidden, gates = 4, GATES[op]
    inits = [
        numpy_helper.from_array(0.4 * RNG.standard_normal((directions, gates * hidden, 3))
                                .astype(np.float32), "W"),
        numpy_helper.from_array(0.4 * RNG.standard_normal((directions, gates * hidden, hidden))
                                .astype(np.float32), "R"),
    ]  # fmt: skip
    if bias:
        b = 0.4 * RNG.standard_normal((directions, 2 * gates * hidden)).astype(np.float32)
        inits.append(numpy_helper.from_array(b, "B"))
    h0 = ""
    if initial != "none":
        fill = np.zeros if initial == "zero" else np.ones
        size = (2, directions, hidden) if layout else (directions, 2, hidden)
        inits.append(numpy_helper.from_array(fill(size, np.float32), "h0"))
        h0 = "h0"
    nodes = []
    source = "x"
    if not layout:
        nodes.append(helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]))
        source = "xt"
    inputs = [source, "W", "R", "B" if bias else "", "", h0, *extra_inputs]
    direction = "bidirectional" if directions == 2 else attrs.pop("direction", "forward")
    nodes.append(helper.make_node(op, inputs, ["Y"], name="rnn", hidden_size=hidden,
                                  direction=direction, layout=layout, **attrs))  # fmt: skip
    perm = [0, 2, 1, 3] if layout == 0 else [0, 1, 2, 3]
    nodes.append(helper.make_node("Transpose", ["Y"], ["Yp"], perm=perm))
    inits.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), "shape"))
    nodes.append(helper.make_node("Reshape", ["Yp", "shape"], ["Yr"]))
    out_perm = [1, 0, 2] if layout == 0 else [0, 1, 2]
    nodes.append(helper.make_node("Transpose", ["Yr"], ["y"], perm=out_perm))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, "T", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "rnn", [x], [y], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


HAND_CASES = {
    # name: (model options, expected kind of the recurrent layer)
    "lstm_fits": ({}, "LSTM"),
    "lstm_layout1_no_bias_zero_state": ({"layout": 1, "bias": False, "initial": "zero"}, "LSTM"),
    "bilstm_fits": ({"directions": 2}, "LSTM"),
    "gru_fits": ({"op": "GRU", "linear_before_reset": 1}, "GRU"),
    "lstm_clip": ({"clip": 0.5}, "OnnxOperator"),
    "gru_linear_before_reset_0": ({"op": "GRU"}, "OnnxOperator"),
    "lstm_nonzero_state": ({"initial": "ones"}, "OnnxOperator"),
    "lstm_activations": ({"activations": ["Sigmoid", "Relu", "Tanh"]}, "OnnxOperator"),
    "gru_activations_alpha": (
        {
            "op": "GRU",
            "linear_before_reset": 1,
            "activations": ["HardSigmoid", "Tanh"],
            "activation_alpha": [0.3],
        },
        "OnnxOperator",
    ),  # fmt: skip
    "lstm_reverse": ({"direction": "reverse"}, "OnnxOperator"),
    "lstm_input_forget": ({"input_forget": 1}, "OnnxOperator"),
    "rnn_fits": ({"op": "RNN"}, "SimpleRNN"),
    "birnn_fits": ({"op": "RNN", "directions": 2}, "SimpleRNN"),
    "rnn_relu": ({"op": "RNN", "activations": ["Relu"]}, "OnnxOperator"),
    "rnn_clip": ({"op": "RNN", "clip": 0.5}, "OnnxOperator"),
}


@pytest.mark.parametrize("case", sorted(HAND_CASES))
def test_hand_written_recurrent_nodes(case, tmp_path):
    options, expected = HAND_CASES[case]
    path = tmp_path / f"{case}.onnx"
    onnx.save(_recurrent_model(**options), str(path))
    net = import_onnx(path)
    kinds = _kinds(net)
    assert (kinds.get("rnn") or "missing") == expected, kinds
    if expected != "OnnxOperator":
        assert "OnnxOperator" not in kinds.values(), kinds  # the transposes went too
    x = RNG.standard_normal((2, 6, 3)).astype(np.float32)
    _check_outputs(net, path, x, reference=bool(options.get("layout")))


@pytest.mark.parametrize("axis", [1, -2])
def test_final_states_flattened_batch_first_become_final_state_mode(axis, tmp_path):
    """Y_h (2, N, H) -> Transpose(1, 0, 2) -> Flatten: (N, 2H), forward then backward."""
    model = _recurrent_model(directions=2)
    rnn = model.graph.node[1]
    rnn.output[:] = ["", "Y_h"]
    del model.graph.node[2:]
    model.graph.node.extend([
        helper.make_node("Transpose", ["Y_h"], ["Y_t"], perm=[1, 0, 2]),
        helper.make_node("Flatten", ["Y_t"], ["y"], axis=axis),
    ])  # fmt: skip
    path = tmp_path / "states.onnx"
    onnx.save(model, str(path))
    net = import_onnx(path)
    assert [k for k in _kinds(net).values() if not k.endswith("Input")] == ["LSTM"]
    assert net.layer("rnn").output_mode == "final_state"  # Y_h, not MATLAB's last step
    _check_outputs(net, path, RNG.standard_normal((2, 6, 3)).astype(np.float32))


def test_sequence_lengths_and_peepholes_keep_the_operator(tmp_path):
    lengths = numpy_helper.from_array(np.array([6, 4], np.int32), "lengths")
    peepholes = numpy_helper.from_array(np.full((1, 12), 0.3, np.float32), "P")
    for extra, tensor in (((), lengths), (("", "P"), peepholes)):
        model = _recurrent_model(extra_inputs=extra)
        if tensor is lengths:
            model.graph.node[1].input[4] = "lengths"
        model.graph.initializer.append(tensor)
        path = tmp_path / "lstm.onnx"
        onnx.save(model, str(path))
        net = import_onnx(path)
        assert isinstance(net.layer("rnn"), OnnxOperator)
        _check_outputs(net, path, RNG.standard_normal((2, 6, 3)).astype(np.float32))


def test_outputs_used_elsewhere_keep_the_operator(tmp_path):
    """Y and Y_h both read: one toolbox layer cannot give both, so the node stays exact."""
    model = _recurrent_model()
    rnn = model.graph.node[1]
    rnn.output.append("Y_h")
    model.graph.output.append(helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None))
    path = tmp_path / "both.onnx"
    onnx.save(model, str(path))
    net = import_onnx(path)
    assert isinstance(net.layer("rnn_0"), OnnxOperator)
    assert isinstance(net.layer("rnn_1"), OnnxOperator)
    x = RNG.standard_normal((2, 6, 3)).astype(np.float32)
    with torch.no_grad():
        got = net.eval()(torch.from_numpy(x))
    for a, b in zip(got, _onnxruntime(path, x), strict=True):
        np.testing.assert_allclose(a.numpy(), b, rtol=0, atol=ATOL)


def _conv_model(*, transposed: bool, rank: int = 3, pool: str | None = None, **attrs):
    channels = 3
    weight = 0.3 * RNG.standard_normal((4, channels, *[3] * (rank - 2))).astype(np.float32)
    nodes, source = [], "x"
    if transposed:
        nodes.append(helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1]))
        source = "xt"
    nodes.append(helper.make_node("Conv", [source, "w"], ["c"], name="conv", **attrs))
    last = "c"
    if transposed:
        nodes.append(helper.make_node("Transpose", ["c"], ["ct"], perm=[0, 2, 1]))
        last = "ct"
    if pool:
        nodes.append(helper.make_node(pool, [last], ["p"], name="pool"))
        nodes.append(helper.make_node("Flatten", ["p"], ["f"], axis=1))
        last = "f"
    nodes.append(helper.make_node("Identity", [last], ["y"]))
    size = [2, 7, channels] if transposed else [2, channels, *[7] * (rank - 2)]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, size)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = [numpy_helper.from_array(weight, "w")]
    graph = helper.make_graph(nodes, "conv", [x], [y], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), size


CONV_CASES = {
    # name: (model options, expected kinds of conv and pool)
    "conv1d_same_upper": (
        {"transposed": True, "auto_pad": "SAME_UPPER", "strides": [2]},
        ("Conv1d", None),
    ),  # fmt: skip
    "conv1d_asymmetric_pads": ({"transposed": True, "pads": [0, 2]}, ("OnnxOperator", None)),
    "conv1d_channels_first": ({"transposed": False, "pads": [1, 1]}, ("OnnxOperator", None)),
    "gap_images": (
        {"transposed": False, "rank": 4, "pool": "GlobalAveragePool"},
        ("Conv2d", "GlobalAvgPool"),
    ),  # fmt: skip
    "gmp_volumes": (
        {"transposed": False, "rank": 5, "pool": "GlobalMaxPool"},
        ("Conv3d", "GlobalMaxPool"),
    ),  # fmt: skip
    "gap_channels_first_sequences": (
        {"transposed": False, "pool": "GlobalAveragePool"},
        ("OnnxOperator", "OnnxOperator"),
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_hand_written_convolution_and_pooling(case, tmp_path):
    options, (conv, pool) = CONV_CASES[case]
    model, size = _conv_model(**options)
    path = tmp_path / f"{case}.onnx"
    onnx.save(model, str(path))
    net = import_onnx(path)
    kinds = _kinds(net)
    assert kinds["conv"] == conv, kinds
    if pool:
        assert kinds["pool"] == pool, kinds
    _check_outputs(net, path, RNG.standard_normal(size).astype(np.float32))


def _merged_transpose_model(pads: list[int], strides: list[int], then: str):
    """x (N, T, 3) -> Transpose(0, 2, 1) -> Conv -> Transpose(2, 0, 1) (an optimizer's merge of
    (0, 2, 1) and (1, 0, 2)) -> LSTM, last state; or -> Relu."""
    inits = [
        numpy_helper.from_array(0.3 * RNG.standard_normal((4, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(0.3 * RNG.standard_normal((1, 20, 4)).astype(np.float32), "W"),
        numpy_helper.from_array(0.3 * RNG.standard_normal((1, 20, 5)).astype(np.float32), "R"),
        numpy_helper.from_array(np.array([0], np.int64), "axis0"),
    ]
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1]),
        helper.make_node("Conv", ["xt", "w"], ["c"], name="conv", pads=pads, strides=strides),
        helper.make_node("Transpose", ["c"], ["ct"], name="merged", perm=[2, 0, 1]),
    ]
    if then == "LSTM":
        nodes += [
            helper.make_node("LSTM", ["ct", "W", "R"], ["", "Y_h"], name="rnn", hidden_size=5),
            helper.make_node("Squeeze", ["Y_h", "axis0"], ["y"]),
        ]
    else:
        nodes.append(helper.make_node("Relu", ["ct"], ["y"], name="relu"))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "merged", [x], [y], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(
    ("pads", "strides", "then", "expected"),
    [
        ([1, 1], [1], "LSTM", ["Conv1d", "LSTM"]),
        ([1, 1], [1], "Relu", ["Conv1d", "OnnxOperator", "ReLU"]),  # (1, 0, 2) is left over
        ([0, 2], [2], "Relu", ["OnnxOperator", "OnnxOperator", "OnnxOperator", "ReLU"]),
    ],
    ids=["conv1d-lstm", "conv1d-relu", "nothing-fits"],
)
def test_merged_transposes_are_split_for_the_patterns(pads, strides, then, expected, tmp_path):
    path = tmp_path / "merged.onnx"
    onnx.save(_merged_transpose_model(pads, strides, then), str(path))
    net = import_onnx(path)
    assert [k for k in _kinds(net).values() if not k.endswith("Input")] == expected
    if expected[0] == "OnnxOperator":  # the transpose split for nothing is whole again
        assert net.layer("merged").attributes["perm"] == [2, 0, 1]
    _check_outputs(net, path, RNG.standard_normal((3, 8, 3)).astype(np.float32))


# -- operator sizes after edits upstream -------------------------------------------------------


def _operator_model():
    """x (N, 4) -> Gemm fc1 (6) -> Selu (an operator) -> ReduceSum over features."""
    inits = [numpy_helper.from_array(RNG.standard_normal((6, 4)).astype(np.float32), "w1"),
             numpy_helper.from_array(np.array([1], np.int64), "axes")]  # fmt: skip
    nodes = [
        helper.make_node("Gemm", ["x", "w1"], ["h"], name="fc1", transB=1),
        helper.make_node("Selu", ["h"], ["s"], name="soft"),
        helper.make_node("ReduceSum", ["s", "axes"], ["y"], name="total", keepdims=1),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])
    graph = helper.make_graph(nodes, "ops", [x], [y], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_operator_sizes_follow_edits_upstream(tmp_path):
    path = tmp_path / "ops.onnx"
    onnx.save(_operator_model(), str(path))
    net = import_onnx(path)
    soft = net.layer("soft")
    assert isinstance(soft, OnnxOperator) and soft.input_sizes == [(6,)]
    assert soft.output_size == (6,)
    net.replace_layer("fc1", L.Dense(9, name="fc1"))
    assert net.output_shape("soft") == (9,)
    assert analyze(net).ok
    x = torch.randn(5, 4)
    with torch.no_grad():
        expected = torch.nn.functional.selu(net.layer("fc1")(x)).sum(1, keepdim=True)
        torch.testing.assert_close(net(x), expected)
    assert (soft.input_sizes, soft.output_size) == ([(9,)], (9,))  # recorded for the new sizes
    again = load(save(net, tmp_path / "edited.zip"))
    assert again.layer("soft").input_sizes == [(9,)]
    assert again.output_shape("soft") == (9,)
    torch.testing.assert_close(again(x), net(x))


def test_operators_saved_without_input_sizes_still_load(tmp_path):
    """Files saved before input sizes were recorded: sizes are computed, the stored one is the
    fall-back."""
    path = tmp_path / "ops.onnx"
    onnx.save(_operator_model(), str(path))
    folder = save(import_onnx(path), tmp_path / "saved")
    config_path = folder / "network.json"
    config = json.loads(config_path.read_text())
    text = json.dumps(config)
    assert '"input_sizes"' in text
    _strip(config, "input_sizes")
    config_path.write_text(json.dumps(config))
    assert '"input_sizes"' not in json.dumps(config)
    net = load(folder)
    assert net.output_shape("soft") == (6,)
    assert net.layer("soft").input_sizes == [(6,)]  # computed when the network resolved sizes
    x = torch.randn(3, 4)
    torch.testing.assert_close(net(x), torch.from_numpy(_onnxruntime(path, x.numpy())[0]))


def _strip(value, key: str) -> None:
    if isinstance(value, dict):
        value.pop(key, None)
        for item in value.values():
            _strip(item, key)
    elif isinstance(value, list):
        for item in value:
            _strip(item, key)


def test_linear_on_sequences_imports_as_dense_with_bias(tmp_path):
    # torch writes nn.Linear on (N, T, C) as MatMul -> Add; both become one Dense layer
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    path = tmp_path / "linear.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(2, 5, 3),), str(path), dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "n", 1: "t"}})  # fmt: skip
    assert [n.op_type for n in onnx.load(str(path)).graph.node].count("MatMul") == 2
    net = import_onnx(path)
    assert sorted(_kinds(net).values()).count("Dense") == 2
    assert not any(isinstance(net.layer(n), OnnxOperator) for n in net.layer_names)
    x = RNG.standard_normal((3, 7, 3)).astype(np.float32)
    _check_outputs(net, path, x)
    _train_step_and_reload(net, torch.from_numpy(x), tmp_path)


def test_matmul_with_a_computed_addend_keeps_the_add(tmp_path):
    weight = numpy_helper.from_array(RNG.standard_normal((3, 4)).astype(np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
            helper.make_node("Relu", ["x2"], ["r"], name="relu"),
            helper.make_node("Add", ["y", "r"], ["z"], name="add"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5, 3]),
         helper.make_tensor_value_info("x2", TensorProto.FLOAT, ["N", 5, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 5, 4])],
        [weight],
    )  # fmt: skip
    path = tmp_path / "mm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    net = import_onnx(path)
    kinds = _kinds(net)
    assert kinds["mm"] == "Dense" and net.layer("mm").bias is None  # the Add stays separate
    assert kinds["add"] in ("Addition", "OnnxOperator")
    x = RNG.standard_normal((2, 5, 3)).astype(np.float32)
    x2 = RNG.standard_normal((2, 5, 4)).astype(np.float32)
    with torch.no_grad():
        got = net.eval()(torch.from_numpy(x), torch.from_numpy(x2)).numpy()
    np.testing.assert_allclose(got, _onnxruntime(path, x, x2)[0], rtol=0, atol=ATOL)
