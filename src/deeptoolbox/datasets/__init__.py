"""Bundled and synthetic data sets, generated locally (nothing is downloaded).

Example:
    >>> from deeptoolbox import datasets
    >>> images, labels = datasets.digits()
    >>> images.shape
    (1797, 1, 8, 8)
"""

from deeptoolbox.datasets._bundled import digits as digits
from deeptoolbox.datasets._bundled import write_image_folder as write_image_folder

# EEG-like recordings (issue 19 item 3)
from deeptoolbox.datasets._eeg import EEG_CHANNELS as EEG_CHANNELS
from deeptoolbox.datasets._eeg import EEGEvent as EEGEvent
from deeptoolbox.datasets._eeg import EEGRecording as EEGRecording
from deeptoolbox.datasets._eeg import eeg as eeg
from deeptoolbox.datasets._synthetic import ShapesData as ShapesData
from deeptoolbox.datasets._synthetic import sensor_system as sensor_system
from deeptoolbox.datasets._synthetic import shapes as shapes
from deeptoolbox.datasets._synthetic import signals as signals

# isort: split
# --- visual inspection data (issue 19 item 4) ---
from deeptoolbox.datasets._inspection import InspectionData as InspectionData
from deeptoolbox.datasets._inspection import inspection as inspection

# isort: split
# --- object detection (issue 19 item 1) ---
from deeptoolbox.datasets._detection_shapes import DetectionShapesData as DetectionShapesData
from deeptoolbox.datasets._detection_shapes import detection_shapes as detection_shapes

__all__ = ["digits", "write_image_folder", "shapes", "ShapesData", "signals", "sensor_system"]
# EEG-like recordings (issue 19 item 3)
__all__ += ["eeg", "EEGRecording", "EEGEvent", "EEG_CHANNELS"]
# visual inspection data (issue 19 item 4)
__all__ += ["inspection", "InspectionData"]
__all__ += ["detection_shapes", "DetectionShapesData"]  # object detection (issue 19 item 1)
