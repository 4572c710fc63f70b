"""keras.applications models: built by Keras (weights=None, perturbed random weights, the
smallest input each allows), saved to .keras and .h5, imported without Keras and compared with
Keras's own predictions; the imported networks exported back with export_keras and loaded by
Keras. One model per application is built for the whole module (module-scoped fixtures).
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest
import torch

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported
keras = pytest.importorskip("keras")

from deeptoolbox import layers as L  # noqa: E402
from deeptoolbox.interop.keras._export import export_keras  # noqa: E402
from deeptoolbox.interop.keras._import import import_keras  # noqa: E402

ATOL, RTOL = 1e-4, 1e-3
CLASSES = 5
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),  # Keras's legacy-.h5 warning
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

# name: (smallest input size, input range, an .h5 copy too). Applications with their own
# preprocessing layers (MobileNetV3, EfficientNet, ConvNeXt) take pixels in [0, 255].
APPLICATIONS = {
    "MobileNet": (32, 1.0, True),
    "MobileNetV2": (32, 1.0, True),
    "MobileNetV3Small": (32, 255.0, True),
    "MobileNetV3Large": (32, 255.0, False),
    "EfficientNetB0": (32, 255.0, True),
    "EfficientNetV2B0": (32, 255.0, False),
    "ResNet50": (32, 1.0, True),
    "ResNet50V2": (32, 1.0, False),
    "DenseNet121": (32, 1.0, False),
    "InceptionV3": (75, 1.0, True),
    "Xception": (71, 1.0, False),
    "NASNetMobile": (32, 1.0, False),
    "ConvNeXtTiny": (32, 255.0, True),
    "VGG16": (32, 1.0, True),
}


@contextlib.contextmanager
def _nasnet_on_torch():
    """Keras refuses NASNet on its torch backend ("an outstanding bug"); the model builds and
    predicts there all the same, and matches the import, so the check is lifted here."""
    from keras.src.applications import nasnet

    real = nasnet.backend
    fake = type("Backend", (), {k: getattr(real, k) for k in dir(real) if not k.startswith("__")})
    fake.backend = staticmethod(lambda: "tensorflow")
    nasnet.backend = fake
    try:
        yield
    finally:
        nasnet.backend = real


def _perturb(model, seed: int) -> None:
    """Random weights that exercise every parameter: batch-norm statistics, biases, scales."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        value = np.asarray(variable.numpy())
        if not np.issubdtype(value.dtype, np.floating):
            continue
        if "variance" in variable.path:
            new = rng.uniform(0.5, 1.5, value.shape)
        elif value.ndim <= 1:  # biases, scales, means
            new = value * rng.uniform(0.8, 1.2, value.shape) + rng.normal(0, 0.1, value.shape)
        else:
            new = value * rng.uniform(0.9, 1.1, value.shape)
        variable.assign(new.astype(value.dtype))


def _build(name: str, size: int):
    build = getattr(keras.applications, name)
    options = {"weights": None, "input_shape": (size, size, 3), "classes": CLASSES}
    context = _nasnet_on_torch() if name == "NASNetMobile" else contextlib.nullcontext()
    with context:
        return build(classifier_activation=None, **options)


# `make test` builds one application of each layer family (depthwise and ReLU6, hard-swish
# and squeeze-and-excitation with folded Rescaling, separable convolutions and cropping,
# LayerScale and LayerNorm on images): the whole list takes minutes. `make
# test-keras-applications` (DTB_KERAS_APPLICATIONS=all) runs every one.
EVERY = os.environ.get("DTB_KERAS_APPLICATIONS") == "all"
RUN = list(APPLICATIONS) if EVERY else ["MobileNetV2", "MobileNetV3Small", "NASNetMobile",
                                        "ConvNeXtTiny"]  # fmt: skip


@pytest.fixture(scope="module", params=RUN)
def application(request, tmp_path_factory):
    """A perturbed Keras model, its .keras (and .h5) files, an input and Keras's output."""
    name = request.param
    size, scale, h5 = APPLICATIONS[name]
    keras.utils.set_random_seed(0)
    model = _build(name, size)
    _perturb(model, seed=1)
    folder = tmp_path_factory.mktemp(name)
    paths = {".keras": folder / f"{name}.keras"}
    if h5:
        paths[".h5"] = folder / f"{name}.h5"
    for path in paths.values():
        model.save(path)
    x = (np.random.default_rng(2).random((1, size, size, 3)) * scale).astype(np.float32)
    expected = np.asarray(model.predict(x, verbose=0))
    assert expected.shape == (1, CLASSES) and np.std(expected) > 1e-2  # a non-trivial output
    return {"name": name, "paths": paths, "x": x, "expected": expected, "folder": folder}


@pytest.fixture(scope="module")
def imported(application):
    return import_keras(application["paths"][".keras"])


def _predict(net, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.as_tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()


def test_application_imports_from_keras_file_with_keras_predictions(application, imported):
    got = _predict(imported, application["x"])
    np.testing.assert_allclose(got, application["expected"], atol=ATOL, rtol=RTOL)


def test_application_imports_from_h5_file_with_keras_predictions(application):
    if ".h5" not in application["paths"]:
        pytest.skip("this application is checked from .keras only, to keep the module fast")
    net = import_keras(application["paths"][".h5"])
    got = _predict(net, application["x"])
    np.testing.assert_allclose(got, application["expected"], atol=ATOL, rtol=RTOL)


def test_imported_application_exports_back_and_keras_predicts_the_same(application, imported):
    path = export_keras(imported, application["folder"] / "exported.keras", verify=False)
    model = keras.saving.load_model(path)
    got = np.asarray(model.predict(application["x"], verbose=0))
    np.testing.assert_allclose(got, application["expected"], atol=ATOL, rtol=RTOL)


def test_preprocessing_of_applications_folds_into_the_input_layer(application, imported):
    """Rescaling / Normalization right after the input: the input layer's normalization."""
    layer = imported.layer(imported.input_names[0])
    assert isinstance(layer, L.ImageInput)
    if application["name"].startswith(("MobileNetV3", "EfficientNet", "ConvNeXt")):
        assert layer.normalization == "zscore"
    else:
        assert layer.normalization == "none"
    scales = [m for m in imported.layers.values() if type(m).__name__ == "ScaleOffset"]
    assert all(m.trainable for m in scales)  # ConvNeXt's LayerScale only: nothing left over
