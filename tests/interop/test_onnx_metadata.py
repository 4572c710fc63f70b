"""export_onnx -> import_onnx keeps layer names, classes, the network name and BatchNorm layers,
so Grad-CAM and freezing by layer name work on the imported network."""

import json

import onnx
import pytest
import torch

import deeptoolbox as dtb
from deeptoolbox import layers as L
from deeptoolbox.explain import gradcam
from deeptoolbox.hub import freeze


def cnn():
    torch.manual_seed(0)
    net = dtb.Network(
        [
            L.ImageInput((3, 8, 8), name="img"),
            L.Conv2d(4, 3, padding=1, name="conv1"),
            L.BatchNorm(name="bn1"),
            L.ReLU(name="relu1"),
            L.Conv2d(5, 3, padding=1, name="conv2"),
            L.ReLU(name="relu2"),
            L.GlobalAvgPool(name="gap"),
            L.Dense(3, name="fc"),
            L.Softmax(name="prob"),
        ],
        classes=["cat", "dog", "owl"],
        name="pets",
    )
    net.train()
    for _ in range(3):  # BatchNorm statistics away from their defaults
        net(torch.randn(8, 3, 8, 8) * 2 + 1)
    return net.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The network and its files, exported once: {fold_batchnorm: path}."""
    net, folder = cnn(), tmp_path_factory.mktemp("onnx")
    paths = {fold: dtb.export_onnx(net, folder / f"pets-{fold}.onnx", fold_batchnorm=fold)
             for fold in (True, False)}  # fmt: skip
    return net, paths


def nodes(path):
    return [(n.name, n.op_type) for n in onnx.load(str(path)).graph.node]


@pytest.mark.parametrize("fold", [True, False])
def test_layer_names_classes_and_name_round_trip(exported, fold):
    net, path = exported[0], exported[1][fold]
    names = [name for name, _ in nodes(path)]
    assert {"conv1", "relu1", "conv2", "relu2", "gap", "fc", "prob"} <= set(names)
    assert ("bn1" in names) is not fold
    again = dtb.import_onnx(path)
    assert again.name == "pets" and again.classes == ["cat", "dog", "owl"]
    assert again.layer_names == net.layer_names
    assert [type(again.layer(n)).__name__ for n in net.layer_names] == [
        type(net.layer(n)).__name__ for n in net.layer_names
    ]
    x = torch.randn(4, 3, 8, 8)
    torch.testing.assert_close(again(x), net(x), atol=1e-5, rtol=1e-5)


def test_unfolded_batchnorm_keeps_its_statistics(exported):
    net, path = exported[0], exported[1][False]
    assert ("bn1", "BatchNormalization") in nodes(path)
    imported = dtb.import_onnx(path).layer("bn1")
    for key in ("running_mean", "running_var", "weight", "bias"):
        torch.testing.assert_close(getattr(imported, key), getattr(net.layer("bn1"), key))


def test_folded_batchnorm_is_recorded_and_comes_back_as_a_pass_through(exported):
    net, path = exported[0], exported[1][True]
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props["deeptoolbox.folded_batchnorm"]) == {"bn1": "conv1"}
    assert props["deeptoolbox.network"] == "pets"
    again = dtb.import_onnx(path)
    x = torch.randn(3, 3, 8, 8)
    # the folded convolution computes what conv1 -> bn1 computed
    taken = []
    for model in (net, again):
        hook = model.layer("bn1").register_forward_hook(lambda m, i, o: taken.append(o))
        model(x)
        hook.remove()
    torch.testing.assert_close(taken[1], taken[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("fold", [True, False])
def test_gradcam_and_freeze_by_layer_name_after_a_round_trip(exported, fold):
    net, again = exported[0], dtb.import_onnx(exported[1][fold])
    x = torch.randn(2, 3, 8, 8)
    for layer in ("bn1", "relu2"):
        torch.testing.assert_close(
            gradcam(again, x, target="dog", layer=layer),
            gradcam(net, x, target="dog", layer=layer),
            atol=1e-5,
            rtol=1e-4,
        )
    freeze(again, up_to="relu1")
    assert not again.layer("conv1").weight.requires_grad
    assert not again.layer("bn1").weight.requires_grad
    assert again.layer("conv2").weight.requires_grad


def test_name_given_to_import_wins(exported):
    assert dtb.import_onnx(exported[1][True], name="mine").name == "mine"
