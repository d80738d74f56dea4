"""Multi-scale gradient-matching loss (MiDaS ``L_reg``) on the SSI-normalised residual.

Matching the gradients of the residual ``R = ssi(pred) - ssi(target)`` at several scales sharpens
discontinuities and keeps flat regions flat, independent of the affine ambiguity of relative depth.
"""

from __future__ import annotations

import torch
from torch import nn

from .ssi import full_mask, normalize_ssi

__all__ = ["MultiScaleGradientLoss", "spatial_diffs"]


def spatial_diffs(
    x: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward differences of ``x`` along W and H, with the masks of pairs whose two pixels are valid.

    Returns ``(dx, dy, mask_x, mask_y)`` shaped (..., H, W-1) and (..., H-1, W) respectively.
    """
    dx = x[..., :, 1:] - x[..., :, :-1]
    dy = x[..., 1:, :] - x[..., :-1, :]
    mask_x = mask[..., :, 1:] & mask[..., :, :-1]
    mask_y = mask[..., 1:, :] & mask[..., :-1, :]
    return dx, dy, mask_x, mask_y


class MultiScaleGradientLoss(nn.Module):
    """Sum over ``scales`` of masked ``|d_x R| + |d_y R|`` normalised by the valid-pixel count.

    Scale ``k`` subsamples ``R`` and the mask with stride ``2**k``. Per scale the reduction is over the
    whole batch (sum of gradient magnitudes / number of valid pixels), as in MiDaS; scales with no valid
    pixels add 0.
    """

    def __init__(self, scales: int = 4) -> None:
        super().__init__()
        if scales < 1:
            raise ValueError(f"scales must be >= 1, got {scales}")
        self.scales = int(scales)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``pred``, ``target``: (N,1,H,W) inverse depth; ``mask``: (N,1,H,W) bool. Returns a scalar."""
        m = full_mask(pred, mask)
        residual = normalize_ssi(pred, m) - normalize_ssi(target, m)
        residual = torch.where(m, residual, torch.zeros_like(residual))
        total = residual.new_zeros(())
        for k in range(self.scales):
            step = 2**k
            r = residual[..., ::step, ::step]
            mk = m[..., ::step, ::step]
            dx, dy, mx, my = spatial_diffs(r, mk)
            grad_sum = (dx.abs() * mx).sum() + (dy.abs() * my).sum()
            total = total + grad_sum / mk.sum().clamp_min(1).to(r.dtype)
        return total
