"""Two-component Laplace mixture density head: its NLL loss and its hard readout.

The density head predicts, per pixel, ``params = [weight_logit, mu1, mu2, log_b1, log_b2]`` over
SSI-normalised inverse depth, with ``pi1 = sigmoid(weight_logit)`` and ``pi2 = 1 - pi1``. A mixture lets a
pixel on a depth discontinuity put mass on both sides instead of regressing to a blurred midpoint; the
readout then picks one side, so edges stay sharp.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..models.head import mixture_readout  # the readout belongs to the head; re-exported here
from .ssi import full_mask, normalize_ssi

__all__ = ["LaplaceMixtureNLL", "mixture_readout"]

LOG2 = math.log(2.0)


class LaplaceMixtureNLL(nn.Module):
    """Masked mean negative log-likelihood of ``normalize_ssi(target)`` under the Laplace mixture.

    ``log p = logsumexp_k(log pi_k - log 2 - log b_k - |y - mu_k| / b_k)``, computed with
    ``logsigmoid`` and ``logsumexp`` for stability; log-scales are clamped to ``[log_b_min, log_b_max]``.
    The mean is over all valid pixels of the batch (0, still attached to the graph, if there are none).
    The value can be negative (a density, not a probability).
    """

    def __init__(self, log_b_min: float = -7.0, log_b_max: float = 5.0) -> None:
        super().__init__()
        if not log_b_min < log_b_max:
            raise ValueError(f"need log_b_min < log_b_max, got {log_b_min}, {log_b_max}")
        self.log_b_min = float(log_b_min)
        self.log_b_max = float(log_b_max)

    def forward(
        self, params: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``params``: (N,5,H,W) head output; ``target``: (N,1,H,W) inverse depth; returns a scalar."""
        if params.dim() != 4 or params.shape[1] != 5:
            raise ValueError(f"params must be (N,5,H,W), got {tuple(params.shape)}")
        m = full_mask(target, mask)
        y = normalize_ssi(target, m)
        logit = params[:, 0:1]
        mu = params[:, 1:3]
        log_b = params[:, 3:5].clamp(self.log_b_min, self.log_b_max)
        log_pi = torch.cat([F.logsigmoid(logit), F.logsigmoid(-logit)], dim=1)
        log_comp = log_pi - LOG2 - log_b - (y - mu).abs() * torch.exp(-log_b)
        nll = -torch.logsumexp(log_comp, dim=1, keepdim=True)
        nll = torch.where(m, nll, torch.zeros_like(nll))
        return nll.sum() / m.sum().clamp_min(1).to(nll.dtype)
