"""Files and folders the toolbox writes get the permissions open()/mkdir() would give them.

Every writer goes through deeptoolbox._atomic (temporary file or folder, then a rename). The
umask is set by each test, so the expected modes are not the machine's defaults.
"""

import os
import stat

import numpy as np
import pytest
import torch

import deeptoolbox as dtb
from deeptoolbox import layers as L
from deeptoolbox._atomic import atomic_folder, atomic_open, atomic_path


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def file_mode(umask: int) -> int:
    return 0o666 & ~umask


def folder_mode(umask: int) -> int:
    return 0o777 & ~umask


def small_net():
    torch.manual_seed(0)
    return dtb.Network(
        [
            L.ImageInput((1, 6, 6), name="img"),
            L.Conv2d(2, 3, padding=1, name="conv"),
            L.ReLU(name="relu"),
            L.Flatten(name="flat"),
            L.Dense(2, name="fc"),
            L.Softmax(name="sm"),
        ],
        classes=["a", "b"],
    )


def test_atomic_open_gives_open_permissions(tmp_path, umask):
    with atomic_open(tmp_path / "x.txt", "w") as stream:
        stream.write("x")
    with open(tmp_path / "reference.txt", "w") as stream:
        stream.write("x")
    assert mode(tmp_path / "x.txt") == file_mode(umask) == mode(tmp_path / "reference.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reference.txt", "x.txt"]


def test_replacing_a_file_keeps_its_permissions(tmp_path, umask):
    target = tmp_path / "kept.bin"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    with atomic_path(target) as temporary:
        temporary.write_bytes(b"new")
    assert target.read_bytes() == b"new" and mode(target) == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, umask):
    target = tmp_path / "kept.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_open(target) as stream:
        stream.write(b"half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["kept.bin"]


def test_atomic_folder_gives_mkdir_permissions_and_replaces_whole(tmp_path, umask):
    target = tmp_path / "saved"
    for content in ("first", "second"):
        with atomic_folder(target) as folder:
            (folder / f"{content}.txt").write_text(content)
    assert [p.name for p in target.iterdir()] == ["second.txt"]
    assert mode(target) == folder_mode(umask)
    assert mode(target / "second.txt") == file_mode(umask)
    assert [p.name for p in tmp_path.iterdir()] == ["saved"]


@pytest.mark.parametrize("name", ["net.zip", "net"])
def test_saved_network_permissions(tmp_path, umask, name):
    path = dtb.save(small_net(), tmp_path / name)
    if path.is_dir():
        assert mode(path) == folder_mode(umask)
        assert {mode(p) for p in path.iterdir()} == {file_mode(umask)}
    else:
        assert mode(path) == file_mode(umask)
    dtb.save(small_net(), path)  # replacing an earlier save keeps the modes
    assert mode(path) == (folder_mode(umask) if path.is_dir() else file_mode(umask))


def _write_exports(net, folder):
    from deeptoolbox.network import plot_network, to_python

    paths = [
        dtb.export_keras(net, folder / "net.keras"),
        dtb.export_onnx(net, folder / "net.onnx", verify=False),
        dtb.export_pytorch(net, folder / "net.pt"),
        folder / "net.py",
        folder / "net.png",
    ]
    to_python(net, folder / "net.py")
    plot_network(net, folder / "net.png")
    return paths


def test_exported_models_and_drawings_permissions(tmp_path, umask):
    paths = _write_exports(small_net(), tmp_path)
    assert {p.name: mode(p) for p in paths} == {p.name: file_mode(umask) for p in paths}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)


def test_charts_explanations_checkpoints_permissions(tmp_path, umask):
    from deeptoolbox.explain import plot_explanations
    from deeptoolbox.training import TrainingOptions

    net = small_net()
    x, y = torch.rand(8, 1, 6, 6), torch.randint(0, 2, (8,))
    options = TrainingOptions(
        max_epochs=1, mini_batch_size=4, verbose=False, checkpoint_path=str(tmp_path / "ckpt")
    )
    dtb.train(net, (x, y), "crossentropy", options).plot(tmp_path / "progress.png")
    chart = dtb.confusion_chart(["a", "b", "b"], ["a", "b", "a"], path=tmp_path / "chart.png")
    assert chart.matrix.sum() == 3
    maps = np.random.default_rng(0).random((2, 6, 6))
    plot_explanations(x[:2], {"map": maps}, path=tmp_path / "explain.png")
    written = [tmp_path / n for n in ("progress.png", "chart.png", "explain.png")]
    written += sorted((tmp_path / "ckpt").iterdir())
    assert len(written) > 3
    assert {mode(p) for p in written} == {file_mode(umask)}
    assert mode(tmp_path / "ckpt") == folder_mode(umask)


def test_deployment_exports_and_generated_c_get_ordinary_permissions(tmp_path, umask):
    from deeptoolbox import deploy

    net = small_net()
    onnx_file = deploy.export(net, tmp_path / "net.onnx", format="onnx")
    folder = deploy.export(net, tmp_path / "deployment", format="onnx", folder=True)
    deploy.generate_c(net, tmp_path / "c", verbose=False)
    assert mode(onnx_file) == file_mode(umask)
    assert mode(folder) == folder_mode(umask)
    assert mode(tmp_path / "c") == folder_mode(umask)
    assert all(mode(p) == file_mode(umask) for p in (tmp_path / "c").iterdir())
