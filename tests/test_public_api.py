import importlib
import inspect

import pytest

import deeptoolbox

PACKAGES = [
    "deeptoolbox",
    "deeptoolbox.layers",
    "deeptoolbox.network",
    "deeptoolbox.errors",
    "deeptoolbox.data",
    "deeptoolbox.datasets",
    "deeptoolbox.training",
    "deeptoolbox.interop",
    "deeptoolbox.hub",
    "deeptoolbox.explain",
    "deeptoolbox.robustness",
    "deeptoolbox.compress",
    "deeptoolbox.deploy",
    "deeptoolbox.experiments",
    "deeptoolbox.simulate",
    "deeptoolbox.apps",
    # data quality and label errors (issue 24)
    "deeptoolbox.quality",
    # EEG-style signal classification (issue 19 item 3)
    "deeptoolbox.signals",
]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_resolves_and_is_documented(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        obj = getattr(module, name)
        if callable(obj) and not name.startswith("_"):
            assert obj.__doc__ and obj.__doc__.strip(), f"{package}.{name} has no docstring"


@pytest.mark.parametrize("package", PACKAGES)
def test_no_private_names_exported(package):
    module = importlib.import_module(package)
    assert not [n for n in module.__all__ if n.startswith("_") and n != "__version__"]


def _has_example(obj) -> bool:
    doc = obj.__doc__ or ""
    return "Example" in doc or ">>>" in doc


def test_public_classes_functions_and_modules_have_examples():
    """Constants (tuples of names, ``__version__``) and type aliases need no example."""
    missing = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            documentable = inspect.isclass(obj) or inspect.isroutine(obj) or inspect.ismodule(obj)
            if documentable and not _has_example(obj):
                missing.append(f"{package}.{name}")
    assert missing == []


KEY_NAMES = {  # names users reach for first, per package (a removal is a breaking change)
    "deeptoolbox.training": {
        "train", "TrainingOptions", "TrainingResult", "evaluate", "confusion_chart",
        "train_gan", "TrainingProgressMonitor", "TrainingError", "launch",
    },
}  # fmt: skip


@pytest.mark.parametrize("package", sorted(KEY_NAMES))
def test_key_names_are_exported(package):
    module = importlib.import_module(package)
    assert KEY_NAMES[package] <= set(module.__all__)


def test_errors_reached_through_a_subpackage_are_the_errors_module_classes():
    import deeptoolbox.errors as errors

    exported = {}
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) and issubclass(obj, BaseException):
                exported[f"{package}.{name}"] = obj
                assert obj is getattr(errors, name, None), f"{package}.{name}"
                assert name in errors.__all__, f"{name} is public in {package}"
    assert exported["deeptoolbox.deploy.CodegenError"] is errors.CodegenError
    assert exported["deeptoolbox.hub.MissingDependencyError"] is errors.MissingDependencyError
    assert exported["deeptoolbox.compress.MissingDependencyError"] is errors.MissingDependencyError


def test_version_matches_package_metadata():
    from importlib.metadata import version

    assert version("deeptoolbox") == deeptoolbox.__version__


def test_import_needs_only_the_core_dependencies():
    import subprocess
    import sys

    optional = ["h5py", "onnx", "onnxruntime", "onnxscript", "captum", "torchvision", "sklearn",
                "scipy", "pyarrow", "matplotlib", "keras", "fsspec", "PIL", "torchmetrics",
                "skimage", "optuna", "sqlalchemy", "pandas", "fastapi", "starlette", "uvicorn",
                "prometheus_client", "httpx", "multipart", "executorch"]  # fmt: skip
    code = (
        "import sys\n"
        f"for name in {optional!r}:\n"
        "    sys.modules[name] = None  # importing it now raises ImportError\n"
        "import deeptoolbox\n"
        "print(deeptoolbox.__version__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
