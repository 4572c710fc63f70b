"""Bundled and synthetic data sets, generated locally (nothing is downloaded).

Example:
    >>> from deeptoolbox import datasets
    >>> images, labels = datasets.digits()
    >>> images.shape
    (1797, 1, 8, 8)
"""

from deeptoolbox.datasets._bundled import digits as digits
from deeptoolbox.datasets._bundled import write_image_folder as write_image_folder
from deeptoolbox.datasets._synthetic import ShapesData as ShapesData
from deeptoolbox.datasets._synthetic import sensor_system as sensor_system
from deeptoolbox.datasets._synthetic import shapes as shapes
from deeptoolbox.datasets._synthetic import signals as signals

# --- object detection (issue 19 item 1) ---
# isort: split
from deeptoolbox.datasets._detection_shapes import DetectionShapesData as DetectionShapesData
from deeptoolbox.datasets._detection_shapes import detection_shapes as detection_shapes

__all__ = ["digits", "write_image_folder", "shapes", "ShapesData", "signals", "sensor_system"]
__all__ += ["detection_shapes", "DetectionShapesData"]  # object detection (issue 19 item 1)
