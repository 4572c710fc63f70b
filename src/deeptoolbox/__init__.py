"""deeptoolbox: a deep learning toolbox for engineers, on PyTorch.

Subpackages: ``layers``, ``network``, ``data``, ``datasets``, ``training``, ``interop``,
``hub``, ``explain``, ``robustness``, ``compress``, ``deploy``, ``experiments``, ``simulate``. The most used
functions are also here.

Example:
    >>> import torch
    >>> import deeptoolbox as dtb
    >>> from deeptoolbox import layers as L
    >>> net = dtb.Network([L.FeatureInput(4), L.Dense(3), L.Softmax()], classes=["a", "b", "c"])
    >>> labels, scores = dtb.classify(net, torch.randn(2, 4))
    >>> len(labels)
    2
"""

from deeptoolbox._version import __version__ as __version__

# Public names load on first use (PEP 562), so `import deeptoolbox` and the command line
# start without importing torch. A subpackage loads when first used; the first function or
# class used from here loads the whole toolbox, as an eager import did.
_SUBPACKAGES = (
    "compress", "data", "datasets", "deploy", "errors", "experiments", "explain", "hub", "interop",
    "layers", "robustness", "simulate", "training",
)  # fmt: skip
_NAMES = {
    "ReadLimits": "deeptoolbox._limits",
    "list_pretrained": "deeptoolbox.hub",
    "pretrained": "deeptoolbox.hub",
    "best_device": "deeptoolbox.inference",
    "classify": "deeptoolbox.inference",
    "evaluate": "deeptoolbox.inference",
    "predict": "deeptoolbox.inference",
    "export_keras": "deeptoolbox.interop",
    "export_onnx": "deeptoolbox.interop",
    "export_pytorch": "deeptoolbox.interop",
    "from_torch": "deeptoolbox.interop",
    "import_keras": "deeptoolbox.interop",
    "import_onnx": "deeptoolbox.interop",
    "import_pytorch": "deeptoolbox.interop",
    "register_layer": "deeptoolbox.layers",
    "Analysis": "deeptoolbox.network",
    "Network": "deeptoolbox.network",
    "analyze": "deeptoolbox.network",
    "load": "deeptoolbox.network",
    "plot_network": "deeptoolbox.network",
    "resnet_network": "deeptoolbox.network",
    "save": "deeptoolbox.network",
    "to_python": "deeptoolbox.network",
    "GanOptions": "deeptoolbox.training",
    "TrainingOptions": "deeptoolbox.training",
    "TrainingProgressMonitor": "deeptoolbox.training",
    "TrainingResult": "deeptoolbox.training",
    "confusion_chart": "deeptoolbox.training",
    "train": "deeptoolbox.training",
    "train_gan": "deeptoolbox.training",
}


_loaded = False


def _load_toolbox() -> None:
    """Import every subpackage and bind the public names here (what an eager import did).

    Runs once, on first use of a public function or class; the layer registry calls it too
    before it reports an unknown type, so layer types defined in any subpackage are found.
    """
    global _loaded
    if _loaded:
        return
    _loaded = True  # set first: subpackages import `from deeptoolbox import layers` meanwhile
    import importlib

    try:
        for name in _SUBPACKAGES:
            globals()[name] = importlib.import_module(f"deeptoolbox.{name}")
        for name, module in _NAMES.items():
            globals()[name] = getattr(importlib.import_module(module), name)
    except BaseException:
        _loaded = False
        raise


def __getattr__(name: str):
    import importlib

    if name in _NAMES:
        _load_toolbox()
        return globals()[name]
    if not name.startswith("_"):  # a subpackage or module (network, inference...): only it,
        try:  # as it may be importing another one right now
            return importlib.import_module(f"deeptoolbox.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"deeptoolbox.{name}":
                raise
    raise AttributeError(f"module 'deeptoolbox' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "__version__",
    # subpackages
    "errors", "layers", "data", "datasets", "training", "interop", "hub", "explain", "robustness",
    "compress", "deploy", "experiments", "simulate",
    # design
    "Network", "Analysis", "analyze", "save", "load", "to_python", "plot_network",
    "register_layer", "resnet_network",
    # inference
    "predict", "classify", "best_device",
    # training
    "train", "TrainingOptions", "TrainingResult", "TrainingProgressMonitor", "evaluate",
    "confusion_chart", "train_gan", "GanOptions",
    # interoperability
    "export_onnx", "import_onnx", "from_torch", "import_pytorch", "export_pytorch",
    "import_keras", "export_keras",
    # pretrained models
    "pretrained", "list_pretrained",
    # files from untrusted sources
    "ReadLimits",
]  # fmt: skip
