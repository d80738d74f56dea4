"""The bimodal density head: a per-pixel two-component Laplace mixture over relative inverse depth.

Five channels: ``[weight_logit, mu1, mu2, log_b1, log_b2]``, with ``pi1 = sigmoid(weight_logit)``.
The readout takes the location of the more probable component rather than the mixture mean, so a pixel
on an occlusion edge is assigned to one surface instead of being averaged into a floating midpoint.
"""

from __future__ import annotations

import torch
from torch import nn

N_PARAMS = 5


def mixture_readout(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,5,H,W) mixture parameters -> (inverse_depth, confidence), each (N,1,H,W).

    inverse_depth is mu of the component with the larger weight; confidence is that weight, in [0.5, 1].
    """
    logit, mu1, mu2 = params[:, 0:1], params[:, 1:2], params[:, 2:3]
    return torch.where(logit >= 0, mu1, mu2), torch.sigmoid(torch.abs(logit))  # max(pi1, pi2)


class BimodalDensityHead(nn.Module):
    """3x3 conv to the five mixture parameters; the two locations start apart to break symmetry."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, N_PARAMS, 3, padding=1)
        nn.init.normal_(self.conv.weight, std=1e-3)
        with torch.no_grad():
            self.conv.bias.copy_(torch.tensor([0.0, 0.5, -0.5, 0.0, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)
