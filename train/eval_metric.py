"""How metric the run-time scale is, on RGB-D folders: sparse points and the camera's height, per group.

    edgedepth-train eval-metric --onnx edgedepth/models/efficientdepth-s-fp32.onnx --data ../shared/data/rgbd_real

For each frame the model predicts relative inverse depth (at the evaluation long side), then:

- **points**: 20 and 100 valid ground-truth pixels sampled (seeded), 5% of them given a wrong depth (x or /
  1.5-3), fitted with ``edgedepth.metric.fit_points``;
- **camera height** (frames of the groups with a floor in view, ``FLOOR_GROUPS``, whose lower part holds a
  plane within 30 degrees of the camera's down axis, fitted by RANSAC to the ground truth's points): the true
  height and pitch from that plane, fitted with ``fit_camera_height`` with the pitch, and without it (shift taken as 0);
- **oracle**: least squares on every valid pixel (the evaluation protocol's alignment).

Metric AbsRel and delta1 on every valid pixel, depth clamped to the ground truth's range as in the protocol;
averaged per group, then over groups (macro). Needs no torch.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedepth import DepthEstimator
from edgedepth.errors import InputError
from edgedepth.intrinsics import Intrinsics
from edgedepth.metric import MetricFit, fit_camera_height, fit_points
from edgedepth.metrics import EVAL_LONG_SIDE, align_inverse_depth
from edgedepth.rgbd import iter_rgbd

POINT_COUNTS = (20, 100)
FLOOR_GROUPS = ("nyu", "sun3d", "7scenes-kitchen", "hololens-office")  # scenes with a floor in view
OUTLIER_FRACTION = 0.05


@dataclass(frozen=True)
class Floor:
    height_m: float
    pitch_deg: float
    roll_deg: float


def scores(depth: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """AbsRel and delta1 of metric depth against ground truth on valid pixels (clamped to its range)."""
    valid = gt > 0
    g = gt[valid].astype(np.float64)
    d = np.clip(np.nan_to_num(depth[valid].astype(np.float64), nan=g.max()), g.min(), g.max())
    return float(np.mean(np.abs(d - g) / g)), float(np.mean(np.maximum(d / g, g / d) < 1.25))


def true_floor(gt: np.ndarray, k: Intrinsics, rng: np.random.Generator) -> Floor | None:
    """The floor plane of the ground truth's lower 40%, if one holds a third of its points."""
    h = gt.shape[0]
    x, y = k.rays()
    lower = np.zeros_like(gt, dtype=bool)
    lower[int(h * 0.6) :] = True
    sel = lower & (gt > 0)
    if sel.sum() < 500:
        return None
    pts = np.stack([x[sel] * gt[sel], y[sel] * gt[sel], gt[sel]], axis=1).astype(np.float64)
    pts = pts[rng.choice(len(pts), min(len(pts), 5_000), replace=False)]
    best, best_plane = 0, None
    for _ in range(200):
        a, b, c = pts[rng.choice(len(pts), 3, replace=False)]
        n = np.cross(b - a, c - a)
        if np.linalg.norm(n) < 1e-9:
            continue
        n /= np.linalg.norm(n)
        if n[1] < 0:
            n = -n
        if n[1] < math.cos(math.radians(30)):  # not a floor: within 30 degrees of the camera's down axis
            continue
        dist = float(n @ a)
        count = int((np.abs(pts @ n - dist) < 0.02).sum())
        if count > best:
            best, best_plane = count, (n, dist)
    if best_plane is None or best < len(pts) / 3:
        return None
    n, dist = best_plane
    inliers = np.abs(pts @ n - dist) < 0.02
    centroid = pts[inliers].mean(axis=0)
    _, _, vt = np.linalg.svd(pts[inliers] - centroid)
    n = vt[-1] if vt[-1][1] > 0 else -vt[-1]
    pitch = math.degrees(math.asin(float(np.clip(n[2], -1, 1))))
    roll = math.degrees(math.atan2(-float(n[0]), float(n[1])))
    return Floor(float(n @ centroid), pitch, roll)


