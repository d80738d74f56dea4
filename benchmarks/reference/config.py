"""The reference ViT's dimensions (no torch needed)."""

from __future__ import annotations

from dataclasses import dataclass

from edgedepth.errors import InputError


@dataclass(frozen=True)
class ViTConfig:
    """A ViT encoder's dimensions; the defaults are DINOv2-Small's (ViT-S/14)."""

    width: int = 384
    depth: int = 12
    heads: int = 6
    mlp: int = 1536
    patch: int = 14
    base_grid: int = 37  # DINOv2's position-embedding grid: 518 / 14
    layer_scale: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("width", "depth", "heads", "mlp", "patch", "base_grid"):
            if getattr(self, name) < 1:
                raise InputError(f"reference {name}={getattr(self, name)} must be a positive integer")
        if self.width % self.heads:
            raise InputError(f"reference width={self.width} must be a multiple of heads={self.heads}")

    @property
    def name(self) -> str:
        return f"vit-w{self.width}-d{self.depth}-h{self.heads}-m{self.mlp}-p{self.patch}"


VIT_S14 = ViTConfig()
