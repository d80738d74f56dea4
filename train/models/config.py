"""Frozen configuration dataclasses for the EfficientDepth family. A variant is a config, never a file."""

from __future__ import annotations

from dataclasses import dataclass

from edgedepth.artifact import IMAGENET_MEAN, IMAGENET_STD


@dataclass(frozen=True)
class HybridEncoderConfig:
    """EfficientNet-Lite stages plus global attention at 1/16 and 1/32.

    ``freeze_bn`` keeps the encoder's BatchNorm running statistics at their ImageNet values during
    training (the affine parameters still learn), which protects the pretrained features.
    """

    backbone: str = "efficientnet-lite0"  # or efficientnet-lite1 / efficientnet-lite2
    freeze_bn: bool = False
    # Backbone blocks left out (indices into its block list): only blocks that keep their input's shape
    # (stride 1, same channels) can go, so the pretrained weights of every other block still fit.
    skip_blocks: tuple[int, ...] = ()
    depths: tuple[int, int] = (1, 2)  # transformer blocks at 1/16 and 1/32
    heads: tuple[int, int] = (4, 8)
    mlp_ratio: float = 2.0
    layer_scale: float = 1e-2
    drop_connect_rate: float = 0.1


@dataclass(frozen=True)
class MiTEncoderConfig:
    """SegFormer Mix-Transformer stage widths, depths, heads and spatial-reduction ratios."""

    dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    heads: tuple[int, int, int, int] = (1, 2, 5, 8)
    sr_ratios: tuple[int, int, int, int] = (8, 4, 2, 1)
    mlp_ratio: float = 4.0


@dataclass(frozen=True)
class DecoderConfig:
    """Top-down fusion widths at strides 4, 8, 16, 32, and the stride the head predicts at (1, 2 or 4)."""

    widths: tuple[int, int, int, int] = (48, 64, 96, 128)
    head_width: int = 32
    predict_stride: int = 2


@dataclass(frozen=True)
class ModelConfig:
    name: str
    encoder: HybridEncoderConfig | MiTEncoderConfig
    decoder: DecoderConfig = DecoderConfig()
    mean: tuple[float, float, float] = IMAGENET_MEAN  # the runtime's constants: one source for both
    std: tuple[float, float, float] = IMAGENET_STD
    size_multiple: int = 32
    input_size: tuple[int, int] = (
        256,
        256,
    )  # the exported spec's size; export, eval and recipes default to it
