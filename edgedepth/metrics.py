"""Depth accuracy with least-squares alignment: one implementation shared by train, quantize and benchmarks.

The protocol (the same as the project's real-data check):
1. resize the predicted relative inverse depth to the ground truth's resolution;
2. on valid pixels, fit scale and shift of the prediction to the ground truth's inverse depth (least squares);
3. convert to depth and clamp to the ground truth's valid range;
4. AbsRel = mean(|d - d*| / d*),  delta1 = mean(max(d / d*, d* / d) < 1.25).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from .errors import InputError

# Dynamic-shape models are scored with the input's longer side at this many pixels (the frame's aspect kept),
# so every model and every report sees the same input size.
EVAL_LONG_SIDE = 320


@dataclass(frozen=True)
class DepthMetrics:
    abs_rel: float
    delta1: float
    valid_pixels: int

    def as_dict(self) -> dict[str, float]:
        return {"abs_rel": self.abs_rel, "delta1": self.delta1, "valid_pixels": float(self.valid_pixels)}


def fit_scale_shift(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Least-squares ``s, t`` minimising ``sum((s * pred + t - target)^2)`` over ``mask``."""
    p = pred[mask].astype(np.float64)
    q = target[mask].astype(np.float64)
    if p.size < 2:
        raise InputError(f"alignment needs at least 2 valid pixels, got {p.size}")
    a = np.stack([p, np.ones_like(p)], axis=1)
    (s, t), *_ = np.linalg.lstsq(a, q, rcond=None)
    return float(s), float(t)


