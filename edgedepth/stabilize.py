"""Stable video depth: each frame's relative inverse depth aligned to the previous output, without smearing.

Per frame, a robust scale and shift are fitted that map the new prediction onto the previous output, on
pixels that are confident and whose image did not change (a frame-difference mask): a model's per-frame
scale and shift jitter is what makes video depth flicker. The fitted parameters are pulled a little towards
the frame's own (median / mean-absolute-deviation) scale every frame, so that errors cannot accumulate.
Where the image did not change, pixels are also blended with the previous output; pixels that moved are
never blended, so moving objects keep their own depth.

    stabilizer = Stabilizer()
    for frame, result in est.stream(source):        # stream(stabilize=True) does this
        result = stabilizer(frame, result)
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, replace

import cv2
import numpy as np

from .staging import DepthResult

FIT_STRIDE = 4  # the fit samples every 4th pixel of each row and column


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
        inv = result.inverse_depth.astype(np.float32)
        grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY) if frame_bgr.ndim == 3 else frame_bgr
        if grey.shape != inv.shape:
            grey = cv2.resize(grey, (inv.shape[1], inv.shape[0]), interpolation=cv2.INTER_AREA)
        grey = grey.astype(np.float32)
        prev, prev_grey = self._prev_out, self._prev_grey
        if prev is None or prev_grey is None or prev.shape != inv.shape:
            out = inv
        else:
            static = np.abs(grey - prev_grey) <= self.motion_threshold
            trusted = static & (result.confidence >= self.min_confidence)
            s, t = self._fit(inv, prev, trusted)
            assert self._reference is not None
            s0, t0 = _normalising(inv, *self._reference)  # the frame's own scale, in the first output's units
            s, t = (1 - self.anchor) * s + self.anchor * s0, (1 - self.anchor) * t + self.anchor * t0
            out = s * inv + t
            if self.blend > 0:
                out = np.where(trusted, (1 - self.blend) * out + self.blend * prev, out).astype(np.float32)
        if self._reference is None:
            sub = out[::FIT_STRIDE, ::FIT_STRIDE]
            median = float(np.median(sub))
            self._reference = (median, float(np.mean(np.abs(sub - median))))
        self._prev_out, self._prev_grey = out.astype(np.float32), grey
        timings = {**result.timings_ms, "stabilize": (time.perf_counter() - t_start) * 1e3}
        return replace(result, inverse_depth=out.astype(np.float32), timings_ms=timings)

    @staticmethod
    def _fit(inv: np.ndarray, prev: np.ndarray, trusted: np.ndarray) -> tuple[float, float]:
        """Scale and shift mapping ``inv`` onto ``prev`` on trusted pixels: least squares, then twice again
        without the pixels over 2.5 median absolute residuals (robust to what moved unnoticed)."""
        sel = trusted[::FIT_STRIDE, ::FIT_STRIDE]
        x = inv[::FIT_STRIDE, ::FIT_STRIDE][sel].astype(np.float64)
        y = prev[::FIT_STRIDE, ::FIT_STRIDE][sel].astype(np.float64)
        if x.size < 16 or np.ptp(x) < 1e-9:  # nothing trustworthy to align on: match the previous spread
            median = float(np.median(prev))
            return _normalising(inv, median, float(np.mean(np.abs(prev - median))))
        keep = np.ones(x.size, dtype=bool)
        s, t = 1.0, 0.0
        for _ in range(3):
            a = np.stack([x[keep], np.ones(int(keep.sum()))], axis=1)
            (s, t), *_ = np.linalg.lstsq(a, y[keep], rcond=None)
            residual = np.abs(s * x + t - y)
            keep = residual <= 2.5 * max(float(np.median(residual)), 1e-9)
        return float(s), float(t)


def _normalising(inv: np.ndarray, median: float, spread: float) -> tuple[float, float]:
    """The affine map that gives ``inv`` this median and mean absolute deviation (on a subsample)."""
    sub = inv[::FIT_STRIDE, ::FIT_STRIDE]
    mi = float(np.median(sub))
    di = float(np.mean(np.abs(sub - mi)))
    s = spread / di if di > 1e-12 else 1.0
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


@dataclass
class ValueRange:
    """A slowly adapting colour range for a stream (instead of each frame's min and max): the 2nd and 98th
    percentiles, followed with weight ``rate`` per frame."""

    rate: float = 0.05
    low: float | None = None
    high: float | None = None

    def __call__(self, inverse_depth: np.ndarray) -> tuple[float, float]:
        lo, hi = (float(v) for v in np.percentile(inverse_depth[::4, ::4], [2, 98]))
        if self.low is None or self.high is None:
            self.low, self.high = lo, hi
        else:
            self.low += self.rate * (lo - self.low)
            self.high += self.rate * (hi - self.high)
        return self.low, max(self.high, self.low + 1e-6)
