"""Errors of the compression tools."""

from __future__ import annotations

from deeptoolbox.errors import DeepToolboxError, NetworkError


class CompressionError(NetworkError):
    """A network (or a layer of it) cannot be compressed as asked.

    The message names the layers involved and why: a layer no backend can quantize, channels
    that cannot be pruned (they reach an output, a normalization over channels...), a layer
    that cannot be projected.

    Example:
        >>> from deeptoolbox.errors import NetworkError
        >>> issubclass(CompressionError, NetworkError)
        True
    """


class MissingDependencyError(DeepToolboxError, ImportError):
    """An optional package a compression backend needs is not installed (or too old).

    Example:
        >>> issubclass(MissingDependencyError, ImportError)
        True
    """


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
