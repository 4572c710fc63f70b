import pytest

import deeptoolbox
from deeptoolbox.layers._base import _REGISTRY

deeptoolbox._load_toolbox()  # every subpackage's layer types are in the registry saved below


@pytest.fixture(autouse=True)
def _restore_layer_registry():
    """Layers registered by one test (or docs example) must not leak into the next."""
    saved = dict(_REGISTRY)
    yield
    _REGISTRY.clear()
    _REGISTRY.update(saved)
