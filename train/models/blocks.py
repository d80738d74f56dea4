"""Building blocks shared by every EfficientDepth encoder and the decoder.

One transformer block serves both encoders: with ``sr_ratio=1`` it is global self-attention over all
tokens (the hybrid encoder's 1/16 and 1/32 stages); with ``sr_ratio>1`` it is SegFormer's
spatial-reduction attention. Its feed-forward is Mix-FFN (a depthwise 3x3 conv between the two linear
layers), which also supplies positional information, so no size-bound position table exists and any
input size that is a multiple of 32 works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SpatialReductionAttention(nn.Module):
    """Multi-head self-attention whose keys/values come from a ``sr_ratio``-strided copy of the map."""

    def __init__(self, dim: int, heads: int, sr_ratio: int = 1) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} is not divisible by heads={heads}")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.sr_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        n, t, c = x.shape
        q = self.q(x).reshape(n, t, self.heads, c // self.heads).transpose(1, 2)
        if self.sr_ratio > 1:
            grid = x.transpose(1, 2).reshape(n, c, h, w)
            x = self.sr_norm(self.sr(grid).flatten(2).transpose(1, 2))
        k, v = self.kv(x).reshape(n, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(n, t, c))


class MixFFN(nn.Module):
    """Linear -> depthwise 3x3 conv -> GELU -> linear (SegFormer's Mix-FFN)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = self.fc1(x)
        n, _, c = x.shape
        x = self.dwconv(x.transpose(1, 2).reshape(n, c, h, w)).flatten(2).transpose(1, 2)
        return self.fc2(F.gelu(x))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block on tokens of an ``h x w`` map, with optional layer scale.

    ``layer_scale`` > 0 multiplies each residual branch by a learnable per-channel gain starting at that
    value, so a block inserted into a pretrained CNN starts close to the identity.
    """

    def __init__(
        self, dim: int, heads: int, mlp_ratio: float = 4.0, sr_ratio: int = 1, layer_scale: float = 0.0
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SpatialReductionAttention(dim, heads, sr_ratio)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = MixFFN(dim, int(dim * mlp_ratio))
        if layer_scale > 0:
            self.gamma1 = nn.Parameter(torch.full((dim,), layer_scale))
            self.gamma2 = nn.Parameter(torch.full((dim,), layer_scale))
        else:
            self.register_buffer("gamma1", torch.ones(dim), persistent=False)
            self.register_buffer("gamma2", torch.ones(dim), persistent=False)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.gamma1 * self.attn(self.norm1(x), h, w)
        return x + self.gamma2 * self.ffn(self.norm2(x), h, w)


class MapTransformer(nn.Module):
    """A stack of transformer blocks applied to an NCHW feature map (flatten, attend, reshape back)."""

    def __init__(self, dim: int, depth: int, heads: int, mlp_ratio: float = 2.0, layer_scale: float = 0.0):
        super().__init__()
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, heads, mlp_ratio, sr_ratio=1, layer_scale=layer_scale) for _ in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        for block in self.blocks:
            tokens = block(tokens, h, w)
        return tokens.transpose(1, 2).reshape(n, c, h, w)


class DSConv(nn.Sequential):
    """Depthwise-separable 3x3 conv: depthwise 3x3, pointwise 1x1, batch norm, ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )
