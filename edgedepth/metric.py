"""Metric depth at run time, from what a robot already has: sparse metric points, or its camera's height.

A relative prediction is inverse depth up to an affine map; metric depth is ``1 / (scale * r + shift)``.

- :func:`fit_points`: pixels with depths in metres (LiDAR returns, a ToF sensor, SLAM landmarks, AprilTags):
  RANSAC over pairs, then least squares on the inliers, in inverse depth; the inlier count is reported.
- :func:`fit_camera_height`: the floor is found as the largest plane in the lower part of the image (on a
  plane, inverse depth is linear in the normalised image coordinates, whatever the affine map), then the
  scale that puts the camera ``height_m`` above it. The height fixes one number; with the camera's pitch
  (and roll) from its mount or IMU both are fixed; without it the shift is taken as 0, which holds only for
  models whose output has no offset.

Intrinsics alone give no scale to a relative prediction; see ``edgedepth.intrinsics``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .intrinsics import Intrinsics
from .postprocess import depth_from_inverse

MIN_POINTS = 3
FLOOR_PIXELS = 20_000  # floor candidates sampled for the plane fit


@dataclass(frozen=True)
class MetricFit:
    """``depth_m = 1 / (scale * inverse_depth + shift)``, how it was found, and how well it fits.

    ``inliers`` of ``total`` points (or floor candidates) agreed with the fit; ``error`` is the median
    relative depth error on the inlier points (points), or the floor plane's median residual in the
    prediction's units (camera height). ``beyond`` is the fraction of the map's pixels that the fit puts at
    or beyond infinity (their depth is NaN): a fit extrapolated from a few points or from the floor alone
    can bend the far part of the scene past the horizon, and more than a few percent means the scale and
    shift are not to be trusted there.
    """

    scale: float
    shift: float
    method: str
    inliers: int
    total: int
    error: float
    beyond: float = 0.0

    def depth(self, inverse_depth: np.ndarray) -> np.ndarray:
        """Metric depth (float32); NaN where the fit puts a pixel at or beyond infinity."""
        return depth_from_inverse(inverse_depth, self.scale, self.shift)


def sample(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear samples of a 2-D map at pixel coordinates (u, v)."""
    h, w = image.shape
    u0 = np.clip(np.floor(u).astype(int), 0, w - 2 if w > 1 else 0)
    v0 = np.clip(np.floor(v).astype(int), 0, h - 2 if h > 1 else 0)
    du, dv = np.clip(u - u0, 0, 1), np.clip(v - v0, 0, 1)
    u1, v1 = np.minimum(u0 + 1, w - 1), np.minimum(v0 + 1, h - 1)
    top = image[v0, u0] * (1 - du) + image[v0, u1] * du
    bottom = image[v1, u0] * (1 - du) + image[v1, u1] * du
    return top * (1 - dv) + bottom * dv


def beyond_fraction(inverse_depth: np.ndarray, scale: float, shift: float) -> float:
    """The fraction of finite pixels that ``1 / (scale * r + shift)`` puts at or beyond infinity."""
    finite = np.isfinite(inverse_depth)
    if not finite.any():
        return 0.0
    return float(np.mean(scale * inverse_depth[finite] + shift <= 0))


def _check_map(inverse_depth: np.ndarray, name: str = "inverse_depth") -> np.ndarray:
    inv = np.asarray(inverse_depth, dtype=np.float64)
    if inv.ndim != 2 or inv.size == 0:
        raise InputError(f"{name}: expected a 2-D map, got shape {inv.shape}")
    return inv


def fit_points(
    inverse_depth: np.ndarray,
    points: np.ndarray,
    threshold: float = 0.1,
    iterations: int = 256,
    seed: int = 0,
) -> MetricFit:
    """Scale and shift from ``points``: an (N, 3) array of pixel column, row and depth in metres.

    A point is an inlier when the fit's depth is within ``threshold`` (relative) of its own. Points outside
    the image, or with a NaN or non-positive depth, raise InputError naming the first; so do fewer than 3.
    """
    inv = _check_map(inverse_depth)
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise InputError(f"points: expected an (N, 3) array of u, v, depth in metres, got shape {pts.shape}")
    h, w = inv.shape
    for i, (u, v, d) in enumerate(pts):
        if not (math.isfinite(u) and math.isfinite(v) and 0 <= u <= w - 1 and 0 <= v <= h - 1):
            raise InputError(f"points[{i}] = ({u}, {v}) is outside the {w}x{h} image")
        if not (math.isfinite(d) and d > 0):
            raise InputError(f"points[{i}] has depth {d}; depths must be positive metres")
    if len(pts) < MIN_POINTS:
        raise InputError(f"points: {len(pts)} given; a scale and shift need at least {MIN_POINTS}")
    x, target = sample(inv, pts[:, 0], pts[:, 1]), 1.0 / pts[:, 2]
    rng = np.random.default_rng(seed)

    def inliers_of(s: float, t: float) -> np.ndarray:
        pred = s * x + t
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.abs(1.0 / pred - pts[:, 2]) / pts[:, 2]
        return (pred > 0) & (rel < threshold)

    best = np.zeros(len(pts), dtype=bool)
    for _ in range(iterations):
        i, j = rng.choice(len(pts), 2, replace=False)
        if abs(x[i] - x[j]) < 1e-12:
            continue
        s = (target[i] - target[j]) / (x[i] - x[j])
        if s <= 0:
            continue
        found = inliers_of(s, target[i] - s * x[i])
        if found.sum() > best.sum():
            best = found
    if best.sum() < MIN_POINTS:
        raise InputError(
            f"points: no scale fits {MIN_POINTS} or more of the {len(pts)} points within {threshold:.0%}; "
            "check that they belong to this image"
        )
    for _ in range(3):  # least squares on the inliers, then their inliers again
        a = np.stack([x[best], np.ones(int(best.sum()))], axis=1)
        (s, t), *_ = np.linalg.lstsq(a, target[best], rcond=None)
        refit = inliers_of(s, t)
        if refit.sum() < MIN_POINTS or np.array_equal(refit, best):
            break
        best = refit
    if s <= 0:
        raise InputError("points: the fit gives a non-positive scale; the points contradict the prediction")
    error = float(np.median(np.abs(1.0 / (s * x[best] + t) - pts[best, 2]) / pts[best, 2]))
    return MetricFit(
        float(s), float(t), "points", int(best.sum()), len(pts), error, beyond_fraction(inv, s, t)
    )


