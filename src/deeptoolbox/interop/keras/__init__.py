"""Keras import and export (``.keras`` and legacy ``.h5``, read without Keras). The same names
are in :mod:`deeptoolbox.interop`.

Example:
    >>> from deeptoolbox.interop.keras import supported_keras_layers
    >>> "Dense" in supported_keras_layers()
    True
"""

from deeptoolbox.interop.keras._export import export_keras as export_keras
from deeptoolbox.interop.keras._import import import_keras as import_keras
from deeptoolbox.interop.keras._layers import supported_keras_layers as supported_keras_layers
from deeptoolbox.interop.keras._placeholder import KerasPlaceholder as KerasPlaceholder

__all__ = ["import_keras", "export_keras", "supported_keras_layers", "KerasPlaceholder"]
