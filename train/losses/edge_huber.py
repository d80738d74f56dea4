"""Edge-aware gradient Huber loss (D³epth-style).

Penalises the Huber error between the spatial gradients of the SSI-normalised prediction and target,
weighting each pixel pair by the image gradient there: depth discontinuities usually coincide with image
edges, so errors at edges weigh more and the network learns crisp boundaries.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .gradient import spatial_diffs
from .ssi import full_mask, normalize_ssi

__all__ = ["EdgeAwareGradientHuberLoss", "edge_weights"]

EDGE_EPS = 1e-6


def edge_weights(image: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pair weights ``1 + alpha * |dI| / max|dI|`` along W and along H, from an (N,C,H,W) image.

    ``|dI|`` is the forward difference magnitude averaged over channels; it is normalised per image by
    its maximum over both directions, so weights lie in ``[1, 1 + alpha]``. No gradient flows to the image.
    """
    image = image.detach()
    gx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(dim=1, keepdim=True)
    gy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(dim=1, keepdim=True)
    n = image.shape[0]
    scale = torch.maximum(gx.reshape(n, -1).amax(dim=1), gy.reshape(n, -1).amax(dim=1))
    scale = scale.clamp_min(EDGE_EPS).view(n, 1, 1, 1)
    return 1.0 + alpha * gx / scale, 1.0 + alpha * gy / scale


class EdgeAwareGradientHuberLoss(nn.Module):
    """Edge-weighted Huber loss on gradient errors of SSI-normalised depth.

    ``delta``: Huber transition point (SSI-normalised maps have unit mean absolute deviation, so
    per-pixel gradients are mostly well below 1). ``alpha``: extra weight at the strongest image edge.
    ``forward(pred, target, mask=None, image=None)``; without an image all weights are 1. The sum of
    weighted Huber terms over valid pixel pairs is divided by the number of valid pixels in the batch.
    """

    def __init__(self, delta: float = 0.1, alpha: float = 2.0) -> None:
        super().__init__()
        if delta <= 0:
            raise ValueError(f"delta must be > 0, got {delta}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.delta = float(delta)
        self.alpha = float(alpha)

    def forward(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor | None = None,
        image: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``pred``, ``target``: (N,1,H,W); ``mask``: (N,1,H,W) bool; ``image``: (N,3,H,W). Scalar out."""
        m = full_mask(pred, mask)
        p = normalize_ssi(pred, m)
        t = normalize_ssi(target, m)
        pdx, pdy, mx, my = spatial_diffs(p, m)
        tdx, tdy, _, _ = spatial_diffs(t, m)
        hx = F.huber_loss(pdx, tdx, reduction="none", delta=self.delta)
        hy = F.huber_loss(pdy, tdy, reduction="none", delta=self.delta)
        if image is not None:
            if image.shape[0] != pred.shape[0] or image.shape[-2:] != pred.shape[-2:]:
                raise ValueError(f"image shape {tuple(image.shape)} does not match pred {tuple(pred.shape)}")
            wx, wy = edge_weights(image.to(pred.dtype), self.alpha)
            hx = hx * wx
            hy = hy * wy
        hx = torch.where(mx, hx, torch.zeros_like(hx))
        hy = torch.where(my, hy, torch.zeros_like(hy))
        return (hx.sum() + hy.sum()) / m.sum().clamp_min(1).to(hx.dtype)
