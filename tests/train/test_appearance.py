"""Appearance randomisation: it changes the image only, reproducibly, and costs nothing when off."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgedepth_train.data.appearance import AppearanceConfig, randomize_appearance
from edgedepth_train.data.stage_data import StageData
from edgedepth_train.recipe import parse_recipe


def image() -> np.ndarray:
    y, x = np.mgrid[0:64, 0:80]
    return np.stack([x * 3, y * 4, np.full_like(x, 120)], axis=2).astype(np.uint8)


def test_off_by_default_draws_nothing() -> None:
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    img = image()
    assert randomize_appearance(img, AppearanceConfig(), rng) is img
    assert rng.bit_generator.state == state  # recipes without it stay bit-identical


def test_changes_the_image_reproducibly() -> None:
    cfg = AppearanceConfig(p=1.0, blur=1.0, jpeg=1.0, vignette=1.0)
    a = randomize_appearance(image(), cfg, np.random.default_rng(3))
    b = randomize_appearance(image(), cfg, np.random.default_rng(3))
    c = randomize_appearance(image(), cfg, np.random.default_rng(4))
    assert a.dtype == np.uint8 and a.shape == image().shape
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - image()).mean() > 2 and np.abs(a.astype(int) - c).mean() > 1
    # Vignetting darkens the corners relative to the centre.
    flat = randomize_appearance(
        np.full((64, 80, 3), 128, np.uint8),
        AppearanceConfig(p=1.0, vignette=1.0, noise=0.0, jpeg=0.0, blur=0.0, white_balance=0.0, gamma=(1, 1)),
        np.random.default_rng(0),
    )
    assert flat[0, 0].mean() < flat[32, 40].mean()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="blur"):
        AppearanceConfig(blur=2.0)
    with pytest.raises(ValueError, match="gamma"):
        AppearanceConfig(gamma=(0.0, 1.0))


def test_stage_applies_it_to_rendered_frames_only() -> None:
    raw = {
        "name": "t", "model": "efficientdepth-s", "pretrained": False, "workers": 0,
        "sources": {"synthetic": {"kind": "synthetic", "texture_dir": None, "length": 10}},
        "stages": [{"name": "s", "iterations": 1, "resolution": [64, 64], "data": {"synthetic": 1.0},
                    "losses": {"ssi_l1": 1.0}, "augment": {"jitter": 0.0, "hflip": 0.0, "crop_scale": [1.0, 1.0], "crop_ratio": [1.0, 1.0]}}],
    }  # fmt: skip
    from edgedepth_train.export import model_spec
    from edgedepth_train.models.registry import build_model

    spec = model_spec(build_model("efficientdepth-s", pretrained=False), (64, 64), True, {})
    plain = StageData(parse_recipe(raw), 0, spec)[5]
    raw["stages"][0]["appearance"] = {"p": 1.0}
    varied = StageData(parse_recipe(raw), 0, spec)[5]
    torch.testing.assert_close(plain["inverse_depth"], varied["inverse_depth"])  # depth untouched
    assert (plain["image"] - varied["image"]).abs().mean() > 0.01
