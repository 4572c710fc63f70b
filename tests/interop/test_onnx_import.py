"""import_onnx: files written with onnx.helper the way older exporters (MATLAB's among them) write
them, unsupported operators, placeholders, and every kind of bad file."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from deeptoolbox import Network, analyze
from deeptoolbox import layers as L
from deeptoolbox.errors import ModelImportError, NotInitializedError, OptionError
from deeptoolbox.interop import (
    OnnxPlaceholder,
    export_onnx,
    import_onnx,
    onnx_operator_table,
    supported_onnx_operators,
)

RNG = np.random.default_rng(0)


def _weights(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(RNG.standard_normal(shape).astype(np.float32) * 0.3, name)


def _old_cnn(*, initializers_as_inputs: bool, opset: int = 7, ir_version: int = 3):
    """A small CNN at opset 7 / IR 3, the way MATLAB's exporter writes them."""
    inits = [_weights("conv1_W", 4, 1, 3, 3), _weights("conv1_B", 4),
             _weights("fc_W", 3, 64), _weights("fc_B", 3)]  # fmt: skip
    nodes = [
        helper.make_node("Conv", ["data", "conv1_W", "conv1_B"], ["c1"], name="conv1",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Flatten", ["p1"], ["f1"], name="flat", axis=1),
        helper.make_node("Gemm", ["f1", "fc_W", "fc_B"], ["g1"], name="fc", transB=1),
        helper.make_node("Softmax", ["g1"], ["prob"], name="softmax"),
    ]  # fmt: skip
    inputs = [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 1, 8, 8])]
    if initializers_as_inputs:
        inputs += [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, t.dims) for t in inits]
    graph = helper.make_graph(
        nodes, "old_cnn", inputs,
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 3])], initializer=inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    helper.set_model_props(model, {"classes": "circle,square,triangle"})
    return model


