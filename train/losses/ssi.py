"""Scale-and-shift-invariant (SSI) normalisation and the SSI L1 loss (MiDaS-style).

Relative inverse depth is only defined up to an affine map, so both the prediction and the target are
normalised per image by their masked median (shift) and mean absolute deviation (scale) before comparing.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SSIL1Loss", "full_mask", "normalize_ssi"]

SCALE_EPS = 1e-6


def full_mask(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Return ``mask`` as a bool tensor shaped like ``x``; ``None`` means every pixel is valid."""
    if mask is None:
        return torch.ones_like(x, dtype=torch.bool)
    if mask.shape != x.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match input shape {tuple(x.shape)}")
    return mask.bool()


def normalize_ssi(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image median / mean-absolute-deviation normalisation over the masked pixels of ``x``.

    ``x`` and ``mask`` are (N,1,H,W). Returns ``(x - t) / s`` with ``t`` the masked median and
    ``s = mean |x - t|`` (clamped to >= 1e-6). Pixels outside the mask are zeroed before normalising, so
    the result is finite there even where ``x`` holds inf/nan (e.g. invalid ground truth); their values
    carry no meaning. Images without any valid pixel get ``t = 0``, ``s = 1e-6``.
    """
    m = full_mask(x, mask)
    x = torch.where(m, x, torch.zeros_like(x))
    n = x.shape[0]
    flat = x.reshape(n, -1)
    mflat = m.reshape(n, -1)
    masked = torch.where(mflat, flat, torch.full_like(flat, float("nan")))
    t = torch.nanmedian(masked, dim=1).values
    t = torch.nan_to_num(t, nan=0.0)
    count = mflat.sum(dim=1).clamp_min(1).to(flat.dtype)
    s = ((flat - t[:, None]).abs() * mflat).sum(dim=1) / count
    s = s.clamp_min(SCALE_EPS)
    shape = (n,) + (1,) * (x.dim() - 1)
    return (x - t.view(shape)) / s.view(shape)


class SSIL1Loss(nn.Module):
    """L1 between SSI-normalised prediction and target over valid pixels (MiDaS ``L_ssimae``).

    The loss is averaged over valid pixels per image, then over the images that have at least
    ``min_valid`` valid pixels; the others contribute nothing (0 if no image qualifies, still attached to
    the graph so ``backward`` works).
    """

    def __init__(self, min_valid: int = 16) -> None:
        super().__init__()
        self.min_valid = int(min_valid)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``pred``, ``target``: (N,1,H,W) inverse depth; ``mask``: (N,1,H,W) bool. Returns a scalar."""
        m = full_mask(pred, mask)
        diff = (normalize_ssi(pred, m) - normalize_ssi(target, m)).abs()
        diff = torch.where(m, diff, torch.zeros_like(diff))
        n = pred.shape[0]
        count = m.reshape(n, -1).sum(dim=1)
        per_image = diff.reshape(n, -1).sum(dim=1) / count.clamp_min(1).to(diff.dtype)
        ok = count >= self.min_valid
        per_image = torch.where(ok, per_image, torch.zeros_like(per_image))
        return per_image.sum() / ok.sum().clamp_min(1).to(diff.dtype)
