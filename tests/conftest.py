import pytest

from deeptoolbox.layers._base import _REGISTRY


@pytest.fixture(autouse=True)
def _restore_layer_registry():
    """Layers registered by one test (or docs example) must not leak into the next."""
    saved = dict(_REGISTRY)
    yield
    _REGISTRY.clear()
    _REGISTRY.update(saved)
