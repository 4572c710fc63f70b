"""ONNX export and import of the upsampling and pooling layers issue 13 item 1 added
(TransposedConv1d/3d, AdaptiveAvgPool1d/2d/3d, Resize3d, MaxUnpooling2d; TransposedConv2d and
Resize2d now map back too).

Exported files are run in onnxruntime and compared with the network (|difference| <= 1e-5),
then imported: each layer comes back as itself where ONNX has the op (ConvTranspose, Resize,
MaxPool indices -> ScatterElements / MaxUnpool), adaptive pooling as AvgPool2d when the windows
are equal and as exact operator layers otherwise. Standard nodes written with onnx.helper map
onto the layers when they compute the same and stay operators when they do not.
"""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.interop import export_onnx, import_onnx

RNG = np.random.default_rng(131)
ATOL = 1e-5


def _onnxruntime(path, x: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _outputs(net, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net.eval()(torch.from_numpy(x)).numpy()


def _types(net: Network) -> list[str]:
    return [type(net.layer(name)).__name__ for name in net.layer_names]


def _sequences() -> Network:
    return Network(
        [
            L.SequenceInput(3),  # free length: the exporter writes dynamic slices
            L.TransposedConv1d(4, 3, stride=2, cropping="same", name="up"),
            L.Dense(2, name="fc"),
        ]
    )


def _images() -> Network:
    net = Network(
        [
            L.ImageInput((2, 5, 4), normalization="none", name="x"),
            L.TransposedConv2d(3, 3, stride=2, cropping="same", name="up"),  # odd crop
            L.Resize2d(scale=2, method="bilinear", name="resize"),
            L.AdaptiveAvgPool2d((10, 8), name="even"),  # equal windows: AveragePool (recorded)
            L.MaxPool2d(2, name="pool"),
            L.ReLU(name="relu"),
            L.MaxUnpooling2d(2, name="unpool"),
            L.AdaptiveAvgPool2d((3, 5), name="uneven"),  # MatMul operators (recorded)
        ]
    )
    return net.connect("even", "unpool/reference")


def _volumes() -> Network:
    return Network(
        [
            L.VolumeInput((3, 3, 4, 4), normalization="none"),
            L.TransposedConv3d(2, 3, stride=(1, 2, 2), cropping=1, name="up"),
            L.TransposedConv3d(2, (3, 2, 2), stride=2, cropping="same", name="up2"),
            L.Resize3d(scale=(1, 2, 3), name="nearest"),
            L.AdaptiveAvgPool3d((3, 7, 14), name="even"),
            L.Resize3d(output_size=(5, 6, 3), method="trilinear", name="trilinear"),
        ]
    )


NETWORKS = {
    # name: (network, batch shape, a second batch shape, the types the import gives back)
    "sequences": (_sequences, (2, 5, 3), (1, 8, 3), ["TransposedConv1d", "Dense"]),
    "images": (_images, (2, 2, 5, 4), None,
               ["TransposedConv2d", "Resize2d", "AdaptiveAvgPool2d", "MaxPool2d", "ReLU",
                "MaxUnpooling2d", "AdaptiveAvgPool2d"]),
    "volumes": (_volumes, (2, 3, 3, 4, 4), None,
                ["TransposedConv3d", "TransposedConv3d", "Resize3d", "AdaptiveAvgPool3d",
                 "Resize3d"]),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_export_runs_in_onnxruntime_and_imports_back_as_the_layers(name, tmp_path):
    torch.manual_seed(0)
    make, shape, other, types = NETWORKS[name]
    net = make()
    path = export_onnx(net, tmp_path / f"{name}.onnx")
    again = import_onnx(path)
    for batch in [shape] if other is None else [shape, other]:
        x = RNG.standard_normal(batch).astype(np.float32)
        np.testing.assert_allclose(_onnxruntime(path, x), _outputs(net, x), rtol=0, atol=ATOL)
        np.testing.assert_allclose(_outputs(again, x), _outputs(net, x), rtol=0, atol=ATOL)
    assert _types(again)[1:] == types
    pairs = zip(net.layer_names[1:], again.layer_names[1:], strict=False)  # in graph order
    for name_here, name_there in pairs:
        layer = net.layer(name_here)
        if hasattr(layer, "cropping"):  # the same crops at both ends
            imported = again.layer(name_there)
            assert (imported.padding, imported.trim) == (layer.padding, layer.trim)
    if name == "images":  # the unpooling reads the ReLU and the pooling's input
        unpool = again.layer_names[types.index("MaxUnpooling2d") + 1]
        sources = {type(again.layer(s)).__name__ for s in again.sources(unpool).values()}
        assert sources == {"ReLU", "AdaptiveAvgPool2d"}


# -- standard nodes written with onnx.helper -------------------------------------------------


def _model(nodes, shape, inits, opset: int = 18):
    graph = helper.make_graph(
        nodes, "hand", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _check(model, tmp_path, shape, expected: str):
    path = tmp_path / "hand.onnx"
    path.write_bytes(model.SerializeToString())
    net = import_onnx(path)
    x = RNG.standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(_outputs(net, x), _onnxruntime(path, x), rtol=1e-5, atol=ATOL)
    assert _types(net)[-1] == expected
    return net


WEIGHT = RNG.standard_normal((3, 2, 3, 3)).astype(np.float32)
BIAS = RNG.standard_normal(2).astype(np.float32)
HAND = {
    # name: (nodes, constants, input shape, the layer the last node becomes)
    "conv-transpose-same-upper": (
        [helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], auto_pad="SAME_UPPER",
                          strides=[2, 2])],
        {"w": WEIGHT, "b": BIAS}, [1, 3, 4, 5], "TransposedConv2d",
    ),
    "conv-transpose-pads": (
        [helper.make_node("ConvTranspose", ["x", "w"], ["y"], pads=[1, 0, 1, 0], strides=[1, 2])],
        {"w": WEIGHT}, [1, 3, 4, 5], "TransposedConv2d",
    ),
    "conv-transpose-groups": (  # groups: no toolbox option, stays an operator
        [helper.make_node("ConvTranspose", ["x", "w"], ["y"], group=3, strides=[2, 2])],
        {"w": WEIGHT}, [1, 3, 4, 5], "OnnxOperator",
    ),
    "conv-transpose-output-padding": (
        [helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2],
                          output_padding=[1, 1])],
        {"w": WEIGHT}, [1, 3, 4, 5], "OnnxOperator",
    ),
    "resize-nearest-scales": (
        [helper.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest",
                          coordinate_transformation_mode="asymmetric", nearest_mode="floor")],
        {"s": np.array([1, 1, 2, 1.5, 3], np.float32)}, [1, 2, 3, 4, 2], "Resize3d",
    ),
    "resize-linear-sizes": (
        [helper.make_node("Resize", ["x", "", "", "z"], ["y"], mode="linear",
                          coordinate_transformation_mode="half_pixel")],
        {"z": np.array([1, 2, 5, 3, 4], np.int64)}, [1, 2, 3, 4, 2], "Resize3d",
    ),
    "resize-align-corners": (  # torch's align_corners=True is not the layers': operator
        [helper.make_node("Resize", ["x", "", "s"], ["y"], mode="linear",
                          coordinate_transformation_mode="align_corners")],
        {"s": np.array([1, 1, 2, 2, 2], np.float32)}, [1, 2, 3, 4, 2], "OnnxOperator",
    ),
    "maxpool-maxunpool": (
        [helper.make_node("MaxPool", ["x"], ["p", "i"], kernel_shape=[2, 2], strides=[2, 2]),
         helper.make_node("Relu", ["p"], ["r"]),
         helper.make_node("MaxUnpool", ["r", "i"], ["y"], kernel_shape=[2, 2], strides=[2, 2])],
        {}, [2, 3, 6, 4], "MaxUnpooling2d",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(HAND))
def test_standard_nodes_import_as_the_layers_when_they_fit(name, tmp_path):
    nodes, inits, shape, expected = HAND[name]
    _check(_model(nodes, shape, inits), tmp_path, shape, expected)


def test_max_unpool_operator_with_an_output_shape_input(tmp_path):
    """MaxUnpool(X, I, output_shape) from a max pooling of a 5-row image: the pooling drops the
    last row, the output_shape input gives it back (zeros), as onnxruntime computes."""
    nodes = [
        helper.make_node("MaxPool", ["x"], ["p", "i"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Shape", ["x"], ["size"]),
        helper.make_node("MaxUnpool", ["p", "i", "size"], ["y"], kernel_shape=[2, 2],
                         strides=[2, 2]),
    ]  # fmt: skip
    net = _check(_model(nodes, [1, 2, 5, 4], {}), tmp_path, [1, 2, 5, 4], "MaxUnpooling2d")
    assert net.output_shape() == (2, 5, 4)
