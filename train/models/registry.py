"""The model registry: builder functions that return frozen configs, and ``build_model`` to instantiate.

Register a variant with ``@register_model``; the function's name (underscores as dashes) is its key.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgedepth.errors import choices

from .config import DecoderConfig, HybridEncoderConfig, MiTEncoderConfig, ModelConfig

_REGISTRY: dict[str, Callable[[], ModelConfig]] = {}


def register_model(fn: Callable[[], ModelConfig]) -> Callable[[], ModelConfig]:
    _REGISTRY[fn.__name__.replace("_", "-")] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def model_config(name: str) -> ModelConfig:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {choices(list_models())}")
    return _REGISTRY[name]()


def build_model(name: str, pretrained: bool = True, encoder_weights: str | Path | None = None):
    """Instantiate a registered variant. ``pretrained`` loads the hybrid encoder's ImageNet weights;
    ``encoder_weights`` is an optional ImageNet checkpoint for the Mix-Transformer encoders."""
    from .efficientdepth import EfficientDepth

    return EfficientDepth(model_config(name), pretrained=pretrained, encoder_weights=encoder_weights)


@register_model
def efficientdepth_s() -> ModelConfig:
    """The embedded default: EfficientNet-Lite0 + global attention, TF-Lite normalisation ([-1, 1])."""
    return ModelConfig(
        name="efficientdepth-s",
        encoder=HybridEncoderConfig(),
        decoder=DecoderConfig(widths=(48, 64, 96, 128), head_width=32),
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
    )


@register_model
def efficientdepth_s_v2() -> ModelConfig:
    """The v2 student, designed for a 2-core CPU by measured latency (untrained ONNX, 256x256, ONNX Runtime,
    2 threads: 13.7x the ViT-S/14 reference against v1's 8.4-8.6x): one attention block at 1/32 only,
    Lite0 without four of its 16 MBConv blocks (7, 10, 13, 14), a narrow decoder predicting at 1/2."""
    return ModelConfig(
        name="efficientdepth-s-v2",
        encoder=HybridEncoderConfig(depths=(0, 1), skip_blocks=(7, 10, 13, 14)),
        decoder=DecoderConfig(widths=(32, 48, 64, 96), head_width=24, predict_stride=2),
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
    )


@register_model
def efficientdepth_l() -> ModelConfig:
    """The teacher: EfficientNet-Lite2 (ImageNet statistics frozen) + attention, a wider decoder."""
    return ModelConfig(
        name="efficientdepth-l",
        encoder=HybridEncoderConfig(backbone="efficientnet-lite2", freeze_bn=True, heads=(4, 8)),
        decoder=DecoderConfig(widths=(64, 96, 128, 192), head_width=48),
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
    )


@register_model
def efficientdepth_mit_b0() -> ModelConfig:
    return ModelConfig(
        "efficientdepth-mit-b0", MiTEncoderConfig(dims=(32, 64, 160, 256), depths=(2, 2, 2, 2))
    )


@register_model
def efficientdepth_mit_b1() -> ModelConfig:
    return ModelConfig(
        "efficientdepth-mit-b1",
        MiTEncoderConfig(dims=(64, 128, 320, 512), depths=(2, 2, 2, 2)),
        DecoderConfig(widths=(64, 96, 128, 192), head_width=48),
    )


@register_model
def efficientdepth_mit_b2() -> ModelConfig:
    return ModelConfig(
        "efficientdepth-mit-b2",
        MiTEncoderConfig(dims=(64, 128, 320, 512), depths=(3, 4, 6, 3)),
        DecoderConfig(widths=(64, 96, 128, 192), head_width=48),
    )
