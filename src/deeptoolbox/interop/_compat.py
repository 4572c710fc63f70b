"""Names kept for one release after their layers moved or merged into others."""

from __future__ import annotations

import warnings

from deeptoolbox.layers._pool import GlobalAvgPool


def MaskedGlobalAvgPool(*, name: str | None = None) -> GlobalAvgPool:  # noqa: N802 - old class
    """Deprecated: use ``GlobalAvgPool(has_padding_mask=True)``, which this returns.

    The average over the real steps of sequences (ports ``in`` and ``mask``). Networks saved
    with a ``MaskedGlobalAvgPool`` layer load as that ``GlobalAvgPool``.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore", DeprecationWarning)
        ...     layer = MaskedGlobalAvgPool()
        >>> layer
        GlobalAvgPool(has_padding_mask=True)
    """
    warnings.warn(
        "MaskedGlobalAvgPool is deprecated; use deeptoolbox.layers.GlobalAvgPool("
        "has_padding_mask=True) (same layer).",
        DeprecationWarning,
        stacklevel=2,
    )
    return GlobalAvgPool(has_padding_mask=True, name=name)
