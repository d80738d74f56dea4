"""Textures for the synthetic renderer: real photographs (or procedural patterns) as mip atlases, and the
albedo lookup that samples them at each hit's own mip level.

Loaded once per process and cached, so forked loader workers inherit them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgedepth.errors import DataError

from .scene_model import Material

#: ``../shared/data/images`` beside the repository root.
DEFAULT_TEXTURE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "images"
_IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
_TEX_MAX_SIDE, _TEX_LEVELS = 512, 6
_F32 = np.float32
_BANKS: dict[str, list[MipAtlas]] = {}  # per-process cache: folder -> textures
_SRGB_TO_LINEAR = ((np.arange(256, dtype=_F32) / 255) ** 2).astype(_F32)  # gamma 2: cheap and close enough


def load_textures(texture_dir: str | Path | None = DEFAULT_TEXTURE_DIR) -> list[MipAtlas]:
    """Load every image in ``texture_dir`` once per process as mip atlases; None gives procedural textures.

    Raises DataError naming the folder when it is missing, empty or holds an unreadable image.
    """
    key = "<procedural>" if texture_dir is None else str(Path(texture_dir).resolve())
    if key in _BANKS:
        return _BANKS[key]
    if texture_dir is None:
        images = procedural_textures()
    else:
        folder = Path(texture_dir)
        if not folder.is_dir():
            raise DataError(f"texture folder {folder} does not exist (texture_dir=None: procedural textures)")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_EXTS)
        if not files:
            raise DataError(f"texture folder {folder} holds no images ({', '.join(sorted(_IMAGE_EXTS))})")
        images = []
        for f in files:
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                raise DataError(f"texture image {f} in folder {folder} cannot be read")
            s = _TEX_MAX_SIDE / max(img.shape[:2])
            images.append(cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else img)
    _BANKS[key] = [MipAtlas.build(img) for img in images]
    return _BANKS[key]


@dataclass(frozen=True)
class MipAtlas:
    """A texture's mip levels packed in one image, each with a 1-pixel wrapped border, so one cv2.remap samples
    every pixel at its own level with correct wrap-around. ``table`` rows: scale, width, height, x0, y0."""

    atlas: np.ndarray
    table: np.ndarray

    @staticmethod
    def build(img: np.ndarray) -> MipAtlas:
        levels = [img]
        while len(levels) < _TEX_LEVELS and min(levels[-1].shape[:2]) >= 16:
            levels.append(cv2.pyrDown(levels[-1]))
        pads = [cv2.copyMakeBorder(lv, 1, 1, 1, 1, cv2.BORDER_WRAP) for lv in levels]
        h0, w0 = pads[0].shape[:2]
        atlas = np.zeros((max(h0, sum(p.shape[0] for p in pads[1:])), w0 + pads[1].shape[1], 3), np.uint8)
        atlas[:h0, :w0] = pads[0]
        rows, y = [(1.0, w0 - 2, h0 - 2, 1, 1)], 0
        for i, p in enumerate(pads[1:], 1):
            atlas[y : y + p.shape[0], w0 : w0 + p.shape[1]] = p
            rows.append((0.5**i, p.shape[1] - 2, p.shape[0] - 2, w0 + 1, y + 1))
            y += p.shape[0]
        return MipAtlas(atlas, np.array(rows, _F32))


def _remap(img: np.ndarray, mx: np.ndarray, my: np.ndarray) -> np.ndarray:
    """Bilinear cv2.remap at n scattered points (in rows of 256: remap's maps must be shorter than 32767)."""
    n = mx.size
    rows = -(-n // 256)
    maps = np.zeros((2, rows * 256), _F32)
    maps[0, :n], maps[1, :n] = mx, my
    mx, my = maps[0].reshape(rows, 256), maps[1].reshape(rows, 256)
    return cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(rows * 256, -1)[
        :n
    ]


def albedo(mat: Material, bank: list[MipAtlas], u, v, depth, fx: float) -> np.ndarray:
    """Linear BGR albedo (3, n): the texture planar-mapped by world-space (u, v), mip level from the footprint."""
    tint = np.asarray(mat.tint, _F32)[:, None]
    if mat.tex < 0 or mat.mix <= 0 or not bank:
        return np.broadcast_to(tint, (3, u.size))
    tex = bank[mat.tex % len(bank)]
    footprint = depth * _F32(mat.scale / fx * math.sqrt(2))  # texels per pixel; x sqrt 2 rounds the level
    level = (footprint.view(np.int32) >> 23) - 127  # floor(log2(footprint)) from the float's exponent bits
    level = np.minimum(np.maximum(level, 0), len(tex.table) - 1)
    if level.size and level.min() == level.max():  # one mip level for all: scalars are cheaper
        scale, width, height, x0, y0 = tex.table[level[0]]
    else:
        scale, width, height, x0, y0 = (np.take(col, level) for col in tex.table.T)
    tu = (u * _F32(mat.scale) + _F32(mat.offset[0])) * scale
    tv = (v * _F32(mat.scale) + _F32(mat.offset[1])) * scale
    mx = tu - np.floor(tu / width) * width + x0  # wrap into the level's tile
    my = tv - np.floor(tv / height) * height + y0
    lin = np.take(_SRGB_TO_LINEAR, _remap(tex.atlas, mx, my).T)
    lin *= tint * _F32(mat.mix)
    lin += tint * _F32(1 - mat.mix)
    return lin


def procedural_textures() -> list[np.ndarray]:
    """Twelve fixed noise, checker, stripe and tile textures (BGR uint8) for rendering without photographs."""
    rng = np.random.default_rng(1234)
    yy, xx = np.mgrid[0:256, 0:256].astype(np.float32)
    out = []
    for i in range(12):
        noise = sum(
            cv2.resize(rng.random((s, s, 3), dtype=np.float32), (256, 256), interpolation=cv2.INTER_CUBIC)
            / s**0.5
            for s in (4, 8, 16, 32, 64)
        )
        noise = (noise - noise.min()) / (np.ptp(noise) + 1e-6)
        a, b = rng.uniform(0.1, 1.0, 3), rng.uniform(0.1, 1.0, 3)
        period = int(rng.choice([16, 32, 64]))
        pattern = [
            noise[..., :1],
            ((xx // period + yy // period) % 2)[..., None],
            (0.5 + 0.5 * np.sin(xx * 2 * np.pi / period + 6 * noise[..., 0]))[..., None],
            (((xx % period) > 2) & ((yy % period) > 2))[..., None].astype(np.float32),
        ][i % 4]
        tex = (a * pattern + b * (1 - pattern)) * (0.7 + 0.6 * noise)
        out.append(np.clip(tex * 255, 0, 255).astype(np.uint8))
    return out
