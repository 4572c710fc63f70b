"""Robustness: adversarial examples, output bounds, verification, out-of-distribution detection.

Example:
    >>> import torch
    >>> from deeptoolbox import Network, layers as L
    >>> from deeptoolbox.robustness import estimate_output_bounds
    >>> net = Network([L.FeatureInput(2), L.Dense(3), L.ReLU(), L.Dense(2)])
    >>> b = estimate_output_bounds(net, torch.zeros(1, 2), torch.ones(1, 2), method="crown")
    >>> bool((b.lower <= b.upper).all())
    True
"""

from deeptoolbox.errors import UnsupportedLayerError as UnsupportedLayerError
from deeptoolbox.errors import VnnlibError as VnnlibError
from deeptoolbox.robustness._attacks import AdversarialResult as AdversarialResult
from deeptoolbox.robustness._attacks import AdversarialTraining as AdversarialTraining
from deeptoolbox.robustness._attacks import find_adversarial as find_adversarial
from deeptoolbox.robustness._bounds import OutputBounds as OutputBounds
from deeptoolbox.robustness._bounds import estimate_output_bounds as estimate_output_bounds
from deeptoolbox.robustness._milp import milp_reaches as milp_reaches
from deeptoolbox.robustness._ood import DiscriminatorEvaluation as DiscriminatorEvaluation
from deeptoolbox.robustness._ood import DistributionDiscriminator as DistributionDiscriminator
from deeptoolbox.robustness._ood import plot_distribution_scores as plot_distribution_scores
from deeptoolbox.robustness._plots import plot_output_bounds as plot_output_bounds
from deeptoolbox.robustness._verify import VerificationResult as VerificationResult
from deeptoolbox.robustness._verify import verify_robustness as verify_robustness
from deeptoolbox.robustness._vnnlib import VnnlibResult as VnnlibResult
from deeptoolbox.robustness._vnnlib import verify_vnnlib as verify_vnnlib
from deeptoolbox.robustness._vnnlib_parse import InputRegion as InputRegion
from deeptoolbox.robustness._vnnlib_parse import read_vnnlib as read_vnnlib

__all__ = [
    "find_adversarial", "AdversarialResult", "AdversarialTraining",
    "estimate_output_bounds", "OutputBounds", "plot_output_bounds",
    "verify_robustness", "VerificationResult",
    "verify_vnnlib", "VnnlibResult", "read_vnnlib", "InputRegion", "milp_reaches",
    "DistributionDiscriminator", "DiscriminatorEvaluation", "plot_distribution_scores",
    "UnsupportedLayerError", "VnnlibError",
]  # fmt: skip
