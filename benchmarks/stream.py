"""End-to-end stream FPS against model-only FPS, in one process, on one estimator.

Stream: ``DepthEstimator.stream`` over a video file (decode, preprocess, inference and postprocess in
their threads), timed by the pipeline from its start to the last frame delivered. Model-only: the same
estimator's backend alone on the video's first frame preprocessed exactly as the stream does it (the frame's
aspect kept at the long side asked for). The two alternate round by round so drift in the machine's speed
affects both alike.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgedepth.artifact import Precision
from edgedepth.errors import SourceError
from edgedepth.estimator import DepthEstimator

from .harness import PerfCounterTimer, Timer, fps_from, latency_stats


def first_frame(video: str | Path) -> np.ndarray:
    """The first decoded frame of a video file (BGR); SourceError when it cannot be read."""
    capture = cv2.VideoCapture(str(video))
    try:
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok or frame is None:
        raise SourceError(f"--video {video}: OpenCV cannot read a frame from it")
    return frame


def model_only_latencies(
    infer: Callable[[], Any], runs: int, warmup: int, timer: Timer | None = None
) -> list[float]:
    """Latencies in ms of ``runs`` calls after ``warmup`` untimed ones."""
    timer = timer or PerfCounterTimer()
    for _ in range(warmup):
        infer()
    return [timer.time_call(infer) for _ in range(runs)]


@dataclass(frozen=True)
class StreamPass:
    frames: int
    fps: float
    dropped: int
    latency_ms_median: float


def stream_once(est: DepthEstimator, video: str | Path, max_frames: int | None = None) -> StreamPass:
    """One pass of ``est.stream`` over ``video`` (at most ``max_frames``), consuming every result."""
    with est.stream(str(video), max_frames=max_frames) as frames:
        n = sum(1 for _ in frames)
        stats = frames.stats
    return StreamPass(n, stats.fps, stats.dropped, stats.latency_ms_median)


def measure_stream(
    est: DepthEstimator,
    video: str | Path,
    rounds: int,
    runs: int,
    warmup: int,
    max_frames: int | None = None,
    on_round: Callable[[int, float, StreamPass], None] | None = None,
) -> dict[str, Any]:
    """Alternate model-only blocks and stream passes; medians, the stream's fraction of model-only FPS."""
    frame = first_frame(video)
    _, x, _ = est.prepare(frame)
    infer = lambda: est.backend.infer(x)  # noqa: E731  (the estimator's own backend, as the stream uses)
    samples: list[float] = []
    passes: list[StreamPass] = []
    for r in range(rounds):
        block = model_only_latencies(infer, runs, warmup if r == 0 else 1)
        samples += block
        passes.append(stream_once(est, video, max_frames))
        if on_round is not None:
            on_round(r, fps_from(statistics.median(block), 1), passes[-1])
    latency = latency_stats(samples)
    model_fps = fps_from(latency["p50"], 1)
    stream_fps = statistics.median(p.fps for p in passes)
    return {
        "source_hw": list(frame.shape[:2]),
        "input_hw": list(x.shape[2:]),
        "frames_per_pass": passes[-1].frames,
        "stream_fps": stream_fps,
        "stream_fps_per_round": [p.fps for p in passes],
        "stream_latency_ms_median": statistics.median(p.latency_ms_median for p in passes),
        "dropped": sum(p.dropped for p in passes),
        "model_only_latency_ms": latency,
        "model_only_fps": model_fps,
        "stream_fraction_of_model_only": stream_fps / model_fps,
    }


def open_estimator(
    model: str | Path | None,
    backend: str,
    precision: Precision | str,
    threads: int | None,
    long_side: int | None = None,
) -> DepthEstimator:
    """The estimator a user would open, at ``long_side`` pixels on the frame's longer side."""
    return DepthEstimator(model, backend=backend, precision=precision, threads=threads, long_side=long_side)
