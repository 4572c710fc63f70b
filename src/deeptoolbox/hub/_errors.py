"""Errors raised by the model hub, each also a built-in exception plain Python code expects."""

from __future__ import annotations

from deeptoolbox.errors import DeepToolboxError, OptionError

__all__ = ["UnknownModelError", "WeightsError", "ChecksumError", "MissingDependencyError"]


class UnknownModelError(OptionError, KeyError):
    """A model name is not in the registry (nor a ``timm:`` / ``hf:`` name).

    Example:
        >>> issubclass(UnknownModelError, KeyError)
        True
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsError(DeepToolboxError, OSError):
    """Weights cannot be found, fetched or loaded: a file missing from the cache while offline,
    a failed download, or a file that does not fit the architecture.

    Example:
        >>> issubclass(WeightsError, OSError)
        True
    """


class ChecksumError(WeightsError):
    """A downloaded weights file does not have the SHA-256 digest its source publishes.

    Example:
        >>> issubclass(ChecksumError, WeightsError)
        True
    """


class MissingDependencyError(DeepToolboxError, ImportError):
    """An optional package (timm, transformers, huggingface_hub) is needed but not installed.

    Example:
        >>> issubclass(MissingDependencyError, ImportError)
        True
    """
