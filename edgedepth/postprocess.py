"""Outputs: colour maps, side-by-side frames and video, depth from inverse depth, point clouds.

Pure numpy + OpenCV. Inverse depth is "larger is nearer", so by default near things get the warm end of
the colour map (red in turbo, yellow in inferno/magma/viridis, white in gray); ``invert`` flips that.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from .errors import InputError, OutputError, SourceError, choices
from .fileio import PendingFile
from .imageio import to_bgr_uint8

# name -> OpenCV colour map; gray has none (the normalised map is replicated to three channels)
COLORMAPS: dict[str, int | None] = {
    "turbo": cv2.COLORMAP_TURBO,
    "inferno": cv2.COLORMAP_INFERNO,
    "magma": cv2.COLORMAP_MAGMA,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "gray": None,
}
VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG"}
PERCENTILE_SAMPLES = 1 << 18  # robust_range looks at about this many pixels (a regular subsample)


def _map_2d(values: np.ndarray, name: str) -> np.ndarray:
    """A numeric HxW view of ``values`` (HxWx1 and leading singleton axes such as 1x1xHxW accepted)."""
    arr = np.asarray(values)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or arr.size == 0 or arr.dtype.kind not in "fiu":
        raise InputError(f"{name}: expected a non-empty HxW numeric map, got {arr.dtype} {arr.shape}")
    return arr


def robust_range(
    inverse_depth: np.ndarray, percentiles: tuple[float, float] = (2.0, 98.0)
) -> tuple[float, float]:
    """The (low, high) percentiles of the finite values; pass it as ``value_range`` to fix colours over frames."""
    arr = _map_2d(inverse_depth, "robust_range")
    step = max(1, math.isqrt(arr.size // PERCENTILE_SAMPLES))
    sample = arr[::step, ::step].astype(np.float32)
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, percentiles)
    return float(lo), float(hi)


def colorize(
    inverse_depth: np.ndarray,
    cmap: str = "turbo",
    invert: bool = False,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Colour a map as HxWx3 BGR uint8, normalised by its 2nd-98th percentiles or a fixed ``value_range``.

    A fixed range keeps colours stable across video frames. NaN/inf pixels are painted black.
    """
    key = str(cmap).lower()
    if key not in COLORMAPS:
        raise InputError(f"cmap={cmap!r} is not a known colour map; choose one of {choices(COLORMAPS)}")
    arr = _map_2d(inverse_depth, "colorize")
    lo, hi = robust_range(arr) if value_range is None else _check_range(value_range)
    span = hi - lo if hi > lo else 1.0
    finite = np.isfinite(arr)
    norm = (arr.astype(np.float32) - np.float32(lo)) * np.float32(255.0 / span)
    norm[~finite] = 0.0
    index = np.clip(np.rint(norm), 0, 255).astype(np.uint8)
    if invert:
        index = 255 - index
    code = COLORMAPS[key]
    out = np.repeat(index[:, :, None], 3, axis=2) if code is None else cv2.applyColorMap(index, code)
    out[~finite] = 0
    return out


def _check_range(value_range: tuple[float, float]) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise InputError(f"value_range={value_range!r} must be two numbers (low, high)") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise InputError(f"value_range={value_range!r} needs finite low < high (use invert=True to flip)")
    return lo, hi


def side_by_side(frame_bgr: np.ndarray, depth_bgr: np.ndarray) -> np.ndarray:
    """The frame and its colourised depth next to each other; depth is resized to the frame's height."""
    frame = to_bgr_uint8(frame_bgr, max_pixels=None, source="frame_bgr")
    depth = to_bgr_uint8(depth_bgr, max_pixels=None, source="depth_bgr")
    fh, (dh, dw) = frame.shape[0], depth.shape[:2]
    if dh != fh:
        depth = cv2.resize(depth, (max(1, round(dw * fh / dh)), fh), interpolation=cv2.INTER_LINEAR)
    return np.hstack([frame, depth])


