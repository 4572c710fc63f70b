"""Pretrained networks, the weights cache, transfer learning and feature extraction.

Example:
    >>> from deeptoolbox import hub
    >>> "resnet18" in hub.list_pretrained().names
    True
"""

from deeptoolbox.errors import ChecksumError as ChecksumError
from deeptoolbox.errors import MissingDependencyError as MissingDependencyError
from deeptoolbox.errors import UnknownModelError as UnknownModelError
from deeptoolbox.errors import WeightsError as WeightsError
from deeptoolbox.hub._cli import classify_command as classify_command
from deeptoolbox.hub._cli import models_command as models_command
from deeptoolbox.hub._cli import top_classes as top_classes
from deeptoolbox.hub._features import activations as activations
from deeptoolbox.hub._features import fit_classifier as fit_classifier
from deeptoolbox.hub._preprocess import image_transform as image_transform
from deeptoolbox.hub._preprocess import include_normalization as include_normalization
from deeptoolbox.hub._preprocess import prepare_images as prepare_images
from deeptoolbox.hub._preprocess import preprocess as preprocess
from deeptoolbox.hub._pretrained import pretrained as pretrained
from deeptoolbox.hub._pretrained import pretrained_module as pretrained_module
from deeptoolbox.hub._registry import ModelInfo as ModelInfo
from deeptoolbox.hub._registry import ModelTable as ModelTable
from deeptoolbox.hub._registry import list_pretrained as list_pretrained
from deeptoolbox.hub._registry import model_info as model_info
from deeptoolbox.hub._transfer import adapt as adapt
from deeptoolbox.hub._transfer import find_head as find_head
from deeptoolbox.hub._transfer import freeze as freeze
from deeptoolbox.hub._transfer import set_learn_rate_factor as set_learn_rate_factor
from deeptoolbox.hub._weights import cache_dir as cache_dir
from deeptoolbox.hub._weights import load_weights_file as load_weights_file

__all__ = [
    "pretrained",
    "pretrained_module",
    "list_pretrained",
    "model_info",
    "ModelInfo",
    "ModelTable",
    "cache_dir",
    "load_weights_file",
    "preprocess",
    "image_transform",
    "prepare_images",
    "include_normalization",
    "adapt",
    "find_head",
    "freeze",
    "set_learn_rate_factor",
    "activations",
    "fit_classifier",
    "top_classes",
    "models_command",
    "classify_command",
    "UnknownModelError",
    "WeightsError",
    "ChecksumError",
    "MissingDependencyError",
]
