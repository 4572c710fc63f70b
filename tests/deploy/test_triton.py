"""export(format="triton"): the model repository, with config.pbtxt parsed by protobuf against
the fields of Triton's ModelConfig (model_config.proto) and checked against the ONNX file."""

import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.deploy import export
from deeptoolbox.errors import OptionError

_F = descriptor_pb2.FieldDescriptorProto
# field numbers and types from triton-inference-server/common protobuf/model_config.proto
_DATA_TYPES = ["TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32",
               "TYPE_UINT64", "TYPE_INT8", "TYPE_INT16", "TYPE_INT32", "TYPE_INT64", "TYPE_FP16",
               "TYPE_FP32", "TYPE_FP64", "TYPE_STRING", "TYPE_BF16"]  # fmt: skip
_MESSAGES = {
    "ModelInput": [("name", 1, "string"), ("data_type", 2, ".inference.DataType"),
                   ("dims", 4, "repeated int64")],
    "ModelOutput": [("name", 1, "string"), ("data_type", 2, ".inference.DataType"),
                    ("dims", 3, "repeated int64"), ("label_filename", 4, "string")],
    "ModelDynamicBatching": [("preferred_batch_size", 1, "repeated int32"),
                             ("max_queue_delay_microseconds", 2, "uint64")],
    "ModelInstanceGroup": [("name", 1, "string"), ("count", 2, "int32"),
                           ("kind", 4, ".inference.Kind")],
    "ModelConfig": [("name", 1, "string"), ("platform", 2, "string"), ("backend", 17, "string"),
                    ("max_batch_size", 4, "int32"), ("input", 5, "repeated .inference.ModelInput"),
                    ("output", 6, "repeated .inference.ModelOutput"),
                    ("instance_group", 7, "repeated .inference.ModelInstanceGroup"),
                    ("dynamic_batching", 11, ".inference.ModelDynamicBatching")],
}  # fmt: skip
_SCALARS = {"string": _F.TYPE_STRING, "int64": _F.TYPE_INT64, "int32": _F.TYPE_INT32,
            "uint64": _F.TYPE_UINT64}  # fmt: skip


def _model_config_class():
    """Triton's ModelConfig (the fields deeptoolbox writes) as a protobuf message class."""
    proto = descriptor_pb2.FileDescriptorProto(name="triton_subset.proto", package="inference",
                                               syntax="proto3")  # fmt: skip
    data_type = proto.enum_type.add(name="DataType")
    for number, name in enumerate(_DATA_TYPES):
        data_type.value.add(name=name, number=number)
    kind = proto.enum_type.add(name="Kind")  # ModelInstanceGroup.Kind, flattened here
    for number, name in enumerate(["KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"]):
        kind.value.add(name=name, number=number)
    for message_name, fields in _MESSAGES.items():
        message = proto.message_type.add(name=message_name)
        for field_name, number, spec in fields:
            repeated, _, type_name = spec.rpartition(" ")
            field = message.field.add(name=field_name, number=number)
            field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
            if type_name in _SCALARS:
                field.type = _SCALARS[type_name]
            else:
                is_enum = type_name in (".inference.DataType", ".inference.Kind")
                field.type = _F.TYPE_ENUM if is_enum else _F.TYPE_MESSAGE
                field.type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


MODEL_CONFIG = _model_config_class()
ONNX_TO_TRITON = {onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.INT64: "TYPE_INT64"}


def _parse(path):
    config = MODEL_CONFIG()
    text_format.Parse(path.read_text(), config)  # unknown fields or enum names raise
    return config


def _dims(value):
    return [
        d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim
    ]


