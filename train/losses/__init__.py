"""Training losses for EfficientDepth: SSI, gradient matching, mixture NLL, perceptual, edge-aware.

``LOSSES`` maps a config name to its loss class; the trainer composes them, usually through
``DynamicTaskWeighting``.
"""

from __future__ import annotations

from torch import nn

from .edge_huber import EdgeAwareGradientHuberLoss
from .gradient import MultiScaleGradientLoss
from .laplace_nll import LaplaceMixtureNLL, mixture_readout
from .perceptual import PerceptualDepthLoss
from .ssi import SSIL1Loss, normalize_ssi
from .weighting import DynamicTaskWeighting

LOSSES: dict[str, type[nn.Module]] = {
    "ssi_l1": SSIL1Loss,
    "gradient": MultiScaleGradientLoss,
    "laplace_nll": LaplaceMixtureNLL,
    "perceptual": PerceptualDepthLoss,
    "edge_huber": EdgeAwareGradientHuberLoss,
}

__all__ = [
    "LOSSES",
    "DynamicTaskWeighting",
    "EdgeAwareGradientHuberLoss",
    "LaplaceMixtureNLL",
    "MultiScaleGradientLoss",
    "PerceptualDepthLoss",
    "SSIL1Loss",
    "mixture_readout",
    "normalize_ssi",
]
