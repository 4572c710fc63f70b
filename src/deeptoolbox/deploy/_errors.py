"""Errors raised by deployment, each also a built-in exception plain Python code expects."""

from __future__ import annotations

from deeptoolbox.errors import DeepToolboxError

__all__ = ["CodegenError", "CompilerError"]


class CodegenError(DeepToolboxError, ValueError):
    """A network cannot be turned into C: unsupported layers, missing statistics or ranges.

    The message lists every layer involved, what was found and what is supported.

    Example:
        >>> issubclass(CodegenError, ValueError)
        True
    """


class CompilerError(DeepToolboxError, RuntimeError):
    """Generated C code could not be compiled: no C compiler was found, or it failed.

    Example:
        >>> issubclass(CompilerError, RuntimeError)
        True
    """
