"""Integer arithmetic of the generated int8 C code, in numpy: shared by the int8 reference
of feed-forward layers (``_reference_int8``) and of recurrent cells
(``_reference_int8_recurrent``), which ``_reference_int8`` calls.

Example:
    >>> rshift_round([5, -5], 1).tolist(), clamp([300, -300]).tolist()
    ([3, -3], [127, -128])
"""

from __future__ import annotations

import numpy as np


def rshift_round(v, s):
    """round(v / 2**s), halves away from zero (int64)."""
    v = np.asarray(v, dtype=np.int64)
    s = np.asarray(s, dtype=np.int64)
    half = np.left_shift(np.int64(1), s - 1)
    return np.where(v >= 0, (v + half) >> s, -((half - v) >> s))


def rdiv(a, b: int):
    """Integer a / b rounded, halves away from zero (b > 0)."""
    a = np.asarray(a, dtype=np.int64)
    return np.where(a >= 0, (a + b // 2) // b, -((-a + b // 2) // b))


def clamp(v, low: int = -128, high: int = 127):
    """Saturate to [low, high] (int8 by default), as int64."""
    return np.clip(v, low, high).astype(np.int64)
