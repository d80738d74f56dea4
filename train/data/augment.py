"""Augmentations on raw sample dicts, applied consistently to the image and its depth.

Geometry (crop, flip, resize) moves image and depth together; colour jitter touches the image only. Depth is
resized with exact nearest-neighbour sampling (``INTER_NEAREST_EXACT``: the same half-pixel-centre grid as
the image's ``INTER_LINEAR``, which plain ``INTER_NEAREST`` is not), so no output depth pixel mixes valid
and invalid (0) measurements. All randomness comes from a ``np.random.Generator`` passed in, so a sample's
augmentation is reproducible from its seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .rgbd import Sample

DEPTH_INTERPOLATION = cv2.INTER_NEAREST_EXACT
IMAGE_INTERPOLATION = cv2.INTER_LINEAR


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation settings.

    ``hflip`` and ``jitter`` are probabilities. When jitter is applied, brightness, contrast and saturation
    factors are drawn from ``[1 - x, 1 + x]`` and the hue shift from ``[-hue, hue]`` (fraction of the colour
    wheel). ``crop_scale`` is the crop's area as a fraction of the largest crop with the output's aspect that
    fits in the image; ``crop_ratio`` multiplies the output's aspect (1.0 = no distortion), log-uniformly.
    """

    hflip: float = 0.5
    jitter: float = 0.8
    crop_scale: tuple[float, float] = (0.5, 1.0)
    crop_ratio: tuple[float, float] = (0.9, 1.1)
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.02

    def __post_init__(self) -> None:
        for name in ("hflip", "jitter"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        lo, hi = self.crop_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        rlo, rhi = self.crop_ratio
        if not 0.0 < rlo <= rhi:
            raise ValueError(f"crop_ratio must satisfy 0 < low <= high, got {self.crop_ratio}")
        for name in ("brightness", "contrast", "saturation"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")


def _with(sample: Sample, bgr: np.ndarray, depth: np.ndarray | None) -> Sample:
    """A copy of ``sample`` with new image and depth (other keys kept)."""
    out = dict(sample)
    out["bgr"] = bgr
    out["depth_m"] = depth
    return out


def crop_and_resize(sample: Sample, box: tuple[int, int, int, int], size: tuple[int, int]) -> Sample:
    """Crop ``box`` = (top, left, height, width) from image and depth, then resize both to ``size`` (h, w)."""
    top, left, h, w = box
    oh, ow = size
    bgr = sample["bgr"][top : top + h, left : left + w]
    depth = sample["depth_m"]
    if depth is not None:
        depth = depth[top : top + h, left : left + w]
    if (h, w) != (oh, ow):
        bgr = cv2.resize(bgr, (ow, oh), interpolation=IMAGE_INTERPOLATION)
        if depth is not None:
            depth = cv2.resize(depth, (ow, oh), interpolation=DEPTH_INTERPOLATION)
    bgr = np.ascontiguousarray(bgr)
    return _with(sample, bgr, None if depth is None else np.ascontiguousarray(depth, dtype=np.float32))


def center_box(src_hw: tuple[int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The largest centred crop of ``src_hw`` with the aspect of ``size``."""
    h, w = src_hw
    oh, ow = size
    ch, cw = min(h, round(w * oh / ow)), min(w, round(h * ow / oh))
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def resize_to(sample: Sample, size: tuple[int, int], keep_aspect: bool = True) -> Sample:
    """Deterministic evaluation path: centre-crop to the aspect of ``size`` (or stretch, with
    ``keep_aspect=False``), then resize image (bilinear) and depth (nearest) to ``size`` (h, w)."""
    h, w = sample["bgr"].shape[:2]
    box = center_box((h, w), size) if keep_aspect else (0, 0, h, w)
    return crop_and_resize(sample, box, size)


def random_crop_box(
    src_hw: tuple[int, int],
    size: tuple[int, int],
    scale: tuple[float, float],
    ratio: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[int, int, int, int]:
    """A random (top, left, height, width) box: area fraction from ``scale`` of the largest box with the
    output's aspect, that aspect times a log-uniform factor from ``ratio``, at a uniform position."""
    h, w = src_hw
    _, _, base_h, base_w = center_box(src_hw, size)
    area = rng.uniform(*scale)
    aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
    ch = min(h, max(1, round(base_h * math.sqrt(area / aspect))))
    cw = min(w, max(1, round(base_w * math.sqrt(area * aspect))))
    top = int(rng.integers(0, h - ch + 1))
    left = int(rng.integers(0, w - cw + 1))
    return top, left, ch, cw


def random_resized_crop(
    sample: Sample,
    size: tuple[int, int],
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.5, 1.0),
    ratio: tuple[float, float] = (0.9, 1.1),
) -> Sample:
    """The same random crop of image and depth, resized to ``size`` (h, w)."""
    box = random_crop_box(sample["bgr"].shape[:2], size, scale, ratio, rng)
    return crop_and_resize(sample, box, size)


def hflip(sample: Sample) -> Sample:
    """Mirror image and depth left to right."""
    depth = sample["depth_m"]
    bgr = np.ascontiguousarray(sample["bgr"][:, ::-1])
    return _with(sample, bgr, None if depth is None else np.ascontiguousarray(depth[:, ::-1]))


def color_jitter(sample: Sample, cfg: AugmentConfig, rng: np.random.Generator) -> Sample:
    """Random brightness, contrast, saturation and hue on the image only (depth passes through untouched)."""
    b = rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
    c = rng.uniform(1 - cfg.contrast, 1 + cfg.contrast)
    s = rng.uniform(1 - cfg.saturation, 1 + cfg.saturation)
    hue_deg = rng.uniform(-cfg.hue, cfg.hue) * 360.0
    img = sample["bgr"].astype(np.float32) * np.float32(b / 255.0)
    img = np.clip(img, 0.0, 1.0)
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    img = np.clip((img - gray.mean()) * c + gray.mean(), 0.0, 1.0)
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[:, :, None]
    img = np.clip((img - gray) * s + gray, 0.0, 1.0)
    if hue_deg != 0.0:
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)  # float input: H in [0, 360)
        hsv[:, :, 0] = np.mod(hsv[:, :, 0] + hue_deg, 360.0)
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    bgr = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    return _with(sample, bgr, sample["depth_m"])


def augment(sample: Sample, size: tuple[int, int], cfg: AugmentConfig, rng: np.random.Generator) -> Sample:
    """Training augmentation: random resized crop to ``size`` (h, w), then flip, then colour jitter.

    Every random draw is made whether or not a step applies, so the stream of draws (and so the result for
    a given seed) does not depend on earlier outcomes.
    """
    out = random_resized_crop(sample, size, rng, cfg.crop_scale, cfg.crop_ratio)
    do_flip = rng.random() < cfg.hflip
    do_jitter = rng.random() < cfg.jitter
    jitter_rng = np.random.default_rng(rng.integers(0, 2**63))
    if do_flip:
        out = hflip(out)
    if do_jitter:
        out = color_jitter(out, cfg, jitter_rng)
    return out
