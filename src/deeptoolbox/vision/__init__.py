"""Computer vision tasks on top of the toolbox: semantic segmentation and image denoising
(task APIs over torchvision and torchmetrics).

Example:
    >>> import torch
    >>> from deeptoolbox import vision
    >>> net = vision.unet((3, 32, 32), 4, depth=2, filters=8)
    >>> vision.segment(net, torch.rand(2, 3, 32, 32)).shape
    torch.Size([2, 32, 32])
"""

# --- semantic segmentation and denoising (issue 19 items 2 and 5) ---
from deeptoolbox.vision._deeplab import DeepLabV3 as DeepLabV3
from deeptoolbox.vision._deeplab import deeplabv3 as deeplabv3
from deeptoolbox.vision._denoise import DenoisingImageDatastore as DenoisingImageDatastore
from deeptoolbox.vision._denoise import DenoisingMetrics as DenoisingMetrics
from deeptoolbox.vision._denoise import denoise_image as denoise_image
from deeptoolbox.vision._denoise import dncnn as dncnn
from deeptoolbox.vision._denoise import evaluate_denoising as evaluate_denoising
from deeptoolbox.vision._denoise import psnr as psnr
from deeptoolbox.vision._denoise import ssim as ssim
from deeptoolbox.vision._pixel_labels import IGNORE_INDEX as IGNORE_INDEX
from deeptoolbox.vision._pixel_labels import PixelLabelDatastore as PixelLabelDatastore
from deeptoolbox.vision._pixel_labels import PixelLabelImageDatastore as PixelLabelImageDatastore
from deeptoolbox.vision._pixel_labels import write_pixel_labels as write_pixel_labels
from deeptoolbox.vision._segmentation import SegmentationMetrics as SegmentationMetrics
from deeptoolbox.vision._segmentation import evaluate_segmentation as evaluate_segmentation
from deeptoolbox.vision._segmentation import label_overlay as label_overlay
from deeptoolbox.vision._segmentation import segment as segment
from deeptoolbox.vision._segmentation_augment import SegmentationAugmenter as SegmentationAugmenter
from deeptoolbox.vision._segmentation_losses import SegmentationLoss as SegmentationLoss
from deeptoolbox.vision._segmentation_losses import segmentation_loss as segmentation_loss
from deeptoolbox.vision._unet import unet as unet

# isort: split
# --- visual inspection / anomaly detection (issue 19 item 4) ---
from deeptoolbox.vision._anomaly import AnomalyDetector as AnomalyDetector
from deeptoolbox.vision._anomaly import anomaly_map as anomaly_map
from deeptoolbox.vision._anomaly import anomaly_scores as anomaly_scores
from deeptoolbox.vision._anomaly import fit_threshold as fit_threshold
from deeptoolbox.vision._anomaly import is_anomaly as is_anomaly
from deeptoolbox.vision._anomaly import train_anomaly_detector as train_anomaly_detector
from deeptoolbox.vision._anomaly_metrics import AnomalyMetrics as AnomalyMetrics
from deeptoolbox.vision._anomaly_metrics import anomaly_overlay as anomaly_overlay
from deeptoolbox.vision._anomaly_metrics import (
    evaluate_anomaly_detection as evaluate_anomaly_detection,
)
from deeptoolbox.vision._fcdd import FCDDDetector as FCDDDetector
from deeptoolbox.vision._fcdd import SyntheticAnomalies as SyntheticAnomalies
from deeptoolbox.vision._fcdd import fcdd_loss as fcdd_loss
from deeptoolbox.vision._fcdd import fcdd_network as fcdd_network
from deeptoolbox.vision._patchcore import PatchCoreDetector as PatchCoreDetector
from deeptoolbox.vision._patchcore import greedy_coreset as greedy_coreset
from deeptoolbox.vision._patchcore import nearest_neighbor_distances as nearest_neighbor_distances
from deeptoolbox.vision._patchcore import patchcore_backbone as patchcore_backbone

# --- object detection (issue 19 item 1) ---
# isort: split
from deeptoolbox.vision._boxes import BoxLabelDatastore as BoxLabelDatastore
from deeptoolbox.vision._boxes import BoxLabelImageDatastore as BoxLabelImageDatastore
from deeptoolbox.vision._boxes import detection_collate as detection_collate
from deeptoolbox.vision._detect import box_overlay as box_overlay
from deeptoolbox.vision._detect import detect as detect
from deeptoolbox.vision._detect_eval import DetectionMetrics as DetectionMetrics
from deeptoolbox.vision._detect_eval import evaluate_detection as evaluate_detection
from deeptoolbox.vision._detection_augment import DetectionAugmenter as DetectionAugmenter
from deeptoolbox.vision._detector import ObjectDetector as ObjectDetector
from deeptoolbox.vision._detector_io import load_detector as load_detector
from deeptoolbox.vision._detector_io import save_detector as save_detector
from deeptoolbox.vision._drise import drise as drise

__all__ = [
    # semantic segmentation and denoising (issue 19 items 2 and 5)
    "PixelLabelDatastore", "PixelLabelImageDatastore", "write_pixel_labels", "IGNORE_INDEX",
    "SegmentationAugmenter", "unet", "deeplabv3", "DeepLabV3",
    "segmentation_loss", "SegmentationLoss", "segment", "evaluate_segmentation",
    "SegmentationMetrics", "label_overlay",
    "dncnn", "DenoisingImageDatastore", "denoise_image", "psnr", "ssim", "evaluate_denoising",
    "DenoisingMetrics",
    # visual inspection / anomaly detection (issue 19 item 4)
    "AnomalyDetector", "PatchCoreDetector", "patchcore_backbone", "greedy_coreset",
    "nearest_neighbor_distances", "FCDDDetector", "fcdd_network", "fcdd_loss",
    "SyntheticAnomalies", "train_anomaly_detector", "anomaly_map", "anomaly_scores",
    "fit_threshold", "is_anomaly", "evaluate_anomaly_detection", "AnomalyMetrics",
    "anomaly_overlay",
]  # fmt: skip
__all__ += [  # object detection (issue 19 item 1)
    "BoxLabelDatastore", "BoxLabelImageDatastore", "detection_collate", "DetectionAugmenter",
    "ObjectDetector", "save_detector", "load_detector", "detect", "box_overlay",
    "evaluate_detection", "DetectionMetrics", "drise",
]  # fmt: skip
