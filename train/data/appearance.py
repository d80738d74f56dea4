"""Camera-like appearance randomisation for rendered frames: the image changes, the depth never does.

Renders are too clean: no white-balance error, no sensor noise, no defocus, no compression, no lens fall-off.
Each effect here imitates one of those, drawn from a ``numpy.random.Generator`` so a sample stays reproducible
from its seed. With ``p = 0`` (the default) nothing is drawn at all, so recipes without it are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AppearanceConfig:
    """``p``: probability that a frame is randomised at all; then each effect is drawn independently."""

    p: float = 0.0
    white_balance: float = 0.12  # per-channel gain in [1 - x, 1 + x]
    gamma: tuple[float, float] = (0.7, 1.45)
    blur: float = 0.3  # probability of a Gaussian blur with sigma in [0.3, 1.4] px
    noise: float = 0.03  # max std of sensor noise, as a fraction of full scale (signal-dependent)
    jpeg: float = 0.5  # probability of a JPEG round trip at quality 30-90
    vignette: float = 0.5  # probability of a radial fall-off of up to 40% at the corners

    def __post_init__(self) -> None:
        for name in ("p", "blur", "jpeg", "vignette"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        lo, hi = self.gamma
        if not 0.0 < lo <= hi:
            raise ValueError(f"gamma must satisfy 0 < low <= high, got {self.gamma}")
        if not 0.0 <= self.white_balance < 1.0 or not 0.0 <= self.noise < 0.5:
            raise ValueError("white_balance must be in [0, 1) and noise in [0, 0.5)")


def randomize_appearance(bgr: np.ndarray, cfg: AppearanceConfig, rng: np.random.Generator) -> np.ndarray:
    """Return a randomised copy of a uint8 BGR image (or the image itself when not drawn)."""
    if cfg.p <= 0.0 or rng.random() >= cfg.p:
        return bgr
    h, w = bgr.shape[:2]
    img = bgr.astype(np.float32) / 255.0
    img *= rng.uniform(1 - cfg.white_balance, 1 + cfg.white_balance, 3).astype(np.float32)
    img = np.clip(img, 0.0, 1.0) ** np.float32(np.exp(rng.uniform(*np.log(cfg.gamma))))
    if rng.random() < cfg.vignette:
        yy, xx = np.mgrid[:h, :w].astype(np.float32)
        r2 = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
        img *= (1.0 - rng.uniform(0.1, 0.4) * r2)[..., None]
    if rng.random() < cfg.blur:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.4))
    if cfg.noise > 0:
        std = rng.uniform(0.0, cfg.noise)
        noise = rng.standard_normal(img.shape).astype(np.float32)
        img = img + noise * np.float32(std) * np.sqrt(np.clip(img, 0.02, 1.0))  # shot noise grows with signal
    out = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < cfg.jpeg:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 91))])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out
