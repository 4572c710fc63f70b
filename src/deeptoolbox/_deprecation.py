"""Renamed arguments that keep working for one release, with a DeprecationWarning.

One family shares one call shape (see shared/STYLE.md); when an argument is renamed to fit it,
the old name (or the old position) keeps working through :func:`renamed_arguments`, which
warns with the new name.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from deeptoolbox.errors import OptionError

F = TypeVar("F", bound=Callable[..., Any])


def renamed_arguments(
    renamed: dict[str, str] | None = None, *, positional: tuple[str, ...] = ()
) -> Callable[[F], F]:
    """Accept old argument names (``renamed``: old -> new) and old positions, with a warning.

    ``positional`` names, in order, the keyword-only parameters that used to be accepted by
    position after the function's positional ones. The wrapped function keeps its signature
    (``inspect.signature`` shows only the new names).

    Example:
        >>> @renamed_arguments({"samples": "num_samples"})
        ... def f(x, *, num_samples=1):
        ...     return x * num_samples
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     f(2, samples=3)
        6
        >>> str(caught[0].message)
        'f: `samples` is deprecated; use `num_samples` (same meaning).'
    """
    renamed = dict(renamed or {})

    def decorate(function: F) -> F:
        parameters = inspect.signature(function).parameters.values()
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        count = sum(p.kind in kinds for p in parameters)
        where = function.__name__

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if len(args) > count and positional:
                args, extra = args[:count], args[count:]
                if len(extra) > len(positional):
                    raise TypeError(
                        f"{where}() takes at most {count + len(positional)} positional "
                        f"arguments ({count + len(extra)} given)"
                    )
                for name, value in zip(positional, extra, strict=False):
                    _warn(f"{where}: passing `{name}` by position is deprecated; pass {name}=...")
                    _put(where, kwargs, name, value, name)
            for old, new in renamed.items():
                if old in kwargs:
                    _warn(f"{where}: `{old}` is deprecated; use `{new}` (same meaning).")
                    _put(where, kwargs, new, kwargs.pop(old), old)
            return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _warn(message: str) -> None:
    warnings.warn(message, DeprecationWarning, stacklevel=3)  # the caller of the wrapper


def _put(where: str, kwargs: dict[str, Any], name: str, value: Any, given_as: str) -> None:
    if name in kwargs:
        raise OptionError(
            f"{where}: `{name}` was given twice (also as `{given_as}`, its deprecated name or "
            f"position). Received both; pass only {name}=..."
        )
    kwargs[name] = value