def sample_points(gt: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    v, u = np.nonzero(gt > 0)
    pick = rng.choice(len(u), min(count, len(u)), replace=False)
    depth = gt[v[pick], u[pick]].astype(np.float64)
    wrong = rng.choice(len(pick), max(1, round(OUTLIER_FRACTION * len(pick))), replace=False)
    factor = rng.uniform(1.5, 3.0, len(wrong))
    depth[wrong] *= np.where(rng.random(len(wrong)) < 0.5, factor, 1 / factor)
    return np.stack([u[pick], v[pick], depth], axis=1).astype(np.float64)


def evaluate(model: str | Path, roots: list[str], long_side: int = EVAL_LONG_SIDE, seed: int = 0) -> dict:
    """Per method, per group: mean AbsRel, mean delta1 and the number of frames."""
    rng = np.random.default_rng(seed)
    rows: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    with DepthEstimator(model, backend="onnxruntime", long_side=long_side) as est:  # as edgedepth-train eval
        for root in roots:
            for frame in iter_rgbd(root):
                group = str(frame.meta.get("group", Path(root).name))
                inv = est.predict(frame.bgr).inverse_depth
                gt = frame.depth_m
                depth, _ = align_inverse_depth(inv, gt)
                rows["oracle (all pixels)"][group].append(scores(depth, gt))
                for count in POINT_COUNTS:
                    try:
                        fit = fit_points(inv, sample_points(gt, count, rng))
                        rows[f"{count} points, 5% wrong"][group].append(scores(fit.depth(inv), gt))
                    except InputError:
                        rows[f"{count} points, 5% wrong"][group].append((float("nan"), float("nan")))
                meta = frame.meta
                if group not in FLOOR_GROUPS:
                    continue
                k = Intrinsics(
                    abs(meta["fx"]), abs(meta["fy"]), meta["cx"], meta["cy"], gt.shape[1], gt.shape[0]
                )
                floor = true_floor(gt, k, rng)
                if floor is None:
                    continue
                for name, pitch in (("camera height + pitch", floor.pitch_deg), ("camera height only", None)):
                    try:
                        fit: MetricFit = fit_camera_height(
                            inv, k, floor.height_m, pitch, floor.roll_deg if pitch is not None else 0.0
                        )
                        rows[name][group].append(scores(fit.depth(inv), gt))
                    except InputError:
                        rows[name][group].append((float("nan"), float("nan")))
    return {m: {g: _mean(v) for g, v in groups.items()} for m, groups in rows.items()}


def _mean(values: list[tuple[float, float]]) -> tuple[float, float, int, int]:
    ok = [v for v in values if math.isfinite(v[0])]
    if not ok:
        return float("nan"), float("nan"), 0, len(values)
    return float(np.mean([v[0] for v in ok])), float(np.mean([v[1] for v in ok])), len(ok), len(values)


def format_table(result: dict) -> str:
    groups = sorted({g for per in result.values() for g in per})
    methods = list(result)
    lines = ["| group | " + " | ".join(methods) + " |", "|---|" + "--:|" * len(methods)]
    for g in groups:
        cells = []
        for m in methods:
            if g in result[m]:
                a, d, n, total = result[m][g]
                cells.append(f"{a:.3f} / {d:.2f}" + (f" ({n}/{total})" if n != total else f" ({n})"))
            else:
                cells.append("-")
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    macro = []
    for m in methods:
        vals = [v for v in result[m].values() if math.isfinite(v[0])]
        macro.append(
            f"**{np.mean([v[0] for v in vals]):.3f} / {np.mean([v[1] for v in vals]):.2f}**" if vals else "-"
        )
    lines.append("| macro | " + " | ".join(macro) + " |")
    return "\n".join(lines)