def _run_onnxruntime(path, x: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("as_inputs", [True, False], ids=["matlab-style", "plain"])
def test_old_exporter_files_import_to_toolbox_layers(as_inputs, tmp_path):
    path = tmp_path / "old.onnx"
    onnx.save(_old_cnn(initializers_as_inputs=as_inputs), str(path))
    net = import_onnx(path).eval()
    types = {name: type(net.layer(name)).__name__ for name in net.layer_names}
    assert types == {
        "data": "ImageInput", "conv1": "Conv2d", "relu1": "ReLU", "pool1": "MaxPool2d",
        "flat": "Flatten", "fc": "Dense", "softmax": "Softmax",
    }  # fmt: skip
    assert net.input_names == ["data"]
    assert net.classes == ["circle", "square", "triangle"]
    x = RNG.standard_normal((5, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        got = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, _run_onnxruntime(path, x), rtol=1e-5, atol=1e-6)
    assert analyze(net).ok
    assert net.metadata["source"]["opset"] == 7


def test_imported_network_is_editable_and_trainable(tmp_path):
    path = tmp_path / "old.onnx"
    onnx.save(_old_cnn(initializers_as_inputs=True), str(path))
    net = import_onnx(path)
    net.replace_layer("fc", L.Dense(5, name="fc"))
    net.classes = list("abcde")
    x = torch.randn(4, 1, 8, 8)
    loss = net(x).log().mean()
    loss.backward()
    assert net.layer("conv1").weight.grad is not None
    assert net(x).shape == (4, 5)


def _model_with(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _unsupported_model():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu"),
        helper.make_node("Hardmax", ["a"], ["b"], name="hard1"),
        helper.make_node("CumSum", ["b", "axis"], ["c"], name="cumulative", domain="com.example"),
        helper.make_node("Hardmax", ["c"], ["d"], name="hard2"),
        helper.make_node("Sigmoid", ["d"], ["y"], name="sig"),
    ]
    axis = numpy_helper.from_array(np.array(1, dtype=np.int64), "axis")
    model = _model_with(nodes, [x], [y], [axis])
    model.opset_import.append(helper.make_opsetid("com.example", 1))  # a custom operator
    return model


def test_unsupported_operators_are_all_listed_with_node_names(tmp_path):
    path = tmp_path / "custom.onnx"
    onnx.save(_unsupported_model(), str(path))
    with pytest.raises(ModelImportError) as info:
        import_onnx(path)
    message = str(info.value)
    assert "custom.onnx" in message
    assert "Hardmax (nodes: 'hard1', 'hard2')" in message
    assert "com.example.CumSum (nodes: 'cumulative')" in message
    assert "unsupported='placeholder'" in message


def test_placeholders_are_flagged_and_refuse_to_run_until_replaced(tmp_path):
    path = tmp_path / "custom.onnx"
    onnx.save(_unsupported_model(), str(path))
    net = import_onnx(path, unsupported="placeholder")
    assert isinstance(net.layer("hard1"), OnnxPlaceholder)
    report = analyze(net)
    flagged = {issue.layer for issue in report.errors}
    assert {"hard1"} <= flagged and not report.ok
    assert "Hardmax" in str(report)
    with pytest.raises(NotInitializedError):
        net(torch.randn(2, 4))

    class Hardmax(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.one_hot(x.argmax(-1), x.shape[-1]).float()

    class CumSum(torch.nn.Module):
        def forward(self, x):
            return x.cumsum(-1)

    net.replace_layer("hard1", Hardmax())
    net.replace_layer("hard2", Hardmax())
    net.replace_layer("cumulative", CumSum())
    assert analyze(net).ok
    x = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    # relu, one-hot of the largest, running sum [0, 1, 1, 1], one-hot of the first largest
    expected = torch.sigmoid(torch.tensor([[0.0, 1.0, 0.0, 0.0]]))
    assert torch.allclose(net(x), expected)


def test_bad_option():
    with pytest.raises(OptionError, match="unsupported"):
        import_onnx("x.onnx", unsupported="skip")


def _valid_bytes(tmp_path) -> bytes:
    path = tmp_path / "valid.onnx"
    onnx.save(_old_cnn(initializers_as_inputs=False, opset=13, ir_version=7), str(path))
    return path.read_bytes()


@pytest.mark.parametrize(
    "content",
    ["truncated", "corrupt", "empty", "png", "json"],
)
def test_bad_files_name_the_file_and_what_is_supported(content, tmp_path):
    data = {
        "truncated": _valid_bytes(tmp_path)[:300],
        "corrupt": bytes(RNG.integers(0, 256, 2000, dtype=np.uint8)),
        "empty": b"",
        "png": b"\x89PNG\r\n\x1a\n" + bytes(100),
        "json": b'{"format": "deeptoolbox.network"}',
    }[content]
    path = tmp_path / f"{content}.onnx"
    path.write_bytes(data)
    with pytest.raises(ModelImportError) as info:
        import_onnx(path)
    assert f"{content}.onnx" in str(info.value)
    assert "opset" in str(info.value) or "ONNX" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ModelImportError, match="no ONNX file"):
        import_onnx(tmp_path / "absent.onnx")


def test_too_old_opset_and_ir_version(tmp_path):
    path = tmp_path / "opset6.onnx"
    onnx.save(_old_cnn(initializers_as_inputs=False, opset=6), str(path))
    with pytest.raises(ModelImportError, match=r"opset6\.onnx.*opset 6; supported: opset 7"):
        import_onnx(path)
    model = _old_cnn(initializers_as_inputs=False)
    model.ir_version = 2
    onnx.save(model, str(tmp_path / "ir2.onnx"))
    with pytest.raises(ModelImportError, match="IR version 2; supported: 3"):
        import_onnx(tmp_path / "ir2.onnx")


def test_dangling_input_names_the_node(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    node = helper.make_node("Add", ["x", "missing"], ["y"], name="adder")
    onnx.save(_model_with([node], [x], [y]), str(tmp_path / "dangling.onnx"))
    with pytest.raises(ModelImportError, match="'adder'.*'missing'"):
        import_onnx(tmp_path / "dangling.onnx")


def test_time_major_lstm_from_torch(tmp_path):
    """A torch nn.LSTM (time-major, with initial states) exported by the TorchScript exporter."""
    torch.manual_seed(0)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True)

        def forward(self, x, h, c):
            return self.lstm(x, (h, c))[0]

    model = Model().eval()
    args = (torch.randn(6, 2, 3), torch.randn(4, 2, 5), torch.randn(4, 2, 5))
    path = tmp_path / "lstm.onnx"
    torch.onnx.export(model, args, str(path), dynamo=False, input_names=["x", "h", "c"])
    net = import_onnx(path).eval()
    with torch.no_grad():
        assert torch.allclose(net(*args), model(*args), atol=1e-5)


def test_operator_table_lists_every_supported_operator():
    table = onnx_operator_table()
    for op in supported_onnx_operators():
        assert f"| {op} |" in table
    assert (
        "| Conv | `Conv2d / Conv3d` or `Conv1d / PatchEmbedding` (with the nodes around it) when its "
        "options fit" in table
    )
    assert "| LSTM | `LSTM` (with the nodes around it) when its options fit" in table


def test_a_free_length_stack_that_shrinks_short_samples_to_nothing_imports(tmp_path):
    # Conv1d(k=3) -> AvgPool1d(2) -> Conv1d(k=2) leaves nothing of a 5-step sample
    net = Network([L.SequenceInput(3), L.Conv1d(4, 3), L.AvgPool1d(2), L.Conv1d(2, 2)])
    again = import_onnx(export_onnx(net, tmp_path / "free.onnx"))
    assert [type(again.layer(n)).__name__ for n in again.layer_names][1:] == [
        "Conv1d", "AvgPool1d", "Conv1d"]  # fmt: skip
    for steps in (9, 20):
        x = torch.randn(2, steps, 3)
        torch.testing.assert_close(again(x), net(x), atol=1e-5, rtol=1e-4)
