"""Augmentations keep image and depth in correspondence; tensors are normalised as the runtime does."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from edgedepth.artifact import ColorOrder, ModelSpec
from edgedepth.preprocess import preprocess
from edgedepth_train.data.augment import AugmentConfig, augment, color_jitter, hflip, resize_to
from edgedepth_train.data.collate import AugmentedDataset, to_training_tensors

H, W = 96, 120  # both < 128, so 2 * coordinate fits in uint8
NO_JITTER = AugmentConfig(hflip=0.5, jitter=0.0, crop_scale=(0.1, 1.0), crop_ratio=(0.8, 1.25))


def pattern_sample() -> dict:
    """Image and depth that both encode each pixel's (x, y): B = 2x, G = 2y; depth = 1 + x + 256 y.
    Rows above y = 10 have no measurement (depth 0)."""
    y, x = np.mgrid[0:H, 0:W]
    bgr = np.stack([2 * x, 2 * y, np.full_like(x, 128)], axis=2).astype(np.uint8)
    depth = (1 + x + 256 * y).astype(np.float32)
    depth[y < 10] = 0.0
    return {"bgr": bgr, "depth_m": depth, "source": "rgbd"}


def test_flip_moves_image_and_depth_together() -> None:
    cols = np.arange(W, dtype=np.float32)
    sample = {
        "bgr": np.repeat(np.repeat(cols.astype(np.uint8)[None, :, None], H, 0), 3, 2),
        "depth_m": np.repeat(cols[None] + 1.0, H, 0),  # depth = column index + 1
        "source": "rgbd",
    }
    flipped = hflip(sample)
    np.testing.assert_array_equal(flipped["depth_m"][0], W - cols)
    np.testing.assert_array_equal(flipped["bgr"][0, :, 0], W - 1 - cols)
    np.testing.assert_array_equal(flipped["depth_m"], flipped["bgr"][:, :, 1].astype(np.float32) + 1)
    # Through augment: flip always, crop the whole frame, no jitter.
    always = AugmentConfig(hflip=1.0, jitter=0.0, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0))
    out = augment(sample, (H, W), always, np.random.default_rng(0))
    np.testing.assert_array_equal(out["depth_m"], flipped["depth_m"])
    np.testing.assert_array_equal(out["bgr"], flipped["bgr"])
    never = replace(always, hflip=0.0)
    np.testing.assert_array_equal(
        augment(sample, (H, W), never, np.random.default_rng(0))["depth_m"], sample["depth_m"]
    )


@pytest.mark.parametrize("seed", range(8))
def test_random_crop_keeps_correspondence(seed: int) -> None:
    sample = pattern_sample()
    out = augment(sample, (64, 64), NO_JITTER, np.random.default_rng(seed))
    depth, bgr = out["depth_m"], out["bgr"].astype(np.float64)
    assert depth.shape == (64, 64) and bgr.shape == (64, 64, 3)
    assert np.isin(depth, sample["depth_m"]).all()  # nearest sampling: no mixed or invented depth values
    valid = depth > 0
    assert valid.any()
    xd, yd = (depth[valid] - 1) % 256, (depth[valid] - 1) // 256
    xi, yi = bgr[:, :, 0][valid] / 2, bgr[:, :, 1][valid] / 2
    # Bilinear image vs nearest depth on the same pixel grid: within half a source pixel (+ uint8 rounding).
    assert np.abs(xd - xi).max() <= 0.76
    assert np.abs(yd - yi).max() <= 0.76
    # Invalid depth only where the image says y < 10 (one source pixel of slack at the edge).
    assert (bgr[:, :, 1][~valid] / 2 < 10.5).all()


def test_same_seed_same_result() -> None:
    sample = pattern_sample()
    cfg = AugmentConfig(hflip=0.5, jitter=1.0)
    a = augment(sample, (48, 64), cfg, np.random.default_rng(123))
    b = augment(sample, (48, 64), cfg, np.random.default_rng(123))
    np.testing.assert_array_equal(a["bgr"], b["bgr"])
    np.testing.assert_array_equal(a["depth_m"], b["depth_m"])
    c = augment(sample, (48, 64), cfg, np.random.default_rng(124))
    assert not np.array_equal(a["bgr"], c["bgr"])


def test_color_jitter_leaves_depth_untouched() -> None:
    sample = pattern_sample()
    depth_before = sample["depth_m"].copy()
    strong = AugmentConfig(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.2)
    out = color_jitter(sample, strong, np.random.default_rng(7))
    np.testing.assert_array_equal(out["depth_m"], depth_before)
    np.testing.assert_array_equal(sample["depth_m"], depth_before)
    assert out["bgr"].dtype == np.uint8 and out["bgr"].shape == sample["bgr"].shape
    assert not np.array_equal(out["bgr"], sample["bgr"])


def test_resize_to_is_deterministic_and_sized() -> None:
    sample = pattern_sample()
    a, b = resize_to(sample, (32, 32)), resize_to(sample, (32, 32))
    assert a["bgr"].shape == (32, 32, 3) and a["depth_m"].shape == (32, 32)
    np.testing.assert_array_equal(a["depth_m"], b["depth_m"])
    # Centre crop to a square: the columns kept are the middle H of W.
    xd = (a["depth_m"][a["depth_m"] > 0] - 1) % 256
    assert xd.min() >= (W - H) // 2 and xd.max() < (W + H) // 2


@pytest.mark.parametrize("order", [ColorOrder.RGB, ColorOrder.BGR])
def test_normalisation_matches_runtime_preprocess(order: ColorOrder) -> None:
    spec = ModelSpec("t", input_size=(64, 96), color_order=order, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))
    bgr = np.random.default_rng(0).integers(0, 256, size=(64, 96, 3), dtype=np.uint8)
    reference, plan = preprocess(bgr, spec)
    assert (plan.pad_top, plan.pad_left) == (0, 0)
    tensors = to_training_tensors({"bgr": bgr, "depth_m": None, "source": "unlabelled"}, spec)
    assert tensors["image"].shape == (3, 64, 96) and tensors["image"].dtype == torch.float32
    assert np.abs(tensors["image"].numpy() - reference[0]).max() < 1e-5


def test_inverse_depth_and_mask() -> None:
    spec = ModelSpec("t", input_size=(32, 32), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    depth = np.full((32, 32), 2.0, dtype=np.float32)
    depth[0, 0], depth[0, 1], depth[0, 2] = 0.0, np.nan, np.inf
    bgr = np.zeros((32, 32, 3), dtype=np.uint8)
    t = to_training_tensors({"bgr": bgr, "depth_m": depth, "source": "rgbd"}, spec)
    assert t["mask"].shape == (1, 32, 32) and t["mask"].dtype == torch.bool
    assert int(t["mask"].sum()) == 32 * 32 - 3
    assert float(t["inverse_depth"][0, 5, 5]) == 0.5
    assert float(t["inverse_depth"][0, 0, :3].abs().sum()) == 0.0
    assert bool(t["labelled"])
    u = to_training_tensors({"bgr": bgr, "depth_m": None, "source": "unlabelled"}, spec)
    assert not u["mask"].any() and not u["inverse_depth"].any() and not bool(u["labelled"])


def test_augmented_dataset_is_deterministic_per_epoch() -> None:
    spec = ModelSpec("t", input_size=(32, 32), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    base = [pattern_sample(), pattern_sample()]
    ds = AugmentedDataset(base, spec, augment_cfg=AugmentConfig(), seed=3)  # type: ignore[arg-type]
    again = AugmentedDataset(base, spec, augment_cfg=AugmentConfig(), seed=3)  # type: ignore[arg-type]
    assert len(ds) == 2
    first = ds[1]
    assert first["image"].shape == (3, 32, 32) and first["mask"].shape == (1, 32, 32)
    assert torch.equal(first["image"], again[1]["image"])
    assert not torch.equal(ds[0]["image"], first["image"])  # each index draws its own augmentation
    ds.set_epoch(1)
    assert not torch.equal(ds[1]["image"], first["image"])
    ds.set_epoch(0)
    assert torch.equal(ds[1]["image"], first["image"])
    evaluation = AugmentedDataset(base, spec)  # type: ignore[arg-type]
    assert torch.equal(evaluation[0]["image"], evaluation[0]["image"])
