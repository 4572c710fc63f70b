"""``require``: import an optional package of a compression backend, or say how to install it."""

from __future__ import annotations

from deeptoolbox.errors import MissingDependencyError

__all__ = ["require"]


def require(module: str, package: str, purpose: str, extra: str = "compress"):
    """Import ``module`` or raise MissingDependencyError naming the package and the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependencyError(
            f"{purpose} needs the package '{package}', which is not installed ({err}). "
            f'Install it with: pip install "deeptoolbox[{extra}]" (or pip install {package}).'
        ) from err