def _check_against_onnx(config, model_path):
    graph = onnx.load(str(model_path)).graph
    for entries, values in ((config.input, graph.input), (config.output, graph.output)):
        assert [e.name for e in entries] == [v.name for v in values]
        for entry, value in zip(entries, values, strict=True):
            data_type = MODEL_CONFIG.DESCRIPTOR.file.enum_types_by_name["DataType"]
            assert (
                data_type.values_by_number[entry.data_type].name
                == ONNX_TO_TRITON[value.type.tensor_type.elem_type]
            )
            dims = _dims(value)
            assert dims[0] == -1  # the batch axis is free, and left to Triton
            assert list(entry.dims) == dims[1:]


def test_repository_layout_and_config_match_the_onnx_model(tmp_path):
    torch.manual_seed(0)
    net = Network([L.ImageInput((1, 8, 8)), L.Conv2d(4, 3, padding=1), L.ReLU(), L.Flatten(),
                   L.Dense(3), L.Softmax()], classes=["a", "b", "c"], name="digits")  # fmt: skip
    folder = export(net, tmp_path, format="triton", max_batch_size=16, max_wait_ms=2.5)
    assert folder == tmp_path / "digits"
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert files == ["digits", "digits/1", "digits/1/model.onnx", "digits/config.pbtxt",
                     "digits/labels.txt", "digits/metadata.json"]  # fmt: skip
    config = _parse(folder / "config.pbtxt")
    assert config.name == "digits" and config.backend == "onnxruntime"
    assert config.max_batch_size == 16
    assert config.dynamic_batching.max_queue_delay_microseconds == 2500
    _check_against_onnx(config, folder / "1" / "model.onnx")
    assert list(config.input[0].dims) == [1, 8, 8] and list(config.output[0].dims) == [3]
    assert config.output[0].label_filename == "labels.txt"
    assert (folder / "labels.txt").read_text().splitlines() == ["a", "b", "c"]
    assert json.loads((folder / "metadata.json").read_text())["classes"] == ["a", "b", "c"]
    session = onnxruntime.InferenceSession(str(folder / "1" / "model.onnx"))
    x = torch.rand(4, 1, 8, 8)
    (got,) = session.run(None, {config.input[0].name: x.numpy()})
    np.testing.assert_allclose(got, net.eval()(x).detach().numpy(), atol=1e-5)


def test_several_inputs_and_a_free_length(tmp_path):
    net = Network(name="two_inputs")
    net.add_layers([L.SequenceInput(3, name="signal"), L.LSTM(4, output_mode="last", name="lstm"),
                    L.Concatenation(name="join"), L.Dense(2, name="head")])  # fmt: skip
    net.add_layers(L.FeatureInput(5, name="extra")).connect("extra", "join/in2")
    folder = export(net, tmp_path / "repository", format="triton")
    config = _parse(folder / "config.pbtxt")
    _check_against_onnx(config, folder / "1" / "model.onnx")
    assert [e.name for e in config.input] == ["signal", "extra"]
    assert list(config.input[0].dims) == [-1, 3]  # free time axis
    assert not config.output[0].label_filename  # no classes, no labels file
    assert not (folder / "labels.txt").exists()


def test_a_new_version_keeps_the_others_and_other_models(tmp_path):
    net = Network([L.FeatureInput(4), L.Dense(2)], name="tabular")
    (tmp_path / "other_model" / "1").mkdir(parents=True)
    export(net, tmp_path, format="triton")
    folder = export(net, tmp_path, format="triton", version=2)
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["1", "2"]
    assert (folder / "1" / "model.onnx").exists() and (folder / "2" / "model.onnx").exists()
    assert (tmp_path / "other_model" / "1").is_dir()
    assert json.loads((folder / "metadata.json").read_text())["model_version"] == 2


def test_bad_names_and_a_foreign_folder_are_refused(tmp_path):
    net = Network([L.FeatureInput(4), L.Dense(2)])
    with pytest.raises(OptionError, match="Triton model name"):
        export(net, tmp_path, format="triton", name="../escape")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(OptionError, match="not an earlier export"):
        export(net, tmp_path, format="triton", name="mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(OptionError, match="max_wait_ms"):
        export(net, tmp_path, format="triton", max_wait_ms=-1)
