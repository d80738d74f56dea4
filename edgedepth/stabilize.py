"""Stable video depth: each frame's relative inverse depth aligned to the previous output, without smearing.

Per frame, a robust scale and shift are fitted that map the new prediction onto the previous output, on
pixels that are confident and whose image did not change (a frame-difference mask): a model's per-frame
scale and shift jitter is what makes video depth flicker. The fitted parameters are pulled a little towards
the frame's own (median / mean-absolute-deviation) scale every frame, so that errors cannot accumulate.
Where the image did not change, pixels are also blended with the previous output; pixels that moved are
never blended, so moving objects keep their own depth.

    stabilizer = Stabilizer()
    for item in est.stream(source, stabilize=False):   # stream(stabilize=True) does this, at the
        result = stabilizer(item.frame, item.result)       # model's resolution
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import cv2
import numpy as np

from .result import DepthResult

FIT_SAMPLES = 8192  # the fit samples about this many pixels (every Nth of each row and column, N >= 4)
MOTION_THRESHOLD = 12.0  # a pixel whose grey level changes by more than this between frames moved


def subsample(image: np.ndarray) -> np.ndarray:
    """Every Nth pixel of each row and column, N chosen so that about FIT_SAMPLES remain (at least 4)."""
    n = max(4, round(float(np.sqrt(image.shape[0] * image.shape[1] / FIT_SAMPLES))))
    return image[::n, ::n]


@dataclass
class Stabilizer:
    """``anchor``: how far each frame is pulled back to its own normalisation (0: pure alignment, drifts;
    1: no stabilisation). ``blend``: weight of the previous output on unchanged confident pixels.
    ``motion_threshold``: grey-level change (0-255) above which a pixel counts as changed.
    ``min_confidence``: pixels below it do not inform the fit or the blend."""

    anchor: float = 0.05
    blend: float = 0.5
    motion_threshold: float = 12.0
    min_confidence: float = 0.5

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._prev_out: np.ndarray | None = None
        self._prev_grey: np.ndarray | None = None
        self._reference: tuple[float, float] | None = None  # the first output's median and spread

    def __call__(self, frame_bgr: np.ndarray, result: DepthResult) -> DepthResult:
        """The result aligned to the previous output, with the time it took in ``timings_ms["stabilize"]``."""
        t_start = time.perf_counter()
        inv = result.inverse_depth.astype(np.float32, copy=False)
        grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY) if frame_bgr.ndim == 3 else frame_bgr
        if grey.shape != inv.shape:
            grey = cv2.resize(grey, (inv.shape[1], inv.shape[0]), interpolation=cv2.INTER_AREA)
        prev, prev_grey = self._prev_out, self._prev_grey
        if prev is None or prev_grey is None or prev.shape != inv.shape or prev_grey.dtype != grey.dtype:
            out = inv.copy()
        else:
            # Full-resolution work in OpenCV and in place: at 768x576 this is most of the time spent.
            static = cv2.absdiff(grey, prev_grey) <= self.motion_threshold
            trusted = static & (result.confidence >= self.min_confidence)
            s, t = self._fit(inv, prev, trusted)
            assert self._reference is not None
            s0, t0 = _normalising(inv, *self._reference)  # the frame's own scale, in the first output's units
            s, t = (1 - self.anchor) * s + self.anchor * s0, (1 - self.anchor) * t + self.anchor * t0
            out = inv * np.float32(s)
            out += np.float32(t)
            if self.blend > 0:
                np.copyto(out, cv2.addWeighted(out, 1 - self.blend, prev, self.blend, 0.0), where=trusted)
        if self._reference is None:
            self._reference = level_and_spread(out)
        self._prev_out, self._prev_grey = out, grey
        timings = {**result.timings_ms, "stabilize": (time.perf_counter() - t_start) * 1e3}
        return result.with_maps(out.copy(), timings)

    @staticmethod
    def _fit(inv: np.ndarray, prev: np.ndarray, trusted: np.ndarray) -> tuple[float, float]:
        """Scale and shift mapping ``inv`` onto ``prev`` on trusted pixels: least squares, then twice again
        without the pixels over 2.5 median absolute residuals (robust to what moved unnoticed)."""
        sel = subsample(trusted)
        x = subsample(inv)[sel].astype(np.float64)
        y = subsample(prev)[sel].astype(np.float64)
        if x.size < 16 or np.ptp(x) < 1e-9:  # nothing trustworthy to align on: match the previous spread
            return _normalising(inv, *level_and_spread(prev))
        keep = np.ones(x.size, dtype=bool)
        s, t = 1.0, 0.0
        for _ in range(3):  # closed-form least squares for y = s x + t (a 2x2 system; lstsq's SVD is slow)
            xs, ys = x[keep], y[keep]
            mx, my = float(xs.mean()), float(ys.mean())
            var = float(np.mean((xs - mx) ** 2))
            if var < 1e-18:
                break
            s = float(np.mean((xs - mx) * (ys - my))) / var
            t = my - s * mx
            residual = np.abs(s * x + t - y)
            keep = residual <= 2.5 * max(float(np.median(residual)), 1e-9)
        return float(s), float(t)


def level_and_spread(image: np.ndarray) -> tuple[float, float]:
    """Median and mean absolute deviation, both on the same subsample: a spread measured one way and matched
    another (the whole map against a subsample) grows or shrinks by a constant factor every frame."""
    sub = subsample(image)
    median = float(np.median(sub))
    return median, float(np.mean(np.abs(sub - median)))


def _normalising(inv: np.ndarray, median: float, spread: float) -> tuple[float, float]:
    """The affine map that gives ``inv`` this median and mean absolute deviation. A flat map (its spread
    within float32 rounding of its level) has no scale to match: only its level is moved."""
    mi, di = level_and_spread(inv)
    s = spread / di if di > 1e-5 * max(abs(mi), 1e-3) else 1.0
    return s, median - s * mi


def flicker(maps: list[np.ndarray], static: list[np.ndarray]) -> float:
    """Mean absolute frame-to-frame change on pixels whose image did not change, relative to each map's
    spread (mean absolute deviation): what a viewer sees as flicker with a fixed colour range."""
    changes = []
    for (prev, cur), mask in zip(itertools.pairwise(maps), static[1:], strict=False):
        spread = float(np.mean(np.abs(cur - np.median(cur)))) or 1.0
        if mask.any():
            changes.append(float(np.mean(np.abs(cur - prev)[mask])) / spread)
    return float(np.mean(changes)) if changes else 0.0


def static_masks(frames: list[np.ndarray], hw: tuple[int, int]) -> list[np.ndarray]:
    """Per BGR frame, at ``hw``, the pixels whose grey level changed by at most MOTION_THRESHOLD since the
    previous frame (all of them for the first): where :func:`flicker` looks."""
    greys = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), hw[::-1], interpolation=cv2.INTER_AREA).astype(np.float32)
             for f in frames]  # fmt: skip
    return [np.ones(hw, bool)] + [np.abs(b - a) <= MOTION_THRESHOLD for a, b in itertools.pairwise(greys)]
