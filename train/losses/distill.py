"""Distillation losses against a teacher's pseudo-labels (Distill Any Depth, section 3).

The normalisation strategy decides how a student map and a teacher map are brought to a common scale
before their L1 distance is taken:

- ``none``: no normalisation; the student learns the teacher's own scale per image and per view (the labels
  arrive in one set-wide affine of the teacher's units, ``train/data/pseudo.py``).
- ``global``: median / mean-absolute-deviation over the whole map (SSI, as for ground truth).
- ``local``: the same, separately inside each cell of a ``grid`` x ``grid`` partition of the map.
- ``hybrid``: the mean of the global term and the local terms at grids 2 and 4.

Global normalisation treats all pixels alike, so a few wrong teacher pixels shift every other pixel's
target; local normalisation confines that to a cell; ``none`` trusts the teacher's scale outright.
The gradient-matching and edge-aware Huber terms (shape and boundaries) always use the global SSI
normalisation. :func:`crop_region` samples the part of a full-view prediction that a crop covers, for the
local–global term of cross-context distillation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import torch
import torch.nn.functional as F
from torch import nn

from .edge_huber import EdgeAwareGradientHuberLoss
from .gradient import MultiScaleGradientLoss
from .ssi import full_mask, normalize_ssi

__all__ = ["DEFAULT_NORMALIZATION", "NORMALIZATIONS", "DistillLoss", "crop_region", "normalized_l1"]

NORMALIZATIONS = ("hybrid", "global", "local", "none")
# The strategy that did best on real frames in the distillation A/B (docs/training.md, "Distillation from any teacher").
DEFAULT_NORMALIZATION: Final = "none"
HYBRID_GRIDS = (1, 2, 4)


def _cells(x: torch.Tensor, grid: int) -> torch.Tensor:
    """(N,C,H,W) -> (N*grid*grid, C, H//grid, W//grid): the cells of a grid partition (H, W divisible)."""
    n, c, h, w = x.shape
    if h % grid or w % grid:
        raise ValueError(f"a {h}x{w} map does not split into a {grid}x{grid} grid")
    x = x.reshape(n, c, grid, h // grid, grid, w // grid).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(n * grid * grid, c, h // grid, w // grid)


def _masked_l1(a: torch.Tensor, b: torch.Tensor, m: torch.Tensor, min_valid: int) -> torch.Tensor:
    """Mean |a - b| over valid pixels per map, then over maps with at least ``min_valid`` valid pixels."""
    n = a.shape[0]
    diff = torch.where(m, (a - b).abs(), torch.zeros_like(a)).reshape(n, -1)
    count = m.reshape(n, -1).sum(dim=1)
    per_map = diff.sum(dim=1) / count.clamp_min(1).to(a.dtype)
    ok = count >= min_valid
    return torch.where(ok, per_map, torch.zeros_like(per_map)).sum() / ok.sum().clamp_min(1).to(a.dtype)


def normalized_l1(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    strategy: str = DEFAULT_NORMALIZATION,
    grid: int = 4,
    min_valid: int = 4,
) -> torch.Tensor:
    """L1 between ``pred`` and ``target`` (N,1,H,W) after the ``strategy`` normalisation (module doc)."""
    if strategy not in NORMALIZATIONS:
        raise ValueError(f"normalization={strategy!r} is unknown; choose one of {', '.join(NORMALIZATIONS)}")
    m = full_mask(pred, mask)
    if strategy == "none":
        return _masked_l1(pred, torch.where(m, target, torch.zeros_like(target)), m, min_valid)
    grids: Sequence[int] = {"global": (1,), "local": (grid,), "hybrid": HYBRID_GRIDS}[strategy]
    terms = []
    for g in grids:
        p, t, mg = (_cells(x, g) for x in (pred, target, m))
        terms.append(_masked_l1(normalize_ssi(p, mg), normalize_ssi(t, mg), mg, min_valid))
    return torch.stack(terms).mean()


class DistillLoss(nn.Module):
    """``normalized_l1`` + ``gradient`` x multi-scale gradient matching + ``edge`` x edge-aware Huber.

    ``forward(pred, target, mask=None, image=None)``: student inverse depth, teacher inverse depth, valid
    pixels (N,1,H,W), and the student's input image for the edge weights. Returns a scalar.
    """

    def __init__(
        self,
        normalization: str = DEFAULT_NORMALIZATION,
        gradient: float = 0.5,
        edge: float = 0.5,
        grid: int = 4,
    ) -> None:
        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization={normalization!r} is unknown; choose one of {', '.join(NORMALIZATIONS)}"
            )
        self.normalization, self.grid = normalization, grid
        self.gradient_weight, self.edge_weight = gradient, edge
        self.gradient = MultiScaleGradientLoss()
        self.edge = EdgeAwareGradientHuberLoss()

    def forward(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor | None = None,
        image: torch.Tensor | None = None,
    ) -> torch.Tensor:
        loss = normalized_l1(pred, target, mask, self.normalization, self.grid)
        if self.gradient_weight:
            loss = loss + self.gradient_weight * self.gradient(pred, target, mask)
        if self.edge_weight:
            loss = loss + self.edge_weight * self.edge(pred, target, mask, image)
        return loss


def crop_region(full: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly sample each map's box from ``full`` (N,C,H,W) at ``size`` (h, w).

    ``boxes`` (N,4) holds ``(x0, y0, x1, y1)`` as fractions of the map's width and height (edges, not pixel
    centres), so output pixel ``(i, j)`` samples the point ``x0 + (j + 0.5) / w * (x1 - x0)`` of the map,
    like resizing the cropped region with ``align_corners=False``. Gradients flow to ``full``.
    """
    n = full.shape[0]
    h, w = size
    x0, y0, x1, y1 = (boxes[:, k].to(full.dtype).view(n, 1, 1) for k in range(4))
    jj = (torch.arange(w, dtype=full.dtype, device=full.device) + 0.5) / w
    ii = (torch.arange(h, dtype=full.dtype, device=full.device) + 0.5) / h
    gx = (x0 + jj.view(1, 1, w) * (x1 - x0)).expand(n, h, w)
    gy = (y0 + ii.view(1, h, 1) * (y1 - y0)).expand(n, h, w)
    grid = torch.stack([gx * 2 - 1, gy * 2 - 1], dim=-1)  # grid_sample's [-1, 1] edge coordinates
    return F.grid_sample(full, grid, mode="bilinear", padding_mode="border", align_corners=False)
