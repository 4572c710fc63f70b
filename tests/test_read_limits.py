"""ReadLimits (issue 22 item 2): files that declare more than they hold fail fast with a
ResourceLimitError naming the file and the limit, before the reader allocates what they ask."""

import json
import time
import tracemalloc
import zipfile

import h5py
import numpy as np
import pytest
import torch

import deeptoolbox as dtb
from deeptoolbox import layers as L
from deeptoolbox._limits import json_depth
from deeptoolbox.errors import ModelImportError, OptionError, ResourceLimitError
from deeptoolbox.interop import export_keras, export_onnx, import_keras, import_onnx
from deeptoolbox.training._checkpoint import load_checkpoint

MB = 2**20


def small_net() -> dtb.Network:
    torch.manual_seed(0)
    return dtb.Network([L.FeatureInput(3, name="x"), L.Dense(4, name="fc"), L.ReLU(name="relu")])


def fails_fast(read, limit: str, where: str) -> ResourceLimitError:
    """Run ``read``: it must raise ResourceLimitError for ``limit`` naming ``where``, well
    under 100 MB of Python allocations. The time it took is printed (pytest -s)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ResourceLimitError) as info:
            read()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"{limit}: refused in {time.perf_counter() - start:.3f} s, peak {peak / MB:.1f} MB")
    assert info.value.limit == limit
    assert where in str(info.value) and f"ReadLimits({limit}=" in str(info.value)
    assert peak < 100 * MB
    return info.value


def test_a_zip_bomb_stops_inflating_at_the_ratio_limit(tmp_path):
    saved = dtb.save(small_net(), tmp_path / "net.zip")
    with zipfile.ZipFile(saved) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ("network.json", "metadata.json"):
            archive.writestr(name, members[name])
        with archive.open("weights.safetensors", "w") as member:
            for _ in range(32):  # 128 MiB of zeros in about 130 KB
                member.write(bytes(4 * MB))
    assert bomb.stat().st_size < 1 * MB
    error = fails_fast(lambda: dtb.load(bomb), "max_compression_ratio", str(bomb))
    assert error.value > 200
    # a file that is trusted loads past the limit: the members are then read whole
    with pytest.raises(dtb.errors.NetworkFileError, match="weights.safetensors"):
        dtb.load(bomb, limits=dtb.ReadLimits(max_compression_ratio=1e6))


def test_the_total_inflated_size_is_counted_on_what_comes_out(tmp_path):
    saved = dtb.save(small_net(), tmp_path / "net.zip")
    fails_fast(lambda: dtb.load(saved, limits=dtb.ReadLimits(max_uncompressed_bytes=100)),
               "max_uncompressed_bytes", str(saved))  # fmt: skip
    with zipfile.ZipFile(saved, "a") as archive:
        for i in range(20):
            archive.writestr(f"extra/{i}", b"")
    fails_fast(lambda: dtb.load(saved, limits=dtb.ReadLimits(max_members=10)),
               "max_members", str(saved))  # fmt: skip
    assert dtb.load(saved).layer_names == ["x", "fc", "relu"]  # extra members are ignored


def _forged_weights(tmp_path, shape, data: bytes = b"\0\0\0\0"):
    folder = dtb.save(small_net(), tmp_path / "net")
    header = json.dumps({"fc.weight": {"dtype": "F32", "shape": shape,
                                       "data_offsets": [0, len(data)]}}).encode()  # fmt: skip
    (folder / "weights.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + data)
    return folder


def test_a_safetensors_header_declaring_a_huge_tensor_is_refused_before_allocation(tmp_path):
    folder = _forged_weights(tmp_path, [10**6, 10**6])  # 10^12 elements in 4 bytes
    error = fails_fast(lambda: dtb.load(folder), "max_tensor_elements", "weights.safetensors")
    assert error.value == 10**12 and "fc.weight" in str(error)
    smaller = _forged_weights(tmp_path / "b", [1000, 1000])  # under the count, over the file
    with pytest.raises(ResourceLimitError, match=r"more than the 4 bytes .* truncated or forged"):
        dtb.load(smaller)


def test_deeply_nested_json_is_refused_before_it_is_parsed(tmp_path):
    folder = dtb.save(small_net(), tmp_path / "net")
    (folder / "network.json").write_bytes(b"[" * 100_000 + b"]" * 100_000)
    error = fails_fast(lambda: dtb.load(folder), "max_json_depth", "network.json")
    assert error.value == 100_000
    assert json_depth(b'{"a": "[[[[", "b": [{"c": "\\"]"}]}') == 3


def test_the_layer_count_limit_and_limits_that_allow_a_file(tmp_path):
    folder = dtb.save(small_net(), tmp_path / "net")
    with pytest.raises(
        ResourceLimitError, match="number of layers is 3, over the limit max_nodes=2"
    ):
        dtb.load(folder, limits=dtb.ReadLimits(max_nodes=2))
    net = dtb.load(folder, limits=dtb.ReadLimits(max_nodes=3, max_json_depth=20))
    assert torch.equal(net(torch.ones(2, 3)), small_net()(torch.ones(2, 3)))


def test_bad_limits_are_option_errors():
    with pytest.raises(OptionError, match="`max_nodes` must be a positive number. Received: 0"):
        dtb.ReadLimits(max_nodes=0)
    with pytest.raises(OptionError, match="`limits` must be a deeptoolbox.ReadLimits"):
        dtb.load("x.zip", limits={"max_nodes": 3})


def _onnx_with_nodes(path, count: int) -> None:
    """A syntactically valid ONNX file of ``count`` Relu nodes, written as protobuf bytes
    directly (building it with onnx.helper would take the memory the test is about)."""
    import onnx
    from onnx import helper

    def field(number: int, payload: bytes) -> bytes:
        return _varint(number << 3 | 2) + _varint(len(payload)) + payload

    node = helper.make_node("Relu", ["x"], ["x"]).SerializeToString()
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3]).SerializeToString()
    graph = field(1, node) * count + field(2, b"g") + field(11, x) + field(12, x)
    opset = helper.make_opsetid("", 13).SerializeToString()
    path.write_bytes(b"\x08\x08" + field(8, opset) + field(7, graph))  # ir_version 8


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def test_an_onnx_graph_of_a_million_nodes_is_refused_before_onnx_parses_it(tmp_path):
    import onnx

    path = tmp_path / "huge.onnx"
    _onnx_with_nodes(path, 10**6)
    error = fails_fast(lambda: import_onnx(path), "max_nodes", str(path))
    assert error.value == dtb.ReadLimits().max_nodes + 1  # counting stopped there
    small = tmp_path / "small.onnx"
    _onnx_with_nodes(small, 5)
    assert len(onnx.load(str(small)).graph.node) == 5  # the writer above is real ONNX
    with pytest.raises(ResourceLimitError, match="number of graph nodes is 5"):
        import_onnx(small, limits=dtb.ReadLimits(max_nodes=4))


def test_an_onnx_initializer_larger_than_its_data_is_refused(tmp_path):
    import onnx

    path = export_onnx(small_net(), tmp_path / "net.onnx")
    model = onnx.load(str(path))
    weight = next(t for t in model.graph.initializer if len(t.dims) == 2)
    weight.dims[:] = [10**5, 10**5]
    onnx.save(model, str(path))
    error = fails_fast(lambda: import_onnx(path, limits=dtb.ReadLimits(max_tensor_elements=10**9)),
                       "max_tensor_elements", str(path))  # fmt: skip
    assert weight.name in str(error)
    with pytest.raises(ResourceLimitError, match="truncated or forged"):
        import_onnx(path)  # 10^10 elements are allowed by default, but not in 48 bytes


def _with_external_weight(path, **external: str):
    """An exported ONNX file whose Dense kernel is said to live in an external data file."""
    import onnx
    from onnx import numpy_helper

    export_onnx(small_net(), path)
    model = onnx.load(str(path))
    weight = next(t for t in model.graph.initializer if len(t.dims) == 2)
    weight.CopyFrom(numpy_helper.from_array(np.zeros((4, 3), np.float32), weight.name))
    weight.ClearField("raw_data")
    weight.data_location = onnx.TensorProto.EXTERNAL
    for key, value in external.items():
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd"])
def test_onnx_external_data_may_not_point_outside_the_models_folder(tmp_path, location):

    (tmp_path / "secret.bin").write_bytes(np.ones(12, np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    path = _with_external_weight(folder / "net.onnx", location=location, offset="0", length="48")
    with pytest.raises(
        ModelImportError, match=rf"{path.name}.*external data files.*(outside|absolute)"
    ):
        import_onnx(path)


def test_a_missing_external_data_file_is_named_as_such(tmp_path):

    path = _with_external_weight(tmp_path / "net.onnx", location="weights.bin")  # never written
    with pytest.raises(
        ModelImportError, match=r"external data files, and one cannot be read.*weights.bin"
    ):
        import_onnx(path)


def test_checkpoints_are_read_within_the_limits(tmp_path):
    net = small_net()
    x, y = torch.randn(16, 3), torch.randn(16, 4)
    options = dtb.TrainingOptions(max_epochs=1, mini_batch_size=8, verbose=False,
                                  checkpoint_path=tmp_path / "ckpt")  # fmt: skip
    dtb.train(net, (x, y), "mse", options)
    checkpoint = sorted((tmp_path / "ckpt").glob("*.zip"))[-1]
    weights = load_checkpoint(checkpoint)["weights"]
    assert set(weights) == set(net.state_dict())
    fails_fast(lambda: load_checkpoint(checkpoint, limits=dtb.ReadLimits(max_uncompressed_bytes=64)),
               "max_uncompressed_bytes", str(checkpoint))  # fmt: skip


def test_a_keras_file_whose_weights_declare_more_than_they_store_is_refused(tmp_path):
    net = dtb.Network([L.FeatureInput(3, name="x"), L.Dense(4, name="fc")])
    path = export_keras(net, tmp_path / "net.keras")
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    weights = tmp_path / "weights.h5"
    weights.write_bytes(members["model.weights.h5"])
    with h5py.File(weights, "a") as h5:
        kernel = next(k for k in _datasets(h5) if h5[k].shape == (3, 4))
        del h5[kernel]
        h5.create_dataset(kernel, shape=(3, 4 * 10**8), dtype="f4", chunks=(3, 10**5))  # unwritten
    members["model.weights.h5"] = weights.read_bytes()
    forged = tmp_path / "forged.keras"
    with zipfile.ZipFile(forged, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    error = fails_fast(lambda: import_keras(forged), "max_compression_ratio", str(forged))
    assert kernel in str(error)
    deep = tmp_path / "deep.keras"
    with zipfile.ZipFile(deep, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, b"[" * 5000 + b"]" * 5000 if name == "config.json" else data)
    fails_fast(lambda: import_keras(deep), "max_json_depth", "config.json")


def _datasets(h5) -> list[str]:
    found: list[str] = []
    h5.visititems(lambda name, item: found.append(name) if isinstance(item, h5py.Dataset) else None)
    return found


def test_a_network_json_declaring_huge_layers_is_refused_before_anything_is_allocated(tmp_path):
    folder = dtb.save(small_net(), tmp_path / "net")
    description = json.loads((folder / "network.json").read_text())
    for layer in description["layers"]:
        if layer.get("config", {}).get("units") == 4:
            layer["config"]["units"] = 10**9  # 12 GB of weights in a 1 KB file
    (folder / "network.json").write_text(json.dumps(description))
    tracemalloc.start()
    try:
        with pytest.raises(dtb.errors.NetworkFileError, match=r"declares layers with 16,000,000,0"):
            dtb.load(folder)
        assert tracemalloc.get_traced_memory()[1] < 20 * MB
    finally:
        tracemalloc.stop()


def test_limits_for_every_reader_inside_a_with_block(tmp_path):
    saved = dtb.save(small_net(), tmp_path / "net.zip")
    with dtb.ReadLimits(max_nodes=2):
        with pytest.raises(ResourceLimitError, match=r"with deeptoolbox.ReadLimits\(max_nodes="):
            dtb.load(saved)
        assert dtb.load(saved, limits=dtb.ReadLimits()).layer_names  # an argument wins
    assert dtb.load(saved).layer_names == ["x", "fc", "relu"]  # the block has ended


def test_an_onnx_constant_created_from_a_shape_is_bounded_before_it_is_computed(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    shape = numpy_helper.from_array(np.array([1, 3, 10_000, 10_000], np.int64), "shape")
    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("ConstantOfShape", ["shape"], ["zeros"], name="big"),
         helper.make_node("Add", ["x", "zeros"], ["y"])],
        "g", [value("x", TensorProto.FLOAT, [1, 3, 10_000, 10_000])],
        [value("y", TensorProto.FLOAT, [1, 3, 10_000, 10_000])], [shape],
    )  # fmt: skip
    path = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    assert path.stat().st_size < 400  # a 1.2 GB constant from a few hundred bytes
    fails_fast(lambda: import_onnx(path), "max_compression_ratio", "constant node 'big'")


def test_a_checkpoint_whose_state_holds_objects_is_refused_without_unsafe_advice(tmp_path):
    import io
    from fractions import Fraction

    net = small_net()
    options = dtb.TrainingOptions(max_epochs=1, mini_batch_size=8, verbose=False,
                                  checkpoint_path=tmp_path / "ckpt")  # fmt: skip
    dtb.train(net, (torch.randn(16, 3), torch.randn(16, 4)), "mse", options)
    checkpoint = sorted((tmp_path / "ckpt").glob("*.zip"))[-1]
    with zipfile.ZipFile(checkpoint) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    stream = io.BytesIO()
    torch.save({"loop": Fraction(1, 3)}, stream)  # any class: refused by weights_only=True
    members["state.pt"] = stream.getvalue()
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(forged, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(OptionError, match="state.pt holds objects other than tensors") as info:
        load_checkpoint(forged)
    assert "weights_only" not in str(info.value) and "forged.zip" in str(info.value)


def test_a_saved_tokenizer_with_a_catastrophic_regex_is_refused(tmp_path):
    from deeptoolbox.data import Tokenizer
    from deeptoolbox.data._text import nested_repeat

    path = tmp_path / "tok.json"
    Tokenizer().fit(["a b"]).save(path)
    config = json.loads(path.read_text())
    config["pattern"] = r"(\w+)+$"  # 26 s on 40 characters, doubling with each one
    path.write_text(json.dumps(config))
    with pytest.raises(dtb.errors.DataError, match=r"tok.json.*repeats a repeated part"):
        Tokenizer.load(path)
    assert not nested_repeat(r"\w+|[^\w\s]") and not nested_repeat(r"(?:ab)+|\d{2,4}")
    assert nested_repeat(r"(a*)*") and nested_repeat(r"(?:x|(y+))+")


def test_a_compressed_mat_bomb_is_refused_while_it_inflates(tmp_path):
    import io
    import struct
    import zlib

    import scipy.io

    from deeptoolbox.data._sequence import read_signal

    stream = io.BytesIO()
    scipy.io.savemat(stream, {"x": np.ones(2)})
    packer = zlib.compressobj()
    body = b"".join(packer.compress(bytes(4 * MB)) for _ in range(64)) + packer.flush()
    path = tmp_path / "bomb.mat"  # 260 KB inflating to 256 MiB
    path.write_bytes(stream.getvalue()[:128] + struct.pack("<II", 15, len(body)) + body)
    fails_fast(lambda: read_signal(str(path)), "max_compression_ratio", "bomb.mat")


def test_on_error_skip_drops_files_over_the_limits(tmp_path):
    import struct
    import zlib

    from PIL import Image

    from deeptoolbox.data import ImageDatastore

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "good.png")
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    chunk = (
        struct.pack(">I", 13) + b"IHDR" + header + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    )
    (tmp_path / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk)
    with pytest.warns(RuntimeWarning, match="skipped 1 unreadable file"):
        store = ImageDatastore(str(tmp_path), on_error="skip")
    assert len(store) == 1 and store.files[0].endswith("good.png")
    with dtb.ReadLimits(max_image_pixels=10**11), pytest.raises(dtb.errors.DataError):
        ImageDatastore([str(tmp_path / "huge.png")])[0]  # allowed size, but no image data
