"""The peer-sized reference as a torch module: a ViT-S/14 encoder with DINOv2-Small's dimensions.

This is the encoder of Depth Anything V2 Small (width 384, 12 pre-norm blocks, 6 heads, MLP 1536, patch
14, a class token and a learned position embedding on DINOv2's 37 x 37 grid, interpolated bicubically to
the input's grid in the forward pass, as DINOv2 does). Random weights from a fixed seed: only its speed is
used. This module imports torch; the package imports it only when an ONNX file has to be built.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ViTConfig


class PatchEmbed(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.width, kernel_size=cfg.patch, stride=cfg.patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, gh * gw, width)


class Attention(nn.Module):
    """Multi-head self-attention written with plain matmuls, so the ONNX graph holds MatMul nodes."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.scale = (cfg.width // cfg.heads) ** -0.5
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width)
        self.proj = nn.Linear(cfg.width, cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    """Pre-norm transformer block with DINOv2's layer scale on both residual branches."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width, eps=1e-6)
        self.attn = Attention(cfg)
        self.ls1 = nn.Parameter(torch.ones(cfg.width))
        self.norm2 = nn.LayerNorm(cfg.width, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(cfg.width, cfg.mlp), nn.GELU(), nn.Linear(cfg.mlp, cfg.width))
        self.ls2 = nn.Parameter(torch.ones(cfg.width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1 * self.attn(self.norm1(x))
        return x + self.ls2 * self.mlp(self.norm2(x))


class ViTEncoder(nn.Module):
    """Image (B, 3, H, W), H and W multiples of the patch -> tokens (B, 1 + H/14 * W/14, width)."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.base_grid**2, cfg.width))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.width, eps=1e-6)

    def position_embedding(self, gh: torch.Tensor | int, gw: torch.Tensor | int) -> torch.Tensor:
        """The class token's embedding and the patch grid's, resized from the base grid to (gh, gw)."""
        g, c = self.cfg.base_grid, self.cfg.width
        grid = self.pos_embed[:, 1:].reshape(1, g, g, c).permute(0, 3, 1, 2)
        # gh, gw are tensors while the exporter traces: the graph keeps the resize dynamic
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)  # type: ignore[arg-type]
        return torch.cat([self.pos_embed[:, :1], grid.flatten(2).transpose(1, 2)], dim=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        gh, gw = image.shape[-2] // self.cfg.patch, image.shape[-1] // self.cfg.patch
        x = self.patch_embed(image)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.position_embedding(gh, gw)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def build_vit(cfg: ViTConfig) -> ViTEncoder:
    """The encoder in eval mode, its weights drawn from ``cfg.seed`` alone (truncated normal, std 0.02;
    zero biases, unit norms), so every build of one configuration is the same model."""
    generator = torch.Generator().manual_seed(cfg.seed)
    model = ViTEncoder(cfg)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.zero_()
            elif ".norm" in name or name.startswith("norm"):
                param.fill_(1.0)
            elif ".ls" in name:
                param.fill_(cfg.layer_scale)
            else:
                param.copy_(torch.randn(param.shape, generator=generator).clamp_(-2, 2) * 0.02)
    return model.eval()
