"""Weight initializers shared by the learnable layers (MATLAB's names)."""

from __future__ import annotations

import torch
from torch import nn

from deeptoolbox.layers._base import check_choice

WEIGHT_INITIALIZERS = ("glorot", "he", "orthogonal", "narrow-normal", "zeros", "ones")
BIAS_INITIALIZERS = ("zeros", "ones", "narrow-normal")


def initialize_weight(layer: str, weight: torch.Tensor, method: str) -> None:
    """Fill ``weight`` in place with the named initializer (Glorot is MATLAB's default)."""
    check_choice(layer, "weights_initializer", method, WEIGHT_INITIALIZERS)
    with torch.no_grad():
        if method == "glorot":
            nn.init.xavier_uniform_(weight)
        elif method == "he":
            nn.init.kaiming_normal_(weight, nonlinearity="relu")
        elif method == "orthogonal":
            nn.init.orthogonal_(weight)
        elif method == "narrow-normal":
            nn.init.normal_(weight, std=0.01)
        elif method == "zeros":
            weight.zero_()
        else:
            weight.fill_(1.0)


def initialize_bias(layer: str, bias: torch.Tensor, method: str) -> None:
    """Fill ``bias`` in place with the named initializer."""
    check_choice(layer, "bias_initializer", method, BIAS_INITIALIZERS)
    with torch.no_grad():
        if method == "zeros":
            bias.zero_()
        elif method == "ones":
            bias.fill_(1.0)
        else:
            nn.init.normal_(bias, std=0.01)
