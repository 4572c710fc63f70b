"""The robustness package's public surface: every name resolves, is documented, has an example."""

import deeptoolbox.robustness as robustness
from deeptoolbox.errors import DeepToolboxError


def test_public_names_are_documented_with_examples():
    missing = []
    for name in robustness.__all__:
        obj = getattr(robustness, name)
        doc = obj.__doc__ or ""
        if not doc.strip() or (">>>" not in doc and "Example" not in doc):
            missing.append(name)
    assert missing == []
    assert not [n for n in robustness.__all__ if n.startswith("_")]


def test_errors_belong_to_the_toolbox_hierarchy():
    assert issubclass(robustness.UnsupportedLayerError, DeepToolboxError)
    assert issubclass(robustness.VnnlibError, DeepToolboxError)
    assert issubclass(robustness.VnnlibError, ValueError)
