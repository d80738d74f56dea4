"""EfficientDepth: encoder, light depthwise-separable decoder, bimodal density head.

One module family serves training, evaluation and export. ``forward`` maps an image to the head's
mixture parameters at input resolution (what the losses need); ``DepthReadout`` wraps a model so that
its forward returns ``(inverse_depth, confidence)``, which is the exported graph.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import DSConv
from .config import DecoderConfig, HybridEncoderConfig, ModelConfig
from .encoders import HybridLiteEncoder, MixTransformerEncoder
from .head import BimodalDensityHead, mixture_readout


class TopDownDecoder(nn.Module):
    """Fuse four scales coarse-to-fine (upsample, concat the lateral, depthwise-separable conv)."""

    def __init__(self, in_channels: tuple[int, ...], cfg: DecoderConfig) -> None:
        super().__init__()
        if cfg.predict_stride not in (1, 2, 4):
            raise ValueError(f"predict_stride={cfg.predict_stride}; choose 1, 2 or 4")
        self.laterals = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, w, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True))
            for c, w in zip(in_channels, cfg.widths, strict=True)
        )
        self.fuse = nn.ModuleList(DSConv(cfg.widths[i + 1] + cfg.widths[i], cfg.widths[i]) for i in range(3))
        self.refine = DSConv(cfg.widths[0], cfg.head_width)
        self.upsample_to = 4 // cfg.predict_stride  # from stride 4 to the prediction stride

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        y = self.laterals[3](feats[3])
        for i in (2, 1, 0):
            lateral = self.laterals[i](feats[i])
            y = F.interpolate(y, size=lateral.shape[-2:], mode="bilinear", align_corners=False)
            y = self.fuse[i](torch.cat([y, lateral], dim=1))
        y = F.interpolate(y, scale_factor=float(self.upsample_to), mode="bilinear", align_corners=False)
        return self.refine(y)


class EfficientDepth(nn.Module):
    """Image (N,3,H,W), H and W multiples of 32 -> mixture parameters (N,5,H,W)."""

    def __init__(self, cfg: ModelConfig, pretrained: bool = True, encoder_weights: str | Path | None = None):
        super().__init__()
        self.cfg = cfg
        if isinstance(cfg.encoder, HybridEncoderConfig):
            self.encoder: nn.Module = HybridLiteEncoder(cfg.encoder, pretrained=pretrained)
        else:
            self.encoder = MixTransformerEncoder(cfg.encoder, weights=encoder_weights)
        self.decoder = TopDownDecoder(self.encoder.channels, cfg.decoder)
        self.head = BimodalDensityHead(cfg.decoder.head_width)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        params = self.head(self.decoder(self.encoder(image)))
        return F.interpolate(params, size=image.shape[-2:], mode="bilinear", align_corners=False)


class DepthReadout(nn.Module):
    """The exported graph: image -> (inverse_depth, confidence), both (N,1,H,W)."""

    def __init__(self, model: EfficientDepth) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return mixture_readout(self.model(image))
