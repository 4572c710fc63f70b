"""Explain predictions: Grad-CAM, occlusion sensitivity, LIME, gradient attribution, deep dream.

Every explainer has the same call shape, ``method(net, x, target=None, *, batch_size=...,
seed=None, ...)``, with one name per idea (``baseline`` for what hides or starts from,
``num_samples`` for random copies, ``steps`` for iterations); it takes a
deeptoolbox Network or any ``torch.nn.Module``, explains the predicted class unless told
otherwise (the score before a final softmax), and returns a map the size of the input (one
value per pixel or time step; per feature for tabular data). :func:`overlay` and
:func:`plot_explanations` turn maps into pictures. Captum is the engine where it implements
the method. :func:`deep_dream` visualizes features and stands outside this family.

Example:
    >>> import torch
    >>> from deeptoolbox import Network, layers as L
    >>> from deeptoolbox import explain
    >>> net = Network([L.ImageInput((1, 8, 8)), L.Conv2d(4, 3, padding="same"), L.ReLU(), L.GlobalAvgPool(),
    ...                L.Dense(2), L.Softmax()])
    >>> explain.gradcam(net, torch.randn(3, 1, 8, 8)).shape
    torch.Size([3, 8, 8])
"""

from deeptoolbox.errors import LayerChoiceError as LayerChoiceError
from deeptoolbox.errors import TargetError as TargetError
from deeptoolbox.explain._dream import deep_dream as deep_dream
from deeptoolbox.explain._gradcam import gradcam as gradcam
from deeptoolbox.explain._gradients import GRADIENT_METHODS as GRADIENT_METHODS
from deeptoolbox.explain._gradients import gradient_attribution as gradient_attribution
from deeptoolbox.explain._lime import LimeExplanation as LimeExplanation
from deeptoolbox.explain._lime import image_lime as image_lime
from deeptoolbox.explain._lime import lime as lime
from deeptoolbox.explain._occlusion import occlusion_sensitivity as occlusion_sensitivity
from deeptoolbox.explain._plot import explain_digits_figure as explain_digits_figure
from deeptoolbox.explain._plot import overlay as overlay
from deeptoolbox.explain._plot import plot_explanations as plot_explanations

__all__ = [
    "gradcam",
    "occlusion_sensitivity",
    "image_lime",
    "lime",
    "LimeExplanation",
    "gradient_attribution",
    "GRADIENT_METHODS",
    "deep_dream",
    "overlay",
    "plot_explanations",
    "explain_digits_figure",
    "TargetError",
    "LayerChoiceError",
]
