import importlib

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


def test_public_functions_have_examples():
    missing = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            documented = "Example" in (obj.__doc__ or "") or ">>>" in (obj.__doc__ or "")
            if callable(obj) and name != "Shape" and not documented:
                missing.append(f"{package}.{name}")
    assert missing == []


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