def align_inverse_depth(
    pred_inverse_depth: np.ndarray, gt_depth: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Align a relative inverse-depth map to metric ground truth; returns (depth, valid mask).

    The prediction is resized to the ground truth's shape (bilinear), aligned in inverse depth, converted to
    depth and clamped to the ground truth's range on the valid pixels.
    """
    gt = np.asarray(gt_depth, dtype=np.float64)
    pred = np.asarray(pred_inverse_depth, dtype=np.float32)
    if pred.ndim != 2 or gt.ndim != 2:
        raise InputError(f"expected 2-D maps, got prediction {pred.shape} and ground truth {gt.shape}")
    if pred.shape != gt.shape:
        pred = np.asarray(
            cv2.resize(pred, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR), np.float32
        )
    valid = np.isfinite(gt) & (gt > 0) & np.isfinite(pred)
    if mask is not None:
        valid &= mask.astype(bool)
    s, t = fit_scale_shift(pred.astype(np.float64), 1.0 / np.where(valid, gt, 1.0), valid)
    lo, hi = float(gt[valid].min()), float(gt[valid].max())
    inv = np.clip(s * pred.astype(np.float64) + t, 1.0 / hi, 1.0 / lo)
    return 1.0 / inv, valid


def depth_metrics(
    pred_inverse_depth: np.ndarray, gt_depth: np.ndarray, mask: np.ndarray | None = None
) -> DepthMetrics:
    """AbsRel and delta1 of a relative inverse-depth prediction against metric depth (0 = invalid)."""
    depth, valid = align_inverse_depth(pred_inverse_depth, gt_depth, mask)
    d, g = depth[valid], np.asarray(gt_depth, dtype=np.float64)[valid]
    abs_rel = float(np.mean(np.abs(d - g) / g))
    delta1 = float(np.mean(np.maximum(d / g, g / d) < 1.25))
    return DepthMetrics(abs_rel=abs_rel, delta1=delta1, valid_pixels=int(valid.sum()))


@dataclass(frozen=True)
class Agreement:
    """One model's output against a reference's on one frame, after the affine alignment in inverse depth.

    ``abs_rel`` and ``delta1`` as ``depth_metrics``; ``max_error`` and ``p99_error`` are the largest and the
    99th-percentile per-pixel relative depth errors; ``weighted_abs_rel`` weighs each pixel's error by the
    reference's confidence (the pixels the model itself trusts).
    """

    abs_rel: float
    delta1: float
    max_error: float
    p99_error: float
    weighted_abs_rel: float
    valid_pixels: int

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.__dict__.items()}


def agreement(
    pred_inverse_depth: np.ndarray, reference_inverse_depth: np.ndarray, confidence: np.ndarray | None = None
) -> Agreement:
    """How closely one model's output agrees with another's (e.g. INT8 or an engine against FP32), with no
    ground truth: the one comparison behind the quantization gate's agreement mode and ``edgedepth verify``.

    The reference's inverse depth, normalised to a positive range, stands in for ground truth. Pixels outside
    the reference's 1st-99th percentile are left out rather than clipped: a clipped pseudo ground truth is no
    longer an affine map of the reference, so identical maps would otherwise score AbsRel > 0.
    """
    ref = np.asarray(reference_inverse_depth, dtype=np.float64)
    lo, hi = np.percentile(ref, [1, 99])
    span = max(hi - lo, 1e-6)
    inside = (ref >= lo) & (ref <= hi)
    gt = 1.0 / (0.1 + (np.clip(ref, lo, hi) - lo) / span)  # inverse depth in [0.1, 1.1]: depth within ~11x
    depth, valid = align_inverse_depth(pred_inverse_depth, gt, inside)
    d, g = depth[valid], gt[valid]
    rel = np.abs(d - g) / g
    weights = np.ones_like(rel) if confidence is None else np.asarray(confidence, np.float64)[valid]
    return Agreement(
        abs_rel=float(rel.mean()),
        delta1=float(np.mean(np.maximum(d / g, g / d) < 1.25)),
        max_error=float(rel.max()),
        p99_error=float(np.percentile(rel, 99)),
        weighted_abs_rel=float(np.sum(weights * rel) / max(float(weights.sum()), 1e-12)),
        valid_pixels=int(valid.sum()),
    )


def agreement_metrics(pred_inverse_depth: np.ndarray, reference_inverse_depth: np.ndarray) -> DepthMetrics:
    """:func:`agreement` as AbsRel and delta1, the figures the quantization gate compares."""
    a = agreement(pred_inverse_depth, reference_inverse_depth)
    return DepthMetrics(abs_rel=a.abs_rel, delta1=a.delta1, valid_pixels=a.valid_pixels)


def mean_metrics(items: Iterable[DepthMetrics]) -> DepthMetrics:
    """Average per-frame metrics (each frame weighs the same, as in the usual benchmarks)."""
    items = list(items)
    if not items:
        raise InputError("no frames to average")
    return DepthMetrics(
        abs_rel=float(np.mean([m.abs_rel for m in items])),
        delta1=float(np.mean([m.delta1 for m in items])),
        valid_pixels=int(sum(m.valid_pixels for m in items)),
    )


def ground_plane_prior(height: int, width: int) -> np.ndarray:
    """The trivial baseline: inverse depth rising linearly towards the bottom of the frame."""
    return np.repeat(np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None], width, axis=1)


@dataclass(frozen=True)
class GroupScore:
    """One group's mean metrics for the model and for the ground-plane prior on the same frames."""

    frames: int
    model: DepthMetrics
    prior: DepthMetrics

    @property
    def ratio(self) -> float:
        """Model AbsRel / prior AbsRel: below 1 the model beats the prior."""
        return self.model.abs_rel / self.prior.abs_rel


@dataclass(frozen=True)
class GroupReport:
    """Scores by group, their macro average (mean over frames in a group, then over groups) and the skill.

    Skill = geometric mean over groups of (model AbsRel / prior AbsRel): 1.0 is no better than the ground-plane
    prior, lower is better. Groups differ in size (90 tabletop frames, 4 KITTI frames), hence the macro average.
    """

    groups: dict[str, GroupScore]

    @property
    def macro(self) -> DepthMetrics:
        return mean_metrics(g.model for g in self.groups.values())

    @property
    def prior_macro(self) -> DepthMetrics:
        return mean_metrics(g.prior for g in self.groups.values())

    @property
    def skill(self) -> float:
        return float(np.exp(np.mean([np.log(g.ratio) for g in self.groups.values()])))

    def as_dict(self) -> dict[str, object]:
        return {
            "skill": self.skill,
            "macro": self.macro.as_dict(),
            "prior_macro": self.prior_macro.as_dict(),
            "groups": {
                name: {
                    "frames": g.frames,
                    "model": g.model.as_dict(),
                    "prior": g.prior.as_dict(),
                    "ratio": g.ratio,
                }
                for name, g in self.groups.items()
            },
        }


def group_report(rows: Iterable[tuple[str, DepthMetrics, DepthMetrics]]) -> GroupReport:
    """Build a :class:`GroupReport` from per-frame ``(group, model metrics, prior metrics)`` rows."""
    by_group: dict[str, list[tuple[DepthMetrics, DepthMetrics]]] = {}
    for group, model, prior in rows:
        by_group.setdefault(group, []).append((model, prior))
    if not by_group:
        raise InputError("no frames to report")
    return GroupReport(
        {
            name: GroupScore(len(pairs), mean_metrics(m for m, _ in pairs), mean_metrics(p for _, p in pairs))
            for name, pairs in sorted(by_group.items())
        }
    )


def bootstrap_skills(
    rows: Iterable[tuple[str, DepthMetrics, DepthMetrics]], replicates: int, seed: int = 0
) -> np.ndarray:
    """The skill of ``replicates`` bootstrap draws: each group's frames resampled with replacement, the
    groups themselves kept (the macro average weighs groups, not frames).

    The draws depend only on the seed and the groups' sizes, so two models scored on the same frames in the
    same order get the same draws: the ratio of their arrays is a paired comparison.
    """
    if replicates < 1:
        raise InputError(f"bootstrap replicates must be at least 1, got {replicates}")
    by_group: dict[str, list[tuple[float, float]]] = {}
    for group, model, prior in rows:
        by_group.setdefault(group, []).append((model.abs_rel, prior.abs_rel))
    if not by_group:
        raise InputError("no frames to bootstrap")
    rng = np.random.default_rng(seed)
    log_ratio = np.zeros(replicates)
    for _, pairs in sorted(by_group.items()):
        scores = np.asarray(pairs)  # frames x (model, prior)
        means = scores[rng.integers(0, len(scores), (replicates, len(scores)))].mean(axis=1)
        log_ratio += np.log(means[:, 0] / means[:, 1])
    return np.exp(log_ratio / len(by_group))


def interval(samples: np.ndarray, level: float = 0.9) -> tuple[float, float]:
    """The central ``level`` interval of bootstrap samples (percentiles)."""
    tail = 50.0 * (1.0 - level)
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return float(low), float(high)