class SideBySideWriter:
    """Write frame | depth videos of ``2 * width`` x ``height`` (mp4v for .mp4, MJPG for .avi).

    ``frame_size`` is the camera frame's (width, height); frames must have it, depth maps are resized to
    it. The video goes to a hidden temp file in the same folder and is renamed to ``path`` by ``close()``,
    so ``path`` only ever holds a finished video. An exception inside ``with`` deletes the temp file; a
    killed process leaves it behind (``.<name>.*.partial<ext>``), never a half-written ``path``.
    """

    def __init__(
        self, path: str | os.PathLike[str], fps: float, frame_size: tuple[int, int], overwrite: bool = True
    ) -> None:
        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in VIDEO_CODECS:
            raise InputError(
                f"{self.path}: unknown video extension {ext!r}; use one of {choices(VIDEO_CODECS)}"
            )
        if not (isinstance(fps, int | float | np.number) and math.isfinite(fps) and fps > 0):
            raise InputError(f"fps={fps!r} must be a positive number")
        self.frame_size = w, h = _whole_size(frame_size)
        self.frames_written = 0
        self._file = PendingFile(self.path, f".partial{ext}", overwrite)  # the container needs its extension
        assert self._file.temp_path is not None
        fourcc = cv2.VideoWriter.fourcc(*VIDEO_CODECS[ext])
        self._writer = cv2.VideoWriter(str(self._file.temp_path), fourcc, float(fps), (2 * w, h))
        if not self._writer.isOpened():
            self.discard()
            raise SourceError(f"OpenCV cannot open a {VIDEO_CODECS[ext]} video writer for {self.path}")

    def write(self, frame: np.ndarray, depth_bgr: np.ndarray) -> None:
        """Append one frame | depth pair."""
        if self._file.temp_path is None:
            raise InputError(f"{self.path}: the writer is closed")
        w, h = self.frame_size
        bgr = to_bgr_uint8(frame, max_pixels=None, source="frame")
        if bgr.shape[:2] != (h, w):
            raise InputError(f"frame is {bgr.shape[1]}x{bgr.shape[0]}, this writer's frame_size is {w}x{h}")
        depth = to_bgr_uint8(depth_bgr, max_pixels=None, source="depth_bgr")
        if depth.shape[:2] != (h, w):
            depth = cv2.resize(depth, (w, h), interpolation=cv2.INTER_LINEAR)
        self._writer.write(np.hstack([bgr, depth]))
        self.frames_written += 1

    @property
    def temp_path(self) -> Path | None:
        return self._file.temp_path

    def close(self) -> Path:
        """Finish the video, check it, and move it to ``path`` (idempotent). OpenCV's writer reports no
        failure (FFmpeg only prints "Failed to write frame", e.g. on a full disk), so the finished file is
        opened again first: one that is unreadable or short of frames raises OutputError and is discarded,
        leaving ``path`` as it was."""
        self._writer.release()
        temp = self._file.temp_path
        if temp is not None:
            capture = cv2.VideoCapture(str(temp))
            frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else -1
            capture.release()
            if not self.frames_written:
                self.discard()
                raise OutputError(f"{self.path}: no frame was written, so no video was saved")
            if frames != self.frames_written:
                self.discard()
                got = "an unreadable file" if frames < 0 else f"{frames} readable frames"
                raise OutputError(
                    f"cannot write {self.path}: {self.frames_written} frames were written but the video holds "
                    f"{got} (a full disk?); {self.path} was left as it was"
                )
        return self._file.commit()

    def discard(self) -> None:
        """Drop the unfinished video (the destination is left as it was)."""
        self._writer.release()
        self._file.discard()

    def __enter__(self) -> SideBySideWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


def _whole_size(frame_size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) as ints; whole floats are fine (cv2.CAP_PROP_FRAME_WIDTH is read as a float)."""
    try:
        w, h = (int(v) for v in frame_size)
        if w > 0 and h > 0 and (w, h) == tuple(frame_size):
            return w, h
    except (TypeError, ValueError, OverflowError):
        pass
    raise InputError(f"frame_size={frame_size!r} must be (width, height): two positive whole numbers")


def depth_from_inverse(
    inverse_depth: np.ndarray, scale: float = 1.0, shift: float = 0.0, eps: float = 1e-6
) -> np.ndarray:
    """Depth ``1 / (scale * inverse_depth + shift)`` as float32 (``scale``, ``shift`` from an alignment such as
    ``metrics.fit_scale_shift``); pixels whose denominator is <= ``eps`` (at or beyond infinity) become NaN."""
    inv = np.asarray(inverse_depth, dtype=np.float64)
    denom = scale * inv + shift
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(denom > eps, 1.0 / np.where(denom > eps, denom, 1.0), np.nan)
    return depth.astype(np.float32)


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