def floor_normal(pitch_deg: float, roll_deg: float = 0.0) -> np.ndarray:
    """The floor's unit normal in camera coordinates (x right, y down, z forward) for a camera pitched down by
    ``pitch_deg`` and rolled by ``roll_deg`` about its optical axis."""
    p, r = math.radians(pitch_deg), math.radians(roll_deg)
    return np.array([-math.sin(r) * math.cos(p), math.cos(r) * math.cos(p), math.sin(p)])


def fit_camera_height(
    inverse_depth: np.ndarray,
    intrinsics: Intrinsics,
    height_m: float,
    pitch_deg: float | None = None,
    roll_deg: float = 0.0,
    mask: np.ndarray | None = None,
    lower_fraction: float = 0.4,
    seed: int = 0,
) -> MetricFit:
    """Scale (and, with ``pitch_deg``, shift) that put the camera ``height_m`` above the floor.

    Floor candidates are ``mask`` (True on floor pixels) or the lower ``lower_fraction`` of the image; the
    floor is the largest plane among them. Intrinsics for another size of the same aspect are scaled.
    """
    inv = _check_map(inverse_depth)
    if not (isinstance(height_m, int | float) and math.isfinite(height_m) and height_m > 0):
        raise InputError(f"height_m={height_m!r} must be a positive number of metres")
    h, w = inv.shape
    k = intrinsics.scaled_to(w, h)
    x, y = k.rays()
    candidates = np.zeros((h, w), dtype=bool)
    if mask is not None:
        if np.shape(mask) != (h, w):
            raise InputError(f"mask: shape {np.shape(mask)} does not match the {w}x{h} map")
        candidates = np.asarray(mask, dtype=bool)
    else:
        candidates[int(h * (1 - lower_fraction)) :] = True
    candidates &= np.isfinite(inv)
    rng = np.random.default_rng(seed)
    idx = np.flatnonzero(candidates)
    if idx.size < 100:
        raise InputError(f"the floor region holds {idx.size} pixels; it needs at least 100")
    idx = rng.choice(idx, min(idx.size, FLOOR_PIXELS), replace=False)
    xs, ys, rs = x.ravel()[idx], y.ravel()[idx], inv.ravel()[idx]
    design = np.stack([xs, ys, np.ones_like(xs)], axis=1)
    spread = float(np.percentile(rs, 95) - np.percentile(rs, 5)) or 1.0
    threshold = 0.02 * spread
    best = np.zeros(idx.size, dtype=bool)
    for _ in range(200):  # RANSAC: r = A x + B y + C on a plane
        pick = rng.choice(idx.size, 3, replace=False)
        try:
            coef = np.linalg.solve(design[pick], rs[pick])
        except np.linalg.LinAlgError:
            continue
        found = np.abs(design @ coef - rs) < threshold
        if found.sum() > best.sum():
            best = found
    if best.sum() < 0.1 * idx.size:
        raise InputError("no floor plane found in the floor region; pass mask= with the floor's pixels")
    coef, *_ = np.linalg.lstsq(design[best], rs[best], rcond=None)
    residual = float(np.median(np.abs(design[best] @ coef - rs[best])))
    if pitch_deg is not None:
        n = floor_normal(pitch_deg, roll_deg)
        w_floor = (n[0] * xs[best] + n[1] * ys[best] + n[2]) / height_m  # true inverse depth on the floor
        (alpha, beta), *_ = np.linalg.lstsq(
            np.stack([w_floor, np.ones_like(w_floor)], axis=1), rs[best], rcond=None
        )
        method = f"camera height {height_m:g} m, pitch {pitch_deg:g} deg, roll {roll_deg:g} deg"
    else:  # shift assumed 0: (A, B, C) = alpha / h * n with |n| = 1, the floor below the camera (n_y > 0)
        alpha, beta = math.copysign(height_m * float(np.linalg.norm(coef)), coef[1]), 0.0
        method = f"camera height {height_m:g} m (no pitch: shift taken as 0)"
    if alpha <= 0:
        raise InputError(
            "the floor fit gives a non-positive scale: is the floor in the lower part of the image?"
        )
    scale, shift = 1.0 / alpha, -beta / alpha
    beyond = beyond_fraction(inv, scale, shift)
    return MetricFit(scale, shift, method, int(best.sum()), int(idx.size), residual, beyond)
